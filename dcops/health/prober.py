"""The prober: rounds of concurrent probes over every check, folded into the history.

`run_once` is one round (`dcops probe run --once`); `Scheduler` probes each check when it
is due, for as long as it runs (`dcops probe run`, `dcops serve`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

from dcops.db import Database, utcnow
from dcops.errors import DatabaseBusy
from dcops.health.history import Thresholds
from dcops.health.store import CheckRow, compact, load_checks, record_results, record_stop

log = logging.getLogger("dcops.prober")
DEFAULT_CONCURRENCY = 100


def as_probe_check(row: CheckRow):
    """The probe's view of a stored check."""
    from dcops.health.probes import Check

    return Check(endpoint_id=row.endpoint_id, programme=row.programme, name=row.name, kind=row.kind,
                 target=row.target, expect_status=row.expect_status, body_contains=row.body_contains,
                 timeout_seconds=row.timeout_seconds, interval_seconds=row.interval_seconds)


@dataclass
class RoundSummary:
    """What one round found: how many checks, which failed and why, how long it took."""

    checks: int
    succeeded: int
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # programme, check, reason
    programme_changes: list[tuple[str, str, str]] = field(default_factory=list)  # programme, state, reason
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"checks": self.checks, "succeeded": self.succeeded, "seconds": round(self.seconds, 3),
                "failures": [{"programme": p, "check": c, "reason": r} for p, c, r in self.failures],
                "programme_changes": [{"programme": p, "state": s, "reason": r} for p, s, r in self.programme_changes]}


def run_once(
    database: Database, *, concurrency: int = DEFAULT_CONCURRENCY, thresholds: Thresholds = Thresholds(),
    ca_file: str | None = None,
) -> RoundSummary:
    """Probe every check once, concurrently, and record the results in one transaction."""
    from dcops.health.probes import probe_all

    started = time.perf_counter()
    with database.transaction() as conn:
        rows = load_checks(conn)
    results = asyncio.run(probe_all([as_probe_check(r) for r in rows], concurrency=concurrency, ca_file=ca_file))
    with database.transaction(immediate=True) as conn:
        changes = record_results(conn, rows, results, thresholds=thresholds)
    names = {r.endpoint_id: (r.programme, r.name) for r in rows}
    return RoundSummary(
        checks=len(rows),
        succeeded=sum(1 for r in results if r.success),
        failures=[(*names[r.endpoint_id], r.reason) for r in results if not r.success],
        programme_changes=[(slug, t.state, t.reason) for slug, t in changes],
        seconds=time.perf_counter() - started,
    )


class Scheduler:
    """Probes each check when it is due and records results in batches.

    A hanging target holds only its own slot until its timeout; a locked database only
    delays the write (results wait in memory and go in with the next batch).
    """

    def __init__(self, database: Database, *, concurrency: int = DEFAULT_CONCURRENCY,
                 thresholds: Thresholds = Thresholds(), ca_file: str | None = None, reload_seconds: float = 60.0,
                 flush_seconds: float = 1.0, compact_seconds: float = 3600.0,
                 on_round: Callable[[list], None] | None = None):
        self.database = database
        self.concurrency = concurrency
        self.thresholds = thresholds
        self.ca_file = ca_file
        self.reload_seconds = reload_seconds
        self.flush_seconds = flush_seconds
        self.compact_seconds = compact_seconds
        self.on_round = on_round
        self.pending: list = []
        self.rows: dict[int, CheckRow] = {}
        self.recorded = 0

    def _reload(self) -> None:
        with self.database.transaction() as conn:
            self.rows = {row.endpoint_id: row for row in load_checks(conn)}

    def _flush(self) -> None:
        if not self.pending:
            return
        # Results leave `pending` only once written (probes keep appending meanwhile).
        batch = list(self.pending)
        try:
            with self.database.transaction(immediate=True) as conn:
                record_results(conn, list(self.rows.values()), batch, thresholds=self.thresholds)
        except DatabaseBusy:
            log.warning("database locked: %d results wait for the next write", len(batch))
            return
        del self.pending[:len(batch)]
        self.recorded += len(batch)

    def _record_stop(self) -> None:
        """Say where probing stopped, so that readers need not wait out the grace to call it unknown."""
        try:
            with self.database.transaction(immediate=True) as conn:
                record_stop(conn, list(self.rows.values()), at=utcnow())
        except DatabaseBusy:
            log.warning("database locked: the stop is not recorded (readers find it out later)")

    def _compact(self) -> None:
        with self.database.transaction(immediate=True) as conn:
            compact(conn, now=utcnow())

    async def run(self, stop: threading.Event) -> None:
        """Probe until `stop` is set; then write what is pending and return."""
        from dcops.health.probes import Admission, make_client, probe

        await asyncio.to_thread(self._reload)
        client = make_client(ca_file=self.ca_file)
        admission = Admission(self.concurrency)
        next_due: dict[int, float] = {}
        running: set[asyncio.Task] = set()
        loop_start = time.monotonic()
        last_reload = last_flush = last_compact = loop_start

        async def one(row: CheckRow) -> None:
            async with admission:  # the probe's clock starts once it is let in, not while it waits
                result = await probe(as_probe_check(row), client=client, ca_file=self.ca_file)
            self.pending.append(result)

        try:
            while not stop.is_set():
                now = time.monotonic()
                if now - last_reload >= self.reload_seconds:
                    await asyncio.to_thread(self._reload)
                    last_reload = now
                busy = {task.get_name() for task in running}
                for endpoint_id, row in self.rows.items():
                    if endpoint_id not in next_due:
                        # Spread the first round over one interval, the same way each start.
                        offset = zlib.crc32(str(endpoint_id).encode()) % max(row.interval_seconds, 1)
                        next_due[endpoint_id] = loop_start + min(offset, 2.0)
                    if next_due[endpoint_id] <= now and str(endpoint_id) not in busy:
                        next_due[endpoint_id] = now + row.interval_seconds
                        task = asyncio.create_task(one(row), name=str(endpoint_id))
                        running.add(task)
                        task.add_done_callback(running.discard)
                if now - last_flush >= self.flush_seconds:
                    await asyncio.to_thread(self._flush)
                    last_flush = now
                if now - last_compact >= self.compact_seconds:
                    await asyncio.to_thread(self._compact)
                    last_compact = now
                await asyncio.sleep(0.1)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await client.aclose()
            await asyncio.to_thread(self._flush)
            await asyncio.to_thread(self._record_stop)
