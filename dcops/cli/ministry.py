"""`dcops ministry`: the ministries whose programmes are hosted."""

from __future__ import annotations

from typing import Annotated

import typer

from dcops.cli.common import OUTPUT_HELP, Output, echo_csv, echo_json, echo_table, open_database

app = typer.Typer(help="The ministries whose programmes the data centre hosts.", no_args_is_help=True)


@app.command("list")
def list_command(output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table) -> None:
    """List ministries with their number of programmes (retired ones apart).

    Example: dcops ministry list --output json
    """
    from dcops.inventory.queries import list_ministries

    with open_database().transaction() as conn:
        rows = list_ministries(conn)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        echo_csv(rows, ("code", "name", "contact", "programmes", "retired"))
    else:
        echo_table(
            ((r["code"], r["programmes"], r["retired"], r["name"]) for r in rows),
            ("CODE", "PROGRAMMES", "RETIRED", "NAME"),
            right=(1, 2),
            shrink=(3,),
        )
