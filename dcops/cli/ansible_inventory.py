"""`dcops inventory ansible` and the `dcops-ansible-inventory` script: the inventory for Ansible."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dcops.cli.common import fail, open_database, settings


def ansible_command(
    list_: Annotated[bool, typer.Option("--list", help="All groups and hosts, with _meta.hostvars.")] = False,
    host: Annotated[Optional[str], typer.Option("--host", help="The variables of one host.")] = None,
    playbooks_dir: Annotated[bool, typer.Option(
        "--playbooks-dir", help="Print the folder of the playbooks dcops runs (DCOPS_PLAYBOOKS_DIR, else "
                                "those shipped with dcops), for running them with ansible-playbook.")] = False,
) -> None:
    """Print the inventory for Ansible (the dynamic-inventory script protocol).

    Groups per programme, ministry, cluster, site, tier and environment (dashes become
    underscores: programme_e_crvs); text values are marked unsafe, never templated.
    The dcops-ansible-inventory command runs this for ansible-playbook -i.

    Example: ansible-playbook -i "$(command -v dcops-ansible-inventory)"
    "$(dcops inventory ansible --playbooks-dir)/verify.yml" --limit programme_e_crvs -e dcops_sandbox=false
    """
    if list_ + (host is not None) + playbooks_dir != 1:
        fail("give exactly one of --list, --host HOST or --playbooks-dir")
    if playbooks_dir:
        typer.echo(str(settings().playbooks_dir))
        return
    from dcops.inventory.ansible import build_inventory, host_vars, script_json

    with open_database().transaction() as conn:
        document = build_inventory(conn)
    typer.echo(script_json(document if list_ else host_vars(document, host)))


def main() -> None:
    """Entry point of `dcops-ansible-inventory`, the dynamic-inventory script Ansible runs with --list or --host."""
    import sys

    from dcops.cli.main import app

    # The database is the one DCOPS_DATABASE_URL / DCOPS_HOME name, as for dcops itself.
    app(["inventory", "ansible", *sys.argv[1:]], prog_name="dcops-ansible-inventory")
