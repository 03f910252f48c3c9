"""The real playbooks, run by dcops through ansible-runner in sandbox mode, and ansible-lint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from dcops.provisioning.jobs import run_job

from conftest import ROOT
from provisioning_fixtures import approved

pytestmark = pytest.mark.slow

HOSTILE_DESCRIPTION = "{{ lookup('pipe', 'id') }}"


def provision(database, settings, slugs, **options):
    return run_job(database, options.pop("kind", "provision"), slugs, home=settings.home,
                   sandbox_root=settings.home / "sandbox", run_date="20261129", **options)


def status_of(database, slug):
    with database.transaction() as conn:
        return conn.execute(sa.text("SELECT status FROM programme WHERE slug = :s"), {"s": slug}).scalar()


@pytest.fixture
def portal(database, tmp_path):
    approved(database, tmp_path, "portal", description=HOSTILE_DESCRIPTION)
    return "portal"


def test_provision_is_idempotent_verifiable_and_keeps_request_text_literal(database, settings, portal, tmp_path):
    canary = tmp_path / "pwned"
    with database.transaction() as conn:
        conn.execute(sa.text("UPDATE programme SET name = :n WHERE slug = 'portal'"),
                     {"n": f'Portal "$(touch {canary})" `touch {canary}`; rm -rf /'})
        conn.execute(sa.text("INSERT INTO endpoint (programme_id, name, kind, target) SELECT id, 'web', 'http', "
                             "'http://127.0.0.1:18080/healthz' FROM programme WHERE slug = 'portal'"))
    first = provision(database, settings, [portal])
    assert first.ok, first
    assert all(stats["changed"] > 0 for stats in first.host_stats.values())
    assert status_of(database, portal) == "active"

    root = settings.home / "sandbox" / "portal-01"
    config = root / "opt" / "dcops" / "portal" / "etc" / "programme.yaml"
    assert yaml.safe_load(config.read_text())["description"] == HOSTILE_DESCRIPTION
    assert "uid=" not in config.read_text()
    for path in ("etc/systemd/system/dcops-portal.service", "etc/logrotate.d/dcops-portal",
                 "etc/nginx/sites-available/dcops-portal.conf", "etc/dcops/health.d/portal.json"):
        assert (root / path).is_file(), path
    assert "127.0.0.1:18080" in (root / "etc/nginx/sites-available/dcops-portal.conf").read_text()
    environment = root / "opt" / "dcops" / "portal" / "etc" / "environment"
    sourced = subprocess.run(["sh", "-c", f'. "{environment}" && printf %s "$DCOPS_PROGRAMME_NAME"'],
                             capture_output=True, text=True, check=True)
    assert sourced.stdout == f'Portal "$(touch {canary})" `touch {canary}`; rm -rf /'
    assert not canary.exists()

    second = provision(database, settings, [portal])
    assert second.ok
    assert all(stats["changed"] == 0 for stats in second.host_stats.values()), second.host_stats
    verified = provision(database, settings, [portal], kind="verify")
    assert verified.ok and all(stats["changed"] == 0 for stats in verified.host_stats.values())


def test_check_mode_writes_nothing(database, settings, portal):
    outcome = provision(database, settings, [portal], check=True)
    assert outcome.ok
    assert not (settings.home / "sandbox" / "portal-01").exists()
    assert status_of(database, portal) == "approved"


def test_decommission_archives_then_removes_and_retires(database, settings, portal):
    assert provision(database, settings, [portal]).ok
    outcome = provision(database, settings, [portal], kind="decommission")
    assert outcome.ok, outcome
    assert status_of(database, portal) == "retired"
    with database.transaction() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM allocation a JOIN programme p ON p.id = a.programme_id "
                                    "WHERE p.slug = 'portal'")).scalar()
    assert held == 0
    root = settings.home / "sandbox" / "portal-01"
    archives = list((root / "var" / "backups" / "dcops").glob("portal-20261129*.tar.gz"))
    assert len(archives) == 1
    with tarfile.open(archives[0]) as archive:
        assert "opt/dcops/portal/etc/programme.yaml" in archive.getnames()
    assert not (root / "opt" / "dcops" / "portal").exists()
    assert not (root / "etc" / "systemd" / "system" / "dcops-portal.service").exists()


def test_ansible_lint_is_clean():
    lint = shutil.which("ansible-lint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert lint, "ansible-lint is part of the test extra: pip install -e '.[test]'"
    env = {**os.environ, "ANSIBLE_HOME": str(ROOT / ".ansible-lint-home")}
    result = subprocess.run([lint, "--offline", "--nocolor", "dcops/playbooks/"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s), 0 warning(s)" in result.stdout + result.stderr
