"""What one ministry looks like now: its programmes' states, this month's availability, open requests, maintenance."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from dcops.access import Actor, Owned, authorize
from dcops.catalogue.requests.queries import list_requests
from dcops.db import Database, iso_utc, utcnow
from dcops.errors import NotFound
from dcops.health.status import programme_states
from dcops.lifecycle import OPEN_STATES
from dcops.models import Allocation, Host, MaintenanceWindow, Ministry, Programme

T_MINISTRY = Ministry.__table__
T_PROGRAMME = Programme.__table__
T_WINDOW = MaintenanceWindow.__table__
T_ALLOCATION = Allocation.__table__
T_HOST = Host.__table__

# How far ahead the home page looks for announced maintenance.
MAINTENANCE_HORIZON = timedelta(days=60)


def ministry_overview(database: Database, actor: Actor, ministry: str, *, tz: ZoneInfo, data_centre_name: str,
                      now: datetime | None = None, judging: dict | None = None) -> dict:
    """A ministry's home: each programme's state now beside this month's availability and target,
    its open requests, and the maintenance announced ahead. NotFound unless the actor may read it."""
    from dcops.reports.documents import resolve_period, uptime_document

    now = now or utcnow()
    with database.transaction() as conn:
        row = conn.execute(select(T_MINISTRY.c.code, T_MINISTRY.c.name).where(T_MINISTRY.c.code == ministry)).first()
        if row is None:
            raise NotFound(f"no ministry {ministry}")
        authorize(actor, "ministry.read", Owned("ministry", ministry, ministry))
        month = now.astimezone(tz).strftime("%Y-%m")
        period = resolve_period(month, None, None, tz)
        report = uptime_document(conn, period, tz=tz, now=now, data_centre_name=data_centre_name, ministry=ministry,
                                 **(judging or {}))
        requests = [r for r in list_requests(conn, ministry=ministry, actor=actor) if r["state"] in OPEN_STATES]
        windows = _windows_ahead(conn, ministry, now)
    states = {s["programme"]: s for s in programme_states(database, now=now, ministries=[ministry])}
    figures = {p["slug"]: p for p in report["programmes"]}
    unmonitored = {p["slug"]: p for p in report["not_monitored"]}
    programmes = []
    for slug in sorted(set(states) | set(figures) | set(unmonitored)):
        state = states.get(slug, {})
        figure = figures.get(slug) or unmonitored.get(slug) or {}
        programmes.append({
            "slug": slug,
            "name": figure.get("name", slug),
            "state": state.get("state"),
            "since": state.get("since"),
            "reason": state.get("reason", ""),
            "availability": figure.get("availability"),  # a ratio; None without data
            "target_percent": figure.get("target_percent"),
            "met": figure.get("met"),
            "error_budget_used_percent": figure.get("error_budget_used_percent"),
            "monitored": slug in figures,
        })
    return {
        "ministry": {"code": row.code, "name": row.name},
        "generated_at": iso_utc(now),
        "period": report["period"],
        "summary": report["ministries"][0] if report["ministries"] else None,
        "programmes": programmes,
        "open_requests": requests,
        "maintenance": windows,
    }


def _windows_ahead(conn, ministry: str, now: datetime) -> list[dict]:
    """Announced, not cancelled windows ending after now, on the ministry's programmes or the clusters
    that hold them, soonest first."""
    programme_ids = select(T_PROGRAMME.c.id).join(T_MINISTRY, T_MINISTRY.c.id == T_PROGRAMME.c.ministry_id) \
        .where(T_MINISTRY.c.code == ministry)
    clusters = select(T_ALLOCATION.c.cluster_id).where(T_ALLOCATION.c.programme_id.in_(programme_ids)) \
        .union(select(T_HOST.c.cluster_id).where(T_HOST.c.programme_id.in_(programme_ids)))
    rows = conn.execute(
        select(T_WINDOW.c.id, T_WINDOW.c.starts_at, T_WINDOW.c.ends_at, T_WINDOW.c.reason, T_WINDOW.c.change_ref,
               T_PROGRAMME.c.slug)
        .outerjoin(T_PROGRAMME, T_PROGRAMME.c.id == T_WINDOW.c.programme_id)
        .where(or_(T_WINDOW.c.programme_id.in_(programme_ids), T_WINDOW.c.cluster_id.in_(clusters)),
               T_WINDOW.c.cancelled_at.is_(None), T_WINDOW.c.ends_at > now,
               T_WINDOW.c.starts_at < now + MAINTENANCE_HORIZON)
        .order_by(T_WINDOW.c.starts_at, T_WINDOW.c.id).limit(5)
    )
    return [{"id": r.id, "starts_at": iso_utc(r.starts_at), "ends_at": iso_utc(r.ends_at), "reason": r.reason,
             "change_ref": r.change_ref, "programme": r.slug} for r in rows]


def programme_overview(database: Database, actor: Actor, slug: str, *, tz: ZoneInfo, data_centre_name: str,
                       now: datetime | None = None, judging: dict | None = None) -> dict:
    """One programme as its ministry sees it: governance facts, each check's state now, the capacity
    it holds, this month's availability and incidents, and its maintenance windows (last 30 days and
    ahead). NotFound, as for a missing programme, unless the actor may read it."""
    from dcops.health.status import checks_now
    from dcops.inventory.queries import show_programme
    from dcops.maintenance import list_windows
    from dcops.reports.documents import resolve_period, uptime_document

    now = now or utcnow()
    with database.transaction() as conn:
        record = show_programme(conn, slug, actor=actor)
        programme_id = conn.execute(select(T_PROGRAMME.c.id).where(T_PROGRAMME.c.slug == slug)).scalar_one()
        states = {check.name: check for check in checks_now(conn, [programme_id]).get(programme_id, [])}
        period = resolve_period(now.astimezone(tz).strftime("%Y-%m"), None, None, tz)
        report = uptime_document(conn, period, tz=tz, now=now, data_centre_name=data_centre_name, programme=slug,
                                 **(judging or {}))
        windows = list_windows(conn, programme=slug, since=now - timedelta(days=30))
    checks = []
    for endpoint in record["endpoints"]:
        found = states.get(endpoint["name"])
        state = "unknown" if found is None or found.stale_from(now) is not None else found.state
        checks.append({**endpoint, "state": state, "last_at": iso_utc(found.last_at) if found else None})
    month = report["programmes"][0] if report["programmes"] else None
    return {
        "programme": record,
        "checks": checks,
        "month": month,
        "period": report["period"],
        "not_monitored": report["not_monitored"][0] if report["not_monitored"] else None,
        "maintenance": [window.as_dict() for window in windows],
    }
