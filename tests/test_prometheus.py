"""The real Prometheus scrapes the dcops exporter; what its HTTP API reads back is what the database holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dcops.catalogue.requests import REQUEST_STATES
from dcops.metrics.files import alert_rules, dump_rules, error_ratio_record, sla_tiers
from dcops.metrics.server import MetricsServer

from promservers import Prometheus
from test_metrics import NOW, populate

pytestmark = pytest.mark.slow


def _scraping(exporter_port: int, rules: Path) -> dict:
    """A prometheus.yml scraping the dcops exporter every second and evaluating its rules."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "dcops", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }


def _labelled(prometheus: Prometheus, promql: str) -> dict[tuple, float]:
    """An instant query's result as {sorted label items (without __name__): value}."""
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
            for r in prometheus.query(promql)}


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

    with MetricsServer(database, host="127.0.0.1", port=0, cache_seconds=0, now=lambda: NOW) as exporter:
        with Prometheus(tmp_path / "prom", _scraping(exporter.port, rules), port=unused_port) as prometheus:
            up = prometheus.wait_for(lambda: _labelled(prometheus, "dcops_programme_up"), "dcops_programme_up")
            assert up == {_key(job="dcops", instance=f"127.0.0.1:{exporter.port}", programme=slug, ministry=ministry):
                          value for (slug, ministry), value in expected["up"].items()}
            # the scrape itself is healthy
            assert set(_labelled(prometheus, 'up{job="dcops"}').values()) == {1.0}

            def values(promql: str, *labels: str) -> dict[tuple, float]:
                return {tuple(dict(key)[label] for label in labels): value
                        for key, value in _labelled(prometheus, promql).items()}

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
    assert prometheus.process.returncode == 0

