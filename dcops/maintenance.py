"""Maintenance windows: recording, listing and cancelling planned work on a programme or a cluster.

Given an Alertmanager client (DCOPS_ALERTMANAGER_URL), each window recorded also gets a silence of
its programmes' alerts (dcops.alertmanager), asked for once the window's transaction has committed:
an Alertmanager that is down leaves it pending, and the window recorded all the same.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection

from dcops import alertmanager as am
from dcops.access import Actor, as_actor, authorize
from dcops.audit import Event, record
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import Conflict, NotFound, UserError
from dcops.models import Cluster, MaintenanceWindow, Programme

T_WINDOW = MaintenanceWindow.__table__
T_PROGRAMME = Programme.__table__
T_CLUSTER = Cluster.__table__

# Change references come from the change-management system: "CHG-1042", "RFC/2026/17".
CHANGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
MAX_REASON = 500
# Longer than this is not a maintenance window but an outage with paperwork.
MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Window:
    """A maintenance window as people and reports see it."""

    id: int
    programme: str | None
    cluster: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    change_ref: str
    recorded_at: datetime
    recorded_by: str
    cancelled_at: datetime | None
    cancelled_by: str | None

    @property
    def announced(self) -> bool:
        """Recorded before it started: only then is its time taken out of the SLA."""
        return self.recorded_at <= self.starts_at

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("starts_at", "ends_at", "recorded_at", "cancelled_at"):
            data[key] = iso_utc(data[key]) if data[key] is not None else None
        data["announced"] = self.announced
        return data


def parse_time(text: str, tz: ZoneInfo, *, option: str) -> datetime:
    """An operator's time, as an aware UTC datetime: the one rule for every time dcops reads.

    ISO 8601 with an offset ('2026-10-12T15:00Z', '2026-10-12 22:00+07:00') is that instant;
    without one ('2026-10-12 22:00', or a day, '2026-10-12', meaning its midnight) it is local
    time in the data centre's zone `tz` (DCOPS_TIMEZONE). A mistake names `option`.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return moment.astimezone(ZoneInfo("UTC"))
    except (ValueError, OverflowError):  # OverflowError: a time at the very ends of the calendar
        raise UserError(f"{option}: {text!r} is not a time (e.g. 2026-10-12T22:00, local to {tz.key}, "
                        "or with an offset such as 2026-10-12T15:00Z)") from None


def _shown(moment: datetime, tz: ZoneInfo | None) -> str:
    """A time in a message: in the operator's zone when known, as they typed it."""
    if tz is None:
        return iso_utc(moment)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") + f" {tz.key}"


def add_window(
    database: Database,
    *,
    programme: str | None,
    cluster: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    change_ref: str,
    actor: "Actor | str | None" = None,
    now: datetime | None = None,
    tz: ZoneInfo | None = None,
    alertmanager: "am.AlertmanagerClient | None" = None,
) -> Window:
    """Record a window for one programme or one whole cluster; checked, audited, one transaction.

    `tz`: the zone the operator gave the times in, for messages (UTC without it). Given
    `alertmanager`, a window not yet over gets its silence: written pending with the window, then
    asked for (see `silence_of` for what became of it).

    A window recorded after it started is accepted (the record should show what happened)
    but does not excuse its time: the uptime report counts it as downtime and flags it.
    """
    if (programme is None) == (cluster is None):
        raise UserError("give either a PROGRAMME or --cluster CLUSTER (one, not both)")
    if ends_at <= starts_at:
        raise UserError(f"--end ({_shown(ends_at, tz)}) must be after --start ({_shown(starts_at, tz)})")
    if ends_at - starts_at > MAX_WINDOW:
        raise UserError(f"a window is at most {MAX_WINDOW.days} days; record longer work as several windows")
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ch in reason for ch in "\r\n"):
        raise UserError(f"--reason: one line of 1 to {MAX_REASON} characters")
    if not CHANGE_REF.match(change_ref):
        raise UserError(f"--change-ref: {change_ref!r} is not a change reference (letters, digits, . _ / -; "
                        "at most 64)")
    operator = as_actor(actor)
    authorize(operator, "maintenance.write")
    actor = operator.name
    now = now or utcnow()
    with database.transaction(immediate=True) as conn:
        programme_id = cluster_id = None
        if programme is not None:
            row = conn.execute(select(T_PROGRAMME.c.id, T_PROGRAMME.c.status)
                               .where(T_PROGRAMME.c.slug == programme)).first()
            if row is None:
                raise NotFound(f"no programme {programme!r} (see `dcops programme list`)")
            if row.status == "retired":
                raise Conflict(f"programme {programme!r} is retired")
            programme_id = row.id
        else:
            cluster_id = conn.execute(select(T_CLUSTER.c.id).where(T_CLUSTER.c.name == cluster)).scalar()
            if cluster_id is None:
                raise NotFound(f"no cluster {cluster!r} (see `dcops cluster list`)")
        window_id = conn.execute(insert(T_WINDOW).values(
            programme_id=programme_id, cluster_id=cluster_id, starts_at=starts_at, ends_at=ends_at, reason=reason,
            change_ref=change_ref, recorded_at=now, recorded_by=actor,
        ).returning(T_WINDOW.c.id)).scalar_one()
        window = _windows(conn, T_WINDOW.c.id == window_id)[0]
        record(conn, Event(actor, "maintenance.added", "maintenance", str(window_id), None, window.as_dict()))
        silenced = alertmanager is not None and am.plan_silence(conn, window_id, ends_at=ends_at, actor=actor,
                                                                now=now)
    if silenced:
        am.sync_silences(database, alertmanager, window_ids=[window_id], actor=actor, now=now)
    return window


def cancel_window(database: Database, window_id: int, *, actor: "Actor | str | None" = None,
                  now: datetime | None = None, alertmanager: "am.AlertmanagerClient | None" = None) -> Window:
    """Cancel a window that has not started: once work began, the record stands.

    Its silence, if it has one, is to be expired (or, never created, withdrawn) in the same
    transaction; given `alertmanager`, it is expired there at once, else by `dcops serve` later.
    """
    operator = as_actor(actor)
    authorize(operator, "maintenance.write")
    actor = operator.name
    now = now or utcnow()
    with database.transaction(immediate=True) as conn:
        found = _windows(conn, T_WINDOW.c.id == window_id)
        if not found:
            raise NotFound(f"no maintenance window {window_id} (see `dcops maintenance list`)")
        before = found[0]
        if before.cancelled_at is not None:
            raise Conflict(f"maintenance window {window_id} was already cancelled at {iso_utc(before.cancelled_at)}")
        if before.starts_at <= now:
            raise Conflict(f"maintenance window {window_id} started at {iso_utc(before.starts_at)}: "
                           "a window under way or past cannot be cancelled")
        conn.execute(update(T_WINDOW).where(T_WINDOW.c.id == window_id)
                     .values(cancelled_at=now, cancelled_by=actor))
        after = _windows(conn, T_WINDOW.c.id == window_id)[0]
        record(conn, Event(actor, "maintenance.cancelled", "maintenance", str(window_id), before.as_dict(),
                           after.as_dict()))
        expiring = am.withdraw_or_expire(conn, window_id, actor=actor, now=now) == "expiring"
    if expiring and alertmanager is not None:
        am.sync_silences(database, alertmanager, window_ids=[window_id], actor=actor, now=now)
    return after


def silence_of(database: Database, window_id: int) -> dict | None:
    """The window's Alertmanager silence as plain data (dcops.alertmanager.silence_states); None: none."""
    with database.transaction() as conn:
        return am.silence_states(conn, [window_id]).get(window_id)


def list_windows(conn: Connection, *, programme: str | None = None, cluster: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 include_cancelled: bool = False) -> list[Window]:
    """Windows overlapping [since, until), oldest first; a programme's include its clusters' windows."""
    conditions = []
    if programme is not None:
        row = conn.execute(select(T_PROGRAMME.c.id).where(T_PROGRAMME.c.slug == programme)).first()
        if row is None:
            raise NotFound(f"no programme {programme!r} (see `dcops programme list`)")
        from dcops.models import Allocation, Host

        clusters = select(Allocation.__table__.c.cluster_id).where(Allocation.__table__.c.programme_id == row.id) \
            .union(select(Host.__table__.c.cluster_id).where(Host.__table__.c.programme_id == row.id))
        conditions.append(or_(T_WINDOW.c.programme_id == row.id, T_WINDOW.c.cluster_id.in_(clusters)))
    if cluster is not None:
        cluster_id = conn.execute(select(T_CLUSTER.c.id).where(T_CLUSTER.c.name == cluster)).scalar()
        if cluster_id is None:
            raise NotFound(f"no cluster {cluster!r} (see `dcops cluster list`)")
        conditions.append(T_WINDOW.c.cluster_id == cluster_id)
    if since is not None:
        conditions.append(T_WINDOW.c.ends_at > since)
    if until is not None:
        conditions.append(T_WINDOW.c.starts_at < until)
    if not include_cancelled:
        conditions.append(T_WINDOW.c.cancelled_at.is_(None))
    return _windows(conn, *conditions)


def _windows(conn: Connection, *conditions) -> list[Window]:
    query = (
        select(T_WINDOW, T_PROGRAMME.c.slug, T_CLUSTER.c.name.label("cluster_name"))
        .outerjoin(T_PROGRAMME, T_PROGRAMME.c.id == T_WINDOW.c.programme_id)
        .outerjoin(T_CLUSTER, T_CLUSTER.c.id == T_WINDOW.c.cluster_id)
        .where(*conditions)
        .order_by(T_WINDOW.c.starts_at, T_WINDOW.c.id)
    )
    return [
        Window(r.id, r.slug, r.cluster_name, r.starts_at, r.ends_at, r.reason, r.change_ref, r.recorded_at,
               r.recorded_by, r.cancelled_at, r.cancelled_by)
        for r in conn.execute(query)
    ]
