"""`dcops external`: the external components programmes depend on, and their recorded outages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional
from zoneinfo import ZoneInfo

import typer

from dcops.cli.common import (OUTPUT_HELP, TABLE_WIDTH, ActorOption, Output, RecordOutput, RecordOutputOption,
                              echo_csv, echo_json, echo_table, fail, id_argument, open_database, printable, settings)

app = typer.Typer(help="External components (declared in the inventory) and their outages.", no_args_is_help=True)
outage_app = typer.Typer(help="Record, end, cancel and list outages of external components.", no_args_is_help=True)
app.add_typer(outage_app, name="outage")

OutageIdArgument = id_argument("The outage's number (see `dcops external outage list`).")
COMPONENT_COLUMNS = ("slug", "name", "run_by", "dependants", "outage_now", "contact", "description")
OUTAGE_COLUMNS = ("id", "component", "started_at", "ended_at", "duration_seconds", "note", "recorded_at",
                  "recorded_by", "cancelled_at")
TIME_HELP = "local time in the data centre's zone ('2026-10-12 22:00') or ISO 8601 with an offset"


def _local(moment: datetime | None, tz: ZoneInfo, *, open_text: str = "still down") -> str:
    return open_text if moment is None else f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"


def _until(start: datetime, end: datetime | None, tz: ZoneInfo) -> str:
    """An outage's end in a table: the time alone when it ended the day it began."""
    if end is not None and end.astimezone(tz).date() == start.astimezone(tz).date():
        return f"{end.astimezone(tz):%H:%M}"
    return _local(end, tz)


def _duration(seconds: float | None) -> str:
    from dcops.reports.render import format_duration

    return "-" if seconds is None else format_duration(seconds)


@app.command("list")
def list_command(output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table) -> None:
    """List the external components, by slug: who runs them, how many programmes depend on
    each, and whether one is down now (an outage recorded and not ended).

    JSON output is a list of objects with the keys slug, name, description, run_by
    (third-party or data-centre), contact, dependants (programmes not retired) and
    outage_now (the outage's number, or null).

    Example: dcops external list --output json
    """
    from dcops.external import list_components

    with open_database().transaction() as conn:
        rows = list_components(conn)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        echo_csv(rows, COMPONENT_COLUMNS)
    else:
        echo_table(((r["slug"], r["run_by"], r["dependants"], f"down ({r['outage_now']})" if r["outage_now"] else "-",
                     r["name"]) for r in rows),
                   ("SLUG", "RUN_BY", "PROGRAMMES", "NOW", "NAME"), right=(2,), shrink=(4, 0))


@app.command("show")
def show_command(
    slug: Annotated[str, typer.Argument(help="The component's slug (see `dcops external list`).")],
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Show one external component: the programmes that depend on it and its latest outages.

    JSON output: slug, name, description, run_by, contact, dependants [{slug, name, ministry,
    status}], outage_now (number or null) and outages (the 20 latest, newest first, with the
    keys of `external outage list`).

    Example: dcops external show lapnet-switch
    """
    import textwrap

    from dcops.external import show_component

    with open_database().transaction() as conn:
        record = show_component(conn, slug)
    if output == RecordOutput.json:
        echo_json({**record, "outages": [o.as_dict() for o in record["outages"]]})
        return
    tz = settings().tz
    lines = [
        ("Component", f"{record['name']} ({record['slug']})"),
        ("Run by", record["run_by"] + (" (its outages never leave an SLA)" if record["run_by"] == "data-centre"
                                       else "")),
        ("Contact", record["contact"] or "-"),
        ("Now", f"down (outage {record['outage_now']})" if record["outage_now"] else "no outage recorded"),
    ]
    if record["description"]:
        lines.append(("Description", record["description"]))
    for label, value in lines:
        typer.echo(textwrap.fill(printable(value), TABLE_WIDTH, initial_indent=f"{label + ':':<13}",
                                 subsequent_indent=" " * 13, break_on_hyphens=False))
    typer.echo("\nProgrammes depending on it")
    if record["dependants"]:
        echo_table(((d["slug"], d["ministry"], d["status"], d["name"]) for d in record["dependants"]),
                   ("SLUG", "MINISTRY", "STATUS", "NAME"), shrink=(3, 0))
    else:
        typer.echo("none")
    typer.echo(f"\nLatest outages ({tz.key})")
    if record["outages"]:
        _outage_table(record["outages"], tz, component=False)
    else:
        typer.echo("none recorded")


def _outage_table(outages, tz: ZoneInfo, *, component: bool = True) -> None:
    flagged = any(o.cancelled_at for o in outages)  # only --all and `show` list cancelled ones
    rows = []
    for o in outages:
        row = [o.id, o.component] if component else [o.id]
        row += [_local(o.started_at, tz), _until(o.started_at, o.ended_at, tz), _duration(o.duration_seconds)]
        row += ["cancelled" if o.cancelled_at else ""] if flagged else []
        rows.append(row + [o.note])
    headers = (["ID", "COMPONENT"] if component else ["ID"]) + ["FROM", "TO", "LASTED"] + \
        (["FLAG"] if flagged else []) + ["NOTE"]
    note = len(headers) - 1
    echo_table(rows, headers, right=(0,), shrink=(note, 1) if component else (note,))


def _echo_outage(outage, output: RecordOutput, tz: ZoneInfo, verb: str) -> None:
    if output == RecordOutput.json:
        echo_json(outage.as_dict())
        return
    until = f"to {_local(outage.ended_at, tz)}" if outage.ended_at else "still down"
    typer.echo(printable(f"outage {outage.id} of {outage.component} {verb}: from {_local(outage.started_at, tz)} "
                         f"{until} ({tz.key})"))


@outage_app.command("add")
def outage_add_command(
    component: Annotated[str, typer.Argument(help="The component's slug (see `dcops external list`).")],
    from_: Annotated[str, typer.Option("--from", help=f"When it went down: {TIME_HELP}.")],
    note: Annotated[str, typer.Option("--note", help="What happened and who said so, one line.")],
    to: Annotated[Optional[str], typer.Option("--to", help="When it came back (same forms); leave out while it "
                                              "is still down.")] = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Record an outage of an external component, as its owner or a dependant reported it.

    Refused, with nothing written: --to not after --from, a time in the future, and an
    outage overlapping another (not cancelled) of the same component. Audited as
    external.outage.recorded. JSON output has the keys of `external outage list`.

    Example: dcops external outage add lapnet-switch --from "2026-10-12 09:10"
    --to "2026-10-12 10:40" --note "LAPNet notice 2026/41: switch core failover"
    """
    from dcops.external import record_outage
    from dcops.maintenance import parse_time

    tz = settings().tz
    started_at = parse_time(from_, tz, option="--from")
    ended_at = parse_time(to, tz, option="--to") if to is not None else None
    outage = record_outage(open_database(), component, started_at=started_at, ended_at=ended_at, note=note,
                           actor=actor, tz=tz)
    _echo_outage(outage, output, tz, "recorded")


@outage_app.command("end")
def outage_end_command(
    outage_id: OutageIdArgument,
    at: Annotated[Optional[str], typer.Option("--at", help=f"When it came back (default now): {TIME_HELP}.")] = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """End an outage that is still under way (audited as external.outage.ended).

    Example: dcops external outage end 7 --at "2026-10-12 10:40"
    """
    from dcops.external import end_outage
    from dcops.maintenance import parse_time

    tz = settings().tz
    outage = end_outage(open_database(), outage_id, at=parse_time(at, tz, option="--at") if at else None,
                        actor=actor, tz=tz)
    _echo_outage(outage, output, tz, "ended")


@outage_app.command("cancel")
def outage_cancel_command(
    outage_id: OutageIdArgument,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Cancel an outage recorded in error: it stays on record, marked, and counts for nothing.

    Example: dcops external outage cancel 7
    """
    from dcops.external import cancel_outage

    outage = cancel_outage(open_database(), outage_id, actor=actor)
    if output == RecordOutput.json:
        echo_json(outage.as_dict())
    else:
        typer.echo(f"outage {outage.id} of {outage.component} cancelled")


@outage_app.command("list")
def outage_list_command(
    component: Annotated[Optional[str], typer.Option("--component", help="Only this component's outages.")] = None,
    period: Annotated[Optional[str], typer.Option("--period", help="Only outages overlapping this month, YYYY-MM, "
                                                  "cut at midnight in the data centre's zone.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include cancelled outages.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List outages of external components, oldest first; times in the data centre's zone.

    JSON output is a list of objects with the keys id, component, started_at, ended_at
    (null: still down), note, recorded_at, recorded_by, cancelled_at (ISO 8601 UTC or null)
    and duration_seconds (null while still down).

    Example: dcops external outage list --component lapnet-switch --period 2026-10
    """
    from dcops.external import list_outages

    tz = settings().tz
    start = end = None
    if period is not None:
        from dcops.reports.uptime import period_bounds

        try:
            start, end = period_bounds(period, tz)
        except ValueError as error:
            fail(f"--period: {error}")
    with open_database().transaction() as conn:
        outages = list_outages(conn, component=component, start=start, end=end, include_cancelled=all_)
    if output == Output.json:
        echo_json([o.as_dict() for o in outages])
    elif output == Output.csv:
        echo_csv([o.as_dict() for o in outages], OUTAGE_COLUMNS)
    else:
        typer.echo(f"times in {tz.key}")
        _outage_table(outages, tz)
