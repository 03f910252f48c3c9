"""Availability (SLA) maths against hand-worked examples: periods, buckets, incidents, error budget, roll-ups."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcops.reports.uptime import (
    DayShare,
    Incident,
    MaintenanceWindow,
    StateSpan,
    period_bounds,
    programme_uptime,
    range_bounds,
    rollup,
)

UTC = ZoneInfo("UTC")
VIENTIANE = ZoneInfo("Asia/Vientiane")  # UTC+7, no daylight saving time
DAY = 86_400
HOUR = 3_600
OCTOBER = 31 * DAY  # 2,678,400 s


def at(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0, *, year: int = 2026):
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)


AFTER_OCTOBER = at(11, 5)  # a `now` after the month: the period is complete
SINCE_SEPTEMBER = at(9, 1)  # history starts well before the period


def up(start: datetime, end: datetime | None = None, reason: str = "") -> StateSpan:
    return StateSpan("up", start, end, reason)


def down(start: datetime, end: datetime | None = None, reason: str = "") -> StateSpan:
    return StateSpan("down", start, end, reason)


def unknown(start: datetime, end: datetime | None = None, reason: str = "") -> StateSpan:
    return StateSpan("unknown", start, end, reason)


def window(id: int, start: datetime, end: datetime, recorded_at: datetime | None = None) -> MaintenanceWindow:
    """A window recorded a week ahead (announced) unless `recorded_at` says otherwise."""
    return MaintenanceWindow(id, start, end, recorded_at or start - timedelta(days=7), change_ref=f"CHG-{id}")


def month(period, spans, windows=(), *, now=AFTER_OCTOBER, target=99.9, tz=UTC):
    start, end = period_bounds(period, tz)
    return programme_uptime(list(spans), list(windows), start=start, end=end, now=now, target_percent=target, tz=tz)


def october(spans, windows=(), **kwargs):
    return month("2026-10", spans, windows, **kwargs)


def with_outage(start: datetime, end: datetime, reason: str = "") -> list[StateSpan]:
    """Up since September except one outage."""
    return [up(SINCE_SEPTEMBER, start), down(start, end, reason), up(end)]


def assert_days_add_up(result) -> None:
    """Each bucket summed over the local days equals its total."""
    assert sum(d.up for d in result.days) == pytest.approx(result.up_seconds, abs=1e-6)
    assert sum(d.down for d in result.days) == pytest.approx(result.downtime_seconds, abs=1e-6)
    assert sum(d.maintenance for d in result.days) == pytest.approx(result.maintenance_seconds, abs=1e-6)
    assert sum(d.unknown for d in result.days) == pytest.approx(result.unknown_seconds, abs=1e-6)


# --- periods -------------------------------------------------------------------------------------


def test_period_bounds_in_utc_and_in_vientiane():
    assert period_bounds("2026-10", UTC) == (at(10, 1), at(11, 1))
    # Vientiane is UTC+7: local midnight of 1 October is 30 September 17:00 UTC.
    assert period_bounds("2026-10", VIENTIANE) == (at(9, 30, 17), at(10, 31, 17))
    # December rolls over into January of the next year.
    assert period_bounds("2026-12", UTC) == (at(12, 1), at(1, 1, year=2027))


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", "October", "", "0000-01"])
def test_period_bounds_rejects_bad_text(text):
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        period_bounds(text, UTC)


def test_range_bounds_include_the_last_day():
    # 1..31 October inclusive = local midnight 1 Oct to local midnight 1 Nov.
    assert range_bounds(date(2026, 10, 1), date(2026, 10, 31), VIENTIANE) == (at(9, 30, 17), at(10, 31, 17))
    # One day: [midnight, next midnight).
    assert range_bounds(date(2026, 10, 5), date(2026, 10, 5), UTC) == (at(10, 5), at(10, 6))


def test_range_bounds_reject_an_end_before_the_start():
    with pytest.raises(ValueError, match="before start"):
        range_bounds(date(2026, 10, 5), date(2026, 10, 4), UTC)


# --- buckets -------------------------------------------------------------------------------------


def test_clean_month_is_fully_available():
    result = october([up(SINCE_SEPTEMBER)])
    assert result.period_seconds == OCTOBER  # 31 x 86,400 = 2,678,400
    assert result.up_seconds == OCTOBER
    assert result.downtime_seconds == result.maintenance_seconds == result.unknown_seconds == 0
    assert result.availability == 1.0
    assert result.coverage == 1.0
    assert result.met is True
    assert result.incidents == () and result.incident_count == 0
    assert result.longest_incident_seconds == 0
    assert result.mttr_seconds is None and result.mtbf_seconds is None
    assert result.error_budget_used_percent == 0.0
    assert result.partial is False
    assert len(result.days) == 31 and all(d.up == DAY for d in result.days)


def test_outage_inside_the_period():
    result = october(with_outage(at(10, 10, 12), at(10, 10, 13, 30), "disk full"))
    assert result.downtime_seconds == 5_400  # 12:00-13:30 = 1.5 h
    assert result.up_seconds == 2_673_000  # 2,678,400 - 5,400
    # 2,673,000 / 2,678,400 = 495/496 (2,678,400 / 5,400 = 496)
    assert result.availability == pytest.approx(495 / 496)  # 0.997984
    assert result.met is False  # 99.798 % < 99.9 %
    # allowed = 0.001 x 2,678,400 = 2,678.4 s; used = 100 x 5,400 / 2,678.4 = 201.6129 %
    assert result.error_budget_used_percent == pytest.approx(201.612903, rel=1e-6)
    assert result.incidents == (Incident(at(10, 10, 12), at(10, 10, 13, 30), 5_400.0, "disk full"),)
    assert result.mttr_seconds == 5_400  # one incident
    assert result.mtbf_seconds == 2_673_000  # up seconds / 1
    tenth = result.days[9]
    # up 86,400 - 5,400 = 81,000
    assert tenth == DayShare(date(2026, 10, 10), up=81_000.0, down=5_400.0, maintenance=0.0, unknown=0.0)
    assert_days_add_up(result)


def test_announced_maintenance_takes_its_overlap_out_of_downtime_and_of_the_denominator():
    # Window 12:00-13:00 announced; down 12:30-14:00: 12:30-13:00 is maintenance, 13:00-14:00 downtime.
    spans = with_outage(at(10, 10, 12, 30), at(10, 10, 14), "upgrade overran")
    result = october(spans, [window(1, at(10, 10, 12), at(10, 10, 13))])
    assert result.maintenance_seconds == 3_600  # 12:00-13:00
    assert result.downtime_seconds == 3_600  # 13:00-14:00
    assert result.up_seconds == 2_671_200  # 2,678,400 - 3,600 - 3,600
    # (T - M - D) / (T - M) = 2,671,200 / 2,674,800 = 742/743 (both / 3,600)
    assert result.availability == pytest.approx(742 / 743)  # 0.998654
    assert result.incidents == (Incident(at(10, 10, 13), at(10, 10, 14), 3_600.0, "upgrade overran"),)
    assert result.late_windows == () and result.late_maintenance_seconds == 0
    assert_days_add_up(result)


def test_announced_window_inside_an_outage_splits_it_into_two_incidents():
    # Down 10:00-16:00, announced window 12:00-13:00: incidents 10-12 (7,200) and 13-16 (10,800).
    result = october(with_outage(at(10, 10, 10), at(10, 10, 16), "power"), [window(1, at(10, 10, 12), at(10, 10, 13))])
    assert [(i.start, i.end, i.seconds, i.reason) for i in result.incidents] == [
        (at(10, 10, 10), at(10, 10, 12), 7_200.0, "power"),
        (at(10, 10, 13), at(10, 10, 16), 10_800.0, "power"),
    ]
    assert result.downtime_seconds == 18_000  # 7,200 + 10,800
    assert result.maintenance_seconds == 3_600
    assert result.longest_incident_seconds == 10_800
    assert result.mttr_seconds == 9_000  # 18,000 / 2
    assert result.mtbf_seconds == 1_328_400  # (2,678,400 - 3,600 - 18,000) / 2 = 2,656,800 / 2


def test_maintenance_recorded_late_counts_as_downtime_and_is_flagged():
    # Window 12:00-14:00 recorded at 12:20, after it started: it excuses nothing.
    late = window(7, at(10, 10, 12), at(10, 10, 14), recorded_at=at(10, 10, 12, 20))
    announced = window(8, at(10, 20, 2), at(10, 20, 3))  # elsewhere, recorded ahead: not flagged
    september = window(9, at(9, 20, 2), at(9, 20, 3), recorded_at=at(9, 21))  # late but outside the period
    result = october(with_outage(at(10, 10, 12), at(10, 10, 13)), [late, announced, september])
    assert late.announced is False and announced.announced is True
    assert result.downtime_seconds == 3_600  # 12:00-13:00, down under the late window
    assert result.late_maintenance_seconds == 3_600  # 13:00-14:00 was up: not late maintenance
    assert result.maintenance_seconds == 3_600  # only the announced window, 02:00-03:00 on the 20th
    assert result.late_windows == (late,)
    # (2,678,400 - 3,600 - 3,600) / (2,678,400 - 3,600) = 742/743
    assert result.availability == pytest.approx(742 / 743)
    assert result.incident_count == 1


def test_window_recorded_exactly_at_its_start_is_announced():
    on_time = window(1, at(10, 10, 12), at(10, 10, 13), recorded_at=at(10, 10, 12))
    result = october(with_outage(at(10, 10, 12), at(10, 10, 13)), [on_time])
    assert on_time.announced is True
    assert result.maintenance_seconds == 3_600 and result.downtime_seconds == 0
    assert result.availability == 1.0  # (2,674,800 - 0) / 2,674,800


def test_outages_across_the_period_boundaries_are_clipped():
    spans = [
        down(at(9, 30, 22), at(10, 1, 2), "left over"),  # 2 h of it in October
        up(at(10, 1, 2), at(10, 31, 23)),
        down(at(10, 31, 23), at(11, 1, 1), "spills over"),  # 1 h of it in October
        up(at(11, 1, 1)),
    ]
    result = october(spans)
    assert result.downtime_seconds == 10_800  # 7,200 + 3,600
    assert result.incidents == (
        Incident(at(10, 1), at(10, 1, 2), 7_200.0, "left over"),
        Incident(at(10, 31, 23), at(11, 1), 3_600.0, "spills over"),
    )
    assert result.days[0].down == 7_200 and result.days[-1].down == 3_600
    assert result.unknown_seconds == 0  # the first span starts before the period
    assert_days_add_up(result)


def test_unknown_time_is_counted_apart_and_leaves_the_denominator():
    spans = [
        # 1 Oct: no span yet, unknown (86,400)
        up(at(10, 2), at(10, 10)),
        # 10 Oct: gap between spans, unknown (86,400)
        up(at(10, 11), at(10, 20)),
        unknown(at(10, 20), at(10, 20, 12), "prober down"),  # explicit unknown (43,200)
        down(at(10, 20, 12), at(10, 20, 18), "db"),  # 21,600
        up(at(10, 20, 18)),
    ]
    result = october(spans)
    assert result.unknown_seconds == 216_000  # 86,400 + 86,400 + 43,200
    assert result.downtime_seconds == 21_600
    assert result.up_seconds == 2_440_800  # 2,678,400 - 216,000 - 21,600
    # (T - U - D) / (T - U) = 2,440,800 / 2,462,400 = 113/114 (2,462,400 / 21,600 = 114)
    assert result.availability == pytest.approx(113 / 114)  # 0.991228
    # (T - U) / T = 2,462,400 / 2,678,400 = 114/124
    assert result.coverage == pytest.approx(114 / 124)  # 0.919355
    # allowed = 0.001 x 2,462,400 = 2,462.4; used = 100 x 21,600 / 2,462.4 = 100,000/114 = 877.193 %
    assert result.error_budget_used_percent == pytest.approx(100_000 / 114)
    assert result.days[0].unknown == DAY and result.days[9].unknown == DAY
    # 20 Oct: unknown 00-12, down 12-18, up 18-24
    expected = DayShare(date(2026, 10, 20), up=21_600.0, down=21_600.0, maintenance=0.0, unknown=43_200.0)
    assert result.days[19] == expected
    assert_days_add_up(result)


def test_no_history_at_all_is_all_unknown():
    result = october([])
    assert result.unknown_seconds == OCTOBER
    assert result.availability is None and result.met is None and result.error_budget_used_percent is None
    assert result.coverage == 0.0


def test_leap_year_february():
    result = month("2028-02", [up(at(1, 1, year=2028))], now=at(3, 10, year=2028))
    assert result.period_seconds == 2_505_600  # 29 x 86,400
    assert len(result.days) == 29 and result.days[-1].day == date(2028, 2, 29)
    common = month("2026-02", [up(at(1, 1))], now=at(3, 10))
    assert common.period_seconds == 2_419_200  # 28 x 86,400


def test_month_cut_in_vientiane_differs_from_utc():
    # 31 Oct 20:00-22:00 UTC is 1 Nov 03:00-05:00 in Vientiane (UTC+7).
    spans = with_outage(at(10, 31, 20), at(10, 31, 22), "fibre cut")
    now = at(12, 5)
    utc_october = month("2026-10", spans, now=now, tz=UTC)
    vte_october = month("2026-10", spans, now=now, tz=VIENTIANE)
    vte_november = month("2026-11", spans, now=now, tz=VIENTIANE)
    utc_november = month("2026-11", spans, now=now, tz=UTC)

    assert utc_october.downtime_seconds == 7_200 and utc_october.days[-1].day == date(2026, 10, 31)
    assert utc_october.days[-1].down == 7_200
    assert vte_october.period_seconds == OCTOBER  # 30 Sep 17:00Z - 31 Oct 17:00Z, still 31 days
    assert vte_october.downtime_seconds == 0 and vte_october.availability == 1.0
    assert vte_november.period_seconds == 2_592_000  # 30 x 86,400
    assert vte_november.downtime_seconds == 7_200
    assert vte_november.days[0] == DayShare(date(2026, 11, 1), up=79_200.0, down=7_200.0, maintenance=0.0, unknown=0.0)
    assert vte_november.incidents == (Incident(at(10, 31, 20), at(10, 31, 22), 7_200.0, "fibre cut"),)
    assert utc_november.downtime_seconds == 0


def test_period_not_over_yet_is_partial_and_measured_up_to_now():
    now = at(10, 15, 12)
    spans = [up(SINCE_SEPTEMBER, at(10, 15, 10)), down(at(10, 15, 10), None, "still down")]  # open span
    result = october(spans, now=now)
    assert result.partial is True
    assert result.period_seconds == 1_252_800  # 14 x 86,400 + 12 x 3,600 = 1,209,600 + 43,200
    assert result.downtime_seconds == 7_200  # 10:00 until now (12:00)
    assert result.up_seconds == 1_245_600  # 1,252,800 - 7,200
    assert result.incidents == (Incident(at(10, 15, 10), now, 7_200.0, "still down"),)
    # Days cover the whole month; the 15th is half measured, the rest of the month is in the future.
    assert len(result.days) == 31
    assert result.days[14] == DayShare(date(2026, 10, 15), up=36_000.0, down=7_200.0, maintenance=0.0, unknown=0.0)
    assert result.days[15] == DayShare(date(2026, 10, 16), up=0.0, down=0.0, maintenance=0.0, unknown=0.0)
    assert all(d.up + d.down + d.maintenance + d.unknown == 0 for d in result.days[15:])
    assert_days_add_up(result)


def test_now_before_the_period_is_all_zero():
    result = october([up(SINCE_SEPTEMBER)], now=at(9, 20))
    assert result.partial is True
    assert result.period_seconds == result.up_seconds == result.unknown_seconds == 0
    assert result.availability is None and result.coverage is None and result.met is None
    assert result.error_budget_used_percent is None and result.incidents == ()
    assert len(result.days) == 31 and all(d.up == d.unknown == 0 for d in result.days)


def test_target_of_100_percent_has_no_error_budget():
    clean = october([up(SINCE_SEPTEMBER)], target=100)
    assert clean.met is True and clean.error_budget_used_percent is None  # allowed = 0 x T = 0
    one_minute = october(with_outage(at(10, 3, 8), at(10, 3, 8, 1)), target=100)
    assert one_minute.availability == pytest.approx((OCTOBER - 60) / OCTOBER)
    assert one_minute.met is False and one_minute.error_budget_used_percent is None


def test_availability_exactly_at_target_is_met():
    # 0.1 % of 2,678,400 s = 2,678.4 s = 44 min 38.4 s of downtime: availability exactly 99.9 %.
    result = october(with_outage(at(10, 10, 12), at(10, 10, 12, 44, 38, 400_000)))
    assert result.downtime_seconds == pytest.approx(2_678.4)
    assert result.availability == pytest.approx(0.999)
    assert result.met is True
    assert result.error_budget_used_percent == pytest.approx(100.0)  # 2,678.4 / 2,678.4
    # A target carrying float noise (99.9 + 1e-12, as a stored float may come back) is still met.
    noisy = october(with_outage(at(10, 10, 12), at(10, 10, 12, 44, 38, 400_000)), target=99.9 + 1e-12)
    assert noisy.met is True
    # One second more: 1 - 2,679.4 / 2,678,400 = 0.99899963 -> 99.899963 % < 99.9 %: missed.
    over = october(with_outage(at(10, 10, 12), at(10, 10, 12, 44, 39, 400_000)))
    assert over.met is False


def test_touching_down_spans_merge_into_one_incident():
    spans = [
        up(SINCE_SEPTEMBER, at(10, 10, 10)),
        down(at(10, 10, 10), at(10, 10, 11), "switch"),
        down(at(10, 10, 11), at(10, 10, 11, 30), "routing"),  # starts where the first ends
        up(at(10, 10, 11, 30)),
    ]
    result = october(spans)
    assert result.incidents == (Incident(at(10, 10, 10), at(10, 10, 11, 30), 5_400.0, "switch"),)  # 3,600 + 1,800
    assert result.incident_count == 1 and result.mttr_seconds == 5_400


def test_mttr_and_mtbf():
    spans = [
        up(SINCE_SEPTEMBER, at(10, 3, 8)),
        down(at(10, 3, 8), at(10, 3, 8, 10)),  # 600
        up(at(10, 3, 8, 10), at(10, 12, 14)),
        down(at(10, 12, 14), at(10, 12, 14, 20)),  # 1,200
        up(at(10, 12, 14, 20), at(10, 25, 22)),
        down(at(10, 25, 22), at(10, 25, 22, 50)),  # 3,000
        up(at(10, 25, 22, 50)),
    ]
    result = october(spans)
    assert result.incident_count == 3
    assert result.downtime_seconds == 4_800  # 600 + 1,200 + 3,000
    assert result.longest_incident_seconds == 3_000
    assert result.mttr_seconds == 1_600  # 4,800 / 3
    assert result.mtbf_seconds == 891_200  # (2,678,400 - 4,800) / 3 = 2,673,600 / 3


def test_day_shares_split_at_local_midnight():
    # Announced window 10 Oct 23:00 - 11 Oct 01:00 UTC, then down 01:00-02:00 UTC on the 11th.
    spans = with_outage(at(10, 11, 1), at(10, 11, 2))
    windows = [window(1, at(10, 10, 23), at(10, 11, 1))]
    utc = october(spans, windows)
    assert utc.days[9] == DayShare(date(2026, 10, 10), up=82_800.0, down=0.0, maintenance=3_600.0, unknown=0.0)
    assert utc.days[10] == DayShare(date(2026, 10, 11), up=79_200.0, down=3_600.0, maintenance=3_600.0, unknown=0.0)
    assert_days_add_up(utc)
    # In Vientiane all of it is on 11 Oct local (06:00-08:00 maintenance, 08:00-09:00 down).
    vte = october(spans, windows, tz=VIENTIANE)
    assert vte.days[10] == DayShare(date(2026, 10, 11), up=75_600.0, down=3_600.0, maintenance=7_200.0, unknown=0.0)
    assert vte.days[9].maintenance == 0  # 86,400 - 7,200 - 3,600 = 75,600 above
    assert_days_add_up(vte)


def test_overlapping_spans_the_worse_state_wins():
    spans = [
        up(SINCE_SEPTEMBER),  # open, overlaps everything below
        down(at(10, 10), at(10, 10, 1)),
        unknown(at(10, 11), at(10, 11, 2)),
        down(at(10, 11, 1), at(10, 11, 3)),  # overlaps the unknown span 01:00-02:00
    ]
    result = october(spans)
    assert result.downtime_seconds == 10_800  # 10 Oct 00-01 (3,600) + 11 Oct 01-03 (7,200)
    assert result.unknown_seconds == 3_600  # 11 Oct 00-01 only; 01-02 is down
    assert [(i.start, i.end) for i in result.incidents] == [(at(10, 10), at(10, 10, 1)), (at(10, 11, 1), at(10, 11, 3))]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="invalid state"):
        october([StateSpan("degraded", at(10, 1), None)])
    with pytest.raises(ValueError, match="not after start"):
        programme_uptime([], [], start=at(10, 2), end=at(10, 1), now=AFTER_OCTOBER, target_percent=99.9, tz=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        naive = datetime(2026, 10, 1)
        programme_uptime([], [], start=naive, end=at(11, 1), now=AFTER_OCTOBER, target_percent=99.9, tz=UTC)


# --- roll-ups ------------------------------------------------------------------------------------


def _two_programmes():
    a = october(with_outage(at(10, 10, 12), at(10, 10, 13, 30), "disk full"))  # D 5,400
    b = october(
        [up(at(10, 2), at(10, 20, 10)), down(at(10, 20, 10), at(10, 20, 10, 30)), up(at(10, 20, 10, 30))],
        [window(1, at(10, 5, 2), at(10, 5, 4))],
    )  # U 86,400 (1 Oct), M 7,200, D 1,800
    return a, b


def test_rollup_of_two_programmes_is_time_weighted():
    a, b = _two_programmes()
    assert b.up_seconds == 2_583_000  # 2,678,400 - 7,200 - 1,800 - 86,400
    assert a.met is False  # 495/496 = 99.798 %
    assert b.met is True  # 2,583,000 / 2,584,800 = 99.930 %
    total = rollup([a, b])
    assert total.programmes == 2 and total.programmes_met == 1 and total.programmes_missed == 1
    assert total.period_seconds == 5_356_800  # 2 x 2,678,400
    assert total.up_seconds == 5_256_000  # 2,673,000 + 2,583,000
    assert total.downtime_seconds == 7_200  # 5,400 + 1,800
    assert total.maintenance_seconds == 7_200 and total.unknown_seconds == 86_400
    # 5,256,000 / (5,256,000 + 7,200) = 5,256,000 / 5,263,200 = 730/731 (5,263,200 / 7,200 = 731)
    assert total.availability == pytest.approx(730 / 731)  # 0.998632
    # (5,356,800 - 86,400) / 5,356,800 = 61/62 (5,356,800 / 86,400 = 62)
    assert total.coverage == pytest.approx(61 / 62)
    assert total.incident_count == 2 and total.longest_incident_seconds == 5_400
    assert total.mttr_seconds == 3_600  # 7,200 / 2
    assert total.mtbf_seconds == 2_628_000  # 5,256,000 / 2
    # allowed = 0.001 x 2,678,400 + 0.001 x 2,584,800 = 2,678.4 + 2,584.8 = 5,263.2
    # used = 100 x 7,200 / 5,263.2 = 100,000/731 = 136.799 %
    assert total.error_budget_used_percent == pytest.approx(100_000 / 731)
    assert total.partial is False
    assert len(total.days) == 31
    assert total.days[0] == DayShare(date(2026, 10, 1), up=86_400.0, down=0.0, maintenance=0.0, unknown=86_400.0)
    assert total.days[4] == DayShare(date(2026, 10, 5), up=165_600.0, down=0.0, maintenance=7_200.0, unknown=0.0)
    assert total.days[9].down == 5_400 and total.days[19].down == 1_800
    assert_days_add_up(total)


def test_rollup_error_budget_skips_programmes_without_one():
    a, _b = _two_programmes()
    perfect_target = october(with_outage(at(10, 3, 8), at(10, 3, 8, 1)), target=100)  # no budget, 60 s down
    total = rollup([a, perfect_target])
    assert total.error_budget_used_percent == pytest.approx(a.error_budget_used_percent)  # 201.6129 %, a's alone
    assert total.downtime_seconds == 5_460  # still in the totals: 5,400 + 60
    assert total.programmes_missed == 2


def test_rollup_of_nothing():
    total = rollup([])
    assert total.programmes == 0 and total.availability is None and total.coverage is None
    assert total.mttr_seconds is None and total.error_budget_used_percent is None and total.days == ()


# --- plain data ----------------------------------------------------------------------------------


def test_as_dict_is_json_ready_and_rounded():
    late = window(7, at(10, 10, 12), at(10, 10, 14), recorded_at=at(10, 10, 12, 20))
    result = october(with_outage(at(10, 10, 12), at(10, 10, 12, 0, 1, 234_567), "blip"), [late])
    data = json.loads(json.dumps(result.as_dict()))
    assert data["downtime_seconds"] == 1.235  # 1.234567 s to 3 decimals
    assert data["availability"] == 1.0  # 1 - 1.234567 / 2,678,400 = 0.99999954 -> 6 decimals
    assert data["incidents"] == [
        {"start": "2026-10-10T12:00:00Z", "end": "2026-10-10T12:00:01.234567Z", "seconds": 1.235, "reason": "blip"}
    ]
    assert data["late_windows"][0]["recorded_at"] == "2026-10-10T12:20:00Z"
    assert data["late_windows"][0]["announced"] is False
    assert data["days"][0] == {"day": "2026-10-01", "up": 86_400.0, "down": 0.0, "maintenance": 0.0, "unknown": 0.0}
    assert data["mtbf_seconds"] == 2_678_398.765  # 2,678,400 - 1.234567 = 2,678,398.765433
    assert data["partial"] is False and data["met"] is True
    a, b = _two_programmes()
    roll = json.loads(json.dumps(rollup([a, b]).as_dict()))
    assert roll["availability"] == 0.998632  # 730/731 = 0.99863201...
    assert roll["error_budget_used_percent"] == 136.7989  # 100,000/731 = 136.79890...


# --- property ------------------------------------------------------------------------------------

STEP = timedelta(minutes=10)
ORIGIN = at(10, 1)  # the property's period is [ORIGIN, ORIGIN + 3 days) = 432 steps
PERIOD_STEPS = 432

spans_strategy = st.lists(
    st.tuples(
        st.sampled_from(["up", "down", "unknown"]),
        st.integers(-50, PERIOD_STEPS + 50),
        st.one_of(st.none(), st.integers(1, 200)),
    ),
    max_size=8,
)
windows_strategy = st.lists(
    st.tuples(st.integers(-50, PERIOD_STEPS + 50), st.integers(1, 100), st.integers(-60, 60)), max_size=3
)


def _moment(steps: int) -> datetime:
    return ORIGIN + steps * STEP


@settings(max_examples=200, deadline=None)
@given(
    spans=spans_strategy,
    windows=windows_strategy,
    now_steps=st.integers(-20, PERIOD_STEPS + 20),
    target=st.sampled_from([99.0, 99.9, 100.0]),
    tz=st.sampled_from([UTC, VIENTIANE]),
)
def test_buckets_always_add_up_and_match_a_step_by_step_count(spans, windows, now_steps, target, tz):
    state_spans = [
        StateSpan(state, _moment(s), None if length is None else _moment(s + length)) for state, s, length in spans
    ]
    maintenance = [
        MaintenanceWindow(k, _moment(s), _moment(s + length), _moment(s + recorded))
        for k, (s, length, recorded) in enumerate(windows)
    ]
    now = _moment(now_steps)
    start, end = ORIGIN, _moment(PERIOD_STEPS)
    result = programme_uptime(state_spans, maintenance, start=start, end=end, now=now, target_percent=target, tz=tz)

    total = result.up_seconds + result.downtime_seconds + result.maintenance_seconds + result.unknown_seconds
    assert total == pytest.approx(result.period_seconds, abs=1e-6)
    if result.availability is not None:
        assert 0 <= result.availability <= 1
    assert_days_add_up(result)
    assert sum(i.seconds for i in result.incidents) == pytest.approx(result.downtime_seconds, abs=1e-6)

    # A slow oracle: every input lies on the 10-minute grid, so classify each step on its own.
    def bucket(t: datetime) -> tuple[str, bool]:
        if any(w.announced and w.start <= t < w.end for w in maintenance):
            return "maintenance", False
        states = {s.state for s in state_spans if s.start <= t < (now if s.end is None else s.end)}
        if "down" in states:
            return "down", any(not w.announced and w.start <= t < w.end for w in maintenance)
        return ("unknown" if "unknown" in states or "up" not in states else "up"), False

    counts = {"up": 0, "down": 0, "maintenance": 0, "unknown": 0}
    by_day = {d.day: {"up": 0, "down": 0, "maintenance": 0, "unknown": 0} for d in result.days}
    late = 0
    expected_incidents = []
    measured_steps = max(0, min(PERIOD_STEPS, now_steps))
    for step in range(measured_steps):
        kind, is_late = bucket(_moment(step))
        counts[kind] += 1
        by_day[_moment(step).astimezone(tz).date()][kind] += 1
        late += is_late
        if kind == "down":
            if expected_incidents and expected_incidents[-1][1] == step:
                expected_incidents[-1][1] = step + 1
            else:
                expected_incidents.append([step, step + 1])
    seconds = STEP.total_seconds()
    assert result.period_seconds == measured_steps * seconds
    assert result.up_seconds == pytest.approx(counts["up"] * seconds)
    assert result.downtime_seconds == pytest.approx(counts["down"] * seconds)
    assert result.maintenance_seconds == pytest.approx(counts["maintenance"] * seconds)
    assert result.unknown_seconds == pytest.approx(counts["unknown"] * seconds)
    assert result.late_maintenance_seconds == pytest.approx(late * seconds)
    assert [(i.start, i.end) for i in result.incidents] == [(_moment(a), _moment(b)) for a, b in expected_incidents]
    # Each local day's buckets, step by step (the days' midnights are on the grid in both zones).
    assert [(d.up, d.down, d.maintenance, d.unknown) for d in result.days] == [
        tuple(by_day[d.day][kind] * seconds for kind in ("up", "down", "maintenance", "unknown")) for d in result.days]


# --- the uptime document's shortcut through attribution ---------------------------------------------


def test_all_own_is_what_split_says_of_an_incident_with_nothing_it_needs_down():
    """A needs B. A's stretches: [0, 30) and [100, 130) with B up, [200, 260) half while B is down,
    [300, 320) inside a longer stretch of its own (its outage named by that stretch's start)."""
    from dcops.reports import attribution

    def moment(minutes: int) -> datetime:
        return at(10, 1) + timedelta(minutes=minutes)

    down = {"a": [(moment(0), moment(30)), (moment(100), moment(130)), (moment(200), moment(260)),
                  (moment(290), moment(340))], "b": [(moment(230), moment(280))]}
    causes = attribution.cause_timelines(down, {"a": ("b",)}, {})["a"]
    for lo_min, hi_min, own in ((0, 30, True), (100, 130, True), (200, 260, False), (300, 320, True)):
        lo, hi = attribution.us(moment(lo_min)), attribution.us(moment(hi_min))
        overlapping = [c for c in causes if c.start < hi and c.end > lo]
        mine = attribution.all_own("a", lo, hi, overlapping)
        result = attribution.split("a", moment(lo_min), moment(hi_min), overlapping)
        if own:
            assert result.dependency_seconds == 0 and result.own_seconds == (hi - lo) / 1_000_000
            assert result.roots == frozenset({mine})
        else:
            assert mine is None and result.dependency_seconds == 30 * 60
    assert attribution.all_own("a", attribution.us(moment(300)), attribution.us(moment(320)),
                               [c for c in causes if c.start < attribution.us(moment(320))
                                and c.end > attribution.us(moment(300))]) == ("a", attribution.us(moment(290)))
