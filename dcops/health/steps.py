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

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Iterable, Sequence

from dcops.db import epoch_us
from dcops.health.history import DOWN, GAP_INTERVALS, UNKNOWN, UP, Memory, Thresholds, Transition

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECONDS = 1_000_000
as_us = epoch_us  # an aware datetime as integer Unix microseconds (exact)


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


def read_steps(values: Sequence[Sequence], interval: int, counts: StepCounts | None = None) -> StepCounts:
    """Fold query_range values [[step time, "share of samples up"], ...], in time order, into runs
    (added to `counts`, continuing its last run when the steps follow on).

    The value is avg_over_time of probe_success over the step's window (the sum of its samples
    over their count): "1" all up, "0" all down, anything between mixed (a failure). A step with
    no sample has no value. A month of 1-minute steps is 43,200 values a check: when every value is
    "0" or "1" (the rule), the runs are found on the joined text and the gaps by bisection, not one
    value at a time.
    """
    counts = counts if counts is not None else StepCounts()
    if not values:
        return counts
    times = [int(t) for t, _v in values] if not isinstance(values[0][0], int) else list(map(itemgetter(0), values))
    marks = list(map(itemgetter(1), values))
    text = "".join(marks)
    if len(text) != len(marks) or text.strip("01"):
        return _read_steps_one_by_one(times, marks, interval, counts)
    runs: list[Run] = []
    for lo, hi in _contiguous(times, interval):
        for match in _RUN.finditer(text, lo, hi + 1):
            runs.append(Run(times[match.start()], match.end() - match.start(), text[match.start()] == "1"))
    counts.up += text.count("1")
    counts.down += text.count("0")
    _append_runs(counts.runs, runs, interval)
    return counts


_RUN = re.compile(r"1+|0+")


def _contiguous(times: list[int], interval: int) -> list[tuple[int, int]]:
    """The index ranges (first, last) of `times` (increasing multiples of `interval`) without a
    missing step: times[j] - times[i] is (j - i) intervals exactly when none is missing between."""
    ranges, pending = [], [(0, len(times) - 1)]
    while pending:
        lo, hi = pending.pop()
        if times[hi] - times[lo] == (hi - lo) * interval:
            ranges.append((lo, hi))
        else:
            mid = (lo + hi) // 2
            pending += [(mid + 1, hi), (lo, mid)]
    ranges.sort()
    merged: list[list[int]] = []
    for lo, hi in ranges:
        if merged and times[lo] - times[merged[-1][1]] == interval:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _append_runs(runs: list[Run], new: list[Run], interval: int) -> None:
    """Add `new` runs after `runs`, the first joining the last when it follows on with the same verdict."""
    if runs and new and runs[-1].success is new[0].success and runs[-1].end(interval) + interval == new[0].start:
        runs[-1] = Run(runs[-1].start, runs[-1].count + new[0].count, runs[-1].success)
        new = new[1:]
    runs.extend(new)


def _read_steps_one_by_one(times: list[int], marks: list[str], interval: int, counts: StepCounts) -> StepCounts:
    """read_steps one value at a time: for values that are not all "0" or "1" (mixed steps)."""
    runs: list[Run] = []
    run_start, run_count, run_success = 0, 0, None
    expected = None
    for at, value in zip(times, marks):
        if value == "1":
            success = True
            counts.up += 1
        elif value == "0":
            success = False
            counts.down += 1
        else:
            success = False
            counts.mixed += 1
        if at == expected and success is run_success:
            run_count += 1
        else:
            if run_count:
                runs.append(Run(run_start, run_count, run_success))
            run_start, run_count, run_success = at, 1, success
        expected = at + interval
    if run_count:
        runs.append(Run(run_start, run_count, run_success))
    _append_runs(counts.runs, runs, interval)
    return counts


def merge_series(series: Sequence[Sequence[Sequence]]) -> list[list]:
    """Several series' values of one check (vantage points, or jobs scraping the same target) as one:
    per step, "1" when all that have it say "1", "0" when all say "0", else mixed ("0.5")."""
    steps: dict[int, set[str]] = {}
    for values in series:
        for t, v in values:
            steps.setdefault(int(t), set()).add(v)
    merged = []
    for t in sorted(steps):
        seen = steps[t]
        merged.append([t, next(iter(seen)) if len(seen) == 1 and seen <= {"0", "1"} else "0.5"])
    return merged


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
