"""The request workflow: submit, sign off, approve (placement and capacity), reject, withdraw, advance.

Every step authorises its actor (`dcops.access`) and moves the request through `dcops.lifecycle`,
in one transaction with its audit entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.access import Actor, Owned, as_actor, authorize
from dcops.catalogue.requests.document import _today, needs_security_signoff, validate_request
from dcops.db import Database, utcnow
from dcops.errors import Conflict, NotFound, UserError
from dcops.inventory.capacity import ResourceUsage, choose_cluster
from dcops.inventory.documents import expand_checks
from dcops.inventory.queries import cluster_usage
from dcops.lifecycle import REQUEST_STATES, REQUEST_TRANSITIONS, move_request, require_move
from dcops.models import (Allocation, Cluster, Endpoint, Host, HostingRequest, Ministry, Offering, Plan, Programme,
                          Site)
from dcops.notifications import request_changed
from dcops.vocabulary import RESOURCES

T_REQUEST = HostingRequest.__table__
T_PROGRAMME = Programme.__table__
T_ALLOCATION = Allocation.__table__
T_CLUSTER = Cluster.__table__
T_SITE = Site.__table__
T_HOST = Host.__table__
T_MINISTRY = Ministry.__table__
T_PLAN = Plan.__table__
T_OFFERING = Offering.__table__
T_ENDPOINT = Endpoint.__table__

TRANSITIONS = REQUEST_TRANSITIONS


def submit(
    database: Database, document: Any, *, actor: Actor | str | None = None, where: str = "request",
    today: date | None = None, tz=None, flags: dict[tuple, str] | None = None,
) -> int:
    """Validate and store a new request (state submitted); returns its id.

    The actor must hold a role that may request for the document's ministry (a problem of the
    ministry field otherwise). `flags`: the fields given as command-line options, each with its
    option's name (see validate_request).
    """
    requester = as_actor(actor)
    actor = requester.name
    with database.transaction(immediate=True) as conn:
        doc = validate_request(conn, document, where=where, today=today or _today(tz), flags=flags,
                               requester=requester)
        now = utcnow()
        ministry_id = conn.execute(select(T_MINISTRY.c.id).where(T_MINISTRY.c.code == doc.ministry)).scalar_one()
        row = {
            "state": "submitted",
            "ministry_id": ministry_id,
            "programme_slug": doc.programme.slug,
            "programme_name": doc.programme.name,
            "description": doc.programme.description,
            "plan_id": doc.plan,
            "tier": doc.tier,
            "classification": doc.classification,
            "environment": doc.environment,
            "personal_data": doc.personal_data,
            "justification": doc.justification,
            "owner_contact": doc.contacts.owner,
            "security_contact": doc.contacts.security,
            "wanted_by": doc.wanted_by,
            "site": doc.site,
            "submitted_by": actor,
            "submitted_at": now,
            "reason": "",
            "updated_at": now,
        }
        request_id = conn.execute(insert(T_REQUEST).values(**row).returning(T_REQUEST.c.id)).scalar_one()
        audit.record(conn, audit.Event(actor, "request.submitted", "request", str(request_id), None,
                                       {**doc.model_dump(mode="json"), "state": "submitted"}))
        request_changed(conn, request_id, "submitted", actor=actor, now=now)
    return request_id


def _load(conn: Connection, request_id: int, *, lock: bool = False):
    query = (select(T_REQUEST, T_MINISTRY.c.code.label("ministry_code"))
             .join(T_MINISTRY, T_MINISTRY.c.id == T_REQUEST.c.ministry_id).where(T_REQUEST.c.id == request_id))
    if lock:
        query = query.with_for_update(of=T_REQUEST)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no request {request_id}")
    return row


def _load_for(conn: Connection, actor: Actor, action: str, request_id: int):
    """The request, locked, once `actor` may take `action` on it; NotFound alike for a missing
    request and for one of a ministry the actor may not see."""
    request = _load(conn, request_id, lock=True)
    authorize(actor, action, Owned("request", str(request_id), request.ministry_code))
    return request


def transition(
    conn: Connection, request, to_state: str, *, actor: str, reason: str = "", **changes: Any
) -> None:
    """Move a request to `to_state`, checking the two-person rule for approval, then
    `lifecycle.move_request` (the table, the programme that follows, the audit entries)."""
    require_move(TRANSITIONS, f"request {request.id}", request.state, to_state)
    if to_state == "approved":
        _check_two_person_rule(request, actor)
    move_request(conn, request, to_state, actor=actor, reason=reason, **changes)


def _check_two_person_rule(request, approver: str) -> None:
    if not needs_security_signoff(request.classification, request.personal_data):
        return
    if request.security_signoff_by is None:
        raise Conflict(
            f"request {request.id} ({request.classification}"
            f"{', personal data' if request.personal_data else ''}) needs a security sign-off first: "
            f"dcops request sign-off {request.id} --actor <security officer>"
        )
    if request.security_signoff_by == approver:
        raise Conflict(
            f"request {request.id}: {approver} signed off its security and may not also approve it "
            "(two-person rule): another operator approves"
        )


def sign_off(database: Database, request_id: int, *, actor: Actor | str | None = None) -> None:
    """Record the security sign-off of a submitted request (the first of two people)."""
    officer = as_actor(actor)
    actor = officer.name
    with database.transaction(immediate=True) as conn:
        request = _load_for(conn, officer, "request.sign-off", request_id)
        if request.state != "submitted":
            raise Conflict(f"request {request_id} is {request.state}: only a submitted request can be signed off")
        if request.security_signoff_by is not None:
            raise Conflict(f"request {request_id} was already signed off by {request.security_signoff_by}")
        conn.execute(
            update(T_REQUEST).where(T_REQUEST.c.id == request_id)
            .values(security_signoff_by=actor, security_signoff_at=utcnow(), updated_at=utcnow())
        )
        audit.record(conn, audit.Event(actor, "request.signed-off", "request", str(request_id),
                                       None, {"security_signoff_by": actor}))
        request_changed(conn, request_id, "signed-off", actor=actor)


@dataclass(frozen=True)
class Placement:
    """Where a request was placed, what it reserved there, and the checks that monitor it.

    `warnings` says what the operator should know, e.g. that nothing will monitor the programme.
    """

    request_id: int
    cluster: str
    site: str
    reserved: dict[str, int]
    programme: str
    checks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def approve(
    database: Database, request_id: int, *, actor: Actor | str | None = None, cluster: str | None = None
) -> Placement:
    """Place a request on a cluster where its plan fits, reserve the capacity, create the
    programme (requested, moved to approved with the request), its hosts and its offering's checks, and approve the
    request, all in one transaction."""
    operator = as_actor(actor)
    actor = operator.name
    with database.transaction(immediate=True) as conn:
        request = _load_for(conn, operator, "request.approve", request_id)
        if "approved" not in TRANSITIONS[request.state]:
            raise Conflict(f"request {request_id} is {request.state}; only a submitted request can be approved")
        _check_two_person_rule(request, actor)
        plan = conn.execute(select(T_PLAN).where(T_PLAN.c.id == request.plan_id)).one()
        offering = conn.execute(select(T_OFFERING).where(T_OFFERING.c.id == plan.offering_id)).one()
        needed, clusters, usage = _candidates(conn, request, plan, cluster, lock=True)
        chosen, refusals = choose_cluster(needed, usage)
        if chosen is None:
            detail = "; ".join(f"{name}: {', '.join(problems)}" for name, problems in refusals.items())
            raise Conflict(f"request {request_id} does not fit (plan {plan.id} needs "
                           f"{', '.join(f'{r} {a}' for r, a in needed.items())}): {detail}")
        if conn.execute(select(T_PROGRAMME.c.id).where(T_PROGRAMME.c.slug == request.programme_slug)).first():
            raise Conflict(f"request {request_id}: programme {request.programme_slug!r} exists already")
        cluster_id, site = clusters[chosen]
        now = utcnow()
        programme_id = conn.execute(
            insert(T_PROGRAMME).values(
                slug=request.programme_slug, name=request.programme_name, ministry_id=request.ministry_id,
                description=request.description, tier=request.tier, status="requested",
                classification=request.classification, environment=request.environment,
                owner_contact=request.owner_contact, security_contact=request.security_contact,
                personal_data=request.personal_data, plan_id=request.plan_id, backup_tier="daily",
                created_at=now, updated_at=now,
            ).returning(T_PROGRAMME.c.id)
        ).scalar_one()
        if needed:
            conn.execute(insert(T_ALLOCATION), [
                {"programme_id": programme_id, "cluster_id": cluster_id, "resource": r, "amount": a}
                for r, a in needed.items()
            ])
        hosts = _host_rows(conn, request.programme_slug, plan.instances, programme_id, cluster_id)
        conn.execute(insert(T_HOST), hosts)
        events = [audit.Event(actor, "allocation.reserved", "programme", request.programme_slug, None,
                              {"cluster": chosen, **needed, "request": request_id,
                               "hosts": [h["name"] for h in hosts]})]
        endpoints = _check_rows(request_id, offering, request.programme_slug, [h["address"] for h in hosts])
        if endpoints:
            conn.execute(insert(T_ENDPOINT), [{"programme_id": programme_id, **e} for e in endpoints])
            events.append(audit.Event(actor, "endpoint.created", "programme", request.programme_slug, None, {
                "endpoints": {e["name"]: {k: v for k, v in e.items() if k != "name"} for e in endpoints},
                "offering": offering.id, "request": request_id,
            }))
        # One append: the chain's head is read once for both entries.
        audit.append(conn, events)
        transition(conn, request, "approved", actor=actor, decided_by=actor, decided_at=now,
                   cluster_id=cluster_id, programme_id=programme_id)
    warnings = () if endpoints else (
        f"offering {offering.id} declares no checks: programme {request.programme_slug} will not be monitored "
        f"until an operator adds one (dcops programme endpoint add {request.programme_slug} ...)",
    )
    return Placement(request_id, chosen, site, needed, request.programme_slug,
                     checks=tuple(sorted(e["name"] for e in endpoints)), warnings=warnings)


def _candidates(conn: Connection, request, plan, cluster: str | None, *, lock: bool):
    """What the request's plan needs, the clusters it may go to (name → (id, site)), and their usage.

    `lock` locks the candidate clusters' rows (PostgreSQL; SQLite holds its write lock already).
    """
    needed = {r: getattr(plan, r) * plan.instances for r in RESOURCES if getattr(plan, r)}
    query = select(T_CLUSTER.c.id, T_CLUSTER.c.name, T_SITE.c.code).join(T_SITE, T_SITE.c.id == T_CLUSTER.c.site_id)
    if request.site is not None:
        query = query.where(T_SITE.c.code == request.site)
    if cluster is not None:
        query = query.where(T_CLUSTER.c.name == cluster)
    if lock:
        query = query.with_for_update(of=T_CLUSTER)
    clusters = {row.name: (row.id, row.code) for row in conn.execute(query)}
    if not clusters:
        if cluster is not None:
            where = f" at site {request.site}" if request.site else ""
            raise NotFound(f"no cluster {cluster!r}{where} (see `dcops cluster list`)")
        raise Conflict(f"request {request.id}: no cluster at site {request.site}")
    usage: dict[str, dict[str, ResourceUsage]] = {name: {} for name in clusters}
    for row in cluster_usage(conn, site=request.site):
        if row.cluster in usage:
            usage[row.cluster][row.resource] = row
    return needed, clusters, usage


def preview_placement(conn: Connection, request_id: int, *, actor: Actor | str | None = None) -> dict:
    """Where approval would place a request now, and what each candidate cluster would have free after,
    or why it does not fit: what an operator sees before approving. Writes nothing."""
    operator = as_actor(actor)
    request = _load(conn, request_id)
    authorize(operator, "request.approve", Owned("request", str(request_id), request.ministry_code))
    plan = conn.execute(select(T_PLAN).where(T_PLAN.c.id == request.plan_id)).one()
    needed, clusters, usage = _candidates(conn, request, plan, None, lock=False)
    chosen, refusals = choose_cluster(needed, usage)
    candidates = []
    for name in sorted(clusters):
        free_after = {r: math.floor(usage[name][r].free - amount)
                      for r, amount in needed.items() if r in usage[name]}
        candidates.append({"cluster": name, "site": clusters[name][1], "fits": name not in refusals,
                           "problems": refusals.get(name, []), "free_after": free_after})
    return {"request": request_id, "needs": needed, "cluster": chosen, "candidates": candidates}


def _check_rows(request_id: int, offering, slug: str, addresses: list[str]) -> list[dict]:
    """The endpoints of the offering's checks for this programme and its hosts' addresses.

    The catalogue load checked every template against the longest slug and every plan's
    host count, so a failure here is a catalogue the load did not see (edited by hand).
    """
    try:
        return expand_checks(list(offering.checks or []), slug=slug, hosts=addresses,
                             public_domain=offering.public_domain or "")
    except ValueError as error:
        raise Conflict(f"request {request_id}: offering {offering.id}: {error}; fix the catalogue and "
                       "load it again") from None


def _host_rows(conn: Connection, slug: str, instances: int, programme_id: int, cluster_id: int) -> list[dict]:
    """One host record per instance of the plan, named <slug>-NN, so provisioning has targets.

    The address starts as the host name (resolved by the data centre's DNS); operators
    set real addresses through the inventory files.
    """
    stem = slug[:59].rstrip("-")
    names = [f"{stem}-{n:02d}" for n in range(1, instances + 1)]
    taken = {row[0] for row in conn.execute(select(T_HOST.c.name).where(T_HOST.c.name.in_(names)))}
    if taken:
        raise Conflict(f"host name(s) {', '.join(sorted(taken))} already in use; rename them in the inventory first")
    return [{"name": name, "address": name, "cluster_id": cluster_id, "programme_id": programme_id, "role": "app"}
            for name in names]


def reject(database: Database, request_id: int, *, reason: str, actor: Actor | str | None = None) -> None:
    """Refuse a submitted request, with the reason the ministry will read."""
    if not reason or not reason.strip():
        raise UserError("a rejection needs a reason (--reason)")
    operator = as_actor(actor)
    with database.transaction(immediate=True) as conn:
        request = _load_for(conn, operator, "request.reject", request_id)
        transition(conn, request, "rejected", actor=operator.name, reason=reason.strip(), decided_by=operator.name,
                   decided_at=utcnow())


def withdraw(database: Database, request_id: int, *, actor: Actor | str | None = None, reason: str = "") -> None:
    """Withdraw a submitted request (the ministry no longer wants it)."""
    requester = as_actor(actor)
    with database.transaction(immediate=True) as conn:
        request = _load_for(conn, requester, "request.withdraw", request_id)
        transition(conn, request, "withdrawn", actor=requester.name, reason=reason.strip())


def advance(database: Database, request_id: int, to_state: str, *, actor: Actor | str | None = None,
            reason: str = "") -> None:
    """Move a request along its lifecycle (provisioning, active, failed, decommission...)."""
    if to_state not in TRANSITIONS:
        raise UserError(f"unknown request state {to_state!r}; one of: {', '.join(REQUEST_STATES)}")
    if to_state == "approved":
        raise UserError("approval places the request: use `dcops request approve`")
    operator = as_actor(actor)
    with database.transaction(immediate=True) as conn:
        request = _load_for(conn, operator, "request.advance", request_id)
        transition(conn, request, to_state, actor=operator.name, reason=reason)
