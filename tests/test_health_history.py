"""Flap damping and availability maths, against hand-worked examples."""

from datetime import datetime, timedelta, timezone

import pytest

from dcops.health.history import (
    DOWN, UNKNOWN, UP, Memory, Thresholds, Transition, availability, observe, worst_state,
)

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


def feed(results, thresholds=Thresholds(3, 2), memory=Memory()):
    """results: (minute, success, reason); returns the final memory and every transition."""
    transitions = []
    for minute, success, reason in results:
        memory, changes = observe(memory, at=T0 + minute * MINUTE, success=success, reason=reason,
                                  interval=MINUTE, thresholds=thresholds)
        transitions += changes
    return memory, transitions


def test_up_after_two_successes_down_after_three_failures():
    memory, transitions = feed([(0, True, ""), (1, True, ""), (2, False, "status 503"), (3, False, "status 503"),
                                (4, False, "timeout"), (5, True, ""), (6, True, "")])
    assert transitions == [Transition(UP, T0 + MINUTE), Transition(DOWN, T0 + 4 * MINUTE, "timeout"),
                           Transition(UP, T0 + 6 * MINUTE)]
    assert memory.state == UP and memory.ok_streak == 2


def test_flapping_never_changes_state():
    _memory, transitions = feed([(0, True, ""), (1, True, "")] + [(m, m % 2 == 0, "x") for m in range(2, 20)])
    assert transitions == [Transition(UP, T0 + MINUTE)]


def test_a_gap_in_probing_is_unknown_from_one_interval_after_the_last_result():
    _memory, transitions = feed([(0, True, ""), (1, True, ""), (10, True, ""), (11, True, "")])
    # last result at minute 1; the gap of 9 minutes > 3 intervals: unknown from minute 2
    assert transitions == [Transition(UP, T0 + MINUTE), Transition(UNKNOWN, T0 + 2 * MINUTE, "no data"),
                           Transition(UP, T0 + 11 * MINUTE)]


def test_worst_state():
    assert worst_state([UP, UP]) == UP
    assert worst_state([UP, DOWN, UNKNOWN]) == DOWN
    assert worst_state([UP, UNKNOWN]) == UNKNOWN
    assert worst_state([]) == UNKNOWN


def test_availability_counts_unknown_apart():
    # window 10:00-11:00; up 10:00-10:30, down 10:30-10:36, nothing 10:36-10:40, up 10:40- (open)
    start = T0.replace(hour=10)
    intervals = [(UP, start - timedelta(hours=1), start + 30 * MINUTE),
                 (DOWN, start + 30 * MINUTE, start + 36 * MINUTE),
                 (UP, start + 40 * MINUTE, None)]
    result = availability(intervals, start, start + 60 * MINUTE, now=start + 2 * 60 * MINUTE)
    assert (result.up_seconds, result.down_seconds, result.unknown_seconds) == (50 * 60, 6 * 60, 4 * 60)
    assert result.ratio == pytest.approx(50 / 56)
    assert result.coverage == pytest.approx(56 / 60)


def test_availability_stops_at_now_and_of_an_empty_window():
    start = T0
    result = availability([(UP, start, None)], start, start + 60 * MINUTE, now=start + 15 * MINUTE)
    assert (result.up_seconds, result.unknown_seconds, result.ratio) == (15 * 60, 0, 1.0)
    empty = availability([], start, start + MINUTE, now=start + MINUTE)
    assert empty.ratio is None and empty.unknown_seconds == 60
