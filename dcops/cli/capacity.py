"""`dcops capacity`: daily capacity snapshots, the history behind run-out forecasts."""

from __future__ import annotations

import typer

from dcops.cli.common import open_database, settings

app = typer.Typer(help="Capacity history: the daily snapshots that forecasts are fitted to.", no_args_is_help=True)


@app.command("snapshot")
def snapshot_command() -> None:
    """Record what every cluster resource holds today (`dcops serve` takes one a day).

    Taken again on the same (local) day, it replaces that day's snapshot.

    Example: dcops capacity snapshot
    """
    from dcops.reports.documents import take_capacity_snapshot

    day, count = take_capacity_snapshot(open_database(), tz=settings().tz)
    typer.echo(f"capacity snapshot of {day.isoformat()}: {count} cluster resources")
