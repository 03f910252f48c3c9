"""`dcops cluster`: capacity pools and how full they are."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dcops.cli.common import OUTPUT_HELP, Output, echo_csv, echo_json, echo_table, open_database

app = typer.Typer(help="Clusters (capacity pools at a site) and their capacity.", no_args_is_help=True)


@app.command("list")
def list_command(
    site: Annotated[Optional[str], typer.Option(help="Only clusters at this site (its code).")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """Capacity, allocated, free and percent used, per cluster and resource.

    capacity = (total - reserved) x allocation_ratio; allocated is the sum of the
    programmes' allocations. JSON keys: cluster, site, resource, total, reserved,
    allocation_ratio, capacity, allocated, free, used_ratio (0-1, null if no capacity).

    Example: dcops cluster list --site vte-dc1
    """
    from dcops.inventory.queries import cluster_usage

    with open_database().transaction() as conn:
        usage = [row.as_dict() for row in cluster_usage(conn, site=site)]
    if output == Output.json:
        echo_json(usage)
    elif output == Output.csv:
        echo_csv(usage, list(usage[0]) if usage else ["cluster"])
    else:
        echo_table(
            (
                (
                    u["cluster"], u["site"], u["resource"], u["capacity"], u["allocated"], u["free"],
                    "-" if u["used_ratio"] is None else f"{100 * u['used_ratio']:.1f}%",
                )
                for u in usage
            ),
            ("CLUSTER", "SITE", "RESOURCE", "CAPACITY", "ALLOCATED", "FREE", "USED"),
            right=(3, 4, 5, 6),
            shrink=(0, 1),
        )
