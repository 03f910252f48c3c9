"""Report rendering: Jinja2 templates (HTML, Markdown), CSV and JSON from a report document."""

from __future__ import annotations

import csv
import io
import json
import math
import traceback
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dcops.errors import UserError
from dcops.resources import templates_dir

FORMATS = ("md", "html", "csv", "json")
KINDS = ("uptime", "capacity")
TEMPLATE_FORMATS = ("md", "html")

NA = "n/a"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RESOURCE_LABELS = {"vcpu": "vCPU", "ram_gib": "RAM (GiB)", "storage_gib": "Storage (GiB)"}
STATUS_LABELS = {"red": "Red", "amber": "Amber", "green": "Green"}
STATUS_ORDER = ("red", "amber", "green")
# A report read by people lists at most this many incidents (the longest, in time order);
# a year of a data centre can hold thousands, all of them in the JSON.
INCIDENT_LIST_LIMIT = 100

UPTIME_COLUMNS = (
    "ministry", "ministry_name", "programme", "programme_name", "tier", "tier_name", "target_percent",
    "availability", "met", "period_seconds", "up_seconds", "downtime_seconds", "maintenance_seconds",
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
    """Seconds for people, to the minute: 4800 -> "1 h 20 min"; 2700 -> "45 min"; 0 -> "0 min"; None -> "n/a".

    A duration above zero but under half a minute is "under 1 min", never "0 min".
    """
    if seconds is None:
        return NA
    if seconds <= 0:
        return "0 min"
    minutes = int(seconds / 60 + 0.5)
    if minutes == 0:
        return "under 1 min"
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{minutes} min"
    if minutes == 0:
        return f"{hours:,} h"
    return f"{hours:,} h {minutes} min"


def format_share(ratio: float | None, digits: int = 2) -> str:
    """A 0-1 ratio as a percent, rounded DOWN: 0.99996 -> "99.99 %", so that only 1.0 shows 100 %."""
    if ratio is None:
        return NA
    scale = 10 ** (digits + 2)
    # The epsilon absorbs float noise (0.99876 * 1e5 = 99875.99999...).
    value = math.floor(ratio * scale + 1e-6) / 10**digits
    return f"{value:.{digits}f} %"


def format_availability(ratio: float | None) -> str:
    """Availability (0-1) as a percent with 3 decimals, rounded down: 0.99876 -> "99.876 %"; None -> "n/a"."""
    return format_share(ratio, 3)


def format_percent(value: float | None, digits: int = 1) -> str:
    """A 0-100 percent: 51.234 -> "51.2 %"; None -> "n/a"."""
    if value is None:
        return NA
    return f"{value:,.{digits}f} %"


def format_target(value: float | None) -> str:
    """An SLA target percent as written: 99.9 -> "99.9 %", 99.95 -> "99.95 %"."""
    if value is None:
        return NA
    return f"{float(value):.6g} %"


def format_number(value: Any) -> str:
    """1500000 -> "1,500,000"; 390.4 -> "390.4"; 576.0 -> "576"; True -> "yes"; None -> "n/a"."""
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


def format_money(amount: float | None, currency: str = "LAK") -> str:
    """45000000 -> "LAK 45,000,000"; None -> "n/a"."""
    if amount is None:
        return NA
    return f"{currency} {round(amount):,}"


def format_days(days: float | None) -> str:
    """380.8 -> "381 days"; 1 -> "1 day"; None -> "n/a"."""
    if days is None:
        return NA
    whole = int(days + 0.5) if days >= 0 else -int(-days + 0.5)
    return "1 day" if whole == 1 else f"{whole:,} days"


def format_date(day: str | None) -> str:
    """"2026-10-01" -> "1 Oct 2026" (English month names whatever the locale); None -> "n/a"."""
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
    """An ISO 8601 UTC time in the time zone `tz`: "2026-10-01T03:00:00Z" -> "2026-10-01 10:00"; None -> "n/a"."""
    if moment is None:
        return NA
    try:
        parsed = datetime.fromisoformat(str(moment))
    except ValueError:
        return str(moment)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    local = parsed.astimezone(_zone(tz))
    text = f"{local:%Y-%m-%d %H:%M}"
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
    """red -> "Red"; None -> "n/a"."""
    if status is None:
        return NA
    return STATUS_LABELS.get(status, str(status))


def describe_forecast(forecast: dict | None) -> str:
    """One line on a resource's run-out forecast: "runs out 14 Dec 2027 (in 381 days)", "not enough history"..."""
    if not forecast:
        return "no forecast"
    state = forecast.get("status")
    if state == "ok":
        if forecast.get("runs_out_on") is None:
            return "runs out beyond any date shown"
        return f"runs out {format_date(forecast['runs_out_on'])} (in {format_days(forecast.get('days_left'))})"
    if state == "exhausted":
        return "exhausted: at or over the usable capacity now"
    if state == "not growing":
        return "not growing: no run-out date"
    if state == "not enough history":
        return "not enough history to forecast"
    return str(state)


def escape_markdown(text: str) -> str:
    """Text safe inside a GitHub-flavoured Markdown table cell: `|` and friends escaped, one line."""
    return text.translate(_MARKDOWN_ESCAPES)


# --- the views: what the templates show, worked out here ---------------------------------------


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def _uptime_view(document: dict) -> dict:
    """Lists and counts the uptime templates show, derived from the document (no new figures)."""
    programmes = document.get("programmes") or []
    names = {p["slug"]: p.get("name") or p["slug"] for p in programmes}
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
    for window in document.get("maintenance") or []:
        if window.get("programme"):
            target = names.get(window["programme"], window["programme"])
        elif window.get("cluster"):
            target = f"cluster {window['cluster']}"
        else:
            target = "all programmes"
        maintenance.append(
            {
                **window,
                "target": target,
                "seconds": _seconds_between(window.get("start"), window.get("end")),
                "late": window.get("id") in late_ids,
            }
        )
    incidents = sorted(
        (
            {**incident, "programme": programme["slug"], "programme_name": names[programme["slug"]]}
            for programme in programmes
            for incident in programme.get("incidents") or []
        ),
        key=lambda row: (row.get("start") or "", row["programme"]),
    )
    incidents_total = len(incidents)
    if incidents_total > INCIDENT_LIST_LIMIT:
        longest = sorted(incidents, key=lambda row: (-(row.get("seconds") or 0), row.get("start") or ""))
        kept = {id(row) for row in longest[:INCIDENT_LIST_LIMIT]}
        incidents = [row for row in incidents if id(row) in kept]
    rollup = document.get("data_centre") or {}
    counted = (rollup.get("programmes_met") or 0) + (rollup.get("programmes_missed") or 0)
    period = document.get("period") or {}
    tz = period.get("timezone") or "UTC"
    return {
        "missed": [p for p in programmes if p.get("met") is False],
        "no_data": [p for p in programmes if p.get("availability") is None],
        # Programmes without any up or down time are listed apart (documents before that list had
        # them among the programmes, with no figures).
        "not_monitored": list(document.get("not_monitored") or []),
        "no_data_count": max(0, (rollup.get("programmes") or 0) - counted) + len(document.get("not_monitored") or []),
        "incidents": incidents,
        "incidents_total": incidents_total,
        "maintenance": maintenance,
        "late_windows": list(late_windows.values()),
        "late_count": len(late_windows),
        "has_unknown": bool(rollup.get("unknown_seconds")),
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
    for site in document.get("sites") or []:
        for cluster in site.get("clusters") or []:
            clusters.append({"site": site, "cluster": cluster})
            if cluster.get("status") in counts:
                counts[cluster["status"]] += 1
            if cluster.get("earliest_run_out") and (earliest is None or cluster["earliest_run_out"] < earliest[0]):
                earliest = (cluster["earliest_run_out"], cluster["name"])
            for resource in cluster.get("resources") or []:
                if resource.get("status") in ("red", "amber"):
                    attention.append({"site": site, "cluster": cluster, "resource": resource})
                if not resource.get("n_plus_one_known", True):
                    unknown_n_plus_one.append({"cluster": cluster, "resource": resource})
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
        "ministry_names": ministry_names,
        "unpriced": [(m, slug) for m in cost.get("ministries") or [] for slug in m.get("unpriced") or []],
        "approved_count": len(pipeline.get("approved") or []),
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
        rows.append(
            (
                p.get("ministry"), p.get("ministry_name"), p.get("slug"), p.get("name"), p.get("tier"),
                p.get("tier_name"), p.get("target_percent"), p.get("availability"), p.get("met"),
                p.get("period_seconds"), p.get("up_seconds"), p.get("downtime_seconds"), p.get("maintenance_seconds"),
                p.get("late_maintenance_seconds"), p.get("unknown_seconds"), p.get("coverage"), p.get("incident_count"),
                p.get("longest_incident_seconds"), p.get("mttr_seconds"), p.get("mtbf_seconds"),
                p.get("error_budget_used_percent"), p.get("partial"), True,
            )
        )
    for p in document.get("not_monitored") or []:
        rows.append((p.get("ministry"), p.get("ministry_name"), p.get("slug"), p.get("name"), p.get("tier"),
                     p.get("tier_name"), p.get("target_percent"), None, None, p.get("period_seconds"),
                     *([None] * 11), False))
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

    env = jinja2.Environment(
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
    )

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


def _render_template(document: dict, kind: str, fmt: str, template: Path | None) -> str:
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
    view = _uptime_view(document) if kind == "uptime" else _capacity_view(document)

    env = _environment(fmt, search_path)
    try:
        compiled = env.get_template(name)
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


def render(document: dict, fmt: str, *, template: Path | None = None) -> str:
    """A report document as text: "md" and "html" from Jinja2 templates, "csv" or "json".

    html and md use templates/reports/{kind}.{fmt}.j2, or `template` (an operator's edited
    copy; it may extend or import the default templates by name). The output depends on the
    document alone: the same document gives byte-identical text.
    """
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
    return _render_template(document, kind, fmt, template)
