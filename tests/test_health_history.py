"""Flap damping and availability maths, against hand-worked examples."""

from datetime import datetime, timedelta, timezone

import pytest

from dcops.health.history import (
    DOWN, UNKNOWN, UP, Memory, Thresholds, Transition, availability, clip, fold_results, observe, settle_open,
    stale_from, uncovered, worst_state, worst_timeline,
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


# --- the read-time rule ---------------------------------------------------------------------------


def m(minute: float) -> datetime:
    return T0 + minute * MINUTE


def test_a_check_is_stale_one_interval_after_its_last_result_once_three_intervals_passed():
    assert stale_from(UP, m(0), MINUTE, m(3)) is None  # exactly 3 intervals: still within the grace
    assert stale_from(UP, m(0), MINUTE, m(3.01)) == m(1)
    assert stale_from(UNKNOWN, m(0), MINUTE, m(60)) is None  # already unknown
    assert stale_from(DOWN, None, MINUTE, m(60)) is None  # never probed
    assert stale_from(UP, 0, 60, 181) == 60  # integers (the collector's microseconds) alike


def test_settling_an_open_interval_follows_the_worst_of_the_checks():
    # Up since minute 0; check a is stale from minute 10, check b from minute 20.
    assert settle_open(UP, m(0), [(UP, m(10)), (UP, m(20))], m(30)) == [(UP, m(0), m(10), -1),
                                                                        (UNKNOWN, m(10), m(30), 0)]
    # Down because of b; a going stale changes nothing while b is fresh and down.
    assert settle_open(DOWN, m(0), [(UP, m(10)), (DOWN, None)], m(30)) == [(DOWN, m(0), m(30), -1)]
    # Both stale: down until b's moment, then unknown.
    assert settle_open(DOWN, m(0), [(UP, m(10)), (DOWN, m(20))], m(30)) == [(DOWN, m(0), m(20), -1),
                                                                            (UNKNOWN, m(20), m(30), 1)]
    # A stale moment before the interval began counts from its start; nothing stale: as stored.
    assert settle_open(UP, m(5), [(UP, m(1))], m(30)) == [(UNKNOWN, m(5), m(30), 0)]
    assert settle_open(UP, m(5), [(UP, None)], m(30)) == [(UP, m(5), m(30), -1)]
    assert settle_open(UP, m(5), [], m(5)) == []


# --- backfill ------------------------------------------------------------------------------------


def test_fold_results_from_no_state_ends_one_interval_after_the_last():
    results = [(m(k), not 3 <= k <= 5, "" if not 3 <= k <= 5 else "refused") for k in range(10)]
    # up at 1 (2nd success), down at 5 (3rd failure), up at 7; the last result 9, so it ends at 10.
    assert fold_results(results, interval=MINUTE, thresholds=Thresholds(3, 2)) == [
        (UP, m(1), m(5), ""), (DOWN, m(5), m(7), "refused"), (UP, m(7), m(10), "")]
    # A gap of more than 3 intervals turns unknown one interval after the result before it.
    gapped = [(m(0), True, ""), (m(1), True, ""), (m(10), True, ""), (m(11), True, "")]
    assert fold_results(gapped, interval=MINUTE, thresholds=Thresholds(3, 2)) == [
        (UP, m(1), m(2), ""), (UNKNOWN, m(2), m(11), "no data"), (UP, m(11), m(12), "")]
    assert fold_results([(m(0), True, "")], interval=MINUTE, thresholds=Thresholds(3, 2)) == []


def test_uncovered_and_clip_keep_measured_time_untouched():
    known = [(m(10), m(20)), (m(30), None)]
    assert uncovered(known, m(0), m(40)) == [(m(0), m(10)), (m(20), m(30))]
    assert uncovered([], m(0), m(5)) == [(m(0), m(5))]
    assert uncovered([(m(0), m(5))], m(1), m(4)) == []
    pieces = [(DOWN, m(5), m(15), "refused"), (UNKNOWN, m(15), m(25), "no data"), (UP, m(25), m(35), "")]
    assert clip(pieces, [(m(0), m(10)), (m(20), m(30))]) == [(DOWN, m(5), m(10), "refused"), (UP, m(25), m(30), "")]


def test_worst_timeline_of_two_checks():
    web = [(UP, m(0), m(10), ""), (DOWN, m(10), m(20), "web: 503"), (UP, m(20), None, "")]
    db = [(UP, m(5), m(15), ""), (DOWN, m(15), m(25), "db: refused")]
    # Before 5 the db check has no data: unknown. 10-20 web down; 20-25 db down; after 25 db unknown.
    assert worst_timeline([web, db], m(0), m(30)) == [
        (UNKNOWN, m(0), m(5), ""), (UP, m(5), m(10), ""), (DOWN, m(10), m(20), "web: 503"),
        (DOWN, m(20), m(25), "db: refused"), (UNKNOWN, m(25), m(30), "")]
