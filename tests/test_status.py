"""The status page (dcops.status): what the public may see, states in words, the 90-day bars, the
Atom and iCalendar feeds read back by real parsers, atomic writes, and `dcops status publish`."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dcops import incidents, status
from dcops.inventory.service import load_directory
from dcops.models import CheckState, Cluster, Endpoint, MaintenanceWindow, Programme, StateInterval
from dcops.reports.uptime import DayShare

from conftest import SAMPLE_INVENTORY
from outages import add_short_outages

TZ = ZoneInfo("Asia/Vientiane")
NOW = datetime(2026, 10, 20, 5, 0, tzinfo=timezone.utc)  # 12:00 in Vientiane
# (No NUL: PostgreSQL refuses it in text, so no stored note can hold one; clean_text drops it all the same.)
NASTY_NOTE = "Restarted the <script>alert(1)</script> pool\x1b[31m & \x07checked\x0c \u202eevil\nSecond line"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _ids(conn, table, column, names) -> dict[str, int]:
    rows = conn.execute(sa.select(table.c[column], table.c.id).where(table.c[column].in_(names))).all()
    return dict(rows)


def build_month(database) -> dict[str, int]:
    """The sample inventory with a history to 2026-10-20T05:00Z (NOW):

    kpl-news (public): up from 07-01, down 10-18 02:00-03:00 (incident, released, two updates, one
    with control characters and markup), up since; upcoming announced window 10-25.
    lesmis (internal): up, down 10-19 10:00-10:30 (incident, NOT released), up since.
    e-crvs (confidential): up, down since 10-20 04:00 (ongoing incident); an announced window of its own on 10-26.
    tourism-portal (public): up since 07-01, but its check last reported on 10-19: no data now.
    laoinfo-statistics (public): no history at all.
    vte-gen1 (lesmis, e-crvs, ...): an announced window under way now; a late one (recorded after
    it began) on vte-dmz1 that is no announcement; a cancelled announced one on vte-dmz1.
    Returns the incident numbers by programme.
    """
    load_directory(database, SAMPLE_INVENTORY, actor="test")
    table = StateInterval.__table__
    with database.transaction(immediate=True) as conn:
        ids = _ids(conn, Programme.__table__, "slug", ["kpl-news", "lesmis", "e-crvs", "tourism-portal"])
        clusters = _ids(conn, Cluster.__table__, "name", ["vte-gen1", "vte-dmz1"])
        programme = Programme.__table__
        conn.execute(sa.update(programme).where(programme.c.activated_at.is_not(None))
                     .values(activated_at=at("2026-07-01T00:00")))
        spans = {
            "kpl-news": [("up", "2026-07-01T00:00", "2026-10-18T02:00", ""),
                         ("down", "2026-10-18T02:00", "2026-10-18T03:00", "web: status 503"),
                         ("up", "2026-10-18T03:00", None, "")],
            "lesmis": [("up", "2026-07-01T00:00", "2026-10-19T10:00", ""),
                       ("down", "2026-10-19T10:00", "2026-10-19T10:30", "db: connection refused at 10.0.3.7"),
                       ("up", "2026-10-19T10:30", None, "")],
            "e-crvs": [("up", "2026-07-01T00:00", "2026-10-20T04:00", ""),
                       ("down", "2026-10-20T04:00", None, "api: timeout")],
            "tourism-portal": [("up", "2026-07-01T00:00", None, "")],
        }
        conn.execute(sa.insert(table), [
            {"programme_id": ids[slug], "endpoint_id": None, "state": state, "started_at": at(start),
             "ended_at": at(end) if end else None, "reason": reason}
            for slug, rows in spans.items() for state, start, end, reason in rows])
        endpoint = conn.execute(sa.select(Endpoint.__table__.c.id).where(
            Endpoint.__table__.c.programme_id == ids["tourism-portal"])).scalars().all()
        conn.execute(sa.insert(CheckState.__table__), [
            {"endpoint_id": e, "state": "up", "since": at("2026-07-01T00:00"), "last_at": at("2026-10-19T00:00"),
             "fail_streak": 0, "ok_streak": 5} for e in endpoint])
        windows = [
            (ids["kpl-news"], None, "2026-10-25T15:00", "2026-10-25T16:00", "2026-10-10T00:00", "CHG-10",
             "Web server upgrade; expect 5 min, no more", None),
            (ids["e-crvs"], None, "2026-10-26T15:00", "2026-10-26T17:00", "2026-10-10T00:00", "CHG-11",
             "Registry database migration", None),
            (None, clusters["vte-gen1"], "2026-10-20T04:30", "2026-10-20T06:00", "2026-10-01T00:00", "CHG-12",
             "Hypervisor patching", None),
            (None, clusters["vte-dmz1"], "2026-10-19T01:00", "2026-10-19T02:00", "2026-10-19T01:30", "CHG-13",
             "Late, unannounced switch swap", None),
            (None, clusters["vte-dmz1"], "2026-10-28T01:00", "2026-10-28T02:00", "2026-10-10T00:00", "CHG-14",
             "Load balancer firmware", at("2026-10-15T00:00")),
        ]
        conn.execute(sa.insert(MaintenanceWindow.__table__), [
            {"programme_id": p, "cluster_id": c, "starts_at": at(s), "ends_at": at(e), "recorded_at": at(r),
             "recorded_by": "ops1", "change_ref": ref, "reason": reason, "cancelled_at": cancelled,
             "cancelled_by": "ops1" if cancelled else None}
            for p, c, s, e, r, ref, reason, cancelled in windows])
    numbers = {row["programme"]: row["number"] for row in incidents.list_incidents(
        database, start=at("2026-10-01T00:00"), end=NOW, now=NOW)}
    incidents.update_incident(database, numbers["kpl-news"], status="investigating", note="Web servers return 503.",
                              actor="ops1", now=at("2026-10-18T02:10"))
    incidents.update_incident(database, numbers["kpl-news"], status="resolved", note="Restarted the pool.",
                              released=True, actor="ops1", now=at("2026-10-18T03:20"))
    # The input refuses control characters; a note stored by an older dcops, or written into the
    # database by another tool, may still hold them (and markup): the page and the feed must not.
    update = incidents.T_UPDATE
    with database.transaction() as conn:
        conn.execute(sa.update(update).where(update.c.incident_id == numbers["kpl-news"],
                                             update.c.note == "Restarted the pool.").values(note=NASTY_NOTE))
    incidents.update_incident(database, numbers["lesmis"], status="investigating", note="Database failover.",
                              actor="ops1", now=at("2026-10-19T10:05"))
    return numbers


@pytest.fixture
def month(database):
    return database, build_month(database)


def _settings(database, tmp_path, **extra):
    from dcops.settings import Settings

    return Settings.from_env({"DCOPS_DATABASE_URL": database.url, "DCOPS_HOME": str(tmp_path),
                              "DCOPS_SERVICE_DESK": "+856 21 000 000 · servicedesk@ndc.gov.la", **extra})


def _programmes(view) -> dict[str, dict]:
    return {p["slug"]: p for m in view["ministries"] for p in m["programmes"]}


# --- pure pieces --------------------------------------------------------------------------------


def share(up=0.0, down=0.0, maintenance=0.0, unknown=0.0):
    return DayShare(date(2026, 10, 1), up, down, maintenance, unknown)


@pytest.mark.parametrize("day, state", [
    (share(), "none"),
    (share(up=86_400), "up"),
    (share(up=86_380, down=20), "down"),
    (share(up=40_000, unknown=46_400), "nodata"),
    (share(up=80_000, unknown=6_400), "up"),
    (share(up=86_000, maintenance=400), "maintenance"),
    (share(maintenance=400, unknown=86_000), "nodata"),
    (share(down=1, unknown=86_399), "down"),
])
def test_a_day_takes_its_worst_state_and_unknown_is_never_up(day, state):
    assert status.day_cell(day)["state"] == state


def test_a_day_s_minutes_round_up_so_that_downtime_never_reads_zero():
    cell = status.day_cell(share(up=86_380, down=20))
    assert cell["down_minutes"] == 1 and status.cell_words(cell) == "Down 1\u00a0min"
    cell = status.day_cell(share(up=40_000, unknown=46_400))
    assert status.cell_words(cell) == "No data 12\u00a0h 54\u00a0min"


def test_the_bar_draws_one_mark_per_run_of_days_in_one_state_and_says_them_in_words():
    cells = [status.day_cell(s) for s in [share(), share(), share(up=86_400), share(up=86_400),
                                          share(up=86_000, down=400), share(up=86_300, down=100), share(up=86_400)]]
    assert status.bar_runs(cells) == [(0, 2, "none"), (2, 2, "up"), (4, 2, "down"), (6, 1, "up")]
    programme = {"days": cells, "days_down": 2, "days_maintenance": 0, "days_nodata": 0}
    svg = str(status.bar_svg(programme, 7))
    assert svg.count("<rect") == 4 and 'aria-label="7 days: 3 up, 2 with downtime, 2 not in service"' in svg
    assert status.notable_days(programme) == ["1 Oct: Down 7\u00a0min", "1 Oct: Down 2\u00a0min"]


def test_text_is_cleaned_of_control_and_direction_characters():
    assert status.clean_text(NASTY_NOTE) == ("Restarted the <script>alert(1)</script> pool[31m & checked evil\n"
                                             "Second line")
    assert status.clean_text("a\r\nb\rc\ud800\uffff\x00") == "a\nb\nc"


def test_icalendar_text_is_escaped_and_folded_at_75_octets_never_inside_a_character():
    assert status.ical_escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    line = "DESCRIPTION:" + "ສູນຂໍ້ມູນ" * 20
    folded = status.ical_fold(line)
    assert folded.endswith("\r\n")
    pieces = folded[:-2].split("\r\n")
    assert all(len(p.encode("utf-8")) <= 75 for p in pieces) and len(pieces) > 2
    assert all(p.startswith(" ") for p in pieces[1:])
    assert "".join([pieces[0], *(p[1:] for p in pieces[1:])]) == line


def test_the_day_sweep_gives_the_uptime_report_s_days():
    """status.day_seconds (one linear pass) against reports.uptime.programme_uptime (the report's
    sweep) over random histories: the same seconds in every bucket of every local day."""
    from hypothesis import given, settings as hsettings, strategies as st

    from dcops.reports.uptime import MaintenanceWindow, StateSpan, programme_uptime, range_bounds

    hour = 3_600_000_000
    start, end = range_bounds(date(2026, 10, 1), date(2026, 10, 5), TZ)
    t0 = status._us(start)
    edges = [status._us(range_bounds(date(2026, 10, d), date(2026, 10, d), TZ)[0]) for d in range(1, 6)]
    edges.append(status._us(end))

    @hsettings(max_examples=150, deadline=None)
    @given(cuts=st.lists(st.integers(-10, 130), min_size=1, max_size=12, unique=True),
           states=st.lists(st.sampled_from(["up", "down", "unknown"]), min_size=12, max_size=12),
           holes=st.lists(st.booleans(), min_size=12, max_size=12),
           windows=st.lists(st.tuples(st.integers(-5, 125), st.integers(1, 30)), max_size=4),
           open_last=st.booleans(), now_hour=st.integers(1, 125), service_hour=st.integers(-5, 60))
    def check(cuts, states, holes, windows, open_last, now_hour, service_hour):
        cuts = sorted(cuts)
        spans = []
        for k, (lo, hi) in enumerate(zip(cuts, cuts[1:] + [None])):
            if hi is None and not open_last:
                break
            if holes[k] and hi is not None:
                continue
            spans.append((t0 + lo * hour, None if hi is None else t0 + hi * hour, states[k], ""))
        merged = status._merged([(t0 + a * hour, t0 + (a + b) * hour) for a, b in windows])
        now = status._time(t0 + now_hour * hour)
        service = t0 + service_hour * hour
        t_now = status._us(now)
        ours = status.day_seconds(spans, merged, edges, t_from=max(edges[0], service), t_to=min(edges[-1], t_now),
                                  t_now=t_now)
        theirs = programme_uptime(
            [StateSpan(s, status._time(lo), None if hi is None else status._time(hi), r) for lo, hi, s, r in spans],
            [MaintenanceWindow(0, status._time(lo), status._time(hi), status._time(lo)) for lo, hi in merged],
            start=start, end=end, now=now, target_percent=99.0, tz=TZ, service_start=status._time(service))
        down, unknown, up, maintenance = ours
        for k, day in enumerate(theirs.days):
            assert (down[k] / 1e6, unknown[k] / 1e6, up[k] / 1e6, maintenance[k] / 1e6) == \
                (day.down, day.unknown, day.up, day.maintenance), (k, spans, merged)

    check()


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_state_colours_have_3_to_1_contrast_against_the_white_page():
    css = (status.templates_dir() / "style.css").read_text()
    import re

    for name in ("up", "down", "maintenance", "nodata"):
        colour = re.search(rf"--{name}: (#[0-9a-f]{{6}});", css)[1]
        assert (1.05) / (_luminance(colour) + 0.05) >= 3.0, name


# --- the view, on a real database ---------------------------------------------------------------


def test_the_public_view_shows_only_what_is_public_and_released(month):
    database, numbers = month
    with database.transaction() as conn:
        view = status.status_view(conn, now=NOW, tz=TZ, audience="public")
    programmes = _programmes(view)
    assert "e-crvs" not in programmes and "national-digital-id" not in programmes  # confidential, secret
    assert {"kpl-news", "lesmis", "tourism-portal", "laoinfo-statistics"} <= set(programmes)
    assert "census-2015-portal" not in programmes  # retired
    every = [*view["incidents"]["current"], *view["incidents"]["recent"]]
    assert [i["number"] for i in every] == [numbers["kpl-news"]]  # lesmis' is not released, e-crvs' not public
    kpl = every[0]
    assert kpl["status"] == "resolved" and not kpl["current"] and len(kpl["updates"]) == 2
    assert "by" not in kpl["updates"][0] and "reason" not in kpl and "cause" not in kpl
    assert programmes["kpl-news"]["state"] == "up" and programmes["lesmis"]["state"] == "up"
    assert "reason" not in programmes["lesmis"]
    # Maintenance: kpl-news' own, vte-gen1's (naming only the public programmes on it); not the
    # late one, not e-crvs' own, the cancelled one only for the calendar.
    windows = view["maintenance"]["all"]
    phases = {w["reason"]: w["phase"] for w in windows}
    assert phases == {"Web server upgrade; expect 5 min, no more": "upcoming", "Hypervisor patching": "in progress",
                      "Load balancer firmware": "cancelled"}
    gen1 = next(w for w in windows if w["reason"] == "Hypervisor patching")
    assert "e-CRVS" not in gen1["programmes"] and "LESMIS" in gen1["programmes"] and "cluster" not in gen1


def test_the_ministries_view_carries_everything(month):
    database, numbers = month
    with database.transaction() as conn:
        view = status.status_view(conn, now=NOW, tz=TZ, audience="ministries")
    programmes = _programmes(view)
    assert programmes["e-crvs"]["state"] == "maintenance"  # down, but under vte-gen1's announced window
    assert programmes["national-digital-id"]["classification"] == "secret"
    current = {i["programme"]: i for i in view["incidents"]["current"]}
    assert set(current) == {"e-crvs", "lesmis"}  # down now; being investigated
    assert current["e-crvs"]["ongoing"] and current["e-crvs"]["reason"] == "api: timeout"
    assert current["lesmis"]["released"] is False and current["lesmis"]["updates"][0]["by"] == "ops1"
    assert {w["reason"] for w in view["maintenance"]["upcoming"]} >= {"Registry database migration"}
    assert next(w for w in view["maintenance"]["all"] if w["reason"] == "Hypervisor patching")["cluster"] == "vte-gen1"


def test_unknown_is_no_data_never_up_and_each_programme_has_90_days(month):
    database, _numbers = month
    with database.transaction() as conn:
        view = status.status_view(conn, now=NOW, tz=TZ, audience="public")
    programmes = _programmes(view)
    assert programmes["tourism-portal"]["state"] == "nodata"  # its check fell silent on 10-19
    assert programmes["laoinfo-statistics"]["state"] == "nodata"
    assert programmes["laoinfo-statistics"]["availability"] is None
    assert programmes["laoinfo-statistics"]["availability_text"] == "—"
    assert all(len(p["days"]) == 90 for p in programmes.values())
    kpl = programmes["kpl-news"]["days"]
    assert kpl[-1]["day"] == "2026-10-20" and kpl[0]["day"] == "2026-07-23"
    assert kpl[-3] == {"day": "2026-10-18", "state": "down", "down_minutes": 60, "maintenance_minutes": 0,
                       "nodata_minutes": 0}
    assert programmes["tourism-portal"]["days"][-1]["state"] == "nodata"  # 10-20: no results at all
    assert view["counts"]["up"] < view["programme_count"]


def test_remembered_past_days_give_the_same_view_and_follow_a_change_to_the_past(month):
    database, _numbers = month
    past = status.PastDays()
    with database.transaction() as conn:
        fresh = status.status_view(conn, now=NOW, tz=TZ, audience="ministries")
        first = status.status_view(conn, now=NOW, tz=TZ, audience="ministries", past=past)
        again = status.status_view(conn, now=NOW + timedelta(minutes=1), tz=TZ, audience="ministries", past=past)
    assert first["ministries"] == fresh["ministries"]
    assert _programmes(again)["kpl-news"]["days"] == _programmes(fresh)["kpl-news"]["days"]
    # An import writes an outage into the past: the remembered days of that programme are not used.
    table = StateInterval.__table__
    with database.transaction() as conn:
        programme = conn.execute(sa.select(Programme.__table__.c.id).where(Programme.__table__.c.slug == "lesmis")
                                 ).scalar_one()
        conn.execute(sa.update(table).where(table.c.programme_id == programme, table.c.state == "up",
                                            table.c.started_at == at("2026-07-01T00:00"))
                     .values(ended_at=at("2026-09-01T00:00")))
        conn.execute(sa.insert(table), [
            {"programme_id": programme, "endpoint_id": None, "state": "down", "started_at": at("2026-09-01T00:00"),
             "ended_at": at("2026-09-01T02:00"), "reason": "imported"},
            {"programme_id": programme, "endpoint_id": None, "state": "up", "started_at": at("2026-09-01T02:00"),
             "ended_at": at("2026-10-19T10:00"), "reason": ""}])
    with database.transaction() as conn:
        changed = status.status_view(conn, now=NOW, tz=TZ, audience="ministries", past=past)
        truth = status.status_view(conn, now=NOW, tz=TZ, audience="ministries")
    day = next(c for c in _programmes(changed)["lesmis"]["days"] if c["day"] == "2026-09-01")
    assert day["state"] == "down" and day["down_minutes"] == 120
    assert changed["ministries"] == truth["ministries"]


# --- the published files ------------------------------------------------------------------------


def test_the_public_page_and_feeds_read_back_with_real_parsers(month, tmp_path):
    import feedparser
    import icalendar

    database, numbers = month
    settings = _settings(database, tmp_path)
    site = tmp_path / "site"
    written = status.publish(database, site, audience="public", now=NOW, settings=settings)
    assert sorted(p.name for p in written) == ["feed.atom", "index.html", "maintenance.ics", "style.css"]
    page = (site / "index.html").read_text()
    assert page.count("<h1>") == 1 and "<main" in page and "<footer" in page and "<script" not in page.replace(
        "&lt;script&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "\x1b" not in page and "\x07" not in page
    assert "\u202e" not in page
    assert "Last updated" in page and "20 Oct 2026 12:00" in page and "Asia/Vientiane, UTC+07:00" in page
    assert 'href="tel:+85621000000"' in page and "mailto:servicedesk@ndc.gov.la" in page
    assert "e-CRVS" not in page and "Registry database migration" not in page and "LESMIS" in page
    assert "Database failover" not in page and "10.0.3.7" not in page
    assert "No data" in page and ">Up<" not in page.split('id="programmes"')[1].split("LaoInfo")[1][:400]
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    feed = feedparser.parse((site / "feed.atom").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    ids = [entry.id for entry in feed.entries]
    assert f"tag:dcops,2026-10-18:incident/{numbers['kpl-news']}/update/2" in ids
    assert f"tag:dcops,2026-10-18:incident/{numbers['kpl-news']}/update/1" in ids
    assert sum(1 for i in ids if ":maintenance/" in i) == 3  # upcoming, under way, cancelled
    assert len(ids) == 5
    note = next(e for e in feed.entries if e.id.endswith("update/2")).summary
    assert "<script>alert(1)</script>" in note and "\x1b" not in note and "\x0c" not in note
    calendar = icalendar.Calendar.from_ical((site / "maintenance.ics").read_bytes())
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert len(events) == 3
    upcoming = next(e for e in events.values() if "Web server" in str(e["DESCRIPTION"]))
    assert upcoming.decoded("DTSTART") == at("2026-10-25T15:00")
    assert str(upcoming["DESCRIPTION"]).startswith("Web server upgrade; expect 5 min, no more")
    assert str(upcoming["SUMMARY"]) == "Maintenance: KPL news"
    assert sorted(str(e["STATUS"]) for e in events.values()) == ["CANCELLED", "CONFIRMED", "CONFIRMED"]
    raw = (site / "maintenance.ics").read_bytes()
    assert raw.count(b"\r\n") == len(raw.split(b"\r\n")) - 1 and b"\n" not in raw.replace(b"\r\n", b"")
    # A second publish a minute later: the same events under the same UIDs, the same calendar file.
    status.publish(database, site, audience="public", now=NOW + timedelta(minutes=1), settings=settings)
    assert (site / "maintenance.ics").read_bytes() == raw
    again = icalendar.Calendar.from_ical((site / "maintenance.ics").read_bytes())
    assert {str(e["UID"]) for e in again.walk("VEVENT")} == set(events)


def test_the_ministries_site_names_the_unreleased_and_the_classified(month, tmp_path):
    import feedparser

    database, numbers = month
    settings = _settings(database, tmp_path)
    status.publish(database, tmp_path / "m", audience="ministries", now=NOW, settings=settings)
    page = (tmp_path / "m" / "index.html").read_text()
    assert "e-CRVS" in page and "Database failover." in page and "For the ministries only" in page
    assert "not published" in page and "CHG-11" in page
    feed = feedparser.parse((tmp_path / "m" / "feed.atom").read_bytes())
    assert not feed.bozo and any(f"incident/{numbers['lesmis']}/" in e.id for e in feed.entries)


def test_the_pages_list_the_newest_plain_incidents_and_say_how_many_more(month, tmp_path):
    """A bad fortnight (here 105 outages nobody annotated, beside an annotated one) lists the
    newest PLAIN_LISTED as rows and says how many older ones it leaves out; every annotated one is
    told; the JSON view keeps them all."""
    database, numbers = month
    plain = add_short_outages(database, "tourism-portal", status.PLAIN_LISTED + 5, end=at("2026-10-19T22:00"))
    settings = _settings(database, tmp_path)
    _written, view = status.publish_view(database, tmp_path / "m", audience="ministries", now=NOW,
                                         settings=settings)
    recent = {i["number"] for i in view["incidents"]["recent"]}
    assert set(plain) <= recent and numbers["kpl-news"] in recent
    page = (tmp_path / "m" / "index.html").read_text()
    recent_section = page[page.index('id="recent"'):]
    table = recent_section[recent_section.index('<table'):recent_section.index('</table>')]
    rows = [int(part.split('"')[0]) for part in table.split('<tr id="incident-')[1:]]
    assert rows == plain[:status.PLAIN_LISTED]  # the newest, newest first
    assert (f'<h3 id="plain-title">Detected and ended, with no note from the data centre ({status.PLAIN_LISTED + 5}): '
            f'the {status.PLAIN_LISTED} most recent</h3>') in recent_section
    assert "5 older incidents of the last 14 days are not listed here" in page
    assert f'<article class="incident" id="incident-{numbers["kpl-news"]}"' in page  # annotated: told in full

    listing = status.recent_listing(view["incidents"]["recent"], limit=3)
    assert [i["number"] for i in listing["plain"]] == plain[:3]
    assert listing["plain_count"] == len(plain) and [i["number"] for i in listing["annotated"]] == [
        numbers["kpl-news"]]
    # Under the limit, no word of more.
    status.publish(database, tmp_path / "p", audience="public", now=NOW, settings=settings)
    assert "not listed here" not in (tmp_path / "p" / "index.html").read_text()


def test_a_publish_replaces_the_files_atomically(month, tmp_path):
    """Each file is renamed into place: a reader holding the old page keeps it whole (its inode), the
    path names the new one, and no temporary file is left."""
    database, _numbers = month
    settings = _settings(database, tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("old page")
    (site / "keep.txt").write_text("the operator's own file")
    with open(site / "index.html") as reader:
        status.publish(database, site, audience="public", now=NOW, settings=settings)
        assert reader.read() == "old page"
    assert (site / "index.html").read_text().startswith("<!doctype html>")
    assert (site / "keep.txt").read_text() == "the operator's own file"
    assert sorted(os.listdir(site)) == ["feed.atom", "index.html", "keep.txt", "maintenance.ics", "style.css"]
    # Over a file in the way: one clear error, nothing written.
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    with pytest.raises(status.UserError, match="not a directory"):
        status.publish(database, blocked, audience="public", now=NOW, settings=settings)


def test_the_view_query_on_sqlite_and_postgresql(any_database):
    numbers = build_month(any_database)
    found = status.views(any_database, audiences=status.AUDIENCES, now=NOW,
                         settings=_settings(any_database, Path("/nonexistent")))
    public, ministries = found["public"], found["ministries"]
    assert [i["number"] for i in public["incidents"]["recent"]] == [numbers["kpl-news"]]
    assert public["programme_count"] < ministries["programme_count"]
    assert _programmes(ministries)["e-crvs"]["days"][-1]["state"] == "down"


# --- the command ----------------------------------------------------------------------------------


def test_status_publish_from_the_command_line(loaded_cli, tmp_path):
    result = loaded_cli("status", "publish", tmp_path / "site")
    assert "index.html" in result.stdout and (tmp_path / "site" / "feed.atom").is_file()
    result = loaded_cli("status", "publish", tmp_path / "m", "--audience", "ministries", "--output", "json")
    view = json.loads(result.stdout)
    assert view["audience"] == "ministries" and all(len(p["days"]) == 90 for m in view["ministries"]
                                                    for p in m["programmes"])
    result = loaded_cli("status", "publish", tmp_path / "x", "--audience", "press", expect=2)
    assert "press" in result.stderr and not (tmp_path / "x").exists()
    assert "Example: dcops status publish" in loaded_cli("status", "publish", "--help").stdout


# --- the service ----------------------------------------------------------------------------------


def test_the_service_publishes_both_sites_within_seconds_and_stops_on_its_event(database, tmp_path, unused_port):
    from dcops.daemon import run_service

    # An empty inventory: nothing to probe (tests reach no network), the service only serves and publishes.
    out = tmp_path / "status"
    stop = threading.Event()
    done: list = []
    settings = _settings(database, tmp_path)
    service = threading.Thread(target=lambda: done.append(run_service(
        database, stop, server_options={"host": "127.0.0.1", "port": unused_port}, tz=TZ,
        status_dir=out, settings=settings)), daemon=True)
    service.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not ((out / "public" / "index.html").is_file()
                                                   and (out / "ministries" / "index.html").is_file()):
            time.sleep(0.1)
        assert (out / "public" / "index.html").is_file() and (out / "ministries" / "index.html").is_file()
        assert "For the ministries only" in (out / "ministries" / "index.html").read_text()
        assert "For the ministries only" not in (out / "public" / "index.html").read_text()
    finally:
        stop.set()
        service.join(timeout=30)
    assert not service.is_alive() and done
    assert not [t for t in threading.enumerate() if t.name == "dcops-status"]


def test_the_collector_is_paused_while_a_view_is_built_and_runs_again_after(month, tmp_path):
    import gc

    import sqlalchemy as sa

    database, _numbers = month
    seen = []

    def note(*_args) -> None:
        seen.append(gc.isenabled())

    sa.event.listen(database.engine, "before_cursor_execute", note)
    try:
        status.views(database, audiences=["ministries"], now=NOW, settings=_settings(database, tmp_path),
                     actor="test")
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", note)
    assert seen and not any(seen)  # every query of the view ran with the collector off
    assert gc.isenabled()


def test_local_text_writes_each_month_as_strftime_does():
    for month in range(1, 13):
        moment = datetime(2026, month, 9, 20, 5, tzinfo=timezone.utc)
        local = moment.astimezone(TZ)
        assert status.local_text(moment, TZ) == f"{local.day} {local:%b %Y %H:%M}"
    assert status.local_text(datetime(2026, 3, 12, 7, 5, tzinfo=timezone.utc), TZ) == "12 Mar 2026 14:05"
