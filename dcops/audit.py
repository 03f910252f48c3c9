"""The append-only audit log: every change, in the same transaction, chained by SHA-256."""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.db import iso_utc, utcnow

if TYPE_CHECKING:
    from dcops import access

GENESIS_HASH = "0" * 64


def default_actor() -> str:
    """The OS user running dcops: the actor when no --actor is given."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in a bare container is not an error
        return "unknown"


def _plain(value: Any) -> Any:
    """JSON-safe data: what is stored is exactly what gets hashed."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False)) if value is not None else None


def entry_hash(entry: dict) -> str:
    """SHA-256 over an entry's content, its position (id) and the previous entry's hash."""
    content = {
        "id": entry["id"],
        "at": entry["at"].isoformat(),
        "actor": entry["actor"],
        "action": entry["action"],
        "object_type": entry["object_type"],
        "object_key": entry["object_key"],
        "before": entry["before"],
        "after": entry["after"],
        "prev_hash": entry["prev_hash"],
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Event:
    """A change to append: who did what to which object, and its state before and after."""

    actor: str
    action: str
    object_type: str
    object_key: str
    before: dict | None = None
    after: dict | None = None


def append(conn: Connection, events: Iterable[Event]) -> int:
    """Append events to the log in the caller's transaction; returns how many.

    The caller holds the writer lock (Database.transaction(immediate=True)), so the
    chain's head cannot move between reading it and appending to it.
    """
    head = conn.execute(text("SELECT id, hash FROM audit_entry ORDER BY id DESC LIMIT 1")).first()
    last_id, prev_hash = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
    when = utcnow()
    rows = []
    for event in events:
        last_id += 1
        row = {
            "id": last_id,
            "at": when,
            "actor": event.actor,
            "action": event.action,
            "object_type": event.object_type,
            "object_key": str(event.object_key),
            "before": _plain(event.before),
            "after": _plain(event.after),
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = entry_hash(row)
        rows.append(row)
    if rows:
        conn.execute(_table().insert(), rows)
    return len(rows)


def record(conn: Connection, event: Event) -> None:
    """Append one event (see `append`)."""
    append(conn, [event])


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain: how many entries, and the first broken link if any."""

    entries: int
    broken_at: int | None = None
    problem: str = ""
    head_hash: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _table():
    from dcops.models import AuditEntry

    return AuditEntry.__table__


def _rows(conn: Connection, *conditions):
    from sqlalchemy import select

    table = _table()
    return conn.execute(select(table).where(*conditions).order_by(table.c.id))


def verify(conn: Connection) -> Verification:
    """Walk the whole log; report the first entry that was edited, deleted or moved."""
    expected_prev = GENESIS_HASH
    expected_id = 1
    count = 0
    for row in _rows(conn):
        entry = dict(row._mapping)
        if entry["id"] != expected_id:
            missing = f"{expected_id}" if entry["id"] == expected_id + 1 else f"{expected_id}-{entry['id'] - 1}"
            return Verification(count, entry["id"], f"entry {missing} is missing: deleted", expected_prev)
        if entry["prev_hash"] != expected_prev:
            return Verification(
                count, entry["id"],
                f"entry {entry['id']} does not follow entry {expected_id - 1}: entries deleted or reordered",
                expected_prev,
            )
        if entry_hash(entry) != entry["hash"]:
            return Verification(
                count, entry["id"], f"entry {entry['id']} does not match its hash: edited or moved", expected_prev
            )
        expected_prev = entry["hash"]
        expected_id += 1
        count += 1
    return Verification(count, None, "", expected_prev)


# What each kind of object is called in the log (`TYPE:KEY`); inventory records use their kind.
OBJECT_TYPES = ("programme", "request", "job", "maintenance", "report", "incident",
                "ministry", "site", "cluster", "offering", "plan", "sla_tier", "user", "token",
                "external_component", "external_outage", "prometheus")
INVENTORY_KINDS = ("sla_tier", "ministry", "site", "cluster", "offering", "plan", "programme")
JOB_KINDS = ("provision", "decommission", "verify")
# An inventory plan's change, as its action names it.
INVENTORY_ACTIONS = {"create": "created", "update": "updated", "retire": "retired"}

# Actions are past tense: what happened, or the state reached (request.approved, job.provision.failed).
# Entries written before that rule keep their recorded names (the chain hashes them); they
# are read under today's names. `programme.status` is named by the status it reached.
RENAMED_ACTIONS = {
    "request.submit": "request.submitted",
    "request.sign-off": "request.signed-off",
    "allocation.reserve": "allocation.reserved",
    "endpoint.create": "endpoint.created",
    "maintenance.add": "maintenance.added",
    "maintenance.cancel": "maintenance.cancelled",
    "report.freeze": "report.frozen",
    **{f"inventory.{kind}.{old}": f"inventory.{kind}.{new}"
       for kind in INVENTORY_KINDS for old, new in INVENTORY_ACTIONS.items()},
    **{f"job.{kind}.start": f"job.{kind}.started" for kind in JOB_KINDS},
    **{f"job.{kind}.canceled": f"job.{kind}.cancelled" for kind in JOB_KINDS},
}


def action_name(action: str, after: dict | None = None) -> str:
    """An action under today's name, whenever it was recorded (`request.submit` reads `request.submitted`)."""
    if action == "programme.status" and isinstance(after, dict) and after.get("status"):
        return f"programme.{after['status']}"
    return RENAMED_ACTIONS.get(action, action)


def parse_object(text: str) -> tuple[str | None, str]:
    """`TYPE:KEY` as (type, key), or a bare KEY as (None, key); an unknown TYPE is a UserError."""
    from dcops.errors import UserError

    kind, colon, key = text.partition(":")
    if not colon:
        return None, text
    if kind not in OBJECT_TYPES:
        raise UserError(f"--object {text}: no object type {kind!r} (one of {', '.join(OBJECT_TYPES)})")
    if not key:
        raise UserError(f"--object {text}: give the key after the type, as in programme:lesmis-v2 or request:12")
    return kind, key


def object_types(conn: Connection, object_key: str) -> list[str]:
    """The types of the objects the log names by `object_key` (request 1, job 1, window 1...)."""
    table = _table()
    from sqlalchemy import select

    return sorted(conn.execute(select(table.c.object_type).where(table.c.object_key == object_key).distinct())
                  .scalars())


def _concerning(conn: Connection, slug: str):
    """The entries that concern programme `slug`: its own (hosts, endpoints, allocations, status,
    retirement), its requests', its jobs' and its own maintenance windows'. One SQL condition
    on the log's object key, built from the few keys those records have (found by index,
    the jobs' JSON lists read only where their text names the slug)."""
    from sqlalchemy import String, and_, cast, exists, func, or_, select

    from dcops.models import HostingRequest, Job, MaintenanceWindow, Programme

    table = _table()
    requests, jobs, windows, programmes = (HostingRequest.__table__, Job.__table__, MaintenanceWindow.__table__,
                                           Programme.__table__)
    request_ids = select(requests.c.id).where(requests.c.programme_slug == slug)
    # Jobs hold their programmes as a JSON list: its elements, in each database's own words;
    # the LIKE on its text (a superset: '_' or '%' in a slug only widens it) spares parsing most lists.
    elements = func.json_array_elements_text if conn.dialect.name == "postgresql" else func.json_each
    listed = elements(jobs.c.programmes).table_valued("value")
    job_ids = select(jobs.c.id).where(
        cast(jobs.c.programmes, String).like(f'%"{slug}"%'),
        exists(select(1).select_from(listed).where(listed.c.value == slug)))
    window_ids = (select(windows.c.id).join(programmes, programmes.c.id == windows.c.programme_id)
                  .where(programmes.c.slug == slug))
    keys = {kind: [str(i) for i in conn.execute(query).scalars()]
            for kind, query in (("request", request_ids), ("job", job_ids), ("maintenance", window_ids))}
    return or_(
        and_(table.c.object_type == "programme", table.c.object_key == slug),
        *(and_(table.c.object_type == kind, table.c.object_key.in_(ids)) for kind, ids in keys.items() if ids),
    )


def _is_programme(conn: Connection, slug: str) -> bool:
    """True when a programme, or a request for one, goes by `slug` (two index look-ups)."""
    from sqlalchemy import exists, or_, select

    from dcops.models import HostingRequest, Programme

    programmes, requests = Programme.__table__, HostingRequest.__table__
    return bool(conn.execute(select(or_(exists().where(programmes.c.slug == slug),
                                        exists().where(requests.c.programme_slug == slug)))).scalar())


def _require_programme(conn: Connection, slug: str) -> None:
    from dcops.errors import NotFound

    if not _is_programme(conn, slug):
        raise NotFound(f"no programme {slug!r}, nor a request for one (see `dcops programme list`)")


def list_entries(
    conn: Connection,
    *,
    object_type: str | None = None,
    object_key: str | None = None,
    programme: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
    actor: "access.Actor | str | None" = None,
) -> list[dict]:
    """The latest `limit` entries, oldest first, filtered in the query; for an auditor (the CLI is).

    `object_type` and `object_key` name one object (`request`, `12`); a key alone matches it
    under every type. `programme` (or the object `programme:SLUG`, or a bare key that is a
    programme's slug) takes every entry that concerns the programme (see `_concerning`).
    """
    from sqlalchemy import or_, select

    from dcops.access import as_actor, authorize

    authorize(as_actor(actor), "audit.read")
    table = _table()
    conditions = []
    wide = programme is not None  # a programme's entries, under several objects
    if object_type == "programme" and object_key is not None:
        programme, object_type, object_key, wide = object_key, None, None, True
    if object_key is not None:
        named = table.c.object_key == object_key
        if object_type is not None:
            conditions.append(named & (table.c.object_type == object_type))
        elif _is_programme(conn, object_key):
            wide = True
            conditions.append(or_(named, _concerning(conn, object_key)))
        else:
            conditions.append(named)
    elif object_type is not None:
        conditions.append(table.c.object_type == object_type)
    if programme is not None:
        _require_programme(conn, programme)
        conditions.append(_concerning(conn, programme))
    if since is not None:
        conditions.append(table.c.at >= since)
    query = select(table).where(*conditions)
    if limit and wide:
        # Find the programme's entries by their keys' index, then take the newest: PostgreSQL
        # would otherwise walk the whole log backwards by id for a programme with few entries.
        found = query.offset(0).subquery()
        query = select(select(found).order_by(found.c.id.desc()).limit(limit).subquery())
    elif limit:
        # The newest `limit` by key, then put back in order: never the whole log for its tail.
        query = select(query.order_by(table.c.id.desc()).limit(limit).subquery())
    rows = conn.execute(query.order_by("id"))
    return [
        {
            "id": r.id, "at": iso_utc(r.at), "actor": r.actor, "action": action_name(r.action, r.after),
            "recorded_action": r.action, "object": f"{r.object_type}:{r.object_key}",
            "object_type": r.object_type, "object_key": r.object_key,
            "before": r.before, "after": r.after, "hash": r.hash,
        }
        for r in rows
    ]
