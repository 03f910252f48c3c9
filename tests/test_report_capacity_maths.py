"""Capacity-report maths against hand-worked examples: usable capacity, binding resource, forecast, status, cost."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from dcops.reports.capacity import (
    AMBER_PERCENT,
    ClusterSummary,
    Forecast,
    ResourceInput,
    SnapshotPoint,
    binding_resource,
    cluster_summary,
    forecast,
    monthly_cost,
    resource_figures,
    status,
    top_consumers,
)

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
VIENTIANE = timezone(timedelta(hours=7))


def vcpu(**changes) -> ResourceInput:
    """gen-a's vcpu: capacity (130 - 5) * 4.0 = 500, largest host 25 vcpu."""
    fields = dict(
        cluster="gen-a",
        site="dc1",
        resource="vcpu",
        total=130,
        reserved=5,
        allocation_ratio=4.0,
        largest_host=25,
        allocated=245,
        pipeline_approved=20,
        pipeline_submitted=35,
    )
    fields.update(changes)
    return ResourceInput(**fields)


def used(resource: str, allocated: int, usable: int, cluster: str = "gen-a"):
    """Figures whose usable capacity is exactly `usable` (ratio 1, no reserve, no buffer)."""
    return resource_figures(
        ResourceInput(cluster, "dc1", resource, usable, 0, 1.0, None, allocated), buffer_percent=0
    )


def daily(values, start: datetime = START, step: timedelta = timedelta(days=1)) -> list[SnapshotPoint]:
    return [SnapshotPoint(start + i * step, v) for i, v in enumerate(values)]


# resource_figures ---------------------------------------------------------------------------------


def test_figures_with_largest_host_and_buffer():
    f = resource_figures(vcpu(), buffer_percent=10)
    assert f.capacity == 500.0  # (130 - 5) * 4.0
    assert f.n_plus_one_known is True
    assert f.n_plus_one_reserve == 100.0  # 25 * 4.0
    assert f.buffer == 50.0  # 500 * 10 / 100
    assert f.usable == 350.0  # 500 - 100 - 50
    assert f.free == 105.0  # 350 - 245
    assert f.used_percent == pytest.approx(70.0)  # 100 * 245 / 350
    # approved requests are already allocated: 245 + 35 submitted, not + 20 approved
    assert f.after_pipeline_percent == pytest.approx(80.0)  # 100 * 280 / 350
    assert (f.cluster, f.site, f.resource, f.allocated, f.pipeline_approved) == ("gen-a", "dc1", "vcpu", 245, 20)


def test_figures_without_largest_host():
    f = resource_figures(vcpu(largest_host=None), buffer_percent=10)
    assert f.n_plus_one_known is False
    assert f.n_plus_one_reserve == 0.0
    assert f.usable == 450.0  # 500 - 0 - 50
    assert f.free == 205.0  # 450 - 245
    assert f.used_percent == pytest.approx(490 / 9)  # 100 * 245 / 450 = 54.444...


def test_figures_without_buffer_and_fractional_ratio():
    # ram: (1024 - 64) * 1.5 = 1440; largest host 256 GiB -> 384; no buffer -> 1056 usable
    f = resource_figures(
        ResourceInput("gen-a", "dc1", "ram_gib", 1024, 64, 1.5, 256, 528), buffer_percent=0
    )
    assert f.capacity == 1440.0
    assert f.n_plus_one_reserve == 384.0  # 256 * 1.5
    assert f.buffer == 0.0
    assert f.usable == 1056.0  # 1440 - 384
    assert f.used_percent == pytest.approx(50.0)  # 100 * 528 / 1056


def test_usable_is_clamped_at_zero():
    # capacity 10, N+1 8, buffer 50 % = 5: 10 - 8 - 5 = -3 -> 0
    f = resource_figures(
        ResourceInput("edge", "dc2", "vcpu", 10, 0, 1.0, 8, 4, pipeline_submitted=2), buffer_percent=50
    )
    assert f.usable == 0.0
    assert f.free == -4.0  # 0 - 4
    assert f.used_percent is None
    assert f.after_pipeline_percent is None


def test_over_allocated_is_negative_free_over_100_percent_and_red():
    f = resource_figures(vcpu(allocated=420, pipeline_submitted=0), buffer_percent=10)
    assert f.usable == 350.0
    assert f.free == -70.0  # 350 - 420
    assert f.used_percent == pytest.approx(120.0)  # 100 * 420 / 350
    assert status(None, f.used_percent) == "red"


def test_figures_as_dict_is_json_ready_and_rounded():
    d = resource_figures(vcpu(largest_host=None), buffer_percent=10).as_dict()
    assert d["used_percent"] == 54.444  # 490 / 9 = 54.4444... rounded to 3 decimals
    assert d["usable"] == 450.0
    assert d["largest_host"] is None
    assert d["n_plus_one_known"] is False
    json.dumps(d)


# binding_resource ---------------------------------------------------------------------------------


def test_binding_resource_is_the_fullest():
    figures = [used("vcpu", 70, 100), used("ram_gib", 160, 200), used("storage_gib", 50, 100)]
    assert binding_resource(figures) == "ram_gib"  # 80 % beats 70 % and 50 %


def test_binding_resource_ties_follow_resource_order_then_name():
    # 50/100 and 100/200 are both exactly 50.0 %: vcpu comes first whatever the list order
    assert binding_resource([used("ram_gib", 100, 200), used("vcpu", 50, 100)]) == "vcpu"
    assert binding_resource([used("storage_gib", 50, 100), used("ram_gib", 25, 50)]) == "ram_gib"
    # outside the known order: known resources first, then alphabetical
    assert binding_resource([used("gpu", 1, 2), used("storage_gib", 50, 100)]) == "storage_gib"
    assert binding_resource([used("gpu", 1, 2), used("fpga", 2, 4)]) == "fpga"


def test_binding_resource_none_without_percent():
    assert binding_resource([]) is None
    assert binding_resource([used("vcpu", 5, 0), used("ram_gib", 0, 0)]) is None  # usable 0: no percent
    assert binding_resource([used("vcpu", 5, 0), used("ram_gib", 1, 10)]) == "ram_gib"


# forecast -----------------------------------------------------------------------------------------

RISING = [100 + 10 * day for day in range(10)]  # 100, 110, ..., 190 on days 0..9
DAY_9 = START + timedelta(days=9)


def test_no_history_is_not_enough():
    fc = forecast([], usable=300, now=DAY_9)
    assert fc == Forecast("not enough history")
    assert fc.slope_per_day is None and fc.days_left is None and fc.runs_out_on is None


def test_too_few_points_is_not_enough():
    # 6 daily points < min_points 7
    assert forecast(daily(RISING[:6]), usable=300, now=DAY_9).status == "not enough history"


def test_too_short_a_span_is_not_enough():
    # 10 hourly points span 9 hours < 7 days
    points = daily(RISING, step=timedelta(hours=1))
    assert forecast(points, usable=300, now=DAY_9).status == "not enough history"
    # 7 daily points span 6 days (day 0 to day 6), still short of 7 days; 8 points span 7
    assert forecast(daily(RISING[:7]), usable=300, now=DAY_9).status == "not enough history"
    assert forecast(daily(RISING[:8]), usable=300, now=DAY_9).status == "ok"


def test_thresholds_are_parameters():
    # 2 points a day apart: slope 10/day, fitted at day 1 = 110, (300 - 110) / 10 = 19 days
    fc = forecast(daily([100, 110]), usable=300, now=START + timedelta(days=1), min_points=2, min_span_days=1)
    assert fc.status == "ok"
    assert fc.days_left == pytest.approx(19.0)


def test_flat_trend_is_not_growing():
    fc = forecast(daily([150] * 10), usable=300, now=DAY_9)
    assert fc.status == "not growing"
    assert fc.slope_per_day == 0.0
    assert fc.fitted_allocated_now == pytest.approx(150.0)
    assert fc.days_left is None and fc.runs_out_on is None


def test_falling_trend_is_not_growing():
    fc = forecast(daily([200 - 10 * day for day in range(10)]), usable=300, now=DAY_9)
    assert fc.status == "not growing"
    assert fc.slope_per_day == pytest.approx(-10.0)
    assert fc.days_left is None


def test_rising_trend_exact_line():
    fc = forecast(daily(RISING), usable=300, now=DAY_9)
    assert fc.status == "ok"
    assert fc.slope_per_day == pytest.approx(10.0)  # 10 a day
    assert fc.fitted_allocated_now == pytest.approx(190.0)  # day 9
    assert fc.days_left == pytest.approx(11.0)  # (300 - 190) / 10
    assert fc.runs_out_on == date(2025, 1, 21)  # 2025-01-10 + 11 days


def test_rising_trend_read_between_points():
    # now = day 9.5: fitted 190 + 10 * 0.5 = 195; (300 - 195) / 10 = 10.5 days -> 2025-01-21 00:00
    fc = forecast(daily(RISING), usable=300, now=DAY_9 + timedelta(hours=12))
    assert fc.fitted_allocated_now == pytest.approx(195.0)
    assert fc.days_left == pytest.approx(10.5)
    assert fc.runs_out_on == date(2025, 1, 21)


def test_rising_trend_least_squares_of_noisy_points():
    # x = 0..7 days, y = 0 2 1 3 2 4 3 5: mean x 3.5, mean y 20 / 8 = 2.5
    # Sxx = 2 * (0.25 + 2.25 + 6.25 + 12.25) = 42
    # Sxy = 8.75 + 1.25 + 2.25 - 0.25 - 0.25 + 2.25 + 1.25 + 8.75 = 24  -> slope 24 / 42 = 4/7 a day
    # fitted at day 7: 2.5 + 4/7 * 3.5 = 4.5; usable 10: (10 - 4.5) / (4/7) = 9.625 days
    now = START + timedelta(days=7)
    fc = forecast(daily([0, 2, 1, 3, 2, 4, 3, 5]), usable=10, now=now)
    assert fc.status == "ok"
    assert fc.slope_per_day == pytest.approx(4 / 7)
    assert fc.fitted_allocated_now == pytest.approx(4.5)
    assert fc.days_left == pytest.approx(9.625)
    assert fc.runs_out_on == date(2025, 1, 17)  # 2025-01-08 00:00 + 9 d 15 h = 2025-01-17 15:00


def test_point_order_does_not_matter():
    points = daily(RISING)
    random.Random(7).shuffle(points)
    fc = forecast(points, usable=300, now=DAY_9)
    assert fc.status == "ok"
    assert fc.days_left == pytest.approx(11.0)


def test_already_exhausted():
    fc = forecast(daily(RISING), usable=150, now=DAY_9)  # fitted 190 >= 150
    assert fc.status == "exhausted"
    assert fc.days_left == 0.0
    assert fc.runs_out_on == date(2025, 1, 10)  # today
    assert fc.slope_per_day == pytest.approx(10.0)
    # exactly on the line counts as exhausted
    assert forecast(daily(RISING), usable=190, now=DAY_9).status == "exhausted"
    # just under it is not: 0.5 / 10 = 0.05 days left
    assert forecast(daily(RISING), usable=190.5, now=DAY_9).days_left == pytest.approx(0.05)


def test_falling_but_still_over_the_line_is_exhausted():
    fc = forecast(daily([400 - 10 * day for day in range(10)]), usable=300, now=DAY_9)  # fitted 310
    assert fc.status == "exhausted"
    assert fc.days_left == 0.0


def test_points_after_now_are_ignored():
    spikes = [SnapshotPoint(DAY_9 + timedelta(days=1), 1000), SnapshotPoint(DAY_9 + timedelta(days=2), 5000)]
    fc = forecast(daily(RISING) + spikes, usable=300, now=DAY_9)
    assert fc.slope_per_day == pytest.approx(10.0)
    assert fc.days_left == pytest.approx(11.0)
    # all of the history in the future: none left
    assert forecast(spikes, usable=300, now=DAY_9).status == "not enough history"


def test_run_out_date_is_in_the_time_zone_of_now():
    # 02:00 in Vientiane is 19:00 UTC the day before
    start = datetime(2025, 1, 1, 2, 0, tzinfo=VIENTIANE)
    now = start + timedelta(days=9)
    fc = forecast(daily(RISING, start=start), usable=300, now=now)
    assert fc.days_left == pytest.approx(11.0)
    assert fc.runs_out_on == date(2025, 1, 21)  # 2025-01-21 02:00 +07:00 (2025-01-20 in UTC)


def test_a_vanishing_slope_has_no_run_out_date_past_year_9999():
    # slope 1e-9 a day from 0 to usable 1000: 1e12 days away
    fc = forecast(daily([i * 1e-9 for i in range(10)]), usable=1000, now=DAY_9)
    assert fc.status == "ok"
    assert fc.days_left > 1e11
    assert fc.runs_out_on is None
    assert status(fc.days_left, 10.0) == "green"


def test_forecast_as_dict():
    d = forecast(daily([0, 2, 1, 3, 2, 4, 3, 5]), usable=10, now=START + timedelta(days=7)).as_dict()
    assert d == {
        "status": "ok",
        "slope_per_day": 0.571,  # 4/7 = 0.5714...
        "fitted_allocated_now": 4.5,
        "days_left": 9.625,
        "runs_out_on": "2025-01-17",
    }
    json.dumps(d)


@settings(max_examples=300, deadline=None)
@given(
    intercept=st.integers(min_value=0, max_value=1_000_000),
    slope_steps=st.integers(min_value=1, max_value=2**22),
    count=st.integers(min_value=8, max_value=400),
    step_hours=st.integers(min_value=24, max_value=72),
    now_after_last_hours=st.integers(min_value=0, max_value=48),
    days_ahead=st.floats(min_value=0.001, max_value=3650),
)
def test_exact_line_crosses_where_the_line_does(
    intercept, slope_steps, count, step_hours, now_after_last_hours, days_ahead
):
    # The slope is a whole number of 1/4096 per hour, so every point is exactly on the line
    # (no rounding in the data): any error is the fit's own. Slopes 0.006 to 24,576 a day.
    slope_per_hour = slope_steps / 4096
    points = [SnapshotPoint(START + timedelta(hours=i * step_hours), intercept + slope_per_hour * i * step_hours)
              for i in range(count)]
    now_hours = (count - 1) * step_hours + now_after_last_hours
    line_now = intercept + slope_per_hour * now_hours
    usable = line_now + 24 * slope_per_hour * days_ahead
    crossing_days = (usable - line_now) / (24 * slope_per_hour)  # analytic: where the line reaches usable
    fc = forecast(points, usable=usable, now=START + timedelta(hours=now_hours))
    assert fc.status == "ok"
    assert abs(fc.days_left - crossing_days) <= 1e-6


def test_large_slow_growth_keeps_its_digits():
    # 131072 + 0.01 a day over 8 days (hypothesis found this): the fit must not lose the
    # growth in the size of the amount. Rounded inputs: the exact fit is 1065.0000000046 days.
    points = daily([131072.0 + 0.01 * day for day in range(8)])
    now = START + timedelta(days=7)
    usable = 131072.0 + 0.01 * 7 + 0.01 * 1065.0
    fc = forecast(points, usable=usable, now=now)
    assert fc.days_left == pytest.approx(1065.0, abs=1e-6)


# status -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_left", "used_percent", "expected"),
    [
        (29.9, None, "red"),
        (30, None, "amber"),
        (119.9, None, "amber"),
        (120, None, "green"),
        (0.0, None, "red"),  # exhausted
        (None, 84.9, "green"),
        (None, AMBER_PERCENT, "amber"),
        (None, 99.9, "amber"),
        (None, 100.0, "red"),
        (None, None, "green"),  # no forecast, no percent
        (500, 100.0, "red"),  # the worse of the two wins
        (100, 10.0, "amber"),
    ],
)
def test_status_thresholds(days_left, used_percent, expected):
    assert status(days_left, used_percent) == expected


def test_amber_percent_and_custom_day_thresholds():
    assert AMBER_PERCENT == 85
    assert status(50, None, red_days=60, amber_days=90) == "red"
    assert status(80, None, red_days=60, amber_days=90) == "amber"
    assert status(90, None, red_days=60, amber_days=90) == "green"


# cluster_summary ----------------------------------------------------------------------------------


def test_cluster_summary_worst_status_and_first_to_run_out():
    figures = {
        "vcpu": used("vcpu", 70, 100),  # 70 %
        "ram_gib": used("ram_gib", 160, 200),  # 80 %, the binding resource, but no forecast: green
        "storage_gib": used("storage_gib", 50, 100),  # 50 %
    }
    forecasts = {
        "vcpu": Forecast("ok", 1.0, 70.0, 200.0, date(2025, 7, 20)),  # green
        "ram_gib": Forecast("not enough history"),
        "storage_gib": Forecast("ok", 1.0, 50.0, 60.0, date(2025, 3, 2)),  # amber: 60 < 120
    }
    summary = cluster_summary(figures, forecasts)
    assert summary == ClusterSummary(
        cluster="gen-a",
        site="dc1",
        binding_resource="ram_gib",
        status="amber",
        resource_statuses={"vcpu": "green", "ram_gib": "green", "storage_gib": "amber"},
        first_to_run_out="storage_gib",
        days_left=60.0,
        runs_out_on=date(2025, 3, 2),
    )
    assert list(summary.resource_statuses) == ["vcpu", "ram_gib", "storage_gib"]
    d = summary.as_dict()
    assert d["runs_out_on"] == "2025-03-02"
    json.dumps(d)


def test_cluster_summary_red_wins_and_missing_forecasts_use_percent():
    figures = {"ram_gib": used("ram_gib", 90, 100), "vcpu": used("vcpu", 10, 100)}  # 90 % amber, 10 %
    forecasts = {"vcpu": Forecast("exhausted", 5.0, 120.0, 0.0, date(2025, 1, 10))}  # red
    summary = cluster_summary(figures, forecasts)
    assert summary.status == "red"
    assert summary.resource_statuses == {"vcpu": "red", "ram_gib": "amber"}
    assert summary.binding_resource == "ram_gib"
    assert (summary.first_to_run_out, summary.days_left) == ("vcpu", 0.0)


def test_cluster_summary_without_forecasts_is_green_with_no_run_out():
    summary = cluster_summary({"vcpu": used("vcpu", 10, 100)}, {})
    assert (summary.status, summary.first_to_run_out, summary.days_left, summary.runs_out_on) == (
        "green", None, None, None)


def test_cluster_summary_needs_a_resource():
    with pytest.raises(ValueError):
        cluster_summary({}, {})


# top_consumers ------------------------------------------------------------------------------------

ALLOCATIONS = [
    ("moh", "dhis2", "gen-a", "storage_gib", 500),
    ("moh", "dhis2", "gen-a", "vcpu", 32),
    ("moh", "dhis2", "gen-b", "vcpu", 16),  # dhis2: 32 + 16 = 48 over two clusters
    ("moh", "hmis", "gen-a", "vcpu", 8),
    ("mtc", "digital-id", "gen-a", "vcpu", 40),
    ("mof", "tax", "gen-a", "vcpu", 56),
    ("mof", "customs", "gen-a", "vcpu", 0),  # not a consumer
    ("moh", "dhis2", "gen-a", "ram_gib", 64),
    ("mtc", "digital-id", "gen-a", "ram_gib", 64),
]


def test_top_consumers_sums_orders_and_breaks_ties_by_name():
    top = top_consumers(ALLOCATIONS)
    assert list(top) == ["vcpu", "ram_gib", "storage_gib"]
    # moh 32 + 16 + 8 = 56 ties mof 56: mof first by name; mtc 40
    assert top["vcpu"]["ministries"] == [("mof", 56), ("moh", 56), ("mtc", 40)]
    assert top["vcpu"]["programmes"] == [("tax", "mof", 56), ("dhis2", "moh", 48), ("digital-id", "mtc", 40),
                                         ("hmis", "moh", 8)]
    # 64 each: dhis2 < digital-id, moh < mtc
    assert top["ram_gib"]["programmes"] == [("dhis2", "moh", 64), ("digital-id", "mtc", 64)]
    assert top["ram_gib"]["ministries"] == [("moh", 64), ("mtc", 64)]
    assert top["storage_gib"] == {"ministries": [("moh", 500)], "programmes": [("dhis2", "moh", 500)]}


def test_top_consumers_limit():
    top = top_consumers(ALLOCATIONS, limit=2)
    assert top["vcpu"]["ministries"] == [("mof", 56), ("moh", 56)]
    assert top["vcpu"]["programmes"] == [("tax", "mof", 56), ("dhis2", "moh", 48)]
    assert top_consumers([]) == {}


# monthly_cost -------------------------------------------------------------------------------------

PROGRAMMES = [
    ("moh", "dhis2", "std-m", 1_500_000),
    ("moh", "hmis", "std-s", 750_000),
    ("moh", "lab-pilot", None, None),  # no plan: listed, not priced
    ("mtc", "digital-id", "ha-l", 3_000_000),
    ("mof", "tax", "std-m", 1_500_000),
    ("mof", "customs", "std-s", 750_000),
    ("mpwt", "roads", None, None),
]


def test_monthly_cost_per_ministry_and_total():
    report = monthly_cost(PROGRAMMES)
    rows = [(m.ministry, m.total_lak, m.programme_count, m.without_plan) for m in report.ministries]
    assert rows == [
        ("mtc", 3_000_000, 1, ()),
        ("mof", 2_250_000, 2, ()),  # 1,500,000 + 750,000, ties moh: mof first by code
        ("moh", 2_250_000, 3, ("lab-pilot",)),  # 1,500,000 + 750,000; lab-pilot counted, not priced
        ("mpwt", 0, 1, ("roads",)),
    ]
    assert report.total_lak == 7_500_000  # 3,000,000 + 2,250,000 + 2,250,000 + 0
    assert isinstance(report.total_lak, int)
    assert all(isinstance(m.total_lak, int) for m in report.ministries)
    d = report.as_dict()
    assert d["ministries"][2] == {"ministry": "moh", "total_lak": 2_250_000, "programme_count": 3,
                                  "without_plan": ["lab-pilot"]}
    json.dumps(d)


def test_monthly_cost_empty_and_plan_without_cost():
    assert monthly_cost([]).as_dict() == {"ministries": [], "total_lak": 0}
    with pytest.raises(ValueError, match="std-m"):
        monthly_cost([("moh", "dhis2", "std-m", None)])


# whole units and the forecast horizon ---------------------------------------------------------------


def test_usable_is_whole_units_rounded_down():
    # (160 - 16) * 4.0 = 576; N+1 32 * 4.0 = 128; buffer 10 % = 57.6: 576 - 128 - 57.6 = 390.4 -> 390
    f = resource_figures(ResourceInput("gen-b", "dc1", "vcpu", 160, 16, 4.0, 32, 195), buffer_percent=10)
    assert f.buffer == pytest.approx(57.6)
    assert f.usable == 390.0
    assert f.free == 195.0  # 390 - 195
    assert f.used_percent == pytest.approx(50.0)  # 100 * 195 / 390
    # float noise is not a lost unit: 100 * 1.15 is 114.99999999999999 in floating point, usable 115
    assert resource_figures(ResourceInput("x", "dc1", "ram_gib", 100, 0, 1.15, None, 0), buffer_percent=0).usable == 115.0


def test_a_run_out_beyond_three_years_is_not_the_clusters_first_run_out():
    figures = {"vcpu": used("vcpu", 100, 200), "ram_gib": used("ram_gib", 100, 200)}
    forecasts = {
        "vcpu": Forecast("ok", 0.001, 100.0, 46_000.0, date(2151, 1, 1)),  # 126 years away
        "ram_gib": Forecast("ok", 0.1, 100.0, 1_000.0, date(2027, 9, 27)),  # inside 3 years (1,095.75 days)
    }
    summary = cluster_summary(figures, forecasts)
    assert (summary.first_to_run_out, summary.days_left) == ("ram_gib", 1_000.0)
    only_far = cluster_summary(figures, {"vcpu": forecasts["vcpu"]})
    assert only_far.first_to_run_out is None and only_far.runs_out_on is None and only_far.status == "green"
