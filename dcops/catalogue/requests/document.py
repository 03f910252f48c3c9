"""The request document: its fields, and every check a request gets before it is stored (file, form or API)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.engine import Connection

from dcops.errors import UserError, ValidationError
from dcops.inventory.documents import Email, Name, Slug, Text, Title, bounded_text, pydantic_problems
from dcops.inventory.yamlfile import YamlProblem, line_of, load_yaml
from dcops.lifecycle import OPEN_STATES
from dcops.models import HostingRequest, Ministry, Plan, Programme, Site

if TYPE_CHECKING:
    from dcops.access import Actor

T_REQUEST = HostingRequest.__table__
T_PROGRAMME = Programme.__table__
T_SITE = Site.__table__
T_MINISTRY = Ministry.__table__
T_PLAN = Plan.__table__

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
                     flags: dict[tuple, str] | None = None, requester: "Actor | None" = None) -> RequestDoc:
    """Check a request document against the catalogue and the inventory; every problem at once.

    The checks against the database run on every field that is well formed, even when
    other fields are not, so one round trip tells the ministry everything to fix. `flags`
    maps the fields given as command-line options to the option: their problems name it.
    `requester`, when given, must hold a role that may request for the document's ministry:
    the refusal is a problem of the ministry field, shown beside it like any other.
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
    problems.extend(_reference_problems(conn, fields, at, today, requester))
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


def _reference_problems(conn: Connection, fields: dict, at, today: date, requester: "Actor | None") -> list[str]:
    problems = []
    ministry = fields.get("ministry")
    if ministry is not None and conn.execute(select(T_MINISTRY.c.id).where(T_MINISTRY.c.code == ministry)).first() is None:
        problems.append(f"{at('ministry')}: ministry: unknown ministry {ministry!r}")
    elif ministry is not None and requester is not None and not requester.can("request.submit", ministry):
        mine = requester.ministries("request.submit") or ()
        hint = f" (you request for {', '.join(sorted(mine))})" if mine else " (you hold no requester role)"
        problems.append(f"{at('ministry')}: ministry: you may not request hosting for {ministry!r}{hint}")
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
