"""The transition tables of request, programme, job and incident, and the one function per table that moves and audits."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.db import utcnow
from dcops.errors import Conflict
from dcops.models import HostingRequest, Job, Programme, incident_table, incident_update_table
from dcops.notifications import request_changed
from dcops.vocabulary import PROGRAMME_STATUSES

T_REQUEST = HostingRequest.__table__
T_PROGRAMME = Programme.__table__
T_JOB = Job.__table__

# The request lifecycle: every allowed move, and nothing else.
REQUEST_TRANSITIONS: dict[str, frozenset[str]] = {
    "submitted": frozenset({"approved", "rejected", "withdrawn"}),
    "approved": frozenset({"provisioning"}),
    "provisioning": frozenset({"active", "failed"}),
    "failed": frozenset({"provisioning"}),  # a failed run is retried
    "active": frozenset({"decommission-requested"}),
    "decommission-requested": frozenset({"retired"}),
    "rejected": frozenset(),
    "withdrawn": frozenset(),
    "retired": frozenset(),
}
REQUEST_STATES = tuple(REQUEST_TRANSITIONS)
OPEN_STATES = frozenset(s for s in REQUEST_STATES if s not in ("rejected", "withdrawn", "retired"))
# The programme's status that follows each request state (a request before approval has no programme).
PROGRAMME_STATUS = {
    "approved": "approved",
    "provisioning": "provisioning",
    "active": "active",
    "failed": "failed",
    "decommission-requested": "decommissioning",
    "retired": "retired",
}

# The programme lifecycle, as requests and jobs move it: a request's approval creates it
# (requested, then approved), a provision job builds it, a decommission job takes it down.
PROGRAMME_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"approved"}),
    "approved": frozenset({"provisioning"}),
    "provisioning": frozenset({"active", "failed"}),
    "failed": frozenset({"provisioning", "decommissioning"}),  # retried, or given up
    "active": frozenset({"decommissioning"}),
    "decommissioning": frozenset({"retired"}),
    "retired": frozenset(),
}
# An inventory load is the operator's declared truth (a programme built before dcops, or
# put right by hand): it may set any status, and its own entry audits the change.
INVENTORY_PROGRAMME_TRANSITIONS: dict[str, frozenset[str]] = {
    status: frozenset(PROGRAMME_STATUSES) - {status} for status in PROGRAMME_STATUSES
}

# The job lifecycle: a job is written running, and ends once, in one of these.
TERMINAL = ("successful", "failed", "timeout", "cancelled", "interrupted")
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    "running": frozenset(TERMINAL),
    **{status: frozenset() for status in TERMINAL},
}
JOB_STATUSES = tuple(JOB_TRANSITIONS)

# The incident lifecycle, in the words status pages use (investigating, identified, monitoring,
# resolved); `new` is an incident nobody has looked at yet. Work moves back and forth while it is
# open; a resolved incident may be reopened; `merged` is one the history joined to another.
_WORKING = ("investigating", "identified", "monitoring")
INCIDENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({*_WORKING, "resolved"}),
    **{status: frozenset({*_WORKING, "resolved"} - {status}) for status in _WORKING},
    "resolved": frozenset({"investigating"}),
    "merged": frozenset(),
}
INCIDENT_STATUSES = tuple(INCIDENT_TRANSITIONS)


def require_move(table: Mapping[str, frozenset[str]], what: str, from_state: str, to_state: str) -> None:
    """Raise Conflict, in one line naming the object, from and to, unless the table allows the move."""
    allowed = table.get(from_state, frozenset())
    if to_state not in allowed:
        moves = ", ".join(sorted(allowed)) or "none: it is final"
        raise Conflict(f"{what} is {from_state}; it cannot become {to_state} (allowed: {moves})")


def move_request(conn: Connection, request, to_state: str, *, actor: str, reason: str = "",
                 now: datetime | None = None, **changes: Any) -> None:
    """Move a request (a row with id, state and programme_id) to `to_state` in the caller's transaction.

    Checks the request table, writes the request and its audit entry, then moves its
    programme to the status that follows (`PROGRAMME_STATUS`), audited under the programme.
    `changes` are further columns of the request to write (and to audit).
    """
    require_move(REQUEST_TRANSITIONS, f"request {request.id}", request.state, to_state)
    now = now or utcnow()
    values = {"state": to_state, "updated_at": now, **changes}
    if reason:
        values["reason"] = reason
    conn.execute(update(T_REQUEST).where(T_REQUEST.c.id == request.id).values(**values))
    audit.record(conn, audit.Event(
        actor, f"request.{to_state}", "request", str(request.id),
        {"state": request.state}, {"state": to_state, **({"reason": reason} if reason else {}), **changes},
    ))
    request_changed(conn, request.id, to_state, actor=actor, reason=reason, now=now)
    programme_id = changes.get("programme_id", request.programme_id)
    if programme_id is not None and to_state in PROGRAMME_STATUS:
        status = conn.execute(select(T_PROGRAMME.c.status).where(T_PROGRAMME.c.id == programme_id)).scalar_one()
        if status != PROGRAMME_STATUS[to_state]:
            move_programme(conn, programme_id, PROGRAMME_STATUS[to_state], actor=actor, reason=reason, now=now,
                           request=request.id)


def move_programme(conn: Connection, programme_id: int, to_status: str, *, actor: str, reason: str = "",
                   now: datetime | None = None, inventory: bool = False, **detail: Any) -> None:
    """Move a programme to `to_status` in the caller's transaction: check the table, write the status
    and its service span, and audit it as `programme.<status>` (with `detail`, e.g. the request).

    Retiring also releases its capacity and closes its history. `inventory`: the move is an
    inventory load's, which may set any status and writes its own audit entry, so none is written here.
    """
    # Imported here: the history store is only needed by a move, not by every importer of the tables.
    from dcops.inventory.lifecycle import release_retired, service_span_values

    programme = conn.execute(select(T_PROGRAMME.c.slug, T_PROGRAMME.c.status)
                             .where(T_PROGRAMME.c.id == programme_id)).one()
    table = INVENTORY_PROGRAMME_TRANSITIONS if inventory else PROGRAMME_TRANSITIONS
    require_move(table, f"programme {programme.slug}", programme.status, to_status)
    now = now or utcnow()
    conn.execute(update(T_PROGRAMME).where(T_PROGRAMME.c.id == programme_id)
                 .values(service_span_values(to_status, now=now)))
    if to_status == "retired":
        release_retired(conn, programme_id, now=now)
    if not inventory:
        audit.record(conn, audit.Event(
            actor, f"programme.{to_status}", "programme", programme.slug, {"status": programme.status},
            {"status": to_status, **({"reason": reason} if reason else {}), **detail},
        ))


def move_job(conn: Connection, job, to_status: str, *, actor: str, detail: Mapping[str, Any] | None = None,
             **changes: Any) -> None:
    """End a job (a row with id, kind and status) with `to_status` in the caller's transaction:
    check the table, write the status and `changes` (rc, finished_at...), audit it as `job.<kind>.<status>`."""
    require_move(JOB_TRANSITIONS, f"job {job.id}", job.status, to_status)
    conn.execute(update(T_JOB).where(T_JOB.c.id == job.id).values(status=to_status, **changes))
    audit.record(conn, audit.Event(actor, f"job.{job.kind}.{to_status}", "job", str(job.id),
                                   {"status": job.status}, {"status": to_status, **(detail or {})}))


def move_incident(conn: Connection, incident, to_status: str, *, actor: str, note: str = "",
                  now: datetime | None = None) -> None:
    """Move an incident (a row with id and status) to `to_status` in the caller's transaction:
    check the table, write the status and a timed update, audit it as `incident.<status>`."""
    require_move(INCIDENT_TRANSITIONS, f"incident {incident.id}", incident.status, to_status)
    now = now or utcnow()
    conn.execute(update(incident_table).where(incident_table.c.id == incident.id)
                 .values(status=to_status, updated_at=now))
    conn.execute(incident_update_table.insert().values(incident_id=incident.id, at=now, actor=actor,
                                                       status=to_status, note=note))
    audit.record(conn, audit.Event(actor, f"incident.{to_status}", "incident", str(incident.id),
                                   {"status": incident.status},
                                   {"status": to_status, **({"note": note} if note else {})}))

# The lifecycle of a maintenance window's Alertmanager silence (dcops.alertmanager). `pending`: to be
# created (Alertmanager down or not asked yet, retried); `created`: Alertmanager holds it; `expiring`:
# the window was cancelled, the silence is to be expired (retried); `expired`: Alertmanager expired it;
# `failed`: Alertmanager refused it (4xx: a bad matcher), not retried; `withdrawn`: never needed after
# all (the window cancelled or over before Alertmanager took it, or no programme to silence).
SILENCE_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"created", "failed", "withdrawn"}),
    "created": frozenset({"expiring", "expired"}),
    "expiring": frozenset({"expired", "failed"}),
    "expired": frozenset(),
    "failed": frozenset(),
    "withdrawn": frozenset(),
}
SILENCE_STATES = tuple(SILENCE_TRANSITIONS)


def move_silence(conn: Connection, silence, to_state: str, *, actor: str, window_id: int,
                 now: datetime | None = None, detail: Mapping[str, Any] | None = None, **changes: Any) -> None:
    """Move a window's silence (a row with id and state) to `to_state` in the caller's transaction:
    check the table, write the state and `changes` (silence_id, matchers, last_error...), audit it as
    `maintenance.silence-<state>` under the window."""
    from dcops.models import alertmanager_silence_table

    require_move(SILENCE_TRANSITIONS, f"the silence of maintenance window {window_id}", silence.state, to_state)
    now = now or utcnow()
    conn.execute(update(alertmanager_silence_table).where(alertmanager_silence_table.c.id == silence.id)
                 .values(state=to_state, updated_at=now, **changes))
    audit.record(conn, audit.Event(actor, f"maintenance.silence-{to_state}", "maintenance", str(window_id),
                                   {"silence": silence.state}, {"silence": to_state, **(detail or {})}))
