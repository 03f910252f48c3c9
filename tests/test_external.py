"""External components and their outages: the reports' reads, recording, ending, cancelling, the CLI."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from dcops.external import components, outages_between
from dcops.models import external_component_table, external_outage_table


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def _component(conn, slug: str, run_by: str = "third-party") -> int:
    return conn.execute(sa.insert(external_component_table).values(
        slug=slug, name=slug.upper(), description=f"the {slug}", run_by=run_by, contact="")
        .returning(external_component_table.c.id)).scalar_one()


def _outage(conn, component_id: int, start: datetime, end: datetime | None, cancelled: bool = False) -> None:
    conn.execute(sa.insert(external_outage_table).values(
        component_id=component_id, started_at=start, ended_at=end, note="", recorded_at=utc(2026, 12, 1),
        recorded_by="test", cancelled_at=utc(2026, 12, 1) if cancelled else None))


def test_outages_between_gives_uncancelled_overlapping_outages_per_component_sorted(any_database):
    with any_database.transaction() as conn:
        nid, grid, link = _component(conn, "national-id"), _component(conn, "grid"), _component(conn, "uplink", "data-centre")
        _outage(conn, nid, utc(2026, 10, 20, 3), utc(2026, 10, 20, 4))
        _outage(conn, nid, utc(2026, 10, 5, 1), utc(2026, 10, 5, 2))
        _outage(conn, nid, utc(2026, 10, 6), utc(2026, 10, 7), cancelled=True)
        _outage(conn, nid, utc(2026, 9, 30, 23), utc(2026, 10, 1, 0))  # ends exactly at the start: outside
        _outage(conn, grid, utc(2026, 9, 30, 22), utc(2026, 10, 1, 1))  # straddles the start: inside
        _outage(conn, grid, utc(2026, 10, 31, 23), None)  # still down
        _outage(conn, link, utc(2026, 11, 1), utc(2026, 11, 2))  # starts exactly at the end: outside
    with any_database.transaction() as conn:
        found = outages_between(conn, utc(2026, 10, 1), utc(2026, 11, 1))
        assert components(conn) == {
            "grid": {"name": "GRID", "run_by": "third-party", "description": "the grid"},
            "national-id": {"name": "NATIONAL-ID", "run_by": "third-party", "description": "the national-id"},
            "uplink": {"name": "UPLINK", "run_by": "data-centre", "description": "the uplink"},
        }
    assert found == {
        "national-id": [(utc(2026, 10, 5, 1), utc(2026, 10, 5, 2)), (utc(2026, 10, 20, 3), utc(2026, 10, 20, 4))],
        "grid": [(utc(2026, 9, 30, 22), utc(2026, 10, 1, 1)), (utc(2026, 10, 31, 23), None)],
    }
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0
               for spans in found.values() for span in spans for t in span if t is not None)
