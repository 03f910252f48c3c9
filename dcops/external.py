"""External components and their outages: what programmes depend on that the data centre does not host.

The components themselves are declared in the inventory (`external_components:`, loaded by
dcops.inventory); this module records, ends, cancels and lists their outages, and gives the
reports what they read: `components` and `outages_between`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dcops.models import external_component_table, external_outage_table

T_COMPONENT = external_component_table
T_OUTAGE = external_outage_table

RUN_BY = ("third-party", "data-centre")


def components(conn: Connection) -> dict[str, dict]:
    """Every declared external component: slug -> {"name", "run_by", "description"}, by slug."""
    rows = conn.execute(select(T_COMPONENT.c.slug, T_COMPONENT.c.name, T_COMPONENT.c.run_by,
                               T_COMPONENT.c.description).order_by(T_COMPONENT.c.slug))
    return {r.slug: {"name": r.name, "run_by": r.run_by, "description": r.description} for r in rows}


def outages_between(conn: Connection, start: datetime, end: datetime) -> dict[str, list[tuple[datetime, datetime | None]]]:
    """Per component slug, its uncancelled outages overlapping [start, end), sorted by start.

    Each is (started_at, ended_at) in aware UTC, as recorded (not clipped to the period);
    ended_at None: still down. Components without such an outage are absent.
    """
    query = (
        select(T_COMPONENT.c.slug, T_OUTAGE.c.started_at, T_OUTAGE.c.ended_at)
        .join(T_COMPONENT, T_COMPONENT.c.id == T_OUTAGE.c.component_id)
        .where(T_OUTAGE.c.cancelled_at.is_(None), T_OUTAGE.c.started_at < end,
               (T_OUTAGE.c.ended_at.is_(None)) | (T_OUTAGE.c.ended_at > start))
        .order_by(T_COMPONENT.c.slug, T_OUTAGE.c.started_at, T_OUTAGE.c.id)
    )
    found: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for row in conn.execute(query):
        found.setdefault(row.slug, []).append((row.started_at, row.ended_at))
    return found
