"""Report rendering: Jinja2 templates (HTML, Markdown), CSV and JSON from a report document."""

from __future__ import annotations

import csv
import heapq
import io
import json
import math
import traceback
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dcops import collector, display, templating
from dcops.errors import UserError
from dcops.reports.capacity import HORIZON_DAYS, HORIZON_YEARS
from dcops.resources import templates_dir

FORMATS = ("md", "html", "csv", "json")
KINDS = ("uptime", "capacity")
TEMPLATE_FORMATS = ("md", "html")

NO_DATA = display.NO_DATA  # no data is a dash, never "0 min" or "n/a"
NA = NO_DATA  # the name templates and older callers used
MINUTES_PER_DAY = 24 * 60
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RESOURCE_LABELS = {"vcpu": "vCPU", "ram_gib": "RAM (GiB)", "storage_gib": "Storage (GiB)"}
STATUS_LABELS = {"red": "Red", "amber": "Amber", "green": "Green"}
STATUS_ORDER = ("red", "amber", "green")
# A report read by people lists at most this many incidents (the longest, in time order);
# a year of a data centre can hold thousands, all of them in the JSON.
INCIDENT_LIST_LIMIT = 100
# Up to a quarter, a report read by people lists every maintenance window; past it, it counts
# them per programme or cluster (a year of 200 programmes holds some 4,700 windows, a third of
# its HTML and unreadable as a list), each with its longest. All of them are in the JSON.
MAINTENANCE_LIST_DAYS = 92

UPTIME_COLUMNS = (
    "ministry", "ministry_name", "programme", "programme_name", "short_name", "tier", "tier_name", "target_percent",
    "availability", "met", "status", "availability_attributable", "sla_basis", "period_seconds", "up_seconds",
    "downtime_seconds", "downtime_own_seconds", "downtime_dependency_seconds", "maintenance_seconds",
    "late_maintenance_seconds", "unknown_seconds", "coverage", "incident_count", "longest_incident_seconds",
    "mttr_seconds", "mtbf_seconds", "error_budget_used_percent", "partial", "monitored",
)
CAPACITY_COLUMNS = (
    "site", "site_name", "cluster", "cluster_status", "binding_resource", "earliest_run_out", "resource",
    "status", "total", "reserved", "allocation_ratio", "capacity", "largest_host", "n_plus_one_known",
    "n_plus_one_reserve", "buffer", "usable", "allocated", "free", "used_percent", "pipeline_approved",
    "pipeline_submitted", "after_pipeline_percent", "forecast_status", "slope_per_day", "days_left",
    "runs_out_on", "forecast_points",
)
# A spreadsheet runs a cell that starts with one of these as a formula; text from the
# inventory (a programme's name) must stay text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Markdown: characters that would end a table cell, start HTML or a link, or break the line.
_MARKDOWN_ESCAPES = str.maketrans(
    {
        "\\": "\\\\", "|": "\\|", "<": "\\<", ">": "\\>", "[": "\\[", "]": "\\]", "`": "\\`",
        "\r": " ", "\n": " ", "\x0b": " ", "\x0c": " ", "\x85": " ", "\u2028": " ", "\u2029": " ",
    }
)


def default_templates_dir() -> Path:
    """templates/reports/, shipped inside the package."""
    return templates_dir() / "reports"


# --- formatting (templates and charts format; they never compute) -----------------------------


def format_duration(seconds: float | None) -> str:
    """Seconds for people, to the minute: 4800 -> "1 h 20 min"; 2700 -> "45 min"; 0 -> "0 min"; None -> "—".

    A duration above zero but under half a minute is "under 1 min", never "0 min". From a day
    on, in days and hours (to the hour): 100800 -> "1 day 4 h"; 1209600 -> "14 days".
    """
    if seconds is None:
        return NO_DATA
    if seconds <= 0:
        return "0 min"
    minutes = int(seconds / 60 + 0.5)
    if minutes == 0:
        return "under 1 min"
    if minutes >= MINUTES_PER_DAY:
        hours = int(minutes / 60 + 0.5)
        days, hours = divmod(hours, 24)
        text = "1 day" if days == 1 else f"{days:,} days"
        return f"{text} {hours} h" if hours else text
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{minutes} min"
    if minutes == 0:
        return f"{hours:,} h"
    return f"{hours:,} h {minutes} min"


def format_share(ratio: float | None, digits: int = 2) -> str:
    """A 0-1 ratio as a percent, rounded DOWN: 0.99996 -> "99.99 %", so that only 1.0 shows 100 %."""
    return display.share(ratio, digits)


def format_availability(ratio: float | None) -> str:
    """Availability (0-1) as a percent with 3 decimals, rounded down: 0.99876 -> "99.876 %"; None -> "—"."""
    return display.share(ratio, 3)


def format_percent(value: float | None, digits: int = 1) -> str:
    """A 0-100 percent: 51.234 -> "51.2 %"; None -> "—"."""
    return display.percent(value, digits)


def format_target(value: float | None) -> str:
    """An SLA target percent as written: 99.9 -> "99.9 %", 99.95 -> "99.95 %"."""
    return display.percent(value)


def format_number(value: Any) -> str:
    """1500000 -> "1,500,000"; 390.4 -> "390.4"; 576.0 -> "576"; True -> "yes"; None -> "—"."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def format_money(amount: float | None, currency: str = display.CURRENCY) -> str:
    """45000000 -> "45,000,000 LAK" (the house style, dcops.display.lak); None -> "—"."""
    if currency == display.CURRENCY:
        return display.lak(amount)
    return NO_DATA if amount is None else f"{round(amount):,} {currency}"


def format_days(days: float | None) -> str:
    """380.8 -> "381 days"; 1 -> "1 day"; None -> "—"."""
    if days is None:
        return NA
    whole = int(days + 0.5) if days >= 0 else -int(-days + 0.5)
    return "1 day" if whole == 1 else f"{whole:,} days"


def format_date(day: str | None) -> str:
    """"2026-10-01" -> "1 Oct 2026" (English month names whatever the locale); None -> "—"."""
    if day is None:
        return NA
    try:
        parsed = date.fromisoformat(str(day)[:10])
    except ValueError:
        return str(day)
    return f"{parsed.day} {MONTHS[parsed.month - 1]} {parsed.year}"


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def format_time(moment: str | None, tz: str, with_zone: bool = False) -> str:
    """An ISO 8601 UTC time in the time zone `tz`: "2026-10-01T03:00:00Z" -> "2026-10-01 10:00"; None -> "—"."""
    if moment is None:
        return NA
    try:
        parsed = datetime.fromisoformat(str(moment))
    except ValueError:
        return str(moment)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    local = parsed.astimezone(_zone(tz))
    # isoformat cut to the minute is strftime's "%Y-%m-%d %H:%M" at a third of its cost (a year's
    # report writes 16,000 times) for every year from 1000 on, where %Y has its four digits.
    text = local.isoformat(" ", "minutes")[:16] if local.year >= 1000 else f"{local:%Y-%m-%d %H:%M}"
    return f"{text} ({tz})" if with_zone else text


def utc_offset(tz: str, moment: str | None) -> str:
    """The zone's offset at `moment` (or now-independent 2000-01-01 if None): "UTC+07:00"."""
    at = datetime(2000, 1, 1, tzinfo=timezone.utc)
    if moment:
        try:
            at = datetime.fromisoformat(str(moment))
            at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    offset = at.astimezone(_zone(tz)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def format_resource(resource: str | None) -> str:
    """vcpu -> "vCPU"; ram_gib -> "RAM (GiB)"; storage_gib -> "Storage (GiB)"; others as named."""
    if resource is None:
        return NA
    return RESOURCE_LABELS.get(resource, resource)


def format_status(status: str | None) -> str:
    """red -> "Red"; None -> "—"."""
    if status is None:
        return NA
    return STATUS_LABELS.get(status, str(status))


def describe_forecast(forecast: dict | None) -> str:
    """One line on a resource's run-out forecast: "runs out 14 Dec 2027 (in 381 days)", "not within 3 years",
    "unknown — not enough history"..."""
    if not forecast:
        return "no forecast"
    state = forecast.get("status")
    if state == "ok":
        days_left = forecast.get("days_left")
        # A straight line read decades ahead is no forecast: past the horizon, no date is claimed.
        if forecast.get("runs_out_on") is None or (days_left is not None and days_left > HORIZON_DAYS):
            return f"not within {HORIZON_YEARS} years"
        return f"runs out {format_date(forecast['runs_out_on'])} (in {format_days(days_left)})"
    if state == "exhausted":
        return "exhausted: at or over the usable capacity now"
    if state == "not growing":
        return "not growing: no run-out date"
    if state == "not enough history":
        return f"unknown {NO_DATA} not enough history"
    return str(state)


def format_whole(value: float | None) -> str:
    """An amount of a resource in whole units, rounded down (0.4 vCPU cannot be handed out): 390.4 -> "390"."""
    if value is None:
        return NO_DATA
    return f"{math.floor(value + 1e-9):,}"


def describe_n_plus_one(resource: dict) -> str:
    """The N+1 reserve of a resource: its amount, "n/a (shared storage)" for storage without host
    sizes (it is not on the hosts), or "hosts unknown"."""
    if resource.get("n_plus_one_known", True):
        return format_number(resource.get("n_plus_one_reserve"))
    if resource.get("resource") == "storage_gib":
        return "n/a (shared storage)"
    return "hosts unknown"


def css_string(text: Any) -> str:
    """Text as a quoted CSS string (for a print page's running title): anything but letters, digits,
    spaces and plain punctuation as a CSS escape, so that no quote, backslash or "</style>" gets out."""
    out = []
    for char in str(text):
        if char.isalnum() and char.isascii() or char in " .,:;()-_/#+·":
            out.append(char)
        else:
            out.append(f"\\{ord(char):06x}")
    return '"' + "".join(out) + '"'


def escape_markdown(text: str) -> str:
    """Text safe inside a GitHub-flavoured Markdown table cell: `|` and friends escaped, one line."""
    return text.translate(_MARKDOWN_ESCAPES)


# --- the views: what the templates show, worked out here ---------------------------------------


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


STATUSES = ("missed", "insufficient data", "met")
SORTS = ("status", "budget", "name")
SORT_CAPTIONS = {
    "status": "missed first, then insufficient data, then met; within each, by error budget used, highest first",
    "budget": "by error budget used, highest first",
    "name": "by name",
}
ATTRIBUTED_TO = {"data-centre": "the data centre", "ministry-application": "the ministry's application"}


def programme_status(p: dict) -> str:
    """"met", "missed" or "insufficient data": the document's `status`, or, in a document from
    before it had one, the verdict `met` (no verdict is insufficient data)."""
    status = p.get("status")
    if status in STATUSES:
        return status
    return {True: "met", False: "missed"}.get(p.get("met"), "insufficient data")


def sort_programmes(programmes: list[dict], sort: str = "status") -> list[dict]:
    """Programmes in a report's order: "status" (missed, insufficient data, met; each by error budget
    used, highest first), "budget" (error budget used, highest first) or "name"."""
    if sort not in SORTS:
        raise UserError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")

    def budget(p: dict) -> float:
        used = p.get("error_budget_used_percent")
        return -1.0 if used is None else float(used)

    def name(p: dict) -> str:
        return (p.get("name") or p.get("slug") or "").casefold()

    if sort == "name":
        return sorted(programmes, key=lambda p: (name(p), p.get("slug") or ""))
    if sort == "budget":
        return sorted(programmes, key=lambda p: (-budget(p), name(p)))
    return sorted(programmes, key=lambda p: (STATUSES.index(programme_status(p)), -budget(p), name(p)))


def _union_seconds(intervals: list[tuple[str | None, str | None]]) -> float:
    """Real time covered by intervals of ISO times, overlaps counted once."""
    parsed = []
    for start, end in intervals:
        try:
            parsed.append((datetime.fromisoformat(start), datetime.fromisoformat(end)))
        except (TypeError, ValueError):
            continue
    total, reach = 0.0, None
    for start, end in sorted(parsed):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def describe_attributed_to(value: str | None, names: dict[str, str] | None = None) -> str:
    """An operator's attribution in words: "dependency:gfis" -> "dependency: GFIS"; None -> "not yet recorded"."""
    if not value:
        return "not yet recorded"
    if value in ATTRIBUTED_TO:
        return ATTRIBUTED_TO[value]
    kind, _, name = str(value).partition(":")
    if kind == "external" and name:
        return f"external: {name}"
    if kind == "dependency" and name:
        return f"dependency: {(names or {}).get(name, name)}"
    return str(value)


def describe_attribution(incident: dict, names: dict[str, str] | None = None) -> str:
    """Where an incident's downtime came from: "own 30 min · dependency 60 min (National ID service,
    external)"; "" when the document has no attribution."""
    attribution = incident.get("attribution")
    if not attribution:
        return ""
    parts = []
    own = attribution.get("own_seconds")
    dependency = attribution.get("dependency_seconds")
    if own:
        parts.append(f"own {format_duration(own)}")
    if dependency:
        deps = []
        for d in attribution.get("dependencies") or []:
            label = (names or {}).get(d.get("name"), d.get("name")) if d.get("kind") == "hosted" else d.get("name")
            deps.append(f"{label}, {d.get('kind') or 'dependency'}{', root' if d.get('root') else ''}")
        parts.append(f"dependency {format_duration(dependency)}" + (f" ({'; '.join(deps)})" if deps else ""))
    text = " · ".join(parts) or "no downtime"
    if attribution.get("source") == "operator":
        text += "; set by an operator"
    return text


def _period_days(period: dict) -> int | None:
    """The number of local days a document's period covers; None when it does not say."""
    try:
        return (date.fromisoformat(period["last_day"]) - date.fromisoformat(period["first_day"])).days + 1
    except (KeyError, TypeError, ValueError):
        return None


def maintenance_by_target(maintenance: list[dict]) -> list[dict]:
    """The listed windows counted per target (a programme, a cluster): how many, their durations
    added up, how many were recorded late, and the longest (the earliest of equals); the targets
    with the most maintenance first, then by name."""
    groups: dict[str, dict] = {}
    for window in maintenance:
        group = groups.setdefault(window["target"], {"target": window["target"], "windows": 0, "seconds": 0.0,
                                                     "late": 0, "longest": window})
        group["windows"] += 1
        group["seconds"] += window.get("seconds") or 0.0
        group["late"] += 1 if window.get("late") else 0
        if (window.get("seconds") or 0.0) > (group["longest"].get("seconds") or 0.0):
            group["longest"] = window
    return sorted(groups.values(), key=lambda group: (-group["seconds"], group["target"]))


def _uptime_view(document: dict, sort: str = "status") -> dict:
    """Lists and counts the uptime templates show, derived from the document (no new figures)."""
    listed = document.get("programmes") or []
    # Documents from before not-monitored programmes were listed apart had them here, without figures.
    programmes = [p for p in listed if not (p.get("availability") is None and p.get("status") is None)]
    old_no_data = [p for p in listed if p.get("availability") is None and p.get("status") is None]
    names = {p["slug"]: p.get("short_name") or p.get("name") or p["slug"] for p in listed}
    late_windows: dict[Any, dict] = {}
    for programme in programmes:
        for window in programme.get("late_windows") or []:
            key = window.get("id") if window.get("id") is not None else (window.get("start"), window.get("change_ref"))
            entry = late_windows.setdefault(
                key, {**window, "seconds": _seconds_between(window.get("start"), window.get("end")), "programmes": []}
            )
            entry["programmes"].append(programme.get("name") or programme["slug"])
    late_ids = {window.get("id") for window in late_windows.values() if window.get("id") is not None}
    maintenance = []
    affected: set[str] = set()
    affected_known = True
    for window in document.get("maintenance") or []:
        if window.get("programme"):
            target = names.get(window["programme"], window["programme"])
        elif window.get("cluster"):
            target = f"cluster {window['cluster']}"
        else:
            target = "all programmes"
        if window.get("programmes") is not None:
            affected.update(window["programmes"])
        else:
            affected_known = False
        maintenance.append(
            {
                **window,
                "target": target,
                "seconds": _seconds_between(window.get("start"), window.get("end")),
                "late": window.get("id") in late_ids,
                "affected": [names.get(slug, slug) for slug in window.get("programmes") or []],
            }
        )
    if not affected_known:  # a document from before windows named their programmes
        affected = {p["slug"] for p in programmes if p.get("maintenance_seconds")}
    # Every incident of the period, by start and programme (then as listed); a row is made only for
    # the listed ones (a year of a data centre holds thousands, and the HTML lists a hundred).
    every = [(incident.get("start") or "", programme["slug"], k, incident, programme)
             for k, (programme, incident) in enumerate(
                 (programme, incident) for programme in programmes for incident in programme.get("incidents") or [])]
    incidents_total = len(every)
    if incidents_total > INCIDENT_LIST_LIMIT:
        # The longest; among equals, the earlier first (then in the time order's own order).
        every = heapq.nsmallest(INCIDENT_LIST_LIMIT, every, key=lambda e: (-(e[3].get("seconds") or 0), *e[:3]))
    every.sort(key=lambda e: e[:3])
    incidents = [
        {**incident, "programme": programme["slug"], "programme_name": programme.get("name") or programme["slug"],
         "short_name": programme.get("short_name")}
        for _start, _slug, _k, incident, programme in every
    ]
    if "major_incidents" in document:
        by_slug = {p["slug"]: p for p in listed}
        major = [
            {**row, "ministry_name": row.get("ministry_name")
             or (by_slug.get(row.get("programme")) or {}).get("ministry_name") or row.get("ministry")}
            for row in document.get("major_incidents") or []
        ]
    else:
        major = [row for row in incidents if row.get("major")]
    rollup = document.get("data_centre") or {}
    statuses = [programme_status(p) for p in programmes]
    not_monitored = list(document.get("not_monitored") or []) + [
        {**p, "reason": "no results"} for p in old_no_data]
    counts = {
        "monitored": rollup.get("programmes_monitored", len(programmes)),
        "met": rollup.get("programmes_met", statuses.count("met")),
        "missed": rollup.get("programmes_missed", statuses.count("missed")),
        "insufficient": rollup.get("programmes_insufficient_data", statuses.count("insufficient data")),
        "not_monitored": rollup.get("programmes_not_monitored", len(not_monitored)),
    }
    with_downtime = [p for p in programmes if p.get("downtime_seconds")]
    most_down = max(with_downtime, key=lambda p: p.get("downtime_seconds") or 0, default=None)
    period = document.get("period") or {}
    tz = period.get("timezone") or "UTC"
    settings = document.get("settings") or {}
    ordered = sort_programmes(programmes, sort)
    return {
        "programmes": ordered,
        "sort": sort,
        "sort_caption": SORT_CAPTIONS[sort],
        "missed": [p for p in ordered if programme_status(p) == "missed"],
        "insufficient": [p for p in ordered if programme_status(p) == "insufficient data"],
        "not_monitored": not_monitored,
        "counts": counts,
        "no_data_count": counts["not_monitored"],
        "with_downtime": len(with_downtime),
        "most_down": most_down,
        "incidents": incidents,
        "incidents_total": incidents_total,
        "major_incidents": major,
        "has_major_key": "major_incidents" in document,
        "maintenance": maintenance,
        # Past a quarter, the appendix counts the windows per target rather than listing them.
        "maintenance_by_target": maintenance_by_target(maintenance)
        if (_period_days(period) or 0) > MAINTENANCE_LIST_DAYS else None,
        "maintenance_seconds": _union_seconds([(w.get("start"), w.get("end")) for w in maintenance]),
        "maintenance_affected": len(affected),
        "late_windows": list(late_windows.values()),
        "late_count": len(late_windows),
        "has_unknown": bool(rollup.get("unknown_seconds")),
        "has_attribution": any("availability_attributable" in p for p in programmes),
        "min_coverage_percent": settings.get("min_coverage_percent"),
        "major_budget_percent": settings.get("major_incident_budget_percent"),
        "names": names,
        "tz_offset": utc_offset(tz, period.get("start")),
        "filters": {key: value for key, value in (document.get("filters") or {}).items() if value is not None},
        "partial_programmes": [p for p in programmes if p.get("partial")],
    }


def _capacity_view(document: dict) -> dict:
    """Lists and counts the capacity templates show, derived from the document (no new figures)."""
    clusters = []
    attention = []
    counts = {status: 0 for status in STATUS_ORDER}
    earliest = None
    unknown_n_plus_one = []
    no_history = []
    for site in document.get("sites") or []:
        for cluster in site.get("clusters") or []:
            clusters.append({"site": site, "cluster": cluster})
            if cluster.get("status") in counts:
                counts[cluster["status"]] += 1
            for resource in cluster.get("resources") or []:
                # The first run-out the forecasts stand behind: within the horizon (a document from
                # before the horizon may name a cluster's run-out a century away).
                forecast = resource.get("forecast") or {}
                day, days_left = forecast.get("runs_out_on"), forecast.get("days_left")
                if forecast.get("status") not in ("ok", "exhausted") or day is None:
                    continue
                if days_left is not None and days_left > HORIZON_DAYS:
                    continue
                if earliest is None or day < earliest[0]:
                    earliest = (day, cluster["name"])
            for resource in cluster.get("resources") or []:
                if resource.get("status") in ("red", "amber"):
                    attention.append({"site": site, "cluster": cluster, "resource": resource})
                # Storage without host sizes is shared storage, not hosts left unrecorded.
                if not resource.get("n_plus_one_known", True) and resource.get("resource") != "storage_gib":
                    unknown_n_plus_one.append({"cluster": cluster, "resource": resource})
                if (resource.get("forecast") or {}).get("status") == "not enough history":
                    no_history.append({"cluster": cluster, "resource": resource})
    attention.sort(
        key=lambda row: (
            STATUS_ORDER.index(row["resource"]["status"]),
            (row["resource"].get("forecast") or {}).get("days_left") is None,
            (row["resource"].get("forecast") or {}).get("days_left") or 0.0,
            row["cluster"]["name"],
            row["resource"]["resource"],
        )
    )
    cost = document.get("cost") or {}
    ministry_names = {m["code"]: m.get("name") or m["code"] for m in cost.get("ministries") or []}
    pipeline = document.get("pipeline") or {}
    return {
        "clusters": clusters,
        "status_counts": counts,
        "attention": attention,
        "earliest": {"day": earliest[0], "cluster": earliest[1]} if earliest else None,
        "unknown_n_plus_one": unknown_n_plus_one,
        "no_history": no_history,
        "horizon_years": HORIZON_YEARS,
        "ministry_names": ministry_names,
        "unpriced": [(m, slug) for m in cost.get("ministries") or [] for slug in m.get("unpriced") or []],
        # Programmes, not rows: a programme held on two clusters may be listed once per cluster.
        "approved_count": len({q.get("programme") for q in pipeline.get("approved") or []}),
        "submitted_count": len(pipeline.get("submitted") or []),
        "filters": {key: value for key, value in (document.get("filters") or {}).items() if value is not None},
        "tz_offset": utc_offset(document.get("timezone") or "UTC", document.get("generated_at")),
    }


# --- CSV ---------------------------------------------------------------------------------------


def spreadsheet_text(value: Any) -> Any:
    """A cell as a spreadsheet should take it: text that it would run as a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return spreadsheet_text(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def _csv(header: tuple[str, ...], rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue()


def _uptime_rows(document: dict) -> list[tuple]:
    rows = []
    for p in document.get("programmes") or []:
        monitored = not (p.get("availability") is None and p.get("status") is None)
        rows.append(
            (
                p.get("ministry"), p.get("ministry_name"), p.get("slug"), p.get("name"), p.get("short_name"),
                p.get("tier"), p.get("tier_name"), p.get("target_percent"), p.get("availability"), p.get("met"),
                programme_status(p) if monitored else "not monitored", p.get("availability_attributable"),
                p.get("sla_basis"), p.get("period_seconds"), p.get("up_seconds"), p.get("downtime_seconds"),
                p.get("downtime_own_seconds"), p.get("downtime_dependency_seconds"), p.get("maintenance_seconds"),
                p.get("late_maintenance_seconds"), p.get("unknown_seconds"), p.get("coverage"), p.get("incident_count"),
                p.get("longest_incident_seconds"), p.get("mttr_seconds"), p.get("mtbf_seconds"),
                p.get("error_budget_used_percent"), p.get("partial"), monitored,
            )
        )
    for p in document.get("not_monitored") or []:
        rows.append((p.get("ministry"), p.get("ministry_name"), p.get("slug"), p.get("name"), p.get("short_name"),
                     p.get("tier"), p.get("tier_name"), p.get("target_percent"), None, None, "not monitored", None,
                     None, p.get("period_seconds"), *([None] * 14), False))
    return rows


def _capacity_rows(document: dict) -> list[tuple]:
    rows = []
    for site in document.get("sites") or []:
        for c in site.get("clusters") or []:
            for r in c.get("resources") or []:
                f = r.get("forecast") or {}
                rows.append(
                    (
                        site.get("code"), site.get("name"), c.get("name"), c.get("status"), c.get("binding_resource"),
                        c.get("earliest_run_out"), r.get("resource"), r.get("status"), r.get("total"),
                        r.get("reserved"), r.get("allocation_ratio"), r.get("capacity"), r.get("largest_host"),
                        r.get("n_plus_one_known"), r.get("n_plus_one_reserve"), r.get("buffer"), r.get("usable"),
                        r.get("allocated"), r.get("free"), r.get("used_percent"), r.get("pipeline_approved"),
                        r.get("pipeline_submitted"), r.get("after_pipeline_percent"), f.get("status"),
                        f.get("slope_per_day"), f.get("days_left"), f.get("runs_out_on"), f.get("points"),
                    )
                )
    return rows


def render_csv(document: dict) -> str:
    """The document as CSV, header first: one row per programme (uptime) or per cluster resource (capacity).

    Values are the document's own (seconds, 0-1 ratios, 0-100 percents); null is an empty
    cell, booleans are true/false, and text that a spreadsheet would run as a formula gets a
    leading apostrophe.
    """
    if document.get("kind") == "uptime":
        return _csv(UPTIME_COLUMNS, _uptime_rows(document))
    return _csv(CAPACITY_COLUMNS, _capacity_rows(document))


# --- Jinja2 ------------------------------------------------------------------------------------



@lru_cache(maxsize=16)
def _environment(fmt: str, search_path: tuple[str, ...]):
    """The Jinja2 environment of one format: HTML autoescaped; Markdown escaped for table cells.

    Cached: building filters and compiling templates once per process keeps a render fast;
    Jinja still reloads a template whose file changed.
    """
    import jinja2
    from markupsafe import Markup

    from dcops.reports import charts

    if fmt == "html":

        def finalize(value: Any) -> Any:
            return NA if value is None else value

        autoescape: Any = True
    else:

        def finalize(value: Any) -> Any:
            # Markdown has no autoescape: every printed value is made safe for a table cell,
            # unless a template marks it safe.
            if value is None:
                return NA
            if isinstance(value, Markup):
                return value
            return escape_markdown(str(value))

        autoescape = False

    env = templating.environment(
        loader=jinja2.FileSystemLoader(list(search_path)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )

    @jinja2.pass_context
    def localtime(context, moment: str | None, with_zone: bool = False) -> str:
        return format_time(moment, context["tz"], with_zone)

    env.filters.update(
        duration=format_duration,
        availability=format_availability,
        share=format_share,
        percent=format_percent,
        target=format_target,
        number=format_number,
        money=format_money,
        days=format_days,
        date=format_date,
        localtime=localtime,
        resource=format_resource,
        status=format_status,
        forecast=describe_forecast,
        attributed_to=describe_attributed_to,
        attribution=describe_attribution,
        programme_status=programme_status,
        n_plus_one=describe_n_plus_one,
        whole=format_whole,
    )
    env.filters["css_string"] = lambda value: Markup(css_string(value))
    # A figure that must not break across lines (a headline's "99.179 %", "3 windows").
    env.filters["nbsp"] = lambda value: str(value).replace(" ", "\u00a0")

    def safe(function):
        def wrapper(*args, **kwargs):
            return Markup(function(*args, **kwargs))

        wrapper.__doc__ = function.__doc__
        return wrapper

    env.globals.update(
        availability_chart=safe(charts.availability_chart),
        day_strips=safe(charts.day_strips),
        capacity_chart=safe(charts.capacity_chart),
        sparkline=safe(charts.sparkline),
        legend=safe(charts.legend),
        status_mark=safe(charts.status_mark),
        chart_name=charts.chart_name,
        full_name=charts.full_name,
    )
    return env


def _template_location(tb) -> tuple[str, int] | None:
    """The innermost template frame of a traceback: Jinja gives template frames the template's file and line."""
    found = None
    for frame, line in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            found = (filename, line)
    return found


def _render_template(document: dict, kind: str, fmt: str, template: Path | None, sort: str = "status") -> str:
    import jinja2

    defaults = default_templates_dir()
    if template is not None:
        template = Path(template)
        if not template.is_file():
            raise UserError(f"{template}: no such template file")
        search_path = (str(template.resolve().parent), str(defaults))
        name = template.name
        shown = str(template)
    else:
        search_path = (str(defaults),)
        name = f"{kind}.{fmt}.j2"
        shown = str(defaults / name)

    if kind == "uptime":
        tz = (document.get("period") or {}).get("timezone") or "UTC"
    else:
        tz = document.get("timezone") or "UTC"
    try:
        _zone(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {tz!r} in the report document") from None
    view = _uptime_view(document, sort) if kind == "uptime" else _capacity_view(document)

    env = _environment(fmt, search_path)
    try:
        compiled = env.get_template(name)
        with collector.paused():  # a year's page is some 100,000 short-lived strings and dicts
            return compiled.render(document=document, view=view, tz=tz, kind=kind, fmt=fmt)
    except jinja2.TemplateSyntaxError as error:
        where = error.filename or shown
        raise UserError(f"{where}:{error.lineno}: template syntax error: {_first_line(error.message)}") from None
    except jinja2.TemplateNotFound as error:
        raise UserError(f"{shown}: template {error.name} not found (looked in {', '.join(search_path)})") from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as error:
        location = _template_location(error.__traceback__)
        where = f"{location[0]}:{location[1]}" if location else shown
        raise UserError(f"{where}: cannot render the template: {_first_line(str(error))}") from None


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "error"


# What a file's name says of its format, for `--out FILE` without `--format`.
EXTENSION_FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".csv": "csv", ".json": "json"}


def format_for(fmt: str | None, path: Path | str | None) -> str:
    """The format a document is written in: `fmt` if given, else the one the file's name ends in,
    else md (standard output). A name that says one format and `fmt` another is refused."""
    named = None
    if path is not None and str(path) != "-":
        named = EXTENSION_FORMATS.get(Path(path).suffix.lower())
    if fmt is not None:
        if fmt not in FORMATS:
            raise UserError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
        if named is not None and named != fmt:
            raise UserError(f"--format {fmt}, but {path} is named for {named}: change one of the two")
        return fmt
    if named is not None:
        return named
    if path is None or str(path) == "-":
        return "md"
    raise UserError(f"cannot tell a format from the name {path}: give --format ({', '.join(FORMATS)}) "
                    f"or end the name in {', '.join(sorted(EXTENSION_FORMATS))}")


def render(document: dict, fmt: str, *, template: Path | None = None, sort: str = "status") -> str:
    """A report document as text: "md" and "html" from Jinja2 templates, "csv" or "json".

    html and md use templates/reports/{kind}.{fmt}.j2, or `template` (an operator's edited
    copy; it may extend or import the default templates by name). `sort` orders an uptime
    report's programmes: "status" (missed, insufficient data, met, each by error budget used),
    "budget" or "name". The output depends on the document (and those choices) alone: the same
    document gives byte-identical text.
    """
    if sort not in SORTS:
        raise UserError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    kind = document.get("kind")
    if kind not in KINDS:
        raise UserError(f"unknown report kind {kind!r}: expected one of {', '.join(KINDS)}")
    if template is not None and fmt not in TEMPLATE_FORMATS:
        raise UserError(f"a template applies to the md and html formats only, not {fmt}")
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return render_csv(document)
    return _render_template(document, kind, fmt, template, sort)
