"""`dcops report`: the monthly uptime (SLA) and capacity reports, frozen reports and their history."""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from dcops.reports import capacity as capacity_maths  # pure and light: the defaults live there

from dcops.cli.common import (OUTPUT_HELP, ActorOption, Output, echo_json, echo_table, id_argument,
                              open_database, settings)

app = typer.Typer(help="Uptime (SLA) and capacity reports: HTML, Markdown, CSV, JSON.", no_args_is_help=True)


class Format(str, Enum):
    """What a report is written as."""

    md = "md"
    html = "html"
    csv = "csv"
    json = "json"


FormatOption = Annotated[Optional[Format], typer.Option(
    "--format", "-f", help="md (e-mail, wikis), html (self-contained, with charts), csv or json "
    "(default: from the --out file's name, else md).", show_default=False)]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", help="Write the report to this file, atomically ('-' or none: standard output).", dir_okay=False,
    show_default=False)]
MkdirOption = Annotated[bool, typer.Option("--mkdir", help="Create the --out file's missing folders.")]
TemplateOption = Annotated[Optional[Path], typer.Option("--template", help="An edited copy of a shipped template "
                                                        "(html or md; in templates/reports/ of the installed dcops "
                                                        "package).", dir_okay=False)]


class Sort(str, Enum):
    """How an uptime report orders its programmes."""

    status = "status"
    budget = "budget"
    name = "name"


SortOption = Annotated[Sort, typer.Option(
    "--sort", help="Order of the programmes: status (missed, insufficient data, met; each by error budget used, "
    "highest first), budget (error budget used, highest first) or name.")]


ReportIdArgument = id_argument("The frozen report's number (see `dcops report history`).")


@contextmanager
def _writing(out: Optional[Path], fmt: Optional[Format], make_parents: bool):
    """The format and where the report goes, checked before any work; nothing is left behind on an error."""
    from dcops.files import open_output
    from dcops.reports.render import format_for

    chosen = format_for(fmt.value if fmt is not None else None, out)
    target = open_output(out, make_parents=make_parents)
    try:
        yield chosen, target
    except BaseException:
        target.abandon()
        raise


def _deliver(document: dict, fmt: str, target, template: Optional[Path], sort: str = "status") -> None:
    """Render, then write all at once: a failed render leaves no half-written file."""
    from dcops.files import StdoutWrite
    from dcops.reports.render import render

    body = render(document, fmt, template=template, sort=sort)
    target.commit(body)
    if not isinstance(target, StdoutWrite):
        typer.echo(f"wrote {target.path} ({len(body.encode()):,} bytes, {fmt})", err=True)


@app.command("uptime")
def uptime_command(
    period: Annotated[Optional[str], typer.Option(help="A month, YYYY-MM, cut at midnight in the data "
                                                  "centre's time zone.")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="First day, YYYY-MM-DD (with --to).")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Last day, YYYY-MM-DD, included.")] = None,
    ministry: Annotated[Optional[str], typer.Option(help="Only this ministry's programmes (its code).")] = None,
    programme: Annotated[Optional[str], typer.Option(help="Only this programme (slug).")] = None,
    fmt: FormatOption = None,
    out: OutOption = None,
    mkdir: MkdirOption = False,
    template: TemplateOption = None,
    freeze: Annotated[bool, typer.Option("--freeze", help="Store this report as issued (figures and the digest "
                                         "of its inputs), to re-issue it later byte for byte.")] = False,
    sort: SortOption = Sort.status,
    actor: ActorOption = None,
) -> None:
    """Availability per programme against its tier's SLA, rolled up per ministry and overall.

    availability = up / (up + down), where announced maintenance and unknown time (no
    probe data) are left out of both; the report shows them apart, with coverage, incidents,
    MTTR, MTBF and error budget used.

    Example: dcops report uptime --period 2026-10 --out uptime-2026-10.html

    Example: dcops report uptime --period 2026-10 --sort budget --format md
    """
    from dcops.db import utcnow
    from dcops.reports.documents import freeze as freeze_document
    from dcops.reports.documents import judging, resolve_period, uptime_document

    config = settings()
    chosen = resolve_period(period, date_from, date_to, config.tz, now=utcnow())
    with _writing(out, fmt, mkdir) as (fmt_name, target):
        database = open_database()
        with database.transaction() as conn:
            document = uptime_document(conn, chosen, tz=config.tz, now=utcnow(),
                                       data_centre_name=config.data_centre_name, ministry=ministry,
                                       programme=programme, **judging(config))
        if freeze:
            from dcops.reports.render import render

            # A bad template fails before anything is stored (the frozen report renders with its stamp).
            render(document, fmt_name, template=template, sort=sort.value)
            document = freeze_document(database, document, actor=actor)
            typer.echo(f"frozen as report {document['frozen']['id']} (inputs {document['inputs_digest'][:19]}…); "
                       f"re-issue with: dcops report reissue {document['frozen']['id']}", err=True)
        _deliver(document, fmt_name, target, template, sort.value)


@app.command("capacity")
def capacity_command(
    site: Annotated[Optional[str], typer.Option(help="Only this site (its code).")] = None,
    buffer: Annotated[float, typer.Option(help="Percent of capacity kept as a buffer, beyond N+1.")
                      ] = capacity_maths.DEFAULT_BUFFER_PERCENT,
    red_days: Annotated[float, typer.Option(help="Red when a resource runs out within this many days.")
                        ] = capacity_maths.RED_DAYS,
    amber_days: Annotated[float, typer.Option(help="Amber when it runs out within this many days.")
                          ] = capacity_maths.AMBER_DAYS,
    trend_days: Annotated[int, typer.Option(help="Days of snapshot history the trend is fitted to.")
                          ] = capacity_maths.DEFAULT_TREND_DAYS,
    fmt: FormatOption = None,
    out: OutOption = None,
    mkdir: MkdirOption = False,
    template: TemplateOption = None,
) -> None:
    """Capacity per site, cluster and resource: usable after N+1 and buffer, allocated, free,
    pipeline, run-out forecast from the daily snapshots, status, top consumers, monthly cost.

    Example: dcops report capacity --out capacity.html
    """
    from dcops.db import utcnow
    from dcops.reports.documents import capacity_document

    config = settings()
    with _writing(out, fmt, mkdir) as (fmt_name, target):
        with open_database().transaction() as conn:
            document = capacity_document(conn, tz=config.tz, now=utcnow(), data_centre_name=config.data_centre_name,
                                         site=site, buffer_percent=buffer, red_days=red_days,
                                         amber_days=amber_days, trend_days=trend_days)
        _deliver(document, fmt_name, target, template)


@app.command("reissue")
def reissue_command(
    report_id: ReportIdArgument,
    fmt: FormatOption = None,
    out: OutOption = None,
    mkdir: MkdirOption = False,
    template: TemplateOption = None,
    sort: SortOption = Sort.status,
) -> None:
    """Render a frozen report again from its stored figures: byte for byte what was issued
    (with the same format, template and --sort).

    Example: dcops report reissue 3 --out uptime-2026-10.html
    """
    from dcops.reports.documents import frozen_document

    with _writing(out, fmt, mkdir) as (fmt_name, target):
        with open_database().transaction() as conn:
            document = frozen_document(conn, report_id)
        _deliver(document, fmt_name, target, template, sort.value)


@app.command("history")
def history_command(
    period: Annotated[Optional[str], typer.Option(help="Only reports of this period (e.g. 2026-10).")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """Frozen reports, each checked against the same report computed now: a figure changed
    after the fact (late data, an edited history) shows as "changed", with what changed.

    Example: dcops report history --period 2026-10
    """
    from dcops.db import utcnow
    from dcops.reports.documents import history

    config = settings()
    with open_database().transaction() as conn:
        entries = history(conn, tz=config.tz, now=utcnow(), data_centre_name=config.data_centre_name, period=period)
    if output == Output.json:
        echo_json(entries)
        return
    if output == Output.csv:
        from dcops.cli.common import echo_csv

        echo_csv([{**e, "changes": len(e["changes"])} for e in entries],
                 ("id", "kind", "period", "scope", "frozen_at", "frozen_by", "status", "changes", "inputs_digest"))
        return
    echo_table(((e["id"], e["period"], e["scope"] or "all", e["frozen_at"], e["frozen_by"],
                 e["status"] + (" (frozen mid-period)" if e["frozen_partial"] else ""))
                for e in entries), ("ID", "PERIOD", "SCOPE", "FROZEN AT", "BY", "STATUS"), right=(0,), shrink=(2, 4))
    for entry in entries:
        for change in entry["changes"][:20]:
            typer.echo(f"  report {entry['id']}: {change['programme']} {change['figure']}: "
                       f"{change['frozen']} then, {change['now']} now")
        if len(entry["changes"]) > 20:
            typer.echo(f"  report {entry['id']}: … and {len(entry['changes']) - 20} more changes")
