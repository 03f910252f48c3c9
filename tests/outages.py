"""Test helper: a run of short outages of one programme, with their incident records."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from dcops import incidents
from dcops.models import Programme, StateInterval


def add_short_outages(database, slug: str, count: int, *, end: datetime) -> list[int]:
    """`count` five-minute outages of `slug`, one every two hours up to `end`, each with its
    incident record; returns their numbers, newest first."""
    table = StateInterval.__table__
    with database.transaction(immediate=True) as conn:
        programme_id = conn.execute(sa.select(Programme.__table__.c.id)
                                    .where(Programme.__table__.c.slug == slug)).scalar_one()
        first = end - timedelta(hours=2 * count)
        conn.execute(sa.delete(table).where(table.c.programme_id == programme_id, table.c.endpoint_id.is_(None),
                                            table.c.started_at >= first - timedelta(hours=1)))
        conn.execute(sa.update(table).where(table.c.programme_id == programme_id, table.c.endpoint_id.is_(None),
                                            sa.or_(table.c.ended_at.is_(None), table.c.ended_at > first))
                     .values(ended_at=first))
        rows = []
        for k in range(count):
            start = first + timedelta(hours=2 * k)
            rows += [("down", start, start + timedelta(minutes=5), "web: status 503"),
                     ("up", start + timedelta(minutes=5), start + timedelta(hours=2), "")]
        conn.execute(sa.insert(table), [{"programme_id": programme_id, "endpoint_id": None, "state": state,
                                         "started_at": start, "ended_at": stop, "reason": reason}
                                        for state, start, stop, reason in rows])
        incidents.sync(conn, programme_ids=[programme_id], now=end)
        found = incidents.records_between(conn, first, end, programme_ids=[programme_id])[programme_id]
    return [row.id for row in sorted(found, key=lambda r: r.started_at, reverse=True)]
