"""`dcops metrics`: the Prometheus exporter, file_sd targets and alert rules for Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dcops.cli.common import fail, open_database
from dcops.vocabulary import BLACKBOX_JOB, DEFAULT_BLACKBOX, DEFAULT_TARGETS_FILE

app = typer.Typer(help="Prometheus: serve /metrics, write file_sd targets, alert rules and the blackbox_exporter job.",
                  no_args_is_help=True)

# The exporter's options, shared with `dcops serve`.
HostOption = Annotated[str, typer.Option(help="Address to listen on; a non-loopback one exposes the metrics.")]
PortOption = Annotated[int, typer.Option(help="TCP port for /metrics and /healthz.", min=0, max=65535)]
CacheSecondsOption = Annotated[float, typer.Option(help="Serve one database read to the scrapes within this many "
                                                        "seconds (0: read at every scrape).", min=0)]
TlsCertOption = Annotated[Optional[Path], typer.Option(help="TLS certificate (PEM); serves HTTPS with --tls-key.")]
TlsKeyOption = Annotated[Optional[Path], typer.Option(help="The certificate's private key (PEM).")]
BasicAuthUserOption = Annotated[Optional[str], typer.Option(help="Require HTTP basic auth with this user.")]
BasicAuthPasswordFileOption = Annotated[Optional[Path], typer.Option(
    help="File whose first line is the password, or a pbkdf2_sha256$... hash of it.")]


def basic_auth_from(user: Optional[str], password_file: Optional[Path]) -> tuple[str, str] | None:
    """(user, password or hash) from the two options, which come together or not at all."""
    if (user is None) != (password_file is None):
        fail("basic auth needs both --basic-auth-user and --basic-auth-password-file")
    if user is None:
        return None
    from dcops.metrics.server import read_password_file

    return user, read_password_file(password_file)


@app.command("serve")
def serve_command(
    host: HostOption = "127.0.0.1",
    port: PortOption = 9410,
    cache_seconds: CacheSecondsOption = 5.0,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    basic_auth_user: BasicAuthUserOption = None,
    basic_auth_password_file: BasicAuthPasswordFileOption = None,
) -> None:
    """Serve /metrics (Prometheus text format) and /healthz until SIGTERM or Ctrl-C.

    Metrics are read from the database at scrape time. Listens on loopback unless
    --host names another address; basic auth on a non-loopback address needs TLS.

    Example: dcops metrics serve --host 10.0.0.5 --cache-seconds 10
    """
    import threading

    from dcops.daemon import stop_on_signals
    from dcops.metrics.server import serve

    basic_auth = basic_auth_from(basic_auth_user, basic_auth_password_file)
    database = open_database()
    with stop_on_signals(threading.Event()) as stop:
        # The default is loopback, so a non-loopback --host was typed by the operator: that is the opt-in.
        serve(database, host=host, port=port, cache_seconds=cache_seconds, tls_cert=tls_cert, tls_key=tls_key,
              basic_auth=basic_auth, allow_remote=True, stop_event=stop,
              on_ready=lambda server: typer.echo(f"serving {server.url} (Ctrl-C to stop)", err=True))
    database.dispose()


MkdirOption = Annotated[bool, typer.Option("--mkdir", help="Create the file's missing folders.")]


def _write(out: Path, content: str, make_parents: bool, what: str) -> None:
    """Write a Prometheus file atomically, or print it for '-'."""
    from dcops.files import is_stdout, open_output

    open_output(out, make_parents=make_parents).commit(content)
    if not is_stdout(out):
        typer.echo(f"wrote {what} to {out}")


@app.command("targets")
def targets_command(
    out: Annotated[Path, typer.Argument(help="The JSON file to write, atomically ('-': standard output).")],
    mkdir: MkdirOption = False,
) -> None:
    """Write Prometheus file_sd targets for blackbox_exporter: one per programme endpoint.

    Each target carries the labels programme, ministry, tier, check and module
    (http_2xx, tcp_connect or tls_connect), and its check's interval and timeout as
    __scrape_interval__ and __scrape_timeout__; retired programmes are left out.
    `dcops metrics scrape-config` prints the Prometheus job that reads this file.

    Example: dcops metrics targets /etc/prometheus/file_sd/dcops.json
    """
    from dcops.files import writable_target, is_stdout
    from dcops.metrics.files import dump_targets, file_sd_targets

    if not is_stdout(out):
        writable_target(out, make_parents=mkdir)  # a wrong path is found before the database is read
    with open_database().transaction() as conn:
        targets = file_sd_targets(conn)
    _write(out, dump_targets(targets), mkdir, f"{len(targets)} targets")


@app.command("rules")
def rules_command(
    out: Annotated[Path, typer.Argument(help="The rules file (YAML) to write, atomically ('-': standard "
                                        "output).")],
    down_for_minutes: Annotated[int, typer.Option(help="DcopsProgrammeDown fires after this many minutes down.",
                                                  min=0)] = 5,
    mkdir: MkdirOption = False,
) -> None:
    """Write Prometheus alert rules: programme down, certificates expiring, SLO burn rates per tier.

    Burn-rate alerts follow the SRE workbook (page at 14.4x over 1h and 5m or 6x over
    6h and 30m, ticket at 1x over 3d and 6h), with each tier's SLA target.

    Example: dcops metrics rules /etc/prometheus/rules/dcops.yml
    """
    from dcops.files import is_stdout, writable_target
    from dcops.metrics.files import alert_rules, dump_rules, sla_tiers

    if not is_stdout(out):
        writable_target(out, make_parents=mkdir)
    with open_database().transaction() as conn:
        tiers = sla_tiers(conn)
    document = alert_rules(tiers, down_for_minutes=down_for_minutes)
    _write(out, dump_rules(document), mkdir, f"{sum(len(g['rules']) for g in document['groups'])} rules")


@app.command("scrape-config")
def scrape_config_command(
    blackbox: Annotated[str, typer.Option(help="blackbox_exporter's HOST:PORT, as Prometheus reaches it.")]
    = DEFAULT_BLACKBOX,
    targets: Annotated[str, typer.Option(help="The file_sd file `dcops metrics targets` writes, as Prometheus "
                                              "finds it.")] = DEFAULT_TARGETS_FILE,
    job: Annotated[str, typer.Option(help="The job's name (`dcops probe sync --job` reads it).")] = BLACKBOX_JOB,
) -> None:
    """Print the Prometheus scrape job that probes dcops' targets through blackbox_exporter.

    The job reads the file_sd file of `dcops metrics targets` and relabels each target into
    blackbox_exporter's /probe?target=...&module=... (the target's module label), its instance
    label the target; each target is scraped at its check's interval. Paste it under
    scrape_configs in prometheus.yml; blackbox_exporter needs the modules of
    `dcops metrics blackbox-config`.

    Example: dcops metrics scrape-config --blackbox 10.0.0.7:9115 --targets /etc/prometheus/file_sd/dcops.json
    """
    from dcops.metrics.files import dump_scrape_config, scrape_config

    typer.echo(dump_scrape_config(scrape_config(blackbox=blackbox, targets_file=targets, job=job)), nl=False)


@app.command("blackbox-config")
def blackbox_config_command() -> None:
    """Print blackbox_exporter's configuration: the modules dcops' targets name.

    http_2xx takes any status 200-399 and does not follow redirects, tcp_connect connects,
    tls_connect connects and verifies the TLS handshake: what dcops' own prober does for a
    check with the default expect_status. Checks with another expect_status or a
    body_contains are named on stderr: blackbox_exporter probes them with these defaults.

    Example: dcops metrics blackbox-config > /etc/prometheus/blackbox.yml
    """
    from dcops.cli.common import some_of
    from dcops.metrics.files import blackbox_modules, checks_blackbox_differs_on, dump_blackbox_modules

    with open_database().transaction() as conn:
        differing = checks_blackbox_differs_on(conn)
    typer.echo(dump_blackbox_modules(blackbox_modules()), nl=False)
    if differing:
        typer.echo(f"{len(differing)} http checks ask for a status or body these modules do not check: "
                   f"{some_of(differing)}", err=True)
