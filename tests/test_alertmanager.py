"""Alertmanager: a silence for each maintenance window (created, pending while Alertmanager is down,
retried, expired on cancel), and its webhook's DcopsProgrammeDown alerts in `incident show`.

The real-server tests start Debian's prometheus-alertmanager on loopback with a config under tmp_path."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from dcops import alertmanager as am
from dcops import incidents
from dcops.audit import verify
from dcops.daemon import sync_silences_every
from dcops.db import iso_utc
from dcops.errors import Conflict, UserError
from dcops.inventory.service import load_directory
from dcops.lifecycle import SILENCE_TRANSITIONS, require_move
from dcops.maintenance import add_window, cancel_window, silence_of
from dcops.metrics.server import WEBHOOK_PATH, MetricsServer
from dcops.models import Programme, StateInterval, alertmanager_alert_table, alertmanager_silence_table

import inventories
from promservers import Alertmanager
from servers import Respond, http_server, refused_port

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)
SECRET = "s3cret-shared-with-alertmanager-0123456789"


def base_without_checks() -> dict:
    """The small inventory without endpoints: nothing for `dcops serve` to probe."""
    documents = inventories.base()
    for document in ("programmes/moh.yaml", "programmes/mtc.yaml"):
        for programme in documents[document]["programmes"]:
            programme.pop("endpoints", None)
    return documents


@pytest.fixture
def db(database, tmp_path):
    load_directory(database, inventories.write(tmp_path / "inv", base_without_checks()))
    return database


def silence_row(db, window_id: int):
    with db.transaction() as conn:
        return conn.execute(sa.select(alertmanager_silence_table)
                            .where(alertmanager_silence_table.c.window_id == window_id)).one()


def window(db, client, *, programme="dhis2", cluster=None, start=NOW + timedelta(days=1), hours=2, now=None):
    return add_window(db, programme=None if cluster else programme, cluster=cluster, starts_at=start,
                      ends_at=start + timedelta(hours=hours), reason="database minor upgrade", change_ref="CHG-1042",
                      actor="ops", alertmanager=client, now=now)


# --- pure parts -------------------------------------------------------------------------------


def test_one_programme_is_an_equality_matcher_and_a_cluster_one_escaped_regex():
    assert am.programme_matchers(["dhis2"]) == [
        {"name": "programme", "value": "dhis2", "isRegex": False, "isEqual": True}]
    (matcher,) = am.programme_matchers(["e-gov.portal", "dhis2", "dhis2", "a+b"])
    assert matcher["isRegex"] and matcher["value"] == r"a\+b|dhis2|e-gov\.portal"
    # Alertmanager anchors the regex: it selects each name whole, and nothing else.
    for name in ("a+b", "dhis2", "e-gov.portal"):
        assert re.fullmatch(matcher["value"], name)
    for other in ("aab", "e-govxportal", "dhis22", "xdhis2"):
        assert not re.fullmatch(matcher["value"], other)
    with pytest.raises(ValueError):
        am.programme_matchers([])


def test_the_silence_body_names_the_change_and_finds_its_own_again():
    body = am.silence_body(window_id=7, starts_at=datetime(2026, 12, 5, 15, tzinfo=UTC),
                           ends_at=datetime(2026, 12, 5, 19, tzinfo=UTC), change_ref="CHG-1042",
                           reason="database minor upgrade", slugs=["dhis2"])
    assert body["startsAt"] == "2026-12-05T15:00:00Z" and body["endsAt"] == "2026-12-05T19:00:00Z"
    assert body["createdBy"] == "dcops"
    assert body["comment"] == "CHG-1042: database minor upgrade (dcops maintenance window 7)"
    held = [{"id": "old", "createdBy": "dcops", "comment": body["comment"], "status": {"state": "expired"}},
            {"id": "else", "createdBy": "alice", "comment": body["comment"], "status": {"state": "active"}},
            {"id": "w17", "createdBy": "dcops", "comment": "x (dcops maintenance window 17)",
             "status": {"state": "active"}},
            {"id": "mine", "createdBy": "dcops", "comment": body["comment"], "status": {"state": "pending"}}]
    assert am.ours(held, 7) == "mine" and am.ours(held[:3], 7) is None


def test_the_silence_lifecycle_moves_only_forward():
    require_move(SILENCE_TRANSITIONS, "s", "pending", "created")
    require_move(SILENCE_TRANSITIONS, "s", "created", "expiring")
    for frm, to in (("created", "pending"), ("expired", "created"), ("failed", "pending"), ("withdrawn", "created")):
        with pytest.raises(Conflict):
            require_move(SILENCE_TRANSITIONS, "s", frm, to)


def notification(*alerts, receiver="dcops") -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": receiver, "groupKey": "{}:{}",
                       "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://am", "alerts": list(alerts)}).encode()


def alert(programme="dhis2", status="firing", starts="2026-12-05T15:05:00.123456789Z", ends="0001-01-01T00:00:00Z",
          fingerprint="a1b2c3d4e5f60718", name="DcopsProgrammeDown"):
    return {"status": status, "labels": {"alertname": name, "programme": programme, "severity": "page"},
            "annotations": {}, "startsAt": starts, "endsAt": ends, "generatorURL": "", "fingerprint": fingerprint}


def test_the_webhook_payload_is_read_with_go_times_and_refused_in_one_line():
    parsed = am.parse_webhook(notification(alert(), alert(status="resolved", ends="2026-12-05T16:00:00+07:00")))
    assert parsed.receiver == "dcops"
    first, second = parsed.alerts
    assert first.starts_at == datetime(2026, 12, 5, 15, 5, 0, 123456, tzinfo=UTC) and first.ends_at is None
    assert (first.programme, first.alertname, first.severity, first.status) == ("dhis2", "DcopsProgrammeDown",
                                                                                 "page", "firing")
    assert second.ends_at == datetime(2026, 12, 5, 9, tzinfo=UTC)
    for body, said in ((b"{", "not JSON"), (b"[]", "no list of alerts"),
                       (notification(alert(status="pending")), "firing or resolved"),
                       (notification(alert(fingerprint="../../x")), "no fingerprint"),
                       (notification(alert(starts="yesterday")), "not a time")):
        with pytest.raises(UserError, match=said) as raised:
            am.parse_webhook(body)
        assert "\n" not in str(raised.value)


# --- silences against servers that say no -----------------------------------------------------


def test_a_refusing_alertmanager_fails_the_silence_and_a_down_one_leaves_it_pending(any_database, tmp_path):
    db = any_database
    load_directory(db, inventories.write(tmp_path / "inv", base_without_checks()))
    said = b'"silence invalid: invalid label matcher 0"'
    with http_server({"/api/v2/silences": Respond(400, said)}) as refusing:
        refused = window(db, am.AlertmanagerClient(refusing.url("")))
    row = silence_row(db, refused.id)
    assert row.state == "failed" and "refused it (400): silence invalid" in row.last_error
    with http_server({"/api/v2/silences": Respond(503, b"overloaded")}) as failing:
        client = am.AlertmanagerClient(failing.url(""))
        down = window(db, client)
        assert silence_row(db, down.id).state == "pending"
        # Failed silences are not tried again; the pending one is, once due.
        assert am.sync_silences(db, client, now=datetime.now(UTC) + timedelta(seconds=61)) == [
            am.SilenceOutcome(down.id, "pending", None, f"Alertmanager at {client.url} answered 503: overloaded")]
    row = silence_row(db, down.id)
    assert row.state == "pending" and row.attempts == 2 and "answered 503" in row.last_error
    # Cancelled while Alertmanager is down: expiring, kept due; an id Alertmanager no longer holds
    # (it lost its storage; 0.25 answers 500 "silence not found") is as good as expired.
    with http_server({"/api/v2/silences": Respond(200, b'{"silenceID":"5f0c6b5e"}')}) as taking:
        taken = window(db, am.AlertmanagerClient(taking.url("")), programme="digital-id")
    assert silence_of(db, taken.id)["state"] == "created"
    with http_server({"/api/v2/silence/5f0c6b5e": Respond(503, b"down for upgrade")}) as failing:
        cancel_window(db, taken.id, actor="ops", alertmanager=am.AlertmanagerClient(failing.url("")))
    assert silence_of(db, taken.id)["state"] == "expiring"
    with http_server({"/api/v2/silence/5f0c6b5e": Respond(500, b'"silence not found"\n')}) as forgetful:
        (outcome,) = am.sync_silences(db, am.AlertmanagerClient(forgetful.url("")))
    assert (outcome.state, outcome.silence_id) == ("expired", "5f0c6b5e")
    with refused_port() as port:
        unreachable = window(db, am.AlertmanagerClient(f"http://127.0.0.1:{port}"), programme="digital-id")
    assert "cannot be reached" in silence_row(db, unreachable.id).last_error
    # Cancelled before Alertmanager took it: withdrawn, nothing to expire; the audit chain holds it all.
    cancel_window(db, unreachable.id, actor="ops")
    assert silence_of(db, unreachable.id)["state"] == "withdrawn"
    with db.transaction() as conn:
        assert verify(conn).ok
        actions = [r.action for r in conn.execute(sa.text(
            "SELECT action FROM audit_entry WHERE object_type = 'maintenance' AND object_key = :key ORDER BY id"),
            {"key": str(unreachable.id)})]
    assert actions == ["maintenance.added", "maintenance.silence-pending", "maintenance.cancelled",
                       "maintenance.silence-withdrawn"]


def test_a_window_already_over_or_without_alertmanager_gets_no_silence_and_an_empty_cluster_none(db):
    with refused_port() as port:
        client = am.AlertmanagerClient(f"http://127.0.0.1:{port}")
        past = window(db, client, start=NOW - timedelta(hours=3))
        assert silence_of(db, past.id) is None
        assert silence_of(db, window(db, None).id) is None
        with db.transaction(immediate=True) as conn:
            conn.execute(sa.text("INSERT INTO cluster (name, site_id, description) "
                                 "SELECT 'empty', site_id, '' FROM cluster LIMIT 1"))
        empty = window(db, client, cluster="empty")
    assert silence_of(db, empty.id) == {**silence_of(db, empty.id), "state": "withdrawn",
                                        "last_error": "no programme on cluster empty to silence"}


# --- the webhook path of dcops serve's server --------------------------------------------------


def post(url: str, body: bytes, secret: str | None = SECRET, **headers) -> httpx.Response:
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return httpx.post(url, content=body, headers=headers, timeout=5)


def test_the_webhook_checks_its_secret_and_body_and_records_each_alert_once(db, tmp_path):
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    with MetricsServer(db, port=0) as plain:
        assert post(plain.url.replace("/metrics", WEBHOOK_PATH), notification(alert())).status_code == 404
    with MetricsServer(db, port=0, webhook_secret_file=secret_file) as server:
        url = server.webhook_url
        assert post(url, notification(alert()), secret=None).status_code == 401
        assert post(url, notification(alert()), secret=SECRET[:-1]).status_code == 401
        assert post(url, notification(alert()), secret=SECRET + "x").status_code == 401
        assert post(url.replace("webhook", "other"), notification(alert())).status_code == 404
        assert post(url, b"{not json").status_code == 400
        assert post(url, b"x" * (am.MAX_WEBHOOK_BYTES + 1)).status_code == 400
        firing = post(url, notification(alert(), alert("e-gov-portal", name="DcopsProgrammeNoData"),
                                        alert("no-such-programme", fingerprint="ff")))
        assert firing.status_code == 200 and firing.json() == {"recorded": 1, "unchanged": 0, "ignored": 2}
        assert post(url, notification(alert())).json() == {"recorded": 0, "unchanged": 1, "ignored": 0}
        resolved = notification(alert(status="resolved", ends="2026-12-05T15:40:00Z"))
        assert post(url, resolved).json()["recorded"] == 1
        assert post(url, resolved).json()["unchanged"] == 1
        assert post(url, notification(alert())).json()["unchanged"] == 1  # a late re-send does not reopen it
    with db.transaction() as conn:
        (row,) = conn.execute(sa.select(alertmanager_alert_table)).all()
        assert verify(conn).ok
    assert (row.status, row.receiver, row.severity) == ("resolved", "dcops", "page")
    assert row.ends_at == datetime(2026, 12, 5, 15, 40, tzinfo=UTC) and row.fired_notified_at is not None
    # The incident open at the alert's start shows it; one that began later does not.
    spans(db, [("dhis2", "2026-12-05T15:00", "2026-12-05T15:41"), ("dhis2", "2026-12-05T18:00", None)])
    listed = incidents.list_incidents(db, start=datetime(2026, 12, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC),
                                      programme="dhis2")
    by_start = {i["start"]: i["number"] for i in listed}
    shown = incidents.show(db, by_start["2026-12-05T15:00:00Z"])
    assert [(a["status"], a["starts_at"], a["ends_at"], a["receiver"]) for a in shown["alerts"]] == [
        ("resolved", "2026-12-05T15:05:00Z", "2026-12-05T15:40:00Z", "dcops")]
    assert incidents.show(db, by_start["2026-12-05T18:00:00Z"])["alerts"] == []


def spans(db, rows) -> None:
    """Programme-level down intervals, written as the history store would."""
    with db.transaction(immediate=True) as conn:
        ids = dict(conn.execute(sa.select(Programme.__table__.c.slug, Programme.__table__.c.id)).all())
        conn.execute(sa.insert(StateInterval.__table__), [
            {"programme_id": ids[slug], "endpoint_id": None, "state": "down",
             "started_at": datetime.fromisoformat(start).replace(tzinfo=UTC),
             "ended_at": datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None, "reason": "refused"}
            for slug, start, end in rows])


# --- the real Alertmanager ----------------------------------------------------------------------


class Receiver:
    """A loopback webhook receiver keeping every notification it gets."""

    def __init__(self):
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def programmes(self) -> set[str]:
        return {a["labels"].get("programme") for n in self.received for a in n["alerts"]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def am_config(tmp_path: Path, webhook_url: str, secret_file: Path | None = None) -> Path:
    """An Alertmanager config: everything to one webhook, sent at once, resolved notices too."""
    hook = {"url": webhook_url, "send_resolved": True, "max_alerts": 100}
    if secret_file is not None:
        hook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(secret_file)}}
    config = {"route": {"receiver": "dcops", "group_by": ["alertname", "programme"], "group_wait": "1s",
                        "group_interval": "1s", "repeat_interval": "1h"},
              "receivers": [{"name": "dcops", "webhook_configs": [hook]}]}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    checked = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    return path


@contextmanager
def alertmanager(tmp_path: Path, port: int, config: Path):
    """Debian's prometheus-alertmanager on 127.0.0.1:`port` until the block ends: its base URL.
    The same port again is the same server restarted, its silences kept."""
    with Alertmanager(tmp_path / f"am-{port}", config, port=port) as server:
        yield server.base


def wait_for(check, what: str, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def post_alerts(url: str, *programmes: str, resolved: bool = False, starts_at: datetime | None = None) -> None:
    starts_at = starts_at or datetime.now(UTC) - timedelta(minutes=1)
    body = [{"labels": {"alertname": "DcopsProgrammeDown", "programme": p, "severity": "page"},
             "startsAt": iso_utc(starts_at),
             **({"endsAt": iso_utc(datetime.now(UTC) - timedelta(seconds=1))} if resolved else {})}
            for p in programmes]
    assert httpx.post(f"{url}/api/v2/alerts", json=body, timeout=5).status_code == 200


def alert_states(url: str) -> dict[str, str]:
    return {a["labels"]["programme"]: a["status"]["state"] for a in httpx.get(f"{url}/api/v2/alerts", timeout=5).json()}


def am_silences(url: str) -> dict[str, dict]:
    return {s["id"]: s for s in httpx.get(f"{url}/api/v2/silences", timeout=5).json()}


def dcops(cli, *args, alertmanager_url: str, expect: int = 0):
    from dcops.cli.main import app

    result = cli.runner.invoke(app, [str(a) for a in args], catch_exceptions=False,
                               env={**cli.env, "DCOPS_ALERTMANAGER_URL": alertmanager_url})
    assert result.exit_code == expect, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_a_window_silences_its_programmes_in_alertmanager_until_cancelled(cli, tmp_path, unused_port):
    cli("inventory", "load", inventories.write(tmp_path / "inv", base_without_checks()))
    receiver = Receiver()
    try:
        with alertmanager(tmp_path, unused_port, am_config(tmp_path, receiver.url)) as url:
            start = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            end = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            added = dcops(cli, "maintenance", "add", "dhis2", "--start", start, "--end", end, "--reason",
                          "database minor upgrade", "--change-ref", "CHG-1042", "-o", "json", alertmanager_url=url)
            now_window = json.loads(added.stdout)
            assert now_window["silence"]["state"] == "created"
            silence = am_silences(url)[now_window["silence"]["silence_id"]]
            assert silence["matchers"] == [{"name": "programme", "value": "dhis2", "isRegex": False, "isEqual": True}]
            assert silence["comment"].startswith("CHG-1042: database minor upgrade") and silence["createdBy"] == "dcops"
            assert silence["status"]["state"] == "active"

            post_alerts(url, "dhis2", "e-gov-portal")
            wait_for(lambda: "e-gov-portal" in receiver.programmes(), "the other programme's alert delivered")
            assert alert_states(url) == {"dhis2": "suppressed", "e-gov-portal": "active"}
            time.sleep(1.5)  # a group interval more: the silenced alert is still not sent
            assert receiver.programmes() == {"e-gov-portal"}

            # A cluster's window silences each of its programmes (one regex), none other.
            tomorrow = datetime.now(UTC) + timedelta(days=1)
            cluster = json.loads(dcops(cli, "maintenance", "add", "--cluster", "gen-a", "--start",
                                       f"{tomorrow:%Y-%m-%dT%H:%M}Z", "--end",
                                       f"{tomorrow + timedelta(hours=2):%Y-%m-%dT%H:%M}Z", "--reason",
                                       "hypervisor patching", "--change-ref", "CHG-1043", "-o", "json",
                                       alertmanager_url=url).stdout)
            pending_in_am = am_silences(url)[cluster["silence"]["silence_id"]]
            assert pending_in_am["status"]["state"] == "pending"  # Alertmanager's word: not begun yet
            (matcher,) = pending_in_am["matchers"]
            assert matcher["isRegex"] and {"dhis2", "digital-id"} == {
                name for name in ("dhis2", "digital-id", "e-gov-portal") if re.fullmatch(matcher["value"], name)}

            listed = json.loads(dcops(cli, "maintenance", "list", "-o", "json", alertmanager_url=url).stdout)
            assert [(w["change_ref"], w["silence"]["state"]) for w in listed] == [("CHG-1042", "created"),
                                                                                   ("CHG-1043", "created")]
            cancelled = dcops(cli, "maintenance", "cancel", cluster["id"], alertmanager_url=url)
            assert "expired" in cancelled.stdout
            assert am_silences(url)[cluster["silence"]["silence_id"]]["status"]["state"] == "expired"
            table = dcops(cli, "maintenance", "list", "--all", alertmanager_url=url).stdout
            assert re.search(r"CHG-1043\s+cancelled\s+expired", table), table
    finally:
        receiver.close()


@pytest.mark.slow
def test_a_window_recorded_while_alertmanager_is_down_is_silenced_once_it_is_back(cli, tmp_path, unused_port):
    cli("inventory", "load", inventories.write(tmp_path / "inv", base_without_checks()))
    url = f"http://127.0.0.1:{unused_port}"
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    for programme, change in (("digital-id", "CHG-7"), ("dhis2", "CHG-8")):
        added = dcops(cli, "maintenance", "add", programme, "--start", f"{tomorrow:%Y-%m-%dT%H:%M}Z", "--end",
                      f"{tomorrow + timedelta(hours=1):%Y-%m-%dT%H:%M}Z", "--reason", "certificate renewal",
                      "--change-ref", change, alertmanager_url=url)
        assert "recorded" in added.stdout and "silence is pending" in added.stderr
    table = dcops(cli, "maintenance", "list", alertmanager_url=url).stdout
    assert re.search(r"CHG-7\s+pending", table) and "window 1: silence pending: Alertmanager at" in table \
        and "cannot be reached" in table, table
    from dcops.db import open_database

    database = open_database(cli.settings)
    receiver = Receiver()
    stop = threading.Event()
    try:
        with alertmanager(tmp_path, unused_port, am_config(tmp_path, receiver.url)):
            client = am.AlertmanagerClient(url)
            # Window 2's first attempt reached Alertmanager, as if it died before writing the id down.
            twin = client.create_silence(am.silence_body(
                window_id=2, starts_at=tomorrow, ends_at=tomorrow + timedelta(hours=1), change_ref="CHG-8",
                reason="certificate renewal", slugs=["dhis2"]))
            # `dcops serve`'s loop, a round every 0.2 s rather than every minute.
            retry = threading.Thread(target=sync_silences_every, args=(database, stop, client),
                                     kwargs={"interval_s": 0.2})
            retry.start()
            wait_for(lambda: all(silence_of(database, i)["state"] == "created" for i in (1, 2)),
                     "the retry to create the silences", 10)
            stop.set()
            retry.join(timeout=10)
            held = am_silences(url)
            assert len(held) == 2 and silence_of(database, 2)["silence_id"] == twin  # taken, not made twice
            assert held[silence_of(database, 1)["silence_id"]]["comment"].startswith("CHG-7")
            assert silence_of(database, 1)["last_error"] == ""
    finally:
        stop.set()
        receiver.close()
        database.dispose()


@pytest.mark.slow
def test_alertmanager_pages_reach_dcops_serve_and_incident_show(cli, tmp_path, unused_port):
    """Alertmanager delivers a DcopsProgrammeDown firing, then resolved, to `dcops serve`'s webhook."""
    cli("inventory", "load", inventories.write(tmp_path / "inv", base_without_checks()))
    from dcops.db import open_database

    database = open_database(cli.settings)
    began = datetime.now(UTC) - timedelta(minutes=10)
    spans(database, [("digital-id", f"{began:%Y-%m-%dT%H:%M:%S}", None)])
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    am_port = free_port()
    serve_url = f"http://127.0.0.1:{unused_port}"
    env = {**os.environ, **cli.env, "DCOPS_ALERTMANAGER_WEBHOOK_SECRET_FILE": str(secret_file),
           "DCOPS_ALERTMANAGER_URL": f"http://127.0.0.1:{am_port}"}
    process = subprocess.Popen([sys.executable, "-m", "dcops", "serve", "--port", str(unused_port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ready_serve(serve_url), "dcops serve")
        config = am_config(tmp_path, f"{serve_url}{WEBHOOK_PATH}", secret_file)
        with alertmanager(tmp_path, am_port, config) as url:
            post_alerts(url, "digital-id", starts_at=began + timedelta(minutes=5))
            wait_for(lambda: stored_alert(database) == "firing", "the firing alert recorded")
            post_alerts(url, "digital-id", resolved=True, starts_at=began + timedelta(minutes=5))
            wait_for(lambda: stored_alert(database) == "resolved", "the resolved alert recorded")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err, err
    assert f"silences in Alertmanager at http://127.0.0.1:{am_port}; Alertmanager webhook at {serve_url}" \
           f"{WEBHOOK_PATH}" in err, err
    shown = json.loads(cli("incident", "show", "1", "-o", "json").stdout)
    (paged,) = shown["alerts"]
    assert (paged["alertname"], paged["status"], paged["receiver"]) == ("DcopsProgrammeDown", "resolved", "dcops")
    assert paged["fired_notified_at"] <= paged["resolved_notified_at"]
    text = cli("incident", "show", "1").stdout
    assert "alerts (Alertmanager)" in text and "sent to dcops at" in text and "resolved" in text
    database.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ready_serve(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def stored_alert(database) -> str | None:
    with database.transaction() as conn:
        return conn.execute(sa.select(alertmanager_alert_table.c.status)).scalar()
