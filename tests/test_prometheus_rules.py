"""The Prometheus artefacts: rules that promtool accepts and whose alerts fire when they should; file_sd targets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from dcops.errors import UserError
from dcops.inventory.service import load_directory, retire_programme
from dcops.metrics.files import (
    alert_rules,
    dump_rules,
    dump_targets,
    error_ratio_record,
    file_sd_targets,
    sla_tiers,
)
from dcops.files import write_atomically

import inventories

MINUTES = 24 * 60  # a day of one-minute samples is enough for every window but 3d


@pytest.fixture
def rules_file(database, tmp_path) -> Path:
    """The rules generated from the tiers of a fresh database (99.9, 99.5 and 99 percent)."""
    with database.transaction() as conn:
        tiers = sla_tiers(conn)
    assert tiers == [{"tier": 1, "sla_target_percent": 99.9}, {"tier": 2, "sla_target_percent": 99.5},
                     {"tier": 3, "sla_target_percent": 99.0}]
    path = tmp_path / "dcops.rules.yml"
    write_atomically(path, dump_rules(alert_rules(tiers)))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules(rules_file):
    result = promtool("check", "rules", str(rules_file), cwd=rules_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    # 5 error-ratio recordings, 4 health alerts, page + ticket per tier
    assert "SUCCESS: 15 rules found" in result.stdout


def test_rules_document_shape():
    document = alert_rules([{"tier": 1, "sla_target_percent": 99.9}], down_for_minutes=7)
    groups = {g["name"]: g["rules"] for g in document["groups"]}
    assert [r.get("record") for r in groups["dcops-slo"]][:5] == [
        error_ratio_record(w) for w in ("5m", "30m", "1h", "6h", "3d")]
    down, no_data, not_monitored, cert = groups["dcops-health"]
    assert (no_data["alert"], no_data["for"], not_monitored["alert"]) == (
        "DcopsProgrammeNoData", "15m", "DcopsProgrammeNotMonitored")
    assert (down["alert"], down["expr"], down["for"]) == ("DcopsProgrammeDown", "dcops_programme_up == 0", "7m")
    assert cert["expr"] == "dcops_tls_cert_expiry_timestamp_seconds - time() < 14 * 86400"
    page, ticket = groups["dcops-slo"][5:]
    assert page["labels"] == {"severity": "page", "tier": "1"}
    assert ticket["labels"] == {"severity": "ticket", "tier": "1"}
    assert "avg_over_time1h{tier=\"1\"} > (14.4 * 0.001)" in page["expr"]
    assert "avg_over_time5m{tier=\"1\"} > (14.4 * 0.001)" in page["expr"]
    assert "avg_over_time6h{tier=\"1\"} > (6 * 0.001)" in page["expr"]
    assert "avg_over_time30m{tier=\"1\"} > (6 * 0.001)" in page["expr"]
    assert "avg_over_time3d{tier=\"1\"} > (1 * 0.001)" in ticket["expr"]
    assert "avg_over_time6h{tier=\"1\"} > (1 * 0.001)" in ticket["expr"]
    with pytest.raises(UserError, match="tier 4"):
        alert_rules([{"tier": 4, "sla_target_percent": 120}])


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _info(programme: str, ministry: str, tier: int) -> dict:
    return _series("dcops_programme_info", {"programme": programme, "ministry": ministry, "tier": str(tier),
                                            "status": "active", "environment": "production"}, f"1x{MINUTES}")


def test_alerts_fire_when_they_should(rules_file):
    down_labels = {"programme": "dhis2", "ministry": "moh"}
    down_alert = {
        "exp_labels": {"alertname": "DcopsProgrammeDown", "severity": "page", **down_labels},
        "exp_annotations": {
            "summary": "Programme dhis2 (moh) is down",
            "description": "dcops has seen dhis2 down for more than 5 minutes: see `dcops programme show dhis2`.",
        },
    }

    def burn(programme: str, ministry: str, tier: int, severity: str, percent: str, windows: str, target: str):
        return {
            "exp_labels": {"alertname": "DcopsErrorBudgetBurn", "severity": severity, "tier": str(tier),
                           "programme": programme, "ministry": ministry},
            "exp_annotations": {
                "summary": f"{programme} is burning its tier-{tier} error budget (SLA {target}%) too fast",
                "description": f"Probe error ratio {percent}; burn rate above {windows}.",
            },
        }

    page_windows = "14.4x over 1h and 5m or 6x over 6h and 30m"
    tests = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                # dhis2 up for 2 minutes then down; lesmis stays up
                "interval": "1m",
                "input_series": [
                    _series("dcops_programme_up", down_labels, "1 1 0x20"),
                    _series("dcops_programme_up", {"programme": "lesmis", "ministry": "moes"}, "1x22"),
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "DcopsProgrammeDown", "exp_alerts": []},
                    # down from 2m: pending for 4 minutes, firing once it has been down 5
                    {"eval_time": "6m", "alertname": "DcopsProgrammeDown", "exp_alerts": []},
                    {"eval_time": "7m", "alertname": "DcopsProgrammeDown", "exp_alerts": [down_alert]},
                    {"eval_time": "20m", "alertname": "DcopsProgrammeDown", "exp_alerts": [down_alert]},
                ],
            },
            {
                # digital-id (tier 1) fails every probe: pages (14.4x over 1h and 5m) and tickets.
                # lesmis (tier 2) failed one probe in 61 early on: 1.6% over the last hour and 6 h is
                # above 1x its 0.5% budget (ticket) but its last 5 and 30 minutes are clean (no page).
                # e-crvs (tier 1) never fails: nothing.
                "interval": "1m",
                "input_series": [
                    _series("dcops_probe_success", {"programme": "digital-id", "check": "api"}, f"0x{MINUTES}"),
                    _series("dcops_probe_success", {"programme": "lesmis", "check": "web"}, f"1x9 0 1x{MINUTES}"),
                    _series("dcops_probe_success", {"programme": "lesmis", "check": "db"}, f"1x{MINUTES}"),
                    _series("dcops_probe_success", {"programme": "e-crvs", "check": "web"}, f"1x{MINUTES}"),
                    _info("digital-id", "mtc", 1),
                    _info("lesmis", "moes", 2),
                    _info("e-crvs", "moha", 1),
                ],
                "promql_expr_test": [
                    # the last hour holds 61 samples: round away PromQL's float noise
                    {"expr": f"round({error_ratio_record('1h')} * 61)", "eval_time": "60m", "exp_samples": [
                        {"labels": '{programme="digital-id", ministry="mtc", tier="1"}', "value": 61},
                        {"labels": '{programme="lesmis", ministry="moes", tier="2"}', "value": 1},
                        {"labels": '{programme="e-crvs", ministry="moha", tier="1"}', "value": 0},
                    ]},
                ],
                "alert_rule_test": [
                    {"eval_time": "60m", "alertname": "DcopsErrorBudgetBurn", "exp_alerts": [
                        burn("digital-id", "mtc", 1, "page", "100%", page_windows, "99.9"),
                        burn("digital-id", "mtc", 1, "ticket", "100%", "1x over 3d and 6h", "99.9"),
                        burn("lesmis", "moes", 2, "ticket", "1.639%", "1x over 3d and 6h", "99.5"),
                    ]},
                ],
            },
            {
                # dhis2's results stop after 2 minutes (its up series goes stale 5 minutes later): no
                # page, a ticket once nothing came for 15 more; e-gov-portal has no check: a ticket
                # after an hour; lesmis keeps reporting: nothing.
                "interval": "1m",
                "input_series": [
                    _series("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}, "1 1"),
                    _series("dcops_programme_up", {"programme": "lesmis", "ministry": "moes"}, "1x90"),
                    _series("dcops_programme_checks", {"programme": "dhis2", "ministry": "moh"}, "1x90"),
                    _series("dcops_programme_checks", {"programme": "lesmis", "ministry": "moes"}, "2x90"),
                    _series("dcops_programme_checks", {"programme": "e-gov-portal", "ministry": "mtc"}, "0x90"),
                    _info("dhis2", "moh", 1), _info("lesmis", "moes", 2), _info("e-gov-portal", "mtc", 2),
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "DcopsProgrammeNoData", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "DcopsProgrammeNoData", "exp_alerts": [{
                        "exp_labels": {"alertname": "DcopsProgrammeNoData", "severity": "ticket",
                                       "programme": "dhis2", "ministry": "moh"},
                        "exp_annotations": {
                            "summary": "No recent probe results for dhis2 (moh)",
                            "description": "Its state is unknown: see `dcops probe status` (is the prober running?).",
                        }}]},
                    {"eval_time": "30m", "alertname": "DcopsProgrammeDown", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "DcopsProgrammeNotMonitored", "exp_alerts": []},
                    {"eval_time": "70m", "alertname": "DcopsProgrammeNotMonitored", "exp_alerts": [{
                        "exp_labels": {"alertname": "DcopsProgrammeNotMonitored", "severity": "ticket",
                                       "programme": "e-gov-portal", "ministry": "mtc"},
                        "exp_annotations": {
                            "summary": "Programme e-gov-portal (mtc) has no check",
                            "description": "Add one: `dcops programme endpoint add e-gov-portal ...`.",
                        }}]},
                ],
            },
            {
                # certificates: one expiring in 10 days (alert), one in 30 (none); time() is 0 at the start
                "interval": "1m",
                "input_series": [
                    _series("dcops_tls_cert_expiry_timestamp_seconds", {"programme": "dhis2", "check": "tls"},
                            f"{10 * 86400}x5"),
                    _series("dcops_tls_cert_expiry_timestamp_seconds", {"programme": "e-crvs", "check": "tls"},
                            f"{30 * 86400}x5"),
                ],
                "alert_rule_test": [
                    {"eval_time": "0m", "alertname": "DcopsCertificateExpiringSoon", "exp_alerts": [{
                        "exp_labels": {"alertname": "DcopsCertificateExpiringSoon", "severity": "ticket",
                                       "programme": "dhis2", "check": "tls"},
                        "exp_annotations": {"summary": "The certificate of dhis2/tls expires soon",
                                            "description": "It expires in 10d 0h 0m 0s."},
                    }]},
                ],
            },
        ],
    }
    test_file = rules_file.parent / "dcops.rules.test.yml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", test_file.name, cwd=rules_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_failing_expectation_fails_promtool(rules_file):
    """The unit tests above can fail: an alert expected too early is reported."""
    tests = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [_series("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}, "0x10")],
            "alert_rule_test": [{"eval_time": "3m", "alertname": "DcopsProgrammeDown", "exp_alerts": [
                {"exp_labels": {"severity": "page", "programme": "dhis2", "ministry": "moh"}}]}],
        }],
    }
    test_file = rules_file.parent / "early.test.yml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", test_file.name, cwd=rules_file.parent)
    assert result.returncode == 1 and "DcopsProgrammeDown" in result.stdout + result.stderr


def test_file_sd_targets(database, tmp_path):
    files = inventories.base()
    files["programmes/mtc.yaml"]["programmes"][1]["endpoints"] = [
        {"name": "tls", "kind": "tls", "target": "127.0.0.1:18443"},
        {"name": "web", "kind": "http", "target": "https://127.0.0.1:18444/"},
    ]
    files["programmes/moh.yaml"]["programmes"].append({
        "slug": "old-hmis", "name": "Old HMIS", "ministry": "moh", "tier": 3, "classification": "internal",
        "contacts": {"owner": "hmis@moh.example.la", "security": "sec@moh.example.la"},
        "endpoints": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:18009/"}],
    })
    load_directory(database, inventories.write(tmp_path / "inv", files), actor="test")
    retire_programme(database, "old-hmis", actor="test")
    with database.transaction() as conn:
        targets = file_sd_targets(conn)
    every_minute = {"__scrape_interval__": "60s", "__scrape_timeout__": "5500ms"}  # the default 60 s and 5 s
    assert targets == [
        {"targets": ["http://127.0.0.1:18001/healthz"],
         "labels": {"programme": "dhis2", "ministry": "moh", "tier": "1", "check": "web", "module": "http_2xx",
                    **every_minute}},
        {"targets": ["127.0.0.1:18002"],
         "labels": {"programme": "digital-id", "ministry": "mtc", "tier": "1", "check": "api",
                    "module": "tcp_connect", **every_minute}},
        {"targets": ["127.0.0.1:18443"],
         "labels": {"programme": "e-gov-portal", "ministry": "mtc", "tier": "2", "check": "tls",
                    "module": "tls_connect", **every_minute}},
        {"targets": ["https://127.0.0.1:18444/"],
         "labels": {"programme": "e-gov-portal", "ministry": "mtc", "tier": "2", "check": "web",
                    "module": "http_2xx", **every_minute}},
    ]
    # the file Prometheus reads: a JSON list of {targets: [str], labels: {str: str}}
    path = tmp_path / "dcops.json"
    write_atomically(path, dump_targets(targets))
    loaded = json.loads(path.read_text())
    assert loaded == targets
    for group in loaded:
        assert set(group) == {"targets", "labels"}
        assert all(isinstance(t, str) for t in group["targets"])
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in group["labels"].items())
