"""`dcops inventory`: load the YAML inventory into the database, and export it back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcops.cli.ansible_inventory import ansible_command
from dcops.cli.sample import sample_command
from dcops.cli.common import ActorOption, RecordOutput, echo_json, open_database, printable, progress

app = typer.Typer(help="Load the YAML inventory (the source of truth in git) and export it.", no_args_is_help=True)
app.command("ansible")(ansible_command)
app.command("sample")(sample_command)


def _value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def render_plan(plan, *, verbose: bool = False) -> None:
    """Print a plan: one line per changed record, its field changes indented, then a summary."""
    for change in plan.changes:
        if change.action == "unchanged" and not verbose:
            continue
        typer.echo(f"{change.action:<9} {change.kind} {printable(change.key)}")
        if change.action in ("update", "retire"):
            for item in change.fields:
                typer.echo(printable(f"            {item.field}: {_value(item.old)} -> {_value(item.new)}"))
    # "remove" (external components gone from the files, with --prune) only when there is one.
    actions = ("create", "update", "retire", "remove", "unchanged") if plan.count("remove") else \
        ("create", "update", "retire", "unchanged")
    counts = ", ".join(f"{plan.count(a)} {a}" for a in actions)
    if plan.applied:
        typer.echo(f"applied: {counts}")
    elif plan.has_changes:
        typer.echo(f"plan (not applied): {counts}")
    else:
        typer.echo(f"nothing to do: {counts}")


def warn_unmonitored(plan) -> None:
    """One warning line on stderr per active programme the plan leaves without a check."""
    for slug in plan.unmonitored:
        typer.echo(f"dcops: warning: programme {slug} is active with no check: it will not be monitored", err=True)


@app.command("load")
def load_command(
    directory: Annotated[Path, typer.Argument(help="Inventory directory (every *.yaml under it).")] = Path("inventory"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; write nothing.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Retire programmes that are no longer in the files (history is kept) and "
                                           "remove external components that are not (refused while programmes "
                                           "depend on one or it has recorded outages).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List unchanged records too.")] = False,
    output: Annotated[RecordOutput, typer.Option("--output", "-o", help="table or json (the plan)")] = RecordOutput.table,
    actor: ActorOption = None,
) -> None:
    """Validate every inventory file, print the plan, and apply it in one transaction.

    Every problem in every file is reported with its file and line; if there is any,
    nothing is written. Each active programme left without a check gets a warning on
    stderr (the exit code stays 0).

    JSON output is the plan: applied, summary {create, update, retire, remove, unchanged},
    changes [{kind, key, action, fields [{field, old, new}]}] and unmonitored (the
    slugs of active programmes with no check).

    Example: dcops inventory load inventory/ --dry-run
    """
    from dcops.inventory.service import load_directory

    plan = load_directory(
        open_database(), directory, actor=actor, prune=prune, dry_run=dry_run, progress=progress
    )
    if output == RecordOutput.json:
        echo_json(plan.as_dict())
    else:
        render_plan(plan, verbose=verbose)
    warn_unmonitored(plan)


@app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="A new or empty directory to write into.")],
) -> None:
    """Write the database's inventory as YAML files that `inventory load` reads back unchanged.

    Example: dcops inventory export /tmp/inventory-snapshot
    """
    from dcops.inventory.export import export_inventory

    result = export_inventory(open_database(), directory)
    typer.echo(f"wrote {len(result.files)} files ({result.programmes} programmes) to {result.directory}")
