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
    format_number,
    format_percent,
    format_target,
)

# Colour-blind-safe (ColorBrewer RdYlBu / RdYlGn ends), and never colour alone: down and
# maintenance are also patterned, and every bar carries a text label.
UP = "#1a9850"
DOWN = "#d73027"
MAINTENANCE = "#4575b4"
UNKNOWN = "#bdbdbd"
STATUS_FILL = {"green": "#1a9850", "amber": "#f4a13a", "red": "#d73027"}
STATUS_TEXT = {"green": "#11703a", "amber": "#8a4b00", "red": "#b2182b"}
INK = "#1f2933"
MUTED = "#52606d"
GRID = "#dde2e7"
TRACK = "#eef1f4"
# White outline drawn under right-aligned labels: on a narrow screen they stay legible over a long name.
HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round"'
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'Noto Sans Lao', Arial, sans-serif"

# Left ends the availability axis may start at; the widest one keeping every target in the right half wins.
AXIS_STARTS = (99.5, 99.0, 98.0, 97.0, 95.0, 90.0, 80.0, 50.0, 0.0)
NAME_CHARS = 30  # longer names are cut in the chart (the full name is in the row's tooltip)
SPARK_POINTS = 90  # history points drawn per sparkline at most


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _x(fraction: float) -> str:
    """A horizontal position as a percent of the chart's width: the charts stretch, their text does not."""
    fraction = min(1.0, max(0.0, fraction))
    return f"{fraction * 100:.3f}".rstrip("0").rstrip(".") + "%"


def _clip(text: str, limit: int = NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
    return _hatch(f"{prefix}-down", DOWN, "#ffffff", cross=True, size=7, width=1.1, opacity=0.7) + _hatch(
        f"{prefix}-maint", MAINTENANCE, "#ffffff", size=6, width=1.4, opacity=0.6
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


def availability_chart(programmes: Iterable[dict], *, axis_min_percent: float | None = None,
                       title: str = "Availability against SLA target", id_prefix: str = "avail") -> str:
    """Horizontal bars: each programme's availability on a zoomed axis, its SLA target as a black tick.

    Values below the axis start are drawn as a left arrow and labelled "below N %"; a
    programme without data gets "no data". Missed targets are red and cross-hatched.
    """
    rows = list(programmes)
    start = axis_min_percent if axis_min_percent is not None else axis_start(p.get("target_percent") for p in rows)
    span = 100.0 - start
    top, row_height = 22, 38
    height = top + row_height * len(rows) + 4
    met = sum(1 for p in rows if p.get("met") is True)
    desc = (
        f"One bar per programme on an axis from {_tick_label(start)} % to 100 %; a black tick marks the "
        f"programme's SLA target. {met} of {len(rows)} programmes met their target."
    )
    out = [_open(id_prefix, height, title, desc, "chart-availability"), f"<defs>{_state_patterns(id_prefix)}</defs>"]
    ticks = _ticks(start)
    grid = []
    for i, tick in enumerate(ticks):
        x = _x((tick - start) / span)
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        grid.append(f'<line x1="{x}" x2="{x}" y1="{top - 4}" y2="{height - 2}" stroke="{GRID}"/>')
        grid.append(f'<text x="{x}" y="12" text-anchor="{anchor}" fill="{MUTED}" font-size="11">{_tick_label(tick)}</text>')
    out.append("".join(grid))
    for index, p in enumerate(rows):
        y = top + index * row_height
        name = p.get("name") or p.get("slug") or ""
        availability = p.get("availability")
        target = p.get("target_percent")
        state = p.get("met")
        value_text = format_availability(availability)
        tooltip = f"{name} ({p.get('ministry_name') or p.get('ministry') or ''}): {value_text} against a target of {format_target(target)}"
        tooltip += {True: ", met", False: ", missed"}.get(state, ", no verdict")
        row = [f'<text x="0" y="{y + 13}" font-weight="600">{_e(_clip(name))}</text>']
        bar_y = y + 19
        row.append(f'<rect x="0" y="{bar_y}" width="100%" height="14" fill="{TRACK}"/>')
        if availability is None:
            label = "no data"
        else:
            percent = availability * 100
            fill = UP if state is True else f"url(#{id_prefix}-down)" if state is False else UNKNOWN
            label = value_text
            if percent < start:  # clamped: an arrow at the axis start, and the tooltip says so in words
                row.append(f'<polygon points="0,{bar_y + 7} 9,{bar_y} 9,{bar_y + 14}" fill="{DOWN}"/>')
                tooltip += f" (below the axis start, {_tick_label(start)} %)"
            else:
                row.append(f'<rect x="0" y="{bar_y}" width="{_x((percent - start) / span)}" height="14" fill="{fill}"/>')
            if state is False:
                label += " · missed"
        if target is not None and target >= start:
            tx = _x((target - start) / span)
            row.append(f'<line x1="{tx}" x2="{tx}" y1="{bar_y - 3}" y2="{bar_y + 17}" stroke="{INK}" stroke-width="2.5"/>')
        colour = STATUS_TEXT["red"] if state is False else INK
        row.append(f'<text x="100%" y="{y + 13}" text-anchor="end" fill="{colour}" font-weight="600" {HALO}>{_e(label)}</text>')
        out.append(f"<g><title>{_e(tooltip)}</title>{''.join(row)}</g>")
    out.append("</svg>")
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


def _runs(placed: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """Consecutive (column, day) pairs in the same state, grouped."""
    runs: list[list[tuple[int, dict]]] = []
    for i, day in placed:
        if runs and runs[-1][-1][0] == i - 1 and day_state(runs[-1][-1][1]) == day_state(day):
            runs[-1].append((i, day))
        else:
            runs.append([(i, day)])
    return runs


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


def day_strips(programmes: Iterable[dict], *, first_day: str | None = None, last_day: str | None = None,
               title: str = "Day by day", id_prefix: str = "days") -> str:
    """One strip per programme, one cell per local day from first_day to last_day (or the days present).

    Cells: up green, down red cross-hatched, maintenance blue striped, unknown grey; each
    cell's tooltip gives the day and its minutes in each state.
    """
    rows = list(programmes)
    days = _day_range(first_day, last_day, rows)
    column = {day: i for i, day in enumerate(days)}
    width = 1.0 / max(1, len(days))
    xs = [_x(i * width) for i in range(len(days))]
    cell_width = _x(width)
    # Up cells, the most, inherit the group's fill: a month of 200 programmes is 6,200 cells.
    fills = {"up": "", "down": f' fill="url(#{id_prefix}-down)"', "maintenance": f' fill="url(#{id_prefix}-maint)"',
             "unknown": f' fill="{UNKNOWN}"'}
    top, row_height = 20, 40
    height = top + row_height * len(rows) + 2
    span = f"{days[0]} to {days[-1]}" if days else "no days"
    desc = (
        f"One strip per programme, one cell per day from {span}: green up, red cross-hatched any downtime, "
        "blue striped maintenance, grey unknown (no monitoring data)."
    )
    out = [_open(id_prefix, height, title, desc, "chart-days"), f"<defs>{_state_patterns(id_prefix)}</defs>"]
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
        out.append(f'<text x="{x}" y="12" text-anchor="{anchor}" fill="{MUTED}" font-size="11">{label}</text>')
    for index, p in enumerate(rows):
        y = top + index * row_height
        name = p.get("name") or p.get("slug") or ""
        totals = [
            f"{label} {format_duration(p.get(key))}"
            for key, label in (("downtime_seconds", "down"), ("maintenance_seconds", "maint."), ("unknown_seconds", "unknown"))
            if p.get(key)
        ]
        out.append(f'<text x="0" y="{y + 13}" font-weight="600">{_e(_clip(name))}</text>')
        out.append(f'<text x="100%" y="{y + 13}" text-anchor="end" fill="{MUTED}" {HALO}>{_e(" · ".join(totals) or "no downtime")}</text>')
        out.append(f'<g transform="translate(0 {y + 18})" fill="{UP}" stroke="#ffffff" stroke-width="1">')
        placed = sorted((column[d["day"]], d) for d in p.get("days") or [] if d.get("day") in column)
        cells = []
        if weekly:
            for i, day in placed:
                cells.append(
                    f'<rect x="{xs[i]}" width="{cell_width}" height="18"{fills[day_state(day)]}>'
                    f"<title>{_e(day_tooltip(day))}</title></rect>"
                )
        else:
            # Past two months a cell per day is too fine to see and too heavy to send (a year of
            # 200 programmes is 73,000 cells): consecutive days in the same state share one bar.
            for run in _runs(placed):
                first_i, first_day = run[0]
                last_i, last_day = run[-1]
                cells.append(
                    f'<rect x="{xs[first_i]}" width="{_x(width * (last_i - first_i + 1))}" height="18"'
                    f'{fills[day_state(first_day)]}><title>{_e(run_tooltip([d for _i, d in run]))}</title></rect>'
                )
        out.append("".join(cells))
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# --- (c) capacity per cluster and resource ---------------------------------------------------------


def _resource_line(r: dict) -> str:
    usable = format_number(r.get("usable"))
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
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-down)"/>', _state_patterns(p)), "Missed SLA target"),
            (_swatch(f'<rect width="22" height="14" fill="{TRACK}"/><line x1="11" x2="11" y1="0" y2="14" stroke="{INK}" stroke-width="2.5"/>'), "SLA target"),
        ]
    elif kind == "days":
        items = [
            (_swatch(f'<rect width="22" height="14" fill="{UP}"/>'), "Up (no downtime)"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-down)"/>', _state_patterns(p)), "Some downtime"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-maint)"/>', _state_patterns(p)), "Maintenance"),
            (_swatch(f'<rect width="22" height="14" fill="{UNKNOWN}"/>'), "Mostly unknown (no data)"),
        ]
    elif kind == "capacity":
        defs = _capacity_patterns(p)
        items = [
            (_swatch(f'<rect width="22" height="14" fill="{STATUS_FILL["green"]}"/>'), "Allocated (coloured by status)"),
            (_swatch(f'<rect width="22" height="14" fill="{STATUS_FILL["green"]}"/><rect width="22" height="14" fill="url(#{p}-approved)"/>', defs), "Approved, not yet provisioned"),
            (_swatch(f'<rect x="1" y="1" width="20" height="12" fill="none" stroke="{INK}" stroke-dasharray="3 2"/>'), "Submitted requests"),
            (_swatch(f'<rect width="22" height="14" fill="{TRACK}"/>'), "Free, usable"),
            (_swatch(f'<line x1="11" x2="11" y1="0" y2="14" stroke="{INK}" stroke-width="2"/>'), "Usable limit"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-buffer)"/>', defs), "Buffer"),
            (_swatch(f'<rect width="22" height="14" fill="url(#{p}-n1)"/>', defs), "N+1 reserve (largest host)"),
        ]
    else:
        raise ValueError(f"no legend for {kind!r}")
    return '<ul class="legend">' + "".join(f"<li>{swatch}<span>{_e(text)}</span></li>" for swatch, text in items) + "</ul>"
