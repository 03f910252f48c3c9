"""Provisioning jobs through the real ansible-runner: states follow jobs; failures, timeouts,
cancellation and a killed dcops all end in a recorded, retryable state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dcops.catalogue.requests import show_request
from dcops.db import open_database
from dcops.errors import UserError
from dcops.provisioning.jobs import run_job, show_job
from dcops.provisioning.runner import stop_leftovers

from provisioning_fixtures import TEST_PLAYBOOKS, approved

pytestmark = pytest.mark.slow


def status_of(database, slug):
    with database.transaction() as conn:
        return conn.execute(sa.text("SELECT status FROM programme WHERE slug = :s"), {"s": slug}).scalar()


def request_of(database, request_id):
    with database.transaction() as conn:
        return show_request(conn, request_id)


def run(database, settings, slugs, **options):
    options.setdefault("sandbox_root", settings.home / "sandbox")
    return run_job(database, options.pop("kind", "provision"), slugs, home=settings.home,
                   playbooks_dir=TEST_PLAYBOOKS, **options)


def test_success_moves_request_and_programme_to_active_and_records_the_job(database, settings, tmp_path):
    ids = approved(database, tmp_path, "portal")
    events = []
    outcome = run(database, settings, ["portal"], on_event=events.append)
    assert outcome.ok and outcome.rc == 0
    assert outcome.host_stats["portal-01"]["changed"] == 1 and outcome.host_stats["portal-02"]["failed"] == 0
    assert status_of(database, "portal") == "active"
    assert request_of(database, ids["portal"])["state"] == "active"
    assert [e.task for e in events if e.kind == "task"] == ["Write the description", "Fail until the operator fixes it",
                                                           "Hang"]
    with database.transaction() as conn:
        job = show_job(conn, outcome.job_id)
    assert (job["status"], job["kind"], job["programmes"], job["check_mode"]) == ("successful", "provision",
                                                                                   ["portal"], False)
    assert Path(job["event_log"]).is_dir() and len(list(Path(job["event_log"]).glob("*.json"))) > 5
    assert not (Path(job["private_data_dir"]) / "env").exists()  # nothing secret ever written there
    history = [h["action"] for h in request_of(database, ids["portal"])["history"]]
    assert history[-2:] == ["request.provisioning", "request.active"]


def test_failure_names_task_host_and_message_and_is_retryable(database, settings, tmp_path):
    ids = approved(database, tmp_path, "fails-db")
    outcome = run(database, settings, ["fails-db"])
    assert (outcome.status, outcome.failed_task) == ("failed", "Fail until the operator fixes it")
    assert outcome.failed_host in ("fails-db-01", "fails-db-02")
    assert outcome.failure_message == f"disk full on {outcome.failed_host}"
    assert status_of(database, "fails-db") == "failed"
    request = request_of(database, ids["fails-db"])
    assert request["state"] == "failed" and "disk full" in request["reason"]
    (settings.home / "sandbox" / "fixed").touch()
    assert run(database, settings, ["fails-db"]).ok
    assert status_of(database, "fails-db") == "active"


def test_timeout_cancels_the_run_and_records_it(database, settings, tmp_path):
    approved(database, tmp_path, "hangs")
    started = time.monotonic()
    outcome = run(database, settings, ["hangs"], timeout=4)
    assert time.monotonic() - started < 60
    assert outcome.status == "timeout" and "timed out after 4 s" in outcome.failure_message
    assert status_of(database, "hangs") == "failed"


def test_check_mode_changes_no_state(database, settings, tmp_path):
    approved(database, tmp_path, "portal")
    outcome = run(database, settings, ["portal"], check=True)
    assert outcome.ok
    assert status_of(database, "portal") == "approved"
    assert not (settings.home / "sandbox" / "portal-01.txt").exists()


def test_refusals_before_anything_runs(database, settings, tmp_path):
    approved(database, tmp_path, "portal")
    with pytest.raises(UserError, match="no programme 'ghost'"):
        run(database, settings, ["ghost"])
    with pytest.raises(UserError, match="e-gov-portal has no hosts"):
        run(database, settings, ["e-gov-portal"])
    with pytest.raises(UserError, match="decommission takes"):
        run(database, settings, ["portal"], kind="decommission")
    with database.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM job")).scalar() == 0


def test_all_approved_runs_many_programmes_in_one_job(database, settings, tmp_path):
    approved(database, tmp_path, "one", "two", "three")
    outcome = run(database, settings, None, forks=6)
    assert outcome.ok and sorted(outcome.programmes) == ["one", "three", "two"]
    assert len(outcome.host_stats) == 6
    assert {status_of(database, s) for s in ("one", "two", "three")} == {"active"}
    with pytest.raises(UserError, match="no approved programme"):
        run(database, settings, None)


def test_templates_in_request_text_stay_literal(database, settings, tmp_path):
    canary = tmp_path / "pwned"
    text = "{{ lookup('pipe', 'id') }} $(touch " + str(canary) + ") `touch " + str(canary) + "`"
    approved(database, tmp_path, "portal", description=text)
    assert run(database, settings, ["portal"]).ok
    assert (settings.home / "sandbox" / "portal-01.txt").read_text() == text + "\n"
    assert not canary.exists()


def _cli_env(settings) -> dict:
    env = {**os.environ, "DCOPS_DATABASE_URL": settings.database_url, "DCOPS_HOME": str(settings.home),
           "DCOPS_PLAYBOOKS_DIR": str(TEST_PLAYBOOKS)}
    return env


def _wait_for_hang(database, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.transaction() as conn:
            row = conn.execute(sa.text("SELECT private_data_dir FROM job WHERE status = 'running'")).first()
        if row and row[0]:
            events = Path(row[0]) / "artifacts" / "run" / "job_events"
            texts = []
            for event_file in events.glob("*.json"):
                try:
                    texts.append(event_file.read_text())
                except FileNotFoundError:  # ansible-runner renames partial event files as it goes
                    continue
            if any('"playbook_on_task_start"' in t and '"task": "Hang"' in t for t in texts):
                return
        time.sleep(0.2)
    raise AssertionError("the run never reached the hanging task")


def test_sigkill_mid_run_leaves_a_job_the_next_command_marks_interrupted_and_stops(database, settings, tmp_path):
    slugs = ["hangs-a", "hangs-b", "hangs-c"]
    ids = approved(database, tmp_path, *slugs)
    process = subprocess.Popen(
        [sys.executable, "-m", "dcops", "provision", "run", *slugs, "--sandbox", str(settings.home / "sandbox")],
        env=_cli_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    jobs = str(settings.home / "jobs")
    try:
        _wait_for_hang(database)
        assert len(_processes_mentioning(jobs)) > 1, "the run should have ansible-playbook and its workers"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        with database.transaction() as conn:
            assert conn.execute(sa.text("SELECT status FROM job")).scalar() == "running"
        assert _processes_mentioning(jobs), "ansible-playbook outlives the killed dcops until the reaper stops it"
        listing = subprocess.run([sys.executable, "-m", "dcops", "provision", "jobs", "-o", "json"],
                                 env=_cli_env(settings), capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert "marked interrupted" in listing.stderr
        (job,) = json.loads(listing.stdout)
        assert job["status"] == "interrupted" and job["finished_at"]
        assert not _processes_mentioning(jobs), "the interrupted job left processes behind"
    finally:
        process.kill()
        process.wait(timeout=30)
        with database.transaction() as conn:
            folder = conn.execute(sa.text("SELECT private_data_dir FROM job")).scalar()
        if folder:  # a failing run must not leave its processes behind either
            stop_leftovers(Path(folder), grace_seconds=1)
    for slug in slugs:
        assert status_of(database, slug) == "failed"
        assert request_of(database, ids[slug])["state"] == "failed"


def test_ctrl_c_cancels_cleanly_and_records_it(database, settings, tmp_path):
    approved(database, tmp_path, "hangs")
    process = subprocess.Popen(
        [sys.executable, "-m", "dcops", "provision", "run", "hangs", "--sandbox", str(settings.home / "sandbox")],
        env=_cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _wait_for_hang(database)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "cancelled" in err and "Traceback" not in err
    with database.transaction() as conn:
        assert conn.execute(sa.text("SELECT status FROM job")).scalar() == "cancelled"
    assert status_of(database, "hangs") == "failed"
    assert not _processes_mentioning(str(settings.home / "jobs")), "the cancelled run left processes behind"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            stat = (cmdline.parent / "stat").read_text()
            if text in cmdline.read_bytes().decode(errors="replace") and stat.rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_a_second_run_on_a_busy_programme_is_refused(database, settings, tmp_path):
    approved(database, tmp_path, "hangs")
    process = subprocess.Popen(
        [sys.executable, "-m", "dcops", "provision", "run", "hangs", "--sandbox", str(settings.home / "sandbox"),
         "--timeout", "60"],
        env=_cli_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_hang(database)
        other = open_database(settings)
        with pytest.raises(UserError):  # it is provisioning now, which a run does not take
            run(other, settings, ["hangs"])
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def test_unreachable_host_is_reported_as_such(database, settings, tmp_path, monkeypatch, unused_port):
    approved(database, tmp_path, "portal")
    monkeypatch.setenv("ANSIBLE_REMOTE_PORT", str(unused_port))
    monkeypatch.setenv("ANSIBLE_TIMEOUT", "5")
    outcome = run(database, settings, ["portal"], sandbox_root=None)
    assert outcome.status == "failed"
    assert outcome.failure_message.startswith("unreachable:")
    assert all(stats["unreachable"] == 1 for stats in outcome.host_stats.values())


def test_cli_run_jobs_and_events(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DCOPS_PLAYBOOKS_DIR", str(TEST_PLAYBOOKS))
    database = open_database(cli.settings)
    approved(database, tmp_path, "portal", "fails-x")
    sandbox = cli.settings.home / "sandbox"
    result = cli("provision", "run", "portal", "--sandbox", sandbox, "-o", "json")
    report = json.loads(result.stdout)
    assert report["status"] == "successful" and set(report["host_stats"]) == {"portal-01", "portal-02"}
    assert "TASK Write the description" in result.stderr and "changed" in result.stderr
    failed = cli("provision", "run", "fails-x", "--sandbox", sandbox, expect=1)
    assert "at task 'Fail until the operator fixes it': disk full on fails-x-0" in failed.stderr
    jobs = json.loads(cli("provision", "jobs", "-o", "json").stdout)
    assert [(j["id"], j["status"]) for j in jobs] == [(2, "failed"), (1, "successful")]
    detail = cli("provision", "job", "2", "--events").stdout
    assert "Failed task:  Fail until the operator fixes it" in detail
    assert "runner_on_failed" in detail and "playbook_on_stats" in detail
    assert "no job 9" in cli("provision", "job", "9", expect=2).stderr
    assert "give programme slugs or --all-approved" in cli("provision", "run", expect=2).stderr
    assert "--timeout must be a positive" in cli("provision", "run", "portal", "--timeout", "0", expect=2).stderr


def test_old_job_directories_are_pruned(database, settings, tmp_path):
    approved(database, tmp_path, "portal")
    for _ in range(3):
        assert run(database, settings, ["portal"], keep_jobs=2).ok
    assert sorted(p.name for p in (settings.home / "jobs").iterdir()) == ["job-000002", "job-000003"]
    with database.transaction() as conn:
        first = show_job(conn, 1)
    from dcops.provisioning.jobs import job_events

    assert first["status"] == "successful" and job_events(first) == []


def test_a_mistyped_folder_or_fork_count_is_refused_before_any_job(database, settings, tmp_path):
    """A path the user got wrong is their mistake: one line, no job row, the programme still approved."""
    approved(database, tmp_path, "portal")
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    with pytest.raises(UserError, match="--sandbox: cannot create"):
        run(database, settings, ["portal"], sandbox_root=a_file)
    with pytest.raises(UserError, match="--forks must be at least 1"):
        run(database, settings, ["portal"], forks=0)
    with database.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM job")).scalar() == 0
    assert status_of(database, "portal") == "approved"
