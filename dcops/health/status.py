"""What the probe history says now: each programme's state, since when and why, as every reader sees it."""

from __future__ import annotations

from dcops.db import Database


def programme_states(database: Database) -> list[dict]:
    """Each live programme's current state (from its open interval), since when, and why."""
    from sqlalchemy import text

    with database.transaction() as conn:
        rows = conn.execute(text(
            "SELECT p.slug, m.code, i.state, i.started_at, i.reason FROM programme p "
            "JOIN ministry m ON m.id = p.ministry_id "
            "LEFT JOIN state_interval i ON i.programme_id = p.id AND i.endpoint_id IS NULL AND i.ended_at IS NULL "
            "WHERE p.status <> 'retired' AND EXISTS (SELECT 1 FROM endpoint e WHERE e.programme_id = p.id) "
            "ORDER BY p.slug")).all()
    from dcops.db import iso_utc

    return [{"programme": r[0], "ministry": r[1], "state": r[2] or "unknown", "since": iso_utc(r[3]),
             "reason": r[4] or ""} for r in rows]
