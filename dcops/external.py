"""External components and their outages: what programmes depend on that the data centre does not host.

The components themselves are declared in the inventory (`external_components:`, loaded by
dcops.inventory); this module records, ends, cancels and lists their outages, as operators
learn of them (the owner's notice, a phone call), and gives the reports what they read:
`components` and `outages_between`.

An outage is [started_at, ended_at) in UTC, ended_at None while the component is still down.
Outages of one component never overlap (cancelled ones aside), so that a stretch of a
programme's downtime is set against one record, and none lies in the future: they record
what happened, not what is expected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, insert, or_, select, true, update
from sqlalchemy.engine import Connection

from dcops.access import Actor, as_actor, authorize
from dcops.audit import Event, record
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import Conflict, NotFound, UserError
from dcops.models import (Ministry, Programme, external_component_table, external_outage_table,
                          programme_external_dependency_table)

T_COMPONENT = external_component_table
T_OUTAGE = external_outage_table
T_DEPENDENCY = programme_external_dependency_table
T_PROGRAMME = Programme.__table__
T_MINISTRY = Ministry.__table__

RUN_BY = ("third-party", "data-centre")
MAX_NOTE = 500
RECENT_OUTAGES = 20  # how many `show_component` lists


@dataclass(frozen=True)
class Outage:
    """One recorded outage of an external component."""

    id: int
    component: str  # the component's slug
    started_at: datetime
    ended_at: datetime | None  # None: still down
    note: str
    recorded_at: datetime
    recorded_by: str
    cancelled_at: datetime | None

    @property
    def duration_seconds(self) -> float | None:
        """How long it lasted, in seconds; None while it is still down."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("started_at", "ended_at", "recorded_at", "cancelled_at"):
            data[key] = iso_utc(data[key])
        data["duration_seconds"] = self.duration_seconds
        return data


def components(conn: Connection) -> dict[str, dict]:
    """Every declared external component: slug -> {"name", "run_by", "description"}, by slug."""
    rows = conn.execute(select(T_COMPONENT.c.slug, T_COMPONENT.c.name, T_COMPONENT.c.run_by,
                               T_COMPONENT.c.description).order_by(T_COMPONENT.c.slug))
    return {r.slug: {"name": r.name, "run_by": r.run_by, "description": r.description} for r in rows}


Span = tuple[datetime, datetime | None]  # an outage: (started_at, ended_at or None while still down)


def outages_between(conn: Connection, start: datetime, end: datetime) -> dict[str, list[Span]]:
    """Per component slug, its uncancelled outages overlapping [start, end), sorted by start.

    Each is (started_at, ended_at) in aware UTC, as recorded (not clipped to the period);
    ended_at None: still down. Components without such an outage are absent.
    """
    query = (
        select(T_COMPONENT.c.slug, T_OUTAGE.c.started_at, T_OUTAGE.c.ended_at)
        .join(T_COMPONENT, T_COMPONENT.c.id == T_OUTAGE.c.component_id)
        .where(T_OUTAGE.c.cancelled_at.is_(None), _overlapping(start, end))
        .order_by(T_COMPONENT.c.slug, T_OUTAGE.c.started_at, T_OUTAGE.c.id)
    )
    found: dict[str, list[Span]] = {}
    for row in conn.execute(query):
        found.setdefault(row.slug, []).append((row.started_at, row.ended_at))
    return found


def _overlapping(start: datetime | None, end: datetime | None):
    """The SQL condition: an outage overlaps [start, end) (None: unbounded on that side)."""
    conditions = []
    if end is not None:
        conditions.append(T_OUTAGE.c.started_at < end)
    if start is not None:
        conditions.append(or_(T_OUTAGE.c.ended_at.is_(None), T_OUTAGE.c.ended_at > start))
    return and_(true(), *conditions)


def _down_at(now: datetime):
    return and_(T_OUTAGE.c.cancelled_at.is_(None), T_OUTAGE.c.started_at <= now,
                or_(T_OUTAGE.c.ended_at.is_(None), T_OUTAGE.c.ended_at > now))


def list_components(conn: Connection, *, actor: "Actor | str | None" = None, now: datetime | None = None) -> list[dict]:
    """Every component, by slug: {slug, name, description, run_by, contact, dependants (how many
    programmes not retired depend on it), outage_now (the id of the outage under way, or None)}."""
    authorize(as_actor(actor), "external.read")
    now = now or utcnow()
    dependants = (select(func.count()).select_from(T_DEPENDENCY)
                  .join(T_PROGRAMME, T_PROGRAMME.c.id == T_DEPENDENCY.c.programme_id)
                  .where(T_DEPENDENCY.c.component_id == T_COMPONENT.c.id, T_PROGRAMME.c.status != "retired")
                  .scalar_subquery())
    outage_now = (select(func.min(T_OUTAGE.c.id))
                  .where(T_OUTAGE.c.component_id == T_COMPONENT.c.id, _down_at(now)).scalar_subquery())
    rows = conn.execute(select(T_COMPONENT, dependants.label("dependants"), outage_now.label("outage_now"))
                        .order_by(T_COMPONENT.c.slug))
    return [{"slug": r.slug, "name": r.name, "description": r.description, "run_by": r.run_by,
             "contact": r.contact, "dependants": int(r.dependants), "outage_now": r.outage_now} for r in rows]


def show_component(conn: Connection, slug: str, *, actor: "Actor | str | None" = None,
                   now: datetime | None = None, recent: int = RECENT_OUTAGES) -> dict:
    """One component with the programmes that depend on it ({slug, name, ministry, status}, by slug)
    and its `recent` latest outages (Outage records, newest first, cancelled ones too)."""
    authorize(as_actor(actor), "external.read")
    now = now or utcnow()
    row = conn.execute(select(T_COMPONENT).where(T_COMPONENT.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"no external component {slug!r} (see `dcops external list`)")
    dependants = conn.execute(
        select(T_PROGRAMME.c.slug, T_PROGRAMME.c.name, T_MINISTRY.c.code, T_PROGRAMME.c.status)
        .join(T_DEPENDENCY, T_DEPENDENCY.c.programme_id == T_PROGRAMME.c.id)
        .join(T_MINISTRY, T_MINISTRY.c.id == T_PROGRAMME.c.ministry_id)
        .where(T_DEPENDENCY.c.component_id == row.id).order_by(T_PROGRAMME.c.slug))
    outages = _outages(conn, T_OUTAGE.c.component_id == row.id, newest_first=True, limit=recent)
    under_way = [o.id for o in outages if o.cancelled_at is None and o.started_at <= now
                 and (o.ended_at is None or o.ended_at > now)]
    return {"slug": row.slug, "name": row.name, "description": row.description, "run_by": row.run_by,
            "contact": row.contact,
            "dependants": [{"slug": d[0], "name": d[1], "ministry": d[2], "status": d[3]} for d in dependants],
            "outage_now": under_way[0] if under_way else None,
            "outages": outages}


def list_outages(conn: Connection, *, component: str | None = None, start: datetime | None = None,
                 end: datetime | None = None, include_cancelled: bool = False,
                 actor: "Actor | str | None" = None) -> list[Outage]:
    """Outages overlapping [start, end) (either may be None: unbounded), oldest first."""
    authorize(as_actor(actor), "external.read")
    conditions = [_overlapping(start, end)]
    if component is not None:
        conditions.append(T_OUTAGE.c.component_id == _component_id(conn, component))
    if not include_cancelled:
        conditions.append(T_OUTAGE.c.cancelled_at.is_(None))
    return _outages(conn, *conditions)


def _shown(moment: datetime, tz: ZoneInfo | None) -> str:
    """A time in a message: in the operator's zone when known, as they typed it."""
    if tz is None:
        return iso_utc(moment)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") + f" {tz.key}"


def _checked_note(note: str) -> str:
    note = note.strip()
    if not note or len(note) > MAX_NOTE or not note.isprintable():
        raise UserError(f"--note: one line of 1 to {MAX_NOTE} characters, no control characters "
                        "(what happened, and who said so)")
    return note


def record_outage(database: Database, component: str, *, started_at: datetime, ended_at: datetime | None = None,
                  note: str, actor: "Actor | str | None" = None, now: datetime | None = None,
                  tz: ZoneInfo | None = None) -> Outage:
    """Record that `component` was (or is still, ended_at None) down; checked, audited, one transaction.

    Refused: an end not after the start, a start or end after `now`, and a stretch overlapping
    another uncancelled outage of the same component. `tz`: the zone of the operator's times,
    for messages (UTC without it).
    """
    operator = as_actor(actor)
    authorize(operator, "inventory.write")
    now = now or utcnow()
    note = _checked_note(note)
    if ended_at is not None and ended_at <= started_at:
        raise UserError(f"--to ({_shown(ended_at, tz)}) must be after --from ({_shown(started_at, tz)})")
    if started_at > now:
        raise UserError(f"--from ({_shown(started_at, tz)}) is in the future: record an outage once it has begun")
    if ended_at is not None and ended_at > now:
        raise UserError(f"--to ({_shown(ended_at, tz)}) is in the future: leave --to out while it is still down, "
                        "then `dcops external outage end ID`")
    with database.transaction(immediate=True) as conn:
        component_id = _component_id(conn, component)
        clash = _outages(conn, T_OUTAGE.c.component_id == component_id, T_OUTAGE.c.cancelled_at.is_(None),
                         _overlapping(started_at, ended_at))
        if clash:
            other = clash[0]
            until = _shown(other.ended_at, tz) if other.ended_at else "still down"
            raise Conflict(f"{component} already has outage {other.id} from {_shown(other.started_at, tz)} to {until}, "
                           "which overlaps this one (cancel it first if it was recorded in error)")
        outage_id = conn.execute(insert(T_OUTAGE).values(
            component_id=component_id, started_at=started_at, ended_at=ended_at, note=note, recorded_at=now,
            recorded_by=operator.name).returning(T_OUTAGE.c.id)).scalar_one()
        outage = _outages(conn, T_OUTAGE.c.id == outage_id)[0]
        record(conn, Event(operator.name, "external.outage.recorded", "external_outage", str(outage_id), None,
                           outage.as_dict()))
    return outage


def end_outage(database: Database, outage_id: int, *, at: datetime | None = None, actor: "Actor | str | None" = None,
               now: datetime | None = None, tz: ZoneInfo | None = None) -> Outage:
    """End an outage still under way, at `at` (default now); audited, one transaction."""
    operator = as_actor(actor)
    authorize(operator, "inventory.write")
    now = now or utcnow()
    at = at or now
    if at > now:
        raise UserError(f"--at ({_shown(at, tz)}) is in the future: end an outage once it is over")
    with database.transaction(immediate=True) as conn:
        before = _one(conn, outage_id)
        if before.ended_at is not None:
            raise Conflict(f"outage {outage_id} already ended at {_shown(before.ended_at, tz)}")
        if at <= before.started_at:
            raise UserError(f"--at ({_shown(at, tz)}) must be after the outage began ({_shown(before.started_at, tz)})")
        conn.execute(update(T_OUTAGE).where(T_OUTAGE.c.id == outage_id).values(ended_at=at))
        after = _outages(conn, T_OUTAGE.c.id == outage_id)[0]
        record(conn, Event(operator.name, "external.outage.ended", "external_outage", str(outage_id),
                           before.as_dict(), after.as_dict()))
    return after


def cancel_outage(database: Database, outage_id: int, *, actor: "Actor | str | None" = None,
                  now: datetime | None = None) -> Outage:
    """Cancel an outage recorded in error: it stays in the record, marked, and counts for nothing."""
    operator = as_actor(actor)
    authorize(operator, "inventory.write")
    now = now or utcnow()
    with database.transaction(immediate=True) as conn:
        before = _one(conn, outage_id)
        conn.execute(update(T_OUTAGE).where(T_OUTAGE.c.id == outage_id).values(cancelled_at=now))
        after = _outages(conn, T_OUTAGE.c.id == outage_id)[0]
        record(conn, Event(operator.name, "external.outage.cancelled", "external_outage", str(outage_id),
                           before.as_dict(), after.as_dict()))
    return after


def _one(conn: Connection, outage_id: int) -> Outage:
    """An outage that may still change: it exists and is not cancelled."""
    found = _outages(conn, T_OUTAGE.c.id == outage_id)
    if not found:
        raise NotFound(f"no external outage {outage_id} (see `dcops external outage list`)")
    if found[0].cancelled_at is not None:
        raise Conflict(f"outage {outage_id} was cancelled at {iso_utc(found[0].cancelled_at)}")
    return found[0]


def _component_id(conn: Connection, slug: str) -> int:
    component_id = conn.execute(select(T_COMPONENT.c.id).where(T_COMPONENT.c.slug == slug)).scalar()
    if component_id is None:
        raise NotFound(f"no external component {slug!r} (see `dcops external list`)")
    return component_id


def _outages(conn: Connection, *conditions, newest_first: bool = False, limit: int | None = None) -> list[Outage]:
    order = (T_OUTAGE.c.started_at.desc(), T_OUTAGE.c.id.desc()) if newest_first else \
        (T_OUTAGE.c.started_at, T_OUTAGE.c.id)
    query = (select(T_OUTAGE, T_COMPONENT.c.slug).join(T_COMPONENT, T_COMPONENT.c.id == T_OUTAGE.c.component_id)
             .where(*conditions).order_by(*order).limit(limit))
    return [Outage(r.id, r.slug, r.started_at, r.ended_at, r.note, r.recorded_at, r.recorded_by, r.cancelled_at)
            for r in conn.execute(query)]
