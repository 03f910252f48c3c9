"""`dcops catalogue`: the service catalogue, and its published website."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcops.cli.common import (OUTPUT_HELP, Output, RecordOutput, RecordOutputOption, echo_csv, echo_json, echo_table,
                              open_database, printable, settings)

app = typer.Typer(help="The service catalogue ministries choose from, and its website.", no_args_is_help=True)


def _lak(amount: int) -> str:
    return f"{amount:,}"


@app.command("list")
def list_command(output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table) -> None:
    """List offerings and their plans with resources, tiers and monthly cost (LAK).

    JSON output is a list of offerings {id, name, description, display_name,
    long_description, tags, checks, public_domain, plans [...]}; see the README.

    Example: dcops catalogue list --output json
    """
    from dcops.catalogue.queries import list_offerings

    with open_database().transaction() as conn:
        offerings = list_offerings(conn)
    if output == Output.json:
        echo_json(offerings)
        return
    rows = [
        {"offering": o["id"], "plan": p["id"], "vcpu": p["totals"]["vcpu"], "ram_gib": p["totals"]["ram_gib"],
         "storage_gib": p["totals"]["storage_gib"], "instances": p["resources"]["instances"],
         "tiers": ",".join(str(t) for t in p["sla_tiers"]), "monthly_cost_lak": p["monthly_cost_lak"]}
        for o in offerings for p in o["plans"]
    ]
    if output == Output.csv:
        echo_csv(rows, list(rows[0]) if rows else ["offering", "plan"])
        return
    echo_table(
        ((r["offering"], r["plan"], r["vcpu"], r["ram_gib"], r["storage_gib"], r["tiers"], _lak(r["monthly_cost_lak"]))
         for r in rows),
        ("OFFERING", "PLAN", "VCPU", "RAM", "DISK", "TIERS", "LAK/MONTH"),
        right=(2, 3, 4, 6), shrink=(0, 1),
    )


@app.command("show")
def show_command(
    offering_id: Annotated[str, typer.Argument(help="The offering's id.")],
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Show an offering with every plan: resources, SLA tiers, cost and description, and the
    checks that approval sets up to monitor each programme of it.

    JSON output is the offering as in `catalogue list --output json`, with its checks
    [{name, kind, target (with {host}, {programme}, {public_name}), ...}] and
    public_domain (or null).

    Example: dcops catalogue show postgresql
    """
    import textwrap

    from dcops.catalogue.queries import show_offering
    from dcops.catalogue.site import describe_check, format_resources
    from dcops.display import lak

    with open_database().transaction() as conn:
        offering = show_offering(conn, offering_id)
    if output == RecordOutput.json:
        echo_json(offering)
        return
    typer.echo(printable(f"{offering['display_name']} ({offering['id']})"))
    if offering["description"]:
        typer.echo(textwrap.fill(printable(offering["description"]), 80))
    typer.echo("\n  Monitored:" if offering["checks"] else "\n  Monitored: nothing (operators add checks by hand)")
    for check in offering["checks"]:
        typer.echo(textwrap.fill(describe_check(check, offering["public_domain"]), 80, initial_indent="    - ",
                                 subsequent_indent="      "))
    for plan in offering["plans"]:
        res = plan["resources"]
        cost = f"{lak(plan['monthly_cost_lak'])} a month, {lak(plan['monthly_cost_lak'] * 12)} a year"
        title = printable(f"  {plan['display_name']} ({plan['id']}):")
        # The cost on its own line rather than an amount cut from its currency.
        typer.echo(f"\n{title} {cost}" if len(title) + 1 + len(cost) <= 80 else f"\n{title}\n    {cost}")
        size = format_resources(res).replace("\u00a0", " ")
        typer.echo(f"    {res['instances']} x ({size}); SLA tiers {', '.join(map(str, plan['sla_tiers']))}")
        for bullet in plan["bullets"]:
            typer.echo(textwrap.fill(printable(bullet), 80, initial_indent="    - ", subsequent_indent="      "))


@app.command("publish")
def publish_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the static website (created if missing).")],
) -> None:
    """Render the catalogue website: offerings, plans, hosted programmes, request templates, catalog.json.

    The site works offline (no JavaScript, no external resources). Every page names the service
    desk (DCOPS_SERVICE_DESK) and the data centre (DCOPS_DATA_CENTRE_NAME). A plan whose name or
    bullets state a size its resources do not have is published, with a warning.

    Example: dcops catalogue publish /var/www/catalogue
    """
    from dcops.catalogue.queries import site_data
    from dcops.catalogue.site import catalogue_warnings, publish
    from dcops.db import utcnow

    with open_database().transaction() as conn:
        data = site_data(conn)
    config = settings()
    written = publish(data, out_dir, generated_at=utcnow(), service_desk=config.service_desk,
                      data_centre_name=config.data_centre_name)
    for warning in catalogue_warnings(data):
        typer.echo(f"dcops: warning: {printable(warning)}", err=True)
    typer.echo(printable(f"published {len(written)} files to {out_dir} (open {out_dir / 'index.html'})"))
