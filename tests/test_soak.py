"""A team at once on one database (issue 14 point 4): the soak of tests/soak.py, short, on SQLite and PostgreSQL.

The run of several minutes, with its figures, is bench/bench_soak.py.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dcops.db import open_database
from dcops.inventory.service import load_directory

import inventories
import soak

# PostgreSQL: the team of the issue. SQLite: fewer writers, well inside what its busy timeout holds
# (bench_soak measured none refused for the lock up to 10 writers on two cores).
WRITERS = {"sqlite": 4, "postgresql": 10}
SECONDS = {"sqlite": 20, "postgresql": 30}


@pytest.mark.slow
def test_a_team_at_once_leaves_no_error_no_overcommit_and_the_audit_chain_whole(any_settings, tmp_path):
    dialect = "sqlite" if any_settings.database_url.startswith("sqlite") else "postgresql"
    result = soak.soak(any_settings.database_url, tmp_path / "soak", writers=WRITERS[dialect],
                       duration_seconds=SECONDS[dialect])
    report = result.summary() + "\n" + "\n".join(f"  {n} {what}" for what, n in result.refusals().items())

    assert result.failures == [], report
    assert result.overcommitted == [], report
    assert result.audit_ok, report
    assert result.unfinished == [] and result.lost == [], report
    if dialect == "postgresql":
        assert result.deadlocks == 0, report
    assert result.busy() == [], report
    # The soak did what it is for: the clusters filled, so approvals were both placed and refused.
    assert result.count("approve", ok=True) >= 5, report
    assert any(o.kind == "approve" and o.error_kind.startswith("capacity refused") for o in result.outcomes), report
    kinds = {o.kind for o in result.outcomes if o.ok}
    assert {"submit", "approve", "retire", "maintenance-add", "inventory-load", "probe-run", "report-uptime",
            "report-capacity", "serve"} <= kinds, report
    assert not result.synced or "probe-sync" in kinds, report
    assert len({o.operator for o in result.outcomes if o.operator >= 0}) == WRITERS[dialect]


def _outcome(code, stderr, kind="approve"):
    return soak.Outcome(0, kind, ["request", "approve", "1"], code, "", stderr, 0.0, 0.1)


def test_a_user_error_is_exit_2_in_dcops_words_and_nothing_else_is():
    refused = _outcome(2, "dcops: error: request 7 does not fit (plan vm-large needs vcpu 16): gen-a: vcpu short\n")
    assert refused.user_error and refused.error_kind == "capacity refused (does not fit)"
    busy = _outcome(2, "dcops: error: the database is locked by another dcops process; try again in a moment\n")
    assert busy.user_error
    assert not _outcome(1, "dcops: error: database error: deadlock detected\n").user_error
    crashed = _outcome(2, "Traceback (most recent call last):\n  ...\nKeyError: 'x'\ndcops: error: x\n")
    assert not crashed.user_error and crashed.error_kind == "traceback: dcops: error: x"
    assert not _outcome(2, "Usage: dcops [OPTIONS]\n").user_error
    assert not _outcome(None, "").user_error and _outcome(None, "").error_kind == "did not finish"
    assert _outcome(2, "dcops: error: request 12 is approved; only a submitted request can be approved\n"
                    ).error_kind == "request N is approved; only a submitted request can be approved"


def test_the_overcommit_check_reads_capacity_from_the_tables(settings, tmp_path):
    database = open_database(settings)
    load_directory(database, inventories.write(tmp_path / "inv", inventories.base()))
    with database.engine.connect() as conn:
        assert soak.overcommitted(conn) == []
    # gen-a: vcpu (64 - 4) x 2.0 = 120, 24 allocated; written past the library, as a bug would
    with database.transaction() as conn:
        conn.execute(sa.text("INSERT INTO allocation (programme_id, cluster_id, resource, amount) "
                             "SELECT p.id, c.id, 'vcpu', 97 FROM programme p, cluster c "
                             "WHERE p.slug = 'e-gov-portal' AND c.name = 'gen-a'"))
    with database.engine.connect() as conn:
        assert soak.overcommitted(conn) == [("gen-a", "vcpu", 64, 4, 2.0, 121)]
    database.dispose()
