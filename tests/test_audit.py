"""The audit log: appended with every change, hash-chained, and tampering found by verify."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dcops import audit
from dcops.catalogue.requests import approve, submit
from dcops.inventory.service import load_directory, update_programme

import inventories
import requests_fixtures


@pytest.fixture
def logged(any_database, tmp_path):
    """A database whose log holds an inventory load, a programme update and a request."""
    load_directory(any_database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()), actor="loader")
    update_programme(any_database, "dhis2", {"tier": 2}, actor="editor")
    request_id = submit(any_database, requests_fixtures.request(), actor="desk")
    approve(any_database, request_id, actor="ops")
    return any_database


def entries(database, **filters):
    with database.transaction() as conn:
        return audit.list_entries(conn, **filters)


def verification(database):
    with database.transaction() as conn:
        return audit.verify(conn)


def test_every_change_is_logged_with_actor_before_and_after(logged):
    log = entries(logged)
    actions = [e["action"] for e in log]
    assert actions.count("inventory.programme.create") == 3
    assert actions[-4:] == ["inventory.programme.update", "request.submit", "allocation.reserve", "request.approved"]
    update = next(e for e in log if e["action"] == "inventory.programme.update")
    assert (update["actor"], update["object_key"], update["before"], update["after"]) == (
        "editor", "dhis2", {"tier": 1}, {"tier": 2})
    assert [e["id"] for e in log] == list(range(1, len(log) + 1))
    assert verification(logged).ok and verification(logged).entries == len(log)


def test_filters(logged):
    assert {e["object_key"] for e in entries(logged, object_key="dhis2")} == {"dhis2"}
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert entries(logged, since=future) == []
    assert len(entries(logged, limit=2)) == 2


def _execute(database, sql, **params):
    with database.transaction() as conn:
        conn.execute(sa.text(sql), params)


def test_verify_finds_an_edited_entry(logged):
    _execute(logged, "UPDATE audit_entry SET actor = 'someone-else' WHERE id = 5")
    result = verification(logged)
    assert (result.ok, result.broken_at, result.entries) == (False, 5, 4)
    assert "edited" in result.problem


def test_verify_finds_an_edited_payload(logged):
    with logged.transaction() as conn:
        after = conn.execute(sa.text("SELECT after FROM audit_entry WHERE id = 3")).scalar()
        after = json.loads(after) if isinstance(after, str) else after
        after["name"] = "tampered"
        conn.execute(sa.text("UPDATE audit_entry SET after = :a WHERE id = 3"), {"a": json.dumps(after)})
    assert verification(logged).broken_at == 3


def test_verify_finds_a_deleted_entry(logged):
    _execute(logged, "DELETE FROM audit_entry WHERE id = 4")
    result = verification(logged)
    assert (result.broken_at, result.problem) == (5, "entry 4 is missing: deleted")


def test_verify_finds_a_deleted_entry_even_when_ids_are_renumbered(logged):
    _execute(logged, "DELETE FROM audit_entry WHERE id = 4")
    _execute(logged, "UPDATE audit_entry SET id = id - 1 WHERE id > 4")
    result = verification(logged)
    assert result.broken_at == 4 and not result.ok


def test_verify_finds_reordered_entries(logged):
    with logged.transaction() as conn:
        rows = {r.id: dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM audit_entry WHERE id IN (6, 7)"))}
        conn.execute(sa.text("UPDATE audit_entry SET hash = hash || '-' WHERE id IN (6, 7)"))
        for target, source in ((6, 7), (7, 6)):
            values = {k: v for k, v in rows[source].items() if k != "id"}
            for key in ("before", "after"):
                if not isinstance(values[key], (str, type(None))):
                    values[key] = json.dumps(values[key])
            sets = ", ".join(f"{k} = :{k}" for k in values)
            conn.execute(sa.text(f"UPDATE audit_entry SET {sets} WHERE id = :id"), {**values, "id": target})
    result = verification(logged)
    assert result.broken_at == 6 and not result.ok


def test_cli_verify_exits_non_zero_when_broken(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", inventories.base()), "--actor", "loader")
    assert "audit log intact" in cli("audit", "verify").stdout
    listing = json.loads(cli("audit", "list", "--object", "dhis2", "-o", "json").stdout)
    assert listing[0]["actor"] == "loader"
    assert "--since: expected a date" in cli("audit", "list", "--since", "yesterday", expect=2).stderr
    from dcops.db import open_database

    database = open_database(cli.settings)
    _execute(database, "DELETE FROM audit_entry WHERE id = 2")
    database.dispose()
    result = cli("audit", "verify", expect=1)
    assert "broken at entry 3: entry 2 is missing: deleted" in result.stderr
