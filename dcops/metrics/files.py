"""Files for an existing Prometheus: file_sd targets for blackbox_exporter, and alert and SLO rules."""

from __future__ import annotations

import json
import re
from typing import Iterable

import yaml
from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.errors import UserError
from dcops.vocabulary import BLACKBOX_JOB, DEFAULT_BLACKBOX, DEFAULT_TARGETS_FILE, HOSTNAME_RE

# The blackbox_exporter module that probes each kind of endpoint (names from its example configuration).
MODULES = {"http": "http_2xx", "tcp": "tcp_connect", "tls": "tls_connect"}
# blackbox_exporter's default --timeout-offset: it gives a probe the scrape's timeout less this.
BLACKBOX_TIMEOUT_OFFSET_MS = 500
DEFAULT_DOWN_FOR_MINUTES = 5
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
DEFAULT_CERT_WARNING_DAYS = 14
# The error-ratio windows the burn-rate alerts read, shortest first.
ERROR_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
# Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs"):
# severity -> (burn rate, long window, short window), each pair ANDed, the pairs ORed.
BURN_RATE_ALERTS = {
    "page": ((14.4, "1h", "5m"), (6, "6h", "30m")),
    "ticket": ((1, "3d", "6h"),),
}


def re2_alternation(values: Iterable[str]) -> str:
    """Literal values as one RE2 alternation, `a|b` with RE2's special characters escaped: the
    regex of a label matcher, which Prometheus and Alertmanager anchor at both ends."""
    return "|".join(_RE2_SPECIAL.sub(r"\\\1", value) for value in sorted(set(values)))


def file_sd_targets(conn: Connection) -> list[dict]:
    """Prometheus file_sd groups, one per endpoint of each programme that is not retired.

    Each is {"targets": [target], "labels": {programme, ministry, tier, check, module,
    __scrape_interval__, __scrape_timeout__}}; `module` is the blackbox_exporter module to probe
    it with (http_2xx, tcp_connect, tls_connect), for a relabelling rule to copy into
    `__param_module`; the interval is the check's and the timeout its timeout plus
    blackbox_exporter's half-second margin (at most the interval): Prometheus probes each target
    as often as dcops' own prober would, which `dcops probe sync` reads back step by step.
    """
    rows = conn.execute(text(
        "SELECT p.slug, m.code, p.tier, e.name, e.kind, e.target, e.interval_seconds, e.timeout_seconds "
        "FROM endpoint e JOIN programme p ON p.id = e.programme_id JOIN ministry m ON m.id = p.ministry_id "
        "WHERE p.status <> 'retired' ORDER BY p.slug, e.name"))
    groups = []
    for slug, ministry, tier, name, kind, target, interval, timeout in rows:
        labels = {"programme": slug, "ministry": ministry, "tier": str(tier), "check": name, "module": MODULES[kind],
                  **scrape_labels(int(interval), float(timeout))}
        groups.append({"targets": [target], "labels": labels})
    return groups


def scrape_labels(interval_seconds: int, timeout_seconds: float) -> dict[str, str]:
    """The labels that give one file_sd target its own scrape interval and timeout (Prometheus'
    durations are whole units: milliseconds here). blackbox_exporter gives a probe the scrape's
    timeout less half a second, so the check's own timeout is what the probe gets."""
    interval_ms = max(int(interval_seconds), 1) * 1000
    timeout_ms = min(int(round(float(timeout_seconds) * 1000)) + BLACKBOX_TIMEOUT_OFFSET_MS, interval_ms)
    return {"__scrape_interval__": f"{interval_ms // 1000}s", "__scrape_timeout__": f"{timeout_ms}ms"}


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


def blackbox_address(raw: str) -> str:
    """HOST:PORT of blackbox_exporter (a name, an IPv4 address or a bracketed IPv6 one), or a UserError."""
    value = (raw or "").strip()
    host, colon, port = value.rpartition(":")
    named = HOSTNAME_RE.match(host) or re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", host)  # or a bracketed IPv6 address
    if not colon or not port.isdigit() or not 0 < int(port) < 65536 or not named:
        raise UserError(f"--blackbox must be HOST:PORT, such as {DEFAULT_BLACKBOX}, not {raw!r}")
    return f"{host}:{int(port)}"


def scrape_config(*, blackbox: str = DEFAULT_BLACKBOX, targets_file: str = DEFAULT_TARGETS_FILE,
                  job: str = BLACKBOX_JOB) -> dict:
    """A Prometheus `scrape_configs` document: one job probing every target of `targets_file`
    (`dcops metrics targets`) through blackbox_exporter at `blackbox` (HOST:PORT).

    The relabelling is blackbox_exporter's usual one: the target becomes the `target` parameter
    and the `instance` label, the target's `module` label the `module` parameter, and the scrape
    goes to blackbox_exporter. Each target's own `__scrape_interval__` and `__scrape_timeout__`
    (from its check) take the place of the job's defaults below.
    """
    blackbox = blackbox_address(blackbox)
    if not targets_file or not targets_file.isprintable():
        raise UserError("--targets must be a file path on one line")
    if not job or not job.isprintable():
        raise UserError("--job must be a job name on one line")
    return {"scrape_configs": [{
        "job_name": job,
        "metrics_path": "/probe",
        "scrape_interval": "60s",
        "scrape_timeout": "10s",
        "file_sd_configs": [{"files": [targets_file], "refresh_interval": "1m"}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["module"], "target_label": "__param_module"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": blackbox},
        ],
    }]}


# What dcops' own prober accepts from an http check by default (expect_status 200-399, redirects
# not followed): blackbox_exporter takes a list of codes, not a range.
HTTP_VALID_STATUS_CODES = list(range(200, 400))


def blackbox_modules() -> dict:
    """blackbox_exporter's configuration (blackbox.yml): the modules `dcops metrics targets` names,
    each probing as dcops' own prober does: http_2xx a GET that takes any status 200-399 and does
    not follow redirects; tcp_connect a connection; tls_connect a connection and a verified TLS
    handshake. No module timeout: the probe gets the scrape's (the check's timeout)."""
    return {"modules": {
        MODULES["http"]: {"prober": "http", "http": {
            "valid_status_codes": HTTP_VALID_STATUS_CODES, "no_follow_redirects": True,
            "preferred_ip_protocol": "ip4", "ip_protocol_fallback": True}},
        MODULES["tcp"]: {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": True}},
        MODULES["tls"]: {"prober": "tcp", "tcp": {"tls": True, "preferred_ip_protocol": "ip4",
                                                  "ip_protocol_fallback": True}},
    }}


def checks_blackbox_differs_on(conn: Connection) -> list[str]:
    """The checks (programme/check) whose expect_status or body_contains the modules do not express:
    blackbox_exporter probes them with the defaults above."""
    rows = conn.execute(text(
        "SELECT p.slug, e.name FROM endpoint e JOIN programme p ON p.id = e.programme_id "
        "WHERE p.status <> 'retired' AND e.kind = 'http' AND (e.expect_status <> '200-399' OR e.body_contains <> '') "
        "ORDER BY p.slug, e.name"))
    return [f"{slug}/{name}" for slug, name in rows]


def dump_scrape_config(document: dict) -> str:
    """A scrape_configs document as YAML, with how to use it."""
    header = ("# Generated by `dcops metrics scrape-config`: paste the job under scrape_configs in prometheus.yml.\n"
              "# blackbox_exporter runs with the modules of `dcops metrics blackbox-config`;\n"
              "# `dcops probe sync` reads probe_success of this job back into dcops.\n")
    return header + yaml.dump(document, Dumper=_FlowDumper, sort_keys=False, allow_unicode=True, width=100)


def dump_blackbox_modules(document: dict) -> str:
    """blackbox.yml as YAML."""
    header = "# Generated by `dcops metrics blackbox-config`: blackbox_exporter's --config.file.\n"
    return header + yaml.dump(document, Dumper=_FlowDumper, sort_keys=False, allow_unicode=True, width=100)


class _FlowDumper(_Dumper):
    """Lists of plain values (label names, status codes) on one line, as Prometheus' examples write them."""


_FlowDumper.add_representer(list, lambda dumper, value: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", value, flow_style=all(isinstance(v, (int, str)) for v in value)))
