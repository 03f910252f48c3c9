"""The probe history store: intervals per check and per programme, rollups, compaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dcops.health.history import Thresholds
from dcops.health.store import compact, load_checks, record_results
from dcops.inventory.service import load_directory

import inventories

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Result:
    endpoint_id: int
    at: datetime
    success: bool
    duration_seconds: float = 0.05
    reason: str = ""
    tls_expires_at: datetime | None = None


@pytest.fixture
def db(any_database, tmp_path):
    files = inventories.base()
    files["programmes/moh.yaml"]["programmes"][0]["endpoints"].append(
        {"name": "api", "kind": "tcp", "target": "127.0.0.1:18003"})
    load_directory(any_database, inventories.write(tmp_path / "inv", files))
    return any_database


def checks_of(db, slug):
    with db.transaction() as conn:
        checks = load_checks(conn)
    return {c.name: c for c in checks if c.programme == slug}, checks


def intervals(db, endpoint_id=None, programme="dhis2"):
    which = "i.endpoint_id = :e" if endpoint_id is not None else "i.endpoint_id IS NULL"
    with db.transaction() as conn:
        rows = conn.execute(sa.text(
            f"SELECT i.state, i.started_at, i.ended_at, i.reason FROM state_interval i JOIN programme p "
            f"ON p.id = i.programme_id WHERE p.slug = :p AND {which} ORDER BY i.started_at"),
            {"p": programme, "e": endpoint_id}).all()
    from dcops.db import UTCDateTime

    convert = UTCDateTime().process_result_value
    def moment(value):
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return convert(value, None) if value is not None else None
    return [(r[0], moment(r[1]), moment(r[2]), r[3]) for r in rows]


def test_checks_come_from_endpoints_of_live_programmes(db):
    mine, every = checks_of(db, "dhis2")
    assert set(mine) == {"web", "api"}
    assert mine["web"].interval_seconds == 60 and mine["web"].expect_status == "200-399"
    assert {c.programme for c in every} == {"dhis2", "digital-id"}


def test_intervals_for_check_and_programme(db):
    mine, every = checks_of(db, "dhis2")
    web, api = mine["web"].endpoint_id, mine["api"].endpoint_id
    results = []
    for minute in range(0, 10):
        results.append(Result(api, T0 + minute * MINUTE, True))
        web_ok = not 3 <= minute <= 6
        results.append(Result(web, T0 + minute * MINUTE, web_ok, reason="" if web_ok else "status 503"))
    with db.transaction(immediate=True) as conn:
        changes = record_results(conn, every, results[:10], thresholds=Thresholds(3, 2))
        changes += record_results(conn, every, results[10:], thresholds=Thresholds(3, 2))
    # web: up at minute 1, down at minute 5 (third failure), up at minute 8 (second success)
    assert [(s, a) for s, a, _e, _r in intervals(db, web)] == [
        ("up", T0 + MINUTE), ("down", T0 + 5 * MINUTE), ("up", T0 + 8 * MINUTE)]
    assert intervals(db, web)[1][3] == "status 503"
    # the programme: up once both checks are up (minute 1), down with web, up again with it
    programme = intervals(db)
    assert [(s, a, e) for s, a, e, _r in programme] == [
        ("up", T0 + MINUTE, T0 + 5 * MINUTE), ("down", T0 + 5 * MINUTE, T0 + 8 * MINUTE), ("up", T0 + 8 * MINUTE, None)]
    assert programme[1][3] == "web: status 503"
    assert [(slug, t.state) for slug, t in changes] == [("dhis2", "up"), ("dhis2", "down"), ("dhis2", "up")]
    with db.transaction() as conn:
        rollup = conn.execute(sa.text("SELECT count, failures, le_0_1 FROM latency_rollup WHERE endpoint_id = :e"),
                              {"e": web}).one()
        state = conn.execute(sa.text("SELECT state, ok_streak FROM check_state WHERE endpoint_id = :e"),
                             {"e": web}).one()
    assert tuple(rollup) == (10, 4, 10)
    assert tuple(state) == ("up", 3)


def test_compaction_drops_old_raw_results_and_folds_hours_into_days(db):
    _mine, every = checks_of(db, "dhis2")
    web = _mine["web"].endpoint_id
    start = T0 - timedelta(days=40)
    results = [Result(web, start + timedelta(hours=h), True, duration_seconds=0.2 + h / 100) for h in range(30)]
    with db.transaction(immediate=True) as conn:
        record_results(conn, every, results)
        summary = compact(conn, now=T0)
        rows = conn.execute(sa.text("SELECT period, count, min_seconds, max_seconds FROM latency_rollup "
                                    "WHERE endpoint_id = :e ORDER BY period_start"), {"e": web}).all()
        raw = conn.execute(sa.text("SELECT count(*) FROM probe_result")).scalar()
    assert summary == {"raw_removed": 30, "hourly_folded": 30, "check_intervals_removed": 0}
    assert raw == 0
    # hours 0-13 fall on the first day (10:00-23:00), 14-29 on the second
    assert [tuple(r) for r in rows] == [("day", 14, pytest.approx(0.2), pytest.approx(0.33)),
                                        ("day", 16, pytest.approx(0.34), pytest.approx(0.49))]


def test_removing_a_probed_endpoint_keeps_the_programme_record_and_retiring_closes_it(db, tmp_path):
    mine, every = checks_of(db, "dhis2")
    web, api = mine["web"].endpoint_id, mine["api"].endpoint_id
    results = [Result(e, T0 + m * MINUTE, True) for m in range(3) for e in (web, api)]
    with db.transaction(immediate=True) as conn:
        record_results(conn, every, results)
    files = inventories.base()
    load_directory(db, inventories.write(tmp_path / "again", files))  # the api endpoint is gone
    with db.transaction() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM state_interval WHERE endpoint_id = :e"), {"e": api}).scalar()
        programme_rows = conn.execute(sa.text(
            "SELECT count(*) FROM state_interval WHERE endpoint_id IS NULL AND ended_at IS NULL")).scalar()
    assert left == 0 and programme_rows == 1
    from dcops.inventory.service import retire_programme

    retire_programme(db, "dhis2")
    assert all(ended is not None for _s, _a, ended, _r in intervals(db))


def test_a_result_recorded_twice_is_stored_once(db):
    """The same check at the same microsecond is the same probe (an import run twice): one raw row."""
    _mine, every = checks_of(db, "dhis2")
    web = _mine["web"].endpoint_id
    result = Result(web, T0, True)
    for _ in range(2):
        with db.transaction(immediate=True) as conn:
            record_results(conn, every, [result])
    with db.transaction() as conn:
        raw = conn.execute(sa.text("SELECT count(*) FROM probe_result WHERE endpoint_id = :e"), {"e": web}).scalar()
    assert raw == 1


def test_compaction_drops_old_check_intervals_but_keeps_the_programme_record(db):
    """Check-level intervals that ended over 400 days ago go; programme-level ones (the SLA
    record) and everything recent stay."""
    _mine, every = checks_of(db, "dhis2")
    web = _mine["web"].endpoint_id
    long_ago = T0 - timedelta(days=500)
    # Down then up, 500 days ago: each check and the programme change state (damping 3 / 2).
    results = [Result(e.endpoint_id, long_ago + k * MINUTE, k >= 3) for k in range(6) for e in _mine.values()]
    recent = [Result(e.endpoint_id, T0 + k * MINUTE, False) for k in range(3) for e in _mine.values()]
    with db.transaction(immediate=True) as conn:
        record_results(conn, every, results)
        record_results(conn, every, recent)
    before_checks = [i for i in intervals(db, web)]
    before_programme = intervals(db)
    with db.transaction(immediate=True) as conn:
        summary = compact(conn, now=T0 + timedelta(hours=1))
    after_checks = intervals(db, web)
    # The check's intervals that ended before T0 - 400 days are gone; the open one stays.
    assert summary["check_intervals_removed"] > 0
    assert [i for i in before_checks if i[2] is None or i[2] >= T0 - timedelta(days=400)] == after_checks
    assert len(after_checks) < len(before_checks)
    assert intervals(db) == before_programme


def test_a_backfill_folds_each_hole_of_the_history_apart(db):
    """Two lone results in two holes of a check's history, either side of measured time, are no
    streak: the one before the history and the one in the prober's gap each make no state (damping
    needs two successes), so nothing is filled, and a second import of the same file writes nothing."""
    from dcops.health.store import backfill

    mine, every = checks_of(db, "dhis2")
    web = mine["web"].endpoint_id
    # dcops probed web 10:10-10:19 and 10:40-10:49, every minute: up from 10:11, unknown from 10:20
    # (one interval after 10:19, the gap rule), up again from 10:41.
    measured = [Result(web, T0 + k * MINUTE, True) for k in (*range(10, 20), *range(40, 50))]
    with db.transaction(immediate=True) as conn:
        record_results(conn, every, measured, thresholds=Thresholds(3, 2))
    before = intervals(db, web)
    assert [(s, a, e) for s, a, e, _r in before] == [
        ("up", T0 + 11 * MINUTE, T0 + 20 * MINUTE), ("unknown", T0 + 20 * MINUTE, T0 + 41 * MINUTE),
        ("up", T0 + 41 * MINUTE, None)]
    older = [Result(web, T0 + 5 * MINUTE, True), Result(web, T0 + 30 * MINUTE, True)]
    for _ in range(2):
        with db.transaction(immediate=True) as conn:
            summary = backfill(conn, every, older, thresholds=Thresholds(3, 2))
        assert (summary.filled, summary.measured) == (2, 0)
        assert intervals(db, web) == before
