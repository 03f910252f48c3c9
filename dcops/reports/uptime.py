"""Availability (SLA) maths, pure: periods, state time, maintenance, incidents, error budget, roll-ups."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

UP = "up"
DOWN = "down"
UNKNOWN = "unknown"

# Float noise (e.g. 99.9 read back from a database) must not turn an exactly met target into a miss.
EPSILON = 1e-9

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")

# Sweep event kinds; the first three index the per-state counters.
_K_DOWN, _K_UNKNOWN, _K_UP, _K_ANNOUNCED, _K_LATE = range(5)
_STATE_KIND = {DOWN: _K_DOWN, UNKNOWN: _K_UNKNOWN, UP: _K_UP}


@dataclass(frozen=True)
class StateSpan:
    """One programme-level state interval from the probe history; `end` None means still open (until `now`)."""

    state: str
    start: datetime
    end: datetime | None
    reason: str = ""


@dataclass(frozen=True)
class MaintenanceWindow:
    """A maintenance window applying to the programme (its own or its cluster's); cancelled ones are never passed."""

    id: int
    start: datetime
    end: datetime
    recorded_at: datetime
    change_ref: str = ""
    reason: str = ""

    @property
    def announced(self) -> bool:
        """Recorded before it started: its time is excluded from the SLA. A late one excuses nothing."""
        return self.recorded_at <= self.start

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "start": iso_utc(self.start),
            "end": iso_utc(self.end),
            "recorded_at": iso_utc(self.recorded_at),
            "announced": self.announced,
            "change_ref": self.change_ref,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Incident:
    """A maximal stretch of downtime outside announced maintenance, clipped to the period; `seconds` its length."""

    start: datetime
    end: datetime
    seconds: float
    reason: str = ""

    def as_dict(self) -> dict:
        return {
            "start": iso_utc(self.start),
            "end": iso_utc(self.end),
            "seconds": _round_seconds(self.seconds),
            "reason": self.reason,
        }


class DayShare(NamedTuple):
    """Seconds of one local calendar day in each bucket; time after `now` is in none of them."""

    day: date
    up: float
    down: float
    maintenance: float
    unknown: float



def _days_as_dicts(days: tuple[DayShare, ...]) -> list[dict]:
    """Each day as {day, up, down, maintenance, unknown}, the seconds rounded as _round_seconds
    does, written out: a year of 200 programmes is 73,000 days, and a call per figure was most of
    the time (a whole second stays as it is)."""
    out = []
    for day, up, down, maintenance, unknown in days:
        out.append({
            "day": _day_text(day),
            "up": up if up.__class__ is float and up.is_integer() else _round_seconds(up),
            "down": down if down.__class__ is float and down.is_integer() else _round_seconds(down),
            "maintenance": maintenance if maintenance.__class__ is float and maintenance.is_integer()
            else _round_seconds(maintenance),
            "unknown": unknown if unknown.__class__ is float and unknown.is_integer() else _round_seconds(unknown),
        })
    return out


@lru_cache(maxsize=2048)
def _day_text(day: date) -> str:
    # Every programme of a report shares its days: a year of 200 programmes is 73,000 of them.
    return day.isoformat()


@dataclass(frozen=True)
class ProgrammeUptime:
    """One programme's availability over a period.

    `period_seconds` (T) is the measured part of the period, [start, min(end, now)), within the
    programme's service. It splits into
    `maintenance_seconds` (M, announced windows), `downtime_seconds` (D), `unknown_seconds` (U) and
    `up_seconds`; `late_maintenance_seconds` is the part of D under a late window (a flag, not a bucket).
    `availability` and `coverage` are ratios 0-1; percentages are 0-100 (the error budget may exceed 100).
    """

    period_seconds: float
    maintenance_seconds: float
    late_maintenance_seconds: float
    downtime_seconds: float
    unknown_seconds: float
    up_seconds: float
    availability: float | None
    coverage: float | None
    target_percent: float
    met: bool | None
    incidents: tuple[Incident, ...]
    incident_count: int
    longest_incident_seconds: float
    mttr_seconds: float | None
    mtbf_seconds: float | None
    error_budget_used_percent: float | None
    late_windows: tuple[MaintenanceWindow, ...]
    days: tuple[DayShare, ...]
    partial: bool

    @property
    def error_budget_seconds(self) -> float:
        """Downtime the target allows: (1 - target/100) x (T - M - U); 0 or less means no budget."""
        counted = self.period_seconds - self.maintenance_seconds - self.unknown_seconds
        return _allowed_seconds(self.target_percent, counted)

    def as_dict(self, *, incidents: bool = True) -> dict:
        """JSON-ready plain data: ISO 8601 UTC times ending in Z, seconds to 3 decimals, ratios to 6.

        `incidents` False leaves them out, for a caller that writes them itself."""
        return {
            "period_seconds": _round_seconds(self.period_seconds),
            "maintenance_seconds": _round_seconds(self.maintenance_seconds),
            "late_maintenance_seconds": _round_seconds(self.late_maintenance_seconds),
            "downtime_seconds": _round_seconds(self.downtime_seconds),
            "unknown_seconds": _round_seconds(self.unknown_seconds),
            "up_seconds": _round_seconds(self.up_seconds),
            "availability": _round_ratio(self.availability),
            "coverage": _round_ratio(self.coverage),
            "target_percent": self.target_percent,
            "met": self.met,
            **({"incidents": [incident.as_dict() for incident in self.incidents]} if incidents else {}),
            "incident_count": self.incident_count,
            "longest_incident_seconds": _round_seconds(self.longest_incident_seconds),
            "mttr_seconds": _round_seconds(self.mttr_seconds),
            "mtbf_seconds": _round_seconds(self.mtbf_seconds),
            "error_budget_seconds": _round_seconds(max(self.error_budget_seconds, 0.0)),
            "error_budget_used_percent": _round_percent(self.error_budget_used_percent),
            "late_windows": [window.as_dict() for window in self.late_windows],
            "days": _days_as_dicts(self.days),
            "partial": self.partial,
        }


@dataclass(frozen=True)
class Rollup:
    """Several programmes (a ministry, the whole data centre) summed; availability is time-weighted."""

    programmes: int
    programmes_met: int
    programmes_missed: int
    period_seconds: float
    maintenance_seconds: float
    late_maintenance_seconds: float
    downtime_seconds: float
    unknown_seconds: float
    up_seconds: float
    availability: float | None
    coverage: float | None
    incident_count: int
    longest_incident_seconds: float
    mttr_seconds: float | None
    mtbf_seconds: float | None
    error_budget_used_percent: float | None
    days: tuple[DayShare, ...]
    partial: bool

    def as_dict(self) -> dict:
        """JSON-ready plain data, rounded like ProgrammeUptime.as_dict."""
        return {
            "programmes": self.programmes,
            "programmes_met": self.programmes_met,
            "programmes_missed": self.programmes_missed,
            "period_seconds": _round_seconds(self.period_seconds),
            "maintenance_seconds": _round_seconds(self.maintenance_seconds),
            "late_maintenance_seconds": _round_seconds(self.late_maintenance_seconds),
            "downtime_seconds": _round_seconds(self.downtime_seconds),
            "unknown_seconds": _round_seconds(self.unknown_seconds),
            "up_seconds": _round_seconds(self.up_seconds),
            "availability": _round_ratio(self.availability),
            "coverage": _round_ratio(self.coverage),
            "incident_count": self.incident_count,
            "longest_incident_seconds": _round_seconds(self.longest_incident_seconds),
            "mttr_seconds": _round_seconds(self.mttr_seconds),
            "mtbf_seconds": _round_seconds(self.mtbf_seconds),
            "error_budget_used_percent": _round_percent(self.error_budget_used_percent),
            "days": _days_as_dicts(self.days),
            "partial": self.partial,
        }


def iso_utc(moment: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC ending in Z, e.g. 2026-10-01T00:00:00Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def period_bounds(period: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a calendar month "YYYY-MM" in local time `tz`; ValueError on bad text."""
    match = _PERIOD.fullmatch(period.strip()) if isinstance(period, str) else None
    try:
        if match is None:
            raise ValueError
        year, month = int(match[1]), int(match[2])
        first = date(year, month, 1)
        following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        return _local_midnight(first, tz), _local_midnight(following, tz)
    except (ValueError, OverflowError):
        raise ValueError(f"invalid period {period!r}: expected YYYY-MM, e.g. 2026-10") from None


def range_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end] local days, end inclusive, as UTC [local midnight of start, local midnight after end)."""
    if end < start:
        raise ValueError(f"invalid range: end {end.isoformat()} is before start {start.isoformat()}")
    try:
        return _local_midnight(start, tz), _local_midnight(end + timedelta(days=1), tz)
    except OverflowError:
        raise ValueError(f"invalid range: {start.isoformat()} to {end.isoformat()} is beyond the calendar") from None


def programme_uptime(
    spans: list[StateSpan],
    windows: list[MaintenanceWindow],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    target_percent: float,
    tz: ZoneInfo,
    service_start: datetime | None = None,
    service_end: datetime | None = None,
) -> ProgrammeUptime:
    """Availability of one programme over [start, end), measured up to `now`; all seconds, ratios 0-1.

    Only the part of the period the programme was in service counts, [service_start, service_end)
    (None: no bound): before it existed or after it retired, its time is in no bucket.

    Each instant of [start, min(end, now)) is in one bucket: announced maintenance, else the state then
    (down, up, or unknown, which includes time no span covers; overlapping spans: down > unknown > up).
    `days` lists every local day (in `tz`) overlapping [start, end); days after `now` are all zeros.
    O(n log n) in spans + windows + days: one sort, one sweep.
    """
    t_start, t_end, t_now = _us(start), _us(end), _us(now)
    if t_end <= t_start:
        raise ValueError(f"invalid period: end {iso_utc(end)} is not after start {iso_utc(start)}")
    t_from = t_start if service_start is None else max(t_start, _us(service_start))
    t_measured = min(t_end, t_now) if service_end is None else min(t_end, t_now, _us(service_end))
    day_dates, day_edges = _local_days(start, end, tz)

    n_days = len(day_dates)
    up_us, down_us, maintenance_us, unknown_us = [0] * n_days, [0] * n_days, [0] * n_days, [0] * n_days
    late_us = 0
    incident_bounds: list[tuple[int, int, str]] = []
    late_windows: list[MaintenanceWindow] = []

    if t_measured > t_from:
        events: list[tuple[int, int, int, int]] = []  # (time µs, kind, +1 open / -1 close, span index)
        reasons: list[tuple[int, str]] = []  # per span: (its own start µs, reason), to name an incident
        for index, span in enumerate(spans):
            kind = _STATE_KIND.get(span.state)
            if kind is None:
                raise ValueError(f"invalid state {span.state!r}: expected up, down or unknown")
            began = _us(span.start)
            reasons.append((began, span.reason))
            ended = t_now if span.end is None else _us(span.end)
            lo, hi = max(began, t_from), min(ended, t_measured)
            if lo < hi:
                events.append((lo, kind, 1, index))
                events.append((hi, kind, -1, index))
        for window in windows:
            lo, hi = max(_us(window.start), t_from), min(_us(window.end), t_measured)
            if lo < hi:
                kind = _K_ANNOUNCED if window.announced else _K_LATE
                events.append((lo, kind, 1, -1))
                events.append((hi, kind, -1, -1))
                if kind == _K_LATE:
                    late_windows.append(window)
        events.sort()

        counts = [0] * 5
        active_down: set[int] = set()
        # Local midnights are not events: a stretch that crosses one is shared out between its days
        # (a year has 365 of them per programme, a quarter of the events, and most fall in up time).
        day = bisect_right(day_edges, t_from)
        n_edges = len(day_edges)
        next_edge = day_edges[day] if day < n_edges else t_measured
        incident_start: int | None = None
        incident_reason = ""
        i, n_events = 0, len(events)
        moment = t_from
        while moment < t_measured:
            while i < n_events and events[i][0] == moment:
                _at, kind, delta, index = events[i]
                counts[kind] += delta
                if kind == _K_DOWN:
                    if delta > 0:
                        active_down.add(index)
                    else:
                        active_down.discard(index)
                i += 1
            following = events[i][0] if i < n_events else t_measured
            if counts[_K_ANNOUNCED]:
                bucket = maintenance_us
            elif counts[_K_DOWN]:
                bucket = down_us
                if counts[_K_LATE]:
                    late_us += following - moment
                if incident_start is None:
                    incident_start = moment
                    # The earliest-starting down span open now names the incident.
                    incident_reason = reasons[min(active_down, key=lambda k: (reasons[k][0], k))][1]
            elif counts[_K_UNKNOWN] or not counts[_K_UP]:
                bucket = unknown_us
            else:
                bucket = up_us
            at = moment
            while following > next_edge:  # [at, following) runs past the day's end
                bucket[day] += next_edge - at
                at, day = next_edge, day + 1
                next_edge = day_edges[day] if day < n_edges else t_measured
            bucket[day] += following - at
            if incident_start is not None and (counts[_K_ANNOUNCED] or not counts[_K_DOWN]):
                incident_bounds.append((incident_start, moment, incident_reason))
                incident_start = None
            moment = following
        if incident_start is not None:
            incident_bounds.append((incident_start, t_measured, incident_reason))

    total_us = max(t_measured - t_from, 0)
    m_us, d_us, u_us = sum(maintenance_us), sum(down_us), sum(unknown_us)
    counted_us = total_us - m_us - u_us  # = up + down
    # The brief's availability was (T-M-D)/(T-M). Unknown time is neither up nor down: counting it
    # as up would hide outages of an unwatched programme, as down would punish a broken prober. So
    # it leaves the denominator as well: (T-M-U-D)/(T-M-U), the share of the known time that was up.
    availability = (counted_us - d_us) / counted_us if counted_us > 0 else None
    coverage = (total_us - u_us) / total_us if total_us > 0 else None
    met = None if availability is None else availability * 100 >= target_percent - EPSILON

    incidents = tuple(
        Incident(_datetime(lo), _datetime(hi), _seconds(hi - lo), reason) for lo, hi, reason in incident_bounds
    )
    incident_count = len(incidents)
    up_seconds = _seconds(counted_us - d_us)
    downtime_seconds = _seconds(d_us)
    allowed = _allowed_seconds(target_percent, _seconds(counted_us))
    late_windows.sort(key=lambda w: (w.start, w.id))

    return ProgrammeUptime(
        period_seconds=_seconds(total_us),
        maintenance_seconds=_seconds(m_us),
        late_maintenance_seconds=_seconds(late_us),
        downtime_seconds=downtime_seconds,
        unknown_seconds=_seconds(u_us),
        up_seconds=up_seconds,
        availability=availability,
        coverage=coverage,
        target_percent=target_percent,
        met=met,
        incidents=incidents,
        incident_count=incident_count,
        longest_incident_seconds=max((incident.seconds for incident in incidents), default=0.0),
        mttr_seconds=downtime_seconds / incident_count if incident_count else None,
        mtbf_seconds=up_seconds / incident_count if incident_count else None,
        error_budget_used_percent=100 * downtime_seconds / allowed if allowed > 0 else None,
        late_windows=tuple(late_windows),
        # us / 1_000_000 is _seconds, written out: a year of 200 programmes is 292,000 of them.
        days=tuple(
            DayShare(day, up / 1_000_000, down / 1_000_000, maintenance / 1_000_000, unknown / 1_000_000)
            for day, up, down, maintenance, unknown in zip(day_dates, up_us, down_us, maintenance_us, unknown_us)
        ),
        partial=t_now < t_end,
    )


def rollup(items: list[ProgrammeUptime], *, with_days: bool = True) -> Rollup:
    """Programmes summed: availability = sum(up) / (sum(up) + sum(down)), the time-weighted per-programme form.

    `with_days` False leaves `days` empty: a report's roll-ups are tables, and summing a year's
    days of every ministry only to drop them cost a tenth of the year's report.
    """
    total = sum(item.period_seconds for item in items)
    maintenance = sum(item.maintenance_seconds for item in items)
    unknown = sum(item.unknown_seconds for item in items)
    down = sum(item.downtime_seconds for item in items)
    up = sum(item.up_seconds for item in items)
    incident_count = sum(item.incident_count for item in items)
    budgets = [(item.downtime_seconds, item.error_budget_seconds) for item in items if item.error_budget_seconds > 0]
    allowed = sum(budget for _down, budget in budgets)

    days: dict[date, list[float]] = {}
    for item in items if with_days else ():
        for share in item.days:
            sums = days.setdefault(share.day, [0.0, 0.0, 0.0, 0.0])
            sums[0] += share.up
            sums[1] += share.down
            sums[2] += share.maintenance
            sums[3] += share.unknown

    return Rollup(
        programmes=len(items),
        programmes_met=sum(1 for item in items if item.met is True),
        programmes_missed=sum(1 for item in items if item.met is False),
        period_seconds=total,
        maintenance_seconds=maintenance,
        late_maintenance_seconds=sum(item.late_maintenance_seconds for item in items),
        downtime_seconds=down,
        unknown_seconds=unknown,
        up_seconds=up,
        availability=up / (up + down) if up + down > 0 else None,
        coverage=(total - unknown) / total if total > 0 else None,
        incident_count=incident_count,
        longest_incident_seconds=max((item.longest_incident_seconds for item in items), default=0.0),
        mttr_seconds=down / incident_count if incident_count else None,
        mtbf_seconds=up / incident_count if incident_count else None,
        error_budget_used_percent=100 * sum(d for d, _budget in budgets) / allowed if budgets else None,
        days=tuple(DayShare(day, *days[day]) for day in sorted(days)),
        partial=any(item.partial for item in items),
    )


def _allowed_seconds(target_percent: float, counted_seconds: float) -> float:
    return (1 - target_percent / 100) * counted_seconds


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@lru_cache(maxsize=64)
def _local_days(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[tuple[date, ...], tuple[int, ...]]:
    """The local days overlapping [start, end), and the µs of each midnight after the first day's."""
    # Cached: every programme of a report shares the period, and a year is 365 time-zone conversions.
    first = start.astimezone(tz).date()
    last = (end - _MICROSECOND).astimezone(tz).date()
    days, edges = [first], []
    day = first + timedelta(days=1)
    while day <= last:
        days.append(day)
        edges.append(_us(_local_midnight(day, tz)))
        day += timedelta(days=1)
    return tuple(days), tuple(edges)


def _us(moment: datetime) -> int:
    # Integer microseconds keep the sweep exact: the buckets add up to T to the microsecond.
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: availability maths needs timezone-aware times")
    return (moment - _EPOCH) // _MICROSECOND


def _datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _seconds(us: int) -> float:
    # The same correctly rounded int / int division as timedelta(microseconds=us).total_seconds(), without the object.
    return us / 1_000_000


def _round_seconds(value: float | None) -> float | None:
    # Whole seconds (most day shares) are already what round() would give, and round() is slow.
    if value is None or (value.__class__ is float and value.is_integer()):
        return value
    return round(value, 3)


def _round_ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _round_percent(value: float | None) -> float | None:
    # A percentage is a ratio x 100: 4 decimals carry the same precision as a ratio's 6.
    return None if value is None else round(value, 4)
