"""What a programme's status move writes besides the status: its service span, and what retiring releases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, literal
from sqlalchemy.engine import Connection

from dcops.db import UTCDateTime
from dcops.health.store import end_programme_history
from dcops.models import Allocation, Programme
from dcops.vocabulary import IN_SERVICE_STATUSES

T_PROGRAMME = Programme.__table__
T_ALLOCATION = Allocation.__table__
# The statuses a programme reaches only once it went into service (or left it).
BEEN_IN_SERVICE = frozenset({*IN_SERVICE_STATUSES, "retired"})


def service_span_values(status: str, *, now: datetime, created: bool = False) -> dict:
    """The columns a move to `status` at `now` sets: the status itself, and the service span that
    bounds what a report counts (`activated_at` the first time it is in service, `retired_at`)."""
    values: dict = {"status": status, "updated_at": now, "retired_at": now if status == "retired" else None}
    if status in BEEN_IN_SERVICE:
        values["activated_at"] = now if created else func.coalesce(T_PROGRAMME.c.activated_at,
                                                                   literal(now, UTCDateTime()))
    elif created:
        values["activated_at"] = None
    return values


def release_retired(conn: Connection, programme_id: int, *, now: datetime) -> None:
    """What retiring a programme releases, in the caller's transaction: its capacity, and its
    history (it is not up, down or unknown any more)."""
    conn.execute(delete(T_ALLOCATION).where(T_ALLOCATION.c.programme_id == programme_id))
    end_programme_history(conn, programme_id, now)
