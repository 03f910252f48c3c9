"""The scrape-time collector: programme health, probes, availability, capacity, requests and jobs."""

from __future__ import annotations

import json
import re
import threading
import time
from array import array
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable, Iterator, NamedTuple

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from sqlalchemy import (BigInteger, Integer, String, any_, cast, extract, func, literal_column, or_, select,
                        type_coerce, union_all)
from sqlalchemy.engine import Connection

from dcops.db import Database, epoch_us, utcnow
from dcops.health.history import DOWN, UP, settle_open, stale_from
from dcops.inventory.queries import cluster_usage
from dcops.lifecycle import JOB_STATUSES, REQUEST_STATES
from dcops.models import CheckState, Endpoint, HostingRequest, Job, Ministry, Programme, StateInterval

T_PROGRAMME = Programme.__table__
T_MINISTRY = Ministry.__table__
T_ENDPOINT = Endpoint.__table__
T_STATE = CheckState.__table__
T_INTERVAL = StateInterval.__table__
T_REQUEST = HostingRequest.__table__
T_JOB = Job.__table__

# Availability windows: label value and length. The longest bounds the interval query.
WINDOWS = (("1d", timedelta(days=1)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
# The programme-level intervals kept between scrapes are read afresh at least this often
# (seconds of the collector's clock), whatever the incremental reads found in between.
FULL_READ_SECONDS = 600.0

_WINDOW_US = tuple(length // timedelta(microseconds=1) for _window, length in WINDOWS)

# Every family the collector exports, in exposition order: name, help, label names.
_PROBE = ("programme", "check")
_CLUSTER = ("cluster", "site", "resource")
FAMILIES = (
    ("dcops_programme_up", "Whether the programme is up (1) or down (0), from its checks' damped states; "
                           "absent while unknown or never probed.", ("programme", "ministry")),
    ("dcops_probe_success", "Whether the last probe of the check succeeded (1) or not (0).", _PROBE),
    ("dcops_probe_duration_seconds", "How long the last probe of the check took, in seconds.", _PROBE),
    ("dcops_probe_last_timestamp_seconds", "When the check was last probed, in Unix seconds.", _PROBE),
    ("dcops_programme_info", "A programme the data centre hosts (not retired); always 1.",
     ("programme", "ministry", "tier", "status", "environment")),
    ("dcops_programme_checks", "How many checks (endpoints) the programme has; 0: it is not monitored.",
     ("programme", "ministry")),
    ("dcops_programme_availability_ratio", "Up time over up and down time of the programme in the trailing window "
                                           "(0-1); unknown time is left out.", ("programme", "window")),
    ("dcops_tls_cert_expiry_timestamp_seconds", "When the certificate the check last saw expires, in Unix seconds.",
     _PROBE),
    ("dcops_cluster_capacity", "What the cluster can hold of the resource: (total - reserved) x allocation ratio "
                               "(vcpu in vCPUs, ram_gib and storage_gib in GiB).", _CLUSTER),
    ("dcops_cluster_allocated", "The sum of the programmes' allocations of the resource on the cluster.", _CLUSTER),
    ("dcops_requests", "Hosting requests in each state.", ("state",)),
    ("dcops_provision_jobs", "Provisioning jobs (Ansible runs) in each status.", ("status",)),
)


class InventoryCollector(Collector):
    """Reads the dcops database at scrape time and yields gauges.

    `dcops_programme_up` is exported only for programmes whose open programme-level
    interval is up (1) or down (0): a programme never probed, or in the unknown state
    (no recent data), has no sample, so that "no data" is never mistaken for "down".
    Retired programmes are never exported. With `cache_seconds` > 0 the families read
    by one scrape are served again to the scrapes that follow within that many seconds
    of `clock` (monotonic seconds); `now` is the wall clock the availability windows end at.

    Every scrape reads the database, but the programme-level state intervals of the
    trailing 30 days (the bulk of the rows, and slow to change) are kept between scrapes
    and brought up to date incrementally: see _Intervals. `exposition()` renders the text
    format directly: byte for byte what generate_latest() makes of collect(), several times
    faster.
    """

    def __init__(
        self,
        database: Database,
        *,
        now: Callable[[], datetime] = utcnow,
        cache_seconds: float = 0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.database = database
        self.now = now
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, _Reading] | None = None
        self._intervals = _Intervals()
        self._intervals_lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without samples, so that registering never reads the database."""
        return iter(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The metric families, read from the database (or from the cache while it is fresh)."""
        return iter(self._reading().families())

    def exposition(self) -> bytes:
        """The text exposition (format 0.0.4) of collect(): what generate_latest makes of a
        registry holding only this collector, byte for byte, rendered directly; cached like collect()."""
        return self._reading().text()

    def snapshot(self) -> list[GaugeMetricFamily]:
        """Read everything in one transaction, with one query per kind of row (never one per programme)."""
        return self._read().families()

    def _reading(self) -> "_Reading":
        if self.cache_seconds <= 0:
            return self._read()
        # One scrape at a time reads the database; the others wait and get its result.
        with self._lock:
            moment = self._clock()
            if self._cached is None or not 0 <= moment - self._cached[0] < self.cache_seconds:
                self._cached = (moment, self._read())
            return self._cached[1]

    def _read(self) -> "_Reading":
        now = self.now()
        now_us = epoch_us(now)
        # Each family's series, in exposition order, as columns: a list per label, and the values.
        # (Rows are consumed as they come, and the series kept as lists of strings and numbers
        # rather than a tuple each: long-lived containers by the hundred thousand would have the
        # garbage collector walk the whole heap, scrape after scrape.)
        series = {name: ([[] for _ in labels], []) for name, _doc, labels in FAMILIES}

        def family(name: str):
            columns, values = series[name]
            return (*(column.append for column in columns), values.append)

        ids: list[int] = []
        slugs: list[str] = []
        codes: list[str] = []
        info_slug, info_code, info_tier, info_status, info_environment, info_value = family("dcops_programme_info")
        success_slug, success_name, success_value = family("dcops_probe_success")
        duration_slug, duration_name, duration_value = family("dcops_probe_duration_seconds")
        last_slug, last_name, last_value = family("dcops_probe_last_timestamp_seconds")
        tls_slug, tls_name, tls_value = family("dcops_tls_cert_expiry_timestamp_seconds")
        # The kept intervals are shared: one scrape at a time brings them up to date and computes from them.
        with self._intervals_lock:
            with self.database.transaction() as conn:
                for programme_id, slug, code, tier, status, environment in conn.execute(
                    select(T_PROGRAMME.c.id, T_PROGRAMME.c.slug, T_MINISTRY.c.code, T_PROGRAMME.c.tier,
                           T_PROGRAMME.c.status, T_PROGRAMME.c.environment)
                    .join(T_MINISTRY, T_MINISTRY.c.id == T_PROGRAMME.c.ministry_id)
                    .where(T_PROGRAMME.c.status != "retired")
                    .order_by(T_PROGRAMME.c.slug)
                ):
                    ids.append(programme_id)
                    slugs.append(slug)
                    codes.append(code)
                    info_slug(slug)
                    info_code(code)
                    info_tier(str(tier))
                    info_status(status)
                    info_environment(environment)
                    info_value(1)
                live = dict(zip(ids, slugs))
                check_counts = dict(conn.execute(select(T_ENDPOINT.c.programme_id, func.count())
                                                 .group_by(T_ENDPOINT.c.programme_id)).all())
                last_at, to_us = _epoch_us(conn, T_STATE.c.last_at)
                tls_at, _ = _epoch_us(conn, T_STATE.c.tls_expires_at)
                # The read-time rule: per programme with a stale check, each check's (state, stale from).
                stale: dict[int, list[tuple[str, int | None]]] = {}
                checks: list[tuple[str, int | None]] = []
                checks_of = None
                for programme_id, name, ok, seconds, last_us, tls_us, check_state, interval in conn.execute(
                    select(T_ENDPOINT.c.programme_id, T_ENDPOINT.c.name, T_STATE.c.last_success,
                           T_STATE.c.last_duration_seconds, last_at, tls_at, T_STATE.c.state,
                           T_ENDPOINT.c.interval_seconds)
                    .join(T_ENDPOINT, T_ENDPOINT.c.id == T_STATE.c.endpoint_id)
                    .where(T_STATE.c.last_at.is_not(None))
                    .order_by(T_ENDPOINT.c.programme_id, T_ENDPOINT.c.name)
                ):
                    slug = live.get(programme_id)
                    if slug is None:
                        continue
                    if programme_id != checks_of:
                        checks_of, checks = programme_id, []
                    stale_us = stale_from(check_state, to_us(last_us), interval * 1_000_000, now_us)
                    checks.append((check_state, stale_us))
                    if stale_us is not None:
                        stale[programme_id] = checks
                    if ok is not None:
                        success_slug(slug)
                        success_name(name)
                        success_value(1 if ok else 0)
                    if seconds is not None:
                        duration_slug(slug)
                        duration_name(name)
                        duration_value(seconds)
                    # Unix seconds exactly as datetime.timestamp() computes them: microseconds / 10**6.
                    last_slug(slug)
                    last_name(name)
                    last_value(to_us(last_us) / 10**6)
                    if tls_us is not None:
                        tls_slug(slug)
                        tls_name(name)
                        tls_value(to_us(tls_us) / 10**6)
                self._intervals.refresh(conn, now, now_us, self._clock())
                usage = cluster_usage(conn)
                requests = dict(conn.execute(select(T_REQUEST.c.state, func.count()).group_by(T_REQUEST.c.state)).all())
                jobs = dict(conn.execute(select(T_JOB.c.status, func.count()).group_by(T_JOB.c.status)).all())
            states, ratios = self._intervals.availability(ids, now_us, stale)

        checks_slug, checks_code, checks_value = family("dcops_programme_checks")
        for programme_id, slug, code in zip(ids, slugs, codes):
            checks_slug(slug)
            checks_code(code)
            checks_value(check_counts.get(programme_id, 0))

        up_slug, up_code, up_value = family("dcops_programme_up")
        for slug, code, state in zip(slugs, codes, states):
            if state == UP or state == DOWN:
                up_slug(slug)
                up_code(code)
                up_value(1 if state == UP else 0)
        ratio_slug, ratio_window, ratio_value = family("dcops_programme_availability_ratio")
        windows = [window for window, _length in WINDOWS]
        for index, value in enumerate(ratios):
            if value is not None:
                ratio_slug(slugs[index // len(windows)])
                ratio_window(windows[index % len(windows)])
                ratio_value(value)

        capacity, allocated = family("dcops_cluster_capacity"), family("dcops_cluster_allocated")
        for row in usage:
            for add, value in zip((*capacity, *allocated), (row.cluster, row.site, row.resource, row.capacity,
                                                            row.cluster, row.site, row.resource, row.allocated)):
                add(value)
        request_state, request_value = family("dcops_requests")
        for state in (*REQUEST_STATES, *sorted(set(requests) - set(REQUEST_STATES))):
            request_state(state)
            request_value(requests.get(state, 0))
        job_status, job_value = family("dcops_provision_jobs")
        for status in (*JOB_STATUSES, *sorted(set(jobs) - set(JOB_STATUSES))):
            job_status(status)
            job_value(jobs.get(status, 0))
        # Every label value above comes from these columns, or is a constant without " \ or newline.
        info_columns = series["dcops_programme_info"][0]
        plain = _plain(slugs, codes, info_columns[3], info_columns[4], series["dcops_probe_last_timestamp_seconds"][0][1],
                       [f"{row.cluster}\0{row.site}\0{row.resource}" for row in usage],
                       [str(key) for key in (*requests, *jobs)])
        return _Reading([series[name] for name, _doc, _labels in FAMILIES], plain)


def _families() -> list[GaugeMetricFamily]:
    """Every family the collector exports, empty, in exposition order."""
    return [GaugeMetricFamily(name, documentation, labels=list(labels)) for name, documentation, labels in FAMILIES]


class _Reading:
    """What one scrape read: per family, its series as ([a list of values per label], [values]);
    made into families (collect) or into the text format (exposition), each at most once."""

    def __init__(self, series: list[tuple[list[list[str]], list]], plain: bool):
        self.series = series
        self.plain = plain  # no label value needs escaping
        self._families: list[GaugeMetricFamily] | None = None
        self._text: bytes | None = None

    def families(self) -> list[GaugeMetricFamily]:
        if self._families is None:
            self._families = families = _families()
            for family, (name, _doc, labels), (columns, values) in zip(families, FAMILIES, self.series):
                # What GaugeMetricFamily.add_metric does, without a call and a dict(zip()) per sample.
                rows = zip(*columns, values)
                if len(labels) == 1:
                    a, = labels
                    family.samples = [Sample(name, {a: x}, v, None) for x, v in rows]
                elif len(labels) == 2:
                    a, b = labels
                    family.samples = [Sample(name, {a: x, b: y}, v, None) for x, y, v in rows]
                elif len(labels) == 3:
                    a, b, c = labels
                    family.samples = [Sample(name, {a: x, b: y, c: z}, v, None) for x, y, z, v in rows]
                else:
                    family.samples = [Sample(name, dict(zip(labels, row)), row[-1], None) for row in rows]
        return self._families

    def text(self) -> bytes:
        """The Prometheus text format (0.0.4), as prometheus_client.generate_latest writes it:
        HELP and TYPE, then one line per sample, labels sorted by name, values as Go prints them."""
        if self._text is None:
            out: list[str] = []
            for (name, documentation, labels), (columns, values) in zip(FAMILIES, self.series):
                out.append("# HELP {} {}\n".format(name, documentation.replace("\\", r"\\").replace("\n", r"\n")))
                out.append(f"# TYPE {name} gauge\n")
                order = sorted(range(len(labels)), key=labels.__getitem__)
                line = name + "{" + ",".join(f'{labels[i]}="%s"' for i in order) + "} %s\n"
                columns = [columns[i] if self.plain else list(map(_escape, columns[i])) for i in order]
                out += [line % row for row in zip(*columns, map(_go_string, values))]
            self._text = "".join(out).encode("utf-8")
        return self._text


_UNSAFE = re.compile(r'[\\"\n]')


def _plain(*columns: list[str]) -> bool:
    """Whether no label value in `columns` needs escaping in the text format."""
    return not any(_UNSAFE.search("\0".join(column)) for column in columns)


def _escape(value: str) -> str:
    """A label value as the text format wants it: backslash, newline and double quote escaped."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _go_string(value) -> str:
    """prometheus_client's floatToGoString (how Go prints a float), without its calls for the
    commonest values: the ints 0 and 1, finite floats below 1e6 (printed as repr prints them)
    and Unix times (which Go prints with an exponent: 1.7643424e+09)."""
    kind = value.__class__
    if kind is float:
        if -1e300 < value < 1e6:
            return repr(value)
        if 1e6 <= value < 1e16:  # repr without an exponent, Go with one
            text = repr(value)
            dot = text.find(".")
            mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    elif kind is int and (value == 0 or value == 1):
        return "1.0" if value else "0.0"
    return floatToGoString(value)


# --- times as Unix microseconds, read cheaply ---------------------------------------------------


def _identity(value):
    return value


def _from_datetime(value: datetime | None) -> int | None:
    return None if value is None else epoch_us(value)


def _epoch_us(conn: Connection, column):
    """(an expression selecting `column` as Unix microseconds, the conversion of what it reads).

    Converting tens of thousands of datetimes through the column type was the largest part
    of a scrape, so the database does it: exactly, in integers. SQLite keeps UTCDateTime as
    'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): the seconds of the first 19 characters (its date
    functions round the fraction to milliseconds, which could carry into the seconds) plus the
    fraction's digits. PostgreSQL: extract(epoch), exact numeric from version 14 (and rounded
    to the microsecond by the cast before). Elsewhere: read through the type, converted here.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        as_text = type_coerce(column, String)
        version = getattr(conn.dialect.dbapi, "sqlite_version_info", (0, 0, 0))
        whole = func.substr(as_text, 1, 19)
        seconds = func.unixepoch(whole) if version >= (3, 38, 0) else cast(func.strftime("%s", whole), Integer)
        fraction = cast(func.substr(as_text.concat("000000"), 21, 6), Integer)
        return type_coerce(seconds * 1000000 + fraction, BigInteger), _identity
    if dialect == "postgresql":
        return type_coerce(cast(extract("epoch", column) * 1000000, BigInteger), BigInteger), _identity
    return column, _from_datetime


# --- programme-level intervals, kept between scrapes --------------------------------------------


class _Spans(NamedTuple):
    """The closed intervals of one programme, sorted by end, with running sums of the up and
    down microseconds, so that a window's up and down time takes two bisections. (A tuple of
    arrays: the garbage collector does not walk it at every collection, as it would an object.)"""

    ends: array
    starts: array
    states: tuple[str, ...]
    up: array
    down: array
    disjoint: bool

    @classmethod
    def of(cls, intervals: list[tuple[int, int, str]]) -> "_Spans":
        """From (end, start, state) tuples, in any order."""
        intervals.sort()
        ends = array("q", [end for end, _start, _state in intervals])
        starts = array("q", [start for _end, start, _state in intervals])
        up, down = [0], [0]
        u = d = 0
        for end, start, state in intervals:
            if state == UP:
                u += end - start
            elif state == DOWN:
                d += end - start
            up.append(u)
            down.append(d)
        disjoint = all(starts[i] >= ends[i - 1] for i in range(1, len(ends)))
        return cls(ends, starts, tuple(state for _end, _start, state in intervals), array("q", up),
                   array("q", down), disjoint)

    def intervals(self) -> list[tuple[int, int, str]]:
        return list(zip(self.ends, self.starts, self.states))

    def sums(self, window_starts: tuple[int, ...], now: int) -> list[int]:
        """The up microseconds in each [window_starts[k], now), then the down ones."""
        ends, starts, states, up, down = self.ends, self.starts, self.states, self.up, self.down
        count = len(ends)
        settled = bisect_right(ends, now)  # the intervals that end by now (normally all of them)
        n = len(window_starts)
        sums = [0] * (2 * n)
        for k, window_start in enumerate(window_starts):
            first = bisect_right(ends, window_start)  # the first that ends inside the window
            if not self.disjoint:  # overlapping intervals (never written by the store): one by one
                first = settled = 0
            elif first < settled:
                u = up[settled] - up[first]
                d = down[settled] - down[first]
                if starts[first] < window_start:  # only the first can start before the window
                    if states[first] == UP:
                        u -= window_start - starts[first]
                    elif states[first] == DOWN:
                        d -= window_start - starts[first]
                sums[k] = u
                sums[k + n] = d
            for i in range(max(first, settled), count):
                low = starts[i] if starts[i] > window_start else window_start
                high = ends[i] if ends[i] < now else now
                if high > low:
                    if states[i] == UP:
                        sums[k] += high - low
                    elif states[i] == DOWN:
                        sums[k + n] += high - low
        return sums


class _Intervals:
    """The programme-level state intervals of the trailing 30 days, kept between scrapes.

    The store only ever inserts programme-level intervals and closes the open one once
    (store._switch_interval, end_programme_history), and its writers are serialised
    (SQLite's write lock; PostgreSQL's writer lock, taken by every transaction that records
    results), so interval ids are committed in increasing order. Each scrape therefore reads,
    in one statement, the rows above the highest id seen and, of the intervals open at the
    previous scrape, those closed since; everything is read afresh on the first scrape, every
    FULL_READ_SECONDS, and whenever the wall clock went backwards. The maths is that of
    dcops.health.history.availability, in integer microseconds: up / (up + down) in each
    window, time no interval covers being unknown, an open interval lasting until now.
    """

    def __init__(self) -> None:
        self.max_id: int | None = None
        self.read_at = 0.0
        self.now_us = 0
        self.open_ids: dict[int, int] = {}  # open interval -> its programme
        self.open: dict[int, tuple[tuple[int, str, int], ...]] = {}  # programme -> open intervals (id, state, start)
        self.spans: dict[int, _Spans] = {}
        self.pending: dict[int, list[tuple[int, int, str]]] = defaultdict(list)  # new closed ones: (end, start, state)

    def refresh(self, conn: Connection, now: datetime, now_us: int, moment: float) -> None:
        """Bring the kept intervals up to date, with one query."""
        started, _ = _epoch_us(conn, T_INTERVAL.c.started_at)
        ended, to_us = _epoch_us(conn, T_INTERVAL.c.ended_at)
        query = select(T_INTERVAL.c.id, T_INTERVAL.c.programme_id, T_INTERVAL.c.state, started, ended)
        level = T_INTERVAL.c.endpoint_id.is_(None)
        since = now - WINDOWS[-1][1]
        dialect = conn.dialect.name
        if (self.max_id is None or not 0 <= moment - self.read_at < FULL_READ_SECONDS or now_us < self.now_us
                or dialect not in ("sqlite", "postgresql")):
            rows = conn.execute(query.where(level, or_(T_INTERVAL.c.ended_at.is_(None),
                                                       T_INTERVAL.c.ended_at > since)))
            self.__init__()
            self.max_id, self.read_at = 0, moment
        else:
            # Two index range scans, in one statement (so one snapshot): the rows above the highest
            # id seen, and those of the intervals open at the last scrape that are closed now.
            if dialect == "sqlite":
                was_open = T_INTERVAL.c.id.in_(select(literal_column("value")).select_from(
                    func.json_each(json.dumps(list(self.open_ids)))).scalar_subquery())
            else:
                was_open = T_INTERVAL.c.id == any_(cast(list(self.open_ids), _bigint_array()))
            rows = conn.execute(union_all(query.where(level, T_INTERVAL.c.id > self.max_id),
                                          query.where(level, was_open, T_INTERVAL.c.ended_at.is_not(None))))
        self.now_us = now_us
        oldest = epoch_us(since)
        for interval_id, programme_id, state, start, end in rows:
            if interval_id > self.max_id:
                self.max_id = interval_id
            if end is None:
                self.open_ids[interval_id] = programme_id
                self.open[programme_id] = tuple(sorted((*self.open.get(programme_id, ()),
                                                        (interval_id, state, to_us(start)))))
                continue
            programme = self.open_ids.pop(interval_id, None)
            if programme is not None:
                self.open[programme] = tuple(item for item in self.open[programme] if item[0] != interval_id)
                if not self.open[programme]:
                    del self.open[programme]
            end = to_us(end)
            if end > oldest:
                self.pending[programme_id].append((end, to_us(start), state))

    def availability(self, programme_ids: list[int], now_us: int,
                     stale: dict[int, list[tuple[str, int | None]]]) -> tuple[list[str | None], list[float | None]]:
        """Each programme's current state (that of its open interval, if it started before now),
        and its availability ratio in each window (None when the window holds no up or down time):
        the windows of the first programme, then those of the second, and so on. A programme in
        `stale` (its checks as (state, stale from µs)) has its open interval settled by the
        read-time rule (history.settle_open) first."""
        for programme_id, new in self.pending.items():
            spans = self.spans.get(programme_id)
            self.spans[programme_id] = _Spans.of(new + spans.intervals() if spans is not None else new)
        self.pending = defaultdict(list)
        window_starts = tuple(now_us - length for length in _WINDOW_US)
        n = len(window_starts)
        zeros = [0] * (2 * n)
        spans_of, open_of = self.spans.get, self.open.get
        states: list[str | None] = []
        ratios: list[float | None] = []
        for programme_id in programme_ids:
            spans = spans_of(programme_id)
            sums = spans.sums(window_starts, now_us) if spans is not None else zeros
            current = None
            for _id, state, began in open_of(programme_id, ()):  # normally one; the lowest id gives the state
                if began >= now_us:
                    continue
                pieces = ((state, began, now_us, -1),) if programme_id not in stale else settle_open(
                    state, began, stale[programme_id], now_us)
                if current is None:
                    current = pieces[-1][0]
                for piece_state, piece_start, piece_end, _cause in pieces:
                    if piece_state != UP and piece_state != DOWN:
                        continue
                    if sums is zeros:
                        sums = list(zeros)
                    offset = 0 if piece_state == UP else n
                    for k, start in enumerate(window_starts):
                        low = piece_start if piece_start > start else start
                        if piece_end > low:
                            sums[offset + k] += piece_end - low
            states.append(current)
            # up / (up + down), None without either (history.Availability.ratio), exactly rounded
            ratios += [sums[k] / (sums[k] + sums[k + n]) if sums[k] + sums[k + n] > 0 else None for k in range(n)]
        return states, ratios


def _bigint_array():
    from sqlalchemy.dialects.postgresql import ARRAY

    return ARRAY(BigInteger)
