"""Jobs: start, run and finish a playbook run on programmes; their states follow the job."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from dcops.access import as_actor, authorize
from dcops import audit
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import Conflict, NotFound, UserError
from dcops.lifecycle import (OPEN_STATES, PROGRAMME_STATUS, TERMINAL,  # noqa: F401 - TERMINAL is read from here
                             move_job, move_programme, move_request)
from dcops.inventory.ansible import build_inventory, static_yaml
from dcops.models import Host, HostingRequest, Job, Programme
from dcops.provisioning.liveness import process_start, stale_jobs, this_host
from dcops.provisioning.runner import HostEvent, RunResult, run_playbook, stop_leftovers
from dcops.settings import DEFAULT_PLAYBOOKS_DIR

T_JOB = Job.__table__
T_PROGRAMME = Programme.__table__
T_REQUEST = HostingRequest.__table__
T_HOST = Host.__table__

PLAYBOOKS = {"provision": "provision.yml", "decommission": "decommission.yml", "verify": "verify.yml"}
# Which programme statuses each kind of job accepts.
ACCEPTS = {
    "provision": frozenset({"approved", "failed", "active"}),
    "decommission": frozenset({"active", "failed", "decommissioning"}),
    "verify": frozenset({"active", "provisioning", "failed"}),
}
DEFAULT_JOBS_KEPT = 200


@dataclass(frozen=True)
class JobOutcome:
    """A finished job, as the CLI reports it."""

    job_id: int
    status: str
    rc: int | None
    programmes: list[str]
    host_stats: dict[str, dict[str, int]]
    failed_host: str | None
    failed_task: str | None
    failure_message: str | None
    private_data_dir: str

    @property
    def ok(self) -> bool:
        return self.status == "successful"

    @property
    def failure_summary(self) -> str:
        """'job 7 failed on tax-app-1 at task 'Start service': ...', as the job's programmes record it."""
        return failure_summary(self.job_id, self.status, self.failed_host, self.failed_task, self.failure_message)


def failure_summary(job_id: int, status: str, host: str | None, task: str | None, message: str | None) -> str:
    """One line saying how a job ended badly: where, at which task, and Ansible's message."""
    where = f" on {host}" if host else ""
    at_task = f" at task '{task}'" if task else ""
    return f"job {job_id} {status}{where}{at_task}: {message or ''}".strip()


def jobs_dir(home: Path) -> Path:
    """Where each job's private data directory (inventory, artefacts, event log) lives."""
    return home / "jobs"


def _move(conn: Connection, slug: str, status: str, *, actor: str, reason: str = "") -> None:
    """Move a programme (through the hosting request that drives it, if any) to `status`."""
    request_state = {programme_status: state for state, programme_status in PROGRAMME_STATUS.items()}
    programme = conn.execute(select(T_PROGRAMME).where(T_PROGRAMME.c.slug == slug)).one()
    if programme.status == status:
        return
    request = conn.execute(
        select(T_REQUEST).where(T_REQUEST.c.programme_id == programme.id, T_REQUEST.c.state.in_(OPEN_STATES))
    ).first()
    if request is not None and request.state != request_state[status]:
        move_request(conn, request, request_state[status], actor=actor, reason=reason)
        return
    move_programme(conn, programme.id, status, actor=actor, reason=reason)


def _follow_start(conn: Connection, kind: str, slugs: list[str], actor: str) -> None:
    for slug in slugs:
        status = conn.execute(select(T_PROGRAMME.c.status).where(T_PROGRAMME.c.slug == slug)).scalar_one()
        if kind == "provision" and status in ("approved", "failed"):
            _move(conn, slug, "provisioning", actor=actor)
        elif kind == "decommission" and status in ("active", "failed"):
            _move(conn, slug, "decommissioning", actor=actor)


def _follow_end(conn: Connection, kind: str, slugs: list[str], status: str, reason: str, actor: str) -> None:
    for slug in slugs:
        current = conn.execute(select(T_PROGRAMME.c.status).where(T_PROGRAMME.c.slug == slug)).scalar_one()
        if kind == "provision" and current == "provisioning":
            _move(conn, slug, "active" if status == "successful" else "failed", actor=actor, reason=reason)
        elif kind == "decommission" and current == "decommissioning" and status == "successful":
            _move(conn, slug, "retired", actor=actor)


def _select_programmes(conn: Connection, kind: str, slugs: list[str] | None) -> list[str]:
    if slugs is None:  # every approved programme
        slugs = [r[0] for r in conn.execute(
            select(T_PROGRAMME.c.slug).where(T_PROGRAMME.c.status == "approved").order_by(T_PROGRAMME.c.slug))]
        if not slugs:
            raise UserError("no approved programme is waiting for provisioning")
    status_of = dict(conn.execute(select(T_PROGRAMME.c.slug, T_PROGRAMME.c.status)
                                  .where(T_PROGRAMME.c.slug.in_(slugs))).all())
    problems, refused = [], set()
    for slug in slugs:
        status = status_of.get(slug)
        if status is None:
            problems.append(f"no programme {slug!r}")
        elif status not in ACCEPTS[kind]:
            problems.append(f"programme {slug} is {status}; {kind} takes {', '.join(sorted(ACCEPTS[kind]))} ones")
        else:
            continue
        refused.add(slug)
    with_hosts = {r[0] for r in conn.execute(
        select(T_PROGRAMME.c.slug).join(T_HOST, T_HOST.c.programme_id == T_PROGRAMME.c.id)
        .where(T_PROGRAMME.c.slug.in_(slugs)))}
    problems += [f"programme {slug} has no hosts (add them in the inventory)"
                 for slug in slugs if slug not in with_hosts and slug not in refused]
    if problems:
        raise UserError("; ".join(problems))
    return list(dict.fromkeys(slugs))


def _busy(conn: Connection, slugs: list[str]) -> None:
    for job in conn.execute(select(T_JOB.c.id, T_JOB.c.programmes).where(T_JOB.c.status == "running")):
        overlap = set(job.programmes) & set(slugs)
        if overlap:
            raise Conflict(f"job {job.id} is already running on {', '.join(sorted(overlap))}")


def start_job(
    database: Database, kind: str, slugs: list[str] | None, *, actor: str, check: bool, sandbox: bool, home: Path
) -> tuple[int, list[str], Path]:
    """Record a running job (and move its programmes along) in one transaction."""
    with database.transaction(immediate=True) as conn:
        reap(conn, actor="dcops")
        chosen = _select_programmes(conn, kind, slugs)
        _busy(conn, chosen)
        now = utcnow()
        job_id = conn.execute(insert(T_JOB).values(
            kind=kind, playbook=PLAYBOOKS[kind], programmes=chosen, check_mode=check, sandbox=sandbox,
            status="running", actor=actor, started_at=now, hostname=this_host(), pid=os.getpid(),
            pid_start=process_start(os.getpid()), private_data_dir="", host_stats={},
        ).returning(T_JOB.c.id)).scalar_one()
        private_data_dir = jobs_dir(home) / f"job-{job_id:06d}"
        conn.execute(update(T_JOB).where(T_JOB.c.id == job_id).values(private_data_dir=str(private_data_dir)))
        if not check:
            _follow_start(conn, kind, chosen, actor)
        audit.record(conn, audit.Event(actor, f"job.{kind}.started", "job", str(job_id), None,
                                       {"programmes": chosen, "check_mode": check, "sandbox": sandbox}))
    return job_id, chosen, private_data_dir


def finish_job(database: Database, job_id: int, result: RunResult, *, actor: str) -> None:
    """Record how a job ended and move its programmes along, in one transaction."""
    with database.transaction(immediate=True) as conn:
        job = conn.execute(select(T_JOB).where(T_JOB.c.id == job_id)).one()
        if not job.check_mode:
            reason = "" if result.status == "successful" else _reason(job_id, result)
            _follow_end(conn, job.kind, list(job.programmes), result.status, reason, actor)
        move_job(conn, job, result.status, actor=actor, detail={"rc": result.rc, "failure": result.failure_message},
                 rc=result.rc, finished_at=utcnow(), host_stats=result.host_stats, failed_host=result.failed_host,
                 failed_task=result.failed_task, failure_message=result.failure_message)


def _reason(job_id: int, result: RunResult) -> str:
    return failure_summary(job_id, result.status, result.failed_host, result.failed_task, result.failure_message)


def reap(conn: Connection, *, actor: str) -> list[int]:
    """Mark jobs whose dcops process died (SIGKILL, power loss) as interrupted, after stopping
    what they left running (their ansible-playbook and its workers, as a cancel stops them);
    their programmes become failed and retryable. Runs in the caller's write transaction."""
    reaped = stale_jobs(conn)
    for job_id in reaped:
        job = conn.execute(select(T_JOB).where(T_JOB.c.id == job_id)).one()
        _stop(job.private_data_dir)
        message = "the dcops process running this job stopped before it finished"
        if not job.check_mode:
            _follow_end(conn, job.kind, list(job.programmes), "interrupted", f"job {job_id} interrupted", actor)
        move_job(conn, job, "interrupted", actor=actor, finished_at=utcnow(), failure_message=message)
    return reaped


def _stop(private_data_dir: str) -> None:
    # An empty folder would name every job: a job is written with its folder before Ansible starts.
    if private_data_dir:
        stop_leftovers(Path(private_data_dir))


def reap_stale_jobs(database: Database) -> list[int]:
    """`reap` in its own transaction: what the CLI does when a command starts.

    The dead jobs' processes are stopped before the write lock is taken (stopping may wait
    out their grace), so other writers are not held up; `reap` finds nothing left then.
    """
    with database.transaction() as conn:
        stale = stale_jobs(conn)
        folders = conn.execute(select(T_JOB.c.private_data_dir).where(T_JOB.c.id.in_(stale))).scalars().all()
    for folder in folders:
        _stop(folder)
    with database.transaction(immediate=True) as conn:
        return reap(conn, actor="dcops")


def _prune_job_dirs(home: Path, keep: int) -> None:
    """Keep the private data directories of the newest `keep` jobs (artefacts grow forever otherwise)."""
    directories = sorted(jobs_dir(home).glob("job-*"))
    for old in directories[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def run_job(
    database: Database,
    kind: str,
    slugs: list[str] | None,
    *,
    home: Path,
    actor: str | None = None,
    check: bool = False,
    diff: bool = False,
    timeout: int | None = None,
    sandbox_root: Path | None = None,
    sandbox_over_ssh: bool = False,
    forks: int = 10,
    run_date: str | None = None,
    keep_jobs: int = DEFAULT_JOBS_KEPT,
    on_event: Callable[[HostEvent], None] = lambda event: None,
    playbooks_dir: Path = DEFAULT_PLAYBOOKS_DIR,
) -> JobOutcome:
    """Run one playbook over programmes (None: every approved one) as one Ansible run, recorded as a job.

    `sandbox_root`: every path under that folder, over a local connection (or over SSH
    to the real hosts with `sandbox_over_ssh`, to try the playbooks on a test host).
    Whatever happens inside the run, the job ends with a terminal status.
    """
    if kind not in PLAYBOOKS:
        raise UserError(f"unknown job kind {kind!r}")
    if timeout is not None and timeout <= 0:
        raise UserError("--timeout must be a positive number of seconds")
    if forks < 1:
        raise UserError("--forks must be at least 1")
    if not (playbooks_dir / PLAYBOOKS[kind]).is_file():
        raise UserError(f"no {PLAYBOOKS[kind]} in {playbooks_dir} (DCOPS_PLAYBOOKS_DIR)")
    operator = as_actor(actor)
    authorize(operator, "provision.run")
    actor = operator.name
    sandbox = sandbox_root is not None
    # Folders first: a mistyped path is the user's mistake, not a failed job.
    for folder, what in ((jobs_dir(home), "DCOPS_HOME"), (sandbox_root, "--sandbox")):
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UserError(f"{what}: cannot create {folder}: {error.strerror or error}") from None
    job_id, chosen, private_data_dir = start_job(database, kind, slugs, actor=actor, check=check, sandbox=sandbox,
                                                 home=home)
    result = RunResult(status="failed", rc=None, failure_message="dcops stopped before Ansible started")
    try:
        with database.transaction() as conn:
            document = build_inventory(conn, programmes=chosen)
        extravars = {"dcops_sandbox": sandbox, "dcops_run_date": run_date or datetime.now().strftime("%Y%m%d"),
                     "dcops_job_id": job_id}
        extra_env = {}
        inventory_vars = {"ansible_python_interpreter": "/usr/bin/python3"}
        if sandbox:
            extravars["dcops_sandbox_root"] = str(sandbox_root.resolve())
            if sandbox_over_ssh:
                extravars["dcops_sandbox_over_ssh"] = True
            else:
                extravars.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
                # Ansible's remote temp dir is local here: keep it in the job, not in ~/.ansible.
                extra_env["ANSIBLE_REMOTE_TMP"] = str(private_data_dir / "ansible-home" / "remote-tmp")
        result = run_playbook(
            private_data_dir=private_data_dir, playbook=PLAYBOOKS[kind],
            inventory_text=static_yaml(document, inventory_vars), extravars=extravars,
            forks=forks, check=check, diff=diff, timeout=timeout, on_event=on_event, playbooks_dir=playbooks_dir,
            extra_env=extra_env,
        )
    except KeyboardInterrupt:
        result = RunResult(status="cancelled", rc=None, failure_message="cancelled (Ctrl-C)")
    except Exception as error:  # noqa: BLE001 - the job must end recorded, whatever went wrong
        result = RunResult(status="failed", rc=None, failure_message=f"{type(error).__name__}: {error}")
        finish_job(database, job_id, result, actor=actor)
        if isinstance(error, OSError):  # the job's folder or a file it needs: say which, in one line
            raise UserError(f"job {job_id} failed: {error.filename or ''}: {error.strerror or error}") from None
        raise
    finish_job(database, job_id, result, actor=actor)
    _prune_job_dirs(home, keep_jobs)
    return JobOutcome(job_id, result.status, result.rc, chosen, result.host_stats, result.failed_host,
                      result.failed_task, result.failure_message, str(private_data_dir))


def list_jobs(conn: Connection, *, limit: int = 50) -> list[dict]:
    """The latest jobs, newest first."""
    rows = conn.execute(select(T_JOB).order_by(T_JOB.c.id.desc()).limit(limit))
    return [job_dict(row) for row in rows]


def job_dict(row) -> dict:
    """A job row as plain data."""
    return {
        "id": row.id, "kind": row.kind, "playbook": row.playbook, "programmes": list(row.programmes),
        "check_mode": bool(row.check_mode), "sandbox": bool(row.sandbox), "status": row.status, "rc": row.rc,
        "actor": row.actor, "started_at": iso_utc(row.started_at), "finished_at": iso_utc(row.finished_at),
        "host_stats": row.host_stats, "failed_host": row.failed_host, "failed_task": row.failed_task,
        "failure_message": row.failure_message, "private_data_dir": row.private_data_dir,
        "event_log": str(Path(row.private_data_dir) / "artifacts" / "run" / "job_events"),
    }


def show_job(conn: Connection, job_id: int) -> dict:
    """One job."""
    row = conn.execute(select(T_JOB).where(T_JOB.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id} (see `dcops provision jobs`)")
    return job_dict(row)


def job_events(job: dict) -> list[dict]:
    """The job's Ansible events from its artefacts, in order (empty once retention removed them)."""
    import json

    directory = Path(job["event_log"])
    if not directory.is_dir():
        return []
    events = []
    for path in directory.glob("*.json"):
        try:
            events.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    events.sort(key=lambda event: event.get("counter", 0))
    return [
        {"counter": e.get("counter"), "event": e.get("event"), "host": (e.get("event_data") or {}).get("host"),
         "task": (e.get("event_data") or {}).get("task"), "stdout": e.get("stdout", "")}
        for e in events
    ]
