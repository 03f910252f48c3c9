"""The prober over real loopback servers: rounds, damping into programme states, the
scheduler keeping on through hanging targets and a locked database, history import."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dcops.db import open_database, sqlite_file
from dcops.errors import UserError, ValidationError
from dcops.health.history import Thresholds
from dcops.health.importer import import_history
from dcops.health.prober import Scheduler, run_once
from dcops.health.status import programme_states
from dcops.inventory.service import load_directory
from dcops.settings import Settings

import inventories
from servers import Flap, Hang, Respond, http_server, refused_port

pytestmark = pytest.mark.slow


def inventory_with(tmp_path, endpoints: dict[str, list[dict]]) -> Path:
    """The small inventory with the given endpoints per programme (others without endpoints)."""
    files = inventories.base()
    for document in ("programmes/moh.yaml", "programmes/mtc.yaml"):
        for programme in files[document]["programmes"]:
            programme["endpoints"] = endpoints.get(programme["slug"], [])
    return inventories.write(tmp_path / "inv", files)


def states(database) -> dict[str, str]:
    return {row["programme"]: row["state"] for row in programme_states(database)}


def test_rounds_damp_failures_into_programme_states(database, tmp_path):
    with http_server({"/ok": Respond(200, b"healthy"), "/flap": Flap(), "/bad": Respond(503)}) as server, \
            refused_port() as closed:
        load_directory(database, inventory_with(tmp_path, {
            "dhis2": [{"name": "web", "kind": "http", "target": server.url("/ok"), "body_contains": "healthy"}],
            "digital-id": [{"name": "api", "kind": "http", "target": server.url("/bad")},
                           {"name": "db", "kind": "tcp", "target": f"127.0.0.1:{closed}"}],
            "e-gov-portal": [{"name": "web", "kind": "http", "target": server.url("/flap")}],
        }))
        first = run_once(database, thresholds=Thresholds(3, 2))
        assert (first.checks, first.succeeded) == (4, 1 + 1)
        assert sorted(first.failures) == [("digital-id", "api", "status 503"), ("digital-id", "db", "refused")]
        assert states(database) == {"dhis2": "unknown", "digital-id": "unknown", "e-gov-portal": "unknown"}
        for _ in range(2):
            summary = run_once(database, thresholds=Thresholds(3, 2))
        assert states(database) == {"dhis2": "up", "digital-id": "down", "e-gov-portal": "unknown"}
        (change,) = [c for c in summary.programme_changes if c[0] == "digital-id"]
        assert change[1] == "down" and change[2] in ("api: status 503", "db: refused", "api: status 503; db: refused")
        assert server.hits["/flap"] == 3


def test_scheduler_keeps_probing_past_a_hanging_target_and_a_locked_database(database, settings, tmp_path):
    with http_server({"/ok": Respond(200), "/hang": Hang()}) as server:
        load_directory(database, inventory_with(tmp_path, {
            "dhis2": [{"name": "web", "kind": "http", "target": server.url("/ok"), "interval_seconds": 10,
                       "timeout_seconds": 1}],
            "digital-id": [{"name": "api", "kind": "http", "target": server.url("/hang"), "interval_seconds": 10,
                            "timeout_seconds": 5}],
        }))
        impatient = open_database(Settings.from_env({"DCOPS_DATABASE_URL": settings.database_url,
                                                     "DCOPS_HOME": str(settings.home), "DCOPS_BUSY_TIMEOUT_MS": "300"}))
        scheduler = Scheduler(impatient, thresholds=Thresholds(1, 1), flush_seconds=0.2)
        stop = threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(scheduler.run(stop)))
        holder = sqlite3.connect(sqlite_file(settings.database_url), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the database stays locked while the first probes land
        try:
            thread.start()
            time.sleep(3)
            assert scheduler.recorded == 0 and scheduler.pending  # results wait in memory, nothing lost
            holder.execute("ROLLBACK")
            deadline = time.monotonic() + 20
            watched = {"dhis2": "up", "digital-id": "down", "e-gov-portal": "unmonitored"}
            while time.monotonic() < deadline and states(database) != watched:
                time.sleep(0.2)
            assert states(database) == watched
        finally:
            if holder.in_transaction:
                holder.execute("ROLLBACK")
            holder.close()
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()
    # A clean stop is recorded: from then on nothing is known, and status says why.
    assert states(database) == {"dhis2": "unknown", "digital-id": "unknown", "e-gov-portal": "unmonitored"}
    assert {row["reason"] for row in programme_states(database)} == {"web: prober stopped", "api: prober stopped",
                                                                    "no check: not monitored"}
    with database.transaction() as conn:
        reason = conn.execute(sa.text("SELECT last_reason FROM check_state s JOIN endpoint e ON e.id = s.endpoint_id "
                                      "WHERE e.target LIKE '%/hang'")).scalar()
    assert reason == "timeout"


def test_import_goes_through_the_interval_logic(database, tmp_path):
    load_directory(database, inventory_with(tmp_path, {
        "dhis2": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:9/"}]}))
    lines = []
    for minute in range(10):
        ok = not 3 <= minute <= 6
        lines.append(json.dumps({"timestamp": f"2026-10-01T00:{minute:02d}:00Z", "programme": "dhis2", "check": "web",
                                 "success": ok, "duration": 0.1, "reason": "" if ok else "status 500"}))
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(lines) + "\n")
    summary = import_history(database, history)
    assert (summary.rows, summary.checks, summary.programme_changes) == (10, 1, 3)
    with database.transaction() as conn:
        rows = conn.execute(sa.text("SELECT state FROM state_interval WHERE endpoint_id IS NULL "
                                    "ORDER BY started_at")).all()
    assert [r[0] for r in rows] == ["up", "down", "up"]
    # The same file again changes nothing: every row but the first (before the first state) falls in
    # measured time; the failures at 3 and 4 while up and the success at 7 while down disagree with it.
    again = import_history(database, history)
    assert (again.backfilled, again.measured, again.disagreeing) == (1, 9, {"dhis2/web": 3})
    with database.transaction() as conn:
        assert [r[0] for r in conn.execute(sa.text("SELECT state FROM state_interval WHERE endpoint_id IS NULL "
                                                   "ORDER BY started_at")).all()] == ["up", "down", "up"]
        assert conn.execute(sa.text("SELECT sum(count) FROM latency_rollup")).scalar() == 10  # not counted twice


def test_import_reports_every_bad_row_and_writes_nothing(database, tmp_path):
    load_directory(database, inventory_with(tmp_path, {
        "dhis2": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:9/"}]}))
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,programme,check,success,duration,reason\n"
                   "2026-10-01T00:00:00Z,dhis2,web,true,0.1,\n"
                   "2026-10-01T00:01:00,dhis2,web,true,0.1,\n"
                   "2026-10-01T00:02:00Z,ghost,web,true,0.1,\n"
                   "2026-10-01T00:03:00Z,dhis2,web,maybe,0.1,\n")
    with pytest.raises(ValidationError) as caught:
        import_history(database, bad)
    text = "\n".join(caught.value.problems)
    assert "bad.csv:3: a timestamp needs a time zone" in text
    assert "bad.csv:4: no check 'web' of programme 'ghost'" in text
    assert "bad.csv:5: success must be" in text
    with database.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM probe_result")).scalar() == 0
    with pytest.raises(UserError, match="lacks"):
        (tmp_path / "noheader.csv").write_text("a,b\n1,2\n")
        import_history(database, tmp_path / "noheader.csv")


def test_probe_cli(cli, tmp_path):
    with http_server({"/ok": Respond(200)}) as server:
        cli("inventory", "load", inventory_with(tmp_path, {
            "dhis2": [{"name": "web", "kind": "http", "target": server.url("/ok")}]}))
        summary = json.loads(cli("probe", "run", "--once", "--successes", "1", "-o", "json").stdout)
        assert (summary["checks"], summary["succeeded"]) == (1, 1)
        status = json.loads(cli("probe", "status", "-o", "json").stdout)
        assert status == [
            {"programme": "dhis2", "ministry": "moh", "state": "up", "since": status[0]["since"], "reason": ""},
            {"programme": "digital-id", "ministry": "mtc", "state": "unmonitored", "since": None,
             "reason": "no check: not monitored"},
            {"programme": "e-gov-portal", "ministry": "mtc", "state": "unmonitored", "since": None,
             "reason": "no check: not monitored"}]
        table = cli("probe", "status").stdout
        assert "unmonitored" in table and max(len(line) for line in table.splitlines()) <= 80
        assert "between 1 and 100" in cli("probe", "run", "--once", "--failures", "0", expect=2).stderr


def test_import_refuses_future_results_broken_csv_and_takes_a_byte_order_mark(database, tmp_path):
    load_directory(database, inventory_with(tmp_path, {
        "dhis2": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:9/"}]}))
    header = "timestamp,programme,check,success,duration,reason\n"
    future = tmp_path / "future.csv"
    future.write_text(header + "2099-01-01T00:00:00Z,dhis2,web,false,0.1,\n")
    with pytest.raises(ValidationError) as caught:
        import_history(database, future)
    assert "is in the future" in caught.value.problems[0]
    broken = tmp_path / "broken.csv"
    broken.write_text(header + "2026-10-01T00:00:00Z,dhis2,web,true,0.1," + "x" * 200_000 + "\n")
    with pytest.raises(UserError, match=r"broken.csv:2: not valid CSV"):
        import_history(database, broken)
    with database.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM probe_result")).scalar() == 0
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + (header + "2026-10-01T00:00:00Z,dhis2,web,true,0.1,\n").encode())
    assert import_history(database, excel).rows == 1


def test_a_ca_file_that_is_not_one_is_a_one_line_error(cli, tmp_path):
    with http_server({"/ok": Respond(200)}) as server:
        cli("inventory", "load", inventory_with(tmp_path, {
            "dhis2": [{"name": "web", "kind": "http", "target": server.url("/ok")}]}))
        for ca_file in (tmp_path / "missing.pem", tmp_path):
            result = cli("probe", "run", "--once", "--ca-file", ca_file, expect=2)
            assert "--ca-file: cannot load" in result.stderr and result.stderr.count("\n") == 1
        assert cli("probe", "status", "--output", "csv").stdout.startswith("programme,ministry,state,since,reason")
