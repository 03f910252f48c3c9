"""The dynamic inventory, read by the real `ansible-inventory` through the dcops-ansible-inventory script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcops.inventory.ansible import build_inventory, group_name, static_yaml

from conftest import SAMPLE_INVENTORY

# The console script pip installs beside this Python (pyproject's [project.scripts]).
SCRIPT = Path(sys.executable).parent / "dcops-ansible-inventory"


def ansible_inventory(settings, *args: str) -> dict:
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: pip install -e '.[test]' again (a new console script)"
    env = {**os.environ, "DCOPS_DATABASE_URL": settings.database_url, "DCOPS_HOME": str(settings.home),
           "ANSIBLE_HOME": str(settings.home / "ansible-home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["ansible-inventory", "-i", str(SCRIPT), *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def sample(loaded_cli):
    return loaded_cli


def test_script_protocol_through_real_ansible_inventory(sample):
    listing = ansible_inventory(sample.settings, "--list")
    hostvars = listing["_meta"]["hostvars"]
    groups = {name: value.get("hosts", []) for name, value in listing.items() if name != "_meta"}
    crvs_hosts = groups["programme_e_crvs"]
    assert crvs_hosts and all(h in hostvars for h in crvs_hosts)
    for group in ("ministry_moha", "site_vte_dc1", "cluster_vte_gen1", "tier_1", "env_production"):
        assert groups[group], group
    host = crvs_hosts[0]
    # Ansible read the text as unsafe (never templated) and says so when it writes it back.
    assert hostvars[host]["dcops_programme"]["slug"] == {"__ansible_unsafe": "e-crvs"}
    assert hostvars[host]["dcops_programme"]["tier"] == 1
    assert hostvars[host]["ansible_host"].startswith("127.")
    retired = [h for h, v in hostvars.items()
               if v["dcops_programme"]["slug"] == {"__ansible_unsafe": "census-2015-portal"}]
    assert retired == []
    one = ansible_inventory(sample.settings, "--host", host)
    assert plain(one["dcops_programme"]["name"]) == plain(hostvars[host]["dcops_programme"]["name"])


def plain(value):
    return value["__ansible_unsafe"] if isinstance(value, dict) else value


def test_cli_list_and_host(sample):
    listing = json.loads(sample("inventory", "ansible", "--list").stdout)
    host = listing["programme_lesmis"]["hosts"][0]
    vars_ = json.loads(sample("inventory", "ansible", "--host", host).stdout)
    assert vars_["dcops_programme"]["slug"] == {"__ansible_unsafe": "lesmis"}
    assert "no host 'ghost'" in sample("inventory", "ansible", "--host", "ghost", expect=2).stderr
    assert "exactly one of" in sample("inventory", "ansible", expect=2).stderr
    assert "exactly one of" in sample("inventory", "ansible", "--list", "--playbooks-dir", expect=2).stderr


def test_playbooks_dir_is_the_shipped_one_unless_the_setting_names_another(cli, tmp_path):
    from dcops.cli.main import app
    from dcops.resources import playbooks_dir

    shipped = Path(cli("inventory", "ansible", "--playbooks-dir").stdout.strip())
    assert shipped == playbooks_dir() and (shipped / "verify.yml").is_file()
    mine = tmp_path / "mine"
    result = cli.runner.invoke(app, ["inventory", "ansible", "--playbooks-dir"],
                               env={**cli.env, "DCOPS_PLAYBOOKS_DIR": str(mine)})
    assert result.exit_code == 0 and result.stdout.strip() == str(mine)


def test_group_names_have_no_dashes():
    assert group_name("programme", "e-crvs") == "programme_e_crvs"
    assert group_name("tier", 1) == "tier_1"


def test_static_yaml_marks_text_unsafe(database):
    from dcops.inventory.service import load_directory

    load_directory(database, SAMPLE_INVENTORY)
    with database.transaction() as conn:
        document = build_inventory(conn, programmes=["e-crvs"])
    text = static_yaml(document, {"ansible_python_interpreter": "/usr/bin/python3"})
    assert "!unsafe" in text and "e-crvs" in text
    assert set(document["_meta"]["hostvars"]) == set(document["programme_e_crvs"]["hosts"])
