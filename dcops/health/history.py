"""Pure history maths: flap damping of probe results into states, and availability over a window.

No clock and no I/O: times come in as parameters, so every rule here is tested with
hand-computed examples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Iterable, Sequence

UP, DOWN, UNKNOWN = "up", "down", "unknown"
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_SUCCESS_THRESHOLD = 2
# A check whose last result is older than this many intervals was not being probed:
# the time after it is unknown, never up or down.
GAP_INTERVALS = 3


@dataclass(frozen=True)
class Thresholds:
    """Gatus-style damping: down after `failures` failures in a row, up after `successes` successes."""

    failures: int = DEFAULT_FAILURE_THRESHOLD
    successes: int = DEFAULT_SUCCESS_THRESHOLD


@dataclass(frozen=True)
class Memory:
    """What damping remembers of one check between results."""

    state: str = UNKNOWN
    since: datetime | None = None
    fail_streak: int = 0
    ok_streak: int = 0
    last_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Transition:
    """The check entered `state` at `at` (because of `reason`)."""

    state: str
    at: datetime
    reason: str = ""


def observe(
    memory: Memory, *, at: datetime, success: bool, reason: str, interval: timedelta, thresholds: Thresholds
) -> tuple[Memory, list[Transition]]:
    """Fold one probe result into the check's memory; return the state changes it causes.

    A gap longer than GAP_INTERVALS intervals since the last result first turns the
    check unknown from one interval after that result; from unknown, a check needs the
    full streak to become up or down again.
    """
    transitions: list[Transition] = []
    if memory.last_at is not None and at - memory.last_at > interval * GAP_INTERVALS and memory.state != UNKNOWN:
        gap_start = memory.last_at + interval
        transitions.append(Transition(UNKNOWN, gap_start, "no data"))
        memory = Memory(state=UNKNOWN, since=gap_start, last_at=memory.last_at, reason="no data")
    if success:
        memory = replace(memory, ok_streak=memory.ok_streak + 1, fail_streak=0, last_at=at)
        if memory.state != UP and memory.ok_streak >= thresholds.successes:
            transitions.append(Transition(UP, at, ""))
            memory = replace(memory, state=UP, since=at, reason="")
    else:
        memory = replace(memory, fail_streak=memory.fail_streak + 1, ok_streak=0, last_at=at)
        if memory.state != DOWN and memory.fail_streak >= thresholds.failures:
            transitions.append(Transition(DOWN, at, reason))
            memory = replace(memory, state=DOWN, since=at, reason=reason)
    return memory, transitions


def worst_state(states: Iterable[str]) -> str:
    """A programme's state from its checks' states: down if any is down, up if all are up."""
    states = list(states)
    if not states:
        return UNKNOWN
    if DOWN in states:
        return DOWN
    if all(state == UP for state in states):
        return UP
    return UNKNOWN


def stale_from(state: str, last_at, interval, now):
    """When a check's state stops being trusted, read at `now`: one interval after its last result,
    once more than GAP_INTERVALS intervals have passed without another (the rule observe() applies
    when the next result comes, so a reader sees now what the store will write then). None while
    fresh, never probed, or already unknown. Works on datetimes (with a timedelta) or on integers.
    """
    if last_at is None or state == UNKNOWN or now - last_at <= interval * GAP_INTERVALS:
        return None
    return last_at + interval


def settle_open(state: str, start, checks: Sequence[tuple[str, object]], now) -> list[tuple[str, object, object, int]]:
    """An open programme-level interval as every reader must see it at `now`.

    `checks` are the programme's checks now, as (state, stale_from(...)). Each stale check turns
    unknown at its moment (never before the interval began), and the programme takes the worst of
    its checks' states then, as the store will replay it when results come again. Returns pieces
    (state, from, to, cause) covering [start, now): `cause` is the index in `checks` of the stale
    check that began the piece, -1 for the first. Datetimes or integers, like stale_from.
    """
    if not now > start:
        return []
    states = [check_state for check_state, _stale in checks]
    stale = sorted((max(at, start), index) for index, (_state, at) in enumerate(checks) if at is not None)
    pieces = []
    current, began, cause = state, start, -1
    for at, index in stale:
        states[index] = UNKNOWN
        worst = worst_state(states)
        if worst != current:
            if at > began:
                pieces.append((current, began, at, cause))
            current, began, cause = worst, at, index
    pieces.append((current, began, now, cause))
    return pieces


@dataclass(frozen=True)
class Availability:
    """Seconds up, down and unknown in a window, and the ratio up / (up + down)."""

    up_seconds: float
    down_seconds: float
    unknown_seconds: float

    @property
    def ratio(self) -> float | None:
        """0-1; None when the window holds no up or down time at all."""
        known = self.up_seconds + self.down_seconds
        return self.up_seconds / known if known > 0 else None

    @property
    def coverage(self) -> float:
        """The share of the window with data (up or down), 0-1."""
        total = self.up_seconds + self.down_seconds + self.unknown_seconds
        return (self.up_seconds + self.down_seconds) / total if total > 0 else 0.0


def availability(
    intervals: Iterable[tuple[str, datetime, datetime | None]], start: datetime, end: datetime, *, now: datetime
) -> Availability:
    """Up, down and unknown seconds of [start, end) from (state, from, to) intervals.

    An open interval (to None) lasts until `now`; time no interval covers is unknown.
    Intervals must not overlap (the store never writes overlapping ones).
    """
    up = down = 0.0
    for state, began, ended in intervals:
        ended = now if ended is None else ended
        lo, hi = max(began, start), min(ended, end, now)
        if hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        if state == UP:
            up += seconds
        elif state == DOWN:
            down += seconds
    window = (min(end, now) - start).total_seconds() if end > start else 0.0
    return Availability(up, down, max(window - up - down, 0.0))


# --- backfill: history brought in for time the store has no data for --------------------------


def fold_results(results: Iterable[tuple[datetime, bool, str]], *, interval: timedelta,
                 thresholds: Thresholds) -> list[tuple[str, datetime, datetime, str]]:
    """A stream of (at, success, reason) results of one check, in time order, folded from no state
    through observe(): the pieces (state, from, to, reason) it makes. The last piece ends one
    interval after the last result, as the read-time rule would end it."""
    memory = Memory()
    pieces: list[list] = []
    last_at = None
    for moment, success, reason in results:
        memory, changes = observe(memory, at=moment, success=success, reason=reason, interval=interval,
                                  thresholds=thresholds)
        for change in changes:
            if pieces:
                pieces[-1][2] = change.at
            pieces.append([change.state, change.at, None, change.reason])
        last_at = moment
    if pieces:
        pieces[-1][2] = max(last_at + interval, pieces[-1][1])
    return [(state, began, ended, reason) for state, began, ended, reason in pieces if ended > began]


def uncovered(known: Iterable[tuple[datetime, datetime | None]], lo: datetime, hi: datetime
              ) -> list[tuple[datetime, datetime]]:
    """The parts of [lo, hi) that no (from, to) interval covers; `to` None lasts for ever."""
    gaps, cursor = [], lo
    for began, ended in sorted(known, key=lambda span: span[0]):
        if ended is not None and ended <= cursor:
            continue
        if began >= hi:
            break
        if began > cursor:
            gaps.append((cursor, began))
        if ended is None:
            return gaps
        cursor = max(cursor, ended)
    if cursor < hi:
        gaps.append((cursor, hi))
    return gaps


def clip(pieces: Iterable[tuple[str, datetime, datetime, str]], gaps: list[tuple[datetime, datetime]]
         ) -> list[tuple[str, datetime, datetime, str]]:
    """The up and down parts of `pieces` that fall inside `gaps`: what a backfill may write."""
    kept = []
    for state, began, ended, reason in pieces:
        if state not in (UP, DOWN):
            continue
        for lo, hi in gaps:
            low, high = max(began, lo), min(ended, hi)
            if high > low:
                kept.append((state, low, high, reason))
    return sorted(kept, key=lambda piece: piece[1])


def worst_timeline(timelines: Sequence[Sequence[tuple[str, datetime, datetime | None, str]]], lo: datetime,
                   hi: datetime) -> list[tuple[str, datetime, datetime, str]]:
    """A programme's states over [lo, hi) from its checks' timelines (state, from, to, reason;
    `to` None: open): at each moment the worst of its checks' states, a check no piece covers
    being unknown. A down piece takes the reason of the first check down."""
    edges = {lo, hi}
    for timeline in timelines:
        for _state, began, ended, _reason in timeline:
            for edge in (began, ended):
                if edge is not None and lo < edge < hi:
                    edges.add(edge)
    moments = sorted(edges)
    timelines = [sorted(timeline, key=lambda piece: piece[1]) for timeline in timelines]
    positions = [0] * len(timelines)  # per timeline, the first piece that has not ended yet
    pieces: list[list] = []
    for began, ended in zip(moments, moments[1:]):
        states, reasons = [], []
        for k, timeline in enumerate(timelines):
            i = positions[k]
            while i < len(timeline) and timeline[i][2] is not None and timeline[i][2] <= began:
                i += 1
            positions[k] = i
            if i < len(timeline) and timeline[i][1] <= began:
                states.append(timeline[i][0])
                reasons.append(timeline[i][3])
            else:
                states.append(UNKNOWN)
                reasons.append("")
        worst = worst_state(states)
        reason = next((r for s, r in zip(states, reasons) if s == DOWN), "") if worst == DOWN else ""
        if pieces and pieces[-1][0] == worst and pieces[-1][3] == reason:
            pieces[-1][2] = ended
        else:
            pieces.append([worst, began, ended, reason])
    return [tuple(piece) for piece in pieces]
