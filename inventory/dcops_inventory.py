#!/usr/bin/env python3
"""Ansible dynamic inventory from dcops: `ansible-playbook -i inventory/dcops_inventory.py ...`.

Runs `dcops inventory ansible --list` (or `--host HOST`) against the database that
DCOPS_DATABASE_URL / DCOPS_HOME name. Not an inventory document: dcops' loader reads
only *.yaml files.
"""

import sys

from dcops.cli.main import app

if __name__ == "__main__":
    app(["inventory", "ansible", *sys.argv[1:]], prog_name="dcops")
