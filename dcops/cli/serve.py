"""`dcops serve`: the long-running main process (prober, /metrics, the outbox's e-mail, Alertmanager)."""

from __future__ import annotations

import typer

from dcops.cli.common import open_database, printable, settings
from dcops.cli.metrics import (BasicAuthPasswordFileOption, BasicAuthUserOption, CacheSecondsOption, HostOption,
                               PortOption, TlsCertOption, TlsKeyOption, basic_auth_from)
from dcops.cli.probe import CaFileOption, ConcurrencyOption, FailuresOption, SuccessesOption, thresholds_from


def serve_command(
    host: HostOption = "127.0.0.1",
    port: PortOption = 9410,
    cache_seconds: CacheSecondsOption = 5.0,
    concurrency: ConcurrencyOption = 100,
    failures: FailuresOption = 3,
    successes: SuccessesOption = 2,
    ca_file: CaFileOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    basic_auth_user: BasicAuthUserOption = None,
    basic_auth_password_file: BasicAuthPasswordFileOption = None,
) -> None:
    """Run dcops as a service: probe every endpoint on schedule, serve /metrics and /healthz, send
    the notifications the outbox holds and publish the status page.

    E-mail goes out through DCOPS_SMTP_HOST every 10 seconds; without it notifications are
    queued, not sent (the start-up line says which). With DCOPS_STATUS_DIR set, the status page
    is published every minute: the public one into DIR/public, the ministries' into
    DIR/ministries. With DCOPS_ALERTMANAGER_URL set, the maintenance windows' silences that
    Alertmanager could not take yet are tried again every minute (cancelled windows' expired);
    with DCOPS_ALERTMANAGER_WEBHOOK_SECRET_FILE set, POST /alertmanager/webhook records the
    DcopsProgrammeDown alerts Alertmanager sends (Authorization: Bearer <the file's secret>),
    shown by `dcops incident show`. Stops cleanly on SIGTERM or Ctrl-C, writing what it has probed.

    Example: dcops serve --port 9410 --concurrency 200
    """
    import threading

    from dcops.daemon import run_service, stop_on_signals

    thresholds = thresholds_from(failures, successes, concurrency=concurrency)
    basic_auth = basic_auth_from(basic_auth_user, basic_auth_password_file)
    config = settings()
    sender = None
    if config.smtp_host:
        from dcops.notifications.smtp import SmtpSender

        sender = SmtpSender.from_settings(config)
    mail = f"e-mail via {sender.where}" if sender else "notifications queued, not sent (DCOPS_SMTP_HOST unset)"
    pages = f"; status page every minute into {config.status_dir}" if config.status_dir else ""
    from dcops.alertmanager import client_from

    alertmanager = client_from(config)
    silences = f"; silences in Alertmanager at {alertmanager.url}" if alertmanager else ""
    database = open_database()
    options = {"host": host, "port": port, "cache_seconds": cache_seconds, "tls_cert": tls_cert, "tls_key": tls_key,
               "basic_auth": basic_auth, "allow_remote": True,
               "webhook_secret_file": config.alertmanager_webhook_secret_file}

    def ready(server) -> None:
        webhook = f"; Alertmanager webhook at {server.webhook_url}" if server.webhook_url else ""
        typer.echo(printable(f"probing; serving {server.url}; {mail}{pages}{silences}{webhook} (Ctrl-C to stop)"),
                   err=True)

    with stop_on_signals(threading.Event()) as stop:
        recorded = run_service(
            database, stop, server_options=options, concurrency=concurrency,
            thresholds=thresholds, ca_file=str(ca_file) if ca_file else None,
            tz=config.tz, outbox_sender=sender, status_dir=config.status_dir, settings=config,
            alertmanager=alertmanager, on_ready=ready,
        )
    typer.echo(f"stopped; {recorded} probe results recorded", err=True)
    database.dispose()
