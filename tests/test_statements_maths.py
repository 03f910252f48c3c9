"""Statement maths by hand: pro rata by local days in service, whole kip half up."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from dcops.reports.statements import PricedProgramme, days_in_service, pro_rata, statement_lines

VIENTIANE = ZoneInfo("Asia/Vientiane")  # UTC+7
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def programme(slug="e-crvs", cost=3_000_000, start=datetime(2026, 1, 1, tzinfo=timezone.utc), end=None, plan="vm-m"):
    return PricedProgramme(slug, slug.upper(), plan, plan and "Medium", cost, start, end)


def test_a_whole_month_costs_the_plans_price():
    lines, total = statement_lines([programme()], first_day=NOVEMBER[0], last_day=NOVEMBER[1],
                                   charged_until=NOVEMBER[1], tz=VIENTIANE)
    assert [(line.days_in_service, line.amount_lak) for line in lines] == [(30, 3_000_000)]
    assert total == 3_000_000


def test_activation_mid_month_counts_local_days_begun():
    # 2026-11-20 18:00 UTC is 21 November 01:00 in Vientiane: 21..30 November, 10 days.
    started = programme(start=datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc))
    assert days_in_service(started, *NOVEMBER, VIENTIANE) == 10
    lines, total = statement_lines([started], first_day=NOVEMBER[0], last_day=NOVEMBER[1],
                                   charged_until=NOVEMBER[1], tz=VIENTIANE)
    assert lines[0].amount_lak == 1_000_000 and total == 1_000_000  # 3,000,000 × 10 / 30


def test_retirement_ends_the_charge_and_rounding_is_half_up():
    # Retired 2026-11-02 00:30 Vientiane (1 Nov 17:30 UTC): in service on 1 and 2 November.
    retired = programme(cost=1_000_001, end=datetime(2026, 11, 1, 17, 30, tzinfo=timezone.utc))
    assert days_in_service(retired, *NOVEMBER, VIENTIANE) == 2
    assert pro_rata(1_000_001, 2, 30) == 66_667  # 66,666.73 → 66,667
    assert pro_rata(15, 1, 30) == 1  # 0.5 → 1, half up


def test_the_running_month_is_charged_until_today_and_unpriced_programmes_are_listed_not_summed():
    lines, total = statement_lines(
        [programme(), programme("legacy", cost=None, plan=None), programme("later", start=None)],
        first_day=NOVEMBER[0], last_day=NOVEMBER[1], charged_until=date(2026, 11, 15), tz=VIENTIANE)
    assert [(line.programme, line.days_in_service, line.amount_lak) for line in lines] == [
        ("e-crvs", 15, 1_500_000), ("legacy", 15, None)]
    assert total == 1_500_000
