"""Files for an existing Prometheus: file_sd targets for blackbox_exporter, and alert and SLO rules."""

from __future__ import annotations

import json
from typing import Iterable

import yaml
from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.errors import UserError

# The blackbox_exporter module that probes each kind of endpoint (names from its example configuration).
MODULES = {"http": "http_2xx", "tcp": "tcp_connect", "tls": "tls_connect"}
DEFAULT_DOWN_FOR_MINUTES = 5
DEFAULT_CERT_WARNING_DAYS = 14
# The error-ratio windows the burn-rate alerts read, shortest first.
ERROR_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
# Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs"):
# severity -> (burn rate, long window, short window), each pair ANDed, the pairs ORed.
BURN_RATE_ALERTS = {
    "page": ((14.4, "1h", "5m"), (6, "6h", "30m")),
    "ticket": ((1, "3d", "6h"),),
}


def file_sd_targets(conn: Connection) -> list[dict]:
    """Prometheus file_sd groups, one per endpoint of each programme that is not retired.

    Each is {"targets": [target], "labels": {programme, ministry, tier, check, module}};
    `module` is the blackbox_exporter module to probe it with (http_2xx, tcp_connect,
    tls_connect), for a relabelling rule to copy into `__param_module`.
    """
    rows = conn.execute(text(
        "SELECT p.slug, m.code, p.tier, e.name, e.kind, e.target FROM endpoint e "
        "JOIN programme p ON p.id = e.programme_id JOIN ministry m ON m.id = p.ministry_id "
        "WHERE p.status <> 'retired' ORDER BY p.slug, e.name"))
    return [
        {"targets": [target],
         "labels": {"programme": slug, "ministry": ministry, "tier": str(tier), "check": name,
                    "module": MODULES[kind]}}
        for slug, ministry, tier, name, kind, target in rows
    ]


def sla_tiers(conn: Connection) -> list[dict]:
    """Every SLA tier as {tier, sla_target_percent}, lowest tier number first."""
    rows = conn.execute(text("SELECT tier, sla_target_percent FROM sla_tier ORDER BY tier"))
    return [{"tier": int(tier), "sla_target_percent": float(target)} for tier, target in rows]


def error_ratio_record(window: str) -> str:
    """The name of the recording rule holding each programme's probe error ratio over `window`."""
    return f"programme:dcops_probe_error_ratio:avg_over_time{window}"


def _number(value: float) -> str:
    """A PromQL literal without float noise (0.1 - 0.099 is 0.001, not 0.0010000000000000009)."""
    return f"{value:.10g}"


def alert_rules(
    tiers: Iterable[dict],
    *,
    down_for_minutes: int = DEFAULT_DOWN_FOR_MINUTES,
    cert_warning_days: int = DEFAULT_CERT_WARNING_DAYS,
) -> dict:
    """A Prometheus rules document: error-ratio recording rules, programme and certificate alerts, SLO burn rates.

    A programme's error ratio over a window is that of its worst check:
    max by programme of (1 - avg_over_time(dcops_probe_success[window])), labelled
    with its ministry and tier from dcops_programme_info. Per tier, the error budget is
    1 - sla_target_percent / 100 and a burn rate of B alerts above B x budget. A tier
    at 100% has no budget: any failure alerts.
    """
    if down_for_minutes < 0 or cert_warning_days < 0:
        raise UserError("the alert delays must not be negative")
    recording = [
        {"record": error_ratio_record(window),
         "expr": (f"max by (programme) (1 - avg_over_time(dcops_probe_success[{window}]))\n"
                  "  * on (programme) group_left (ministry, tier)\n"
                  "  max by (programme, ministry, tier) (dcops_programme_info)\n")}
        for window in ERROR_WINDOWS
    ]
    health = [
        {"alert": "DcopsProgrammeDown",
         "expr": "dcops_programme_up == 0",
         "for": f"{down_for_minutes}m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "Programme {{ $labels.programme }} ({{ $labels.ministry }}) is down",
             "description": (f"dcops has seen {{{{ $labels.programme }}}} down for more than {down_for_minutes} "
                             "minutes: see `dcops programme show {{ $labels.programme }}`."),
         }},
        # No data is not "down": a programme whose checks stopped reporting, or that has none, gets a
        # ticket of its own instead of a page.
        {"alert": "DcopsProgrammeNoData",
         "expr": ('dcops_programme_checks > 0 and on (programme) dcops_programme_info{status="active"} '
                  "unless on (programme) dcops_programme_up"),
         "for": "15m",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "No recent probe results for {{ $labels.programme }} ({{ $labels.ministry }})",
             "description": "Its state is unknown: see `dcops probe status` (is the prober running?).",
         }},
        {"alert": "DcopsProgrammeNotMonitored",
         "expr": 'dcops_programme_checks == 0 and on (programme) dcops_programme_info{status="active"}',
         "for": "1h",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "Programme {{ $labels.programme }} ({{ $labels.ministry }}) has no check",
             "description": "Add one: `dcops programme endpoint add {{ $labels.programme }} ...`.",
         }},
        {"alert": "DcopsCertificateExpiringSoon",
         "expr": f"dcops_tls_cert_expiry_timestamp_seconds - time() < {cert_warning_days} * 86400",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "The certificate of {{ $labels.programme }}/{{ $labels.check }} expires soon",
             "description": "It expires in {{ $value | humanizeDuration }}.",
         }},
    ]
    slo = []
    for entry in tiers:
        tier, target = int(entry["tier"]), float(entry["sla_target_percent"])
        if not 0 < target <= 100:
            raise UserError(f"tier {tier}: an SLA target must be above 0 and at most 100 percent, not {target}")
        budget = _number(max(1 - target / 100, 0.0))
        for severity, conditions in BURN_RATE_ALERTS.items():
            terms = [
                (f"(\n  {error_ratio_record(long)}{{tier=\"{tier}\"}} > ({_number(rate)} * {budget})\n"
                 f"and\n  {error_ratio_record(short)}{{tier=\"{tier}\"}} > ({_number(rate)} * {budget})\n)")
                for rate, long, short in conditions
            ]
            windows = " or ".join(f"{_number(rate)}x over {long} and {short}" for rate, long, short in conditions)
            slo.append({
                "alert": "DcopsErrorBudgetBurn",
                "expr": "\nor\n".join(terms) + "\n",
                "labels": {"severity": severity, "tier": str(tier)},
                "annotations": {
                    "summary": (f"{{{{ $labels.programme }}}} is burning its tier-{tier} error budget "
                                f"(SLA {_number(target)}%) too fast"),
                    "description": (f"Probe error ratio {{{{ $value | humanizePercentage }}}}; burn rate above "
                                    f"{windows}."),
                },
            })
    # Rules of one group run in order at the same instant: the burn-rate alerts read the
    # error ratios recorded a moment before, not those of the previous evaluation.
    return {"groups": [{"name": "dcops-slo", "rules": recording + slo}, {"name": "dcops-health", "rules": health}]}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL expressions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump_rules(document: dict) -> str:
    """A rules document as YAML, expressions as literal blocks."""
    header = "# Generated by `dcops metrics rules`: regenerate rather than edit.\n"
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


def dump_targets(targets: list[dict]) -> str:
    """file_sd targets as JSON."""
    return json.dumps(targets, indent=2, ensure_ascii=False) + "\n"
