"""Monthly statements, pure: what each programme cost in a month on its plan, pro rata to its days in service."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class PricedProgramme:
    """A programme as a statement sees it: its plan's monthly price and when it was in service."""

    slug: str
    name: str
    plan: str | None
    plan_name: str | None
    monthly_cost_lak: int | None
    service_start: datetime | None  # its first activation; None: never in service
    service_end: datetime | None  # its retirement; None: still in service


@dataclass(frozen=True)
class StatementLine:
    """One programme's charge for the month."""

    programme: str
    name: str
    plan: str | None
    plan_name: str | None
    monthly_cost_lak: int | None
    days_in_service: int
    days_in_month: int
    amount_lak: int | None  # None: on no catalogue plan, so not priced

    def as_dict(self) -> dict:
        return asdict(self)


def days_in_service(programme: PricedProgramme, first_day: date, last_day: date, tz: ZoneInfo) -> int:
    """The local days of [first_day, last_day] with any moment in service: a day begun is a day charged."""
    if programme.service_start is None:
        return 0
    counted = 0
    day = first_day
    while day <= last_day:
        start = datetime.combine(day, time(), tz)
        end = datetime.combine(day + timedelta(days=1), time(), tz)
        if programme.service_start < end and (programme.service_end is None or programme.service_end > start):
            counted += 1
        day += timedelta(days=1)
    return counted


def pro_rata(monthly_cost_lak: int, days: int, days_in_month: int) -> int:
    """The month's price for `days` of its days, in whole kip, half up."""
    amount = Decimal(monthly_cost_lak) * days / days_in_month
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def statement_lines(programmes: list[PricedProgramme], *, first_day: date, last_day: date, charged_until: date,
                    tz: ZoneInfo) -> tuple[list[StatementLine], int]:
    """The lines of a month's statement and its total in LAK.

    `charged_until` is the last day counted (the month's last day, or today for the running month:
    a provisional statement); programmes with no day in service are left out.
    """
    days_in_month = (last_day - first_day).days + 1
    lines = []
    for programme in sorted(programmes, key=lambda p: p.slug):
        days = days_in_service(programme, first_day, min(last_day, charged_until), tz)
        if days == 0:
            continue
        amount = None if programme.monthly_cost_lak is None else pro_rata(programme.monthly_cost_lak, days,
                                                                          days_in_month)
        lines.append(StatementLine(programme.slug, programme.name, programme.plan, programme.plan_name,
                                   programme.monthly_cost_lak, days, days_in_month, amount))
    return lines, sum(line.amount_lak or 0 for line in lines)
