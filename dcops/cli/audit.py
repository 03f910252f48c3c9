"""`dcops audit`: read the audit log and verify its hash chain."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Optional

import typer

from dcops.cli.common import OUTPUT_HELP, Output, echo_csv, echo_json, echo_table, fail, open_database

app = typer.Typer(help="The append-only, hash-chained audit log of every change.", no_args_is_help=True)


def _since(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since: expected a date or time such as 2026-11-01 or 2026-11-01T08:00+07:00, not {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@app.command("list")
def list_command(
    object_key: Annotated[Optional[str], typer.Option("--object", help="A slug, request number, cluster...")] = None,
    since: Annotated[Optional[str], typer.Option(help="From this date/time (ISO 8601; UTC if no offset).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many of the latest entries (0: all).")] = 200,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List audit entries, oldest first.

    Example: dcops audit list --object e-crvs --since 2026-11-01
    """
    from dcops.audit import list_entries

    with open_database().transaction() as conn:
        rows = list_entries(conn, object_key=object_key, since=_since(since), limit=limit)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        echo_csv(rows, ("id", "at", "actor", "action", "object_type", "object_key", "hash"))
    else:
        echo_table(((r["id"], r["at"], r["actor"], r["action"], r["object_key"]) for r in rows),
                   ("ID", "AT", "ACTOR", "ACTION", "OBJECT"), right=(0,), shrink=(3, 2, 4))


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
