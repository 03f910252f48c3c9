"""`dcops status`: the status page of the programmes, for the public or the ministries."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dcops.cli.common import RecordOutput, RecordOutputOption, echo_json, open_database, printable, settings

app = typer.Typer(help="The status page: programmes' state now and over 90 days, incidents, maintenance.",
                  no_args_is_help=True)


class Audience(str, Enum):
    """Who the page is for."""

    public = "public"
    ministries = "ministries"


@app.command("publish")
def publish_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the static site (created if missing).")],
    audience: Annotated[Audience, typer.Option(
        "--audience", help="public (released incidents of public and internal programmes only) or ministries "
                           "(everything)")] = Audience.public,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Write the status page into OUT_DIR: index.html (programmes by ministry, their state now and
    90-day bars, current and recent incidents with their updates, announced maintenance),
    feed.atom (an entry per incident update and per maintenance window), maintenance.ics (a
    calendar ministries can subscribe to) and style.css. No JavaScript, nothing fetched.

    The public page leaves out confidential and secret programmes, and every incident an operator
    has not released (`dcops incident update N --release`). Each file is replaced whole. With
    --output json, prints the page's data instead of the list of files. `dcops serve` publishes
    both pages every minute when DCOPS_STATUS_DIR is set.

    Example: dcops status publish /var/www/status --audience public
    """
    from dcops.status import publish_view

    written, view = publish_view(open_database(), out_dir, audience=audience.value, settings=settings())
    if output == RecordOutput.json:
        echo_json(view)
        return
    for path in written:
        typer.echo(printable(path))
    typer.echo(printable(f"published the {audience.value} status page to {out_dir} "
                         f"(open {out_dir / 'index.html'})"))
