"""The reaper: a job whose dcops process died is marked interrupted and what it left running stops."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa

from dcops.db import utcnow
from dcops.provisioning.jobs import reap_stale_jobs
from dcops.provisioning.liveness import process_start, this_host
from dcops.provisioning.runner import stop_leftovers

SLEEPER = "import sys, time; time.sleep(120)"


def _sleeper(*arguments: str) -> subprocess.Popen:
    """A process whose command line names `arguments`, as ansible-playbook names its job's folder."""
    return subprocess.Popen([sys.executable, "-c", SLEEPER, *arguments])


def _dead_pid() -> tuple[int, str]:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(process.pid)
    process.wait()
    return process.pid, started


def _running_job(database, folder) -> int:
    pid, started = _dead_pid()
    with database.transaction() as conn:
        return conn.execute(sa.text(
            "INSERT INTO job (kind, playbook, programmes, check_mode, sandbox, status, actor, started_at, hostname,"
            " pid, pid_start, private_data_dir, host_stats) VALUES ('verify', 'verify.yml', '[]', 0, 1, 'running',"
            " 'ops', :now, :host, :pid, :started, :folder, '{}') RETURNING id"),
            {"now": utcnow(), "host": this_host(), "pid": pid, "started": started, "folder": str(folder)}).scalar_one()


def test_the_reaper_stops_the_dead_jobs_processes_and_only_those(database, tmp_path):
    folder = tmp_path / "jobs" / "job-100000"
    job_id = _running_job(database, folder)
    own = _sleeper("-i", f"{folder}/inventory/hosts.yml")
    whole = _sleeper(str(folder))
    other = _sleeper("-i", f"{tmp_path}/jobs/job-1000001/inventory/hosts.yml")  # a longer id, not this job
    try:
        assert reap_stale_jobs(database) == [job_id]
        assert own.wait(timeout=10) == -15 and whole.wait(timeout=10) == -15  # SIGTERM, as a cancel sends
        assert other.poll() is None
        with database.transaction() as conn:
            status = conn.execute(sa.text("SELECT status FROM job WHERE id = :i"), {"i": job_id}).scalar()
        assert status == "interrupted"
        assert reap_stale_jobs(database) == []
    finally:
        for process in (own, whole, other):
            process.kill()
            process.wait()


def test_stop_leftovers_kills_what_ignores_sigterm(tmp_path):
    folder = tmp_path / "jobs" / "job-000007"
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                 "print('ready', flush=True); time.sleep(120)", f"{folder}/x"],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline() == "ready\n"
        assert stop_leftovers(folder, grace_seconds=0.5) == [stubborn.pid]
        assert stubborn.wait(timeout=10) == -9
    finally:
        stubborn.kill()
        stubborn.wait()
