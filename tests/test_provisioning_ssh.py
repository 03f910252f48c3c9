"""Provisioning over a REAL SSH connection: a throwaway sshd on 127.0.0.1 (tests/sshd.py) and
run_job(sandbox_over_ssh=True), so Ansible's default ssh connection carries every task while
every path stays under the sandbox directory. The real playbooks run: provision, then verify."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from dcops.provisioning.jobs import run_job, show_job

from dcops.settings import DEFAULT_PLAYBOOKS_DIR

from provisioning_fixtures import approved
from sshd import keygen, running_sshd, sshd_log

pytestmark = pytest.mark.slow

PLAYBOOKS = DEFAULT_PLAYBOOKS_DIR
HOSTS = ("portal-01", "portal-02")


@pytest.fixture
def start_sshd(tmp_path, unused_port):
    """Starts the test sshd when called (inside the test, so that a missing sshd FAILS the
    test rather than erroring its setup); stops it after the test."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(running_sshd(tmp_path / "sshd", port=unused_port))


@pytest.fixture
def portal(database, tmp_path):
    """An approved programme `portal` whose two hosts both resolve to the test sshd."""
    approved(database, tmp_path, "portal")
    with database.transaction() as conn:
        conn.execute(sa.text("UPDATE host SET address = '127.0.0.1'"))
    return "portal"


def _use(monkeypatch, environment: dict[str, str]) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # One SSH session per task instead of several: a third of the time.
    monkeypatch.setenv("ANSIBLE_PIPELINING", "True")


def _run(database, settings, kind, slug, sandbox):
    return run_job(database, kind, [slug], home=settings.home, sandbox_root=sandbox, sandbox_over_ssh=True,
                   playbooks_dir=PLAYBOOKS, timeout=300)


def _status(database, slug):
    with database.transaction() as conn:
        return conn.execute(sa.text("SELECT status FROM programme WHERE slug = :s"), {"s": slug}).scalar()


def _explain(outcome, server) -> str:
    return (f"{outcome.status} on {outcome.failed_host} at {outcome.failed_task!r}: {outcome.failure_message}\n"
            f"stats: {outcome.host_stats}\nsshd log:\n{sshd_log(server)[-3000:]}")


def test_provision_over_ssh(database, settings, portal, start_sshd, monkeypatch):
    sshd = start_sshd()
    _use(monkeypatch, sshd.ansible_env())
    sandbox = settings.home / "sandbox"

    outcome = _run(database, settings, "provision", portal, sandbox)
    assert outcome.ok, _explain(outcome, sshd)
    assert _status(database, portal) == "active"
    assert set(outcome.host_stats) == set(HOSTS)
    for host in HOSTS:
        stats = outcome.host_stats[host]
        assert stats["ok"] > 0 and stats["changed"] > 0, stats
        assert stats["failed"] == stats["unreachable"] == 0, stats
        # written by the template module on the far side of the SSH connection
        config = sandbox / host / "opt" / "dcops" / portal / "etc" / "programme.yaml"
        assert "A portal" in config.read_text(encoding="utf-8")
    with database.transaction() as conn:
        job = show_job(conn, outcome.job_id)
    assert (job["status"], job["sandbox"]) == ("successful", True)
    log = sshd_log(sshd)  # really over SSH with the client key, not a local connection
    assert log.count("Accepted publickey for ") >= 2, log[-3000:]
    verified = _run(database, settings, "verify", portal, sandbox)
    assert verified.ok, _explain(verified, sshd)
    assert all(stats["changed"] == 0 for stats in verified.host_stats.values())


def test_wrong_client_key_is_reported_unreachable(database, settings, portal, start_sshd, monkeypatch, tmp_path):
    sshd = start_sshd()
    stranger = keygen(tmp_path / "stranger_ed25519", "not-authorized")
    _use(monkeypatch, sshd.ansible_env(client_key=stranger))
    sandbox = settings.home / "sandbox"

    outcome = _run(database, settings, "provision", portal, sandbox)
    assert outcome.status == "failed", _explain(outcome, sshd)
    assert outcome.failure_message.startswith("unreachable:"), outcome.failure_message
    assert "Permission denied" in outcome.failure_message, outcome.failure_message
    assert outcome.failed_host in HOSTS
    assert all(outcome.host_stats[h]["unreachable"] == 1 for h in HOSTS), outcome.host_stats
    assert _status(database, portal) == "failed"
    with database.transaction() as conn:
        job = show_job(conn, outcome.job_id)
    assert job["status"] == "failed" and job["failure_message"].startswith("unreachable:")
    assert not any(sandbox.glob("*/opt"))
    assert "Accepted publickey" not in sshd_log(sshd)
