"""The long-running main process: the prober on schedule and the /metrics server, until a signal."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable

from dcops.db import Database
from dcops.health.history import Thresholds


def run_service(
    database: Database,
    stop: threading.Event,
    *,
    server_options: dict,
    concurrency: int = 100,
    thresholds: Thresholds = Thresholds(),
    ca_file: str | None = None,
    on_ready: Callable[[object], None] = lambda server: None,
) -> int:
    """Probe every check when due and serve /metrics and /healthz until `stop` is set.

    Returns how many probe results were recorded. The HTTP server runs in its own
    threads; the prober in this thread's event loop. Pending results are written
    before returning.
    """
    from dcops.health.prober import Scheduler
    from dcops.metrics.server import make_server

    server = make_server(database, **server_options)
    scheduler = Scheduler(database, concurrency=concurrency, thresholds=thresholds, ca_file=ca_file)
    server.start()
    try:
        on_ready(server)
        asyncio.run(scheduler.run(stop))
    finally:
        server.stop()
    return scheduler.recorded
