"""The real Prometheus scrapes the dcops exporter; what its HTTP API reads back is what the database holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from dcops.catalogue.requests import REQUEST_STATES
from dcops.metrics.files import alert_rules, dump_rules, error_ratio_record, sla_tiers
from dcops.metrics.server import MetricsServer

from test_metrics import NOW, populate

pytestmark = pytest.mark.slow
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
WAIT_SECONDS = 30


class Prometheus:
    """A Prometheus server on a loopback port, with its own configuration and storage under `directory`."""

    def __init__(self, directory: Path, port: int, exporter_port: int, rules: Path):
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "dcops", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.base = f"http://127.0.0.1:{port}"
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params) -> dict:
        url = f"{self.base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> dict[tuple, float]:
        """An instant query's result as {sorted label items (without __name__): value}."""
        result = self.api("query", query=promql)["result"]
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
                for r in result}

    def wait_for(self, what, description: str):
        """Poll `what()` until it returns something truthy; at most WAIT_SECONDS."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert self.process.poll() is None, f"prometheus exited: see {self.log.name}"
            try:
                value = what()
            except OSError:  # not listening yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus: no {description} after {WAIT_SECONDS} s (log: {self.log.name})")
            time.sleep(0.25)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _key(**labels) -> tuple:
    return tuple(sorted(labels.items()))


def _from_database(database) -> dict[str, dict]:
    """What the database says, read with plain SQL (not through the collector)."""
    with database.transaction() as conn:
        up = {(slug, ministry): 1.0 if state == "up" else 0.0 for slug, ministry, state in conn.execute(sa.text(
            "SELECT p.slug, m.code, i.state FROM state_interval i JOIN programme p ON p.id = i.programme_id "
            "JOIN ministry m ON m.id = p.ministry_id WHERE i.endpoint_id IS NULL AND i.ended_at IS NULL "
            "AND i.state IN ('up', 'down') AND p.status <> 'retired'"))}
        duration = {(slug, name): seconds for slug, name, seconds in conn.execute(sa.text(
            "SELECT p.slug, e.name, s.last_duration_seconds FROM check_state s JOIN endpoint e ON e.id = s.endpoint_id "
            "JOIN programme p ON p.id = e.programme_id WHERE p.status <> 'retired'"))}
        capacity = {(cluster, site, resource): (total - reserved) * ratio
                    for cluster, site, resource, total, reserved, ratio in conn.execute(sa.text(
                        "SELECT c.name, s.code, k.resource, k.total, k.reserved, k.allocation_ratio "
                        "FROM cluster_capacity k JOIN cluster c ON c.id = k.cluster_id JOIN site s ON s.id = c.site_id"))}
        allocated = {(cluster, resource): float(amount) for cluster, resource, amount in conn.execute(sa.text(
            "SELECT c.name, a.resource, SUM(a.amount) FROM allocation a JOIN cluster c ON c.id = a.cluster_id "
            "GROUP BY c.name, a.resource"))}
        requests = dict(conn.execute(sa.text("SELECT state, COUNT(*) FROM hosting_request GROUP BY state")).all())
    return {"up": up, "duration": duration, "capacity": capacity, "allocated": allocated, "requests": requests}


def test_prometheus_reads_back_what_the_database_holds(database, tmp_path, unused_port):
    populate(database, tmp_path / "inv")
    with database.transaction() as conn:
        rules = tmp_path / "dcops.rules.yml"
        rules.write_text(dump_rules(alert_rules(sla_tiers(conn))))
    expected = _from_database(database)
    assert expected["up"] == {("dhis2", "moh"): 1.0, ("digital-id", "mtc"): 0.0}  # the populate() story

    (tmp_path / "prom").mkdir()
    with MetricsServer(database, host="127.0.0.1", port=0, cache_seconds=0, now=lambda: NOW) as exporter:
        prometheus = Prometheus(tmp_path / "prom", unused_port, exporter.port, rules)
        try:
            up = prometheus.wait_for(lambda: prometheus.query("dcops_programme_up"), "dcops_programme_up")
            assert up == {_key(job="dcops", instance=f"127.0.0.1:{exporter.port}", programme=slug, ministry=ministry):
                          value for (slug, ministry), value in expected["up"].items()}
            # the scrape itself is healthy
            assert set(prometheus.query('up{job="dcops"}').values()) == {1.0}

            def values(promql: str, *labels: str) -> dict[tuple, float]:
                return {tuple(dict(key)[label] for label in labels): value
                        for key, value in prometheus.query(promql).items()}

            assert values("dcops_probe_duration_seconds", "programme", "check") == expected["duration"]
            assert values("dcops_cluster_capacity", "cluster", "site", "resource") == expected["capacity"]
            assert values("dcops_cluster_allocated", "cluster", "resource") == expected["allocated"]
            assert values("dcops_requests", "state") == {
                (state,): float(expected["requests"].get(state, 0)) for state in REQUEST_STATES}
            assert values("dcops_programme_availability_ratio", "programme", "window") == {
                ("dhis2", "1d"): 1.0, ("dhis2", "7d"): 162 / 168, ("dhis2", "30d"): 234 / 240,
                **{("digital-id", w): 0.4 for w in ("1d", "7d", "30d")},
                **{("stats-portal", w): 1.0 for w in ("1d", "7d", "30d")},
            }
            assert values("dcops_tls_cert_expiry_timestamp_seconds", "programme", "check") == {
                ("e-gov-portal", "tls"): NOW.timestamp() + 10 * 86400}

            # the generated rules run inside this Prometheus: error ratios recorded, the down programme pending
            ratio = prometheus.wait_for(lambda: values(error_ratio_record("5m"), "programme", "tier"), "error ratios")
            assert ratio == {("dhis2", "1"): 0.0, ("digital-id", "1"): 1.0, ("e-gov-portal", "2"): 0.0,
                             ("stats-portal", "3"): 0.0}
            alerts = prometheus.wait_for(
                lambda: [a for a in prometheus.api("alerts")["alerts"] if a["labels"]["alertname"] == "DcopsProgrammeDown"],
                "DcopsProgrammeDown alert")
            assert [(a["labels"]["programme"], a["state"]) for a in alerts] == [("digital-id", "pending")]
        finally:
            prometheus.stop()
    assert prometheus.process.returncode == 0

