"""Capacity-report maths, pure: usable capacity after N+1 and buffer, binding resource, run-out forecast, status, cost."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dcops.inventory.capacity import capacity

# The report's resource order (vcpu first); other resource names follow alphabetically.
RESOURCE_ORDER = ("vcpu", "ram_gib", "storage_gib")

# Status thresholds. A resource is red when it runs out within RED_DAYS or is already at or
# over its usable capacity; amber when it runs out within AMBER_DAYS (time to buy hardware)
# or is at least AMBER_PERCENT full; green otherwise.
DEFAULT_BUFFER_PERCENT = 10.0  # of capacity, kept beyond the N+1 reserve
DEFAULT_TREND_DAYS = 90  # days of snapshots the run-out trend is fitted to
MAX_TREND_DAYS = 3660  # ten years of daily snapshots
RED_DAYS = 30.0
AMBER_DAYS = 120.0
RED_PERCENT = 100.0
AMBER_PERCENT = 85.0
STATUS_SEVERITY = {"green": 0, "amber": 1, "red": 2}

FORECAST_NOT_ENOUGH_HISTORY = "not enough history"
FORECAST_NOT_GROWING = "not growing"
FORECAST_EXHAUSTED = "exhausted"
FORECAST_OK = "ok"

SECONDS_PER_DAY = 86_400.0
# A run-out further than this is not forecast (a straight line read decades ahead is no forecast):
# the report says "not within 3 years", and the cluster's first run-out leaves it out.
HORIZON_YEARS = 3
HORIZON_DAYS = HORIZON_YEARS * 365.25


def _plain(value):
    """JSON-ready: floats rounded to 3 decimals, dates as YYYY-MM-DD, containers recursed."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _resource_rank(resource: str) -> tuple[int, str]:
    """Sort key: the RESOURCE_ORDER position, then the name for resources outside it."""
    position = RESOURCE_ORDER.index(resource) if resource in RESOURCE_ORDER else len(RESOURCE_ORDER)
    return (position, resource)


@dataclass(frozen=True)
class ResourceInput:
    """One resource of one cluster as the report reads it: physical amounts, ratio, allocations, pipeline."""

    cluster: str
    site: str
    resource: str  # vcpu | ram_gib | storage_gib
    total: int  # physical
    reserved: int
    allocation_ratio: float
    largest_host: int | None  # the largest physical host's amount of this resource; None when hosts are unknown
    allocated: int  # sum of allocations now
    pipeline_approved: int = 0  # approved, not provisioned: already in `allocated` (shown, not added)
    pipeline_submitted: int = 0  # submitted, not decided: would come on top of `allocated`


@dataclass(frozen=True)
class ResourceFigures:
    """The input plus what is safely usable after the N+1 reserve and the buffer, in the resource's unit."""

    cluster: str
    site: str
    resource: str
    total: int
    reserved: int
    allocation_ratio: float
    largest_host: int | None
    allocated: int
    pipeline_approved: int
    pipeline_submitted: int
    buffer_percent: float
    capacity: float  # (total - reserved) * allocation_ratio
    n_plus_one_known: bool
    n_plus_one_reserve: float  # largest_host * allocation_ratio; 0.0 when the hosts are unknown
    buffer: float  # capacity * buffer_percent / 100
    usable: float  # max(0, capacity - n_plus_one_reserve - buffer), rounded down to a whole unit
    free: float  # usable - allocated; negative when over the safe line
    used_percent: float | None  # 100 * allocated / usable; None when usable is 0
    after_pipeline_percent: float | None  # 100 * (allocated + pipeline_submitted) / usable

    def as_dict(self) -> dict:
        return _plain(self.__dict__)


def resource_figures(r: ResourceInput, *, buffer_percent: float) -> ResourceFigures:
    """Usable capacity of one resource: capacity less the largest host (N+1) and a buffer of buffer_percent %."""
    cap = capacity(r.total, r.reserved, r.allocation_ratio)
    n_plus_one_known = r.largest_host is not None
    # Losing the largest host must not strand allocations, so its share is never handed out.
    n_plus_one_reserve = r.largest_host * r.allocation_ratio if n_plus_one_known else 0.0
    buffer = cap * buffer_percent / 100
    # Whole units, rounded down: 0.4 of a vCPU or of a GiB cannot be handed out. (The epsilon
    # keeps float noise, 349.99999..., from costing a whole unit.)
    usable = float(max(0, math.floor(cap - n_plus_one_reserve - buffer + 1e-9)))
    return ResourceFigures(
        cluster=r.cluster,
        site=r.site,
        resource=r.resource,
        total=r.total,
        reserved=r.reserved,
        allocation_ratio=r.allocation_ratio,
        largest_host=r.largest_host,
        allocated=r.allocated,
        pipeline_approved=r.pipeline_approved,
        pipeline_submitted=r.pipeline_submitted,
        buffer_percent=buffer_percent,
        capacity=cap,
        n_plus_one_known=n_plus_one_known,
        n_plus_one_reserve=n_plus_one_reserve,
        buffer=buffer,
        usable=usable,
        free=usable - r.allocated,
        used_percent=100 * r.allocated / usable if usable > 0 else None,
        after_pipeline_percent=100 * (r.allocated + r.pipeline_submitted) / usable if usable > 0 else None,
    )


def binding_resource(figures: Iterable[ResourceFigures]) -> str | None:
    """Of one cluster's resources, the fullest (highest used_percent); None when none has a percent.

    Ties go to the first in the order vcpu, ram_gib, storage_gib, then alphabetical.
    """
    candidates = [f for f in figures if f.used_percent is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda f: (-f.used_percent, _resource_rank(f.resource))).resource


@dataclass(frozen=True)
class SnapshotPoint:
    """What one resource had allocated at one time (an aware datetime)."""

    at: datetime
    allocated: float


@dataclass(frozen=True)
class Forecast:
    """When a resource reaches its usable capacity, from a straight line fitted to its history.

    status: "not enough history", "not growing" (slope <= 0), "exhausted" (the fitted value at
    `now` is already at or over usable) or "ok". days_left is set for "ok" (and 0.0 for
    "exhausted"); runs_out_on is the date of now + days_left in now's time zone.
    """

    status: str
    slope_per_day: float | None = None  # resource units per day
    fitted_allocated_now: float | None = None  # the fitted line's value at `now`
    days_left: float | None = None
    runs_out_on: date | None = None

    def as_dict(self) -> dict:
        return _plain(self.__dict__)


def forecast(
    points: Iterable[SnapshotPoint],
    *,
    usable: float,
    now: datetime,
    min_points: int = 7,
    min_span_days: float = 7.0,
) -> Forecast:
    """Least-squares line through allocated over time, read at `now`, like Prometheus' predict_linear.

    Points after `now` are ignored. Needs at least min_points points spanning at least
    min_span_days days. One pass, numerically stable: running means and co-moments over
    float seconds since the first point and amounts relative to the first point's, so a
    large allocation growing slowly keeps its digits.
    """
    origin: datetime | None = None
    base = 0.0  # the first point's allocated; y is measured from it
    count = 0
    mean_x = mean_y = 0.0
    sum_sq_x = sum_xy = 0.0  # sums of squared / cross deviations from the means
    first_x = last_x = 0.0
    for point in points:
        if point.at > now:
            continue
        if origin is None:
            origin, base = point.at, point.allocated
        x = (point.at - origin).total_seconds()
        y = point.allocated - base
        count += 1
        if count == 1:
            first_x = last_x = x
        else:
            first_x = min(first_x, x)
            last_x = max(last_x, x)
        dx = x - mean_x
        mean_x += dx / count
        mean_y += (y - mean_y) / count
        sum_sq_x += dx * (x - mean_x)
        sum_xy += dx * (y - mean_y)

    span_days = (last_x - first_x) / SECONDS_PER_DAY
    if origin is None or count < min_points or span_days < min_span_days or sum_sq_x <= 0:
        return Forecast(status=FORECAST_NOT_ENOUGH_HISTORY)

    slope_per_second = sum_xy / sum_sq_x
    slope_per_day = slope_per_second * SECONDS_PER_DAY
    fitted_now = base + mean_y + slope_per_second * ((now - origin).total_seconds() - mean_x)
    # Already over the line is "exhausted" whatever the trend: a falling but still-full
    # resource has run out today.
    if fitted_now >= usable:
        return Forecast(FORECAST_EXHAUSTED, slope_per_day, fitted_now, 0.0, now.date())
    if slope_per_day <= 0:
        return Forecast(FORECAST_NOT_GROWING, slope_per_day, fitted_now)
    days_left = (usable - fitted_now) / slope_per_day
    if not math.isfinite(days_left):  # a vanishing slope: growing in name only
        return Forecast(FORECAST_NOT_GROWING, slope_per_day, fitted_now)
    try:
        runs_out_on = (now + timedelta(days=days_left)).date()
    except OverflowError:  # beyond year 9999: no date to show
        runs_out_on = None
    return Forecast(FORECAST_OK, slope_per_day, fitted_now, days_left, runs_out_on)


def status(
    days_left: float | None,
    used_percent: float | None,
    *,
    red_days: float = RED_DAYS,
    amber_days: float = AMBER_DAYS,
) -> str:
    """The status of one resource: red, amber or green.

    red: runs out in under red_days days (30), or used_percent >= 100 (at or over usable).
    amber: runs out in under amber_days days (120), or used_percent >= AMBER_PERCENT (85).
    green: otherwise, including no forecast and no percent.
    """
    if (days_left is not None and days_left < red_days) or (used_percent is not None and used_percent >= RED_PERCENT):
        return "red"
    if (days_left is not None and days_left < amber_days) or (
        used_percent is not None and used_percent >= AMBER_PERCENT
    ):
        return "amber"
    return "green"


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster at a glance: its fullest resource, worst status and the first resource to run out."""

    cluster: str
    site: str
    binding_resource: str | None
    status: str  # the worst of resource_statuses: red > amber > green
    resource_statuses: Mapping[str, str]  # resource -> status, in report order
    first_to_run_out: str | None  # the resource with the fewest days left, None when no forecast says
    days_left: float | None
    runs_out_on: date | None

    def as_dict(self) -> dict:
        return _plain(self.__dict__)


def cluster_summary(
    figures_by_resource: Mapping[str, ResourceFigures],
    forecasts_by_resource: Mapping[str, Forecast],
    *,
    red_days: float = RED_DAYS,
    amber_days: float = AMBER_DAYS,
    horizon_days: float = HORIZON_DAYS,
) -> ClusterSummary:
    """Summarise one cluster; a resource without a forecast is judged on its used_percent alone.

    The first to run out is the resource with the fewest days left within horizon_days (3
    years): a run-out further ahead is no date to plan by.
    """
    if not figures_by_resource:
        raise ValueError("a cluster summary needs at least one resource")
    ordered = sorted(figures_by_resource.values(), key=lambda f: _resource_rank(f.resource))
    no_forecast = Forecast(FORECAST_NOT_ENOUGH_HISTORY)
    resource_statuses: dict[str, str] = {}
    first: tuple[float, str, Forecast] | None = None
    for figures in ordered:
        fc = forecasts_by_resource.get(figures.resource, no_forecast)
        resource_statuses[figures.resource] = status(
            fc.days_left, figures.used_percent, red_days=red_days, amber_days=amber_days
        )
        within = fc.days_left is not None and fc.days_left <= horizon_days and fc.runs_out_on is not None
        if within and (first is None or fc.days_left < first[0]):
            first = (fc.days_left, figures.resource, fc)
    return ClusterSummary(
        cluster=ordered[0].cluster,
        site=ordered[0].site,
        binding_resource=binding_resource(ordered),
        status=max(resource_statuses.values(), key=STATUS_SEVERITY.__getitem__),
        resource_statuses=resource_statuses,
        first_to_run_out=first[1] if first else None,
        days_left=first[0] if first else None,
        runs_out_on=first[2].runs_out_on if first else None,
    )


def _top(amounts: Mapping, limit: int) -> list:
    """The `limit` largest non-zero amounts, largest first, ties by key."""
    ranked = sorted(((key, amount) for key, amount in amounts.items() if amount > 0), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:limit]


def top_consumers(allocations: Iterable[tuple[str, str, str, str, int]], *, limit: int = 10) -> dict:
    """Per resource, the top `limit` ministries and programmes by amount summed over clusters.

    Rows are (ministry_code, programme_slug, cluster, resource, amount). Returns
    {resource: {"ministries": [(ministry_code, amount)], "programmes": [(programme_slug,
    ministry_code, amount)]}}, resources in report order, largest first, ties by name;
    zero totals are not consumers and are left out.
    """
    by_ministry: dict[str, dict[str, int]] = {}
    by_programme: dict[str, dict[tuple[str, str], int]] = {}
    for ministry, programme, _cluster, resource, amount in allocations:
        ministries = by_ministry.setdefault(resource, {})
        ministries[ministry] = ministries.get(ministry, 0) + amount
        programmes = by_programme.setdefault(resource, {})
        programmes[(programme, ministry)] = programmes.get((programme, ministry), 0) + amount
    return {
        resource: {
            "ministries": _top(by_ministry[resource], limit),
            "programmes": [(slug, ministry, amount) for (slug, ministry), amount in _top(by_programme[resource], limit)],
        }
        for resource in sorted(by_ministry, key=_resource_rank)
    }


@dataclass(frozen=True)
class MinistryCost:
    """What one ministry's programmes cost a month on their catalogue plans, in LAK."""

    ministry: str
    total_lak: int
    programme_count: int  # all its programmes, priced or not
    without_plan: tuple[str, ...]  # programme slugs on no catalogue plan: listed, not priced

    def as_dict(self) -> dict:
        return _plain(self.__dict__)


@dataclass(frozen=True)
class CostReport:
    """Monthly cost per ministry (largest first, then by code) and the grand total, in LAK."""

    ministries: tuple[MinistryCost, ...]
    total_lak: int

    def as_dict(self) -> dict:
        return {"ministries": [m.as_dict() for m in self.ministries], "total_lak": self.total_lak}


def monthly_cost(programmes: Iterable[tuple[str, str, str | None, int | None]]) -> CostReport:
    """Sum monthly plan costs (LAK, integers) per ministry; programmes without a plan are listed apart.

    Rows are (ministry_code, programme_slug, plan_id or None, monthly_cost_lak or None).
    A plan without a cost is an error: every catalogue plan carries one.
    """
    totals: dict[str, int] = {}
    counts: dict[str, int] = {}
    unplanned: dict[str, list[str]] = {}
    for ministry, programme, plan_id, cost_lak in programmes:
        counts[ministry] = counts.get(ministry, 0) + 1
        totals.setdefault(ministry, 0)
        unplanned.setdefault(ministry, [])
        if plan_id is None:
            unplanned[ministry].append(programme)
        elif cost_lak is None:
            raise ValueError(f"programme {programme}: plan {plan_id} has no monthly cost")
        else:
            totals[ministry] += cost_lak
    ministries = tuple(
        MinistryCost(code, totals[code], counts[code], tuple(sorted(unplanned[code])))
        for code in sorted(totals, key=lambda code: (-totals[code], code))
    )
    return CostReport(ministries, sum(totals.values()))
