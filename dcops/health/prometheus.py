"""Prometheus as a probing engine: probe_success read back through its HTTP API into the history
store (`dcops probe sync`, and `sync_recent` for `dcops serve`).

Prometheus scrapes blackbox_exporter for the targets `dcops metrics targets` writes (each labelled
with its programme and check, and scraped at its check's own interval). For each check interval I,
one query_range at step I asks, for every target of the job at once,

    avg_over_time(probe_success{job="..."}[I - 1ms])

the share of a step's samples that succeeded (the sum of the window's samples over their count:
sum_over_time / count_over_time in one function; as that division of two aggregated vectors it took
six times as long, 8.9 against 1.5 s for 2 million points). steps.read_steps turns it into results
(one per step with samples; several series of one check, merged per step) and steps.fold_runs folds
them with the same damping as dcops' own prober. Prometheus 2 includes both ends of a range, so a
window of I minus a millisecond holds the samples of (t - I, t] and the steps tile time
(Prometheus 3 leaves the start out: the window is I there).
Raw sampling instead (the last sample before each step) would invent "up" for five minutes into a
gap, and a wider window misreads the edges of every outage by one sample (research, section 5.1).

Each check continues from its latest stored result, so a second sync reads only what is new; with
an explicit start, the time before that is a backfill (store.backfill), which fills only time the
store holds no up or down for: syncing a period twice changes nothing, and Prometheus dropping old
data cannot change what dcops holds. Every chunk of steps is its own transaction: an interrupted
sync keeps what it wrote and the next one continues from there.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import PrometheusError, UserError
from dcops.health import store
from dcops.health.history import Thresholds
from dcops.health.importer import ImportedResult
from dcops.health.steps import (MICROSECONDS, Run, StepCounts, as_us, chunks, expand, first_step_after, from_us,
                                last_step_until, merge_series, read_steps, split_runs)
from dcops.health.store import T_STATE, CheckRow, backfill, load_checks
from dcops.metrics.files import re2_alternation
from dcops.settings import base_url as settings_base_url
from dcops.vocabulary import BLACKBOX_JOB, IN_SERVICE_STATUSES

# A step's sample is stamped when its scrape starts, inside the step, and is in Prometheus once the
# probe has answered or timed out (the check's timeout plus blackbox_exporter's half second): a sync
# to "now" reads each check up to that long ago, plus SETTLE_MARGIN, so that it never reads a step
# before its sample is in. A short settle keeps the history close behind Prometheus: the readers
# call a check unknown once three intervals pass without a result (history.stale_from).
SETTLE_MARGIN = timedelta(seconds=5)
# A check with no stored result is read back this far on its first sync: a month's report and its margin.
FIRST_SYNC_LOOKBACK = timedelta(days=35)
MAX_STEPS = 10_000  # per series and request: Prometheus refuses more than 11,000 points per series
MAX_POINTS = 2_000_000  # per request, all series together: a response of some 40 MB of JSON at most
REQUEST_TIMEOUT_SECONDS = 120.0
FAILURE_REASON = "probe failed (Prometheus)"
# The newest sample older than this is not a check's current duration or certificate.
LAST_VALUE_WINDOW = "10m"


def settle(checks: Iterable[CheckRow]) -> timedelta:
    """How long before "now" a sync to now stops for these checks: the longest probe's scrape
    (its timeout plus blackbox_exporter's half second) and SETTLE_MARGIN."""
    longest = max((float(check.timeout_seconds) for check in checks), default=60.0)
    return timedelta(seconds=longest + 0.5) + SETTLE_MARGIN


def base_url(raw: str, *, option: str = "--prometheus") -> str:
    """An http(s) base URL such as http://127.0.0.1:9090 (no trailing slash), or a UserError."""
    return settings_base_url(raw, name=option, error=UserError)


def shown_url(url: str) -> str:
    """A URL fit to print and to audit: any user and password in it left out."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def label_value(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def share_up_query(selector: str, interval: int, *, prometheus_major: int = 2) -> str:
    """The PromQL of each series' share of samples up per step of `interval` seconds (module docstring)."""
    window = f"{interval * 1000 - 1}ms" if prometheus_major < 3 else f"{interval}s"
    return f"avg_over_time(probe_success{{{selector}}}[{window}])"


class Prometheus:
    """Prometheus' HTTP API through httpx: query, query_range and the server's version."""

    def __init__(self, url: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS, transport=None):
        import httpx  # here, not at import time: the CLI starts without it

        self.url = base_url(url)
        self.requests = 0
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                    headers={"User-Agent": "dcops"})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Prometheus":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, path: str, form: dict | None = None):
        where = shown_url(self.url)
        self.requests += 1
        try:
            if form is None:
                response = self._client.get(f"/api/v1/{path}")
            else:  # POST: a long selector does not fit in a URL
                response = self._client.post(f"/api/v1/{path}", data=form)
        except self._httpx.TimeoutException:
            raise PrometheusError(f"Prometheus at {where} did not answer in time") from None
        except self._httpx.HTTPError as error:
            raise PrometheusError(f"cannot reach Prometheus at {where}: {_reason(error)}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise PrometheusError(f"{where} answered {response.status_code} to /api/v1/{path}, "
                                  "not as Prometheus' HTTP API does (is this Prometheus?)")
        if body["status"] != "success":
            detail = str(body.get("error") or body.get("errorType") or "")[:300].replace("\n", " ")
            raise PrometheusError(f"Prometheus at {where} refused the query ({response.status_code}): {detail}")
        return body.get("data")

    def major_version(self) -> int:
        """Prometheus' major version (2 when it does not say, as with some compatible servers)."""
        try:
            version = str((self._call("status/buildinfo") or {}).get("version", ""))
        except PrometheusError as error:
            if "refused" in str(error) or "not as Prometheus" in str(error):
                return 2
            raise
        head = version.lstrip("v").split(".", 1)[0]
        return int(head) if head.isdigit() else 2

    def query_range(self, query: str, *, start: int, end: int, step: int) -> list[dict]:
        """A range query's series: [{"metric": {...}, "values": [[time, "value"], ...]}, ...]."""
        data = self._call("query_range", {"query": query, "start": str(start), "end": str(end), "step": str(step)})
        return list((data or {}).get("result") or [])

    def query(self, query: str, *, at: int) -> list[dict]:
        """An instant query's vector: [{"metric": {...}, "value": [time, "value"]}, ...]."""
        data = self._call("query", {"query": query, "time": str(at)})
        return list((data or {}).get("result") or [])


def _reason(error: Exception) -> str:
    text_ = str(error) or type(error).__name__
    return text_.splitlines()[0][:200]


@dataclass
class SyncSummary:
    """What a sync read and wrote.

    Steps read per verdict (mixed steps count as failures); results: the steps that continued a
    check's history; backfilled and measured: of the older ones, those that filled time the store
    had no data for (whether or not they were enough to change a state there: `filled_time` says
    whether any interval changed) and those that fell in time it had measured (`disagreeing`: per
    check, how many said otherwise), as `dcops probe import` counts them; changes: programme-level state changes
    written; unmatched: series whose labels name no check dcops probes (programme/check),
    ignored: series of programmes not in service (retired, being built).
    """

    url: str
    first: datetime | None = None
    last: datetime | None = None
    checks: int = 0
    steps_up: int = 0
    steps_down: int = 0
    steps_mixed: int = 0
    results: int = 0
    backfilled: int = 0
    measured: int = 0
    disagreeing: dict[str, int] = field(default_factory=dict)
    check_changes: int = 0
    changes: int = 0
    unmatched: list[str] = field(default_factory=list)
    ignored: int = 0
    requests: int = 0
    seconds: float = 0.0
    filled_time: bool = False  # whether the older results changed any interval

    @property
    def wrote(self) -> bool:
        """Whether the sync changed the history at all."""
        return bool(self.results or self.filled_time)

    def as_dict(self) -> dict:
        return {"prometheus": self.url, "first": iso_utc(self.first), "last": iso_utc(self.last),
                "checks": self.checks, "steps": {"up": self.steps_up, "down": self.steps_down,
                                                 "mixed": self.steps_mixed},
                "results": self.results, "backfilled": self.backfilled, "measured": self.measured,
                "disagreeing": dict(sorted(self.disagreeing.items())), "check_changes": self.check_changes,
                "changes": self.changes, "unmatched": sorted(self.unmatched), "ignored": self.ignored,
                "requests": self.requests, "seconds": round(self.seconds, 3), "filled_time": self.filled_time,
                "wrote": self.wrote}


@dataclass(frozen=True)
class _Group:
    """Checks read by one query: the same interval, the same first step, to the same last step."""

    interval: int
    first: int
    last: int
    checks: tuple[CheckRow, ...]


def plan(checks: Sequence[CheckRow], last_at: dict[int, datetime], *, start: datetime | None, end: datetime,
         now: datetime, settled: bool = False) -> list[_Group]:
    """Which steps to read: per check from `start` if given, else from after its latest stored result
    (a check never probed: FIRST_SYNC_LOOKBACK before `now`), to the last step complete at `end`
    (`settled`: at `end` less the group's settle(), a sync to now). Groups with no step to read
    are left out."""
    by_key: dict[tuple[int, int], list[CheckRow]] = defaultdict(list)
    for check in checks:
        interval = max(int(check.interval_seconds), 1)
        if start is not None:
            from_us_ = as_us(start)
        elif last_at.get(check.endpoint_id) is not None:
            from_us_ = as_us(last_at[check.endpoint_id])
        else:
            from_us_ = as_us(now - FIRST_SYNC_LOOKBACK)
        by_key[(interval, first_step_after(from_us_, interval))].append(check)
    groups = []
    for (interval, first), rows in sorted(by_key.items()):
        last = last_step_until(as_us(end - settle(rows) if settled else end), interval)
        if first <= last:  # else its next step's sample may not be in yet
            groups.append(_Group(interval, first, last, tuple(rows)))
    return groups


def _selector(job: str, group: _Group, everything: bool) -> str:
    selector = f"job={label_value(job)}"
    if not everything:
        selector += f", programme=~{label_value(re2_alternation(c.programme for c in group.checks))}"
    return selector


def _latest_results(conn: Connection) -> dict[int, datetime]:
    return {r.endpoint_id: r.last_at for r in conn.execute(select(T_STATE.c.endpoint_id, T_STATE.c.last_at))
            if r.last_at is not None}


def _not_in_service(conn: Connection) -> set[tuple[str, str]]:
    rows = conn.execute(text(
        "SELECT p.slug, e.name FROM endpoint e JOIN programme p ON p.id = e.programme_id "
        "WHERE p.status NOT IN (" + ", ".join(f"'{s}'" for s in IN_SERVICE_STATUSES) + ")"))
    return {(slug, name) for slug, name in rows}


def _last_values(prometheus: Prometheus, job: str, group: _Group, everything: bool, at: int, major: int
                 ) -> dict[tuple[str, str], tuple[float | None, datetime | None]]:
    """Each check's latest probe duration (s) and certificate expiry, as of step `at`."""
    selector = _selector(job, group, everything)
    found: dict[tuple[str, str], list] = defaultdict(lambda: [None, None])
    for index, (metric, pick) in enumerate((("probe_duration_seconds", "max"),
                                            ("probe_ssl_earliest_cert_expiry", "min"))):
        for series in prometheus.query(
                f"{pick} by (programme, check) (last_over_time({metric}{{{selector}}}[{LAST_VALUE_WINDOW}]))", at=at):
            labels = series.get("metric") or {}
            try:
                value = float(series["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if value != value or value in (float("inf"), float("-inf")):
                continue
            if index == 0:
                found[(labels.get("programme", ""), labels.get("check", ""))][0] = value
            elif value > 0:
                found[(labels.get("programme", ""), labels.get("check", ""))][1] = from_us(int(value) * MICROSECONDS)
    return {key: (duration, expiry) for key, (duration, expiry) in found.items()}


def sync(database: Database, prometheus: Prometheus | str, *, start: datetime | None = None,
         end: datetime | None = None, now: datetime | None = None, job: str = BLACKBOX_JOB,
         thresholds: Thresholds = Thresholds(), actor: str | None = None, audited: bool = True,
         progress: Callable[[str], None] = lambda message: None) -> SyncSummary:
    """Read probe_success of every check in service back from Prometheus into the history store.

    From `start` (default: each check from after its latest stored result) to `end` (default: `now`
    less each group's settle()), in chunks of steps below Prometheus' limits, each chunk one
    transaction. A series whose labels name no check dcops probes is counted (`unmatched`), not an
    error. A sync that wrote anything appends one audit entry (probe.synced), unless `audited` is
    false: dcops serve's timed syncs are its probing, and like the prober's rounds are not audited.
    Raises PrometheusError when Prometheus cannot be reached or refuses a query (what earlier
    chunks wrote stays), UserError for a bad period.
    """
    started = time.perf_counter()
    now = now or utcnow()
    settled = end is None  # to now: each group of checks stops its own settle before now
    end = end if end is not None else now
    if end > now:
        raise UserError(f"--to {iso_utc(end)} is in the future: Prometheus has nothing there yet")
    if start is not None and start >= end:
        raise UserError(f"--from {iso_utc(start)} must be before --to {iso_utc(end)}")
    if not job or not job.isprintable() or len(job) > 200:
        raise UserError("--job must be the name of a Prometheus job, on one line")
    own = isinstance(prometheus, str)
    client = Prometheus(prometheus) if own else prometheus
    summary = SyncSummary(url=shown_url(client.url))
    requests_before = client.requests
    try:
        with database.transaction() as conn:
            checks = load_checks(conn)
            last_at = _latest_results(conn)
            ignored_names = _not_in_service(conn)
        known = {(check.programme, check.name): check for check in checks}
        groups = plan(checks, last_at, start=start, end=end, now=now, settled=settled)
        major = client.major_version() if groups else 2
        unmatched: set[str] = set()
        ignored: set[tuple[str, str]] = set()
        synced: set[int] = set()
        everything = len(groups) == 1 and len(groups[0].checks) == len(checks)
        for number, group in enumerate(groups, start=1):
            interval = group.interval
            members = {check.endpoint_id for check in group.checks}
            query = share_up_query(_selector(job, group, everything), interval, prometheus_major=major)
            last = group.last
            steps_per_chunk = max(1, min(MAX_STEPS, MAX_POINTS // max(len(group.checks), 1)))
            pieces = chunks(group.first, last, interval, steps_per_chunk)
            with ThreadPoolExecutor(max_workers=1) as pool:  # the next chunk is asked for while one is written
                pending = pool.submit(client.query_range, query, start=pieces[0][0], end=pieces[0][1], step=interval)
                for index, (lo, hi) in enumerate(pieces):
                    series = pending.result()
                    if index + 1 < len(pieces):
                        nlo, nhi = pieces[index + 1]
                        pending = pool.submit(client.query_range, query, start=nlo, end=nhi, step=interval)
                    runs: dict[int, StepCounts] = {}
                    for key, values in _by_check(series).items():
                        check = known.get(key)
                        if check is None:
                            if key in ignored_names:
                                ignored.add(key)
                            else:
                                unmatched.add("/".join(key) if any(key) else "(no programme and check labels)")
                            continue
                        if check.endpoint_id not in members:
                            continue  # a check of the same programme read with another interval
                        runs[check.endpoint_id] = read_steps(values, interval)
                    final = index + 1 == len(pieces)
                    values = {}
                    if final and runs:
                        by_name = _last_values(client, job, group, everything, hi, major)
                        checks_by_id = {c.endpoint_id: c for c in group.checks}
                        values = {e: by_name[(checks_by_id[e].programme, checks_by_id[e].name)] for e in runs
                                  if (checks_by_id[e].programme, checks_by_id[e].name) in by_name}
                    _write_chunk(database, checks, runs, thresholds, summary, values)
                    synced.update(runs)
                    progress(f"group {number}/{len(groups)} (every {interval} s), chunk {index + 1}/{len(pieces)}: "
                             f"{iso_utc(from_us(lo * MICROSECONDS))} to {iso_utc(from_us(hi * MICROSECONDS))}, "
                             f"{len(runs)} checks")
                    first_t, last_t = from_us((lo - interval) * MICROSECONDS), from_us(hi * MICROSECONDS)
                    summary.first = first_t if summary.first is None else min(summary.first, first_t)
                    summary.last = last_t if summary.last is None else max(summary.last, last_t)
        summary.checks = len(synced)
        summary.unmatched = sorted(unmatched)
        summary.ignored = len(ignored)
    finally:
        summary.requests = client.requests - requests_before
        summary.seconds = time.perf_counter() - started
        if summary.wrote and audited:
            _audit(database, summary, actor)
        if own:
            client.close()
    return summary


def _by_check(series: list[dict]) -> dict[tuple[str, str], list]:
    """A query's series by (programme, check) label; several of one check merged step by step."""
    grouped: dict[tuple[str, str], list] = defaultdict(list)
    for one in series:
        labels = one.get("metric") or {}
        grouped[(labels.get("programme", ""), labels.get("check", ""))].append(one.get("values") or [])
    return {key: values[0] if len(values) == 1 else merge_series(values) for key, values in grouped.items()}


def _write_chunk(database: Database, checks: Sequence[CheckRow], runs: dict[int, StepCounts], thresholds: Thresholds,
                 summary: SyncSummary, last_values: dict) -> None:
    """One chunk's steps, in one transaction: newer than a check's latest result, its history goes
    on (store.record_runs); older, they fill only time the store has no data for (store.backfill)."""
    if not runs:
        return
    for counts in runs.values():
        summary.steps_up += counts.up
        summary.steps_down += counts.down
        summary.steps_mixed += counts.mixed
    by_id = {check.endpoint_id: check for check in checks}
    with database.transaction(immediate=True) as conn:
        latest = _latest_results(conn)  # again, inside the lock: the prober may have written meanwhile
        newer: dict[int, list[Run]] = {}
        older: list[ImportedResult] = []
        for endpoint_id, counts in runs.items():
            interval = int(by_id[endpoint_id].interval_seconds)
            cut = latest.get(endpoint_id)
            # Results are at whole seconds: those at or before the latest stored result are older.
            before, after = split_runs(counts.runs, as_us(cut) // MICROSECONDS if cut is not None else -1, interval)
            newer[endpoint_id] = after
            older += [ImportedResult(endpoint_id, from_us(at * MICROSECONDS), success, 0.0,
                                     "" if success else FAILURE_REASON)
                      for at, success in expand(before, interval)]
        filled = None
        if older:
            filled = backfill(conn, checks, older, thresholds=thresholds)
            summary.filled_time = summary.filled_time or filled.wrote
        check_changes, changes = store.record_runs(conn, checks, newer, thresholds=thresholds, reason=FAILURE_REASON,
                                                   last_values=last_values)
    summary.results += sum(run.count for rows in newer.values() for run in rows)
    summary.check_changes += len(check_changes)
    summary.changes += len(changes)
    if filled is not None:
        summary.backfilled += filled.filled
        summary.measured += filled.measured
        for key, count in filled.disagreeing.items():
            summary.disagreeing[key] = summary.disagreeing.get(key, 0) + count


def _audit(database: Database, summary: SyncSummary, actor: str | None) -> None:
    record = summary.as_dict()
    record.pop("seconds")
    record.pop("requests")
    with database.transaction(immediate=True) as conn:
        audit.record(conn, audit.Event(actor or audit.default_actor(), "probe.synced", "prometheus", summary.url,
                                       None, record))


def sync_recent(database: Database, settings, *, now: datetime | None = None,
                thresholds: Thresholds = Thresholds(),
                prometheus: Prometheus | None = None) -> SyncSummary | None:
    """The sync `dcops serve` runs on a timer, when Prometheus is the probing engine: every check
    from its latest stored result to now (less its settle), from settings.prometheus_url, not
    audited (the prober's rounds are not either); None when no Prometheus is configured. Raises
    PrometheusError when Prometheus is unreachable (the caller logs it and tries again later)."""
    if not settings.prometheus_url and prometheus is None:
        return None
    return sync(database, prometheus or settings.prometheus_url, now=now, thresholds=thresholds, actor="dcops-serve",
                audited=False)
