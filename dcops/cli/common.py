"""What every command shares: settings, opening the database, output formats, tables."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Optional, Sequence

import typer

if TYPE_CHECKING:
    from dcops.db import Database
    from dcops.settings import Settings

TABLE_WIDTH = 80


class Output(str, Enum):
    """How a listing is printed."""

    table = "table"
    json = "json"
    csv = "csv"


class RecordOutput(str, Enum):
    """How one record, or the result of a change, is printed (a CSV of one record would say less)."""

    table = "table"
    json = "json"


ActorOption = Annotated[
    Optional[str],
    typer.Option("--actor", help="Who makes the change, for the audit log (default: the OS user)."),
]

def id_argument(help: str):
    """A record number argument: a positive integer that a database column can hold."""
    return Annotated[int, typer.Argument(help=help, min=1, max=2**63 - 1)]


OUTPUT_HELP = "table (for people, fits 80 columns), json (stable, for scripts) or csv"
RECORD_OUTPUT_HELP = "table (for people) or json (stable, for scripts)"
RecordOutputOption = Annotated[RecordOutput, typer.Option("--output", "-o", help=RECORD_OUTPUT_HELP)]


def printable(value: Any) -> str:
    """Text fit for a terminal: control characters (escape sequences, line breaks) shown escaped.

    Text from requests and inventory files is checked at input, but a value stored earlier,
    or a file read from elsewhere, could still carry `ESC ] 0 ; title BEL`.
    """
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def some_of(names: Sequence[str], limit: int = 10) -> str:
    """The first `limit` names, printable, and how many more: "a, b, c and 4 more"."""
    shown = ", ".join(printable(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def settings() -> "Settings":
    """The settings, read once from the environment."""
    from dcops.settings import Settings

    return Settings.from_env()


def open_database() -> "Database":
    """The configured database, checked to be at this dcops' schema.

    Also where a job left `running` by a dcops process that died is found and marked
    interrupted: the check is one small query; the repair runs only when needed.
    """
    from dcops.db import open_database as _open
    from dcops.provisioning.liveness import stale_jobs

    database = _open(settings())
    with database.transaction() as conn:
        stale = stale_jobs(conn)
    if stale:
        from dcops.provisioning.jobs import reap_stale_jobs

        for job_id in reap_stale_jobs(database):
            typer.echo(f"dcops: job {job_id} was left running by a dcops process that died: marked interrupted",
                       err=True)
    return database


def echo_json(data: Any) -> None:
    """Print data as JSON (dates as ISO strings): a list one item per line, else indented.

    Indenting a whole list forces json's pure-Python encoder, several times slower on
    10,000 programmes; one compact item per line keeps the C encoder and stays readable.
    """
    if isinstance(data, list):
        items = [json.dumps(item, ensure_ascii=False, default=_json_default) for item in data]
        sys.stdout.write("[\n" + ",\n".join(items) + "\n]\n" if items else "[]\n")
    else:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def echo_csv(rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Print rows as CSV with a header line; text a spreadsheet would run as a formula gets a leading '."""
    from dcops.reports.render import spreadsheet_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: spreadsheet_text(row.get(key)) for key in columns} for row in rows)
    sys.stdout.write(buffer.getvalue())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")
    return printable(value)


def format_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    *,
    shrink: Sequence[int] = (),
    right: Sequence[int] = (),
    width: int = TABLE_WIDTH,
) -> str:
    """A plain-text table no wider than `width`; columns in `shrink` are cut with '…' to fit."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    for i in sorted(shrink, key=lambda i: -widths[i]):
        if excess <= 0:
            break
        cut = min(excess, widths[i] - max(len(headers[i]), 6))
        if cut > 0:
            widths[i] -= cut
            excess -= cut

    def line(values: Sequence[str]) -> str:
        parts = []
        for i, text in enumerate(values):
            if len(text) > widths[i]:
                text = text[: widths[i] - 1] + "…"
            parts.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in cells)])


def echo_table(rows, headers, **kwargs) -> None:
    """Print `format_table(...)`."""
    typer.echo(format_table(rows, headers, **kwargs))


def progress(message: str) -> None:
    """A status line on stderr for people at a terminal; silent when stderr is not one."""
    if sys.stderr.isatty():
        typer.echo(f"... {message}", err=True)


def fail(message: str, code: int = 2) -> None:
    """Stop with a one-line error on stderr."""
    typer.echo(f"dcops: error: {message}", err=True)
    raise typer.Exit(code)
