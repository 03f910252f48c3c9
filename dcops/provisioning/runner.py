"""A thin wrapper over ansible-runner: one private data directory per run, a small result."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

@dataclass(frozen=True)
class HostEvent:
    """What the progress display needs from one Ansible event."""

    kind: str  # task | ok | changed | failed | unreachable | skipped
    host: str = ""
    task: str = ""
    message: str = ""


@dataclass
class RunResult:
    """How a run ended: runner status and rc, per-host counts, the first failure."""

    status: str  # successful | failed | timeout | cancelled
    rc: int | None
    host_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failed_host: str | None = None
    failed_task: str | None = None
    failure_message: str | None = None


def host_stats(stats: dict | None) -> dict[str, dict[str, int]]:
    """ansible-runner's stats ({'ok': {host: n}, 'dark': ...}) turned per host, in dcops' words."""
    names = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped"}
    per_host: dict[str, dict[str, int]] = {}
    for runner_name, ours in names.items():
        for host, count in ((stats or {}).get(runner_name) or {}).items():
            per_host.setdefault(host, dict.fromkeys(names.values(), 0))[ours] = count
    return per_host


def _message(result: dict) -> str:
    message = result.get("msg") or result.get("stderr") or result.get("reason") or ""
    if not message and result.get("rc") is not None:
        message = f"rc={result['rc']}"
    return " ".join(str(message).split())[:1000]


class _Progress:
    """The event handler: fast (no I/O but the progress callback), remembers the first failure."""

    def __init__(self, on_event: Callable[[HostEvent], None]):
        self.on_event = on_event
        self.failed: tuple[str, str, str] | None = None

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host") or data.get("remote_addr") or ""
        task = data.get("task") or ""
        if kind == "playbook_on_task_start":
            self.on_event(HostEvent("task", task=task))
        elif kind == "runner_on_ok":
            changed = bool((data.get("res") or {}).get("changed"))
            self.on_event(HostEvent("changed" if changed else "ok", host, task))
        elif kind == "runner_on_skipped":
            self.on_event(HostEvent("skipped", host, task))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            message = _message(data.get("res") or {})
            if self.failed is None:
                self.failed = (host, task, message)
            self.on_event(HostEvent("failed", host, task, message))
        elif kind == "runner_on_unreachable":
            message = _message(data.get("res") or {})
            if self.failed is None:
                self.failed = (host, task, f"unreachable: {message}")
            self.on_event(HostEvent("unreachable", host, task, message))
        return True  # keep the event in the job's artefacts


def stop_leftovers(private_data_dir: Path, *, grace_seconds: float = 5.0) -> list[int]:
    """Stop what a cancelled, timed-out or interrupted run left behind: ansible-runner signals
    the ansible-playbook it started, but that process and its forked workers (sessions of their
    own) can run on, finishing their task, and they outlive a dcops process that was killed.
    Every process of this user whose command line names the job's folder is asked to stop
    (SIGTERM), then killed. Returns their pids."""
    # The folder whole, as an argument or a path's start: job-100000 must not match job-1000001.
    folder = str(private_data_dir).rstrip("/").encode()
    markers = (folder + b"/", folder + b"\0")
    own = {os.getpid()}
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            pid = int(cmdline.parent.name)
            if pid in own or cmdline.parent.stat().st_uid != os.getuid():
                continue
            arguments = cmdline.read_bytes() + b"\0"
            if any(marker in arguments for marker in markers):
                os.kill(pid, signal.SIGTERM)
                found.append(pid)
        except (OSError, ValueError):  # gone meanwhile, or not ours to look at
            continue
    deadline = time.monotonic() + grace_seconds
    for pid in found:
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
            time.sleep(0.05)
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            continue  # ended on SIGTERM: its pid may be another process's soon
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def run_playbook(
    *,
    private_data_dir: Path,
    playbook: str,
    inventory_text: str,
    extravars: dict,
    forks: int = 5,
    check: bool = False,
    diff: bool = False,
    timeout: int | None = None,
    on_event: Callable[[HostEvent], None] = lambda event: None,
    playbooks_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    """Run one playbook of `playbooks_dir` through ansible-runner and say how it ended.

    Ctrl-C during the run cancels it (status cancelled) and the previous SIGINT handler
    is restored afterwards. Nothing is written under env/ (suppress_env_files), so
    settings of an earlier run can never leak into this one.
    """
    import ansible_runner

    private_data_dir.mkdir(parents=True, exist_ok=True)
    inventory_dir = private_data_dir / "inventory"
    inventory_dir.mkdir(exist_ok=True)
    (inventory_dir / "hosts.yml").write_text(inventory_text, encoding="utf-8")
    ansible_home = private_data_dir / "ansible-home"
    python_bin = str(Path(sys.executable).parent)
    envvars = {
        # ansible-playbook is found next to this Python, whatever PATH the operator has.
        "PATH": f"{python_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_HOME": str(ansible_home),
        "ANSIBLE_LOCAL_TEMP": str(ansible_home / "tmp"),
        "ANSIBLE_ROLES_PATH": str(playbooks_dir / "roles"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        **(extra_env or {}),
    }
    cmdline = []
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")

    cancelled = {"flag": False}

    def on_sigint(signum, frame):
        cancelled["flag"] = True

    progress = _Progress(on_event)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            playbook=str(playbooks_dir / playbook),
            inventory=str(inventory_dir / "hosts.yml"),
            extravars=extravars,
            envvars=envvars,
            cmdline=" ".join(cmdline) or None,
            forks=forks,
            timeout=timeout,
            quiet=True,
            suppress_env_files=True,
            event_handler=progress,
            cancel_callback=lambda: cancelled["flag"],
            ident="run",
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    # ansible-runner spells it 'canceled'; dcops writes British English throughout.
    status = "cancelled" if runner.status == "canceled" else runner.status
    if status in ("cancelled", "timeout"):
        stop_leftovers(private_data_dir)
    failed_host, failed_task, failure_message = progress.failed or (None, None, None)
    if status == "timeout" and failure_message is None:
        failure_message = f"timed out after {timeout} s"
    elif status == "cancelled" and failure_message is None:
        failure_message = "cancelled (Ctrl-C)"
    elif status == "failed" and failure_message is None:
        failure_message = f"ansible-playbook exited {runner.rc}: see the job's event log"
    return RunResult(
        status=status,
        rc=runner.rc,
        host_stats=host_stats(runner.stats),
        failed_host=failed_host,
        failed_task=failed_task,
        failure_message=failure_message,
    )
