"""`dcops demo`: the whole chain in a folder of its own, one request through the portal, nothing left
running (or, with --serve, the portal and /metrics until SIGINT); refusals write nothing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

import dcops.demo
from conftest import Cli
from dcops.accounts import authenticate, list_tokens
from dcops.catalogue.requests import show_request
from dcops.db import open_database
from dcops.demo import DEMO_REQUESTS, run_demo, demo_settings
from dcops.reports.documents import resolve_period, uptime_document


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under `directory` with its size and modification time, to see that nothing changed."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


def refused(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        try:
            probe.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def hold_a_sample_port() -> socket.socket:
    """A listening socket of our own on the address of a TLS check of a programme in service in the
    sample (whose endpoints have fixed loopback ports): the first such address free just now."""
    import yaml

    from dcops.resources import sample_dir

    for path in sorted((sample_dir() / "programmes").glob("*.yaml")):
        programmes = yaml.safe_load(path.read_text(encoding="utf-8"))["programmes"]
        for endpoint in (e for p in programmes if p.get("status") == "active" for e in p["endpoints"]):
            if endpoint["kind"] != "tls":
                continue
            host, _sep, port = endpoint["target"].rpartition(":")
            held = socket.socket()
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME-WAIT of earlier runs
            try:
                held.bind((host, int(port)))
            except OSError:  # taken already (another demo?): the next one
                held.close()
                continue
            held.listen(64)
            held.setblocking(False)
            return held
    raise AssertionError("every TLS port of the sample is taken")


@pytest.mark.slow
def test_demo_runs_the_whole_chain_and_leaves_nothing_running(tmp_path, settings):
    threads_before = threading.active_count()
    lines: list[str] = []
    directory = tmp_path / "demo"
    # Someone else's server (another demo, say) on one of the sample's ports: the demo must take
    # ports of its own and never probe this one.
    theirs = hold_a_sample_port()

    try:
        result = run_demo(directory, probe_seconds=15, echo=lines.append)
        with pytest.raises(BlockingIOError):
            theirs.accept()  # a connection the demo made, even one closed since, would be waiting here
    finally:
        theirs.close()

    output = "\n".join(lines)
    for step in range(1, 9):
        assert f"[{step}/8] " in output, output
    assert lines[-1].startswith("demo finished in "), output
    assert not result.failures and not result.skipped, output
    assert result.seconds < 120

    # Nothing left running: the portal, the stand-ins, the prober, /metrics and their threads are gone.
    assert threading.active_count() == threads_before, threading.enumerate()
    metrics = urlsplit(result.metrics_url)
    assert refused(metrics.hostname, metrics.port)
    portal = urlsplit(result.portal_url)
    assert portal.hostname == "127.0.0.1" and refused(portal.hostname, portal.port)

    # The demo's accounts: a requester of moh, a security officer, an operator, with passwords made
    # for this run (none written in the code), printed at the end.
    accounts = {account.role: account for account in result.accounts}
    assert sorted(accounts) == ["operator", "requester@moh", "security-officer"], result.accounts
    requester = accounts["requester@moh"]
    assert len({account.password for account in result.accounts}) == 3
    source = Path(dcops.demo.__file__).read_text(encoding="utf-8")
    for account in result.accounts:
        assert len(account.password) >= 16 and account.password not in source
        assert re.search(rf"^ +account +{re.escape(account.name)} +password {re.escape(account.password)} "
                         rf"+\({re.escape(account.role)}\)$", output, re.M), output
        assert account.password not in repr(result)
    # One request went through the portal's HTTP API, as the requester.
    assert result.portal_request is not None
    assert (f"submitted request {result.portal_request} through the portal (HTTP API) as {requester.name}"
            in output), output
    # The sample is the national data centre's size: 50 or more programmes, probed up but the broken ones
    # (in a run this short, the outage may not have healed yet).
    assert result.metrics_series and result.metrics_series >= 50, output
    assert result.states.get("up", 0) >= 50 and result.states.get("down", 0) <= 2, output

    # The requests became active programmes through one successful sandbox job.
    # The staged outage is an incident, annotated as an operator would.
    annotated = re.search(r"incident (\d+) \(([a-z0-9-]+)\): identified", output)
    assert annotated and annotated[2] == result.outage, output
    assert result.job_status == "successful"
    assert sorted(result.programmes) == sorted(r.slug for r in DEMO_REQUESTS)
    config = demo_settings(directory)
    assert config.database_url == f"sqlite:///{directory / 'dcops.db'}"
    database = open_database(config)
    try:
        with database.transaction() as conn:
            statuses = dict(conn.execute(text(
                "SELECT slug, status FROM programme WHERE slug IN ('maternal-health-tracker', "
                "'school-grants-portal', 'customs-risk-engine')")).all())
            requests = [row[0] for row in conn.execute(text("SELECT state FROM hosting_request"))]
            job = conn.execute(text("SELECT status, sandbox FROM job")).one()
            intervals = {row[0] for row in conn.execute(text("SELECT DISTINCT interval_seconds FROM endpoint"))}
            # Per check: its probes, and how many succeeded (the stop leaves every check unknown).
            probed = ("SELECT {columns}, count(r.at), sum(CASE WHEN r.success THEN 1 ELSE 0 END) FROM endpoint e "
                      "JOIN programme p ON p.id = e.programme_id LEFT JOIN probe_result r ON r.endpoint_id = e.id "
                      "WHERE {where} GROUP BY e.id, {columns}")
            catalogue_checks = conn.execute(text(probed.format(
                columns="p.slug, e.name, e.target", where="p.slug IN ('maternal-health-tracker', "
                "'school-grants-portal', 'customs-risk-engine') AND e.name != 'web'"))).all()
            # Only programmes in service are probed: the wallet being provisioned is not.
            tls = conn.execute(text(probed.format(columns="e.target",
                                                  where="(e.kind = 'tls' OR e.target LIKE 'https:%') "
                                                        "AND p.status = 'active'"))).all()
            period = resolve_period(None, result.started_at.astimezone(config.tz).date().isoformat(),
                                    result.started_at.astimezone(config.tz).date().isoformat(), config.tz)
            from dcops.db import utcnow

            uptime = uptime_document(conn, period, tz=config.tz, now=utcnow(), data_centre_name="x",
                                     programme=result.outage)
            through_portal = show_request(conn, result.portal_request)
            others = [show_request(conn, number) for number in
                      conn.execute(text("SELECT id FROM hosting_request WHERE id != :id"),
                                   {"id": result.portal_request}).scalars()]
            tokens = list_tokens(conn, name=requester.name)
            users = dict(conn.execute(text("SELECT name, email FROM portal_user")).all())
        # The printed passwords are the accounts' own.
        for account in result.accounts:
            assert authenticate(database, account.name, account.password, client="127.0.0.1").name == account.name
    finally:
        database.dispose()
    # Its audit trail: submitted by the requester's portal name (through its API token, used once),
    # signed off and approved by the officer and the operator, whose accounts bear the same names.
    assert through_portal["programme"]["slug"] == "maternal-health-tracker", through_portal
    history = [(entry["actor"], entry["action"]) for entry in through_portal["history"]]
    assert history[:3] == [(requester.name, "request.submitted"), (accounts["security-officer"].name,
                           "request.signed-off"), (accounts["operator"].name, "request.approved")], history
    assert [t["last_used_at"] is not None and t["revoked_at"] is None for t in tokens] == [True], tokens
    # ... while the other two were library calls under names no account has.
    assert {other["history"][0]["actor"] for other in others} == {"ministry-moes", "ministry-mof"}, others
    assert sorted(users) == sorted(account.name for account in result.accounts), users
    assert statuses == {slug: "active" for slug in result.programmes}
    assert requests == ["active"] * len(DEMO_REQUESTS)
    assert tuple(job) == ("successful", True)
    # The demo's dense probing is undone afterwards: the inventory allows no interval under 10 s.
    assert 60 in intervals and min(intervals) >= 10, intervals
    # The checks approval made from the catalogue (postgres for pg-standard, ssh for the VMs) were
    # re-pointed with their hosts to loopback stand-ins, and answered.
    assert {(slug, name.rsplit("-", 1)[0]) for slug, name, _target, _n, _ok in catalogue_checks} == {
        ("maternal-health-tracker", "postgres"), ("school-grants-portal", "ssh"), ("customs-risk-engine", "ssh")}
    assert all(target.startswith("127.0.9") and probes >= 3 and ok == probes
               for _s, _n, target, probes, ok in catalogue_checks), catalogue_checks
    assert (directory / "sandbox").is_dir() and result.job_dir.is_dir()

    # The failing programme has an incident and downtime, in the figures and in both renderings.
    assert result.outage == "immunisation-registry"
    figures = uptime["programmes"][0]
    assert figures["incident_count"] >= 1 and figures["downtime_seconds"] > 0, figures
    reports = {path.name: path for path in result.reports}
    assert len(reports) == 4 and all(path.stat().st_size > 0 for path in reports.values())
    uptime_md = next(path for name, path in reports.items() if name.startswith("uptime") and name.endswith(".md"))
    uptime_html = uptime_md.with_suffix(".html")
    for path in (uptime_md, uptime_html):
        body = path.read_text(encoding="utf-8")
        assert "immunisation-registry" in body and "status 503" in body, path
        assert "CHG-DEMO-1" in body, "the announced maintenance window is in the report"
    incidents = uptime_md.read_text(encoding="utf-8").split("## Incidents", 1)[1]
    assert "Electronic immunisation registry" in incidents.split("\n## ", 1)[0]
    assert (directory / "catalogue-site" / "index.html").is_file()

    # The TLS and HTTPS stand-ins are verified against the demo's CA (passed to the prober as ca_file).
    assert len(tls) >= 30 and [row for row in tls if not 3 <= row[1] == row[2]] == [], tls

    # A second run into the same, now non-empty, folder: one line, exit 2, nothing written.
    before = tree(directory)
    refusal = Cli(settings)("demo", "--dir", directory, "--probe-seconds", "10", expect=2)
    assert refusal.stderr.strip().count("\n") == 0 and "not empty" in refusal.stderr, refusal.stderr
    assert tree(directory) == before


SERVING = "serving on loopback until Ctrl-C"


def serving_urls(lines: list[tuple[float, str]]) -> tuple[float, str, str] | None:
    """(when the serving block was read, the portal's origin, the /metrics URL) once --serve printed them."""
    for index, (at, line) in enumerate(lines):
        if line.startswith(SERVING):
            block = "\n".join(text for _at, text in lines[index + 1:index + 3])
            portal = re.search(r"^ +portal +(http://127\.0\.0\.1:\d+)/ ", block, re.M)
            metrics = re.search(r"^ +metrics +(http://127\.0\.0\.1:\d+/metrics) ", block, re.M)
            if portal and metrics:
                return at, portal.group(1), metrics.group(1)
    return None


@pytest.mark.slow
def test_serve_keeps_the_portal_and_metrics_up_until_sigint(tmp_path):
    import httpx

    directory = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DCOPS_HOME": str(tmp_path / "home")}
    env.pop("DCOPS_DATABASE_URL", None)
    errors = tmp_path / "stderr.txt"
    lines: list[tuple[float, str]] = []  # (time.time() when read, the line)
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "dcops", "demo", "--serve", "--dir", str(directory), "--probe-seconds", "10"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=tmp_path)

    def read() -> None:
        for line in process.stdout:
            lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def output() -> str:
        return "\n".join(line for _at, line in lines) + "\nstderr:\n" + errors.read_text()

    try:
        deadline = time.monotonic() + 400
        while (found := serving_urls(lines)) is None:
            assert process.poll() is None, f"exited {process.returncode} before serving\n{output()}"
            assert time.monotonic() < deadline, f"not serving after 400 s\n{output()}"
            time.sleep(0.2)
        since, portal, metrics = found
        printed = re.findall(r"^ +account +(\S+) +password (\S+) +\((\S+)\)$",
                             "\n".join(line for _at, line in lines), re.M)
        assert sorted(role for _name, _password, role in printed) == ["operator", "requester@moh",
                                                                       "security-officer"], output()

        with httpx.Client(trust_env=False, timeout=30) as client:
            # /metrics, from the prober probing the stand-ins again: checks probed since it said so.
            for _attempt in range(60):
                scrape = client.get(metrics)
                assert scrape.status_code == 200 and "# TYPE dcops_programme_up gauge" in scrape.text, scrape.text
                stamps = [float(line.rsplit(" ", 1)[1]) for line in scrape.text.splitlines()
                          if line.startswith("dcops_probe_last_timestamp_seconds{")]
                if sum(stamp >= since for stamp in stamps) >= 50:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"no fresh probes on {metrics}: {sorted(stamps)[-5:]} (since {since})")
            assert "dcops_probe_success{" in scrape.text

        # Every printed account signs in with its password (and not without it).
        for name, password, _role in printed:
            for attempt, expected in ((password + "x", 401), (password, 303)):
                with httpx.Client(base_url=portal, trust_env=False, timeout=30) as browser:
                    page = browser.get("/signin")
                    assert page.status_code == 200 and browser.cookies.get("dcops_signin_csrf"), page.text
                    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
                    answer = browser.post("/signin", data={"name": name, "password": attempt, "csrf_token": token,
                                                           "next": "/"}, headers={"origin": portal})
                    assert answer.status_code == expected, (name, expected, answer.status_code, answer.text)
                    if expected == 303:
                        assert answer.headers["location"] == "/"
                        home = browser.get("/")
                        assert home.status_code == 200 and name in home.text, home.text

        # SIGINT, to the demo's own process only: everything stops, exit 0, nothing listening.
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, output()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        reader.join(10)
    assert lines[-1][1].startswith("stopped the portal, /metrics"), output()
    assert "Traceback" not in errors.read_text(), output()
    for url in (portal, metrics):
        parts = urlsplit(url)
        assert refused(parts.hostname, parts.port), url


def test_the_default_folder_is_under_dcops_home_never_the_current_directory(tmp_path):
    from datetime import datetime

    from dcops.demo import default_directory

    now = datetime(2026, 12, 1, 9, 30, 5)
    home = tmp_path / "home"
    assert default_directory(now, {"DCOPS_HOME": str(home)}) == home / "demos" / "demo-20261201-093005"
    assert default_directory(now, {"XDG_DATA_HOME": str(tmp_path / "xdg")}) == (
        tmp_path / "xdg" / "dcops" / "demos" / "demo-20261201-093005")


def test_stand_ins_take_the_ports_the_system_gives_and_checks_follow(tmp_path):
    from dcops.demo import StandIns, retarget

    stand_ins = StandIns()
    stand_ins.start()
    try:
        first, problem = stand_ins.listen("tcp", "127.0.0.1")
        second, problem2 = stand_ins.listen("tcp", "127.0.0.1")
        assert problem is None and problem2 is None and first and second and first != second
        assert not refused("127.0.0.1", first)
    finally:
        stand_ins.stop()
    assert refused("127.0.0.1", first)
    assert retarget("tcp", "127.0.0.1:18010", 40001) == "127.0.0.1:40001"
    assert retarget("tls", "[::1]:18010", 40001) == "[::1]:40001"
    assert retarget("http", "https://127.0.3.1:18030/healthz?x=1", 40002) == "https://127.0.3.1:40002/healthz?x=1"
    assert retarget("http", "http://127.0.3.1/", 40003) == "http://127.0.3.1:40003/"
    assert retarget("http", "http://[::1]:80/", 40004) == "http://[::1]:40004/"


def test_refusals_write_nothing(cli, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    fresh = tmp_path / "fresh"
    for args, message in (
        (("--dir", occupied), "not empty"),
        (("--dir", a_file), "not a folder"),
        (("--dir", fresh, "--probe-seconds", "5"), "--probe-seconds"),
    ):
        result = cli("demo", *args, expect=2)
        assert result.stderr.startswith("dcops: error: ") and message in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]
    assert a_file.read_text() == ""
    assert not fresh.exists()


def test_help_has_an_example_and_start_up_stays_light(cli):
    help_text = cli("demo", "--help").stdout
    assert "Example: dcops demo" in help_text
    assert "--serve" in help_text and "Example: dcops demo --serve" in help_text
    heavy = ("ansible_runner", "jinja2", "prometheus_client", "httpx", "dcops.demo", "fastapi", "uvicorn",
             "dcops.portal", "dcops.accounts")
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, dcops.cli.main; "
                               f"print([m for m in {heavy!r} if m in sys.modules])"],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"


def test_the_demo_requests_stay_clear_of_the_sample_inventory():
    """The stand-ins listen once per address: a demo request sharing a sample port would steal its checks."""
    import yaml

    from dcops.demo import SAMPLE_INVENTORY_DIR

    ports, addresses = set(), set()
    for path in (SAMPLE_INVENTORY_DIR / "programmes").glob("*.yaml"):
        for programme in yaml.safe_load(path.read_text(encoding="utf-8"))["programmes"]:
            for endpoint in programme.get("endpoints", []):
                ports.add(urlsplit(endpoint["target"]).port if endpoint["kind"] == "http"
                          else int(endpoint["target"].rpartition(":")[2]))
            addresses.update(host["address"] for host in programme.get("hosts", []))
    assert len(ports) >= 100 and len(addresses) >= 100
    demo_ports = {request.port(k) for request in DEMO_REQUESTS for k in range(10)}
    assert not demo_ports & ports, sorted(demo_ports & ports)
    assert not {request.address(i) for request in DEMO_REQUESTS for i in range(9)} & addresses


def test_loopback_checks_follow_the_hosts_to_their_stand_ins():
    from dcops.demo import loopback_checks

    request = DEMO_REQUESTS[0]
    hosts = [{"name": "p-02", "address": "p-02", "cluster": "vte-gen2", "role": "app"},
             {"name": "p-01", "address": "p-01", "cluster": "vte-gen2", "role": "app"}]
    checks = [{"name": "ssh-1", "kind": "tcp", "target": "p-01:22", "interval_seconds": 120},
              {"name": "ssh-2", "kind": "tcp", "target": "p-02:22", "interval_seconds": 120},
              {"name": "https", "kind": "http", "target": "https://p.apps.gov.la.example/status?x=1"},
              {"name": "certificate", "kind": "tls", "target": "p.apps.gov.la.example:443"}]
    moved_hosts, endpoints, moved = loopback_checks(request, hosts, checks)
    n, base = request.number, request.port(0)
    assert {h["name"]: h["address"] for h in moved_hosts} == {"p-01": f"127.0.{n}.11", "p-02": f"127.0.{n}.12"}
    assert [(e["name"], e["target"]) for e in endpoints] == [
        ("web", f"http://127.0.0.1:{base}/healthz"),
        ("ssh-1", f"127.0.{n}.11:{base + 1}"), ("ssh-2", f"127.0.{n}.12:{base + 2}"),
        ("https", f"https://127.0.{n}.1:{base + 3}/status?x=1"), ("certificate", f"127.0.{n}.1:{base + 4}")]
    assert endpoints[1]["interval_seconds"] == 120, "the check's own settings are kept"
    assert moved[0] == ("ssh-1", "p-01:22", f"127.0.{n}.11:{base + 1}")
    # A catalogue check named web is kept (re-pointed) instead of the demo's own.
    _hosts, endpoints, _moved = loopback_checks(request, hosts, [{"name": "web", "kind": "http",
                                                                  "target": "http://p-01/"}])
    assert [(e["name"], e["target"]) for e in endpoints] == [("web", f"http://127.0.{n}.11:{base + 1}/")]
