"""The probe history in the database: check states, state intervals, hourly rollups, raw results."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from itertools import groupby
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from dcops.health.history import (DOWN, UNKNOWN, UP, Memory, Thresholds, Transition, clip, fold_results, observe,
                                  uncovered, worst_state, worst_timeline)
from dcops.health.steps import Run, fold_runs
from dcops.vocabulary import IN_SERVICE_STATUSES
from dcops.models import CheckState, Endpoint, LatencyRollup, ProbeResult as ProbeResultRow, Programme, StateInterval

T_ENDPOINT = Endpoint.__table__
T_PROGRAMME = Programme.__table__
T_STATE = CheckState.__table__
T_INTERVAL = StateInterval.__table__
T_ROLLUP = LatencyRollup.__table__
T_RAW = ProbeResultRow.__table__

DEFAULT_RAW_RETENTION = timedelta(hours=48)
# Hourly latency detail for two weeks covers "what happened last week"; older hours are
# folded into days, which keeps a year of history small (see the health benchmark).
DEFAULT_HOURLY_RETENTION = timedelta(days=14)
# Which check of a programme failed, and when, matters for incident reviews within the year;
# the programme's own intervals, which the SLA reports read, are never dropped.
DEFAULT_CHECK_INTERVAL_RETENTION = timedelta(days=400)
# Upper bounds (seconds) of the latency buckets kept per hour; the last bucket is everything.
BUCKETS = (("le_0_1", 0.1), ("le_0_5", 0.5), ("le_1", 1.0), ("le_5", 5.0))
ROLLUP_SUMS = ("count", "failures", "sum_seconds", "min_seconds", "max_seconds", *(name for name, _ in BUCKETS))

# The statements run once per result or per change are built once, with bound parameters: a round
# of 2,000 checks runs thousands of them, and building a statement (and its cache key) costs
# several times what running it does.
_CLOSE_CHECK_INTERVAL = update(T_INTERVAL).where(
    T_INTERVAL.c.programme_id == bindparam("b_programme"), T_INTERVAL.c.endpoint_id == bindparam("b_endpoint"),
    T_INTERVAL.c.ended_at.is_(None)).values(ended_at=bindparam("b_at"))
_CLOSE_PROGRAMME_INTERVAL = update(T_INTERVAL).where(
    T_INTERVAL.c.programme_id == bindparam("b_programme"), T_INTERVAL.c.endpoint_id.is_(None),
    T_INTERVAL.c.ended_at.is_(None)).values(ended_at=bindparam("b_at"))
_OPEN_INTERVAL = insert(T_INTERVAL)
_PROGRAMME_STATE = select(T_INTERVAL.c.state).where(
    T_INTERVAL.c.programme_id == bindparam("b_programme"), T_INTERVAL.c.endpoint_id.is_(None),
    T_INTERVAL.c.ended_at.is_(None))
_STATE_FIELDS = ("state", "since", "fail_streak", "ok_streak", "last_at", "last_success", "last_duration_seconds",
                 "last_reason")
_UPDATE_STATE = update(T_STATE).where(T_STATE.c.endpoint_id == bindparam("b_endpoint")).values(
    {name: bindparam(f"b_{name}") for name in _STATE_FIELDS})
_UPDATE_STATE_TLS = update(T_STATE).where(T_STATE.c.endpoint_id == bindparam("b_endpoint")).values(
    {name: bindparam(f"b_{name}") for name in (*_STATE_FIELDS, "tls_expires_at")})
_UPDATE_ROLLUP = update(T_ROLLUP).where(
    T_ROLLUP.c.endpoint_id == bindparam("b_endpoint"), T_ROLLUP.c.period_start == bindparam("b_start")).values(
    {name: bindparam(f"b_{name}") for name in ROLLUP_SUMS})


@dataclass(frozen=True)
class CheckRow:
    """A check as the prober needs it: its endpoint and programme, and its probe settings."""

    endpoint_id: int
    programme_id: int
    programme: str
    name: str
    kind: str
    target: str
    expect_status: str
    body_contains: str
    timeout_seconds: float
    interval_seconds: int




def load_checks(conn: Connection) -> list[CheckRow]:
    """Every endpoint of every programme in service: one being built is not probed (its failures
    are not outages), and a retired one drops out by itself."""
    rows = conn.execute(
        select(T_ENDPOINT, T_PROGRAMME.c.slug)
        .join(T_PROGRAMME, T_PROGRAMME.c.id == T_ENDPOINT.c.programme_id)
        .where(T_PROGRAMME.c.status.in_(IN_SERVICE_STATUSES))
        .order_by(T_PROGRAMME.c.slug, T_ENDPOINT.c.name)
    )
    return [
        CheckRow(r.id, r.programme_id, r.slug, r.name, r.kind, r.target, r.expect_status, r.body_contains,
                 r.timeout_seconds, r.interval_seconds)
        for r in rows
    ]


def _memories(conn: Connection, endpoint_ids: Iterable[int]) -> dict[int, Memory]:
    ids = list(endpoint_ids)
    memories = {}
    for chunk in range(0, len(ids), 500):
        for r in conn.execute(select(T_STATE).where(T_STATE.c.endpoint_id.in_(ids[chunk:chunk + 500]))):
            memories[r.endpoint_id] = Memory(r.state, r.since, r.fail_streak, r.ok_streak, r.last_at, r.last_reason)
    return memories


def _hour(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _switch_interval(conn: Connection, programme_id: int, endpoint_id: int | None, change: Transition) -> None:
    """Close the open interval (of a check, or of the programme when endpoint_id is None) and open one."""
    if endpoint_id is not None:
        conn.execute(_CLOSE_CHECK_INTERVAL, {"b_programme": programme_id, "b_endpoint": endpoint_id, "b_at": change.at})
    else:
        conn.execute(_CLOSE_PROGRAMME_INTERVAL, {"b_programme": programme_id, "b_at": change.at})
    conn.execute(_OPEN_INTERVAL, {"programme_id": programme_id, "endpoint_id": endpoint_id, "state": change.state,
                                  "started_at": change.at, "ended_at": None, "reason": change.reason})


def record_results(
    conn: Connection, checks: Sequence[CheckRow], results: Sequence, *, thresholds: Thresholds = Thresholds()
) -> list[tuple[str, Transition]]:
    """Fold probe results into the history, in the caller's transaction.

    `results` carry endpoint_id, at, success, duration_seconds, reason (and optionally
    tls_expires_at). Returns the programme-level state changes as (slug, transition).
    """
    by_id = {check.endpoint_id: check for check in checks}
    results = sorted((r for r in results if r.endpoint_id in by_id), key=lambda r: (r.at, r.endpoint_id))
    if not results:
        return []
    memories = _memories(conn, by_id)
    known = set(memories)
    # Each check's state before this batch: its programme's changes are replayed from these.
    states_before = {endpoint_id: memory.state for endpoint_id, memory in memories.items()}
    check_changes: list[tuple[int, Transition]] = []
    rollups: dict[tuple[int, datetime], dict] = {}
    tls_expiry: dict[int, datetime] = {}
    last: dict[int, object] = {}
    for result in results:
        check = by_id[result.endpoint_id]
        memory, changes = observe(memories.get(check.endpoint_id, Memory()), at=result.at, success=result.success,
                                  reason=result.reason, interval=timedelta(seconds=check.interval_seconds),
                                  thresholds=thresholds)
        memories[check.endpoint_id] = memory
        check_changes += [(check.endpoint_id, change) for change in changes]
        last[check.endpoint_id] = result
        if getattr(result, "tls_expires_at", None) is not None:
            tls_expiry[check.endpoint_id] = result.tls_expires_at
        key = (check.endpoint_id, _hour(result.at))
        roll = rollups.get(key) or rollups.setdefault(key, _empty_rollup())
        _add_sample(roll, result.duration_seconds, result.success)

    for endpoint_id, change in check_changes:
        _switch_interval(conn, by_id[endpoint_id].programme_id, endpoint_id, change)
    programme_changes = _programme_changes(conn, by_id, states_before, check_changes)

    updates: dict[bool, list[dict]] = {False: [], True: []}  # by whether the TLS expiry is known
    inserts = []
    for endpoint_id, memory in memories.items():
        if endpoint_id not in last:
            continue
        result = last[endpoint_id]
        values = {"state": memory.state, "since": memory.since, "fail_streak": memory.fail_streak,
                  "ok_streak": memory.ok_streak, "last_at": memory.last_at, "last_success": result.success,
                  "last_duration_seconds": result.duration_seconds, "last_reason": result.reason}
        if endpoint_id in tls_expiry:
            values["tls_expires_at"] = tls_expiry[endpoint_id]
        if endpoint_id in known:
            updates[endpoint_id in tls_expiry].append(
                {"b_endpoint": endpoint_id, **{f"b_{name}": value for name, value in values.items()}})
        else:
            inserts.append({"endpoint_id": endpoint_id, "tls_expires_at": None, **values})
    for statement, params in ((_UPDATE_STATE, updates[False]), (_UPDATE_STATE_TLS, updates[True])):
        if params:
            conn.execute(statement, params)
    if inserts:
        conn.execute(insert(T_STATE), inserts)
    conn.execute(_insert_ignoring_duplicates(conn), [
        {"endpoint_id": r.endpoint_id, "at": r.at, "success": r.success, "duration_seconds": r.duration_seconds,
         "reason": r.reason} for r in results
    ])
    _merge_rollups(conn, rollups, period="hour")
    _sync_incidents(conn, checks, programme_changes)
    return programme_changes


def _sync_incidents(conn: Connection, checks: Sequence[CheckRow], changes: list[tuple[str, Transition]]) -> None:
    """The programmes whose state changed get their incident records brought up to date, in the
    same transaction as the history they follow."""
    if not changes:
        return
    from dcops import incidents

    changed = {slug for slug, _transition in changes}
    ids = {check.programme_id for check in checks if check.programme in changed}
    incidents.sync(conn, programme_ids=ids, since=min(transition.at for _slug, transition in changes))


def record_runs(conn: Connection, checks: Sequence[CheckRow], runs: dict[int, list[Run]], *,
                thresholds: Thresholds, reason: str,
                last_values: dict[int, tuple[float | None, datetime | None]] | None = None,
                ) -> tuple[list[tuple[int, Transition]], list[tuple[str, Transition]]]:
    """Continue each check's history with its runs of results (all newer than its latest stored
    result), in the caller's transaction: what record_results does for single results, in
    one step per run, and without raw results or latency rollups (Prometheus keeps those).

    `checks` must hold every check of each programme concerned (a programme's state is the worst of
    its checks'). Returns the check-level and programme-level changes.
    """
    by_id = {check.endpoint_id: check for check in checks}
    runs = {endpoint_id: rows for endpoint_id, rows in runs.items() if rows and endpoint_id in by_id}
    if not runs:
        return [], []
    memories = _memories(conn, runs)
    known = set(memories)
    states_before = {endpoint_id: memory.state for endpoint_id, memory in memories.items()}
    check_changes: list[tuple[int, Transition]] = []
    finals: dict[int, tuple[Memory, bool]] = {}
    for endpoint_id, rows in runs.items():
        memory, changes = fold_runs(memories.get(endpoint_id, Memory()), rows,
                                    interval=int(by_id[endpoint_id].interval_seconds), thresholds=thresholds,
                                    reason=reason)
        finals[endpoint_id] = (memory, rows[-1].success)
        check_changes += [(endpoint_id, change) for change in changes]
    # In time order, as record_results writes them: the programme's replay reads them so.
    check_changes.sort(key=lambda item: (item[1].at, item[0]))
    for endpoint_id, change in check_changes:
        _switch_interval(conn, by_id[endpoint_id].programme_id, endpoint_id, change)
    programme_changes = _programme_changes(conn, by_id, states_before, check_changes)
    updates, inserts = [], []
    for endpoint_id, (memory, success) in finals.items():
        duration, tls_expires_at = (last_values or {}).get(endpoint_id, (None, None))
        values = {"state": memory.state, "since": memory.since, "fail_streak": memory.fail_streak,
                  "ok_streak": memory.ok_streak, "last_at": memory.last_at, "last_success": success,
                  "last_reason": "" if success else reason}
        if duration is not None:
            values["last_duration_seconds"] = duration
        if tls_expires_at is not None:
            values["tls_expires_at"] = tls_expires_at
        if endpoint_id in known:
            updates.append((endpoint_id, values))
        else:
            inserts.append({"endpoint_id": endpoint_id, "last_duration_seconds": 0.0, "tls_expires_at": None,
                            **values})
    for endpoint_id, values in updates:
        conn.execute(update(T_STATE).where(T_STATE.c.endpoint_id == endpoint_id).values(values))
    if inserts:
        conn.execute(insert(T_STATE), inserts)
    _sync_incidents(conn, checks, programme_changes)
    return check_changes, programme_changes


@dataclass
class Backfill:
    """What a backfill did: results that filled unknown time, and those left out because the store
    had measured that time already (`disagreeing`: per programme/check, how many said otherwise)."""

    filled: int = 0
    measured: int = 0
    disagreeing: dict[str, int] = field(default_factory=dict)
    wrote: bool = False  # whether any up or down time was written (a check's or a programme's)


def _timeline(conn: Connection, programme_id: int, endpoint_id: int | None) -> list[tuple]:
    """One check's (or, endpoint_id None, the programme's) intervals: (id, state, from, to, reason)."""
    level = T_INTERVAL.c.endpoint_id.is_(None) if endpoint_id is None else T_INTERVAL.c.endpoint_id == endpoint_id
    return [tuple(r) for r in conn.execute(
        select(T_INTERVAL.c.id, T_INTERVAL.c.state, T_INTERVAL.c.started_at, T_INTERVAL.c.ended_at,
               T_INTERVAL.c.reason)
        .where(T_INTERVAL.c.programme_id == programme_id, level).order_by(T_INTERVAL.c.started_at))]


def _fill(conn: Connection, programme_id: int, endpoint_id: int | None, timeline: list[tuple],
          proposed: list[tuple[str, datetime, datetime, str]]) -> list[tuple[str, datetime, datetime, str]]:
    """Write the up and down parts of `proposed` into the time `timeline` has no up or down for;
    an unknown interval they land in is cut around them. Returns what was written."""
    if not proposed:
        return []
    lo, hi = min(p[1] for p in proposed), max(p[2] for p in proposed)
    fills = clip(proposed, uncovered([(r[2], r[3]) for r in timeline if r[1] in (UP, DOWN)], lo, hi))
    if not fills:
        return []
    for interval_id, state, began, ended, reason in timeline:
        if state in (UP, DOWN):
            continue
        cuts = [(f[1], f[2]) for f in fills if f[1] < (ended or f[2]) and f[2] > began]
        if not cuts:
            continue
        conn.execute(delete(T_INTERVAL).where(T_INTERVAL.c.id == interval_id))
        # An open interval is cut as if it ended after every fill; its last part stays open.
        end = ended if ended is not None else hi + timedelta(days=1)
        for low, high in uncovered(cuts, began, end):
            conn.execute(_OPEN_INTERVAL, {"programme_id": programme_id, "endpoint_id": endpoint_id, "state": state,
                                          "started_at": low, "ended_at": None if ended is None and high == end
                                          else high, "reason": reason})
    conn.execute(_OPEN_INTERVAL, [{"programme_id": programme_id, "endpoint_id": endpoint_id, "state": state,
                                   "started_at": began, "ended_at": ended, "reason": reason}
                                  for state, began, ended, reason in fills])
    return fills


def backfill(conn: Connection, checks: Sequence[CheckRow], results: Sequence, *,
             thresholds: Thresholds = Thresholds()) -> Backfill:
    """Fold results older than each check's latest into the time the store has no data for, in the
    caller's transaction: what dcops measured is never overwritten.

    Per check, the results that fall in time without an up or down interval are folded from no
    state (history.fold_results) and written there; then each programme's state over the filled
    time is the worst of its checks' (history.worst_timeline), written where the programme's own
    record has no up or down. Results inside measured time are left out and counted, with those
    that disagree with it (a failure while up, a success while down).
    """
    by_id = {check.endpoint_id: check for check in checks}
    summary = Backfill()
    filled_range: dict[int, list[datetime]] = {}
    kept, rollups = [], {}
    ordered = sorted((r for r in results if r.endpoint_id in by_id), key=lambda r: (r.endpoint_id, r.at))
    for endpoint_id, group in groupby(ordered, key=lambda r: r.endpoint_id):
        check = by_id[endpoint_id]
        group = list(group)
        timeline = _timeline(conn, check.programme_id, endpoint_id)
        known = [(r[2], r[3], r[1]) for r in timeline if r[1] in (UP, DOWN)]  # by start: never overlapping
        starts = [k[0] for k in known]
        in_gap: list = []
        holes: dict[int, list] = {}  # the results in each hole, by the measured interval before it (-1: none)
        for result in group:
            index = bisect_right(starts, result.at) - 1
            state = None
            if index >= 0 and (known[index][1] is None or result.at < known[index][1]):
                state = known[index][2]
            if state is None:
                in_gap.append(result)
                holes.setdefault(index, []).append(result)
                continue
            summary.measured += 1
            if (state == UP) != result.success:
                key = f"{check.programme}/{check.name}"
                summary.disagreeing[key] = summary.disagreeing.get(key, 0) + 1
        # Each hole folds apart from no state: a streak does not run across time dcops measured (two
        # lone results either side of it are not two in a row), and a hole's last piece stops where
        # the next measured interval begins, so the pieces of two holes never overlap.
        interval = timedelta(seconds=check.interval_seconds)
        proposed = []
        for index, hole in holes.items():
            hole_end = starts[index + 1] if index + 1 < len(starts) else None
            for state, began, ended, reason in fold_results(((r.at, r.success, r.reason) for r in hole),
                                                            interval=interval, thresholds=thresholds):
                if hole_end is not None:
                    ended = min(ended, hole_end)
                if ended > began:
                    proposed.append((state, began, ended, reason))
        fills = _fill(conn, check.programme_id, endpoint_id, timeline, proposed)
        if fills:  # sorted and disjoint: the first starts first, the last ends last
            span = filled_range.setdefault(check.programme_id, [fills[0][1], fills[-1][2]])
            span[0], span[1] = min(span[0], fills[0][1]), max(span[1], fills[-1][2])
        summary.filled += len(in_gap)
        # Latency only of the results in time written now: one at a time that wrote nothing may have
        # been brought in before (raw results are not kept long enough to tell), and is not counted twice.
        fill_starts = [f[1] for f in fills]
        written = [r for r in in_gap if (k := bisect_right(fill_starts, r.at) - 1) >= 0 and r.at < fills[k][2]]
        kept += written
        for result in written:
            key = (endpoint_id, _hour(result.at))
            roll = rollups.get(key) or rollups.setdefault(key, _empty_rollup())
            _add_sample(roll, result.duration_seconds, result.success)
    names = {check.endpoint_id: check.name for check in checks}
    for programme_id, (lo, hi) in filled_range.items():
        endpoints = [check.endpoint_id for check in checks if check.programme_id == programme_id]
        timelines = [[(r[1], r[2], r[3], f"{names[e]}: {r[4]}" if r[4] else "")
                      for r in _timeline(conn, programme_id, e)] for e in endpoints]
        _fill(conn, programme_id, None, _timeline(conn, programme_id, None), worst_timeline(timelines, lo, hi))
    summary.wrote = bool(filled_range)  # a programme's own record is filled only where a check's was
    if filled_range:
        from dcops import incidents

        incidents.sync(conn, programme_ids=filled_range, since=min(lo for lo, _hi in filled_range.values()))
    if kept:
        conn.execute(_insert_ignoring_duplicates(conn), [
            {"endpoint_id": r.endpoint_id, "at": r.at, "success": r.success, "duration_seconds": r.duration_seconds,
             "reason": r.reason} for r in kept])
        _merge_rollups(conn, rollups, period="hour")
    return summary


STOPPED = "prober stopped"


def record_stop(conn: Connection, checks: Sequence[CheckRow], *, at: datetime) -> list[tuple[str, Transition]]:
    """The prober stopped probing `checks` at `at`: each is unknown from then (reason "prober
    stopped") until results come again, and so is its programme; in the caller's transaction.

    Without this the read-time rule would still say unknown, but only some intervals later,
    and without saying why. Returns the programme-level changes, as record_results does.
    """
    by_id = {check.endpoint_id: check for check in checks}
    memories = _memories(conn, by_id)
    states_before = {endpoint_id: memory.state for endpoint_id, memory in memories.items()}
    check_changes = []
    for endpoint_id, memory in memories.items():
        if memory.state == UNKNOWN:
            continue
        moment = max(at, memory.last_at) if memory.last_at is not None else at
        change = Transition(UNKNOWN, moment, STOPPED)
        check_changes.append((endpoint_id, change))
        conn.execute(update(T_STATE).where(T_STATE.c.endpoint_id == endpoint_id).values(
            state=UNKNOWN, since=moment, fail_streak=0, ok_streak=0))
    for endpoint_id, change in check_changes:
        _switch_interval(conn, by_id[endpoint_id].programme_id, endpoint_id, change)
    changes = _programme_changes(conn, by_id, states_before, check_changes)
    _sync_incidents(conn, checks, changes)
    return changes


def _insert_ignoring_duplicates(conn: Connection):
    """An insert of raw results that skips one already stored (same check, same microsecond):
    an import run twice, or a result reported twice, is the same probe."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(T_RAW).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(T_RAW).on_conflict_do_nothing()
    return insert(T_RAW)


def _empty_rollup() -> dict:
    return {"count": 0, "failures": 0, "sum_seconds": 0.0, "min_seconds": None, "max_seconds": None,
            **{name: 0 for name, _ in BUCKETS}}


def _add_sample(roll: dict, seconds: float, success: bool) -> None:
    roll["count"] += 1
    roll["failures"] += 0 if success else 1
    roll["sum_seconds"] += seconds
    roll["min_seconds"] = seconds if roll["min_seconds"] is None else min(roll["min_seconds"], seconds)
    roll["max_seconds"] = seconds if roll["max_seconds"] is None else max(roll["max_seconds"], seconds)
    for name, bound in BUCKETS:
        if seconds <= bound:
            roll[name] += 1


def _merge_rollups(conn: Connection, rollups: dict[tuple[int, datetime], dict], *, period: str) -> None:
    """Add rollups into the table: existing rows of the same check and period start are summed."""
    if not rollups:
        return
    existing = {}
    endpoints = sorted({endpoint_id for endpoint_id, _start in rollups})
    starts = sorted({start for _endpoint_id, start in rollups})
    for e in range(0, len(endpoints), 400):
        for p in range(0, len(starts), 400):
            for row in conn.execute(select(T_ROLLUP).where(T_ROLLUP.c.endpoint_id.in_(endpoints[e:e + 400]),
                                                           T_ROLLUP.c.period_start.in_(starts[p:p + 400]))):
                if (row.endpoint_id, row.period_start) in rollups:
                    existing[(row.endpoint_id, row.period_start)] = row
    new, merged = [], []
    for key, roll in rollups.items():
        row = existing.get(key)
        if row is None:
            new.append({"endpoint_id": key[0], "period_start": key[1], "period": period, **roll})
            continue
        merged.append({
            "b_endpoint": key[0],
            "b_start": key[1],
            "b_count": row.count + roll["count"],
            "b_failures": row.failures + roll["failures"],
            "b_sum_seconds": row.sum_seconds + roll["sum_seconds"],
            "b_min_seconds": min(v for v in (row.min_seconds, roll["min_seconds"]) if v is not None),
            "b_max_seconds": max(v for v in (row.max_seconds, roll["max_seconds"]) if v is not None),
            **{f"b_{name}": getattr(row, name) + roll[name] for name, _ in BUCKETS},
        })
    if new:
        conn.execute(insert(T_ROLLUP), new)
    if merged:
        conn.execute(_UPDATE_ROLLUP, merged)


def _programme_changes(conn, by_id, states_before, check_changes) -> list[tuple[str, Transition]]:
    """Programme-level intervals: the worst of its checks' states, changing when a check's does."""
    programmes = defaultdict(list)
    for check in by_id.values():
        programmes[check.programme_id].append(check.endpoint_id)
    affected = {by_id[endpoint_id].programme_id for endpoint_id, _ in check_changes}
    by_programme: dict[int, list] = defaultdict(list)  # its checks' changes, in the order of check_changes
    for endpoint_id, change in check_changes:
        by_programme[by_id[endpoint_id].programme_id].append((change.at, endpoint_id, change))
    changes = []
    for programme_id in affected:
        endpoints = programmes[programme_id]
        # Replay this batch's check transitions in time order from the states before it.
        batch = sorted(by_programme[programme_id], key=lambda item: (item[0], item[1]))
        states = {endpoint_id: states_before.get(endpoint_id, UNKNOWN) for endpoint_id in endpoints}
        open_row = conn.execute(_PROGRAMME_STATE, {"b_programme": programme_id}).first()
        current = open_row[0] if open_row else None
        slug = by_id[endpoints[0]].programme
        # Changes at the same instant apply together: no zero-length programme intervals.
        for at, group in groupby(batch, key=lambda item: item[0]):
            group = list(group)
            for _at, endpoint_id, change in group:
                states[endpoint_id] = change.state
            worst = worst_state(states.values())
            # Before its first known state a programme has no interval: "unknown" would only say
            # that its other checks have not reported yet.
            if worst != current and not (current is None and worst == UNKNOWN):
                reasons = [f"{by_id[e].name}: {c.reason}" for _a, e, c in group if c.reason and c.state == worst]
                transition = Transition(worst, at, "; ".join(reasons))
                _switch_interval(conn, programme_id, None, transition)
                changes.append((slug, transition))
                current = worst
    return changes


def compact(conn: Connection, *, now: datetime, raw_retention: timedelta = DEFAULT_RAW_RETENTION,
            hourly_retention: timedelta = DEFAULT_HOURLY_RETENTION,
            check_interval_retention: timedelta = DEFAULT_CHECK_INTERVAL_RETENTION) -> dict[str, int]:
    """Drop raw results past their window, fold old hourly rollups into daily ones, and drop
    check-level intervals that ended long ago (programme-level ones are the SLA record: kept)."""
    removed = conn.execute(delete(T_RAW).where(T_RAW.c.at < now - raw_retention)).rowcount
    intervals_removed = conn.execute(delete(T_INTERVAL).where(
        T_INTERVAL.c.endpoint_id.is_not(None), T_INTERVAL.c.ended_at < now - check_interval_retention)).rowcount
    cutoff = _hour(now - hourly_retention)
    # In key order, so that the floating-point sums come out the same however the rows were written.
    old = conn.execute(select(T_ROLLUP).where(T_ROLLUP.c.period == "hour", T_ROLLUP.c.period_start < cutoff)
                       .order_by(T_ROLLUP.c.endpoint_id, T_ROLLUP.c.period_start)).all()
    daily: dict[tuple[int, datetime], dict] = {}
    for row in old:
        day = row.period_start.replace(hour=0)
        roll = daily.get((row.endpoint_id, day)) or daily.setdefault((row.endpoint_id, day), _empty_rollup())
        roll["count"] += row.count
        roll["failures"] += row.failures
        roll["sum_seconds"] += row.sum_seconds
        for key, pick in (("min_seconds", min), ("max_seconds", max)):
            value = getattr(row, key)
            if value is not None:
                roll[key] = value if roll[key] is None else pick(roll[key], value)
        for name, _ in BUCKETS:
            roll[name] += getattr(row, name)
    if old:
        conn.execute(delete(T_ROLLUP).where(and_(T_ROLLUP.c.period == "hour", T_ROLLUP.c.period_start < cutoff)))
        _merge_rollups(conn, daily, period="day")
    return {"raw_removed": removed, "hourly_folded": len(old), "check_intervals_removed": intervals_removed}


def end_programme_history(conn: Connection, programme_id: int, at: datetime) -> None:
    """Close a retiring programme's open intervals: it is not up, down or unknown any more."""
    conn.execute(update(T_INTERVAL).where(T_INTERVAL.c.programme_id == programme_id,
                                          T_INTERVAL.c.ended_at.is_(None)).values(ended_at=at))
    from dcops import incidents

    incidents.sync(conn, programme_ids=[programme_id], since=at)


def forget_check(conn: Connection, endpoint_id: int) -> None:
    """Remove a deleted endpoint's own history; its programme's intervals (the SLA record) stay."""
    for table in (T_STATE, T_RAW, T_ROLLUP, T_INTERVAL):
        conn.execute(delete(table).where(table.c.endpoint_id == endpoint_id))
