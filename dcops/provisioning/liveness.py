"""Is the process that started a job still alive? (cheap; used at every CLI start)."""

from __future__ import annotations

import os
import socket


def this_host() -> str:
    """The machine's name, recorded with each job so only this machine judges its processes."""
    return socket.gethostname()


def process_start(pid: int) -> str:
    """The kernel's start time of `pid` (Linux /proc), so a reused pid is not taken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return ""


def alive(pid: int, started: str) -> bool:
    """True while the process `pid` that started at `started` still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or process_start(pid) in ("", started)


def stale_jobs(conn) -> list[int]:
    """Ids of jobs recorded as running on this machine whose process is gone."""
    from sqlalchemy import text

    rows = conn.execute(
        text("SELECT id, pid, pid_start FROM job WHERE status = 'running' AND hostname = :host"),
        {"host": this_host()},
    ).all()
    return [row[0] for row in rows if not alive(row[1], row[2])]
