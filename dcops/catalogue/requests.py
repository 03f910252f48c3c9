"""Hosting requests: the request document, its state machine, sign-off, placement and approval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import Conflict, NotFound, UserError, ValidationError
# PROGRAMME_STATUS and REQUEST_STATES are imported for the callers that read them from here.
from dcops.lifecycle import (OPEN_STATES, PROGRAMME_STATUS, REQUEST_STATES, REQUEST_TRANSITIONS,  # noqa: F401
                             move_request, require_move)
from dcops.inventory.capacity import ResourceUsage, choose_cluster
from dcops.inventory.queries import cluster_usage
from dcops.inventory.documents import (Email, Name, Slug, Text, Title, bounded_text, expand_checks,
                                      pydantic_problems)
from dcops.inventory.yamlfile import YamlProblem, line_of, load_yaml
from dcops.models import (
    Allocation,
    Cluster,
    Endpoint,
    Host,
    HostingRequest,
    Ministry,
    Offering,
    Plan,
    Programme,
    Site,
)
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

# The request lifecycle lives with the other state machines; these names are the catalogue's too.
TRANSITIONS = REQUEST_TRANSITIONS
MAX_REQUEST_BYTES = 256 * 1024


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RequestProgrammeDoc(_Doc):
    slug: Slug
    name: Title
    description: Text = ""


class RequestContactsDoc(_Doc):
    owner: Email
    security: Email


class RequestDoc(_Doc):
    """A ministry's hosting request, as submitted (YAML file or command-line flags)."""

    ministry: Name
    programme: RequestProgrammeDoc
    offering: Name
    plan: Name
    tier: Literal[1, 2, 3]
    classification: Literal["public", "internal", "confidential", "secret"]
    environment: Literal["production", "staging"] = "production"
    personal_data: StrictBool
    justification: bounded_text(10, 5000)  # type: ignore[valid-type]
    contacts: RequestContactsDoc
    wanted_by: date
    site: Name | None = None


def needs_security_signoff(classification: str, personal_data: bool) -> bool:
    """The two-person rule applies to personal data and to confidential or secret programmes."""
    return personal_data or classification in ("confidential", "secret")


def _today(tz) -> date:
    return datetime.now(tz).date()


# What the published request templates hold until the ministry fills them in.
PLACEHOLDERS = ("CHANGE-ME", "YYYY-MM-DD")


def _placeholders(document: Any, loc: tuple = ()) -> list[tuple]:
    """Where a template's placeholder is still in the document, field by field."""
    if isinstance(document, dict):
        return [found for key, value in document.items() for found in _placeholders(value, (*loc, key))]
    if isinstance(document, str) and document.strip() in PLACEHOLDERS:
        return [loc]
    return []


def validate_request(conn: Connection, document: Any, *, where: str, today: date,
                     flags: dict[tuple, str] | None = None) -> RequestDoc:
    """Check a request document against the catalogue and the inventory; every problem at once.

    The checks against the database run on every field that is well formed, even when
    other fields are not, so one round trip tells the ministry everything to fix. `flags`
    maps the fields given as command-line options to the option: their problems name it.
    """
    if not isinstance(document, dict):
        raise ValidationError([f"{where}: a request is a mapping of fields, not a {type(document).__name__}"])
    flags = flags or {}
    problems: list[str] = []
    doc = None
    malformed: set[str] = set()
    at = _locator(document, where, flags)
    unfilled = _placeholders(document)
    for loc in unfilled:
        field_name = ".".join(map(str, loc))
        problems.append(f"{at(*loc)}: {field_name}: still the template's {document_value(document, loc)!r}: "
                        "write the real value")
    try:
        doc = RequestDoc.model_validate(document)
    except PydanticValidationError as error:
        # A placeholder is told once, as a placeholder, not again as a malformed value.
        problems.extend(pydantic_problems(error, document, where, flags, skip=set(unfilled)))
        malformed = {".".join(str(part) for part in item["loc"][:2]) for item in error.errors()}
    malformed |= {".".join(map(str, loc[:2])) for loc in unfilled}
    fields = {
        key: value for key, value in _well_formed(document, doc).items()
        if key not in malformed and f"programme.{key}" not in malformed
    }
    problems.extend(_reference_problems(conn, fields, at, today))
    if problems or doc is None:
        raise ValidationError(problems)
    return doc


def _well_formed(document: dict, doc: RequestDoc | None) -> dict:
    """The fields to check against the database: from the validated document, else the raw one."""
    if doc is not None:
        return {"ministry": doc.ministry, "plan": doc.plan, "offering": doc.offering, "tier": doc.tier,
                "slug": doc.programme.slug, "wanted_by": doc.wanted_by, "site": doc.site}
    programme = document.get("programme") if isinstance(document.get("programme"), dict) else {}
    wanted_by = document.get("wanted_by")
    if isinstance(wanted_by, str):
        try:
            wanted_by = date.fromisoformat(wanted_by)
        except ValueError:
            wanted_by = None
    raw = {"ministry": document.get("ministry"), "plan": document.get("plan"), "offering": document.get("offering"),
           "tier": document.get("tier"), "slug": programme.get("slug"), "wanted_by": wanted_by,
           "site": document.get("site")}
    return {
        key: value for key, value in raw.items()
        if (key == "tier" and type(value) is int) or (key == "wanted_by" and isinstance(value, date))
        or (key not in ("tier", "wanted_by") and isinstance(value, str))
    }


def document_value(document: Any, loc: tuple) -> Any:
    """The value at `loc` in a nested document."""
    for key in loc:
        document = document[key]
    return document


def _locator(document: Any, where: str, flags: dict[tuple, str] | None = None):
    """A function giving 'file:line' for a field of the document (just `where` without lines),
    or the command-line option that gave it."""

    def at(*loc) -> str:
        if flags and loc in flags:
            return flags[loc]
        line = line_of(document, loc)
        return f"{where}:{line}" if line else where

    return at


def _reference_problems(conn: Connection, fields: dict, at, today: date) -> list[str]:
    problems = []
    ministry = fields.get("ministry")
    if ministry is not None and conn.execute(select(T_MINISTRY.c.id).where(T_MINISTRY.c.code == ministry)).first() is None:
        problems.append(f"{at('ministry')}: ministry: unknown ministry {ministry!r}")
    plan_id = fields.get("plan")
    plan = conn.execute(select(T_PLAN).where(T_PLAN.c.id == plan_id)).first() if plan_id is not None else None
    if plan_id is not None and plan is None:
        problems.append(f"{at('plan')}: plan: no plan {plan_id!r} in the catalogue")
    if plan is not None:
        offering = fields.get("offering")
        if offering is not None and plan.offering_id != offering:
            problems.append(f"{at('plan')}: plan: plan {plan_id!r} belongs to offering {plan.offering_id!r}, "
                            f"not {offering!r}")
        tier = fields.get("tier")
        if tier is not None and tier not in plan.sla_tiers:
            allowed = ", ".join(str(t) for t in plan.sla_tiers)
            problems.append(f"{at('tier')}: tier: plan {plan_id!r} does not offer tier {tier} (offers {allowed})")
    slug = fields.get("slug")
    if slug is not None:
        taken = conn.execute(
            select(T_REQUEST.c.id).where(T_REQUEST.c.programme_slug == slug, T_REQUEST.c.state.in_(OPEN_STATES))
        ).first()
        if conn.execute(select(T_PROGRAMME.c.id).where(T_PROGRAMME.c.slug == slug)).first():
            problems.append(f"{at('programme', 'slug')}: programme.slug: {slug!r} is already a programme")
        elif taken:
            problems.append(f"{at('programme', 'slug')}: programme.slug: {slug!r} is already requested (request {taken[0]})")
    wanted_by = fields.get("wanted_by")
    if wanted_by is not None and wanted_by < today:
        problems.append(f"{at('wanted_by')}: wanted_by: {wanted_by.isoformat()} is in the past")
    site = fields.get("site")
    if site is not None and conn.execute(select(T_SITE.c.id).where(T_SITE.c.code == site)).first() is None:
        problems.append(f"{at('site')}: site: unknown site {site!r}")
    return problems


def read_request_file(path: Path) -> Any:
    """The document in a request file; size, encoding and YAML problems become user errors."""
    try:
        if path.stat().st_size > MAX_REQUEST_BYTES:
            raise UserError(f"{path}: a request file is at most {MAX_REQUEST_BYTES // 1024} KiB")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as error:
        raise UserError(f"{path}: {error.strerror}") from None
    try:
        return load_yaml(path)
    except YamlProblem as problem:
        raise UserError(f"{path}:{problem.line}: {problem.message}") from None


def submit(
    database: Database, document: Any, *, actor: str | None = None, where: str = "request", today: date | None = None,
    tz=None, flags: dict[tuple, str] | None = None,
) -> int:
    """Validate and store a new request (state submitted); returns its id.

    `flags`: the fields given as command-line options, each with its option's name (see validate_request).
    """
    actor = actor or audit.default_actor()
    with database.transaction(immediate=True) as conn:
        doc = validate_request(conn, document, where=where, today=today or _today(tz), flags=flags)
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
    return request_id


def _load(conn: Connection, request_id: int, *, lock: bool = False):
    query = select(T_REQUEST).where(T_REQUEST.c.id == request_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no request {request_id} (see `dcops request list`)")
    return row


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


def sign_off(database: Database, request_id: int, *, actor: str | None = None) -> None:
    """Record the security sign-off of a submitted request (the first of two people)."""
    actor = actor or audit.default_actor()
    with database.transaction(immediate=True) as conn:
        request = _load(conn, request_id, lock=True)
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
    database: Database, request_id: int, *, actor: str | None = None, cluster: str | None = None
) -> Placement:
    """Place a request on a cluster where its plan fits, reserve the capacity, create the
    programme (requested, moved to approved with the request), its hosts and its offering's checks, and approve the
    request, all in one transaction."""
    actor = actor or audit.default_actor()
    with database.transaction(immediate=True) as conn:
        request = _load(conn, request_id, lock=True)
        if "approved" not in TRANSITIONS[request.state]:
            raise Conflict(f"request {request_id} is {request.state}; only a submitted request can be approved")
        _check_two_person_rule(request, actor)
        plan = conn.execute(select(T_PLAN).where(T_PLAN.c.id == request.plan_id)).one()
        offering = conn.execute(select(T_OFFERING).where(T_OFFERING.c.id == plan.offering_id)).one()
        needed = {r: getattr(plan, r) * plan.instances for r in RESOURCES if getattr(plan, r)}
        query = select(T_CLUSTER.c.id, T_CLUSTER.c.name, T_SITE.c.code).join(T_SITE, T_SITE.c.id == T_CLUSTER.c.site_id)
        if request.site is not None:
            query = query.where(T_SITE.c.code == request.site)
        if cluster is not None:
            query = query.where(T_CLUSTER.c.name == cluster)
        # Lock the candidate clusters' rows (PostgreSQL); SQLite holds its write lock already.
        clusters = {row.name: (row.id, row.code) for row in conn.execute(query.with_for_update(of=T_CLUSTER))}
        if not clusters:
            if cluster is not None:
                where = f" at site {request.site}" if request.site else ""
                raise NotFound(f"no cluster {cluster!r}{where} (see `dcops cluster list`)")
            raise Conflict(f"request {request_id}: no cluster at site {request.site}")
        usage: dict[str, dict[str, ResourceUsage]] = {name: {} for name in clusters}
        for row in cluster_usage(conn, site=request.site):
            if row.cluster in usage:
                usage[row.cluster][row.resource] = row
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


def reject(database: Database, request_id: int, *, reason: str, actor: str | None = None) -> None:
    """Refuse a submitted request, with the reason the ministry will read."""
    if not reason or not reason.strip():
        raise UserError("a rejection needs a reason (--reason)")
    actor = actor or audit.default_actor()
    with database.transaction(immediate=True) as conn:
        request = _load(conn, request_id, lock=True)
        transition(conn, request, "rejected", actor=actor, reason=reason.strip(), decided_by=actor, decided_at=utcnow())


def withdraw(database: Database, request_id: int, *, actor: str | None = None, reason: str = "") -> None:
    """Withdraw a submitted request (the ministry no longer wants it)."""
    actor = actor or audit.default_actor()
    with database.transaction(immediate=True) as conn:
        request = _load(conn, request_id, lock=True)
        transition(conn, request, "withdrawn", actor=actor, reason=reason.strip())


def advance(database: Database, request_id: int, to_state: str, *, actor: str | None = None, reason: str = "") -> None:
    """Move a request along its lifecycle (provisioning, active, failed, decommission...)."""
    if to_state not in TRANSITIONS:
        raise UserError(f"unknown request state {to_state!r}; one of: {', '.join(REQUEST_STATES)}")
    if to_state == "approved":
        raise UserError("approval places the request: use `dcops request approve`")
    actor = actor or audit.default_actor()
    with database.transaction(immediate=True) as conn:
        request = _load(conn, request_id, lock=True)
        transition(conn, request, to_state, actor=actor, reason=reason)


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


def list_requests(conn: Connection, *, state: str | None = None, ministry: str | None = None) -> list[dict]:
    """Requests, oldest first, optionally by state and ministry."""
    query = _select_requests().order_by(T_REQUEST.c.id)
    if state is not None:
        if state not in TRANSITIONS:
            raise UserError(f"unknown request state {state!r}; one of: {', '.join(REQUEST_STATES)}")
        query = query.where(T_REQUEST.c.state == state)
    if ministry is not None:
        if conn.execute(select(T_MINISTRY.c.id).where(T_MINISTRY.c.code == ministry)).first() is None:
            raise NotFound(f"no ministry {ministry!r} (see `dcops ministry list`)")
        query = query.where(T_MINISTRY.c.code == ministry)
    return [_request_dict(r, r.ministry_code, r.cluster_name, r.offering_id) for r in conn.execute(query)]


def show_request(conn: Connection, request_id: int) -> dict:
    """One request with its audit history."""
    row = conn.execute(_select_requests().where(T_REQUEST.c.id == request_id)).first()
    if row is None:
        raise NotFound(f"no request {request_id} (see `dcops request list`)")
    record = _request_dict(row, row.ministry_code, row.cluster_name, row.offering_id)
    record["history"] = [
        {"at": e["at"], "actor": e["actor"], "action": e["action"]}
        for e in audit.list_entries(conn, object_type="request", object_key=str(request_id))
    ]
    return record
