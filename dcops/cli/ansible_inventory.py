"""`dcops inventory ansible`: the inventory as Ansible's dynamic-inventory script protocol."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dcops.cli.common import fail, open_database


def ansible_command(
    list_: Annotated[bool, typer.Option("--list", help="All groups and hosts, with _meta.hostvars.")] = False,
    host: Annotated[Optional[str], typer.Option("--host", help="The variables of one host.")] = None,
) -> None:
    """Print the inventory for Ansible (the dynamic-inventory script protocol).

    Groups per programme, ministry, cluster, site, tier and environment (dashes become
    underscores: programme_e_crvs); text values are marked unsafe, never templated.
    inventory/dcops_inventory.py runs this for ansible-playbook -i.

    Example: ansible-playbook -i inventory/dcops_inventory.py playbooks/verify.yml --limit programme_e_crvs
    """
    from dcops.inventory.ansible import build_inventory, host_vars, script_json

    if list_ == (host is not None):
        fail("give exactly one of --list or --host HOST")
    with open_database().transaction() as conn:
        document = build_inventory(conn)
    typer.echo(script_json(document if list_ else host_vars(document, host)))
