"""`dcops probe`: probe the programmes' endpoints, see their states, import history, sync from Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, ActorOption, Output, RecordOutput, RecordOutputOption, echo_csv, echo_json,
                              echo_table, open_database, printable, some_of)
from dcops.errors import UserError
from dcops.vocabulary import BLACKBOX_JOB

app = typer.Typer(help="Health probes of the programmes' endpoints, and their history.", no_args_is_help=True)

FailuresOption = Annotated[int, typer.Option("--failures", help="Down after this many failures in a row.")]
SuccessesOption = Annotated[int, typer.Option("--successes", help="Up after this many successes in a row.")]
CaFileOption = Annotated[Optional[Path], typer.Option("--ca-file", help="CA bundle for TLS checks (default: system).")]
ConcurrencyOption = Annotated[int, typer.Option(help="Probes in flight at once.")]


def thresholds_from(failures: int, successes: int, concurrency: int | None = None):
    """The damping thresholds, once the probing options are checked (shared with `dcops serve`)."""
    from dcops.errors import UserError
    from dcops.health.history import Thresholds

    if concurrency is not None and not 1 <= concurrency <= 10_000:
        raise UserError("--concurrency must be between 1 and 10000")
    if not (1 <= failures <= 100 and 1 <= successes <= 100):
        raise UserError("--failures and --successes must be between 1 and 100")
    return Thresholds(failures, successes)


@app.command("run")
def run_command(
    once: Annotated[bool, typer.Option("--once", help="One round over every check, then exit.")] = False,
    concurrency: ConcurrencyOption = 100,
    failures: FailuresOption = 3,
    successes: SuccessesOption = 2,
    ca_file: CaFileOption = None,
    output: Annotated[RecordOutput, typer.Option("--output", "-o", help="table or json (with --once)")] = RecordOutput.table,
) -> None:
    """Probe every endpoint of every live programme: once, or each when due until stopped.

    A programme turns down after --failures failures in a row and up after --successes
    successes; its history is kept as state intervals and hourly rollups.

    Example: dcops probe run --once --concurrency 200
    """
    thresholds = thresholds_from(failures, successes, concurrency=concurrency)
    database = open_database()
    if once:
        from dcops.health.prober import run_once

        summary = run_once(database, concurrency=concurrency, thresholds=thresholds,
                           ca_file=str(ca_file) if ca_file else None)
        if output == RecordOutput.json:
            echo_json(summary.as_dict())
            return
        for programme, check, reason in summary.failures:
            typer.echo(f"  failed  {programme}/{check}: {reason}")
        for programme, state, reason in summary.programme_changes:
            typer.echo(f"  {programme} is {state}" + (f" ({reason})" if reason else ""))
        typer.echo(f"{summary.checks} checks, {summary.succeeded} succeeded, in {summary.seconds:.2f} s")
        return
    import asyncio
    import threading

    from dcops.daemon import stop_on_signals
    from dcops.health.prober import Scheduler

    typer.echo("probing until stopped (Ctrl-C or SIGTERM)", err=True)
    scheduler = Scheduler(database, concurrency=concurrency, thresholds=thresholds,
                          ca_file=str(ca_file) if ca_file else None)
    with stop_on_signals(threading.Event()) as stop:
        asyncio.run(scheduler.run(stop))
    typer.echo(f"stopped; {scheduler.recorded} results recorded", err=True)


@app.command("status")
def status_command(
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """Each live programme's state (up, down, unknown or unmonitored), since when and why.

    A check with no result for more than three intervals is unknown from one interval after its
    last result ("no results since ..."); unmonitored: in service with no check at all.
    JSON keys: programme, ministry, state, since (ISO 8601 UTC or null), reason.

    Example: dcops probe status --output json
    """
    from dcops.health.status import programme_states

    rows = programme_states(open_database())
    if output == Output.json:
        echo_json(rows)
        return
    if output == Output.csv:
        echo_csv(rows, ("programme", "ministry", "state", "since", "reason"))
        return
    echo_table(((r["programme"], r["state"], r["since"] or "-", r["reason"]) for r in rows),
               ("PROGRAMME", "STATE", "SINCE", "REASON"), shrink=(3, 0))


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV or JSON lines: timestamp, programme, check, success, duration, reason.")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv or jsonl (default: from the file name).")] = None,
    failures: FailuresOption = 3,
    successes: SuccessesOption = 2,
) -> None:
    """Import probe history from another monitoring tool, through the same interval logic.

    Every row is checked first; if any is wrong, nothing is written. Rows older than what dcops
    already holds fill only time it has no data for; rows in measured time are left out and
    counted (with those that disagree with it). Importing a file twice changes nothing.

    Example: dcops probe import kuma-export.csv
    """
    from dcops.db import iso_utc
    from dcops.health.importer import import_history

    summary = import_history(open_database(), file, fmt=fmt, thresholds=thresholds_from(failures, successes))
    typer.echo(f"imported {summary.rows} results of {summary.checks} checks "
               f"({iso_utc(summary.first)} to {iso_utc(summary.last)}), {summary.programme_changes} state changes")
    if summary.backfilled:
        typer.echo(f"{summary.backfilled} results were older than the history already held and filled time "
                   f"it had no data for")
    _print_left_out(summary)


@app.command("sync")
def sync_command(
    prometheus: Annotated[Optional[str], typer.Option(
        "--prometheus", help="Prometheus' base URL (default: DCOPS_PROMETHEUS_URL).")] = None,
    date_from: Annotated[Optional[str], typer.Option(
        "--from", help="Read from this time (default: each check from its latest stored result); older "
                       "results fill only time dcops has no data for. Local to DCOPS_TIMEZONE unless "
                       "it has an offset.")] = None,
    date_to: Annotated[Optional[str], typer.Option(
        "--to", help="Read until this time (default: now, less each check's timeout and 5 s, for its "
                     "last sample to arrive).")] = None,
    job: Annotated[str, typer.Option(help="The Prometheus job that scrapes blackbox_exporter "
                                          "(`dcops metrics scrape-config`).")] = BLACKBOX_JOB,
    failures: FailuresOption = 3,
    successes: SuccessesOption = 2,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Read probe_success back from Prometheus (blackbox_exporter probing the targets of
    `dcops metrics targets`) into the same history, intervals and damping as dcops' own prober.

    Each check's steps of one interval are read exactly (the share of samples up in each), a step
    with no sample is no result, and a check continues from its latest stored result, so running
    it again reads only what is new; with --from, older results fill only time dcops holds no up
    or down for: syncing a period twice changes nothing. Each chunk of steps is committed, so an
    interrupted sync keeps its work. Exit 3: Prometheus unreachable or refusing the query.

    Example: dcops probe sync --prometheus http://127.0.0.1:9090 --from 2026-10-01
    """
    from dcops.cli.common import progress, settings
    from dcops.health.prometheus import base_url, sync
    from dcops.maintenance import parse_time

    config = settings()
    url = prometheus if prometheus is not None else config.prometheus_url
    if not url:
        raise UserError("no Prometheus to read from: give --prometheus URL or set DCOPS_PROMETHEUS_URL")
    url = base_url(url)
    tz = config.tz
    start = parse_time(date_from, tz, option="--from") if date_from is not None else None
    end = parse_time(date_to, tz, option="--to") if date_to is not None else None
    summary = sync(open_database(), url, start=start, end=end, job=job,
                   thresholds=thresholds_from(failures, successes), actor=actor, progress=progress)
    if output == RecordOutput.json:
        echo_json(summary.as_dict())
        return
    _print_sync(summary)


def _print_left_out(summary) -> None:
    """What an import or a sync left out because dcops had measured that time (store.Backfill's counts)."""
    if summary.measured:
        disagreeing = sum(summary.disagreeing.values())
        which = ", ".join(f"{printable(check)} {count}" for check, count in sorted(summary.disagreeing.items()))
        typer.echo(f"{summary.measured} results fell in time dcops had measured and were left out"
                   + (f"; {disagreeing} of them disagree with it ({which})" if disagreeing else ""), err=True)


def _print_sync(summary) -> None:
    from dcops.db import iso_utc

    if summary.first is None:
        typer.echo(f"nothing to read from {printable(summary.url)}: every check is up to date")
    else:
        typer.echo(f"read {summary.checks} checks from {printable(summary.url)}, {iso_utc(summary.first)} to "
                   f"{iso_utc(summary.last)}: {summary.steps_up} steps up, {summary.steps_down} down"
                   + (f" ({summary.steps_mixed} of them mixed, counted down)" if summary.steps_mixed else ""))
    if summary.wrote:
        typer.echo(f"{summary.results} new results, {summary.changes} state changes"
                   + (f"; {summary.backfilled} older results filled time dcops had no data for"
                      if summary.filled_time else ""))
    else:
        typer.echo("nothing new")
    _print_left_out(summary)
    if summary.unmatched:
        typer.echo(f"{len(summary.unmatched)} series name no check dcops probes: {some_of(summary.unmatched)}",
                   err=True)
