"""The scale path with the real servers: Prometheus probing through blackbox_exporter, `dcops probe sync`
reading it back into the history store.

1. A day of probe_success backfilled into Prometheus (promtool) reads back into exactly the intervals
   dcops' own store makes of the same results, in two syncs (resumed) as in one; a third sync of the
   same day changes nothing.
2. blackbox_exporter probes loopback targets that go down and up on a schedule, Prometheus scrapes
   it through the file_sd file of `dcops metrics targets` and the job of `dcops metrics scrape-config`,
   dcops' own prober probes the same targets into a second database, and the sync's availability
   agrees with the prober's within one interval per edge.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from dcops.db import open_database, upgrade
from dcops.health.history import Thresholds, availability
from dcops.health.importer import ImportedResult
from dcops.health.store import load_checks, record_results
from dcops.inventory.service import load_directory, retire_programme
from dcops.settings import Settings

import inventories
from conftest import Cli
from promservers import Prometheus, backfill, blackbox_through_prometheus, openmetrics_gauge
from servers import Respond, http_server

pytestmark = pytest.mark.slow
UTC = timezone.utc
REASON = "probe failed (Prometheus)"


def _inventory(directory: Path, endpoints: dict[str, list[dict]]) -> Path:
    files = inventories.base()
    programmes = {p["slug"]: p for f in ("programmes/moh.yaml", "programmes/mtc.yaml")
                  for p in files[f]["programmes"]}
    for slug, checks in endpoints.items():
        programmes[slug]["endpoints"] = checks
    files["programmes/moh.yaml"]["programmes"].append({
        "slug": "old-hmis", "name": "Old HMIS", "ministry": "moh", "tier": 3, "classification": "internal",
        "contacts": {"owner": "hmis@moh.example.la", "security": "sec@moh.example.la"},
        "endpoints": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:18009/"}],
    })
    return inventories.write(directory, files)


def _fresh(tmp_path: Path, name: str, inventory: Path):
    home = tmp_path / name
    home.mkdir()
    settings = Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{home / 'dcops.db'}", "DCOPS_HOME": str(home)})
    upgrade(settings)
    database = open_database(settings)
    load_directory(database, inventory, actor="test")
    retire_programme(database, "old-hmis", actor="test")
    return settings, database


def _history(database) -> dict:
    """Every interval, check state and incident, by names rather than ids."""
    with database.transaction() as conn:
        intervals = conn.execute(sa.text(
            "SELECT p.slug, COALESCE(e.name, ''), i.state, i.started_at, i.ended_at, i.reason FROM state_interval i "
            "JOIN programme p ON p.id = i.programme_id LEFT JOIN endpoint e ON e.id = i.endpoint_id "
            "ORDER BY p.slug, 2, i.started_at")).all()
        states = conn.execute(sa.text(
            "SELECT p.slug, e.name, s.state, s.since, s.fail_streak, s.ok_streak, s.last_at, s.last_success "
            "FROM check_state s JOIN endpoint e ON e.id = s.endpoint_id JOIN programme p ON p.id = e.programme_id "
            "ORDER BY p.slug, e.name")).all()
        incidents = conn.execute(sa.text(
            "SELECT p.slug, i.started_at, i.ended_at FROM incident i JOIN programme p ON p.id = i.programme_id "
            "ORDER BY p.slug, i.started_at")).all()
    return {"intervals": [tuple(r) for r in intervals], "states": [tuple(r) for r in states],
            "incidents": [tuple(r) for r in incidents]}


def _programme_intervals(database, slug: str) -> list[tuple[str, datetime, datetime | None]]:
    from dcops.db import read_utc

    with database.transaction() as conn:
        rows = conn.execute(sa.text(
            "SELECT i.state, i.started_at, i.ended_at FROM state_interval i JOIN programme p ON p.id = i.programme_id "
            "WHERE p.slug = :slug AND i.endpoint_id IS NULL ORDER BY i.started_at"), {"slug": slug}).all()
        return [(state, read_utc(conn, began), read_utc(conn, ended)) for state, began, ended in rows]


def _audit_entries(cli: Cli) -> list[dict]:
    return [e for e in json.loads(cli("audit", "list", "--output", "json").stdout) if e["action"] == "probe.synced"]


# --- 1. a backfilled day, read back exactly --------------------------------------------------

DAY_STEPS = 1440


def _day(k: int, check: str) -> float | None:
    """The probe_success of each check at minute k of the day (1..1440); None: no sample."""
    if check == "dhis2/web":
        if 600 <= k < 630:
            return None  # the prober stopped for half an hour
        return 0.0 if 300 <= k < 317 else 1.0  # a 17-minute outage
    if check == "dhis2/db":
        return 0.0 if 900 <= k < 905 or k == 1000 else 1.0  # 5 minutes down, then one failure (damped)
    if check == "digital-id/api":
        return 0.0 if 1300 <= k < 1310 else 1.0
    return 1.0


def test_a_backfilled_day_reads_back_exactly_resumably_and_once(tmp_path):
    inventory = _inventory(tmp_path / "inv", {
        "dhis2": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:18001/healthz"},
                  {"name": "db", "kind": "tcp", "target": "127.0.0.1:18003"}]})
    settings, database = _fresh(tmp_path, "synced", inventory)
    _, truth = _fresh(tmp_path, "truth", inventory)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day0 = int((today - timedelta(days=20)).timestamp())  # a midnight, so minute k is the step ending at k

    checks = ("dhis2/web", "dhis2/db", "digital-id/api", "ghost/web", "old-hmis/web")
    series = []
    for name in checks:
        programme, check = name.split("/")
        samples = []
        for k in range(1, DAY_STEPS + 1):
            if name == "digital-id/api" and k == 1200:
                samples.append((day0 + k * 60 - 30, 0.0))  # two samples in one step, one failed: mixed
            value = _day(k, name)
            if value is not None:
                samples.append((day0 + k * 60, value))
        labels = {"job": "dcops-blackbox", "programme": programme, "check": check, "instance": f"{name}.example"}
        series.append((labels, samples))
    tsdb = backfill(tmp_path / "tsdb", openmetrics_gauge("probe_success", series))

    # The truth: the same results through the store as dcops' own prober writes them (a mixed step is a failure).
    with truth.transaction(immediate=True) as conn:
        rows = load_checks(conn)
        results = [ImportedResult(row.endpoint_id, datetime.fromtimestamp(day0 + k * 60, UTC), ok, 0.0,
                                  "" if ok else REASON)
                   for row in rows for k in range(1, DAY_STEPS + 1)
                   if (value := _day(k, f"{row.programme}/{row.name}")) is not None
                   for ok in [value == 1.0 and not (row.programme == "digital-id" and k == 1200)]]
        record_results(conn, rows, results, thresholds=Thresholds())
    expected = _history(truth)

    cli = Cli(settings)
    start, middle, end = (datetime.fromtimestamp(day0 + s, UTC).isoformat() for s in (0, 43_210, DAY_STEPS * 60))
    with Prometheus(tmp_path / "prom", {"global": {"scrape_interval": "1m"}}, storage=tsdb) as prometheus:
        first = json.loads(cli("probe", "sync", "--prometheus", prometheus.base, "--from", start, "--to", middle,
                               "--output", "json").stdout)
        second = json.loads(cli("probe", "sync", "--prometheus", prometheus.base, "--to", end, "--output",
                                "json").stdout)
        assert _history(database) == expected  # two syncs, the second resumed: the truth exactly
        audits = _audit_entries(cli)
        again = cli("probe", "sync", "--prometheus", prometheus.base, "--from", start, "--to", end)
        again_json = json.loads(cli("probe", "sync", "--prometheus", prometheus.base, "--from", start, "--to", end,
                                    "--output", "json").stdout)

    assert first["last"] == datetime.fromtimestamp(day0 + 720 * 60, UTC).isoformat().replace("+00:00", "Z")
    assert (first["results"], second["results"]) == (3 * 720 - 30, 3 * 720)  # the first half lacks half an hour
    assert first["steps"]["mixed"] + second["steps"]["mixed"] == 1
    assert first["steps"]["down"] + second["steps"]["down"] == 17 + 6 + 10  # the mixed step apart
    assert first["unmatched"] == ["ghost/web"] and first["ignored"] == 1  # old-hmis is retired
    assert first["wrote"] and second["wrote"] and len(audits) == 2
    assert audits[0]["after"]["results"] == first["results"]

    # The same day again: nothing written, nothing audited. Every result falls in measured time but
    # the first of each check and the first after the gap, which were not enough to make a state.
    assert "nothing new" in again.stdout
    assert again_json["wrote"] is False and again_json["filled_time"] is False and again_json["results"] == 0
    assert (again_json["backfilled"], again_json["measured"]) == (4, 3 * DAY_STEPS - 30 - 4)
    # what damping held back: the 1st and 2nd failure of each outage, its 1st success after, the lone failure
    assert again_json["disagreeing"] == {"dhis2/web": 3, "dhis2/db": 3 + 1, "digital-id/api": 3 + 1}
    assert _history(database) == expected and _audit_entries(cli) == audits

    # Hand-computed: dhis2 down from the 3rd failure (minute 302) to the 2nd success (318), and from 902
    # to 906; unknown from one interval after the last result before the gap (600) to the 2nd after (631).
    day = availability(_programme_intervals(database, "dhis2"), datetime.fromtimestamp(day0 + 120, UTC),
                       datetime.fromtimestamp(day0 + DAY_STEPS * 60, UTC),
                       now=datetime.fromtimestamp(day0 + DAY_STEPS * 60, UTC))
    assert (day.down_seconds, day.unknown_seconds) == (20 * 60, 31 * 60)
    assert day.up_seconds == (DAY_STEPS - 2 - 20 - 31) * 60


# --- 2. blackbox_exporter and dcops' prober on the same flapping targets ----------------------

INTERVAL = 1  # s, every check's (set in the database: the inventory's floor is 10 s)
# (seconds from the start, http answers 200?, tcp accepts?)
SCHEDULE = ((0, True, True), (8, False, True), (16, True, True), (20, True, False), (28, True, True),
            (32, False, False), (38, True, True))
RUN_SECONDS = 42


class SwitchedListener:
    """A TCP port on 127.0.0.1 that accepts connections while up and refuses them while down."""

    def __init__(self) -> None:
        self.port = None
        self.sock = None
        self.stopping = threading.Event()
        self.thread = None
        self.up()

    def up(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or 0))
        sock.listen(64)
        sock.settimeout(0.05)
        self.port = sock.getsockname()[1]
        self.sock = sock
        stop = threading.Event()
        self.stopping = stop

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, _ = sock.accept()
                except (TimeoutError, OSError):
                    continue
                connection.close()

        self.thread = threading.Thread(target=accept, daemon=True)
        self.thread.start()

    def down(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def _every_second(*databases) -> None:
    """Every check probed each INTERVAL with a half-second timeout (below the inventory's floor)."""
    for database in databases:
        with database.transaction() as conn:
            conn.execute(sa.text("UPDATE endpoint SET interval_seconds = :i, timeout_seconds = 0.5"), {"i": INTERVAL})


def _blackbox_through_prometheus(tmp_path: Path, cli: Cli):
    return blackbox_through_prometheus(tmp_path / "servers", lambda *args: cli(*args).stdout)


def _down_seconds(intervals, start: datetime, end: datetime) -> float:
    return availability(intervals, start, end, now=end).down_seconds


def test_blackbox_through_prometheus_agrees_with_the_prober(tmp_path):
    from dcops.health.prober import Scheduler

    tcp = SwitchedListener()
    try:
        with http_server({"/healthz": Respond(200)}) as web:
            inventory = _inventory(tmp_path / "inv", {
                "dhis2": [{"name": "web", "kind": "http", "target": web.url("/healthz")}],
                "digital-id": [{"name": "api", "kind": "tcp", "target": f"127.0.0.1:{tcp.port}"}]})
            settings, database = _fresh(tmp_path, "synced", inventory)
            _, own = _fresh(tmp_path, "own", inventory)
            _every_second(database, own)
            cli = Cli(settings)
            with _blackbox_through_prometheus(tmp_path, cli) as (prometheus, targets):
                assert {g["labels"]["__scrape_interval__"] for g in json.loads(targets.read_text())} == {"1s"}
                prometheus.wait_for(lambda: len(prometheus.query('probe_success{job="dcops-blackbox"}')) == 2,
                                    "probe_success of both targets")
                stop = threading.Event()
                scheduler = Scheduler(own, thresholds=Thresholds(), flush_seconds=0.5)
                prober = threading.Thread(target=lambda: __import__("asyncio").run(scheduler.run(stop)))
                began = datetime.now(UTC)
                prober.start()
                try:
                    clock = time.monotonic()
                    for offset, web_up, tcp_up in SCHEDULE:
                        time.sleep(max(0.0, clock + offset - time.monotonic()))
                        web.routes["/healthz"] = Respond(200) if web_up else Respond(503, b"down\n")
                        if tcp_up and tcp.sock.fileno() == -1:
                            tcp.up()
                        elif not tcp_up and tcp.sock.fileno() != -1:
                            tcp.down()
                    time.sleep(max(0.0, clock + RUN_SECONDS - time.monotonic()))
                finally:
                    stop.set()
                    prober.join(30)
                ended = datetime.now(UTC)
                time.sleep(2 * INTERVAL + 1)  # the last scrapes are in
                summary = json.loads(cli("probe", "sync", "--prometheus", prometheus.base, "--from",
                                         began.isoformat(), "--to", ended.isoformat(), "--output", "json").stdout)
                again = json.loads(cli("probe", "sync", "--prometheus", prometheus.base, "--to",
                                       ended.isoformat(), "--output", "json").stdout)
    finally:
        if tcp.sock.fileno() != -1:
            tcp.down()

    assert summary["checks"] == 2 and summary["wrote"] and summary["unmatched"] == []
    assert summary["steps"]["down"] >= 20
    assert again["wrote"] is False
    # Compare where both engines had settled: from 6 s after the start to 2 s before the end.
    lo, hi = began + timedelta(seconds=6), began + timedelta(seconds=RUN_SECONDS - 2)
    for slug, outages in (("dhis2", 2), ("digital-id", 2)):
        synced, probed = _programme_intervals(database, slug), _programme_intervals(own, slug)
        assert [s for s, _, _ in synced if s != "unknown"][-2 * outages - 1:] == \
            [s for s, _, _ in probed if s != "unknown"][-2 * outages - 1:], (synced, probed)
        down_synced, down_probed = _down_seconds(synced, lo, hi), _down_seconds(probed, lo, hi)
        # each outage's two edges may each fall one interval apart (and the prober's round a little late)
        assert abs(down_synced - down_probed) <= 2 * outages * (INTERVAL + 0.25), (slug, down_synced, down_probed)
        assert down_synced >= 4 * outages  # the outages were seen at all (6 and 8 s, less the damping)


# --- 3. dcops serve with Prometheus as the probing engine -------------------------------------


def _serve(settings: Settings, prometheus_url: str, port: int):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DCOPS_DATABASE_URL": settings.database_url, "DCOPS_HOME": str(settings.home),
           "DCOPS_PROMETHEUS_URL": prometheus_url}
    return subprocess.Popen([sys.executable, "-m", "dcops", "serve", "--port", str(port), "--cache-seconds", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(process) -> str:
    import signal

    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return err


def _raw_results(database) -> int:
    with database.transaction() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM probe_result")).scalar()


def test_serve_reads_its_probes_back_from_prometheus_and_does_not_probe(tmp_path, unused_port):
    with http_server({"/healthz": Respond(503, b"down\n")}) as web:
        inventory = _inventory(tmp_path / "inv", {
            "dhis2": [{"name": "web", "kind": "http", "target": web.url("/healthz")}],
            "digital-id": [{"name": "api", "kind": "http", "target": web.url("/healthz")}]})
        settings, database = _fresh(tmp_path, "served", inventory)
        _every_second(database)
        cli = Cli(settings)
        with _blackbox_through_prometheus(tmp_path, cli) as (prometheus, _targets):
            # Down for some scrapes before dcops serve starts: its first sync reads them back but
            # the last settle's worth (the timeout, half a second and 5 s), 3 failures make down.
            prometheus.wait_for(
                lambda: len(prometheus.query('count_over_time(probe_success{job="dcops-blackbox"}[1m]) >= 12'))
                == 2, "twelve scrapes of both targets")
            process = _serve(settings, prometheus.base, unused_port)
            try:
                deadline = time.monotonic() + 30
                states = {}
                while time.monotonic() < deadline:
                    states = {slug: [s for s, _, _ in _programme_intervals(database, slug)]
                              for slug in ("dhis2", "digital-id")}
                    if all("down" in found for found in states.values()):
                        break
                    time.sleep(0.5)
            finally:
                err = _stop(process)
    assert all("down" in found for found in states.values()), (states, err)
    assert _raw_results(database) == 0  # dcops did not probe: the prober writes each result it takes
    assert "reading probes from Prometheus at " + prometheus.base in err
    assert "probe results read from Prometheus" in err and "stopped; 0 " not in err
    assert "INFO synced from Prometheus:" in err
    assert _audit_entries(cli) == []  # the service's own syncs are not audited, as its rounds are not


def test_serve_with_prometheus_unreachable_warns_and_keeps_serving(tmp_path, unused_port):
    inventory = _inventory(tmp_path / "inv", {
        "dhis2": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:18001/healthz"}]})
    settings, database = _fresh(tmp_path, "served", inventory)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    process = _serve(settings, nowhere, unused_port)
    try:
        deadline = time.monotonic() + 20
        healthy = False
        while time.monotonic() < deadline and not healthy:
            try:
                with socket.create_connection(("127.0.0.1", unused_port), timeout=1) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
                    healthy = b" 200 " in conn.recv(64)
            except OSError:
                time.sleep(0.3)
        time.sleep(1.0)
    finally:
        err = _stop(process)
    assert healthy, err
    assert err.count("WARNING not synced from Prometheus:") == 1, err
    assert _raw_results(database) == 0
