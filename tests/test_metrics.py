"""The exporter: exact metric values from a known history, promtool's lint, the HTTP server, the cache."""

from __future__ import annotations

import base64
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dcops.catalogue.requests import REQUEST_STATES, approve, reject, submit
from dcops.db import Database, make_engine
from dcops.errors import UserError
from dcops.health.history import Thresholds
from dcops.health.store import load_checks, record_results
from dcops.inventory.service import add_programme, load_directory, retire_programme
from dcops.metrics.collector import FAMILIES, InventoryCollector
from dcops.metrics.server import MetricsServer, hash_password, serve
from dcops.models import Job

import requests_fixtures
import inventories
from test_health_store import Result

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ONE_BY_ONE = Thresholds(failures=1, successes=1)


def _programme(slug: str, *, ministry: str = "mtc", tier: int = 3, endpoints=()) -> dict:
    return {
        "slug": slug, "name": f"Programme {slug}", "ministry": ministry, "tier": tier, "classification": "public",
        "contacts": {"owner": "owner@mtc.example.la", "security": "sec@mtc.example.la"},
        "endpoints": list(endpoints),
    }


def _web(port: int, name: str = "web") -> dict:
    return {"name": name, "kind": "http", "target": f"http://127.0.0.1:{port}/", "interval_seconds": 3600}


def _record(database: Database, results: list[Result], thresholds: Thresholds = Thresholds()) -> None:
    with database.transaction(immediate=True) as conn:
        record_results(conn, load_checks(conn), results, thresholds=thresholds)


def populate(database: Database, directory: Path) -> None:
    """The history every test here reads; the expected numbers below are worked out from it.

    Checks are probed hourly (interval 3600 s), so a gap of more than 3 h is unknown.
    - dhis2 (moh, tier 1), check web: up from NOW-240h, down [NOW-48h, NOW-42h), up since.
    - digital-id (mtc, tier 1), check api: up from NOW-5h, down since NOW-3h.
    - e-gov-portal (mtc, tier 2), check tls: one success, not enough to leave unknown.
    - stats-portal (mtc, tier 3), check web: up [NOW-9h, NOW-8h), then unknown (a gap).
    - old-portal: probed, then retired: never exported.
    - requests: one submitted, one approved (programme new-a on gen-a), one rejected.
    - jobs: one successful, two failed.
    """
    files = requests_fixtures.inventory()
    files["programmes/moh.yaml"]["programmes"][0]["endpoints"][0]["interval_seconds"] = 3600
    mtc = files["programmes/mtc.yaml"]["programmes"]
    mtc[0]["endpoints"][0]["interval_seconds"] = 3600
    mtc[1]["endpoints"] = [{"name": "tls", "kind": "tls", "target": "127.0.0.1:18443", "interval_seconds": 3600}]
    mtc.append(_programme("stats-portal", endpoints=[_web(18004)]))
    mtc.append(_programme("old-portal", endpoints=[_web(18005)]))
    load_directory(database, inventories.write(directory, files), actor="test")
    with database.transaction() as conn:
        ids = {(c.programme, c.name): c.endpoint_id for c in load_checks(conn)}

    web = ids["dhis2", "web"]
    start, down, back = NOW - 240 * HOUR, NOW - 48 * HOUR, NOW - 42 * HOUR
    dhis2 = [Result(web, start + k * HOUR, not down <= start + k * HOUR < back, 0.25,
                    "" if not down <= start + k * HOUR < back else "status 503") for k in range(240)]
    _record(database, dhis2, ONE_BY_ONE)
    api = ids["digital-id", "api"]
    _record(database, [Result(api, NOW - 5 * HOUR, True, 0.01), Result(api, NOW - 4 * HOUR, True, 0.01),
                       *(Result(api, NOW - h * HOUR, False, 1.5, "connection refused") for h in (3, 2, 1))],
            ONE_BY_ONE)
    _record(database, [Result(ids["e-gov-portal", "tls"], NOW - HOUR / 2, True, 0.125,
                              tls_expires_at=NOW + 10 * DAY)])
    stats = ids["stats-portal", "web"]
    _record(database, [Result(stats, NOW - h * HOUR, True, 0.0625) for h in (10, 9, 1)],
            Thresholds(failures=1, successes=2))
    old = ids["old-portal", "web"]
    _record(database, [Result(old, NOW - h * HOUR, True) for h in (3, 2)], ONE_BY_ONE)
    retire_programme(database, "old-portal", actor="test")

    requests = {slug: submit(database, requests_fixtures.request(slug), actor="desk") for slug in ("new-a", "new-b", "new-c")}
    approve(database, requests["new-a"], actor="ops")
    reject(database, requests["new-b"], reason="use the shared portal", actor="ops")
    add_jobs(database, "successful", "failed", "failed")


def add_jobs(database: Database, *statuses: str) -> None:
    with database.transaction() as conn:
        for status in statuses:
            conn.execute(sa.insert(Job.__table__).values(
                kind="provision", playbook="provision.yml", programmes=["new-a"], status=status, actor="ops",
                started_at=NOW - HOUR, finished_at=NOW - HOUR / 2, hostname="ops-1", pid=1, pid_start="",
                private_data_dir="/tmp/x", host_stats={}))


@pytest.fixture
def populated(database, tmp_path) -> Database:
    populate(database, tmp_path / "inv")
    return database


@pytest.fixture
def any_populated(any_database, tmp_path) -> Database:
    populate(any_database, tmp_path / "inv")
    return any_database


def registry_for(database: Database, **options) -> CollectorRegistry:
    registry = CollectorRegistry()
    InventoryCollector(database, now=lambda: NOW, registry=registry, **options)
    return registry


def test_every_value_is_the_hand_computed_one(any_populated):
    registry = registry_for(any_populated)
    value = registry.get_sample_value

    # up from the open programme-level interval; unknown or never probed: no sample at all
    assert value("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}) == 1
    assert value("dcops_programme_up", {"programme": "digital-id", "ministry": "mtc"}) == 0
    for slug in ("e-gov-portal", "stats-portal", "new-a", "old-portal"):
        assert value("dcops_programme_up", {"programme": slug, "ministry": "mtc"}) is None, slug

    # dhis2: 240 h known in 30 days, 6 of them down; 168 h in 7 days, 6 down; the last day all up
    ratio = lambda slug, window: value("dcops_programme_availability_ratio", {"programme": slug, "window": window})  # noqa: E731
    assert ratio("dhis2", "30d") == 234 / 240
    assert ratio("dhis2", "7d") == 162 / 168
    assert ratio("dhis2", "1d") == 1.0
    # digital-id: 2 h up then 3 h down, in every window
    assert [ratio("digital-id", w) for w in ("1d", "7d", "30d")] == [0.4, 0.4, 0.4]
    # stats-portal: one hour up, then unknown (left out of the ratio)
    assert ratio("stats-portal", "1d") == 1.0
    assert ratio("e-gov-portal", "1d") is None and ratio("old-portal", "1d") is None

    probe = lambda name, slug, check: value(name, {"programme": slug, "check": check})  # noqa: E731
    assert probe("dcops_probe_success", "dhis2", "web") == 1
    assert probe("dcops_probe_success", "digital-id", "api") == 0
    assert probe("dcops_probe_success", "e-gov-portal", "tls") == 1
    assert probe("dcops_probe_success", "old-portal", "web") is None
    assert probe("dcops_probe_duration_seconds", "dhis2", "web") == 0.25
    assert probe("dcops_probe_duration_seconds", "digital-id", "api") == 1.5
    assert probe("dcops_probe_duration_seconds", "e-gov-portal", "tls") == 0.125
    assert probe("dcops_probe_duration_seconds", "stats-portal", "web") == 0.0625
    assert probe("dcops_probe_last_timestamp_seconds", "dhis2", "web") == (NOW - HOUR).timestamp()
    assert probe("dcops_probe_last_timestamp_seconds", "e-gov-portal", "tls") == (NOW - HOUR / 2).timestamp()
    assert probe("dcops_tls_cert_expiry_timestamp_seconds", "e-gov-portal", "tls") == (NOW + 10 * DAY).timestamp()
    assert probe("dcops_tls_cert_expiry_timestamp_seconds", "dhis2", "web") is None

    info = {(s.labels["programme"], s.labels["ministry"], s.labels["tier"], s.labels["status"],
             s.labels["environment"]): s.value
            for family in registry.collect() if family.name == "dcops_programme_info" for s in family.samples}
    assert info == {
        ("dhis2", "moh", "1", "active", "production"): 1,
        ("digital-id", "mtc", "1", "active", "production"): 1,
        ("e-gov-portal", "mtc", "2", "active", "production"): 1,
        ("stats-portal", "mtc", "3", "active", "production"): 1,
        ("new-a", "mtc", "2", "approved", "production"): 1,
    }

    # gen-a: vcpu (64 - 4) x 2, ram 512 - 32, storage 10000; allocated dhis2 + digital-id + new-a (2 x vm-medium)
    cluster = lambda name, resource: value(name, {"cluster": "gen-a", "site": "dc1", "resource": resource})  # noqa: E731
    assert [cluster("dcops_cluster_capacity", r) for r in ("vcpu", "ram_gib", "storage_gib")] == [120, 480, 10000]
    assert [cluster("dcops_cluster_allocated", r) for r in ("vcpu", "ram_gib", "storage_gib")] == [32, 128, 700]

    expected_requests = {state: 0 for state in REQUEST_STATES} | {"submitted": 1, "approved": 1, "rejected": 1}
    assert {s: value("dcops_requests", {"state": s}) for s in REQUEST_STATES} == expected_requests
    assert {s: value("dcops_provision_jobs", {"status": s})
            for s in ("running", "successful", "failed", "timeout", "cancelled", "interrupted")} == {
        "running": 0, "successful": 1, "failed": 2, "timeout": 0, "cancelled": 0, "interrupted": 0}


def test_a_scrape_takes_the_same_few_queries_however_many_programmes(populated, tmp_path):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    sa.event.listen(populated.engine, "before_cursor_execute", count)
    collector = InventoryCollector(populated, now=lambda: NOW)
    collector.snapshot()
    few = len(statements)
    assert few <= 7, statements

    for n in range(12):
        add_programme(populated, _programme(f"extra-{n}", endpoints=[_web(19000 + n)]), actor="test")
    with populated.transaction() as conn:
        extra = [c.endpoint_id for c in load_checks(conn) if c.programme.startswith("extra-")]
    _record(populated, [Result(e, NOW - h * HOUR, True) for e in extra for h in (2, 1)], ONE_BY_ONE)
    statements.clear()
    families = {f.name: f for f in collector.snapshot()}
    assert len(statements) == few
    assert len([s for s in families["dcops_programme_up"].samples if s.labels["programme"].startswith("extra-")]) == 12


def test_registering_reads_nothing_and_a_registry_is_optional(populated):
    statements = []
    sa.event.listen(populated.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    InventoryCollector(populated)  # no registry: nothing registered anywhere
    registry = registry_for(populated)
    assert statements == []
    assert registry.get_sample_value("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}) == 1


def test_promtool_finds_nothing_to_lint(populated):
    exposition = generate_latest(registry_for(populated))
    names = {f.name for f in text_string_to_metric_families(exposition.decode())}
    assert len(names) == len(FAMILIES) == 12
    check = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    assert (check.returncode, check.stdout, check.stderr) == (0, b"", b"")


def test_the_cache_serves_one_read_until_it_expires(populated):
    clock = [100.0]
    registry = registry_for(populated, cache_seconds=5, clock=lambda: clock[0])
    failed = {"status": "failed"}
    first = generate_latest(registry)
    add_jobs(populated, "failed")
    clock[0] += 4.9
    assert generate_latest(registry) == first
    assert registry.get_sample_value("dcops_provision_jobs", failed) == 2
    clock[0] += 0.1
    assert registry.get_sample_value("dcops_provision_jobs", failed) == 3
    # a clock that goes backwards never pins an old snapshot
    add_jobs(populated, "failed")
    clock[0] -= 50
    assert registry.get_sample_value("dcops_provision_jobs", failed) == 4


# The HTTP server ----------------------------------------------------------------------------------


def fetch(url: str, *, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None,
          headers: dict | None = None):
    """(status, headers, body) of a GET, whatever the status."""
    request = urllib.request.Request(url, headers=headers or {})
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_server_serves_metrics_healthz_and_404(populated):
    with MetricsServer(populated, port=0, cache_seconds=0, now=lambda: NOW) as server:
        base = server.url.removesuffix("/metrics")
        status, headers, body = fetch(server.url)
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_LATEST
        assert 'dcops_programme_up{ministry="moh",programme="dhis2"} 1.0' in body.decode()
        assert fetch(server.url + "?x=1")[0] == 200
        status, headers, gz = fetch(server.url, headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        import gzip

        assert gzip.decompress(gz) == body
        # The server writes the text itself; it must be what prometheus_client would write.
        assert body == generate_latest(server.registry)
        assert fetch(f"{base}/healthz")[::2] == (200, b"ok\n")
        assert fetch(f"{base}/")[0] == 404
        assert fetch(f"{base}/metricsx")[0] == 404


def test_healthz_is_503_when_the_database_does_not_answer(unused_port):
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{unused_port}/dcops"
    database = Database(engine=make_engine(url), url=url)
    with MetricsServer(database, port=0) as server:
        base = server.url.removesuffix("/metrics")
        assert fetch(f"{base}/healthz")[0] == 503
        status, _headers, body = fetch(server.url)
        assert status == 500 and b"secret" not in body
    database.dispose()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dcops test exporter")])
    moment = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(minutes=5)).not_valid_after(moment + DAY)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "exporter.crt", directory / "exporter.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("stored", ["plain", "hashed"])
def test_tls_and_basic_auth(populated, tmp_path, stored):
    cert, key = self_signed(tmp_path)
    password = "correct horse battery"
    secret = password if stored == "plain" else hash_password(password, iterations=10_000)
    context = ssl.create_default_context(cafile=str(cert))
    with MetricsServer(populated, port=0, tls_cert=cert, tls_key=key, basic_auth=("prometheus", secret)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        status, headers, _ = fetch(server.url, context=context)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        assert fetch(server.url, context=context, auth=("prometheus", "wrong"))[0] == 401
        assert fetch(server.url, context=context, auth=("someone", password))[0] == 401
        assert fetch(server.url.removesuffix("/metrics") + "/healthz", context=context)[0] == 401
        status, _, body = fetch(server.url, context=context, auth=("prometheus", password))
        assert status == 200 and b"dcops_programme_info" in body
        # twice: the second is answered from the verified-credentials memo
        assert fetch(server.url, context=context, auth=("prometheus", password))[0] == 200
        # plain HTTP on the TLS port gets nothing
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(server.url.replace("https:", "http:"), timeout=5).read()


def test_refusals(populated, tmp_path):
    cert, key = self_signed(tmp_path)
    with pytest.raises(UserError, match="0.0.0.0, not a loopback address"):
        MetricsServer(populated, host="0.0.0.0", port=0)
    with pytest.raises(UserError, match="basic auth without TLS"):
        MetricsServer(populated, host="0.0.0.0", port=0, allow_remote=True, basic_auth=("u", "p"))
    with pytest.raises(UserError, match="both a certificate and its key"):
        MetricsServer(populated, port=0, tls_cert=cert)
    with pytest.raises(UserError, match="cannot load the TLS certificate"):
        MetricsServer(populated, port=0, tls_cert=cert, tls_key=tmp_path / "missing.key")
    # basic auth without TLS is allowed on loopback
    with MetricsServer(populated, port=0, basic_auth=("u", "p")) as server:
        assert fetch(server.url, auth=("u", "p"))[0] == 200
    with MetricsServer(populated, port=0) as taken:
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{taken.port}"):
            MetricsServer(populated, port=taken.port)


def test_two_scrapes_within_the_cache_get_the_same_bytes(populated):
    with MetricsServer(populated, port=0, cache_seconds=1.5, now=lambda: NOW) as server:
        first = fetch(server.url)[2]
        add_jobs(populated, "timeout")
        assert fetch(server.url)[2] == first
        time.sleep(1.6)
        fresh = fetch(server.url)[2]
    assert b'dcops_provision_jobs{status="timeout"} 0.0' in first
    assert b'dcops_provision_jobs{status="timeout"} 1.0' in fresh


def test_serve_stops_when_the_event_is_set(populated):
    stop = threading.Event()
    ready: list[MetricsServer] = []
    thread = threading.Thread(target=serve, args=(populated,),
                              kwargs={"port": 0, "stop_event": stop, "on_ready": ready.append}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.05)
    url = ready[0].url
    assert fetch(url)[0] == 200
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


# The CLI ------------------------------------------------------------------------------------------


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if fetch(url)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serve_stops_cleanly_on_signals(populated, settings, unused_port, sig):
    env = {**os.environ, "DCOPS_DATABASE_URL": settings.database_url, "DCOPS_HOME": str(settings.home)}
    process = subprocess.Popen([sys.executable, "-m", "dcops", "metrics", "serve", "--port", str(unused_port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{unused_port}/healthz", process)
        assert b"dcops_programme_info" in fetch(f"http://127.0.0.1:{unused_port}/metrics")[2]
        process.send_signal(sig)
        _out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert err.strip() == f"serving http://127.0.0.1:{unused_port}/metrics (Ctrl-C to stop)"


def test_cli_refusals_are_one_line(populated, cli, tmp_path):
    password = tmp_path / "pw"
    password.write_text("secret\n")
    result = cli("metrics", "serve", "--host", "0.0.0.0", "--port", "0", "--basic-auth-user", "p",
                 "--basic-auth-password-file", password, expect=2)
    assert result.stderr.startswith("dcops: error: refusing basic auth without TLS on 0.0.0.0")
    assert len(result.stderr.splitlines()) == 1
    result = cli("metrics", "serve", "--basic-auth-user", "p", expect=2)
    assert result.stderr == "dcops: error: basic auth needs both --basic-auth-user and --basic-auth-password-file\n"
    result = cli("metrics", "serve", "--basic-auth-user", "p", "--basic-auth-password-file", tmp_path / "no", expect=2)
    assert result.stderr.startswith("dcops: error: cannot read the password file")


def test_cli_writes_targets_and_rules(loaded_cli, tmp_path):
    import json

    import yaml

    result = loaded_cli("metrics", "targets", tmp_path / "targets.json")
    targets = json.loads((tmp_path / "targets.json").read_text())
    assert result.stdout == f"wrote {len(targets)} targets to {tmp_path / 'targets.json'}\n" and len(targets) > 10
    loaded_cli("metrics", "rules", tmp_path / "rules.yml", "--down-for-minutes", "10")
    rules = yaml.safe_load((tmp_path / "rules.yml").read_text())
    down = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DcopsProgrammeDown"]
    assert down[0]["for"] == "10m"
    assert list(tmp_path.glob(".*.tmp")) == []


def test_the_cli_does_not_import_prometheus_client_at_start_up():
    code = "import sys, dcops.cli.main; print(sorted(m for m in sys.modules if m.startswith(('prometheus', 'dcops.metrics'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
