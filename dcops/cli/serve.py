"""`dcops serve`: the long-running main process (prober and /metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dcops.cli.common import fail, open_database, settings


def serve_command(
    host: Annotated[str, typer.Option(help="Address for /metrics; a non-loopback one exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port for /metrics and /healthz.", min=0, max=65535)] = 9410,
    cache_seconds: Annotated[float, typer.Option(help="Reuse one database read for scrapes within this time.",
                                                 min=0)] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Probes in flight at once.", min=1, max=10_000)] = 100,
    failures: Annotated[int, typer.Option(help="Down after this many failures in a row.", min=1, max=100)] = 3,
    successes: Annotated[int, typer.Option(help="Up after this many successes in a row.", min=1, max=100)] = 2,
    ca_file: Annotated[Optional[Path], typer.Option(help="CA bundle for TLS checks (default: system).")] = None,
    tls_cert: Annotated[Optional[Path], typer.Option(help="TLS certificate (PEM) for /metrics.")] = None,
    tls_key: Annotated[Optional[Path], typer.Option(help="Its private key (PEM).")] = None,
    basic_auth_user: Annotated[Optional[str], typer.Option(help="Require HTTP basic auth with this user.")] = None,
    basic_auth_password_file: Annotated[Optional[Path], typer.Option(help="File with the password or its hash.")] = None,
) -> None:
    """Run dcops as a service: probe every endpoint on schedule and serve /metrics and /healthz.

    Stops cleanly on SIGTERM or Ctrl-C, writing what it has probed.

    Example: dcops serve --port 9410 --concurrency 200
    """
    import threading

    from dcops.daemon import run_service
    from dcops.health.history import Thresholds
    from dcops.metrics.server import read_password_file, stop_on_signals

    if (basic_auth_user is None) != (basic_auth_password_file is None):
        fail("basic auth needs both --basic-auth-user and --basic-auth-password-file")
    basic_auth = (basic_auth_user, read_password_file(basic_auth_password_file)) if basic_auth_user else None
    database = open_database()
    options = {"host": host, "port": port, "cache_seconds": cache_seconds, "tls_cert": tls_cert, "tls_key": tls_key,
               "basic_auth": basic_auth, "allow_remote": True}
    with stop_on_signals(threading.Event()) as stop:
        recorded = run_service(
            database, stop, server_options=options, concurrency=concurrency,
            thresholds=Thresholds(failures, successes), ca_file=str(ca_file) if ca_file else None,
            tz=settings().tz, on_ready=lambda server: typer.echo(f"probing; serving {server.url}/metrics (Ctrl-C to stop)", err=True),
        )
    typer.echo(f"stopped; {recorded} probe results recorded", err=True)
    database.dispose()
