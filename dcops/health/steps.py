"""Pure maths of reading probe results back from Prometheus: windows one check interval long, their
verdicts as runs of results, and flap damping over runs (the same rule as history.observe).

Times here are integer Unix seconds (a step's end) or microseconds (a stored result's time), so
that comparisons are exact; no clock and no I/O. Every rule is tested with hand-computed examples
and against history.observe on random data.

A check probed every I seconds is read in steps: the step ending at t (a multiple of I) holds the
samples of (t - I, t]. Consecutive steps tile time, so no sample is read twice or lost at a step's
edge (a window one step long reads the sample on its boundary twice: research, section 5.1).
Each step's verdict is one result at t:

- no sample: no result (what the missing results mean is the store's rule: more than
  GAP_INTERVALS intervals without one and the check is unknown from one interval after the last);
- every sample succeeded: a success; none did: a failure;
- some did and some did not (two samples in one step, or several vantage points that disagree):
  a failure. A step is up only when all its samples say so, the conservative reading for an SLA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

from dcops.health.history import DOWN, GAP_INTERVALS, UNKNOWN, UP, Memory, Thresholds, Transition

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECONDS = 1_000_000


def as_us(moment: datetime) -> int:
    """An aware datetime as integer Unix microseconds (exact)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """Integer Unix microseconds as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def first_step_after(moment_us: int, interval: int) -> int:
    """The first step (Unix seconds) whose window (t - interval, t] starts at or after `moment_us`:
    a check whose last result is at `moment_us` continues with it, and a sync from a time reads
    nothing before it."""
    period = interval * MICROSECONDS
    return (-(-moment_us // period)) * interval + interval


def last_step_until(moment_us: int, interval: int) -> int:
    """The last step (Unix seconds) that ends at or before `moment_us`: its window is complete."""
    return (moment_us // (interval * MICROSECONDS)) * interval


def chunks(first: int, last: int, interval: int, max_steps: int) -> list[tuple[int, int]]:
    """Steps first..last (inclusive, both multiples of `interval`) cut into (start, end) pieces of at
    most `max_steps` steps each: a query_range below Prometheus' 11,000 points per series."""
    pieces, start = [], first
    while start <= last:
        end = min(start + (max_steps - 1) * interval, last)
        pieces.append((start, end))
        start = end + interval
    return pieces


@dataclass(frozen=True)
class Run:
    """`count` results of one check at `start`, `start + interval`, ... (Unix seconds), all
    successes or all failures."""

    start: int
    count: int
    success: bool

    def end(self, interval: int) -> int:
        """The time of the run's last result."""
        return self.start + (self.count - 1) * interval


@dataclass
class StepCounts:
    """How one check's steps read: up, down, mixed (counted as down too), and the runs they make."""

    up: int = 0
    down: int = 0
    mixed: int = 0
    runs: list[Run] = field(default_factory=list)


def read_steps(values: Iterable[tuple[float, str]], interval: int, counts: StepCounts | None = None) -> StepCounts:
    """Fold query_range values [(step time, "share of samples up"), ...], in time order, into runs
    (added to `counts`, continuing its last run when the steps follow on).

    The value is sum_over_time / count_over_time of probe_success over the step's window: "1"
    all up, "0" all down, anything between mixed (a failure). A step with no sample has no value.
    """
    counts = counts if counts is not None else StepCounts()
    runs = counts.runs
    last = runs[-1] if runs else None
    run_start, run_count, run_success = (last.start, last.count, last.success) if last else (0, 0, None)
    if last is not None:
        runs.pop()
    up = down = mixed = 0
    expected = run_start + run_count * interval
    for moment, value in values:
        at = int(moment)
        if value == "1":
            success = True
            up += 1
        elif value == "0":
            success = False
            down += 1
        else:
            success = False
            mixed += 1
        if at == expected and success is run_success:
            run_count += 1
        else:
            if run_count:
                runs.append(Run(run_start, run_count, run_success))
            run_start, run_count, run_success = at, 1, success
        expected = at + interval
    if run_count:
        runs.append(Run(run_start, run_count, run_success))
    counts.up += up
    counts.down += down
    counts.mixed += mixed
    return counts


def split_runs(runs: Sequence[Run], at: int, interval: int) -> tuple[list[Run], list[Run]]:
    """Runs cut at `at` (Unix seconds): results at or before it, and results after it."""
    before, after = [], []
    for run in runs:
        end = run.end(interval)
        if end <= at:
            before.append(run)
        elif run.start > at:
            after.append(run)
        else:
            head = (at - run.start) // interval + 1
            before.append(Run(run.start, head, run.success))
            after.append(Run(run.start + head * interval, run.count - head, run.success))
    return before, after


def expand(runs: Iterable[Run], interval: int) -> list[tuple[int, bool]]:
    """Every result of `runs` as (Unix seconds, success), in time order."""
    return [(run.start + k * interval, run.success) for run in runs for k in range(run.count)]


def fold_runs(memory: Memory, runs: Iterable[Run], *, interval: int, thresholds: Thresholds,
              reason: str) -> tuple[Memory, list[Transition]]:
    """history.observe over every result of `runs` (in time order, each failure with `reason`),
    in one step per run rather than per result: the same final memory and the same transitions.

    Within a run results are one interval apart, never a gap; a gap of more than GAP_INTERVALS
    intervals before a run turns a known state unknown from one interval after the last result.
    A streak reaching its threshold inside a run changes the state at that result.
    """
    state, since, fails, oks, reason_now = memory.state, memory.since, memory.fail_streak, memory.ok_streak, memory.reason
    last_us = as_us(memory.last_at) if memory.last_at is not None else None
    last_at = memory.last_at
    step_us = interval * MICROSECONDS
    transitions: list[Transition] = []
    for run in runs:
        if run.count <= 0:
            continue
        start_us = run.start * MICROSECONDS
        if last_us is not None and start_us - last_us > step_us * GAP_INTERVALS and state != UNKNOWN:
            gap_start = from_us(last_us + step_us)
            transitions.append(Transition(UNKNOWN, gap_start, "no data"))
            state, since, fails, oks, reason_now = UNKNOWN, gap_start, 0, 0, "no data"
        if run.success:
            fails = 0
            if state != UP and oks + run.count >= thresholds.successes:
                at = from_us(start_us + (max(thresholds.successes - oks, 1) - 1) * step_us)
                transitions.append(Transition(UP, at, ""))
                state, since, reason_now = UP, at, ""
            oks += run.count
        else:
            oks = 0
            if state != DOWN and fails + run.count >= thresholds.failures:
                at = from_us(start_us + (max(thresholds.failures - fails, 1) - 1) * step_us)
                transitions.append(Transition(DOWN, at, reason))
                state, since, reason_now = DOWN, at, reason
            fails += run.count
        last_us = start_us + (run.count - 1) * step_us
        last_at = from_us(last_us)
    return Memory(state, since, fails, oks, last_at, reason_now), transitions
