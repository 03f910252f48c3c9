"""`dcops demo`: the whole chain on the embedded SQLite default, in a new folder of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def demo_command(
    directory: Annotated[Optional[Path], typer.Option(
        "--dir", help="A new or empty folder for everything the demo writes "
                      "(default: $DCOPS_HOME/demos/demo-YYYYmmdd-HHMMSS).")] = None,
    probe_seconds: Annotated[float, typer.Option(
        "--probe-seconds", help="How long to probe the stand-in endpoints (10 to 3600).")] = 40.0,
    keep_going: Annotated[bool, typer.Option(
        "--keep-going", help="Carry on past a failed step (requests, provisioning, reports...) and list the "
                             "failures at the end (exit 1), instead of stopping at the first.")] = False,
    serve: Annotated[bool, typer.Option(
        "--serve", help="After the chain, keep the portal and /metrics running on loopback (the stand-ins "
                        "answering, the prober probing at the inventory's intervals), print their URLs and "
                        "the demo's accounts, and wait until Ctrl-C (SIGINT or SIGTERM), which stops them "
                        "all cleanly (exit 0).")] = False,
) -> None:
    """Show the whole chain in a folder of its own: database, sample inventory, the demo's portal
    accounts, hosting requests (one submitted through the portal's HTTP API), sandbox provisioning,
    loopback stand-ins probed (one outage, one announced maintenance), /metrics, capacity snapshot,
    catalogue site, uptime and capacity reports.

    Uses its own database (DIR/dcops.db, DCOPS_HOME=DIR), never the configured one; its
    portal and stand-ins take free loopback ports (another demo may hold the sample's); the
    accounts' passwords are generated on each run and printed at the end. Leaves nothing
    running; Ctrl-C stops it cleanly (exit 130). About a minute.

    With --serve it stays up afterwards: the portal (sign in as a printed account) and /metrics,
    until Ctrl-C.

    Example: dcops demo --dir /tmp/dcops-demo --probe-seconds 30

    Example: dcops demo --serve   (open the portal it prints; Ctrl-C ends it)
    """
    from datetime import datetime

    from dcops.demo import default_directory, run_demo

    target = directory if directory is not None else default_directory(datetime.now())
    try:
        result = run_demo(target, probe_seconds=probe_seconds, echo=typer.echo, keep_going=keep_going,
                          serve=serve)
    except KeyboardInterrupt:
        typer.echo("dcops: interrupted: everything the demo started is stopped", err=True)
        raise typer.Exit(130) from None
    if result.failures:
        typer.echo(f"dcops: error: {len(result.failures)} step(s) of the demo failed (listed above)", err=True)
        raise typer.Exit(1)
