"""Figures the data centre can sign: stale state read as unknown, each period's own programmes,
unmonitored programmes said so, no spurious first-round state, history brought in after dcops probed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from dcops.catalogue import requests
from dcops.health.history import Thresholds
from dcops.health.importer import import_history
from dcops.health.status import programme_states
from dcops.health.store import load_checks, record_results
from dcops.inventory.service import load_directory
from dcops.metrics.collector import InventoryCollector
from dcops.models import Programme, StateInterval
from dcops.reports.documents import freeze, history, resolve_period, uptime_document

import inventories
import requests_fixtures
from test_health_store import Result

VIENTIANE = ZoneInfo("Asia/Vientiane")
MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def record(database, results, thresholds=Thresholds(3, 2)):
    with database.transaction(immediate=True) as conn:
        checks = load_checks(conn)
        return record_results(conn, checks, results, thresholds=thresholds)


def endpoint_ids(database) -> dict[tuple[str, str], int]:
    with database.transaction() as conn:
        return {(c.programme, c.name): c.endpoint_id for c in load_checks(conn)}


def report(database, period: str, now: datetime, **scope) -> dict:
    with database.transaction() as conn:
        return uptime_document(conn, resolve_period(period, None, None, VIENTIANE), tz=VIENTIANE, now=now,
                               data_centre_name="National Data Centre", **scope)


def day_report(database, day: str, now: datetime) -> dict:
    with database.transaction() as conn:
        return uptime_document(conn, resolve_period(None, day, day, VIENTIANE), tz=VIENTIANE, now=now,
                               data_centre_name="National Data Centre")


def samples(database, now: datetime) -> CollectorRegistry:
    registry = CollectorRegistry()
    InventoryCollector(database, now=lambda: now, registry=registry)
    return registry


@pytest.fixture
def small(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", inventories.base()))
    return any_database


# --- 1. stale state is unknown at read time ------------------------------------------------------


def test_an_import_that_stopped_a_month_ago_is_unknown_since_then(small, tmp_path):
    # dhis2/web every minute from 2026-10-31T23:00Z to the last result at 2026-11-01T00:00Z: up from
    # the second success (23:01). Nothing since, so from 00:01 (one interval after the last result) it
    # is unknown, read on 1 December exactly as the store will write it when a result comes.
    lines = [json.dumps({"timestamp": (at("2026-10-31T23:00") + k * MINUTE).isoformat(), "programme": "dhis2",
                         "check": "web", "success": True, "duration": 0.01}) for k in range(61)]
    (tmp_path / "old.jsonl").write_text("\n".join(lines) + "\n")
    import_history(small, tmp_path / "old.jsonl")
    december = at("2026-12-01T00:00")

    document = report(small, "2026-11", december)
    (dhis2,) = [p for p in document["programmes"] if p["slug"] == "dhis2"]
    # November in Vientiane: 2026-10-31T17:00Z to 2026-11-30T17:00Z; dhis2 in service from its first
    # recorded state, 23:01: T = 2,592,000 - 21,660 = 2,570,340; up 23:01 to 00:01 = 3,600; the rest unknown.
    assert (dhis2["period_seconds"], dhis2["up_seconds"], dhis2["unknown_seconds"]) == (2_570_340, 3600, 2_566_740)
    assert dhis2["coverage"] == pytest.approx(3600 / 2_570_340, abs=1e-6)
    # The others have no data at all in November: listed apart, never as 100 % or 0 %.
    assert {p["slug"] for p in document["programmes"]} == {"dhis2"}

    states = {row["programme"]: row for row in programme_states(small, now=december)}
    assert states["dhis2"] == {"programme": "dhis2", "ministry": "moh", "state": "unknown",
                               "since": "2026-11-01T00:01:00Z", "reason": "web: no results since 2026-11-01T00:00:00Z"}
    assert states["digital-id"]["state"] == "unknown" and states["digital-id"]["reason"] == "never probed"
    assert states["e-gov-portal"]["state"] == "unmonitored"

    registry = samples(small, december)
    assert registry.get_sample_value("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}) is None
    for window in ("1d", "7d"):
        assert registry.get_sample_value("dcops_programme_availability_ratio",
                                         {"programme": "dhis2", "window": window}) is None
    # The 30-day window reaches back to 00:00 on 1 November: one minute up, and nothing else known.
    assert registry.get_sample_value("dcops_programme_availability_ratio",
                                     {"programme": "dhis2", "window": "30d"}) == 1.0
    checks = {name: registry.get_sample_value("dcops_programme_checks", {"programme": name, "ministry": ministry})
              for name, ministry in (("dhis2", "moh"), ("digital-id", "mtc"), ("e-gov-portal", "mtc"))}
    assert checks == {"dhis2": 1, "digital-id": 1, "e-gov-portal": 0}


def test_a_prober_stopped_while_down_is_downtime_only_until_its_grace_ran_out(small):
    ids = endpoint_ids(small)
    web = ids[("dhis2", "web")]
    t0 = at("2026-11-10T03:00")  # 10:00 in Vientiane
    record(small, [Result(web, t0 + k * MINUTE, False, reason="status 503") for k in range(5)])
    # Down from the third failure (03:02); the last result 03:04; then the prober died.
    while_down = at("2026-11-12T00:00")
    before = day_report(small, "2026-11-10", while_down)
    (dhis2,) = [p for p in before["programmes"] if p["slug"] == "dhis2"]
    assert dhis2["downtime_seconds"] == 180  # 03:02 to 03:05, one interval after the last result
    (incident,) = dhis2["incidents"]
    assert {k: incident[k] for k in ("start", "end", "seconds", "reason", "number")} == {
        "start": "2026-11-10T03:02:00Z", "end": "2026-11-10T03:05:00Z", "seconds": 180.0,
        "reason": "web: status 503", "number": 1}
    # DcopsProgrammeDown would page only because dcops stopped: no sample, no alert.
    registry = samples(small, while_down)
    assert registry.get_sample_value("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}) is None

    # The prober comes back: the store writes the gap the readers already saw, so the same report of
    # the time before the restart has the same figures and the same inputs digest.
    record(small, [Result(web, at("2026-11-11T00:00") + k * MINUTE, True) for k in range(2)])
    after = day_report(small, "2026-11-10", at("2026-11-12T01:00"))
    (again,) = [p for p in after["programmes"] if p["slug"] == "dhis2"]
    assert {k: v for k, v in again.items()} == {k: v for k, v in dhis2.items()}
    assert after["inputs_digest"] == before["inputs_digest"]
    registry = samples(small, at("2026-11-11T00:02"))
    assert registry.get_sample_value("dcops_programme_up", {"programme": "dhis2", "ministry": "moh"}) == 1.0


# --- 2. a period covers the programmes that lived in it ------------------------------------------


def _november(database) -> None:
    """dhis2 up all November but for one hour down on the 20th; digital-id up all month (closed spans)."""
    with database.transaction(immediate=True) as conn:
        ids = dict(conn.execute(sa.select(Programme.__table__.c.slug, Programme.__table__.c.id)).all())
        spans = [("dhis2", "up", "2026-10-25T00:00", "2026-11-20T03:00", ""),
                 ("dhis2", "down", "2026-11-20T03:00", "2026-11-20T04:00", "web: refused"),
                 ("dhis2", "up", "2026-11-20T04:00", "2026-12-01T00:00", ""),
                 ("digital-id", "up", "2026-10-25T00:00", "2026-12-01T00:00", "")]
        conn.execute(sa.insert(StateInterval.__table__), [
            {"programme_id": ids[slug], "endpoint_id": None, "state": state, "started_at": at(start),
             "ended_at": at(end), "reason": reason} for slug, state, start, end, reason in spans])


def test_a_frozen_period_stays_unchanged_when_programmes_come_and_go_later(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    _november(any_database)
    issued_at = at("2026-12-01T02:00")
    frozen = freeze(any_database, report(any_database, "2026-11", issued_at), actor="director")
    assert {p["slug"] for p in frozen["programmes"]} == {"dhis2", "digital-id"}

    # Afterwards a ministry's request is approved and provisioned, and a programme retires.
    request_id = requests.submit(any_database, requests_fixtures.request("hr-moh"), actor="desk")
    requests.approve(any_database, request_id, actor="ops")
    requests.advance(any_database, request_id, "provisioning", actor="ops")
    requests.advance(any_database, request_id, "active", actor="ops")
    load_directory(any_database, inventories.write(tmp_path / "inv2", _without(requests_fixtures.inventory(),
                                                                              "e-gov-portal", "dhis2")),
                   prune=True)
    with any_database.transaction() as conn:
        statuses = dict(conn.execute(sa.text("SELECT slug, status FROM programme")).all())
        (entry,) = history(conn, tz=VIENTIANE, now=at("2026-12-20T00:00"), data_centre_name="National Data Centre")
    assert statuses["digital-id"] == "retired" and statuses["hr-moh"] == "active"
    assert (entry["status"], entry["changes"]) == ("unchanged", [])

    # History inside the period changes (the outage was an hour longer): changed, and says which.
    with any_database.transaction(immediate=True) as conn:
        conn.execute(sa.text("UPDATE state_interval SET ended_at = :e WHERE state = 'down'"),
                     {"e": at("2026-11-20T05:00")} if conn.dialect.name != "sqlite" else
                     {"e": "2026-11-20 05:00:00.000000"})
        conn.execute(sa.text("UPDATE state_interval SET started_at = :e WHERE state = 'up' AND ended_at = :x"),
                     {"e": at("2026-11-20T05:00"), "x": at("2026-12-01T00:00")} if conn.dialect.name != "sqlite"
                     else {"e": "2026-11-20 05:00:00.000000", "x": "2026-12-01 00:00:00.000000"})
        (entry,) = history(conn, tz=VIENTIANE, now=at("2026-12-20T00:00"), data_centre_name="National Data Centre")
    assert entry["status"] == "changed"
    assert {(c["programme"], c["figure"], c["frozen"], c["now"]) for c in entry["changes"]
            if c["figure"] == "downtime_seconds"} == {("dhis2", "downtime_seconds", 3600, 7200)}


def _without(files: dict, *keep: str) -> dict:
    """The inventory with only the programmes `keep` of mtc.yaml (the rest of mtc's are pruned)."""
    mtc = files["programmes/mtc.yaml"]["programmes"]
    files["programmes/mtc.yaml"]["programmes"] = [p for p in mtc if p["slug"] in keep]
    for document in files.values():
        for programme in document.get("programmes", []) if isinstance(document, dict) else []:
            programme["depends_on"] = [d for d in programme.get("depends_on", []) if d in keep]
    return files


def test_a_programme_that_retired_mid_period_counts_until_it_retired(small):
    _november(small)
    retired = at("2026-11-20T03:30")  # during the outage
    with small.transaction(immediate=True) as conn:
        conn.execute(sa.update(Programme.__table__).where(Programme.__table__.c.slug == "dhis2")
                     .values(status="retired", retired_at=retired))
    document = report(small, "2026-11", at("2026-12-02T00:00"))
    (dhis2,) = [p for p in document["programmes"] if p["slug"] == "dhis2"]
    # From 2026-10-31T17:00Z to 2026-11-20T03:30Z: 19 days 10.5 hours = 1,679,400 s, of which 30 min down.
    assert (dhis2["period_seconds"], dhis2["downtime_seconds"], dhis2["unknown_seconds"]) == (1_679_400, 1800, 0)
    assert dhis2["days"][-1] == {"day": "2026-11-30", "up": 0, "down": 0, "maintenance": 0, "unknown": 0}


# --- 3. every programme monitored, or said not to be --------------------------------------------


def test_a_programme_without_checks_is_listed_apart_as_not_monitored(small):
    ids = endpoint_ids(small)
    now = at("2026-12-01T10:00")
    # In service since before the period, whenever the test runs: a programme with no history is in
    # service from its activation, which loading the inventory sets to the real time of the run (from
    # 2027 that would be after the period, and the two would not be in the report at all).
    with small.transaction() as conn:
        conn.execute(sa.update(Programme.__table__).where(Programme.__table__.c.activated_at.is_not(None))
                     .values(activated_at=at("2026-11-01T00:00")))
    record(small, [Result(ids[("dhis2", "web")], now - (3 - k) * MINUTE, True) for k in range(3)])
    document = report(small, "2026-12", now)
    assert [p["slug"] for p in document["programmes"]] == ["dhis2"]
    assert {(p["slug"], p["reason"]) for p in document["not_monitored"]} == {
        ("digital-id", "no results"), ("e-gov-portal", "no check")}
    assert document["data_centre"]["programmes"] == 1
    from dcops.reports.render import render

    markdown = render(document, "md")
    assert "## Not monitored" in markdown and "no check: not monitored" in markdown
    csv_text = render(document, "csv")
    assert csv_text.splitlines()[0].endswith(",monitored")
    assert sum(1 for line in csv_text.splitlines() if line.endswith(",false")) == 2


# --- 4. no spurious state on a first round ------------------------------------------------------


def test_a_programme_with_two_checks_has_no_unknown_interval_before_both_report(any_database, tmp_path):
    files = inventories.base()
    files["programmes/moh.yaml"]["programmes"][0]["endpoints"].append(
        {"name": "api", "kind": "tcp", "target": "127.0.0.1:18003"})
    load_directory(any_database, inventories.write(tmp_path / "inv", files))
    ids = endpoint_ids(any_database)
    t0 = at("2026-11-01T10:00")
    changes = record(any_database, [Result(ids[("dhis2", "web")], t0, True),
                                    Result(ids[("dhis2", "api")], t0 + timedelta(milliseconds=40), True)],
                     thresholds=Thresholds(3, 1))
    assert [(slug, change.state, change.at) for slug, change in changes] == [
        ("dhis2", "up", t0 + timedelta(milliseconds=40))]
    with any_database.transaction() as conn:
        rows = conn.execute(sa.text("SELECT state FROM state_interval WHERE endpoint_id IS NULL")).all()
    assert [r[0] for r in rows] == ["up"]


# --- 5. backfill: the earlier tool's history after dcops started probing ------------------------


def test_history_older_than_dcops_fills_only_unknown_time_and_counts_what_disagrees(any_database, tmp_path, cli):
    load_directory(any_database, inventories.write(tmp_path / "inv", inventories.base()))
    web = endpoint_ids(any_database)[("dhis2", "web")]
    day = at("2026-11-10T00:00")
    # dcops probed 00:00-00:09 (up from 00:01), stopped, and again from 01:00 (up from 01:01):
    # unknown from 00:10, one interval after 00:09, to 01:01.
    record(any_database, [Result(web, day + k * MINUTE, True) for k in (*range(10), *range(60, 65))])
    # The old tool, every minute from 22:00 the day before to 01:30: failing 22:00-22:30 and
    # 00:20-00:40, and once at 01:03 (while dcops had it up). Rows after dcops' last (01:04) continue
    # its history as usual; the older ones are the backfill.
    lines = []
    for k in range(-120, 91):
        moment = day + k * MINUTE
        ok = not (-120 <= k <= -90 or 20 <= k <= 40 or k == 63)
        lines.append(json.dumps({"timestamp": moment.isoformat().replace("+00:00", "Z"), "programme": "dhis2",
                                 "check": "web", "success": ok, "duration": 0.02, "reason": "" if ok else "refused"}))
    (tmp_path / "old.jsonl").write_text("\n".join(lines) + "\n")
    summary = import_history(any_database, tmp_path / "old.jsonl")
    # 00:01-00:09 and 01:01-01:04 were measured: 13 rows left out, the failure at 01:03 disagreeing;
    # 22:00-00:00 and 00:10-01:00 (172 rows) fell in time without data; 01:05-01:30 came after.
    assert (summary.rows, summary.backfilled, summary.measured, summary.disagreeing) == (
        211, 172, 13, {"dhis2/web": 1})

    def hm(moment):
        return None if moment is None else moment.strftime("%H:%M")

    with any_database.transaction() as conn:
        rows = conn.execute(sa.select(StateInterval.__table__.c.state, StateInterval.__table__.c.started_at,
                                      StateInterval.__table__.c.ended_at)
                            .where(StateInterval.__table__.c.endpoint_id.is_(None))
                            .order_by(StateInterval.__table__.c.started_at)).all()
    assert [(state, hm(start), hm(end)) for state, start, end in rows] == [
        ("down", "22:02", "22:32"), ("up", "22:32", "00:01"),  # before dcops: the old tool's, folded
        ("up", "00:01", "00:10"),  # dcops' own, untouched
        ("unknown", "00:10", "00:11"), ("up", "00:11", "00:22"), ("down", "00:22", "00:42"), ("up", "00:42", "01:01"),
        ("up", "01:01", None),  # dcops' own, open
    ]
    document = day_report(any_database, "2026-11-10", at("2026-11-10T01:05"))
    (dhis2,) = document["programmes"]
    assert (dhis2["downtime_seconds"], dhis2["incident_count"]) == (3000, 2)
    # Importing the same file again writes nothing more: only 22:00, 22:01 (before the first state)
    # and 00:10 (still unknown) fall outside measured time, and they make no state.
    again = import_history(any_database, tmp_path / "old.jsonl")
    assert (again.backfilled, again.measured, again.programme_changes) == (3, 208, 0)
    with any_database.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM state_interval WHERE endpoint_id IS NULL")).scalar() == 8


def test_probe_import_says_what_it_filled_and_left_out_with_utc_times(loaded_cli, tmp_path):
    (tmp_path / "a.csv").write_text("timestamp,programme,check,success,duration,reason\n" + "".join(
        f"2026-11-10T00:{m:02d}:00Z,e-crvs,web,true,0.01,\n" for m in range(10)))
    first = loaded_cli("probe", "import", tmp_path / "a.csv")
    assert "(2026-11-10T00:00:00Z to 2026-11-10T00:09:00Z)" in first.stdout
    again = loaded_cli("probe", "import", tmp_path / "a.csv")
    assert "fell in time dcops had measured and were left out" in again.stderr
