"""Migrations 0007 on: each carries existing rows over (and back on downgrade)."""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from dcops import db as dcops_db

from test_db import _migrate


@contextmanager
def connected(url: str, *, write: bool = False):
    engine = dcops_db.make_engine(url)
    try:
        with (engine.begin() if write else engine.connect()) as conn:
            yield conn
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    with connected(url) as conn:
        return {column["name"] for column in sa.inspect(conn).get_columns(table)}


def test_0007_gives_existing_programmes_a_service_span_and_downgrades(any_url):
    _migrate(any_url, "0006")
    with connected(any_url, write=True) as conn:
        conn.execute(sa.text("INSERT INTO ministry (id, code, name, contact) VALUES (1, 'moh', 'Health', '')"))
        for slug, status, created, updated in (("live", "active", "2026-01-05 00:00:00", "2026-02-01 00:00:00"),
                                               ("gone", "retired", "2025-03-01 00:00:00", "2026-06-30 12:00:00"),
                                               ("new", "approved", "2026-11-01 00:00:00", "2026-11-01 00:00:00")):
            conn.execute(sa.text(
                "INSERT INTO programme (slug, name, ministry_id, description, tier, status, classification, "
                "environment, owner_contact, security_contact, personal_data, backup_tier, created_at, updated_at) "
                "VALUES (:s, :s, 1, '', 3, :st, 'internal', 'production', '', '', false, 'daily', :c, :u)"),
                {"s": slug, "st": status, "c": created, "u": updated})
    _migrate(any_url, "0007")
    with connected(any_url) as conn:
        rows = {r[0]: (dcops_db.iso_utc(r[1]), dcops_db.iso_utc(r[2])) for r in conn.execute(
            sa.text("SELECT slug, activated_at, retired_at FROM programme"))}
    # Run since created; retired at its last change; one not yet in service has neither.
    assert rows == {"live": ("2026-01-05T00:00:00Z", None), "gone": ("2025-03-01T00:00:00Z", "2026-06-30T12:00:00Z"),
                    "new": (None, None)}
    _migrate(any_url, "0006", down=True)
    assert not {"activated_at", "retired_at"} & columns(any_url, "programme")


def test_0008_adds_checks_to_existing_offerings_and_downgrades(any_url):
    _migrate(any_url, "0007")
    with connected(any_url, write=True) as conn:
        conn.execute(sa.text("INSERT INTO offering (id, name, description, display_name, long_description, tags) "
                             "VALUES ('vm', 'vm', '', '', '', '[]')"))
    assert not {"checks", "public_domain"} & columns(any_url, "offering")

    _migrate(any_url, "0008")
    from dcops.models import Offering

    with connected(any_url) as conn:
        row = conn.execute(sa.select(Offering.__table__)).one()
    assert (row.id, row.checks, row.public_domain) == ("vm", [], "")

    _migrate(any_url, "0007", down=True)
    assert not {"checks", "public_domain"} & columns(any_url, "offering")
    _migrate(any_url, "0008")


def test_0009_rewrites_canceled_jobs_and_downgrades(any_url):
    """A stored 'canceled' job becomes 'cancelled' (the project's one spelling); downgrade restores it."""
    _migrate(any_url, "0008")
    with connected(any_url, write=True) as conn:
        for status in ("canceled", "successful", "interrupted", "canceled"):
            conn.execute(sa.text(
                "INSERT INTO job (kind, playbook, programmes, check_mode, sandbox, status, actor, started_at,"
                " hostname, pid, pid_start, private_data_dir, host_stats) VALUES ('verify', 'verify.yml', '[]',"
                " false, true, :status, 'ops', '2026-11-01 08:00:00', 'h', 1, '', '', '{}')"), {"status": status})

    def statuses() -> dict[int, str]:
        with connected(any_url) as conn:
            return dict(conn.execute(sa.text("SELECT id, status FROM job ORDER BY id")).all())

    _migrate(any_url, "0009")
    assert statuses() == {1: "cancelled", 2: "successful", 3: "interrupted", 4: "cancelled"}
    _migrate(any_url, "0008", down=True)
    assert statuses() == {1: "canceled", 2: "successful", 3: "interrupted", 4: "canceled"}
