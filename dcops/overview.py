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


def status_overview(database: Database, actor: Actor, *, tz: ZoneInfo, now: datetime | None = None) -> dict:
    """The status page as `actor` may see it: the staff see the ministries' page whole; a ministry's
    people see their own ministries' programmes as the ministries' page shows them (every incident,
    with its cause and updates, and all announced maintenance) and every other ministry's as the
    public page does (no confidential or secret programme, only released incidents).

    The shape of status.status_view (audience "mixed" when merged), each ministry marked `own`
    (the actor reads it whole), each programme with `bar` (its runs of days in one state, as
    {"x", "width", "state"} in days) and `days_up`. Reads the incident records as they are kept
    (the prober keeps them as it writes, `dcops serve` repairs them every minute); writes nothing."""
    from dcops.status import AUDIENCES, bar_runs, status_view

    now = now or utcnow()
    scope = actor.ministries("programme.read")
    with database.transaction() as conn:
        views = {audience: status_view(conn, now=now, tz=tz, audience=audience)
                 for audience in (AUDIENCES if scope is not None else ("ministries",))}
    whole = views["ministries"]
    if scope is None:
        merged = {**whole, "ministries": [{**group, "own": True} for group in whole["ministries"]]}
    else:
        merged = _merged_status(views["public"], whole, scope)
    for group in merged["ministries"]:
        for programme in group["programmes"]:
            programme["bar"] = [{"x": x, "width": width, "state": state}
                                for x, width, state in bar_runs(programme["days"])]
            programme["days_up"] = sum(1 for cell in programme["days"] if cell["state"] == "up")
    return merged


def _merged_status(public: dict, whole: dict, own: frozenset[str]) -> dict:
    """The public view with the ministries in `own` replaced by their whole view (see status_overview)."""
    groups = [{**group, "own": True} for group in whole["ministries"] if group["code"] in own]
    groups += [{**group, "own": False} for group in public["ministries"] if group["code"] not in own]
    groups.sort(key=lambda g: (g["name"].casefold(), g["code"]))
    incidents = {}
    for key in ("current", "recent"):
        found = [i for i in whole["incidents"][key] if i["ministry"] in own]
        found += [i for i in public["incidents"][key] if i["ministry"] not in own]
        incidents[key] = sorted(found, key=lambda i: (i["start"], i["number"]), reverse=True)
    # A window (of a cluster, say) names the programmes it touches by their labels: the actor's own
    # from the whole view, the others' as the public view names them.
    own_labels = {p["label"] for g in groups if g["own"] for p in g["programmes"]}
    public_windows = {w["id"]: w for w in public["maintenance"]["all"]}
    windows = []
    for window in whole["maintenance"]["all"]:
        shown = public_windows.get(window["id"], {}).get("programmes", [])
        mine = [label for label in window["programmes"] if label in own_labels]
        if mine:
            windows.append({**window, "programmes": sorted(set(mine) | set(shown), key=str.casefold)})
        elif shown:
            windows.append(public_windows[window["id"]])
    programmes = [p for g in groups for p in g["programmes"]]
    counts = {state: sum(1 for p in programmes if p["state"] == state) for state in whole["counts"]}
    return {
        **whole,
        "audience": "mixed",
        "programme_count": len(programmes),
        "counts": counts,
        "ministries": groups,
        "incidents": incidents,
        "maintenance": {"in_progress": [w for w in windows if w["phase"] == "in progress"],
                        "upcoming": [w for w in windows if w["phase"] == "upcoming"],
                        "all": windows},
    }
