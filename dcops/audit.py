"""The append-only audit log: every change, in the same transaction, chained by SHA-256."""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.db import iso_utc, utcnow

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


def list_entries(
    conn: Connection, *, object_key: str | None = None, since: datetime | None = None, limit: int = 1000
) -> list[dict]:
    """The latest `limit` entries, oldest first, filtered by object key (a slug, a request id...) and time."""
    table = _table()
    conditions = []
    if object_key is not None:
        conditions.append(table.c.object_key == object_key)
    if since is not None:
        conditions.append(table.c.at >= since)
    from sqlalchemy import select

    query = select(table).where(*conditions)
    if limit:
        # The newest `limit` by key, then put back in order: never the whole log for its tail.
        query = select(query.order_by(table.c.id.desc()).limit(limit).subquery())
    rows = conn.execute(query.order_by("id"))
    return [
        {
            "id": r.id, "at": iso_utc(r.at), "actor": r.actor, "action": r.action,
            "object_type": r.object_type, "object_key": r.object_key,
            "before": r.before, "after": r.after, "hash": r.hash,
        }
        for r in rows
    ]
