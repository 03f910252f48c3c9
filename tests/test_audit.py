"""The audit log: appended with every change, hash-chained, and tampering found by verify."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dcops import audit
from dcops.catalogue.requests import approve, submit
from dcops.errors import NotFound, UserError
from dcops.inventory.service import load_directory, update_programme
from dcops.maintenance import add_window
from dcops.provisioning.jobs import finish_job, start_job
from dcops.provisioning.runner import RunResult

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
    assert actions.count("inventory.programme.created") == 3
    assert actions[-5:] == ["inventory.programme.updated", "request.submitted", "allocation.reserved",
                            "request.approved", "programme.approved"]
    assert [e["recorded_action"] for e in log] == actions  # written under today's names
    update = next(e for e in log if e["action"] == "inventory.programme.updated")
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
    mistake = cli("audit", "list", "--since", "yesterday", expect=2).stderr
    assert mistake.startswith("dcops: error: --since: 'yesterday' is not a time") and mistake.count("\n") == 1
    # A time without an offset is the data centre's (Asia/Vientiane, UTC+7), as `maintenance add` reads it.
    from zoneinfo import ZoneInfo

    half_an_hour_ago = datetime.now(ZoneInfo("Asia/Vientiane")) - timedelta(minutes=30)
    recent = cli("audit", "list", "--since", half_an_hour_ago.strftime("%Y-%m-%d %H:%M"), "-o", "json").stdout
    assert len(json.loads(recent)) == len(json.loads(cli("audit", "list", "-o", "json").stdout)) > 0
    later = (datetime.now(timezone.utc) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ")
    assert json.loads(cli("audit", "list", "--since", later, "-o", "json").stdout) == []
    from dcops.db import open_database

    database = open_database(cli.settings)
    _execute(database, "DELETE FROM audit_entry WHERE id = 2")
    database.dispose()
    result = cli("audit", "verify", expect=1)
    assert "broken at entry 3: entry 2 is missing: deleted" in result.stderr


def cli_database(cli):
    from dcops.db import open_database

    return open_database(cli.settings)


def _job(database, kind, slugs, home, status="successful"):
    """A job through the library's own start and finish (no Ansible: what the log records is the same)."""
    job_id, _chosen, _folder = start_job(database, kind, slugs, actor="ops", check=False, sandbox=True, home=home)
    finish_job(database, job_id, RunResult(status=status, rc=0 if status == "successful" else 2), actor="ops")
    return job_id


@pytest.fixture
def lived(logged, tmp_path):
    """`logged`, then new-portal's whole life: provisioned, a window, decommissioned; dhis2 gets a window too."""
    _job(logged, "provision", ["new-portal"], tmp_path)
    start = datetime.now(timezone.utc) + timedelta(days=2)
    for slug in ("new-portal", "dhis2"):
        add_window(logged, programme=slug, cluster=None, starts_at=start, ends_at=start + timedelta(hours=1),
                   reason="patching", change_ref="CHG-1", actor="ops")
    _job(logged, "decommission", ["new-portal"], tmp_path)
    return logged


def test_a_programme_filter_finds_every_entry_that_concerns_it(lived):
    log = entries(lived, programme="new-portal")
    assert [(e["object"], e["action"]) for e in log] == [
        ("request:1", "request.submitted"),
        ("programme:new-portal", "allocation.reserved"),
        ("request:1", "request.approved"),
        ("programme:new-portal", "programme.approved"),
        ("request:1", "request.provisioning"),
        ("programme:new-portal", "programme.provisioning"),
        ("job:1", "job.provision.started"),
        ("request:1", "request.active"),
        ("programme:new-portal", "programme.active"),
        ("job:1", "job.provision.successful"),
        ("maintenance:1", "maintenance.added"),
        ("request:1", "request.decommission-requested"),
        ("programme:new-portal", "programme.decommissioning"),
        ("job:2", "job.decommission.started"),
        ("request:1", "request.retired"),
        ("programme:new-portal", "programme.retired"),
        ("job:2", "job.decommission.successful"),
    ]
    assert entries(lived, object_type="programme", object_key="new-portal") == log
    assert entries(lived, object_key="new-portal") == log  # a bare slug is the programme
    dhis2 = entries(lived, programme="dhis2")
    assert {e["object"] for e in dhis2} == {"programme:dhis2", "maintenance:2"}
    assert [e["action"] for e in dhis2][-1] == "maintenance.added"
    with pytest.raises(NotFound, match="no programme 'nope'"):
        entries(lived, programme="nope")


def test_an_object_is_named_by_type_and_key(lived):
    assert {e["object"] for e in entries(lived, object_type="request", object_key="1")} == {"request:1"}
    assert [e["action"] for e in entries(lived, object_type="job", object_key="1")] == [
        "job.provision.started", "job.provision.successful"]
    assert {e["object"] for e in entries(lived, object_key="1")} == {"request:1", "job:1", "maintenance:1"}
    with lived.transaction() as conn:
        assert audit.object_types(conn, "1") == ["job", "maintenance", "request"]
    assert audit.parse_object("request:12") == ("request", "12")
    assert audit.parse_object("lesmis-v2") == (None, "lesmis-v2")
    with pytest.raises(UserError, match="no object type 'window'"):
        audit.parse_object("window:1")


def test_entries_recorded_under_old_names_read_under_todays_and_still_verify(logged):
    old = [("request.submit", "request", "9", None), ("inventory.cluster.retire", "cluster", "gen-b", None),
           ("job.provision.start", "job", "9", None), ("job.verify.canceled", "job", "9", {"status": "canceled"}),
           ("programme.status", "programme", "dhis2", {"status": "failed", "reason": "job 9 failed"}),
           ("maintenance.cancel", "maintenance", "9", None), ("report.freeze", "report", "9", None)]
    with logged.transaction(immediate=True) as conn:
        audit.append(conn, [audit.Event("old", action, kind, key, None, after) for action, kind, key, after in old])
    tail = entries(logged)[-len(old):]
    assert [e["recorded_action"] for e in tail] == [action for action, *_ in old]
    assert [e["action"] for e in tail] == [
        "request.submitted", "inventory.cluster.retired", "job.provision.started", "job.verify.cancelled",
        "programme.failed", "maintenance.cancelled", "report.frozen"]
    assert verification(logged).ok


def test_cli_table_shows_whole_actions_and_objects_in_80_columns(cli, tmp_path):
    database_path = tmp_path / "inv"
    cli("inventory", "load", inventories.write(database_path, requests_fixtures.inventory()), "--actor",
        "somphone.security.officer")
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(requests_fixtures.request("census-2015-portal-archive")))
    cli("request", "submit", request_file, "--actor", "desk")
    cli("request", "approve", "1", "--actor", "ops")
    table = cli("audit", "list").stdout
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80, table
    assert lines[0].split() == ["ID", "AT", "(UTC)", "ACTOR", "ACTION", "OBJECT"]
    action_at, object_at = lines[0].index("ACTION"), lines[0].index("OBJECT")
    shown = []  # (action, object), an object's continuation lines joined back
    for line in lines[1:]:
        if line[:object_at].strip():
            shown.append([line[action_at:object_at].strip(), line[object_at:]])
        else:
            shown[-1][1] += line[object_at:]
    logged = json.loads(cli("audit", "list", "-o", "json").stdout)
    assert shown == [[e["action"], e["object"]] for e in logged]  # whole, never cut
    assert ["allocation.reserved", "programme:census-2015-portal-archive"] in shown
    assert "somphone.se…" in table  # a long actor is cut; --output json has it whole
    mine = cli("audit", "list", "--programme", "census-2015-portal-archive", "-o", "json").stdout
    assert [(e["object"], e["action"]) for e in json.loads(mine)] == [
        ("request:1", "request.submitted"), ("programme:census-2015-portal-archive", "allocation.reserved"),
        ("request:1", "request.approved"), ("programme:census-2015-portal-archive", "programme.approved")]
    both = cli("audit", "list", "--object", "request:1", "-o", "json")
    assert {e["object"] for e in json.loads(both.stdout)} == {"request:1"} and both.stderr == ""
    database = cli_database(cli)
    with database.transaction(immediate=True) as conn:
        audit.record(conn, audit.Event("\x1b]0;x\x07", "request.withdrawn", "request", "1"))
    database.dispose()
    assert cli("audit", "list").stdout.splitlines()[-1].split()[3] == "\\x1b]0;x\\x07"  # escaped, never run


def test_cli_object_mistakes_are_one_line_errors(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", inventories.base()))
    unknown = cli("audit", "list", "--object", "window:1", expect=2)
    assert unknown.stderr.startswith("dcops: error: --object window:1: no object type 'window'")
    assert unknown.stderr.count("\n") == 1
    assert "no programme 'nope'" in cli("audit", "list", "--programme", "nope", expect=2).stderr


def test_cli_bare_key_of_several_types(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(requests_fixtures.request()))
    cli("request", "submit", request_file)
    cli("maintenance", "add", "dhis2", "--start", "2099-12-05 22:00", "--end", "2099-12-06 02:00",
        "--reason", "patching", "--change-ref", "CHG-1")
    result = cli("audit", "list", "--object", "1", "-o", "json")
    assert {e["object"] for e in json.loads(result.stdout)} == {"request:1", "maintenance:1"}
    assert "--object 1 names maintenance:1, request:1" in result.stderr


@pytest.mark.slow
def test_listing_stays_fast_at_200000_entries(logged, tmp_path):
    """The newest entries read by key; a programme's found through its keys' index, not a walk of the log."""
    import time

    _job(logged, "provision", ["new-portal"], tmp_path)
    with logged.transaction(immediate=True) as conn:
        for chunk in range(20):
            audit.append(conn, [audit.Event("op", "inventory.programme.updated", "programme", f"p-{i % 500}",
                                            {"tier": 1}, {"tier": 2}) for i in range(10_000)])
    _job(logged, "verify", ["new-portal"], tmp_path)

    def fastest(**filters):
        best = None
        for _ in range(5):
            start = time.perf_counter()
            with logged.transaction() as conn:
                rows = audit.list_entries(conn, limit=200, **filters)
            took = time.perf_counter() - start
            best = took if best is None else min(best, took)
        return best, rows

    newest, rows = fastest()
    assert len(rows) == 200 and rows[-1]["action"] == "job.verify.successful"
    mine, rows = fastest(programme="new-portal")
    actions = [e["action"] for e in rows]
    # Its request's moves, the programme's own (approved, provisioning, active) and its jobs'.
    assert [e["object"] for e in rows][-2:] == ["job:2", "job:2"] and len(rows) == 12, actions
    assert {"programme.approved", "programme.provisioning", "programme.active"} <= set(actions)
    # Measured 5 ms and 12 ms (SQLite and PostgreSQL alike); the bounds leave room for a busy machine.
    assert newest < 0.1 and mine < 0.2, (newest, mine)


def test_a_sync_from_prometheus_is_found_by_its_object(logged):
    """`dcops probe sync` audits under the object prometheus:URL, which --object accepts."""
    url = "http://127.0.0.1:9090"
    with logged.transaction(immediate=True) as conn:
        audit.record(conn, audit.Event("ops", "probe.synced", "prometheus", url, None, {"results": 3}))
    assert audit.parse_object(f"prometheus:{url}") == ("prometheus", url)
    found = entries(logged, object_type="prometheus", object_key=url)
    assert [(e["action"], e["after"]) for e in found] == [("probe.synced", {"results": 3})]
