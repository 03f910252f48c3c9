"""Programme status changes shared by reconcile, hosting requests and jobs, and what retiring releases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection

from dcops.health.store import end_programme_history
from dcops.models import Allocation, Programme

T_PROGRAMME = Programme.__table__
T_ALLOCATION = Allocation.__table__


def set_programme_status(conn: Connection, programme_id: int, status: str, *, now: datetime) -> None:
    """Set a programme's status in the caller's transaction; retiring also releases its
    capacity and closes its history (it is not up, down or unknown any more)."""
    conn.execute(update(T_PROGRAMME).where(T_PROGRAMME.c.id == programme_id).values(status=status, updated_at=now))
    if status == "retired":
        conn.execute(delete(T_ALLOCATION).where(T_ALLOCATION.c.programme_id == programme_id))
        end_programme_history(conn, programme_id, now)
