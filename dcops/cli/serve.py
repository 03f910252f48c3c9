"""`dcops serve`: the long-running main process (prober, /metrics, the outbox's e-mail, Alertmanager)."""

from __future__ import annotations

import logging
import sys

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
    shown by `dcops incident show`. With DCOPS_PROMETHEUS_URL set, Prometheus is the probing
    engine: dcops serve does not probe, it reads probe_success back every 30 seconds (as
    `dcops probe sync` does). Stops cleanly on SIGTERM or Ctrl-C, writing what it has probed.

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
    if config.prometheus_url:
        from dcops.health.prometheus import shown_url

        engine = f"reading probes from Prometheus at {shown_url(config.prometheus_url)} every 30 s"
    else:
        engine = "probing"
    database = open_database()
    options = {"host": host, "port": port, "cache_seconds": cache_seconds, "tls_cert": tls_cert, "tls_key": tls_key,
               "basic_auth": basic_auth, "allow_remote": True,
               "webhook_secret_file": config.alertmanager_webhook_secret_file}

    def ready(server) -> None:
        webhook = f"; Alertmanager webhook at {server.webhook_url}" if server.webhook_url else ""
        typer.echo(printable(f"{engine}; serving {server.url}; {mail}{pages}{silences}{webhook} (Ctrl-C to stop)"),
                   err=True)

    log_to_stderr()
    with stop_on_signals(threading.Event()) as stop:
        recorded = run_service(
            database, stop, server_options=options, concurrency=concurrency,
            thresholds=thresholds, ca_file=str(ca_file) if ca_file else None,
            tz=config.tz, outbox_sender=sender, status_dir=config.status_dir, settings=config,
            alertmanager=alertmanager, on_ready=ready,
        )
    typer.echo(f"stopped; {recorded} probe results {'read from Prometheus' if config.prometheus_url else 'recorded'}",
               err=True)
    database.dispose()


class _PrintableFormatter(logging.Formatter):
    """One log line, with no control sequence from an error text (a server's answer) in it."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (a test's runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def log_to_stderr() -> None:
    """dcops' own log lines (INFO and up: a snapshot taken, a sync that wrote, a server down) on
    stderr, timestamped; not the libraries', which log every HTTP request at INFO. Once per process."""
    logger = logging.getLogger("dcops")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
