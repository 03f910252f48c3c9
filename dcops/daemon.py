"""The long-running main process: the prober (or the sync from Prometheus), /metrics and the outbox, until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator
from zoneinfo import ZoneInfo

from dcops.db import Database
from dcops.health.history import Thresholds
from dcops.settings import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from dcops.settings import Settings

log = logging.getLogger(__name__)
# How often the service looks whether today's capacity snapshot is still to be taken.
SNAPSHOT_CHECK_SECONDS = 600.0
# How often the service sends what the outbox holds (a full batch is followed at once by the next).
OUTBOX_SECONDS = 10.0
# How often the service publishes the status page, when DCOPS_STATUS_DIR is set.
STATUS_SECONDS = 60.0
# How often the service tries the pending Alertmanager silences (and expiries), when DCOPS_ALERTMANAGER_URL is set.
SILENCE_SECONDS = 60.0
# How often the service reads the probes back from Prometheus when it is the probing engine
# (DCOPS_PROMETHEUS_URL set): a sync with nothing much new takes about a second for 200 programmes,
# and 30 s keeps a check of a minute's interval well inside the three intervals after which the
# readers call it unknown (its settle, the step it waits for and this add up to under two minutes).
PROMETHEUS_SYNC_SECONDS = 30.0
# A Prometheus that stays unreachable is logged again this often, not at every round.
PROMETHEUS_WARN_EVERY_SECONDS = 600.0


@contextmanager
def stop_on_signals(stop_event: threading.Event, *,
                    also: threading.Event | None = None) -> Iterator[threading.Event]:
    """Set `stop_event` (and `also`, to tell a signal from a normal stop) on SIGTERM and SIGINT
    while inside (main thread only); the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield stop_event
        return

    def handler(_signum, _frame) -> None:
        if also is not None:
            also.set()
        stop_event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop_event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_service(
    database: Database,
    stop: threading.Event,
    *,
    server_options: dict,
    concurrency: int = 100,
    thresholds: Thresholds = Thresholds(),
    ca_file: str | None = None,
    tz: ZoneInfo = ZoneInfo(DEFAULT_TIMEZONE),
    on_ready: Callable[[object], None] = lambda server: None,
    outbox_sender=None,
    status_dir: Path | None = None,
    settings: "Settings | None" = None,
    alertmanager=None,
) -> int:
    """Probe every check when due, serve /metrics and /healthz, take the day's capacity
    snapshot, given `outbox_sender` send the outbox every OUTBOX_SECONDS, given `status_dir`
    (and the `settings` it is published with) publish the status page every STATUS_SECONDS and,
    given `alertmanager` (an AlertmanagerClient), create and expire the maintenance windows'
    silences still due every SILENCE_SECONDS, until `stop` is set. The server's options may
    include `webhook_secret_file`, which serves Alertmanager's webhook.

    With `settings.prometheus_url` set, Prometheus is the probing engine: instead of probing, the
    service reads its probes back every PROMETHEUS_SYNC_SECONDS (one engine feeds the history; two
    would judge each check twice, a little apart at every edge).

    Returns how many probe results were recorded (read back, with Prometheus). The HTTP server
    runs in its own threads, the snapshots in one more, the outbox in another; the prober in this
    thread's event loop (the sync from Prometheus in a thread too). Pending results are written
    before returning.
    """
    from dcops.metrics.server import MetricsServer

    server = MetricsServer(database, **server_options)
    synced = None
    if settings is not None and settings.prometheus_url:
        synced = SyncCount()
        scheduler = None
    else:
        from dcops.health.prober import Scheduler

        scheduler = Scheduler(database, concurrency=concurrency, thresholds=thresholds, ca_file=ca_file)
    server.start()
    snapshots = threading.Thread(target=snapshot_daily, args=(database, stop, tz), name="dcops-snapshots",
                                 daemon=True)
    snapshots.start()
    outbox = None
    if outbox_sender is not None:
        outbox = threading.Thread(target=send_outbox, args=(database, stop, outbox_sender), name="dcops-outbox",
                                  daemon=True)
        outbox.start()
    publisher = None
    if status_dir is not None:
        if settings is None:
            raise ValueError("run_service: status_dir needs the settings to publish with")
        publisher = threading.Thread(target=publish_status, args=(database, stop, Path(status_dir), settings),
                                     name="dcops-status", daemon=True)
        publisher.start()
    silencer = None
    if alertmanager is not None:
        silencer = threading.Thread(target=sync_silences_every, args=(database, stop, alertmanager),
                                    name="dcops-silences", daemon=True)
        silencer.start()
    syncer = None
    if synced is not None:
        syncer = threading.Thread(target=sync_prometheus_every, args=(database, stop, settings, thresholds, synced),
                                  name="dcops-prometheus", daemon=True)
        syncer.start()
    try:
        on_ready(server)
        if scheduler is not None:
            asyncio.run(scheduler.run(stop))
        else:
            while not stop.wait(1.0):  # a short wait: the signal handler runs between them
                pass
    finally:
        stop.set()  # the snapshot thread waits on it: a prober that failed must not leave it waiting
        server.stop()
        snapshots.join(timeout=10)
        if outbox is not None:
            outbox.join(timeout=10)  # it stops after the message it is sending
        if publisher is not None:
            publisher.join(timeout=30)  # it stops after the publish it is writing
        if silencer is not None:
            silencer.join(timeout=30)  # it stops after the silence it is asking for
        if syncer is not None:
            syncer.join(timeout=130)  # it stops after the chunk it is writing (a request times out in 120 s)
    return scheduler.recorded if scheduler is not None else synced.results


def snapshot_daily(database: Database, stop: threading.Event, tz: ZoneInfo,
                   check_seconds: float = SNAPSHOT_CHECK_SECONDS) -> None:
    """Take the capacity snapshot once per local day, whichever process gets there first."""
    from dcops.errors import DcopsError
    from dcops.reports.documents import snapshot_due, take_capacity_snapshot

    while not stop.is_set():
        try:
            if snapshot_due(database, tz=tz):
                day, count = take_capacity_snapshot(database, tz=tz)
                log.info("capacity snapshot of %s: %d cluster resources", day, count)
        except DcopsError as error:  # a locked database: the next check tries again
            log.warning("capacity snapshot not taken: %s", error)
        stop.wait(check_seconds)


def send_outbox(database: Database, stop: threading.Event, sender, interval_s: float = OUTBOX_SECONDS) -> None:
    """Deliver the outbox through `sender` every `interval_s` seconds until `stop` is set; what could
    not be sent is logged (and retried by the outbox's own backoff)."""
    from dcops.errors import DcopsError
    from dcops.notifications import deliver_pending

    while not stop.is_set():
        batch, claimed = 50, 0
        try:
            report = deliver_pending(database, sender, batch=batch, stop=stop)
            claimed = report.claimed
            for outcome in (*report.retried, *report.failed):
                log.warning("notification %d (%s) %s: %s", outcome.id, outcome.event,
                            "failed for good" if outcome.status == "failed" else f"not sent, try {outcome.attempts}",
                            outcome.error)
        except DcopsError as error:  # a locked database, a mail setting: the next round tries again
            log.warning("outbox not sent: %s", error)
        if claimed < batch:
            stop.wait(interval_s)


def publish_status(database: Database, stop: threading.Event, directory: Path, settings: "Settings",
                   interval_s: float = STATUS_SECONDS) -> None:
    """Publish the status page every `interval_s` seconds until `stop` is set: the public site into
    DIRECTORY/public, the ministries' into DIRECTORY/ministries (dcops.status.publish_both). A
    publish that fails is logged in one line and tried again at the next round; it never stops
    the prober."""
    from dcops.errors import DcopsError
    from dcops.status import PastDays, publish_both

    past = PastDays()  # the days before today, recomputed only when their history changes
    while not stop.is_set():
        try:
            publish_both(database, directory, settings=settings, actor="dcops", past=past)
        except (DcopsError, OSError) as error:  # a locked database, a full disk: the next round tries again
            log.warning("status page not published: %s", error)
        except Exception as error:  # noqa: BLE001 - a bug in one publish must not end the thread for good
            log.warning("status page not published: %s: %s", type(error).__name__, error)
        stop.wait(interval_s)


def sync_silences_every(database: Database, stop: threading.Event, client,
                        interval_s: float = SILENCE_SECONDS) -> None:
    """Create the pending maintenance silences and expire the cancelled windows' in Alertmanager
    (dcops.alertmanager.sync_silences) every `interval_s` seconds until `stop` is set; what is still
    pending is logged in one line each, and tried again at the next round."""
    from dcops.alertmanager import sync_silences
    from dcops.errors import DcopsError

    while not stop.is_set():
        try:
            for outcome in sync_silences(database, client):
                if outcome.state in ("pending", "expiring"):
                    log.warning("silence of maintenance window %d still %s: %s", outcome.window_id, outcome.state,
                                outcome.error)
                elif outcome.state == "failed":
                    log.warning("silence of maintenance window %d failed for good: %s", outcome.window_id,
                                outcome.error)
                else:
                    log.info("silence of maintenance window %d %s", outcome.window_id, outcome.state)
        except DcopsError as error:  # a locked database: the next round tries again
            log.warning("silences not synced: %s", error)
        except Exception as error:  # noqa: BLE001 - a bug in one round must not end the thread for good
            log.warning("silences not synced: %s: %s", type(error).__name__, error)
        stop.wait(interval_s)


class SyncCount:
    """What the service's syncs from Prometheus read, for the line it prints when it stops."""

    def __init__(self) -> None:
        self.results = 0


def sync_prometheus_every(database: Database, stop: threading.Event, settings: "Settings", thresholds: Thresholds,
                          count: SyncCount, interval_s: float = PROMETHEUS_SYNC_SECONDS) -> None:
    """Read the probes back from Prometheus (dcops.health.prometheus.sync_recent) every `interval_s`
    seconds until `stop` is set. A sync that wrote is logged in one line (INFO); Prometheus
    unreachable is a WARNING at first and every PROMETHEUS_WARN_EVERY_SECONDS while it lasts, and
    the next round reads on from where the history stopped."""
    import time

    from dcops.errors import DcopsError, PrometheusError
    from dcops.health.prometheus import sync_recent

    warned_at: float | None = None
    while not stop.is_set():
        try:
            summary = sync_recent(database, settings, thresholds=thresholds)
            if warned_at is not None:
                log.info("Prometheus answers again")
                warned_at = None
            if summary is not None:
                count.results += summary.results
                if summary.wrote:
                    log.info("synced from Prometheus: %d results of %d checks, %d state changes, in %.1f s",
                             summary.results, summary.checks, summary.changes, summary.seconds)
        except PrometheusError as error:
            if warned_at is None or time.monotonic() - warned_at >= PROMETHEUS_WARN_EVERY_SECONDS:
                log.warning("not synced from Prometheus: %s", error)
                warned_at = time.monotonic()
        except DcopsError as error:  # a locked database: the next round tries again
            log.warning("not synced from Prometheus: %s", error)
        except Exception as error:  # noqa: BLE001 - a bug in one round must not end the thread for good
            log.warning("not synced from Prometheus: %s: %s", type(error).__name__, error)
        stop.wait(interval_s)
