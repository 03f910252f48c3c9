"""Inventory use-cases: load a directory, add, update and retire a programme, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError as PydanticValidationError

from dcops.access import as_actor, authorize
from dcops.db import Database
from dcops.errors import Conflict, NotFound, UserError, ValidationError
from dcops.inventory.documents import (
    Desired,
    EndpointDoc,
    ProgrammeDoc,
    pydantic_problems,
    programme_state,
    read_directory,
)
from dcops.inventory.export import programme_document
from dcops.inventory.reconcile import Current, Plan, cross_check, reconcile


def load_directory(
    database: Database,
    directory: Path,
    *,
    actor: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> Plan:
    """Validate every file under `directory`, then plan and apply it in one transaction."""
    authorize(as_actor(actor), "inventory.write")  # before reading anything (reconcile checks again)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    progress(f"reading and validating {directory}")
    desired, problems = read_directory(directory)
    if problems:
        # The cross-checks run on the records that are well formed: every mistake in one round.
        raise ValidationError(problems + cross_check(database, desired, prune=prune))
    progress(
        f"checking {len(desired.programmes)} programmes against the database"
        + ("" if dry_run else ", then applying the plan")
    )
    # A load describes the whole inventory: every programme it leaves unmonitored is named.
    return reconcile(database, desired, actor=actor, prune=prune, dry_run=dry_run, unmonitored_everywhere=True)


def _validated(document: dict[str, Any], where: str) -> ProgrammeDoc:
    try:
        return ProgrammeDoc.model_validate(document)
    except PydanticValidationError as error:
        raise ValidationError(pydantic_problems(error, document, where)) from None


def add_programme(database: Database, document: dict[str, Any], *, actor: str | None = None, dry_run: bool = False) -> Plan:
    """Create one programme from a document-shaped dict; refuses a slug that exists."""
    doc = _validated(document, "programme")

    def desired(current: Current) -> Desired:
        if doc.slug in current.programmes:
            raise Conflict(f"programme {doc.slug!r} already exists (use `dcops programme update`)")
        return Desired(programmes={doc.slug: programme_state(doc)})

    return reconcile(database, desired, actor=actor, dry_run=dry_run)


def update_programme(database: Database, slug: str, changes: dict[str, Any], *, actor: str | None = None, dry_run: bool = False) -> Plan:
    """Change fields of one programme (document shape, nested `contacts`/`recovery` merged)."""

    def desired(current: Current) -> Desired:
        if slug not in current.programmes:
            raise NotFound(f"no programme {slug!r} (see `dcops programme list`)")
        document = programme_document(slug, current.programmes[slug])
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        doc = _validated(document, slug)
        return Desired(programmes={slug: programme_state(doc)})

    return reconcile(database, desired, actor=actor, dry_run=dry_run)


def retire_programme(database: Database, slug: str, *, actor: str | None = None, dry_run: bool = False) -> Plan:
    """Retire one programme: status retired, its allocations released; its history kept."""

    def desired(current: Current) -> Desired:
        if slug not in current.programmes:
            raise NotFound(f"no programme {slug!r} (see `dcops programme list`)")
        state = current.programmes[slug]
        if state["status"] == "retired":
            raise Conflict(f"programme {slug!r} is already retired")
        return Desired(programmes={slug: {**state, "status": "retired", "allocations": {}}})

    return reconcile(database, desired, actor=actor, dry_run=dry_run)


def add_endpoint(database: Database, slug: str, endpoint: dict[str, Any], *, actor: str | None = None,
                 dry_run: bool = False) -> Plan:
    """Add one endpoint (a check) to a programme: the same validation, reconcile and audit as the inventory."""
    try:
        checked = EndpointDoc.model_validate(endpoint)
    except PydanticValidationError as error:
        raise ValidationError(pydantic_problems(error, endpoint, f"endpoint {endpoint.get('name')}")) from None

    def desired(current: Current) -> Desired:
        if slug not in current.programmes:
            raise NotFound(f"no programme {slug!r} (see `dcops programme list`)")
        if checked.name in current.programmes[slug]["endpoints"]:
            raise Conflict(f"programme {slug!r} already has an endpoint {checked.name!r} "
                           f"(remove it first: dcops programme endpoint remove {slug} {checked.name})")
        document = programme_document(slug, current.programmes[slug])
        document["endpoints"].append(checked.model_dump())
        return Desired(programmes={slug: programme_state(_validated(document, slug))})

    return reconcile(database, desired, actor=actor, dry_run=dry_run)


def remove_endpoint(database: Database, slug: str, name: str, *, actor: str | None = None,
                    dry_run: bool = False) -> Plan:
    """Remove one endpoint of a programme; its own probe history goes, the programme's SLA record stays."""

    def desired(current: Current) -> Desired:
        if slug not in current.programmes:
            raise NotFound(f"no programme {slug!r} (see `dcops programme list`)")
        if name not in current.programmes[slug]["endpoints"]:
            raise NotFound(f"programme {slug!r} has no endpoint {name!r} (see `dcops programme endpoint list {slug}`)")
        document = programme_document(slug, current.programmes[slug])
        document["endpoints"] = [e for e in document["endpoints"] if e["name"] != name]
        return Desired(programmes={slug: programme_state(_validated(document, slug))})

    return reconcile(database, desired, actor=actor, dry_run=dry_run)
