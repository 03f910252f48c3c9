"""dcops installed like real software: the wheel carries its templates, playbooks and sample, and
runs from a fresh virtual environment with no checkout in sight; the sample copied out to start from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import ROOT
from dcops.errors import UserError
from dcops.inventory.service import load_directory
from dcops.resources import copy_sample, playbooks_dir, sample_dir, templates_dir

# What the wheel must carry for every command to work without a checkout (paths inside dcops/).
SHIPPED = (
    "templates/reports/uptime.html.j2", "templates/reports/capacity.md.j2", "templates/reports/_base.html.j2",
    "templates/catalogue/index.html", "templates/catalogue/offering.html", "templates/catalogue/style.css",
    "playbooks/provision.yml", "playbooks/verify.yml", "playbooks/decommission.yml",
    "playbooks/roles/dcops/vars/main.yml", "playbooks/roles/programme/templates/vhost.conf.j2",
    "playbooks/roles/programme/defaults/main.yml", "sample/catalogue.yaml", "sample/sites.yaml",
    "sample/tiers.yaml", "sample/ministries.yaml", "sample/programmes/moh.yaml", "sample/README.md",
    "migrations/script.py.mako", "migrations/env.py",
)
# The checkout's own clutter, never copied into the build (nor into the wheel).
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".hypothesis",
                                    ".pytest_cache", ".benchmarks", ".ansible-lint-home", ".ansible")


def test_the_shipped_folders_are_inside_the_package():
    package = Path(__import__("dcops").__file__).parent
    assert templates_dir() == package / "templates" and playbooks_dir() == package / "playbooks"
    assert sample_dir() == package / "sample"
    for relative in SHIPPED:
        assert (package / relative).is_file(), relative
    # One copy only: nothing left at the top of the checkout.
    assert not any((ROOT / name).exists() for name in ("templates", "playbooks", "inventory"))


def test_a_copy_of_the_sample_loads_as_the_sample_does(tmp_path, database):
    target = tmp_path / "inventory"
    written = copy_sample(target)
    assert target / "catalogue.yaml" in written and target / "programmes" / "moh.yaml" in written
    assert sorted(p.relative_to(target) for p in written) == sorted(
        p.relative_to(sample_dir()) for p in sample_dir().rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert (target / "sites.yaml").read_bytes() == (sample_dir() / "sites.yaml").read_bytes()
    load_directory(database, target)
    assert not load_directory(database, sample_dir()).has_changes  # the copy was the sample, whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".inventory")], "no staging folder left"


def test_copying_the_sample_refuses_a_folder_in_use_and_writes_nothing(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.yaml").write_text("ministries: []\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for target, message in ((used, "not empty"), (a_file, "not a folder")):
        with pytest.raises(UserError, match=message):
            copy_sample(target)
    assert [p.name for p in used.iterdir()] == ["mine.yaml"] and a_file.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "used"]  # no staging folder left
    empty = tmp_path / "empty"
    empty.mkdir()
    assert copy_sample(empty) and (empty / "tiers.yaml").is_file()


def test_the_sample_command_writes_the_copy(cli, tmp_path):
    result = cli("inventory", "sample", tmp_path / "inv")
    assert f"written to {tmp_path / 'inv'}" in result.stdout and (tmp_path / "inv" / "catalogue.yaml").is_file()
    assert "Example: dcops inventory sample" in cli("inventory", "sample", "--help").stdout
    refused = cli("inventory", "sample", tmp_path / "inv", expect=2)
    assert refused.stderr.startswith("dcops: error:") and refused.stderr.count("\n") == 1
    cli("inventory", "load", tmp_path / "inv")  # the copy loads


def run(command: list, *, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_runs_everything_without_a_checkout(tmp_path):
    # Build from a copy of the source, so that the build writes nothing into the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    dist = tmp_path / "dist"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DCOPS_", "PYTHON"))}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source], cwd=tmp_path, env=clean,
        timeout=300)
    (wheel,) = dist.glob("dcops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for relative in SHIPPED:
        assert f"dcops/{relative}" in names, relative
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("templates/", "playbooks/", "inventory/"))]

    # A venv that sees the system's packages (the dependencies, already installed) but gets dcops
    # only from the wheel, not editable. The checkout's editable dcops is visible through the
    # system site-packages too, so the test proves which one runs.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path, env=clean)
    bin_dir = venv / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel], cwd=tmp_path,
        env=clean)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    env = {**clean, "DCOPS_HOME": str(home), "HOME": str(tmp_path / "user"),
           "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    where = run([bin_dir / "python", "-c", "import dcops, dcops.resources as r; print(dcops.__file__); "
                 "print(r.playbooks_dir()); print(r.templates_dir())"], cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    assert run([bin_dir / "dcops", "--version"], cwd=work, env=env).stdout.strip() == "dcops 0.1.0"
    playbooks = Path(run([bin_dir / "dcops", "inventory", "ansible", "--playbooks-dir"], cwd=work, env=env)
                     .stdout.strip())
    assert playbooks.is_relative_to(venv) and (playbooks / "roles" / "programme" / "tasks" / "main.yml").is_file()

    demo = run([bin_dir / "dcops", "demo", "--probe-seconds", "10"], cwd=work, env=env, timeout=180)
    assert "demo finished in" in demo.stdout, demo.stdout
    assert not [line for line in demo.stdout.splitlines() if line.strip().startswith("skipped ")], demo.stdout
    assert list(work.iterdir()) == [], "the demo writes nothing into the current directory"
    (folder,) = (home / "demos").iterdir()
    assert (folder / "dcops.db").is_file() and (folder / "catalogue-site" / "index.html").is_file()
    assert len(list((folder / "reports").iterdir())) == 4

    # The demo's database, explored as the demo says: every report in every format, and the site.
    demo_env = {**env, "DCOPS_HOME": str(folder)}
    month = datetime.now(ZoneInfo("Asia/Vientiane")).strftime("%Y-%m")
    for kind, options in (("uptime", ["--period", month]), ("capacity", [])):
        for fmt in ("md", "html", "csv", "json"):
            out = run([bin_dir / "dcops", "report", kind, *options, "--format", fmt], cwd=work, env=demo_env).stdout
            assert out.strip(), (kind, fmt)
            if fmt == "json":
                assert json.loads(out)["kind"] == kind
            if fmt == "html":
                assert out.lstrip().lower().startswith("<!doctype html>") and "<style>" in out, out[:200]
            if fmt == "md" and kind == "uptime":
                assert "immunisation-registry" in out
    site = tmp_path / "site"
    run([bin_dir / "dcops", "catalogue", "publish", site], cwd=work, env=demo_env)
    assert (site / "index.html").is_file() and (site / "style.css").is_file() and (site / "catalog.json").is_file()
    # The dynamic-inventory script, installed with dcops.
    listing = json.loads(run([bin_dir / "dcops-ansible-inventory", "--list"], cwd=work, env=demo_env).stdout)
    assert listing["programme_e_crvs"]["hosts"]
    assert list(work.iterdir()) == []
