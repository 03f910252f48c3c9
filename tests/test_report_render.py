"""Report rendering: every format, escaping, no external resources, determinism, CSV and Markdown shape, templates."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import time
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dcops.errors import UserError
from dcops.reports import charts
from dcops.reports.render import (
    CAPACITY_COLUMNS,
    FORMATS,
    UPTIME_COLUMNS,
    format_availability,
    format_duration,
    format_money,
    format_time,
    render,
)

SCRIPT = "<script>alert(1)</script>"
PIPE = "Budget | Finance"
LAO = "ລະບົບສາທາລະນະສຸກ"
DAY = 86_400.0


def _days(first: str, count: int, events: dict[int, dict]) -> list[dict]:
    """count local days from first: up all day, except the states given per day index."""
    start = date.fromisoformat(first)
    days = []
    for i in range(count):
        state = {"down": 0.0, "maintenance": 0.0, "unknown": 0.0, **events.get(i, {})}
        up = DAY - state["down"] - state["maintenance"] - state["unknown"]
        days.append({"day": (start + timedelta(days=i)).isoformat(), "up": up, **state})
    return days


def _rollup(**overrides) -> dict:
    rollup = {
        "programmes": 5, "programmes_met": 3, "programmes_missed": 1, "availability": 0.99952, "coverage": 0.99981,
        "period_seconds": 5 * 31 * DAY, "maintenance_seconds": 18_000.0, "late_maintenance_seconds": 7_200.0,
        "downtime_seconds": 6_300.0, "unknown_seconds": 2_400.0, "up_seconds": 5 * 31 * DAY - 26_700.0,
        "incident_count": 4, "longest_incident_seconds": 3_600.0, "mttr_seconds": 1_575.0,
        "mtbf_seconds": 660_000.0, "error_budget_used_percent": 48.4,
    }
    rollup.update(overrides)
    return rollup


def _programme(slug: str, name: str, ministry: str, ministry_name: str, *, tier=1, target=99.9, availability=0.9999,
               met=True, down=0.0, maintenance=0.0, late=0.0, unknown=0.0, incidents=(), late_windows=(),
               days=None, partial=False) -> dict:
    period = 31 * DAY
    return {
        "slug": slug, "name": name, "ministry": ministry, "ministry_name": ministry_name, "tier": tier,
        "tier_name": {1: "Critical", 2: "Important", 3: "Standard"}[tier], "target_percent": target,
        "availability": availability, "met": met, "period_seconds": period, "maintenance_seconds": maintenance,
        "late_maintenance_seconds": late, "downtime_seconds": down, "unknown_seconds": unknown,
        "up_seconds": period - down - maintenance - unknown, "coverage": None if availability is None else 1 - unknown / period,
        "incident_count": len(incidents), "longest_incident_seconds": max((i["seconds"] for i in incidents), default=0.0),
        "mttr_seconds": (sum(i["seconds"] for i in incidents) / len(incidents)) if incidents else None,
        "mtbf_seconds": (period / len(incidents)) if incidents else None,
        "error_budget_used_percent": None if availability is None else round(100 * down / (period * (100 - target) / 100), 1),
        "partial": partial, "incidents": list(incidents), "late_windows": list(late_windows),
        "days": days if days is not None else _days("2026-10-01", 31, {}),
    }


LATE_WINDOW = {"id": 4, "start": "2026-10-12T15:00:00Z", "end": "2026-10-12T17:00:00Z",
               "recorded_at": "2026-10-12T15:40:00Z", "change_ref": "CHG-1042", "reason": "disk swap"}


def uptime_document(*, partial: bool = False, frozen: bool = False, programmes: int | None = None) -> dict:
    """An uptime document for October 2026 in Vientiane, with hostile names and every kind of day."""
    incidents_a = [
        {"start": "2026-10-04T02:00:00Z", "end": "2026-10-04T03:00:00Z", "seconds": 3600.0, "reason": "database timeout"},
        {"start": "2026-10-20T09:00:00Z", "end": "2026-10-20T09:30:00Z", "seconds": 1800.0, "reason": "TLS certificate expired"},
    ]
    incidents_b = [{"start": "2026-10-07T01:00:00Z", "end": "2026-10-07T01:10:00Z", "seconds": 600.0, "reason": SCRIPT}]
    incidents_c = [{"start": "2026-10-15T05:00:00Z", "end": "2026-10-15T05:05:00Z", "seconds": 300.0, "reason": "reboot | retry"}]
    rows = [
        _programme("dhis2", "DHIS2 health information", "moh", "Ministry of Health", availability=0.99798, met=False,
                   down=5400.0, incidents=incidents_a, late=7200.0, maintenance=7200.0, late_windows=[LATE_WINDOW],
                   days=_days("2026-10-01", 31, {3: {"down": 3600.0}, 11: {"maintenance": 7200.0}, 19: {"down": 1800.0}})),
        _programme("evax", SCRIPT, "moh", "Ministry of Health", tier=2, target=99.5, availability=0.99978, met=True,
                   down=600.0, incidents=incidents_b, unknown=2400.0,
                   days=_days("2026-10-01", 31, {6: {"down": 600.0}, 25: {"unknown": 2400.0}, 26: {"unknown": DAY}})),
        _programme("budget", PIPE, "mof", "Ministry of Finance", tier=2, target=99.5, availability=0.99988, met=True,
                   down=300.0, incidents=incidents_c, maintenance=10800.0,
                   days=_days("2026-10-01", 31, {14: {"down": 300.0}, 17: {"maintenance": 10800.0}})),
        _programme("emis", f"Education MIS {LAO}", "moe", "Ministry of Education", tier=3, target=99.0, availability=1.0,
                   met=True),
        _programme("newapp", "New application", "moe", "Ministry of Education", tier=3, target=99.0, availability=None,
                   met=None, unknown=31 * DAY, partial=True,
                   days=_days("2026-10-01", 31, {i: {"unknown": DAY} for i in range(31)})),
    ]
    if programmes is not None:
        base = rows
        rows = []
        for i in range(programmes):
            row = copy.deepcopy(base[i % len(base)])
            row["slug"] = f"{row['slug']}-{i}"
            row["name"] = f"{row['name']} {i}"
            rows.append(row)
    return {
        "kind": "uptime",
        "title": "Uptime report",
        "data_centre_name": "National Data Centre",
        "period": {"label": "2026-10", "start": "2026-09-30T17:00:00Z", "end": "2026-10-31T17:00:00Z",
                   "timezone": "Asia/Vientiane", "partial": partial, "first_day": "2026-10-01", "last_day": "2026-10-31"},
        "generated_at": "2026-11-01T02:00:00Z",
        "filters": {"ministry": None, "programme": None},
        "frozen": {"id": 3, "inputs_digest": "sha256:" + "ab" * 32, "frozen_at": "2026-11-02T03:00:00Z"} if frozen else None,
        "inputs_digest": "sha256:" + "ab" * 32,
        "data_centre": _rollup(programmes=len(rows)),
        "ministries": [
            {"code": "moh", "name": "Ministry of Health", **_rollup(programmes=2, programmes_met=1, programmes_missed=1)},
            {"code": "mof", "name": "Ministry of Finance", **_rollup(programmes=1, programmes_met=1, programmes_missed=0)},
            {"code": "moe", "name": "Ministry of Education", **_rollup(programmes=2, programmes_met=1, programmes_missed=0,
                                                                       availability=1.0)},
        ],
        "programmes": rows,
        "maintenance": [
            {"id": 1, "programme": "budget", "cluster": None, "start": "2026-10-18T01:00:00Z", "end": "2026-10-18T04:00:00Z",
             "recorded_at": "2026-10-10T08:00:00Z", "recorded_by": "ops1", "change_ref": "CHG-1001",
             "reason": "database upgrade", "announced": True},
            {"id": 4, "programme": None, "cluster": "vte-gen1", "start": LATE_WINDOW["start"], "end": LATE_WINDOW["end"],
             "recorded_at": LATE_WINDOW["recorded_at"], "recorded_by": "ops2", "change_ref": "CHG-1042",
             "reason": "disk swap", "announced": False},
        ],
    }


def _history(start: str, days: int, first: float, per_day: float) -> list[dict]:
    day0 = date.fromisoformat(start)
    return [{"day": (day0 + timedelta(days=i)).isoformat(), "allocated": round(first + per_day * i)} for i in range(days)]


def _resource(resource: str, *, total, reserved, ratio, largest, allocated, buffer_percent=10.0, status="green",
              forecast=None, approved=0, submitted=0, history=()) -> dict:
    capacity = (total - reserved) * ratio
    n1 = largest * ratio if largest is not None else 0.0
    buffer = capacity * buffer_percent / 100
    usable = max(0.0, capacity - n1 - buffer)
    return {
        "resource": resource, "total": total, "reserved": reserved, "allocation_ratio": ratio, "capacity": capacity,
        "largest_host": largest, "n_plus_one_reserve": n1, "n_plus_one_known": largest is not None, "buffer": buffer,
        "usable": usable, "allocated": allocated, "free": usable - allocated,
        "used_percent": round(100 * allocated / usable, 2) if usable else None, "pipeline_approved": approved,
        "pipeline_submitted": submitted,
        "after_pipeline_percent": round(100 * (allocated + submitted) / usable, 2) if usable else None,
        "forecast": forecast or {"status": "not enough history", "slope_per_day": None, "days_left": None,
                                 "runs_out_on": None, "points": len(history)},
        "status": status, "history": list(history),
    }


def capacity_document(*, clusters: int = 3, history_days: int = 365) -> dict:
    """A capacity document: one red, one amber, one green cluster (repeated for `clusters`)."""
    templates = [
        ("vte-gen1", "amber", "ram_gib", "2027-02-11", [
            _resource("vcpu", total=160, reserved=16, ratio=4.0, largest=32, allocated=200, approved=8, submitted=16,
                      forecast={"status": "ok", "slope_per_day": 0.5, "days_left": 380.8, "runs_out_on": "2027-12-14",
                                "points": history_days},
                      history=_history("2025-11-01", history_days, 20, 0.5)),
            _resource("ram_gib", total=1536, reserved=96, ratio=1.0, largest=384, allocated=860, status="amber",
                      submitted=64, forecast={"status": "ok", "slope_per_day": 1.8, "days_left": 102.6,
                                              "runs_out_on": "2027-02-11", "points": history_days},
                      history=_history("2025-11-01", history_days, 200, 1.8)),
            _resource("storage_gib", total=40000, reserved=0, ratio=1.0, largest=None, allocated=12000,
                      forecast={"status": "not growing", "slope_per_day": -1.0, "days_left": None, "runs_out_on": None,
                                "points": history_days},
                      history=_history("2025-11-01", history_days, 12400, -1.0)),
        ]),
        ("vte-db1", "red", "vcpu", "2026-11-01", [
            _resource("vcpu", total=64, reserved=8, ratio=2.0, largest=16, allocated=80, status="red",
                      forecast={"status": "exhausted", "slope_per_day": 0.2, "days_left": 0.0,
                                "runs_out_on": "2026-11-01", "points": 30},
                      history=_history("2026-10-02", 30, 74, 0.2)),
            _resource("ram_gib", total=512, reserved=32, ratio=1.0, largest=128, allocated=280, status="amber",
                      forecast={"status": "ok", "slope_per_day": 0.5, "days_left": 45.2, "runs_out_on": "2026-12-16",
                                "points": 30},
                      history=_history("2026-10-02", 30, 265, 0.5)),
        ]),
        ("lpq-edge1", "green", None, None, [
            _resource("vcpu", total=32, reserved=4, ratio=4.0, largest=16, allocated=10),
        ]),
    ]
    sites: dict[str, dict] = {}
    for i in range(clusters):
        name, status, binding, run_out, resources = templates[i % len(templates)]
        site_code = "lpq-dc2" if name.startswith("lpq") else "vte-dc1"
        site = sites.setdefault(site_code, {
            "code": site_code,
            "name": "Luang Prabang edge site" if site_code == "lpq-dc2" else "National Data Centre, Vientiane",
            "clusters": [],
        })
        suffix = "" if i < len(templates) else f"-{i}"
        site["clusters"].append({"name": name + suffix, "status": status, "binding_resource": binding,
                                 "earliest_run_out": run_out, "resources": copy.deepcopy(resources)})
    return {
        "kind": "capacity",
        "title": "Capacity report",
        "data_centre_name": "National Data Centre",
        "generated_at": "2026-11-01T02:00:00Z",
        "timezone": "Asia/Vientiane",
        "filters": {"site": None},
        "settings": {"buffer_percent": 10.0, "red_days": 30, "amber_days": 120},
        "sites": [sites[code] for code in sorted(sites)],
        "top_consumers": {
            "vcpu": {"ministries": [{"code": "moh", "amount": 120}, {"code": "mof", "amount": 64}],
                     "programmes": [{"slug": "dhis2", "ministry": "moh", "amount": 64}]},
            "ram_gib": {"ministries": [{"code": "moh", "amount": 512}], "programmes": [{"slug": "dhis2", "ministry": "moh", "amount": 256}]},
            "storage_gib": {"ministries": [], "programmes": []},
        },
        "cost": {"currency": "LAK", "ministries": [
            {"code": "moh", "name": "Ministry of Health", "monthly_lak": 45_000_000, "programmes": 4, "unpriced": ["legacy-app"]},
            {"code": "mof", "name": SCRIPT, "monthly_lak": 78_000_000, "programmes": 2, "unpriced": []},
        ], "total_lak": 123_000_000},
        "pipeline": {
            "approved": [{"id": 3, "programme": "new-app", "ministry": "moe", "plan": "vm-medium", "cluster": "vte-gen1"}],
            "submitted": [{"id": 5, "programme": "x", "ministry": "mof", "plan": "db-large"}],
        },
    }


DOCUMENTS = {"uptime": uptime_document, "capacity": capacity_document}


class _Collector(HTMLParser):
    """Every tag with its attributes, and the text outside <title> elements."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _markdown_tables(text: str) -> list[list[str]]:
    """The tables of a Markdown text, each a list of its lines; each must follow and precede a blank line."""
    lines = text.splitlines()
    tables, current = [], []
    for number, line in enumerate(lines):
        if line.startswith("|"):
            if not current:
                assert number == 0 or lines[number - 1] == "", f"no blank line before table: {line}"
            current.append(line)
        elif current:
            assert line == "", f"no blank line after table: {current[-1]}"
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _cells(line: str) -> int:
    """Cells of one Markdown table row: the pipes that are not backslash-escaped, less one."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line)) - 1


# --- formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_deterministically(kind, fmt):
    document = DOCUMENTS[kind]()
    first = render(document, fmt)
    assert first.strip()
    assert render(copy.deepcopy(document), fmt) == first
    assert document == DOCUMENTS[kind]()  # rendering never changes the document


def test_json_is_the_document_sorted():
    document = uptime_document()
    text = render(document, "json")
    assert json.loads(text) == document
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert LAO in text


def test_unknown_format_and_kind_are_user_errors():
    with pytest.raises(UserError, match="pdf"):
        render(uptime_document(), "pdf")
    with pytest.raises(UserError, match="kind"):
        render({**uptime_document(), "kind": "inventory"}, "html")
    with pytest.raises(UserError, match="md and html"):
        render(uptime_document(), "csv", template=Path("x.j2"))


# --- HTML -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_html_is_escaped_and_self_contained(kind):
    html = render(DOCUMENTS[kind](), "html")
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    without_namespace = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_namespace and "https://" not in without_namespace
    collector = _Collector()
    collector.feed(html)
    for tag, attrs in collector.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "script")
        assert not any(name.startswith("on") for name in attrs)
        for name in ("src", "href"):
            assert not attrs.get(name, "").startswith(("http", "//")), (tag, attrs)
    assert "@media print" in html and "@page" in html and 'name="viewport"' in html


def test_uptime_html_sections_and_figures():
    html = render(uptime_document(), "html")
    assert "National Data Centre" in html
    assert "Asia/Vientiane" in html
    assert "2026-11-01 09:00" in html  # generated_at 02:00Z in Vientiane
    assert "99.952 %" in html  # headline
    # newapp has no figures (a document from before not-monitored programmes were listed apart):
    # it is not one of the monitored programmes of the headline, but listed apart.
    assert "3 of 4 monitored programmes" in html and "1 not monitored" in html
    assert "1 h 45 min" not in html  # the downtime of all programmes is not added up as if it were real time
    assert "99.798 %" in html  # dhis2: 0.99798 * 1e5 is 99797.99999..., still shown as 99.798
    assert html.index("Executive summary") < html.index("<svg") < html.index("By programme") < html.index("Notes")
    assert "counted neither as up nor as down" in html
    assert "Partial period" not in html
    assert "Frozen report" not in html


def test_late_maintenance_is_flagged():
    html = render(uptime_document(), "html")
    assert "recorded late" in html
    assert "Maintenance recorded late" in html and "CHG-1042" in html
    markdown = render(uptime_document(), "md")
    assert "recorded late" in markdown.lower()
    assert "CHG-1042" in markdown


def test_partial_period_and_frozen_banners():
    html = render(uptime_document(partial=True, frozen=True), "html")
    assert "Partial period." in html
    assert "Frozen report #3" in html and "inputs digest" in html and "sha256:abab" in html
    markdown = render(uptime_document(partial=True, frozen=True), "md")
    assert "Partial period" in markdown and "Frozen report #3" in markdown


def test_availability_chart_zooms_clamps_and_has_titles():
    rows = uptime_document()["programmes"]
    rows[1] = {**rows[1], "availability": 0.95, "met": False}
    svg = charts.availability_chart(rows, id_prefix="a")
    assert svg.startswith('<div class="chart-rows') and "<title" in svg and "<desc" in svg
    assert charts.axis_start([99.9, 99.5, 99.0]) == 98.0
    assert charts.axis_start([99.9]) == 99.5
    assert "(below the axis start, 98 %)" in svg and ">95.000 % · off the scale · missed</span>" in svg
    # Off the scale: a full bar in the miss pattern and a broken-axis mark, not an empty track.
    evax = svg.split("off the scale · missed</span>")[1].split("</svg>")[0]
    assert '<rect x="0" y="2" width="100%" height="14" fill="url(#a-down)"/>' in evax
    assert '<path d="M9,0 L15,18 M15,0 L21,18"' in evax
    assert "&lt;script&gt;" in svg and SCRIPT not in svg
    assert "no data" in svg


def test_day_strip_has_one_cell_per_day():
    document = uptime_document()
    svg = charts.day_strips(document["programmes"], first_day="2026-10-01", last_day="2026-10-31", id_prefix="d")
    titles = re.findall(r"<rect [^>]*><title>(\d{4}-\d\d-\d\d): ([^<]*)</title></rect>", svg)
    assert len(titles) == 31 * len(document["programmes"])
    first = [day for day, _ in titles[:31]]
    assert first == [f"2026-10-{d:02d}" for d in range(1, 32)]
    assert ("2026-10-04", "up 1,380 min, down 60 min") in titles
    assert ("2026-10-12", "up 1,320 min, maintenance 120 min") in titles
    # By severity: dhis2's 60 and 30 min days are 15 to 60 min; evax's 10 and budget's 5 min under 15.
    assert svg.count('fill="url(#d-moderate)"') == 2
    assert svg.count('fill="url(#d-minor)"') == 2
    assert svg.count('fill="url(#d-severe)"') == 0
    assert svg.count('fill="url(#d-maint)"') == 2
    # The minutes in words, for paper and phones, not only in the tooltips.
    assert '<span class="muted">Downtime:</span> 4 Oct 1 h · 20 Oct 30 min</p>' in svg
    assert charts.day_state({"up": 80000, "unknown": 6400}) == "up"
    assert charts.day_state({"up": 0, "unknown": DAY}) == "unknown"


def test_capacity_html_states_status_in_words_and_forecast():
    html = render(capacity_document(), "html")
    for word in ("Red", "Amber", "Green", "RED", "AMBER", "GREEN"):
        assert word in html
    assert "runs out 11 Feb 2027 (in 103 days)" in html
    assert "unknown — not enough history" in html
    assert "123,000,000 LAK" in html and "45,000,000 LAK" in html and "LAK 1" not in html
    # Storage with no largest host is shared storage: no N+1 of a host, and not "hosts unknown".
    assert "n/a (shared storage)" in html and "hosts unknown" not in html
    assert "<polyline" in html  # sparklines
    assert "&lt;script&gt;" in html


def test_capacity_html_stays_small_for_fifty_clusters():
    document = capacity_document(clusters=50, history_days=365)
    assert sum(len(c["resources"]) for s in document["sites"] for c in s["clusters"]) >= 100
    html = render(document, "html")
    assert len(html.encode()) < 1_000_000
    assert max(len(re.findall(r"[\d.]+,[\d.]+", m)) for m in re.findall(r'points="([^"]*)"', html)) <= charts.SPARK_POINTS


def test_every_chart_has_title_and_desc():
    document = capacity_document()
    cluster = document["sites"][1]["clusters"][0]
    programmes = uptime_document()["programmes"]
    svgs = [
        charts.availability_chart(programmes),
        charts.day_strips(programmes),
        charts.capacity_chart(cluster),
        charts.sparkline(cluster["resources"][0]["history"], usable=cluster["resources"][0]["usable"]),
    ]
    for svg in svgs:
        assert (svg.startswith("<svg") and svg.endswith("</svg>")) or (
            svg.startswith('<div class="chart-rows') and svg.endswith("</div>"))
        assert "<title" in svg and "<desc" in svg


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_documents_render(fmt):
    uptime = uptime_document()
    uptime.update(programmes=[], ministries=[], maintenance=[],
                  data_centre={key: (None if key in ("availability", "coverage", "mttr_seconds", "mtbf_seconds",
                                                     "error_budget_used_percent") else 0)
                               for key in _rollup()})
    capacity = {**capacity_document(), "sites": [], "top_consumers": {}, "pipeline": {"approved": [], "submitted": []},
                "cost": {"currency": "LAK", "ministries": [], "total_lak": 0}}
    for document in (uptime, capacity):
        assert render(document, fmt).strip()
    if fmt in ("html", "md"):
        assert "—" in render(uptime, fmt) and "n/a" not in render(uptime, fmt)  # null availability and coverage


def test_unknown_time_zone_is_a_user_error():
    document = uptime_document()
    document["period"]["timezone"] = "Mars/Olympus"
    with pytest.raises(UserError, match="Mars/Olympus"):
        render(document, "html")


# --- Markdown -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_markdown_tables_are_consistent(kind):
    markdown = render(DOCUMENTS[kind](), "md")
    tables = _markdown_tables(markdown)
    assert len(tables) >= 3
    for table in tables:
        assert re.fullmatch(r"\|( *:?-+:? *\|)+", table[1]), table[1]
        widths = {_cells(line) for line in table}
        assert len(widths) == 1, table
    assert "<svg" not in markdown
    assert not re.search(r"(?<!\\)<", markdown)  # no raw HTML: every < from the data is escaped


def test_markdown_escapes_cells():
    markdown = render(uptime_document(), "md")
    assert "Budget \\| Finance" in markdown
    assert "\\<script\\>alert(1)\\</script\\>" in markdown
    assert "reboot \\| retry" in markdown
    assert "counted neither as up nor as down" in markdown
    assert "99.952 %" in markdown


# --- CSV ------------------------------------------------------------------------------------------


def test_uptime_csv_parses_back():
    document = uptime_document()
    rows = list(csv.reader(io.StringIO(render(document, "csv"))))
    assert tuple(rows[0]) == UPTIME_COLUMNS
    assert len(rows) == 1 + len(document["programmes"])
    by_slug = {row[2]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert by_slug["budget"]["programme_name"] == PIPE
    assert by_slug["evax"]["programme_name"] == SCRIPT
    assert by_slug["dhis2"]["met"] == "false" and by_slug["newapp"]["availability"] == ""
    assert float(by_slug["dhis2"]["downtime_seconds"]) == 5400.0


def test_capacity_csv_parses_back():
    document = capacity_document()
    text = render(document, "csv")
    assert "\r" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CAPACITY_COLUMNS
    resources = [r for s in document["sites"] for c in s["clusters"] for r in c["resources"]]
    assert len(rows) == 1 + len(resources) == 7
    first = dict(zip(rows[0], rows[1]))
    assert first["forecast_status"] and first["n_plus_one_known"] in ("true", "false")


def test_csv_text_cannot_become_a_formula():
    document = uptime_document()
    document["programmes"][0]["name"] = "=HYPERLINK(1)"
    rows = list(csv.reader(io.StringIO(render(document, "csv"))))
    assert rows[1][3] == "'=HYPERLINK(1)"


# --- templates ------------------------------------------------------------------------------------


def test_custom_template_is_used(tmp_path):
    custom = tmp_path / "mine.html.j2"
    custom.write_text(
        '{% extends "uptime.html.j2" %}{% block heading %}Ministerial briefing: {{ document.period.label }}{% endblock %}\n',
        encoding="utf-8",
    )
    html = render(uptime_document(), "html", template=custom)
    assert "Ministerial briefing: 2026-10" in html
    assert "&lt;script&gt;" in html and SCRIPT not in html
    plain = tmp_path / "short.md.j2"
    plain.write_text("Availability {{ document.data_centre.availability|availability }} {{ document.programmes[1].name }}\n")
    assert render(uptime_document(), "md", template=plain) == "Availability 99.952 % \\<script\\>alert(1)\\</script\\>\n"


def test_broken_template_names_file_and_line(tmp_path):
    broken = tmp_path / "broken.html.j2"
    broken.write_text("<h1>{{ document.title }}</h1>\n<p>\n{% if document.title %}\nno end\n", encoding="utf-8")
    with pytest.raises(UserError) as error:
        render(uptime_document(), "html", template=broken)
    message = str(error.value)
    assert "\n" not in message
    assert f"{broken}:" in message and re.search(r":\d+:", message)
    assert message.startswith(str(broken))

    typo = tmp_path / "typo.md.j2"
    typo.write_text("line one\n{{ document.no_such_field }}\n", encoding="utf-8")
    with pytest.raises(UserError) as error:
        render(uptime_document(), "md", template=typo)
    assert str(error.value).startswith(f"{typo}:2:")

    with pytest.raises(UserError, match="no such template file"):
        render(uptime_document(), "html", template=tmp_path / "missing.html.j2")


# --- formatting and speed -------------------------------------------------------------------------


def test_formatting():
    assert format_duration(4800) == "1 h 20 min"
    assert format_duration(2700) == "45 min"
    assert format_duration(0) == "0 min"
    assert format_duration(20) == "under 1 min"
    assert format_duration(7200) == "2 h"
    assert format_duration(None) == "—"
    assert format_duration(86_400) == "1 day"
    assert format_duration(100_800) == "1 day 4 h"  # 28 h
    assert format_duration(14 * 86_400 + 1_700) == "14 days"  # to the hour: 28 min more is no hour
    assert format_availability(0.99876) == "99.876 %"
    assert format_availability(0.9999996) == "99.999 %"
    assert format_availability(1.0) == "100.000 %"
    assert format_availability(None) == "—"
    assert format_money(45_000_000) == "45,000,000 LAK"  # the house style, dcops.display.lak
    assert format_money(None) == "—"
    assert format_time("2026-09-30T17:00:00Z", "Asia/Vientiane") == "2026-10-01 00:00"


def test_local_times_are_written_as_strftime_writes_them():
    from datetime import UTC as utc
    from datetime import datetime
    from zoneinfo import ZoneInfo

    moments = [datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=utc), datetime(2026, 10, 25, 1, 30, tzinfo=utc),
               datetime(2026, 12, 31, 16, 59, 30, tzinfo=utc), datetime(1000, 1, 1, 3, 0, tzinfo=utc),
               datetime(999, 12, 31, 23, 0, tzinfo=utc), datetime(9999, 12, 30, 12, 5, tzinfo=utc)]
    for tz in ("Asia/Vientiane", "Europe/London", "America/St_Johns", "Asia/Kathmandu", "UTC"):
        for moment in moments:
            text = moment.isoformat().replace("+00:00", "Z")
            assert format_time(text, tz) == f"{moment.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M}", (text, tz)
    assert format_time("2026-09-30T17:00:00Z", "Asia/Vientiane", with_zone=True) == "2026-10-01 00:00 (Asia/Vientiane)"
    assert format_time("0999-12-31T23:00:00Z", "UTC") == "999-12-31 23:00"  # as strftime: no padding


def test_two_hundred_programmes_render_quickly():
    document = uptime_document(programmes=200)
    render(document, "html")  # compile the templates once
    started = time.perf_counter()
    html = render(document, "html")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    # A fifth of them are copies of newapp, without figures: listed apart, not drawn.
    assert html.count("<title>2026-10-") == 160 * 31


def test_a_long_period_draws_runs_of_days_not_one_cell_each():
    """90 days (1 Jan to 31 Mar 2026): 85 up (to 26 Mar), 27 Mar partly down, 4 up: three bars."""
    days = [{"day": (date(2026, 1, 1) + timedelta(days=i)).isoformat(), "up": float(DAY), "down": 0.0,
             "maintenance": 0.0, "unknown": 0.0} for i in range(90)]
    days[85] = {**days[85], "up": DAY - 600.0, "down": 600.0}
    programme = {"slug": "p", "name": "P", "days": days, "downtime_seconds": 600.0}
    svg = charts.day_strips([programme], first_day="2026-01-01", last_day="2026-03-31", id_prefix="y")
    titles = re.findall(r"<title>([^<]*)</title></rect>", svg)
    assert titles == ["2026-01-01 to 2026-03-26: up 122,400 min", "2026-03-27: up 1,430 min, down 10 min",
                      "2026-03-28 to 2026-03-31: up 5,760 min"]


def test_a_long_strip_s_bars_are_its_runs_of_like_days_with_their_summed_minutes():
    """120 days of every kind, three missing (two of them between days alike): each bar is a maximal
    run of consecutive days drawn alike, as grouped one by one here, its tooltip run_tooltip's of
    those days, its width theirs."""
    kinds = [{}, {"up": DAY - 300.5, "down": 300.5}, {"up": DAY - 1800.0, "down": 1800.0},
             {"up": DAY - 7200.25, "down": 7200.25}, {"up": DAY - 3600.0, "maintenance": 3600.0},
             {"up": 600.0, "unknown": DAY - 600.0}]
    pattern = [0, 0, 1, 1, 1, 2, 3, 3, 0, 4, 4, 5, 5, 0, 0, 0, 2, 1]
    days = [{"day": (date(2026, 1, 1) + timedelta(days=i)).isoformat(), "up": DAY, "down": 0.0, "maintenance": 0.0,
             "unknown": 0.0, **kinds[pattern[(i * 7 // 5) % len(pattern)]]} for i in range(120)]
    kept = [d for k, d in enumerate(days) if k not in (36, 41, 77)]
    programme = {"slug": "p", "name": "P", "days": kept, "downtime_seconds": 1.0}
    svg = charts.day_strips([programme], first_day="2026-01-01", last_day="2026-04-30", id_prefix="y")
    runs: list[list[tuple[int, dict]]] = []
    for k, day in enumerate(days):
        if k in (36, 41, 77):
            continue
        if runs and runs[-1][-1][0] == k - 1 and charts.day_severity(runs[-1][-1][1]) == charts.day_severity(day):
            runs[-1].append((k, day))
        else:
            runs.append([(k, day)])
    assert 20 < len(runs) < 117
    bars = re.findall(r'<rect x="([^"]+)" width="([^"]+)" height="18"[^>]*><title>([^<]*)</title></rect>', svg)
    assert [title for _x, _w, title in bars] == [charts.run_tooltip([d for _k, d in run]) for run in runs]
    assert [(x, w) for x, w, _t in bars] == [(charts._x(run[0][0] / 120), charts._x(len(run) / 120)) for run in runs]


def test_a_report_with_many_incidents_lists_the_longest_hundred():
    document = uptime_document()
    many = [{"start": f"2026-10-{1 + k // 24:02d}T{k % 24:02d}:00:00Z", "end": f"2026-10-{1 + k // 24:02d}T{k % 24:02d}:"
             f"{1 + k % 50:02d}:00Z", "seconds": 60.0 * (1 + k % 50), "reason": f"r{k}"} for k in range(150)]
    document["programmes"][0]["incidents"] = many
    # 150 here (1 to 50 min, three of each) plus the other programmes' 2 (10 and 5 min).
    for fmt in ("html", "md"):
        assert "The 100 longest of 152 incidents" in render(document, fmt)
    html = render(document, "html")
    # The longest 100: 33 lengths from 50 down to 18 min, three each (99), and one of 17 min.
    listed = re.findall(r'data-label="Reason">(r\d+)</td>', html)
    assert len(listed) == 100 and "r0" not in listed and "r49" in listed


def _long_period(document: dict, first_day: str, last_day: str) -> dict:
    """The document as if it covered first_day to last_day, with two more windows of the budget programme."""
    document = copy.deepcopy(document)
    document["period"].update(first_day=first_day, last_day=last_day, label=f"{first_day}..{last_day}")
    document["maintenance"] += [
        {"id": 7, "programme": "budget", "cluster": None, "start": "2026-10-25T01:00:00Z", "end": "2026-10-25T02:00:00Z",
         "recorded_at": "2026-10-20T08:00:00Z", "recorded_by": "ops1", "change_ref": "CHG-1107",
         "reason": "kernel patch", "announced": True},
        {"id": 8, "programme": "budget", "cluster": None, "start": "2026-10-28T01:00:00Z", "end": "2026-10-28T04:00:00Z",
         "recorded_at": "2026-10-21T08:00:00Z", "recorded_by": "ops1", "change_ref": "CHG-1108",
         "reason": "index rebuild", "announced": True},
    ]
    return document


def test_past_a_quarter_the_appendix_counts_maintenance_per_target_and_up_to_it_lists_every_window():
    def appendix(html: str) -> str:
        return html[html.index('id="maintenance"'):html.index('id="reliability"')]

    # A month, and a quarter of 92 days: every window on its own row.
    for first, last in (("2026-10-01", "2026-10-31"), ("2026-10-01", "2026-12-31")):
        html = appendix(render(_long_period(uptime_document(), first, last), "html"))
        assert [c for c in ("CHG-1001", "CHG-1042", "CHG-1107", "CHG-1108") if f'data-label="Change">{c}<' in html] == [
            "CHG-1001", "CHG-1042", "CHG-1107", "CHG-1108"]
        assert "counted per programme or cluster" not in html
    # 93 days: a row per target, the most maintenance first, each with its longest (the earlier of
    # two 3-hour windows) and its windows recorded late; the JSON keeps every window.
    document = _long_period(uptime_document(), "2026-10-01", "2027-01-01")
    html = appendix(render(document, "html"))
    assert "4 windows, 9 h of real time" in html and "counted per programme or cluster" in html
    rows = re.findall(r'<tr><td class="key">([^<]*)</td><td class="num" data-label="Windows">(\d+)</td>'
                      r'<td class="num" data-label="Duration">([^<]*)</td><td class="num" data-label="Recorded late">'
                      r'(?:<span class="tag late">)?(\d+)(?:</span>)?</td><td data-label="Longest window"><span>'
                      r'([^<]*)<span class="nowrap">([^<]*)</span><span class="sub">([^<]*)</span>', html)
    assert rows == [("Budget | Finance", "3", "7 h", "0", "2026-10-18\u00a008:00, 3\u00a0h · ", "CHG-1001", "database upgrade"),
                    ("cluster vte-gen1", "1", "2 h", "1", "2026-10-12\u00a022:00, 2\u00a0h · ", "CHG-1042", "disk swap")]
    assert 'data-label="Change"' not in html and "CHG-1107" not in html and "CHG-1108" not in html
    assert [w["change_ref"] for w in json.loads(render(document, "json"))["maintenance"]] == [
        "CHG-1001", "CHG-1042", "CHG-1107", "CHG-1108"]
    markdown = render(document, "md")
    assert "| Budget \\| Finance | 3 | 7 h | 0 | 2026-10-18 08:00, 3 h, CHG-1001: database upgrade |" in markdown
    assert "| cluster vte-gen1 | 1 | 2 h | **1** | 2026-10-12 22:00, 2 h, CHG-1042: disk swap |" in markdown
    assert "CHG-1107" not in markdown
    assert "CHG-1107" in render(_long_period(uptime_document(), "2026-10-01", "2026-12-31"), "md")


# --- a realistic month: honest at a glance -----------------------------------------------------------

from report_month import as_before_the_second_wave, capacity_month, uptime_month  # noqa: E402


def _section(html: str, start_id: str, end_id: str) -> str:
    return html[html.index(f'id="{start_id}"'):html.index(f'id="{end_id}"')]


def test_the_headline_counts_monitored_programmes_and_lists_the_others_apart():
    html = render(uptime_month(), "html")
    assert ("<strong>7 of 11 monitored programmes</strong> met their availability target, <strong>3 missed</strong>, "
            "1 had insufficient data to judge; 8 not monitored (listed apart)") in html
    assert "Provincial hospital referral and bed availability system</strong> (coverage 67.74 %)" in html
    assert html.count('<span class="tag status-insufficient">insufficient data</span>') == 1
    assert html.index('id="summary"') < html.index('id="major"') < html.index('id="charts"') < html.index(
        'id="not-monitored"') < html.index('id="incidents"')
    markdown = render(uptime_month(), "md")
    assert "**7 of 11 monitored programmes** met their availability target, **3 missed**" in markdown


def test_major_incidents_come_first_with_cause_action_and_attribution():
    html = render(uptime_month(), "html")
    major = _section(html, "major", "charts")
    assert major.count('<article class="incident"') == 4
    assert "#41 · e-CRVS" in major and "Electronic Civil Registration and Vital Statistics" in major
    assert "The national ID service&#39;s verification API was down" in major
    assert "Registrations queued offline and replayed at 10:25" in major
    assert "external: National ID service" in major
    assert "dependency 1 h (National ID service, external, root); set by an operator" in major
    assert "134 % of the month's budget" in major
    assert "#39 · GFIS" in major and "the ministry&#39;s application" in major
    # The rest of the incidents only in the appendix.
    appendix = html[html.index('id="incidents"'):]
    assert "#40 Tax and revenue e-filing portal (e-Tax)" in appendix and "#40" not in major
    assert "dependency: GFIS" not in major


def test_totals_are_real_time_not_summed_across_programmes():
    document = uptime_month()
    html = render(document, "html")
    assert "<p class=\"value\">3\u00a0windows</p><p class=\"note\">9 h · 8 programmes affected</p>" in html
    summed = sum(p["maintenance_seconds"] for p in document["programmes"])
    assert summed == 28 * 3600  # what the old headline printed as "28 h"
    assert "28 h" not in html
    assert "1 day 4 h" in html  # LESMIS' 28 h 20 min in days
    # A document from before the windows named their programmes: counted from the programmes' figures.
    old = render(as_before_the_second_wave(document), "html")
    assert "9 h · 8 programmes affected" in old


def test_no_data_prints_a_dash_never_0_min():
    document = uptime_document()
    html = render(document, "html")
    newapp = html[html.index(">New application<"):]
    newapp = newapp[:newapp.index("</tr>")]
    assert "0 min" not in newapp
    markdown = render(document, "md")
    assert "| New application (`newapp`)" in markdown  # listed apart, not among the figures
    assert not re.search(r"New application[^\n]*\| 0 min \|", markdown)


def test_chart_names_are_short_and_never_cut_inside_a_word():
    assert charts.clip_words("Lao Social Security Organisation member services and contributions") == (
        "Lao Social Security Organisation…")
    assert charts.clip_words("Provincial hospital referral and bed availability system") == (
        "Provincial hospital referral and…")
    assert charts.clip_words("Supercalifragilisticexpialidociousbutlongerthanthirtysix name") == (
        "Supercalifragilisticexpialidociousbutlongerthanthirtysix…")
    assert charts.clip_words("DHIS2") == "DHIS2"
    html = render(uptime_month(), "html")
    charts_html = _section(html, "charts", "programmes")
    names = re.findall(r'<span class="row-name" title="([^"]*)">([^<]*)</span>', charts_html)
    assert ("Electronic Civil Registration and Vital Statistics (e-CRVS)", "e-CRVS") in names
    for _title, shown in names:
        if shown.endswith("…"):
            word = shown[:-1].split()[-1]
            assert re.search(rf"\b{re.escape(word)}\b", _title), shown


def test_programmes_are_ordered_missed_first_and_the_order_is_stated():
    document = uptime_month()
    html = render(document, "html")
    table = _section(html, "programmes", "detail")
    order = re.findall(r'<td class="key">([^<]*)<span class="sub">([a-z0-9-]+) ', table)
    slugs = [slug for _name, slug in order]
    assert slugs[:4] == ["lesmis", "e-crvs", "gfis", "hospital-referral"]  # missed by budget used, then insufficient
    assert "missed first, then insufficient data, then met; within each, by error budget used, highest first" in table
    by_budget = render(document, "html", sort="budget")
    assert "by error budget used, highest first</caption>" in by_budget
    by_name = render(document, "md", sort="name")
    table_lines = [line for line in by_name.splitlines() if line.startswith("| ") and "(`" in line]
    names = [line.split(" (")[0][2:] for line in table_lines[:11]]
    assert names == sorted(names, key=str.casefold)
    with pytest.raises(UserError, match="unknown sort"):
        render(document, "html", sort="colour")


def test_a_report_frozen_before_the_second_wave_still_renders():
    old = as_before_the_second_wave(uptime_month())
    for fmt in FORMATS:
        assert render(old, fmt).strip()
    html = render(old, "html")
    assert 'id="major"' not in html  # it had no incident records to show
    assert "3 missed" in html and "7 of 11 monitored programmes" in html


def test_the_palette_survives_deuteranopia_and_has_3_to_1_contrast():
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    def contrast(a: str, b: str) -> float:
        high, low = sorted((luminance(a), luminance(b)), reverse=True)
        return (high + 0.05) / (low + 0.05)

    def deuteranopia(colour: str) -> tuple[float, float, float]:
        """Machado, Oliveira and Fernandes (2009), severity 1, in linear RGB."""
        rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        rgb = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        m = ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881))
        return tuple(sum(m[i][j] * rgb[j] for j in range(3)) for i in range(3))

    fills = {"up": charts.UP, "minor": charts.DOWN_MINOR, "moderate": charts.DOWN, "severe": charts.DOWN_SEVERE,
             "maintenance": charts.MAINTENANCE, "unknown": charts.UNKNOWN}
    for name, colour in fills.items():
        assert contrast(colour, "#ffffff") >= 3.0, name  # WCAG 1.4.11, against the white page and cell gaps
    seen = {name: deuteranopia(colour) for name, colour in fills.items()}
    # Good and bad stay apart on the blue-yellow axis deuteranopia keeps (the old green and red did not).
    for bad in ("minor", "moderate", "severe"):
        blue_minus_red_up = seen["up"][2] - seen["up"][0]
        blue_minus_red_bad = seen[bad][2] - seen[bad][0]
        assert blue_minus_red_up > 0.1 > blue_minus_red_bad, bad
    old_green, old_red = deuteranopia("#1a9850"), deuteranopia("#d73027")
    assert abs((old_green[2] - old_green[0]) - (old_red[2] - old_red[0])) < 0.1  # the olive the issue saw
    # The downtime grades differ in lightness, so they read as an order without hue.
    assert luminance(charts.DOWN_MINOR) > luminance(charts.DOWN) * 1.4 > luminance(charts.DOWN_SEVERE) * 1.4


def test_print_has_page_numbers_and_a_running_title():
    html = render(uptime_month(), "html")
    page = html[html.index("@page{"):html.index("@media print")]
    assert 'counter(page) " of " counter(pages)' in page
    assert '@top-left{content:"Uptime report 2026-10 · National Data Centre of the Lao PDR"' in page
    assert ".table-wrap.keep{break-inside:avoid}" in html
    # A name that could end the CSS string is escaped.
    document = uptime_month()
    document["data_centre_name"] = 'Centre "A" </style><script>'
    hostile = render(document, "html")
    top = hostile[hostile.index("@top-left"):hostile.index("@bottom-right")]
    assert "</style>" not in top and '"A"' not in top and "\\00003c/style\\00003e" in top


def test_capacity_says_what_it_does_not_know():
    html = render(capacity_month(), "html")
    assert "not within 3 years" in html and "2152" not in html.replace("2152-07-24", "")
    assert "24 Jul 2152" not in html
    assert "unknown — not enough history" in html
    first = html[html.index("First run-out"):]
    first = first[:first.index("</div>")]
    assert "1 Nov 2026" in first and "2 resources without enough history" in first
    assert "n/a (shared storage)" in html and "hosts unknown" not in html.split('id="notes"')[1]
    without_history = capacity_month()
    for site in without_history["sites"]:
        for cluster in site["clusters"]:
            for resource in cluster["resources"]:
                resource["forecast"] = {"status": "not enough history", "points": 3}
    alone = render(without_history, "html")
    first = alone[alone.index("First run-out"):]
    kpi = first[:first.index("</div>")]
    assert kpi.count("unknown") == 1 and "none" not in kpi
    markdown = render(without_history, "md")
    assert "| First run-out | unknown — not enough history |" in markdown


def test_usable_capacity_is_shown_in_whole_units():
    document = capacity_month()
    resource = document["sites"][0]["clusters"][0]["resources"][0]
    resource.update(usable=390.4, free=90.4)  # as a document from before usable was whole
    html = render(document, "html")
    assert "300 of 390 usable" in html and "390.4" not in html
    assert render(document, "md").count("| 390 |") >= 2


def test_the_cli_sorts_the_uptime_report_as_asked(loaded_cli, tmp_path):
    """The sample inventory has no probe data: the report still takes --sort, and refuses a bad one."""
    for order in ("status", "budget", "name"):
        out = tmp_path / f"{order}.md"
        loaded_cli("report", "uptime", "--period", "2026-10", "--sort", order, "--out", out)
        assert out.read_text(encoding="utf-8").startswith("# Uptime report: 2026-10")
    result = loaded_cli("report", "uptime", "--period", "2026-10", "--sort", "colour", "--out", tmp_path / "x.md",
                        expect=2)
    assert "--sort" in result.stderr and not (tmp_path / "x.md").exists()


def test_a_programme_approved_on_two_clusters_is_one_programme_in_the_pipeline():
    document = capacity_month()
    document["pipeline"]["approved"] = [
        {"id": None, "programme": "lao-mobile-wallet", "ministry": "bol", "plan": "pg-ha", "cluster": "vte-db1"},
        {"id": None, "programme": "lao-mobile-wallet", "ministry": "bol", "plan": "pg-ha", "cluster": "vte-gen1"},
    ]
    html = render(document, "html")
    assert "Approved, not yet provisioned (1)</h3>" in html and "1 approved · 1 submitted" in html
    listed = html[html.index("Approved, not yet provisioned"):html.index("Submitted, awaiting")]
    assert listed.count(">lao-mobile-wallet<") == 2 and ">vte-db1<" in listed and ">vte-gen1<" in listed
    assert ">#None<" not in listed and ">inventory<" in listed
