"""Reading requests: a listing scoped to who asks, and one request with its history."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.access import Actor, Owned, as_actor, authorize, visible
from dcops.catalogue.requests.document import needs_security_signoff
from dcops.db import iso_utc
from dcops.errors import NotFound, UserError
from dcops.lifecycle import REQUEST_STATES, REQUEST_TRANSITIONS
from dcops.models import Cluster, HostingRequest, Ministry, Plan

T_REQUEST = HostingRequest.__table__
T_CLUSTER = Cluster.__table__
T_MINISTRY = Ministry.__table__
T_PLAN = Plan.__table__


def _request_dict(row, ministry: str, cluster: str | None, plan_offering: str) -> dict:
    return {
        "id": row.id,
        "state": row.state,
        "ministry": ministry,
        "programme": {"slug": row.programme_slug, "name": row.programme_name, "description": row.description},
        "offering": plan_offering,
        "plan": row.plan_id,
        "tier": row.tier,
        "classification": row.classification,
        "environment": row.environment,
        "personal_data": bool(row.personal_data),
        "justification": row.justification,
        "contacts": {"owner": row.owner_contact, "security": row.security_contact},
        "wanted_by": row.wanted_by.isoformat() if row.wanted_by else None,
        "site": row.site,
        "needs_security_signoff": needs_security_signoff(row.classification, bool(row.personal_data)),
        "security_signoff_by": row.security_signoff_by,
        "security_signoff_at": iso_utc(row.security_signoff_at),
        "submitted_by": row.submitted_by,
        "submitted_at": iso_utc(row.submitted_at),
        "decided_by": row.decided_by,
        "decided_at": iso_utc(row.decided_at),
        "reason": row.reason,
        "cluster": cluster,
        "updated_at": iso_utc(row.updated_at),
    }


def _select_requests():
    return (
        select(T_REQUEST, T_MINISTRY.c.code.label("ministry_code"), T_CLUSTER.c.name.label("cluster_name"),
               T_PLAN.c.offering_id.label("offering_id"))
        .join(T_MINISTRY, T_MINISTRY.c.id == T_REQUEST.c.ministry_id)
        .join(T_PLAN, T_PLAN.c.id == T_REQUEST.c.plan_id)
        .outerjoin(T_CLUSTER, T_CLUSTER.c.id == T_REQUEST.c.cluster_id)
    )


def list_requests(conn: Connection, *, state: str | None = None, ministry: str | None = None,
                  actor: Actor | str | None = None) -> list[dict]:
    """The requests the actor may read, oldest first, optionally by state and ministry."""
    query = _select_requests().where(visible(as_actor(actor), "request.read", T_MINISTRY.c.code)).order_by(T_REQUEST.c.id)
    if state is not None:
        if state not in REQUEST_TRANSITIONS:
            raise UserError(f"unknown request state {state!r}; one of: {', '.join(REQUEST_STATES)}")
        query = query.where(T_REQUEST.c.state == state)
    if ministry is not None:
        if conn.execute(select(T_MINISTRY.c.id).where(T_MINISTRY.c.code == ministry)).first() is None:
            raise NotFound(f"no ministry {ministry!r} (see `dcops ministry list`)")
        query = query.where(T_MINISTRY.c.code == ministry)
    return [_request_dict(r, r.ministry_code, r.cluster_name, r.offering_id) for r in conn.execute(query)]


def show_request(conn: Connection, request_id: int, *, actor: Actor | str | None = None) -> dict:
    """One request with its audit history, if the actor may read it (NotFound otherwise, as if missing)."""
    row = conn.execute(_select_requests().where(T_REQUEST.c.id == request_id)).first()
    if row is None:
        raise NotFound(f"no request {request_id}")
    authorize(as_actor(actor), "request.read", Owned("request", str(request_id), row.ministry_code))
    record = _request_dict(row, row.ministry_code, row.cluster_name, row.offering_id)
    record["history"] = [
        {"at": e["at"], "actor": e["actor"], "action": e["action"]}
        for e in audit.list_entries(conn, object_type="request", object_key=str(request_id))
    ]
    return record
