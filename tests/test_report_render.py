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
    assert "3 of 5" in html
    assert "1 h 45 min" in html  # total downtime 6,300 s
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
    assert svg.startswith("<svg") and "<title" in svg and "<desc" in svg
    assert charts.axis_start([99.9, 99.5, 99.0]) == 98.0
    assert charts.axis_start([99.9]) == 99.5
    assert "(below the axis start, 98 %)" in svg and ">95.000 % · missed</text>" in svg
    assert "<polygon" in svg  # the off-axis arrow
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
    assert svg.count('fill="url(#d-down)"') == 4  # dhis2 twice, evax, budget
    assert svg.count('fill="url(#d-maint)"') == 2
    assert charts.day_state({"up": 80000, "unknown": 6400}) == "up"
    assert charts.day_state({"up": 0, "unknown": DAY}) == "unknown"


def test_capacity_html_states_status_in_words_and_forecast():
    html = render(capacity_document(), "html")
    for word in ("Red", "Amber", "Green", "RED", "AMBER", "GREEN"):
        assert word in html
    assert "runs out 11 Feb 2027 (in 103 days)" in html
    assert "not enough history" in html
    assert "LAK 123,000,000" in html and "LAK 45,000,000" in html
    assert "hosts unknown" in html  # storage with no largest host
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
        assert svg.startswith("<svg") and svg.endswith("</svg>")
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
        assert "n/a" in render(uptime, fmt)  # null availability and coverage


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
    assert format_duration(None) == "n/a"
    assert format_availability(0.99876) == "99.876 %"
    assert format_availability(0.9999996) == "99.999 %"
    assert format_availability(1.0) == "100.000 %"
    assert format_availability(None) == "n/a"
    assert format_money(45_000_000) == "LAK 45,000,000"
    assert format_time("2026-09-30T17:00:00Z", "Asia/Vientiane") == "2026-10-01 00:00"


def test_two_hundred_programmes_render_quickly():
    document = uptime_document(programmes=200)
    render(document, "html")  # compile the templates once
    started = time.perf_counter()
    html = render(document, "html")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    assert html.count("<title>2026-10-") == 200 * 31


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
