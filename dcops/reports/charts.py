"""Inline SVG charts for reports: availability against SLA, daily state strips, capacity bars with forecast."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from html import escape
from typing import Any

from dcops.reports.render import (
    MONTHS,
    RESOURCE_LABELS,
    describe_forecast,
    format_availability,
    format_duration,
    format_share,
    format_whole,
    format_number,
    format_percent,
    format_target,
)

# Colour-blind-safe: good is blue, bad is orange to dark brown (they differ on the blue-yellow
# axis, which deuteranopia and protanopia keep, and in lightness; green against red turns into
# one olive). Every fill has at least 3:1 contrast against the white page (WCAG 1.4.11), and no
# state rests on hue alone: downtime is cross-hatched (denser when longer), maintenance striped,
# and every bar and strip carries its figure in words.
UP = "#2c7fb8"
DOWN = "#c2410c"  # a missed target; a day with 15 to 60 minutes of downtime
DOWN_MINOR = "#c07f00"  # a day with under 15 minutes of downtime
DOWN_SEVERE = "#6b2300"  # a day with over an hour of downtime
MAINTENANCE = "#5e4fa2"
UNKNOWN = "#8a949e"
INSUFFICIENT = "#8a949e"
STATUS_FILL = {"green": "#1a9850", "amber": "#f4a13a", "red": "#d73027"}
STATUS_TEXT = {"green": "#11703a", "amber": "#8a4b00", "red": "#b2182b"}
MET_TEXT = "#1f5f8b"
MISSED_TEXT = "#a3360a"
INK = "#1f2933"
MUTED = "#52606d"
GRID = "#dde2e7"
TRACK = "#eef1f4"
# White outline drawn under right-aligned labels: on a narrow screen they stay legible over a long name.
HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round"'
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'Noto Sans Lao', Arial, sans-serif"
# A day's downtime is minor under this, severe over the next (seconds).
MINOR_DOWN_SECONDS = 15 * 60
SEVERE_DOWN_SECONDS = 60 * 60
SEVERITY_LABELS = {"minor": "under 15 min", "moderate": "15 to 60 min", "severe": "over 1 h"}

# Left ends the availability axis may start at; the widest one keeping every target in the right half wins.
AXIS_STARTS = (99.5, 99.0, 98.0, 97.0, 95.0, 90.0, 80.0, 50.0, 0.0)
NAME_CHARS = 36  # longer names are shortened at a word, with "…" (the full name is in the row's title)
SPARK_POINTS = 90  # history points drawn per sparkline at most
DAYS_LISTED = 8  # days of downtime written out under a strip; the rest are counted


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _x(fraction: float) -> str:
    """A horizontal position as a percent of the chart's width: the charts stretch, their text does not."""
    fraction = min(1.0, max(0.0, fraction))
    return f"{fraction * 100:.3f}".rstrip("0").rstrip(".") + "%"


def clip_words(text: str, limit: int = NAME_CHARS) -> str:
    """A name shortened to at most `limit` characters at a word boundary, with "…"; never cut
    inside a word (a first word longer than the limit is kept whole)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut <= 0:
        cut = text.find(" ")
        return text if cut < 0 else text[:cut] + "…"
    return text[:cut].rstrip(" ,;:-–·") + "…"


def chart_name(p: dict) -> str:
    """The name a chart labels a programme with: its short name (e-CRVS), else its name, at a word."""
    return clip_words(p.get("short_name") or p.get("name") or p.get("slug") or "")


def full_name(p: dict) -> str:
    """A programme's name, with its short name in brackets when it has one: "Civil registration (e-CRVS)"."""
    name = p.get("name") or p.get("slug") or ""
    short = p.get("short_name")
    return f"{name} ({short})" if short and short != name else name


def _open(chart_id: str, height: int, title: str, desc: str, css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" width="100%" height="{height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" font-family="{FONT}" font-size="12" '
        f'fill="{INK}"><title id="{chart_id}-title">{_e(title)}</title><desc id="{chart_id}-desc">{_e(desc)}</desc>'
    )


def _hatch(pattern_id: str, background: str | None, stroke: str, *, cross: bool = False, size: int = 6,
           width: float = 1.5, opacity: float = 1.0) -> str:
    """A diagonal hatch (or cross-hatch) pattern, so that states differ by more than hue."""
    back = f'<rect width="{size}" height="{size}" fill="{background}"/>' if background else ""
    lines = f"M0,{size} L{size},0 M-1,1 L1,-1 M{size - 1},{size + 1} L{size + 1},{size - 1}"
    if cross:
        lines += f" M0,0 L{size},{size}"
    return (
        f'<pattern id="{pattern_id}" width="{size}" height="{size}" patternUnits="userSpaceOnUse">{back}'
        f'<path d="{lines}" stroke="{stroke}" stroke-width="{width}" stroke-opacity="{opacity}"/></pattern>'
    )


def _state_patterns(prefix: str) -> str:
    """The hatches of downtime (cross-hatched, denser when longer) and maintenance (striped)."""
    return (
        _hatch(f"{prefix}-down", DOWN, "#ffffff", cross=True, size=7, width=1.1, opacity=0.7)
        + _hatch(f"{prefix}-minor", DOWN_MINOR, "#ffffff", size=8, width=1.2, opacity=0.6)
        + _hatch(f"{prefix}-moderate", DOWN, "#ffffff", cross=True, size=7, width=1.1, opacity=0.7)
        + _hatch(f"{prefix}-severe", DOWN_SEVERE, "#ffffff", cross=True, size=5, width=1.0, opacity=0.75)
        + _hatch(f"{prefix}-maint", MAINTENANCE, "#ffffff", size=6, width=1.4, opacity=0.6)
    )


def _capacity_patterns(prefix: str) -> str:
    return (
        _hatch(f"{prefix}-buffer", "#f2f2f2", "#a3a3a3", size=6, width=1)
        + _hatch(f"{prefix}-n1", "#d4d4d4", "#6b6b6b", size=5, width=1)
        + _hatch(f"{prefix}-approved", None, "#ffffff", size=6, width=2, opacity=0.75)
    )


# --- (a) availability against the SLA target ----------------------------------------------------


def axis_start(targets: Iterable[float]) -> float:
    """Where the availability axis starts (percent): the highest of AXIS_STARTS that puts every target in the right half."""
    lowest = min((t for t in targets if t is not None), default=99.9)
    for start in AXIS_STARTS:
        if start <= lowest - (100.0 - lowest):
            return start
    return 0.0


def _ticks(start: float) -> list[float]:
    span = 100.0 - start
    step = next(s for s in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0) if span / s <= 6)
    count = round(span / step)
    return [round(start + i * step, 3) for i in range(count + 1)]


def _tick_label(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text + " %" if value >= 100 else text


def _row(name: str, title: str, value: str, value_class: str, graphic: str, after: str = "") -> str:
    """One programme's row of a chart: its name and its figure on a line (the figure goes to a line
    of its own when both do not fit), the graphic under them, then any notes."""
    return (
        f'<div class="row"><p class="row-head"><span class="row-name" title="{_e(title)}">{_e(name)}</span> '
        f'<span class="row-value {value_class}">{_e(value)}</span></p>{graphic}{after}</div>'
    )


def _bar_svg(css_class: str, height: int, label: str, inner: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="100%" height="{height}" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>{inner}</svg>'
    )


def availability_chart(programmes: Iterable[dict], *, axis_min_percent: float | None = None,
                       title: str = "Availability against SLA target", id_prefix: str = "avail") -> str:
    """One row per programme, in the order given: its availability as a bar on a zoomed axis, its SLA
    target as a black tick, the figure and verdict in words above the bar.

    A value below the axis start fills the whole bar in the miss colour with a broken-axis mark
    and says "off the scale"; insufficient data is grey and says so; no data is an empty track.
    """
    from dcops.reports.render import programme_status

    rows = list(programmes)
    start = axis_min_percent if axis_min_percent is not None else axis_start(p.get("target_percent") for p in rows)
    span = 100.0 - start
    statuses = [programme_status(p) for p in rows]
    met = statuses.count("met")
    judged = sum(1 for s in statuses if s in ("met", "missed"))
    desc = (
        f"One bar per programme on an axis from {_tick_label(start)} % to 100 %; a black tick marks the "
        f"programme's SLA target. {met} of {judged} programmes judged met their target."
    )
    ticks = _ticks(start)
    axis = [_open(id_prefix, 16, title, desc, "chart-axis"), f"<defs>{_state_patterns(id_prefix)}</defs>"]
    for i, tick in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        axis.append(f'<text x="{_x((tick - start) / span)}" y="12" text-anchor="{anchor}" fill="{MUTED}" '
                    f'font-size="11">{_tick_label(tick)}</text>')
    axis.append("</svg>")
    grid = "".join(f'<line x1="{_x((t - start) / span)}" x2="{_x((t - start) / span)}" y1="0" y2="18" '
                   f'stroke="{GRID}"/>' for t in ticks[1:-1])
    out = ['<div class="chart-rows chart-availability">', "".join(axis)]
    for p, state in zip(rows, statuses):
        availability = p.get("availability")
        target = p.get("target_percent")
        value_text = format_availability(availability)
        tooltip = (f"{full_name(p)} ({p.get('ministry_name') or p.get('ministry') or ''}): {value_text} against a "
                   f"target of {format_target(target)}, {state}")
        inner = [f'<rect x="0" y="2" width="100%" height="14" fill="{TRACK}"/>', grid]
        if availability is None:
            label, value_class = "no data", "none"
        else:
            percent = availability * 100
            fill = {"met": UP, "missed": f"url(#{id_prefix}-down)"}.get(state, INSUFFICIENT)
            label = value_text
            value_class = {"met": "met", "missed": "missed"}.get(state, "none")
            if percent < start:
                # Off the scale: a full bar in the state's colour, broken near its left end, and
                # the words say it, so that it reads as far below and never as an empty "no data".
                inner.append(f'<rect x="0" y="2" width="100%" height="14" fill="{fill}"/>')
                inner.append('<path d="M9,0 L15,18 M15,0 L21,18" stroke="#ffffff" stroke-width="3"/>')
                inner.append(f'<path d="M9,0 L15,18 M15,0 L21,18" stroke="{INK}" stroke-width="1"/>')
                tooltip += f" (below the axis start, {_tick_label(start)} %)"
                label += " · off the scale"
            else:
                inner.append(f'<rect x="0" y="2" width="{_x((percent - start) / span)}" height="14" fill="{fill}"/>')
            if state == "missed":
                label += " · missed"
            elif state == "insufficient data":
                label += f" · insufficient data (coverage {format_share(p.get('coverage'), 1)})"
        if target is not None and target >= start:
            tx = _x((target - start) / span)
            inner.append(f'<line x1="{tx}" x2="{tx}" y1="0" y2="18" stroke="{INK}" stroke-width="2.5"/>')
        out.append(_row(chart_name(p), full_name(p), label, value_class,
                        _bar_svg("bar", 18, tooltip, "".join(inner))))
    out.append("</div>")
    return "".join(out)


# --- (b) one strip of days per programme ---------------------------------------------------------


def day_state(day: dict) -> str:
    """How a day's cell is drawn: "down" if any downtime, else "maintenance" if any, else "unknown" if
    unknown time is at least the up time, else "up"."""
    if (day.get("down") or 0) > 0:
        return "down"
    if (day.get("maintenance") or 0) > 0:
        return "maintenance"
    if (day.get("unknown") or 0) > 0 and (day.get("unknown") or 0) >= (day.get("up") or 0):
        return "unknown"
    return "up"


def day_severity(day: dict) -> str:
    """day_state with downtime graded: "minor" under 15 min, "moderate" 15 to 60 min, "severe" over an hour."""
    down = day.get("down") or 0
    if down <= 0:
        return day_state(day)
    if down < MINOR_DOWN_SECONDS:
        return "minor"
    return "moderate" if down <= SEVERE_DOWN_SECONDS else "severe"


def _minutes(seconds: float) -> str:
    return f"{int(seconds / 60 + 0.5):,} min"


def day_tooltip(day: dict) -> str:
    """"2026-10-05: up 1,410 min, down 30 min": the day and its non-zero minutes."""
    parts = [
        f"{label} {_minutes(day.get(key) or 0)}"
        for key, label in (("up", "up"), ("down", "down"), ("maintenance", "maintenance"), ("unknown", "unknown"))
        if (day.get(key) or 0) > 0
    ]
    return f"{day.get('day')}: " + (", ".join(parts) if parts else "no time recorded")


def _run_cells(placed: list[tuple[int, dict]], xs: list[str], width: float, fills: dict[str, str]) -> list[str]:
    """The bars of a strip past two months: consecutive days drawn alike share one, its tooltip
    their summed minutes (as run_tooltip gives them), in one pass over the days.

    A year of 200 programmes is 73,000 days in 29,000 bars: grouping them first, then summing each
    bar's four figures in a pass apiece, took half the year's HTML.
    """
    cells = []
    widths: dict[int, str] = {}
    severities = [day_severity(day) for _i, day in placed]  # once per day
    n = len(placed)
    k = 0
    while k < n:
        first_i, first = placed[k]
        severity = severities[k]
        last_i, end = first_i, k + 1
        # Sums in the days' order, from 0, as sum() adds them in run_tooltip: the same minutes.
        up = first.get("up") or 0
        down = first.get("down") or 0
        maintenance = first.get("maintenance") or 0
        unknown = first.get("unknown") or 0
        while end < n:
            i, day = placed[end]
            if i != last_i + 1 or severities[end] != severity:
                break
            up += day.get("up") or 0
            down += day.get("down") or 0
            maintenance += day.get("maintenance") or 0
            unknown += day.get("unknown") or 0
            last_i, end = i, end + 1
        if end - k == 1:
            tooltip = day_tooltip(first)
        else:
            tooltip = day_tooltip({"day": f"{first.get('day')} to {placed[end - 1][1].get('day')}", "up": up,
                                   "down": down, "maintenance": maintenance, "unknown": unknown})
        columns = last_i - first_i + 1
        bar_width = widths.get(columns)
        if bar_width is None:
            bar_width = widths[columns] = _x(width * columns)
        cells.append(f'<rect x="{xs[first_i]}" width="{bar_width}" height="18"{fills[severity]}>'
                     f"<title>{_e(tooltip)}</title></rect>")
        k = end
    return cells


def run_tooltip(days: list[dict]) -> str:
    """"2026-01-01 to 2026-01-14: up 20,160 min": a run of days and their summed minutes."""
    if len(days) == 1:
        return day_tooltip(days[0])
    total = {key: sum(d.get(key) or 0 for d in days) for key in ("up", "down", "maintenance", "unknown")}
    return day_tooltip({"day": f"{days[0].get('day')} to {days[-1].get('day')}", **total})


def _day_range(first: str | None, last: str | None, programmes: list[dict]) -> list[str]:
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except (TypeError, ValueError):
        return sorted({d["day"] for p in programmes for d in p.get("days") or []})
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _short_day(day: str) -> str:
    """"2026-10-04" -> "4 Oct"."""
    try:
        parsed = date.fromisoformat(day)
    except (TypeError, ValueError):
        return str(day)
    return f"{parsed.day} {MONTHS[parsed.month - 1]}"


def down_days_text(days: Iterable[dict], limit: int = DAYS_LISTED) -> str:
    """The days with downtime in words, for paper and phones: "4 Oct 60 min · 20 Oct 30 min"; past
    `limit` days, the longest `limit` in date order and "+ N more days"; "" without downtime."""
    down = [d for d in days if (d.get("down") or 0) > 0]
    if not down:
        return ""
    shown = down
    if len(down) > limit:
        longest = sorted(down, key=lambda d: (-(d.get("down") or 0), d.get("day") or ""))[:limit]
        shown = sorted(longest, key=lambda d: d.get("day") or "")
    text = " · ".join(f"{_short_day(d.get('day'))} {format_duration(d.get('down'))}" for d in shown)
    if len(down) > len(shown):
        rest = len(down) - len(shown)
        text += f" · + {rest} more day{'' if rest == 1 else 's'}"
    return text


def strip_summary(p: dict) -> str:
    """A programme's period in a few words: "down 1 h 30 min · maint. 2 h", "no downtime", "no data"."""
    if p.get("availability") is None and not p.get("downtime_seconds"):
        return "no data"
    totals = [
        f"{label} {format_duration(p.get(key))}"
        for key, label in (("downtime_seconds", "down"), ("maintenance_seconds", "maint."), ("unknown_seconds", "unknown"))
        if p.get(key)
    ]
    return " · ".join(totals) or "no downtime"


def day_strips(programmes: Iterable[dict], *, first_day: str | None = None, last_day: str | None = None,
               title: str = "Day by day", id_prefix: str = "days") -> str:
    """One strip per programme, one cell per local day from first_day to last_day (or the days present).

    Cells: up blue; downtime cross-hatched orange to dark brown by its length (under 15 min,
    15 to 60 min, over an hour); maintenance purple striped; unknown grey. Each cell's tooltip
    gives the day and its minutes; the days with downtime are also written under the strip.
    """
    rows = list(programmes)
    days = _day_range(first_day, last_day, rows)
    column = {day: i for i, day in enumerate(days)}
    width = 1.0 / max(1, len(days))
    xs = [_x(i * width) for i in range(len(days))]
    cell_width = _x(width)
    # Up cells, the most, inherit the group's fill: a month of 200 programmes is 6,200 cells.
    fills = {"up": "", "minor": f' fill="url(#{id_prefix}-minor)"', "moderate": f' fill="url(#{id_prefix}-moderate)"',
             "severe": f' fill="url(#{id_prefix}-severe)"', "maintenance": f' fill="url(#{id_prefix}-maint)"',
             "unknown": f' fill="{UNKNOWN}"'}
    span = f"{days[0]} to {days[-1]}" if days else "no days"
    desc = (
        f"One strip per programme, one cell per day from {span}: blue up; downtime cross-hatched, orange under "
        "15 minutes, red-brown 15 to 60 minutes, dark brown over an hour; purple striped maintenance; grey "
        "unknown (no monitoring data). The days with downtime are listed under each strip."
    )
    axis = [_open(id_prefix, 16, title, desc, "chart-axis"), f"<defs>{_state_patterns(id_prefix)}</defs>"]
    weekly = len(days) <= 62
    for i, day in enumerate(days):
        number, month = int(day[8:10]), MONTHS[int(day[5:7]) - 1]
        if i == 0 or number == 1:
            label = f"{number} {month}"
        elif weekly and number in (8, 15, 22, 29) and i < len(days) - 2:
            label = str(number)
        else:
            continue
        x, anchor = (xs[i], "start") if i == 0 else (_x((i + 0.5) * width), "middle")
        axis.append(f'<text x="{x}" y="12" text-anchor="{anchor}" fill="{MUTED}" font-size="11">{label}</text>')
    axis.append("</svg>")
    out = ['<div class="chart-rows chart-days">', "".join(axis)]
    for p in rows:
        summary = strip_summary(p)
        placed = sorted((column[d["day"]], d) for d in p.get("days") or [] if d.get("day") in column)
        cells = []
        if weekly:
            for i, day in placed:
                cells.append(
                    f'<rect x="{xs[i]}" width="{cell_width}" height="18"{fills[day_severity(day)]}>'
                    f"<title>{_e(day_tooltip(day))}</title></rect>"
                )
        else:
            # Past two months a cell per day is too fine to see and too heavy to send (a year of
            # 200 programmes is 73,000 cells): consecutive days drawn alike share one bar.
            cells = _run_cells(placed, xs, width, fills)
        strip = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" width="100%" height="18" role="img" '
            f'aria-label="{_e(full_name(p))}: {_e(summary)}"><g fill="{UP}" stroke="#ffffff" stroke-width="1">'
            f'{"".join(cells)}</g></svg>'
        )
        listed = down_days_text([d for _i, d in placed])
        after = f'<p class="row-days"><span class="muted">Downtime:</span> {_e(listed)}</p>' if listed else ""
        value_class = "missed" if programme_status_of(p) == "missed" else "muted"
        out.append(_row(chart_name(p), full_name(p), summary, value_class, strip, after))
    out.append("</div>")
    return "".join(out)


def programme_status_of(p: dict) -> str:
    from dcops.reports.render import programme_status

    return programme_status(p)


# --- (c) capacity per cluster and resource ---------------------------------------------------------


def _resource_line(r: dict) -> str:
    usable = format_whole(r.get("usable"))
    used = format_percent(r.get("used_percent"))
    return f"{format_number(r.get('allocated'))} of {usable} usable ({used})"


def capacity_chart(cluster: dict, *, title: str | None = None, id_prefix: str = "cap") -> str:
    """One bar per resource of a cluster: allocated against usable, then the buffer and N+1 reserve
    as hatched tails; the status in words and the forecast run-out under each bar.

    The bar's scale is the whole capacity (or more, when allocations and submitted requests go
    past it). Approved requests (already allocated) are striped; submitted ones a dashed outline.
    """
    resources = list(cluster.get("resources") or [])
    name = cluster.get("name") or ""
    title = title or f"Cluster {name}: capacity by resource"
    # A row: label line, bar, forecast line, and a line on submitted requests when there are some.
    heights = [68 + (14 if r.get("pipeline_submitted") else 0) for r in resources]
    height = sum(heights) + 4
    desc = "; ".join(
        f"{RESOURCE_LABELS.get(r.get('resource'), r.get('resource'))}: {(r.get('status') or 'unknown').upper()}, "
        f"{_resource_line(r)}, forecast {describe_forecast(r.get('forecast'))}"
        for r in resources
    ) or "no resources"
    out = [_open(id_prefix, height, title, desc, "chart-capacity"), f"<defs>{_capacity_patterns(id_prefix)}</defs>"]
    y = 0
    for r, row_height in zip(resources, heights):
        status = r.get("status") or "green"
        capacity = float(r.get("capacity") or 0.0)
        usable = float(r.get("usable") or 0.0)
        buffer = float(r.get("buffer") or 0.0)
        allocated = float(r.get("allocated") or 0.0)
        approved = float(r.get("pipeline_approved") or 0.0)
        submitted = float(r.get("pipeline_submitted") or 0.0)
        scale = max(capacity, allocated + submitted, 1e-9)
        label = RESOURCE_LABELS.get(r.get("resource"), str(r.get("resource")))
        out.append(_status_mark(status, 0, y + 4))
        out.append(
            f'<text x="16" y="{y + 13}" font-weight="600">{_e(label)} <tspan fill="{STATUS_TEXT.get(status, INK)}">'
            f"{_e(status.upper())}</tspan></text>"
        )
        out.append(f'<text x="100%" y="{y + 13}" text-anchor="end" {HALO}>{_e(_resource_line(r))}</text>')
        bar_y = y + 20
        segments = [
            (0.0, usable, TRACK),
            (usable, usable + buffer, f"url(#{id_prefix}-buffer)"),
            (usable + buffer, capacity, f"url(#{id_prefix}-n1)"),
        ]
        for left, right, fill in segments:
            if right > left:
                out.append(
                    f'<rect x="{_x(left / scale)}" y="{bar_y}" width="{_x((right - left) / scale)}" height="20" fill="{fill}"/>'
                )
        if allocated > 0:
            out.append(
                f'<rect x="0" y="{bar_y + 3}" width="{_x(allocated / scale)}" height="14" fill="{STATUS_FILL.get(status, INK)}"/>'
            )
        if approved > 0:
            left = max(0.0, allocated - approved)
            out.append(
                f'<rect x="{_x(left / scale)}" y="{bar_y + 3}" width="{_x((allocated - left) / scale)}" height="14" '
                f'fill="url(#{id_prefix}-approved)"/>'
            )
        if submitted > 0:
            out.append(
                f'<rect x="{_x(allocated / scale)}" y="{bar_y + 3.5}" width="{_x(submitted / scale)}" height="13" '
                f'fill="none" stroke="{INK}" stroke-width="1.2" stroke-dasharray="3 2"/>'
            )
        limit = _x(usable / scale)
        out.append(f'<line x1="{limit}" x2="{limit}" y1="{bar_y - 3}" y2="{bar_y + 23}" stroke="{INK}" stroke-width="2"/>')
        forecast = describe_forecast(r.get("forecast"))
        out.append(f'<text x="0" y="{y + 57}" fill="{MUTED}">Forecast: <tspan fill="{INK}">{_e(forecast)}</tspan></text>')
        if submitted > 0:
            after = format_percent(r.get("after_pipeline_percent"))
            out.append(
                f'<text x="0" y="{y + 71}" fill="{MUTED}">With submitted requests (+{_e(format_number(submitted))}): '
                f'<tspan fill="{INK}">{_e(after)}</tspan></text>'
            )
        y += row_height
    out.append("</svg>")
    return "".join(out)


def _status_mark(status: str, x: float, y: float) -> str:
    """A shape per status (square red, triangle amber, circle green) so status never rests on hue alone."""
    fill = STATUS_FILL.get(status, INK)
    if status == "red":
        return f'<rect x="{x + 1}" y="{y}" width="10" height="10" fill="{fill}"/>'
    if status == "amber":
        return f'<polygon points="{x + 6},{y - 1} {x + 12},{y + 10} {x},{y + 10}" fill="{fill}"/>'
    return f'<circle cx="{x + 6}" cy="{y + 5}" r="5" fill="{fill}"/>'


def status_mark(status: str | None) -> str:
    """The status shape alone, as a small inline SVG for tables."""
    status = status or "green"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="12" height="12" viewBox="0 -1 12 12" aria-hidden="true">'
        f"{_status_mark(status, 0, 0)}</svg>"
    )


def sparkline(history: Iterable[dict], *, usable: float | None = None, width: int = 120, height: int = 28,
              max_points: int = SPARK_POINTS, label: str = "Allocation history") -> str:
    """A small line of daily allocations (downsampled to max_points), with the usable limit dashed."""
    points = [(h.get("day"), float(h.get("allocated") or 0.0)) for h in history or []]
    if len(points) < 2:
        return ""
    if len(points) > max_points:
        last = len(points) - 1
        points = [points[round(i * last / (max_points - 1))] for i in range(max_points)]
    top = max(max(value for _, value in points), usable or 0.0) * 1.08 or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(f"{i * step:.1f},{height - value / top * height:.1f}" for i, (_, value) in enumerate(points))
    summary = f"{label} from {points[0][0]} ({format_number(points[0][1])}) to {points[-1][0]} ({format_number(points[-1][1])})"
    limit = ""
    if usable:
        ly = f"{height - usable / top * height:.1f}"
        limit = f'<line x1="0" x2="{width}" y1="{ly}" y2="{ly}" stroke="{DOWN}" stroke-width="1" stroke-dasharray="3 2" vector-effect="non-scaling-stroke"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{_e(summary)}</title>'
        f"<desc>{'Dashed red line: the usable limit. ' if usable else ''}One point per day, at most {max_points} drawn.</desc>{limit}"
        f'<polyline points="{coords}" fill="none" stroke="{MAINTENANCE}" stroke-width="1.5" '
        f'vector-effect="non-scaling-stroke"/></svg>'
    )


# --- legends -------------------------------------------------------------------------------------


def _swatch(inner: str, defs: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="22" height="14" aria-hidden="true">'
        f"{f'<defs>{defs}</defs>' if defs else ''}{inner}</svg>"
    )


def legend(kind: str) -> str:
    """An HTML list explaining a chart's colours and patterns: kind is "availability", "days" or "capacity"."""
    p = f"lg-{kind}"
    if kind == "availability":
        items = [
            (_swatch(f'<rect width="22" height="14" fill="{UP}"/>'), "Met SLA target"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-down)"/>'), "Missed SLA target"),
            (_swatch(f'<rect width="22" height="14" fill="{INSUFFICIENT}"/>'), "Insufficient data"),
            (_swatch(f'<rect width="22" height="14" fill="{TRACK}"/><line x1="11" x2="11" y1="0" y2="14" stroke="{INK}" stroke-width="2.5"/>'), "SLA target"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-down)"/><path d="M6,0 L11,14 M11,0 L16,14" stroke="#ffffff" stroke-width="3"/><path d="M6,0 L11,14 M11,0 L16,14" stroke="{INK}" stroke-width="1"/>'), "Off the scale (below the axis)"),
        ]
    elif kind == "days":
        items = [
            (_swatch(f'<rect width="22" height="14" fill="{UP}"/>'), "Up (no downtime)"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-minor)"/>'), "Down under 15 min"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-moderate)"/>'), "Down 15 to 60 min"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-severe)"/>'), "Down over 1 h"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-maint)"/>'), "Maintenance"),
            (_swatch(f'<rect width="22" height="14" fill="{UNKNOWN}"/>'), "Mostly unknown (no data)"),
        ]
    elif kind == "capacity":
        items = [
            (_swatch(f'<rect width="22" height="14" fill="{STATUS_FILL["green"]}"/>'), "Allocated (coloured by status)"),
            (_swatch(f'<rect width="22" height="14" fill="{STATUS_FILL["green"]}"/><rect width="22" height="14" fill="url(#{p}-approved)"/>'), "Approved, not yet provisioned"),
            (_swatch(f'<rect x="1" y="1" width="20" height="12" fill="none" stroke="{INK}" stroke-dasharray="3 2"/>'), "Submitted requests"),
            (_swatch(f'<rect width="22" height="14" fill="{TRACK}"/>'), "Free, usable"),
            (_swatch(f'<line x1="11" x2="11" y1="0" y2="14" stroke="{INK}" stroke-width="2"/>'), "Usable limit"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-buffer)"/>'), "Buffer"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-n1)"/>'), "N+1 reserve (largest host)"),
        ]
    else:
        raise ValueError(f"no legend for {kind!r}")
    patterns = _capacity_patterns(p) if kind == "capacity" else _state_patterns(p)
    # The patterns once, in a drawing of no size: every swatch refers to them (ids stay unique).
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="0" height="0" class="defs" aria-hidden="true"><defs>{patterns}</defs></svg>' + '<ul class="legend">' + "".join(f"<li>{swatch}<span>{_e(text)}</span></li>" for swatch, text in items) + "</ul>"
