"""The scrape-time collector: programme health, probes, availability, capacity, requests and jobs."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, or_, select

from dcops.catalogue.requests import REQUEST_STATES
from dcops.db import Database, utcnow
from dcops.health.history import DOWN, UP, availability
from dcops.inventory.queries import cluster_usage
from dcops.models import CheckState, Endpoint, HostingRequest, Job, Ministry, Programme, StateInterval
from dcops.provisioning.jobs import TERMINAL

T_PROGRAMME = Programme.__table__
T_MINISTRY = Ministry.__table__
T_ENDPOINT = Endpoint.__table__
T_STATE = CheckState.__table__
T_INTERVAL = StateInterval.__table__
T_REQUEST = HostingRequest.__table__
T_JOB = Job.__table__

JOB_STATUSES = ("running", *TERMINAL)
# Availability windows: label value and length. The longest bounds the interval query.
WINDOWS = (("1d", timedelta(days=1)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30)))


class InventoryCollector(Collector):
    """Reads the dcops database at scrape time and yields gauges; it keeps no state of its own.

    `dcops_programme_up` is exported only for programmes whose open programme-level
    interval is up (1) or down (0): a programme never probed, or in the unknown state
    (no recent data), has no sample, so that "no data" is never mistaken for "down".
    Retired programmes are never exported. With `cache_seconds` > 0 the families read
    by one scrape are served again to the scrapes that follow within that many seconds
    of `clock` (monotonic seconds); `now` is the wall clock the availability windows end at.
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
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without samples, so that registering never reads the database."""
        return iter(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The metric families, read from the database (or from the cache while it is fresh)."""
        if self.cache_seconds <= 0:
            return iter(self.snapshot())
        # One scrape at a time reads the database; the others wait and get its result.
        with self._lock:
            moment = self._clock()
            if self._cached is None or not 0 <= moment - self._cached[0] < self.cache_seconds:
                self._cached = (moment, self.snapshot())
            return iter(self._cached[1])

    def snapshot(self) -> list[GaugeMetricFamily]:
        """Read everything in one transaction, with one query per kind of row (never one per programme)."""
        now = self.now()
        with self.database.transaction() as conn:
            programmes = conn.execute(
                select(T_PROGRAMME.c.id, T_PROGRAMME.c.slug, T_MINISTRY.c.code, T_PROGRAMME.c.tier,
                       T_PROGRAMME.c.status, T_PROGRAMME.c.environment)
                .join(T_MINISTRY, T_MINISTRY.c.id == T_PROGRAMME.c.ministry_id)
                .where(T_PROGRAMME.c.status != "retired")
                .order_by(T_PROGRAMME.c.slug)
            ).all()
            checks = conn.execute(
                select(T_ENDPOINT.c.programme_id, T_ENDPOINT.c.name, T_STATE.c.last_success,
                       T_STATE.c.last_duration_seconds, T_STATE.c.last_at, T_STATE.c.tls_expires_at)
                .join(T_ENDPOINT, T_ENDPOINT.c.id == T_STATE.c.endpoint_id)
                .where(T_STATE.c.last_at.is_not(None))
                .order_by(T_ENDPOINT.c.programme_id, T_ENDPOINT.c.name)
            ).all()
            intervals = conn.execute(
                select(T_INTERVAL.c.programme_id, T_INTERVAL.c.state, T_INTERVAL.c.started_at, T_INTERVAL.c.ended_at)
                .where(T_INTERVAL.c.endpoint_id.is_(None), T_INTERVAL.c.started_at < now,
                       or_(T_INTERVAL.c.ended_at.is_(None), T_INTERVAL.c.ended_at > now - WINDOWS[-1][1]))
            ).all()
            usage = cluster_usage(conn)
            requests = dict(conn.execute(select(T_REQUEST.c.state, func.count()).group_by(T_REQUEST.c.state)).all())
            jobs = dict(conn.execute(select(T_JOB.c.status, func.count()).group_by(T_JOB.c.status)).all())

        families = _families()
        (up, success, duration, last, info, ratio, tls, capacity, allocated, request_count, job_count) = families
        live = {row.id: row for row in programmes}
        for row in programmes:
            info.add_metric([row.slug, row.code, str(row.tier), row.status, row.environment], 1)

        by_programme: dict[int, list[tuple[str, datetime, datetime | None]]] = defaultdict(list)
        for row in intervals:
            if row.programme_id in live:
                by_programme[row.programme_id].append((row.state, row.started_at, row.ended_at))
        for programme in programmes:
            spans = by_programme.get(programme.id, [])
            current = next((state for state, _start, end in spans if end is None), None)
            if current in (UP, DOWN):
                up.add_metric([programme.slug, programme.code], 1 if current == UP else 0)
            for window, length in WINDOWS:
                value = availability(spans, now - length, now, now=now).ratio
                if value is not None:
                    ratio.add_metric([programme.slug, window], value)

        for row in checks:
            programme = live.get(row.programme_id)
            if programme is None:
                continue
            labels = [programme.slug, row.name]
            if row.last_success is not None:
                success.add_metric(labels, 1 if row.last_success else 0)
            if row.last_duration_seconds is not None:
                duration.add_metric(labels, row.last_duration_seconds)
            last.add_metric(labels, row.last_at.timestamp())
            if row.tls_expires_at is not None:
                tls.add_metric(labels, row.tls_expires_at.timestamp())

        for row in usage:
            capacity.add_metric([row.cluster, row.site, row.resource], row.capacity)
            allocated.add_metric([row.cluster, row.site, row.resource], row.allocated)
        for state in (*REQUEST_STATES, *sorted(set(requests) - set(REQUEST_STATES))):
            request_count.add_metric([state], requests.get(state, 0))
        for status in (*JOB_STATUSES, *sorted(set(jobs) - set(JOB_STATUSES))):
            job_count.add_metric([status], jobs.get(status, 0))
        return families


def _families() -> list[GaugeMetricFamily]:
    """Every family the collector exports, empty, in exposition order."""
    probe = ["programme", "check"]
    cluster = ["cluster", "site", "resource"]
    return [
        GaugeMetricFamily("dcops_programme_up",
                          "Whether the programme is up (1) or down (0), from its checks' damped states; "
                          "absent while unknown or never probed.", labels=["programme", "ministry"]),
        GaugeMetricFamily("dcops_probe_success", "Whether the last probe of the check succeeded (1) or not (0).",
                          labels=probe),
        GaugeMetricFamily("dcops_probe_duration_seconds", "How long the last probe of the check took, in seconds.",
                          labels=probe),
        GaugeMetricFamily("dcops_probe_last_timestamp_seconds",
                          "When the check was last probed, in Unix seconds.", labels=probe),
        GaugeMetricFamily("dcops_programme_info", "A programme the data centre hosts (not retired); always 1.",
                          labels=["programme", "ministry", "tier", "status", "environment"]),
        GaugeMetricFamily("dcops_programme_availability_ratio",
                          "Up time over up and down time of the programme in the trailing window (0-1); "
                          "unknown time is left out.", labels=["programme", "window"]),
        GaugeMetricFamily("dcops_tls_cert_expiry_timestamp_seconds",
                          "When the certificate the check last saw expires, in Unix seconds.", labels=probe),
        GaugeMetricFamily("dcops_cluster_capacity",
                          "What the cluster can hold of the resource: (total - reserved) x allocation ratio "
                          "(vcpu in vCPUs, ram_gib and storage_gib in GiB).", labels=cluster),
        GaugeMetricFamily("dcops_cluster_allocated",
                          "The sum of the programmes' allocations of the resource on the cluster.", labels=cluster),
        GaugeMetricFamily("dcops_requests", "Hosting requests in each state.", labels=["state"]),
        GaugeMetricFamily("dcops_provision_jobs", "Provisioning jobs (Ansible runs) in each status.",
                          labels=["status"]),
    ]
