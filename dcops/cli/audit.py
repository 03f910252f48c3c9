"""`dcops audit`: read the audit log and verify its hash chain."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, TABLE_WIDTH, Output, echo_csv, echo_json, open_database, printable,
                              settings)

app = typer.Typer(help="The append-only, hash-chained audit log of every change.", no_args_is_help=True)

ACTOR_WIDTH = 12
OBJECT_WIDTH = 8


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width`: broken after the type's ':', else after a '-' or '.'."""
    lines = []
    while len(text) > width:
        cut = (text.rfind(":", 0, width) + 1 or max(text.rfind(mark, 0, width) for mark in "-.") + 1
               or width)
        lines.append(text[:cut])
        text = text[cut:]
    return [*lines, text]


def format_entries(rows: list[dict], width: int = TABLE_WIDTH) -> str:
    """The table: whole action names and objects (an object wraps rather than being cut); the
    time to the minute, UTC; a long actor cut with '…' (`--output json` has everything)."""
    headers = ("ID", "AT (UTC)", "ACTOR", "ACTION", "OBJECT")
    cells = [(str(r["id"]), r["at"][:16].replace("T", " "), printable(r["actor"]), printable(r["action"]),
              printable(r["object"])) for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    widths[2] = min(widths[2], ACTOR_WIDTH)
    room = width - sum(widths[:4]) - 2 * 4
    if room < OBJECT_WIDTH:  # only for an action name longer than any dcops writes today
        widths[2] = max(len(headers[2]), widths[2] - (OBJECT_WIDTH - room))
        room = width - sum(widths[:4]) - 2 * 4
    widths[4] = max(1, min(widths[4], room))
    lines = []
    for cell in [headers, *cells]:
        actor = cell[2] if len(cell[2]) <= widths[2] else cell[2][: widths[2] - 1] + "…"
        objects = _wrap(cell[4], widths[4])
        first = (cell[0].rjust(widths[0]), cell[1].ljust(widths[1]), actor.ljust(widths[2]),
                 cell[3].ljust(widths[3]), objects[0])
        lines.append("  ".join(first).rstrip())
        indent = " " * (sum(widths[:4]) + 2 * 4)
        lines += [indent + more for more in objects[1:]]
    return "\n".join(lines)


@app.command("list")
def list_command(
    object_name: Annotated[Optional[str], typer.Option(
        "--object", help="TYPE:KEY (request:12, job:7, maintenance:3, programme:lesmis-v2) or a KEY of any type.",
    )] = None,
    programme: Annotated[Optional[str], typer.Option(
        help="Everything that concerns this programme: its own entries, its requests, jobs and windows.",
    )] = None,
    since: Annotated[Optional[str], typer.Option(
        help="From this time: ISO 8601 with an offset, or without one local to DCOPS_TIMEZONE.",
    )] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many of the latest entries (0: all).")] = 200,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List audit entries, oldest first, under today's action names (past tense).

    `--object programme:SLUG`, `--programme SLUG` and a bare slug take everything that
    concerns the programme: its hosts, endpoints, allocations and status (recorded on the
    programme), its requests, the jobs that ran on it and its own maintenance windows.
    JSON keys: id, at, actor, action, recorded_action (the name as recorded and hashed),
    object (TYPE:KEY), object_type, object_key, before, after, hash.

    Example: dcops audit list --programme e-crvs --since 2026-11-01
    """
    from dcops.audit import list_entries, object_types, parse_object
    from dcops.maintenance import parse_time

    object_type, object_key = parse_object(object_name) if object_name is not None else (None, None)
    since_at = parse_time(since, settings().tz, option="--since") if since is not None else None
    with open_database().transaction() as conn:
        rows = list_entries(conn, object_type=object_type, object_key=object_key, programme=programme,
                            since=since_at, limit=limit)
        matched = object_types(conn, object_key) if object_key is not None and object_type is None else []
    if len(matched) > 1:
        typer.echo(f"dcops: --object {object_key} names {', '.join(f'{t}:{object_key}' for t in matched)}; "
                   "all are listed (give TYPE:KEY for one)", err=True)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        echo_csv(rows, ("id", "at", "actor", "action", "recorded_action", "object_type", "object_key", "hash"))
    else:
        typer.echo(format_entries(rows))


@app.command("verify")
def verify_command() -> None:
    """Walk the whole hash chain; exit 1 at the first entry edited, deleted or reordered.

    Example: dcops audit verify
    """
    from dcops.audit import verify

    with open_database().transaction() as conn:
        result = verify(conn)
    if result.ok:
        typer.echo(f"audit log intact: {result.entries} entries, head {result.head_hash[:16]}")
        return
    typer.echo(f"dcops: audit log broken at entry {result.broken_at}: {result.problem} "
               f"({result.entries} entries before it are intact)", err=True)
    raise typer.Exit(1)
