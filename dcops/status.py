"""The status page: each programme's state now and over 90 days, incidents and announced maintenance,
for the public or for the ministries, published as a static site with an Atom and an iCalendar feed.

What the public page shows (audience "public"):
- the programmes of classification public or internal only (a confidential or secret programme is
  not on it at all: neither its state, nor its bars, nor its maintenance);
- of their incidents, only those an operator released (`dcops incident update N --release`), with
  their timed updates (what was said and when, not who said it); the probe's own reason, the cause,
  action, attribution and post-incident review stay on the ministries' page;
- announced maintenance (recorded before it began) of the programmes it shows, without the
  cluster's name or the change reference.
The ministries' page (audience "ministries") carries everything: every live programme, every
incident, with what operators know of it.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select, union
from sqlalchemy.engine import Connection

from dcops import collector, display
from dcops.db import iso_utc, utcnow
from dcops.errors import UserError

if TYPE_CHECKING:
    from dcops.access import Actor
    from markupsafe import Markup

    from dcops.db import Database
    from dcops.settings import Settings

AUDIENCES = ("public", "ministries")
DEFAULT_DAYS = 90
MAX_DAYS = 366
# Incidents ended this many days ago or less are listed as recent; maintenance as well.
RECENT_DAYS = 14
# A day is "no data" when at least this share of its measured time had no results (less is
# told in the day's words: "no data 20 min"); any downtime makes it a "down" day.
NO_DATA_DAY_SHARE = 0.5
# The files a publish writes, each replaced atomically.
INDEX, FEED, CALENDAR, STYLESHEET = "index.html", "feed.atom", "maintenance.ics", "style.css"
# The stable part of every feed entry's id and calendar event's UID (RFC 4151 tag URIs).
TAG_AUTHORITY = "dcops"

STATE_WORDS = {"up": "Up", "down": "Down", "maintenance": "Maintenance", "nodata": "No data",
               "none": "Not in service"}
INCIDENT_STATUS_WORDS = {"new": "Detected", "investigating": "Investigating", "identified": "Identified",
                         "monitoring": "Monitoring", "resolved": "Resolved", "reopened": "Reopened",
                         "merged": "Merged"}
# Statuses an operator is still working in: such an incident is current even after the programme is up.
WORKING_STATUSES = ("investigating", "identified", "monitoring", "reopened")
# The pages list at most this many of the recent incidents nobody annotated (the newest): a bad
# fortnight of a thousand programmes has thousands, which no reader goes through (and which made the
# page megabytes on a phone). Annotated ones are all told; the JSON view keeps every incident.
PLAIN_LISTED = 100

# Text from people and files: no control characters (but line breaks and tabs), no bidirectional
# overrides, nothing XML 1.0 cannot carry (lone surrogates, U+FFFE, U+FFFF).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufffe\uffff]")


def clean_text(value: Any) -> str:
    """Text fit for a page, a feed and a calendar: control and invisible direction characters
    dropped, CR LF and CR made LF; None -> ""."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


# --- the view: plain data ----------------------------------------------------------------------


def day_cell(share) -> dict:
    """One day of the bar from a DayShare (seconds per bucket): its worst state and its minutes.

    State: "none" when no time of it was measured (before the programme's service, or to come),
    "down" when it had any downtime, "nodata" when at least NO_DATA_DAY_SHARE of its measured time
    had no results, "maintenance" when it had announced maintenance, else "up". Minutes are whole,
    rounded up, so that 20 s of downtime reads "1 min", never "0 min".
    """
    return cell_of(share.day.isoformat(), share.up, share.down, share.maintenance, share.unknown)


def cell_of(day: str, up: float, down: float, maintenance: float, unknown: float, per_minute: float = 60) -> dict:
    """day_cell from the day's ISO date and its four amounts, in seconds (or in units `per_minute` to the minute)."""
    measured = up + down + maintenance + unknown
    if measured <= 0:
        state = "none"
    elif down > 0:
        state = "down"
    elif unknown >= NO_DATA_DAY_SHARE * measured:
        state = "nodata"
    elif maintenance > 0:
        state = "maintenance"
    else:
        state = "up"
    return {"day": day, "state": state,
            "down_minutes": math.ceil(down / per_minute - 1e-9) if down > 0 else 0,
            "maintenance_minutes": math.ceil(maintenance / per_minute - 1e-9) if maintenance > 0 else 0,
            "nodata_minutes": math.ceil(unknown / per_minute - 1e-9) if unknown > 0 else 0}


def _minutes(seconds: float) -> int:
    return math.ceil(seconds / 60 - 1e-9) if seconds > 0 else 0


def _state_now(history: "_History", now: datetime) -> tuple[str, datetime | None, str]:
    """(state, since, reason) of a programme now, from its last span as read at `now` (settled)."""
    if not history.has_checks:
        return "nodata", None, "not monitored"
    state, since, reason = "nodata", None, "no results"
    last = history.last
    if last is not None and last[0] <= now and (last[1] is None or last[1] > now):
        state = "nodata" if last[2] == "unknown" else last[2]
        since, reason = last[0], last[3]
    if state != "up" and any(lo <= _us(now) < hi for lo, hi in history.windows):
        return "maintenance", since, reason
    return state, since, reason


def local_text(moment: datetime | None, tz: ZoneInfo) -> str:
    """A time as a reader of the data centre's zone reads it: '12 Mar 2026 14:05'."""
    if moment is None:
        return ""
    local = moment.astimezone(tz)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local.hour:02d}:{local.minute:02d}"


# The months as strftime's %b writes them in the C locale (the page is in English whatever the host's locale).
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def duration_text(seconds: float) -> str:
    """A length of time in words: 42 min, 3 h 5 min, 2 days 4 h."""
    minutes = _minutes(seconds)
    if minutes < 60:
        return f"{minutes}\u00a0min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}\u00a0h" + (f" {minutes}\u00a0min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days}\u00a0days" + (f" {hours}\u00a0h" if hours else "")


def _zone_text(tz: ZoneInfo, now: datetime) -> str:
    offset = now.astimezone(tz).strftime("%z")
    return f"{tz.key}, UTC{offset[:3]}:{offset[3:]}"


# --- reading the history: a light query layer and a linear sweep over local days ---------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)
_K_DOWN, _K_UNKNOWN, _K_UP, _K_MAINTENANCE = range(4)
_KIND = {"down": _K_DOWN, "unknown": _K_UNKNOWN, "up": _K_UP}


def _us(moment) -> int:
    """A stored time (SQLite's text, a naive UTC or an aware datetime) as Unix microseconds."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        return (moment - _EPOCH_NAIVE) // _MICRO
    return (moment - _EPOCH) // _MICRO


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _epoch_us(conn: Connection, column):
    """A UTCDateTime column read as whole Unix microseconds: on PostgreSQL worked out by the
    database (its numeric epoch, exact); on SQLite the stored text itself ('YYYY-MM-DD
    HH:MM:SS.ffffff'), which _Microseconds parses (SQLite's own strftime takes twice as long)."""
    from sqlalchemy import BigInteger, String, cast, extract, type_coerce

    if conn.dialect.name == "sqlite":
        return type_coerce(column, String)
    return cast(extract("epoch", column) * 1_000_000, BigInteger)


class _Microseconds(dict):
    """Stored times to Unix microseconds, each text parsed once (a span's end is the next one's start)."""

    def __missing__(self, text: str) -> int:
        value = self[text] = (datetime.fromisoformat(text) - _EPOCH_NAIVE) // _MICRO
        return value

    def of(self, value) -> int | None:
        """`value` (text, microseconds or None) as microseconds."""
        if value is None or value.__class__ is int:
            return value
        return self[value]


class _History:
    """One programme as the status page reads it: facts, its spans (µs, settled at now) and its
    announced maintenance windows (µs, merged)."""

    __slots__ = ("id", "slug", "name", "short_name", "classification", "ministry", "ministry_name", "tier",
                 "target_percent", "service_from", "has_checks", "spans", "windows", "last")

    def __init__(self, row):
        (self.id, self.slug, self.name, self.short_name, self.classification, self.ministry, self.ministry_name,
         self.tier, self.target_percent) = row[:9]
        self.service_from: int | None = None
        self.has_checks = bool(row[11])
        self.spans: list[tuple[int, int | None, str, str]] = []  # (from, to or None: open, state, reason)
        self.windows: list[tuple[int, int]] = []
        self.last: tuple[datetime, datetime | None, str, str] | None = None


def _read_histories(conn: Connection, *, start: datetime, end: datetime, now: datetime) -> list[_History]:
    """The live programmes (not retired, in service by `end`) with their programme-level spans
    overlapping [start, end), the open one settled by the read-time rule (health.status.settle:
    after a check's last result and its grace, unknown), and their announced windows.

    The report's query layer (reports.queries.uptime_inputs) reads the same spans, and more: the
    incident records of the whole period, late windows and what attribution needs; this reads
    only what the page draws, with times as plain microseconds (a minute's publish of 1,000
    programmes reads some 50,000 spans)."""
    from sqlalchemy import String, and_, exists, func, or_, type_coerce

    from dcops.health.status import checks_now, settle
    from dcops.models import (Allocation, Endpoint, Host, MaintenanceWindow, Ministry, Programme, SlaTier,
                              StateInterval)

    p, m, t = Programme.__table__, Ministry.__table__, SlaTier.__table__
    i, e, w = StateInterval.__table__, Endpoint.__table__, MaintenanceWindow.__table__
    first_state = (select(func.min(i.c.started_at)).where(i.c.programme_id == p.c.id, i.c.endpoint_id.is_(None))
                   .scalar_subquery())
    rows = conn.execute(
        select(p.c.id, p.c.slug, p.c.name, p.c.short_name, p.c.classification, m.c.code, m.c.name, p.c.tier,
               t.c.sla_target_percent, type_coerce(p.c.activated_at, String), type_coerce(first_state, String),
               exists().where(e.c.programme_id == p.c.id))
        .join(m, m.c.id == p.c.ministry_id).join(t, t.c.tier == p.c.tier)
        .where(p.c.status != "retired")).all()
    t_end = _us(end)
    programmes: dict[int, _History] = {}
    for row in rows:
        starts = [_us(moment) for moment in (row[9], row[10]) if moment is not None]
        if not starts or min(starts) >= t_end:
            continue  # never in service, or not yet
        history = _History(row)
        history.service_from = min(starts)
        programmes[history.id] = history
    result = conn.execute(
        select(i.c.programme_id, i.c.state, _epoch_us(conn, i.c.started_at), _epoch_us(conn, i.c.ended_at),
               i.c.reason)
        .where(i.c.endpoint_id.is_(None), i.c.started_at < end, or_(i.c.ended_at.is_(None), i.c.ended_at > start))
        .order_by(i.c.programme_id, i.c.started_at))
    # The driver's own rows: every column is an integer or text, nothing for SQLAlchemy to convert
    # (its rows cost a fifth of the reading of 50,000 spans).
    spans = result.cursor.fetchall()
    result.close()
    opened: dict[int, tuple] = {}
    times = _Microseconds()
    parse = times.of
    # Times as text (SQLite): each looked up, and parsed the first time it is seen.
    at = times.__getitem__ if conn.dialect.name == "sqlite" else int
    for programme_id, rows in groupby(spans, itemgetter(0)):
        history = programmes.get(programme_id)
        if history is None:
            continue
        append = history.spans.append
        for _programme_id, state, began, ended, reason in rows:
            if ended is None:
                opened[programme_id] = (state, at(began), reason or "")
            else:
                append((at(began), at(ended), state, reason or ""))
    checks = checks_now(conn, opened)
    for programme_id, (state, began, reason) in opened.items():
        history = programmes[programme_id]
        for piece in settle(state, _time(began), reason, checks.get(programme_id, []), now):
            history.spans.append((_us(piece.start), None if piece.end is None else _us(piece.end), piece.state,
                                  piece.reason))
    for history in programmes.values():
        if history.spans:
            lo, hi, state, reason = history.spans[-1]
            history.last = (_time(lo), None if hi is None else _time(hi), state, reason)

    on_cluster: dict[int, list[int]] = defaultdict(list)
    allocation, host = Allocation.__table__, Host.__table__
    for programme_id, cluster_id in conn.execute(union(select(allocation.c.programme_id, allocation.c.cluster_id),
                                                       select(host.c.programme_id, host.c.cluster_id))):
        if programme_id in programmes and cluster_id is not None:
            on_cluster[cluster_id].append(programme_id)
    for programme_id, cluster_id, lo, hi in conn.execute(
            select(w.c.programme_id, w.c.cluster_id, _epoch_us(conn, w.c.starts_at), _epoch_us(conn, w.c.ends_at))
            .where(w.c.cancelled_at.is_(None), w.c.starts_at < end, w.c.ends_at > start,
                   and_(w.c.recorded_at <= w.c.starts_at))):
        window = (parse(lo), parse(hi))
        for target in ([programme_id] if programme_id is not None else on_cluster.get(cluster_id, ())):
            history = programmes.get(target)
            if history is not None:
                history.windows.append(window)
    for history in programmes.values():
        history.windows = _merged(history.windows)
    return list(programmes.values())


def _merged(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def day_seconds(spans: list[tuple[int, int | None, str, str]], windows: list[tuple[int, int]], edges: list[int],
                *, t_from: int, t_to: int, t_now: int) -> list[list[int]] | None:
    """Microseconds down, unknown, up and under announced maintenance in each day [edges[k], edges[k+1]),
    over the measured time [t_from, t_to): what reports.uptime.programme_uptime gives as its days,
    in one linear pass (announced maintenance first, then the state; time no span covers is
    unknown; an open span lasts to `t_now`). `spans` sorted by start, `windows` merged and sorted.
    None when two spans overlap: the caller then takes programme_uptime's sweep, which orders states.
    """
    days = len(edges) - 1
    totals = [[0] * days for _ in range(4)]
    if t_to <= t_from:
        return totals

    def add(bucket: list[int], lo: int, hi: int, sign: int = 1) -> None:
        k = bisect_right(edges, lo) - 1
        following = edges[k + 1]
        while hi > following:  # across midnight: cut at each day's edge
            bucket[k] += sign * (following - lo)
            lo, k = following, k + 1
            following = edges[k + 1]
        bucket[k] += sign * (hi - lo)

    starts: list[int] = []
    pieces: list[tuple[int, int, list[int]]] = []
    unknown = totals[_K_UNKNOWN]
    buckets = {state: totals[kind] for state, kind in _KIND.items()}
    cursor, previous_end = t_from, None
    # Spans are sorted and do not overlap: the day of each piece only moves forward (no bisection).
    k = bisect_right(edges, t_from) - 1
    following = edges[k + 1]
    for lo, hi, state, _reason in spans:
        hi = t_now if hi is None else hi
        if previous_end is not None and lo < previous_end:
            return None
        previous_end = hi
        if lo < cursor:
            lo = cursor
        if hi > t_to:
            hi = t_to
        if hi <= lo:
            continue
        bucket = buckets.get(state)
        if bucket is None:
            raise ValueError(f"invalid state {state!r}: expected up, down or unknown")
        if lo > cursor:  # time no span covers
            starts.append(cursor)
            pieces.append((cursor, lo, unknown))
            while lo > following:
                unknown[k] += following - cursor
                cursor, k = following, k + 1
                following = edges[k + 1]
            unknown[k] += lo - cursor
        while lo >= following:  # the piece begins on a later day
            k += 1
            following = edges[k + 1]
        starts.append(lo)
        pieces.append((lo, hi, bucket))
        cursor = hi
        while hi > following:  # across midnight: cut at each day's edge
            bucket[k] += following - lo
            lo, k = following, k + 1
            following = edges[k + 1]
        bucket[k] += hi - lo
    if cursor < t_to:
        add(unknown, cursor, t_to)
        starts.append(cursor)
        pieces.append((cursor, t_to, unknown))
    # Announced maintenance takes its time from whatever state the programme was in.
    maintenance = totals[_K_MAINTENANCE]
    for lo, hi in windows:
        lo, hi = max(lo, t_from), min(hi, t_to)
        if hi <= lo:
            continue
        add(maintenance, lo, hi)
        index = max(bisect_right(starts, lo) - 1, 0)
        while index < len(pieces) and pieces[index][0] < hi:
            piece_lo, piece_hi, bucket = pieces[index]
            overlap_lo, overlap_hi = max(lo, piece_lo), min(hi, piece_hi)
            if overlap_lo < overlap_hi:
                add(bucket, overlap_lo, overlap_hi, -1)
            index += 1
    return totals


@lru_cache(maxsize=4 * MAX_DAYS)
def _plain_cell(day: str, state: str) -> dict:
    """The cell of a day all up (or not in service at all): one dict shared by every programme's
    bar (cells are read, never changed: remembered past days share theirs between views too)."""
    return {"day": day, "state": state, "down_minutes": 0, "maintenance_minutes": 0, "nodata_minutes": 0}


def _cells_of(totals: list[list[int]], days: list[str]) -> list[dict]:
    """cell_of for each day of day_seconds' totals (inlined: 90 days of 1,000 programmes are 90,000 cells)."""
    down, unknown, up, maintenance = totals
    cells, ceil, share, minute, plain = [], math.ceil, NO_DATA_DAY_SHARE, 60_000_000, _plain_cell
    append = cells.append
    for day, u, d, m, n in zip(days, up, down, maintenance, unknown):
        if not (d or m or n):  # most days: all up, or not in service
            append(plain(day, "up" if u > 0 else "none"))
            continue
        measured = u + d + m + n
        state = ("none" if measured <= 0 else "down" if d > 0 else "nodata" if n >= share * measured
                 else "maintenance" if m > 0 else "up")
        append({"day": day, "state": state, "down_minutes": ceil(d / minute - 1e-9) if d > 0 else 0,
                      "maintenance_minutes": ceil(m / minute - 1e-9) if m > 0 else 0,
                      "nodata_minutes": ceil(n / minute - 1e-9) if n > 0 else 0})
    return cells


class PastDays:
    """The days before today of each programme's bar, remembered by what they were computed from.

    Its key is the whole input of those days (the programme's spans and announced windows as cut
    at today's local midnight, its start of service, the days' edges), so a remembered result is
    used only for exactly the same history: a span imported into the past, a window announced,
    a check fallen silent yesterday all make a new key. Only today is then computed afresh each
    minute. `dcops serve` keeps one across its publishes; a one-off publish starts empty.
    """

    def __init__(self, size: int = 8192):
        self.size = size
        self._found: dict[tuple, tuple[list[dict], int, int]] = {}

    def get(self, key: tuple, compute) -> tuple[list[dict], int, int] | None:
        found = self._found.get(key)
        if found is None:
            found = compute()
            if found is None:
                return None
            if len(self._found) >= self.size:
                self._found.pop(next(iter(self._found)))  # the oldest
            self._found[key] = found
        return found


def _cells(history: _History, edges: list[int], days: list[str], *, t_from: int, t_to: int, t_now: int,
           tz: ZoneInfo, start: datetime, end: datetime, now: datetime,
           past: PastDays | None = None) -> tuple[list[dict], float | None]:
    """The programme's day cells (cell_of) and its availability over the days (0-1, None without data).

    Given `past`, the days before today come from it (computed once for the same history) and
    only today is swept; without, all days are swept at once. The two give the same cells."""
    if past is not None and len(edges) > 2:
        midnight = edges[-2]
        before = tuple((lo, min(t_now if hi is None else hi, midnight), state, "")
                       for lo, hi, state, _reason in history.spans if lo < midnight)
        key = (before, tuple(w for w in history.windows if w[0] < midnight), t_from, tuple(edges[:-1]))

        def compute():
            totals = day_seconds(list(before), history.windows, edges[:-1], t_from=t_from,
                                 t_to=min(t_to, midnight), t_now=min(t_now, midnight))
            if totals is None:
                return None
            return _cells_of(totals, days[:-1]), sum(totals[2]), sum(totals[0])

        found = past.get(key, compute)
        if found is not None:
            cells, up, down = found
            today = day_seconds([span for span in history.spans if span[1] is None or span[1] > midnight],
                                history.windows, edges[-2:], t_from=max(t_from, midnight), t_to=t_to, t_now=t_now)
            if today is not None:
                up, down = up + today[2][0], down + today[0][0]
                return [*cells, *_cells_of(today, days[-1:])], (up / (up + down) if up + down > 0 else None)
    totals = day_seconds(history.spans, history.windows, edges, t_from=t_from, t_to=t_to, t_now=t_now)
    if totals is None:  # overlapping spans (a history written by hand): the report's own sweep
        from dcops.reports.uptime import MaintenanceWindow, StateSpan, programme_uptime

        figures = programme_uptime(
            [StateSpan(state, _time(lo), None if hi is None else _time(hi), reason)
             for lo, hi, state, reason in history.spans],
            [MaintenanceWindow(0, _time(lo), _time(hi), _time(lo)) for lo, hi in history.windows],
            start=start, end=end, now=now, target_percent=history.target_percent, tz=tz,
            service_start=_time(history.service_from))
        return [day_cell(share) for share in figures.days], figures.availability
    counted = sum(totals[2]) + sum(totals[0])
    return _cells_of(totals, days), (sum(totals[2]) / counted if counted > 0 else None)


def status_view(conn: Connection, *, now: datetime, tz: ZoneInfo, audience: str, days: int = DEFAULT_DAYS,
                past: PastDays | None = None) -> dict:
    """The status page's data, as read at `now`, for `audience` ("public" or "ministries").

    Programmes in service grouped by ministry, each with its state now, one cell per local day
    of the last `days` (today last, partial), and its availability over them (a 0-1 ratio; None
    without data); the current incidents (still down, or still worked on) and those of the last
    RECENT_DAYS days, each with its timed updates; announced maintenance under way and to come
    (and of the last RECENT_DAYS days, for the feeds). What the public sees: the module's docstring.
    All text is cleaned (clean_text); times are ISO 8601 UTC, with the local text beside them.
    `past`: the days before today remembered from an earlier call (PastDays), for the same result sooner.
    """
    from dcops.incidents import UNPUBLISHED_CLASSIFICATIONS, as_dict, records_between, updates_of
    from dcops.reports.uptime import range_bounds

    if audience not in AUDIENCES:
        raise UserError(f"--audience: public or ministries, not {audience!r}")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"days: from 1 to {MAX_DAYS}, not {days}")
    public = audience == "public"
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start, end = range_bounds(first, today, tz)
    histories = _read_histories(conn, start=start, end=end, now=now)
    days_list = [first + timedelta(days=k) for k in range(days)]
    edges = [_us(range_bounds(day, day, tz)[0]) for day in days_list] + [_us(end)]
    t_now = _us(now)
    day_names = [day.isoformat() for day in days_list]

    shown = {}
    for history in histories:
        if public and history.classification in UNPUBLISHED_CLASSIFICATIONS:
            continue
        shown[history.id] = (history, history.classification)

    counts = {state: 0 for state in ("up", "down", "maintenance", "nodata")}
    ministries: dict[str, dict] = {}
    names: dict[int, str] = {}
    for programme_id, (history, classification) in shown.items():
        cells, availability = _cells(history, edges, day_names, t_from=max(edges[0], history.service_from),
                                     t_to=min(_us(end), t_now), t_now=t_now, tz=tz, start=start, end=end, now=now,
                                     past=past)
        states = [cell["state"] for cell in cells]
        state, since, reason = _state_now(history, now)
        counts[state] += 1
        label = clean_text(history.short_name or history.name)
        names[programme_id] = label
        entry = {
            "slug": history.slug, "name": clean_text(history.name), "label": label,
            "state": state, "state_word": STATE_WORDS[state],
            "since": iso_utc(since) if since is not None else None, "since_text": local_text(since, tz),
            "availability": None if availability is None else round(availability, 6),
            "availability_text": display.share(availability),
            "target_percent": history.target_percent,
            "days": cells,
            "days_down": states.count("down"),
            "days_nodata": states.count("nodata"),
            "days_maintenance": states.count("maintenance"),
        }
        if not public:
            entry.update(classification=classification, reason=clean_text(reason), tier=history.tier)
        group = ministries.setdefault(history.ministry, {"code": history.ministry,
                                                         "name": clean_text(history.ministry_name),
                                                         "programmes": []})
        group["programmes"].append(entry)
    groups = sorted(ministries.values(), key=lambda g: (g["name"].casefold(), g["code"]))
    for group in groups:
        group["programmes"].sort(key=lambda p: (p["label"].casefold(), p["slug"]))
        group["counts"] = {state: sum(1 for p in group["programmes"] if p["state"] == state) for state in counts}

    incidents = _incidents(conn, shown, names, now=now, tz=tz, public=public, as_dict=as_dict,
                           records_between=records_between, updates_of=updates_of)
    maintenance = _maintenance(conn, shown, names, now=now, tz=tz, public=public)
    total = sum(counts.values())
    return {
        "audience": audience,
        "generated_at": iso_utc(now),
        "generated_text": local_text(now, tz),
        "timezone": tz.key,
        "zone_text": _zone_text(tz, now),
        "days": days,
        "first_day": first.isoformat(),
        "last_day": today.isoformat(),
        "programme_count": total,
        "counts": counts,
        "ministries": groups,
        "incidents": {"current": [i for i in incidents if i["current"]],
                      "recent": [i for i in incidents if not i["current"]]},
        "maintenance": {"in_progress": [w for w in maintenance if w["phase"] == "in progress"],
                        "upcoming": [w for w in maintenance if w["phase"] == "upcoming"],
                        "all": maintenance},
    }


def _incidents(conn: Connection, shown: dict, names: dict[int, str], *, now: datetime, tz: ZoneInfo,
               public: bool, as_dict, records_between, updates_of) -> list[dict]:
    """The incidents of the shown programmes still open or ended in the last RECENT_DAYS days, newest first."""
    since = now - timedelta(days=RECENT_DAYS)
    records = records_between(conn, since, now + timedelta(microseconds=1), programme_ids=list(shown))
    chosen = []
    for programme_id, rows in records.items():
        for row in rows:
            incident = as_dict(row, now=now)
            if public and not (incident["released"] and incident["publishable"]):
                continue
            chosen.append((programme_id, incident))
    updates = updates_of(conn, [incident["number"] for _pid, incident in chosen]) if chosen else {}
    found = []
    for programme_id, incident in chosen:
        started = _parse(incident["start"])
        ended = _parse(incident["end"]) if incident["end"] else None
        label = names[programme_id]
        said = []
        for update in updates.get(incident["number"], []):
            at = _parse(update["at"])
            item = {"at": update["at"], "at_text": local_text(at, tz), "status": update["status"],
                    "status_word": INCIDENT_STATUS_WORDS.get(update["status"], update["status"]),
                    "note": clean_text(update["note"])}
            if not public:
                item["by"] = clean_text(update["by"])
            said.append(item)
        current = incident["ongoing"] or incident["status"] in WORKING_STATUSES
        view = {
            "number": incident["number"], "programme": incident["programme"], "label": label,
            "ministry": incident["ministry"],
            "title": clean_text(incident["title"]) or f"{label}: {'unavailable' if incident['ongoing'] else 'outage'}",
            "start": incident["start"], "start_text": local_text(started, tz),
            "end": incident["end"], "end_text": local_text(ended, tz),
            "ongoing": incident["ongoing"], "current": current,
            "seconds": incident["seconds"], "duration_text": duration_text(incident["seconds"]),
            "status": incident["status"],
            "status_word": INCIDENT_STATUS_WORDS.get(incident["status"], incident["status"]),
            "updates": said,
            # An operator said something of it: told in full; the others are rows of a table.
            "annotated": bool(said or incident["title"] or incident["cause"] or incident["action"]),
            "updated": max([incident["start"], *(u["at"] for u in said), *([incident["end"]] if ended else [])]),
        }
        if not public:
            view.update(reason=clean_text(incident["reason"]), cause=clean_text(incident["cause"]),
                        action=clean_text(incident["action"]), attributed_to=clean_text(incident["attributed_to"]),
                        postmortem_url=clean_text(incident["postmortem_url"]) or None,
                        released=incident["released"])
        found.append(view)
    found.sort(key=lambda i: (i["start"], i["number"]), reverse=True)
    return found


def recent_listing(recent: list[dict], limit: int = PLAIN_LISTED) -> dict:
    """How a page lists the recent incidents (newest first, as the view has them): every annotated
    one told in full ("annotated"), and of the others the newest `limit` as rows ("plain"), with
    how many others there are in all ("plain_count")."""
    annotated = [incident for incident in recent if incident["annotated"]]
    plain = [incident for incident in recent if not incident["annotated"]]
    return {"annotated": annotated, "plain": plain[:limit], "plain_count": len(plain)}


def _maintenance(conn: Connection, shown: dict, names: dict[int, str], *, now: datetime, tz: ZoneInfo,
                 public: bool) -> list[dict]:
    """Announced windows (recorded before they began) ending after RECENT_DAYS days ago, soonest first;
    cancelled ones too (phase "cancelled"), so that a subscribed calendar drops them. Public: only
    those of the shown programmes, naming only those."""
    from dcops.models import Allocation, Cluster, Host, MaintenanceWindow

    window, cluster = MaintenanceWindow.__table__, Cluster.__table__
    rows = conn.execute(
        select(window.c.id, window.c.programme_id, window.c.cluster_id, cluster.c.name.label("cluster"),
               window.c.starts_at, window.c.ends_at, window.c.recorded_at, window.c.change_ref, window.c.reason,
               window.c.cancelled_at)
        .outerjoin(cluster, cluster.c.id == window.c.cluster_id)
        .where(window.c.ends_at > now - timedelta(days=RECENT_DAYS), window.c.recorded_at <= window.c.starts_at)
        .order_by(window.c.starts_at, window.c.id)).all()
    on_cluster: dict[int, set[int]] = defaultdict(set)
    clusters = sorted({r.cluster_id for r in rows if r.cluster_id is not None})
    if clusters:
        allocation, host = Allocation.__table__, Host.__table__
        placed = union(select(allocation.c.programme_id, allocation.c.cluster_id)
                       .where(allocation.c.cluster_id.in_(clusters)),
                       select(host.c.programme_id, host.c.cluster_id).where(host.c.cluster_id.in_(clusters)))
        for programme_id, cluster_id in conn.execute(placed):
            if programme_id is not None:
                on_cluster[cluster_id].add(programme_id)
    found = []
    for row in rows:
        affected = ({row.programme_id} if row.programme_id is not None else on_cluster.get(row.cluster_id, set()))
        affected = sorted((names[i] for i in affected if i in shown), key=str.casefold)
        if public and not affected:
            continue
        start, end = row.starts_at, row.ends_at
        if row.cancelled_at is not None:
            phase = "cancelled"
        elif start <= now < end:
            phase = "in progress"
        elif now < start:
            phase = "upcoming"
        else:
            phase = "past"
        item = {"id": row.id, "start": iso_utc(start), "start_text": local_text(start, tz), "end": iso_utc(end),
                "end_text": local_text(end, tz), "duration_text": duration_text((end - start).total_seconds()),
                "phase": phase, "reason": clean_text(row.reason), "programmes": affected,
                "recorded_at": iso_utc(row.recorded_at),
                "cancelled_at": iso_utc(row.cancelled_at) if row.cancelled_at is not None else None}
        if not public:
            item.update(cluster=clean_text(row.cluster) or None, change_ref=clean_text(row.change_ref))
        found.append(item)
    return found


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- rendering: pure, from the view -----------------------------------------------------------


def bar_runs(cells: list[dict]) -> list[tuple[int, int, str]]:
    """The bar's marks, (x, width, state): consecutive days of one state drawn as one mark (the
    days' words are written out beside the bar, not in the marks)."""
    return _runs_of([cell["state"] for cell in cells])


def _runs_of(states: Iterable[str]) -> list[tuple[int, int, str]]:
    runs, x = [], 0
    for state, group in groupby(states):
        width = len(list(group))
        runs.append((x, width, state))
        x += width
    return runs


@lru_cache(maxsize=1024)
def _marks(states: tuple[str, ...]) -> str:
    """The SVG marks of a bar's states (many bars are alike: all up, or up since the same day)."""
    return "".join(f'<rect class="d-{state}" x="{x}" width="{width}" height="10"/>'
                   for x, width, state in _runs_of(states))


def bar_svg(programme: dict, days: int) -> "Markup":
    """A programme's days as an inline SVG: one mark per run of days in one state, coloured by the
    stylesheet (d-up, d-down, d-maintenance, d-nodata hatched, d-none outlined), named in words
    for screen readers (bar_summary)."""
    from markupsafe import Markup, escape

    states = [cell["state"] for cell in programme["days"]]
    return Markup(f'<svg class="bar" viewBox="0 0 {int(days)} 10" preserveAspectRatio="none" role="img" '
                  f'aria-label="{escape(_summary(programme, states))}">{_marks(tuple(states))}</svg>')


@lru_cache(maxsize=4096)
def _words(state: str, down: int, maintenance: int, nodata: int) -> str:
    if state == "none":
        return STATE_WORDS["none"]
    parts = {}
    if down:
        parts["down"] = f"down {duration_text(down * 60)}"
    if maintenance:
        parts["maintenance"] = f"maintenance {duration_text(maintenance * 60)}"
    if nodata:
        parts["nodata"] = f"no data {duration_text(nodata * 60)}"
    if state not in parts:
        return f"{STATE_WORDS[state]} ({', '.join(parts.values())})" if parts else STATE_WORDS[state]
    # The day's state says its own minutes first, once: "Down 12 min, maintenance 1 h", not "Down (down 12 min)".
    first = parts.pop(state)
    return ", ".join([first[0].upper() + first[1:], *parts.values()])


def cell_words(cell: dict) -> str:
    """A day in words: 'Down (down 42 min)', 'Maintenance (maintenance 2 h)', 'No data', 'Up (no data 20 min)'."""
    return _words(cell["state"], cell["down_minutes"], cell["maintenance_minutes"], cell["nodata_minutes"])


@lru_cache(maxsize=1024)
def _day_text(day: str) -> str:
    moment = date.fromisoformat(day)
    return f"{moment.day} {moment:%b}"


def bar_summary(programme: dict) -> str:
    """The 90 days of a programme in one line of words, for screen readers and print."""
    return _summary(programme, [cell["state"] for cell in programme["days"]])


def _summary(programme: dict, states: list[str]) -> str:
    parts = [f"{states.count('up')} up"]
    for key, word in (("days_down", "with downtime"), ("days_maintenance", "with maintenance"),
                      ("days_nodata", "without data")):
        if programme[key]:
            parts.append(f"{programme[key]} {word}")
    missing = states.count("none")
    if missing:
        parts.append(f"{missing} not in service")
    return f"{len(states)} days: " + ", ".join(parts)


def notable_days(programme: dict) -> list[str]:
    """The days of downtime, maintenance or no data, each in words ('12 Mar: down 42 min')."""
    return [f"{_day_text(c['day'])}: {cell_words(c)}" for c in programme["days"]
            if c["state"] in ("down", "maintenance", "nodata")]


def headline(view: dict) -> str:
    """The page's first sentence: 'All 812 programmes are up.' or '2 down, 1 under maintenance, ...'."""
    counts, total = view["counts"], view["programme_count"]
    if total == 0:
        return "No programme is listed."
    if counts["up"] == total:
        return f"All {total:,} programmes are up."
    parts = []
    for state, word in (("down", "down"), ("maintenance", "under maintenance"), ("nodata", "without data now"),
                        ("up", "up")):
        if counts[state]:
            parts.append(f"{counts[state]:,} {word}")
    return f"Of {total:,} programmes: " + ", ".join(parts) + "."


def atom_entries(view: dict) -> list[dict]:
    """One feed entry per incident update and per announced maintenance window, newest first."""
    entries = []
    for incident in [*view["incidents"]["current"], *view["incidents"]["recent"]]:
        for index, update in enumerate(incident["updates"], start=1):
            entries.append({
                "id": f"tag:{TAG_AUTHORITY},{update['at'][:10]}:incident/{incident['number']}/update/{index}",
                "title": f"{incident['label']}: {update['status_word']}: {incident['title']}",
                "updated": update["at"], "published": update["at"],
                "link": f"{INDEX}#incident-{incident['number']}",
                "summary": update["note"] or f"{update['status_word']} ({update['at_text']}).",
                "category": "incident",
            })
    for window in view["maintenance"]["all"]:
        changed = window["cancelled_at"] or window["recorded_at"]
        what = ", ".join(window["programmes"]) or window.get("cluster") or "the data centre"
        prefix = "Cancelled maintenance" if window["phase"] == "cancelled" else "Maintenance"
        entries.append({
            "id": f"tag:{TAG_AUTHORITY},{window['recorded_at'][:10]}:maintenance/{window['id']}",
            "title": f"{prefix}: {what}, {window['start_text']} to {window['end_text']}",
            "updated": changed, "published": window["recorded_at"],
            "link": f"{INDEX}#maintenance-{window['id']}",
            "summary": f"{window['reason']} ({window['start_text']} to {window['end_text']}, {view['timezone']}"
                       f"{'; cancelled' if window['phase'] == 'cancelled' else ''}).",
            "category": "maintenance",
        })
    entries.sort(key=lambda e: (e["updated"], e["id"]), reverse=True)
    return entries


def ical_escape(text: str) -> str:
    """An RFC 5545 TEXT value: backslash, semicolon, comma and line breaks escaped."""
    return (clean_text(text).replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n").replace("\t", " "))


def ical_fold(line: str) -> str:
    """One content line folded at 75 octets (RFC 5545 3.1), never inside a UTF-8 character; CRLF ended."""
    if len(line) <= 75 and line.isascii():
        return line + "\r\n"
    data = line.encode("utf-8")
    pieces, position, limit = [], 0, 75
    while len(data) - position > limit:
        cut = position + limit
        while data[cut] & 0xC0 == 0x80:  # not inside a character: back to its first byte
            cut -= 1
        pieces.append(data[position:cut])
        position, limit = cut, 74  # a continuation line starts with a space
    pieces.append(data[position:])
    return b"\r\n ".join(pieces).decode("utf-8") + "\r\n"


def _ical_time(iso: str) -> str:
    return _parse(iso).strftime("%Y%m%dT%H%M%SZ")


def icalendar_text(view: dict, *, calendar_name: str) -> str:
    """The announced maintenance windows as an RFC 5545 calendar: one VEVENT per window, its UID
    stable per window id, times in UTC, DTSTAMP when it was recorded (or cancelled), so that two
    publishes of the same windows are the same file; a cancelled window is STATUS:CANCELLED."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//dcops//status page//EN", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{ical_escape(calendar_name)}", "X-WR-TIMEZONE:UTC"]
    for window in view["maintenance"]["all"]:
        cancelled = window["phase"] == "cancelled"
        what = ", ".join(window["programmes"]) or window.get("cluster") or "the data centre"
        description = [window["reason"], f"Programmes: {what}."]
        if window.get("change_ref"):
            description.append(f"Change: {window['change_ref']}.")
        lines += [
            "BEGIN:VEVENT",
            f"UID:maintenance-{window['id']}@{TAG_AUTHORITY}",
            f"DTSTAMP:{_ical_time(window['cancelled_at'] or window['recorded_at'])}",
            f"DTSTART:{_ical_time(window['start'])}",
            f"DTEND:{_ical_time(window['end'])}",
            f"SEQUENCE:{1 if cancelled else 0}",
            f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
            f"SUMMARY:{ical_escape(('Cancelled: ' if cancelled else '') + 'Maintenance: ' + what)}",
            f"DESCRIPTION:{ical_escape(chr(10).join(description))}",
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(ical_fold(line) for line in lines)


def templates_dir() -> Path:
    """templates/status/, shipped inside the package."""
    from dcops.resources import templates_dir as shipped

    return shipped() / "status"


def _environment():
    import jinja2

    from dcops import templating

    env = templating.environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,  # the page and the feed alike: &, <, >, " and ' become entities
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.globals.update(bar_svg=bar_svg, notable_days=notable_days, state_words=STATE_WORDS)
    return env


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


def render_files(view: dict, *, data_centre_name: str, service_desk: str = "") -> dict[str, str]:
    """Every file of the status site from its view: file name -> text."""
    from dcops.catalogue.site import contact_parts

    public = view["audience"] == "public"
    title = f"{data_centre_name} service status" + ("" if public else " (ministries)")
    common = {"view": view, "title": title, "data_centre": data_centre_name, "desk": contact_parts(service_desk),
              "public": public, "headline": headline(view),
              "recent": recent_listing(view["incidents"]["recent"])}
    env = _env()
    return {
        INDEX: env.get_template("index.html").render(**common),
        FEED: env.get_template("feed.atom").render(**common, entries=atom_entries(view),
                                                   feed_id=f"tag:{TAG_AUTHORITY},2026:status/{view['audience']}"),
        CALENDAR: icalendar_text(view, calendar_name=f"{data_centre_name}: maintenance"
                                                     + ("" if public else " (ministries)")),
        STYLESHEET: (templates_dir() / STYLESHEET).read_text(encoding="utf-8"),
    }


def write_site(files: dict[str, str], directory: Path) -> list[Path]:
    """Write the files into `directory` (made if missing), each whole or not at all (a temporary
    file in the folder, then a rename: a reader never sees half a page)."""
    from dcops.files import write_atomically

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {directory}: {error.strerror or error}") from None
    written = []
    # The stylesheet and the feeds first, the page that names them last.
    for name in (STYLESHEET, FEED, CALENDAR, INDEX):
        write_atomically(directory / name, files[name])
        written.append(directory / name)
    return written


def views(database: "Database", *, audiences: Iterable[str], now: datetime | None = None,
          settings: "Settings", actor: "Actor | str | None" = None, days: int = DEFAULT_DAYS,
          past: PastDays | None = None) -> dict[str, dict]:
    """The status views of `audiences`, read in one transaction after the incident records are
    brought up to date with the history (as the incident listing does)."""
    from dcops.access import as_actor, authorize
    from dcops.incidents import sync
    from dcops.models import Programme

    authorize(as_actor(actor), "status.publish")
    audiences = list(audiences)
    for audience in audiences:
        if audience not in AUDIENCES:
            raise UserError(f"--audience: public or ministries, not {audience!r}")
    now = now or utcnow()
    with collector.paused(), database.transaction(immediate=True) as conn:
        # The records of every stretch of downtime the page can show (open, or ended in the last
        # RECENT_DAYS days): the prober keeps them as it writes; this repairs what a stopped writer
        # left. (The incident listing repairs the whole history; the page needs only its days.)
        live = conn.execute(select(Programme.__table__.c.id).where(Programme.__table__.c.status != "retired"))
        sync(conn, programme_ids=live.scalars().all(), since=now - timedelta(days=RECENT_DAYS), now=now)
        return {audience: status_view(conn, now=now, tz=settings.tz, audience=audience, days=days, past=past)
                for audience in audiences}


def publish(database: "Database", directory: Path, *, audience: str, now: datetime | None = None,
            settings: "Settings", actor: "Actor | str | None" = None, past: PastDays | None = None) -> list[Path]:
    """Publish the status site of `audience` into `directory`: index.html, feed.atom, maintenance.ics,
    style.css; return the files written. Needs status.publish (an operator). `past`: see status_view."""
    return publish_view(database, directory, audience=audience, now=now, settings=settings, actor=actor,
                        past=past)[0]


def publish_view(database: "Database", directory: Path, *, audience: str, now: datetime | None = None,
                 settings: "Settings", actor: "Actor | str | None" = None,
                 past: PastDays | None = None) -> tuple[list[Path], dict]:
    """As publish, and the view the files were rendered from."""
    view = views(database, audiences=[audience], now=now, settings=settings, actor=actor, past=past)[audience]
    with collector.paused():
        files = render_files(view, data_centre_name=settings.data_centre_name, service_desk=settings.service_desk)
    return write_site(files, directory), view


def publish_both(database: "Database", directory: Path, *, now: datetime | None = None, settings: "Settings",
                 actor: "Actor | str | None" = None, past: PastDays | None = None) -> list[Path]:
    """What `dcops serve` publishes every minute: the public site into DIRECTORY/public and the
    ministries' into DIRECTORY/ministries, from one reading of the database.

    Two sibling folders rather than the ministries' inside the public one: a web server pointed
    at the public folder can then never serve the ministries' page, whatever its configuration."""
    found = views(database, audiences=AUDIENCES, now=now, settings=settings, actor=actor, past=past)
    written = []
    for audience, view in found.items():
        with collector.paused():
            files = render_files(view, data_centre_name=settings.data_centre_name,
                                 service_desk=settings.service_desk)
        written += write_site(files, Path(directory) / audience)
    return written
