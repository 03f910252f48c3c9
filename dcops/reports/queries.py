"""The reports' query layer: reads the database into the plain rows the report maths takes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.db import UTCDateTime, read_utc
from dcops.inventory.capacity import ResourceUsage, choose_cluster
from dcops.health.status import checks_now, settle
from dcops.inventory.queries import require
from dcops.reports.capacity import ResourceInput, SnapshotPoint
from dcops.reports.uptime import MaintenanceWindow, StateSpan

_TIME = UTCDateTime()


@dataclass
class ProgrammeHistory:
    """One programme's descriptive fields, its programme-level state spans and its maintenance windows."""

    id: int
    slug: str
    name: str
    ministry: str
    ministry_name: str
    tier: int
    tier_name: str
    target_percent: float
    service_start: datetime | None = None  # in service from (None: never)
    service_end: datetime | None = None  # retired at (None: still in service)
    has_checks: bool = True  # whether it has a check now
    spans: list[StateSpan] = field(default_factory=list)
    windows: list[MaintenanceWindow] = field(default_factory=list)
    short_name: str | None = None
    excludes_external: bool = False  # its SLA leaves third-party dependency time out (its own word, or its tier's)
    depends_on: tuple[str, ...] = ()  # slugs of the programmes and external components it needs
    incidents: list[IncidentRecord] = field(default_factory=list)  # its records overlapping the period


class IncidentRecord(NamedTuple):
    """An incident record as the report reads it (dcops.incidents keeps them)."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    status: str
    title: str
    cause: str
    action: str
    attributed_to: str | None
    postmortem_url: str | None


@dataclass
class Dependencies:
    """What attribution needs beyond the reported programmes: the down time of every hosted
    programme they depend on (directly or along a chain), and the external components' outages."""

    down: dict[str, list[tuple[datetime, datetime]]]  # programme slug -> its down time (to `now` when open)
    depends_on: dict[str, tuple[str, ...]]  # programme slug -> what it needs
    outages: dict[str, list[tuple[datetime, datetime]]]  # component slug -> its outages (to `now` when open)
    components: dict[str, dict]  # component slug -> name, run_by, description


@dataclass(frozen=True)
class ListedWindow:
    """A maintenance window as the report lists it: the window, what it is for, who recorded it."""

    window: MaintenanceWindow
    programme: str | None
    cluster: str | None
    recorded_by: str
    programmes: tuple[str, ...] = ()  # the reported programmes it applied to

    def as_dict(self) -> dict:
        return {**self.window.as_dict(), "programme": self.programme, "cluster": self.cluster,
                "recorded_by": self.recorded_by, "programmes": list(self.programmes)}


def uptime_inputs(conn: Connection, *, start: datetime, end: datetime, now: datetime, ministry: str | None = None,
                  programme: str | None = None) -> tuple[list[ProgrammeHistory], list[ListedWindow]]:
    """The programmes to report on over [start, end), with their spans (as read at `now`) and windows.

    A programme is reported for the part of the period it was in service: from the earlier of its
    first activation and its first recorded state (history imported from an earlier tool counts;
    a programme is not probed before it is in service), until its retirement. Cancelled windows
    are left out.
    """
    where, params = [], {"start": start, "end": end}
    if ministry is not None:
        require(conn, "ministry", ministry)
        where.append("m.code = :ministry")
        params["ministry"] = ministry
    if programme is not None:
        require(conn, "programme", programme)
        where.append("p.slug = :programme")
        params["programme"] = programme
    bind = _bind_times(conn, params)
    condition = " AND ".join(where) or "1 = 1"
    rows = conn.execute(text(
        "SELECT p.id, p.slug, p.name, m.code, m.name, p.tier, t.name, t.sla_target_percent, "
        "p.activated_at, p.retired_at, (SELECT MIN(i.started_at) FROM state_interval i WHERE i.programme_id = p.id "
        "AND i.endpoint_id IS NULL), EXISTS (SELECT 1 FROM endpoint e WHERE e.programme_id = p.id), "
        "p.short_name, COALESCE(p.excludes_external, t.excludes_external) "
        "FROM programme p JOIN ministry m ON m.id = p.ministry_id JOIN sla_tier t ON t.tier = p.tier "
        f"WHERE {condition} ORDER BY m.code, p.slug"), bind).all()
    programmes = {}
    for r in rows:
        starts = [moment for moment in (read_utc(conn, r[8]), read_utc(conn, r[10])) if moment is not None]
        service_start, service_end = (min(starts) if starts else None), read_utc(conn, r[9])
        if service_start is None or service_start >= end or (service_end is not None and service_end <= start):
            continue
        programmes[r[0]] = ProgrammeHistory(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                                            service_start=service_start, service_end=service_end,
                                            has_checks=bool(r[11]), short_name=r[12], excludes_external=bool(r[13]))
    # A report of one ministry or programme reads only the spans, placements and windows of the
    # programmes it reports (their ids are integers, so written into the statements). On SQLite,
    # `+endpoint_id` keeps the planner, which has no statistics, off the endpoint_id index: with
    # it, a ministry's report walked every programme-level interval of every programme (a year of
    # 1,000 programmes: 176,000 rows for 50 programmes' 75) rather than these programmes' own.
    reported = "(" + ", ".join(str(int(i)) for i in sorted(programmes)) + ")" if programmes else "(NULL)"
    scoped = "" if not where else f"AND programme_id IN {reported} "
    level = "+endpoint_id" if where and conn.dialect.name == "sqlite" else "endpoint_id"
    open_spans: dict[int, int] = {}
    for r in conn.execute(text(
            "SELECT programme_id, state, started_at, ended_at, reason FROM state_interval "
            f"WHERE {level} IS NULL AND started_at < :end AND (ended_at IS NULL OR ended_at > :start) "
            f"{scoped}ORDER BY programme_id, started_at"), bind):
        history = programmes.get(r[0])
        if history is not None:
            if r[3] is None:
                open_spans[r[0]] = len(history.spans)
            history.spans.append(StateSpan(r[1], read_utc(conn, r[2]), read_utc(conn, r[3]), r[4] or ""))
    # No data is unknown at read time too: an open span lasts only while its checks keep reporting.
    checks = checks_now(conn, open_spans)
    for programme_id, index in open_spans.items():
        history = programmes[programme_id]
        span = history.spans[index]
        history.spans[index:index + 1] = [
            StateSpan(piece.state, piece.start, piece.end, piece.reason)
            for piece in settle(span.state, span.start, span.reason, checks.get(programme_id, []), now)]

    on_cluster: dict[int, list[ProgrammeHistory]] = defaultdict(list)
    placed = "" if not where else f" WHERE programme_id IN {reported}"
    for r in conn.execute(text(f"SELECT programme_id, cluster_id FROM allocation{placed} UNION "
                               f"SELECT programme_id, cluster_id FROM host{placed}")):
        if r[0] in programmes:
            on_cluster[r[1]].append(programmes[r[0]])
    # Only the windows that can apply to a reported programme: on it, or on a cluster holding one
    # (the whole data centre's windows of a year were read for one ministry's month before).
    clusters = "(" + ", ".join(str(int(i)) for i in sorted(on_cluster)) + ")" if on_cluster else "(NULL)"
    applicable = "" if not where else f"AND (w.programme_id IN {reported} OR w.cluster_id IN {clusters}) "
    windows: list[ListedWindow] = []
    for r in conn.execute(text(
            "SELECT w.id, w.programme_id, w.cluster_id, p.slug, c.name, w.starts_at, w.ends_at, w.recorded_at, "
            "w.recorded_by, w.change_ref, w.reason FROM maintenance_window w "
            "LEFT JOIN programme p ON p.id = w.programme_id LEFT JOIN cluster c ON c.id = w.cluster_id "
            "WHERE w.cancelled_at IS NULL AND w.starts_at < :end AND w.ends_at > :start "
            f"{applicable}ORDER BY w.starts_at, w.id"), bind):
        window = MaintenanceWindow(r[0], read_utc(conn, r[5]), read_utc(conn, r[6]), read_utc(conn, r[7]), r[9], r[10])
        if r[1] is not None:
            applies = [programmes[r[1]]] if r[1] in programmes else []
        else:
            applies = on_cluster.get(r[2], [])
        for history in applies:
            history.windows.append(window)
        if applies:
            windows.append(ListedWindow(window, r[3], r[4], r[8], tuple(sorted(h.slug for h in applies))))
    # The incident records, by start, each programme's: what names and annotates its incidents.
    for r in conn.execute(text(
            "SELECT id, programme_id, started_at, ended_at, status, title, cause, action, attributed_to, "
            "postmortem_url FROM incident WHERE merged_into IS NULL AND started_at < :end "
            f"AND (ended_at IS NULL OR ended_at > :start) {scoped}ORDER BY programme_id, started_at"), bind):
        history = programmes.get(r[1])
        if history is not None:
            history.incidents.append(IncidentRecord(r[0], read_utc(conn, r[2]), read_utc(conn, r[3]), r[4],
                                                    r[5] or "", r[6] or "", r[7] or "", r[8], r[9]))
    return list(programmes.values()), windows


def dependency_inputs(conn: Connection, histories: list[ProgrammeHistory], *, start: datetime, end: datetime,
                      now: datetime) -> Dependencies:
    """The dependencies of the reported programmes, along every chain, over [start, end) as read at `now`.

    A reported programme's down time is its spans' (as the report reads them, unknown after its
    checks fall silent); another's is its programme-level down intervals as stored.
    """
    from dcops.external import components, outages_between

    needs: dict[int, list[str]] = defaultdict(list)
    slug_of: dict[int, str] = {}
    for r in conn.execute(text(
            "SELECT x.programme_id, p.slug, d.id, d.slug FROM programme_dependency x "
            "JOIN programme p ON p.id = x.programme_id JOIN programme d ON d.id = x.depends_on_id "
            "UNION ALL SELECT x.programme_id, p.slug, NULL, c.slug FROM programme_external_dependency x "
            "JOIN programme p ON p.id = x.programme_id JOIN external_component c ON c.id = x.component_id")):
        needs[r[0]].append(r[3])
        slug_of[r[0]] = r[1]
        if r[2] is not None:
            slug_of[r[2]] = r[3]
    id_of = {slug: programme_id for programme_id, slug in slug_of.items()}
    reported = {h.id: h for h in histories}
    # Every hosted programme along a chain from a reported one.
    wanted, queue = set(), [h.id for h in histories]
    while queue:
        programme_id = queue.pop()
        for name in needs.get(programme_id, []):
            other = id_of.get(name)
            if other is not None and other not in wanted and other not in reported:
                wanted.add(other)
                queue.append(other)
    down: dict[str, list[tuple[datetime, datetime]]] = {}
    for history in histories:
        down[history.slug] = [(s.start, s.end or now) for s in history.spans if s.state == "down"]
    if wanted:
        bind = _bind_times(conn, {"start": start, "end": end})
        listed = ", ".join(str(int(i)) for i in sorted(wanted))
        for r in conn.execute(text(
                "SELECT programme_id, started_at, ended_at FROM state_interval WHERE endpoint_id IS NULL "
                f"AND state = 'down' AND programme_id IN ({listed}) AND started_at < :end "
                "AND (ended_at IS NULL OR ended_at > :start) ORDER BY programme_id, started_at"), bind):
            ended = read_utc(conn, r[2])
            down.setdefault(slug_of[r[0]], []).append((read_utc(conn, r[1]), ended or now))
    outages = {slug: [(a, b or now) for a, b in spans] for slug, spans in outages_between(conn, start, end).items()}
    depends_on = {slug_of[programme_id]: tuple(names) for programme_id, names in needs.items()}
    for history in histories:
        history.depends_on = depends_on.get(history.slug, ())
    return Dependencies(down, depends_on, outages, components(conn))


def _bind_times(conn: Connection, params: dict) -> dict:
    """Times and dates bound to text SQL in the form their columns store them (on SQLite,
    the text that compares in time order with what UTCDateTime and Date write)."""
    sqlite = conn.dialect.name == "sqlite"
    bound = {}
    for key, value in params.items():
        if isinstance(value, datetime):
            value = _TIME.process_bind_param(value, conn.dialect)
            if sqlite:
                value = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif isinstance(value, date) and sqlite:
            value = value.isoformat()
        bound[key] = value
    return bound


# --- capacity ---------------------------------------------------------------------------------


@dataclass
class CapacityInputs:
    """Everything the capacity report computes from."""

    sites: dict[str, str]  # code -> name, in report order
    resources: list[ResourceInput]
    history: dict[tuple[str, str], list[SnapshotPoint]]  # (cluster, resource) -> daily points
    allocations: list[tuple[str, str, str, str, int]]  # ministry, programme, cluster, resource, amount
    priced: list[tuple[str, str, str | None, int | None]]  # ministry, programme, plan, monthly LAK
    ministry_names: dict[str, str]
    approved: list[dict]
    submitted: list[dict]


def capacity_inputs(conn: Connection, *, site: str | None, history_since: date) -> CapacityInputs:
    """Capacity rows, allocations, pipeline, snapshot history and plan prices (one site or all)."""
    params: dict = {}
    site_filter = ""
    if site is not None:
        require(conn, "site", site)
        site_filter = "AND s.code = :site"
        params["site"] = site
    sites = dict(conn.execute(text(
        f"SELECT s.code, s.name FROM site s WHERE 1 = 1 {site_filter} ORDER BY s.role DESC, s.code"), params).all())
    # Programmes approved but not yet provisioned already hold their allocations (reserved at
    # approval): they are shown apart as pipeline, not added again. Every site is read, because
    # a submitted request may be placed at any site it did not rule out; the report then keeps `site`.
    rows = conn.execute(text(
        "SELECT c.name, s.code, k.resource, k.total, k.reserved, k.allocation_ratio, k.largest_host, "
        "COALESCE(SUM(a.amount), 0), "
        "COALESCE(SUM(CASE WHEN p.status IN ('approved', 'provisioning') THEN a.amount END), 0) "
        "FROM cluster_capacity k JOIN cluster c ON c.id = k.cluster_id JOIN site s ON s.id = c.site_id "
        "LEFT JOIN allocation a ON a.cluster_id = k.cluster_id AND a.resource = k.resource "
        "LEFT JOIN programme p ON p.id = a.programme_id "
        "GROUP BY c.name, s.code, k.resource, k.total, k.reserved, k.allocation_ratio, k.largest_host "
        "ORDER BY s.code, c.name, k.resource")).all()

    submitted_rows = conn.execute(text(
        "SELECT r.id, r.programme_slug, m.code, r.plan_id, r.site, pl.vcpu, pl.ram_gib, pl.storage_gib, "
        "pl.instances FROM hosting_request r JOIN ministry m ON m.id = r.ministry_id "
        "JOIN plan pl ON pl.id = r.plan_id WHERE r.state = 'submitted' ORDER BY r.id")).all()
    usage: dict[str, dict[str, ResourceUsage]] = defaultdict(dict)
    site_of: dict[str, str] = {}
    for r in rows:
        usage[r[0]][r[2]] = ResourceUsage(r[0], r[1], r[2], r[3], r[4], r[5], int(r[7]))
        site_of[r[0]] = r[1]
    # Submitted demand lands, for the forecast, where placement would put it today.
    submitted_demand: dict[tuple[str, str], int] = defaultdict(int)
    submitted = []
    for r in submitted_rows:
        needed = {name: amount * r[8] for name, amount in (("vcpu", r[5]), ("ram_gib", r[6]), ("storage_gib", r[7]))
                  if amount}
        candidates = {name: u for name, u in usage.items() if r[4] is None or site_of[name] == r[4]}
        cluster, _refusals = choose_cluster(needed, candidates)
        if cluster is not None:
            for resource, amount in needed.items():
                submitted_demand[(cluster, resource)] += amount
        if site is None or (site_of[cluster] if cluster is not None else r[4]) == site:
            submitted.append({"id": r[0], "programme": r[1], "ministry": r[2], "plan": r[3], "cluster": cluster})
    resources = [
        ResourceInput(cluster=r[0], site=r[1], resource=r[2], total=r[3], reserved=r[4], allocation_ratio=r[5],
                      largest_host=r[6], allocated=int(r[7]), pipeline_approved=int(r[8]),
                      pipeline_submitted=submitted_demand.get((r[0], r[2]), 0))
        for r in rows if site is None or r[1] == site
    ]
    approved = [
        {"id": r[0], "programme": r[1], "ministry": r[2], "plan": r[3], "cluster": r[4]}
        for r in conn.execute(text(
            # Every programme approved but not yet provisioned, whether a request or the inventory
            # approved it (the bars count both): `id` is its request's, or null.
            # One row per cluster that holds part of it, as each of those clusters' bars draws its tail.
            "SELECT MAX(r.id), p.slug, m.code, p.plan_id, c.name FROM programme p "
            "JOIN ministry m ON m.id = p.ministry_id LEFT JOIN hosting_request r ON r.programme_id = p.id "
            "LEFT JOIN allocation a ON a.programme_id = p.id LEFT JOIN cluster c ON c.id = a.cluster_id "
            "WHERE p.status IN ('approved', 'provisioning') GROUP BY p.id, p.slug, m.code, p.plan_id, c.name "
            "ORDER BY p.slug, c.name"))
        if site is None or site_of.get(r[4]) == site
    ]

    history: dict[tuple[str, str], list[SnapshotPoint]] = defaultdict(list)
    for r in conn.execute(text(
            "SELECT c.name, x.resource, x.taken_on, x.allocated FROM capacity_snapshot x "
            "JOIN cluster c ON c.id = x.cluster_id JOIN site s ON s.id = c.site_id "
            f"WHERE x.taken_on >= :since {site_filter} ORDER BY c.name, x.resource, x.taken_on"),
            _bind_times(conn, {**params, "since": history_since})):
        day = r[2] if isinstance(r[2], date) else date.fromisoformat(r[2])
        history[(r[0], r[1])].append(SnapshotPoint(_noon_utc(day), float(r[3])))

    allocations = [tuple(r) for r in conn.execute(text(
        "SELECT m.code, p.slug, c.name, a.resource, a.amount FROM allocation a "
        "JOIN programme p ON p.id = a.programme_id JOIN ministry m ON m.id = p.ministry_id "
        "JOIN cluster c ON c.id = a.cluster_id JOIN site s ON s.id = c.site_id "
        f"WHERE 1 = 1 {site_filter} ORDER BY m.code, p.slug"), params)]
    priced = [tuple(r) for r in conn.execute(text(
        "SELECT m.code, p.slug, p.plan_id, pl.monthly_cost_lak FROM programme p "
        "JOIN ministry m ON m.id = p.ministry_id LEFT JOIN plan pl ON pl.id = p.plan_id "
        "WHERE p.status NOT IN ('requested', 'retired') ORDER BY m.code, p.slug"))]
    ministry_names = dict(conn.execute(text("SELECT code, name FROM ministry")).all())
    return CapacityInputs(sites, resources, dict(history), allocations, priced, ministry_names, approved, submitted)


@lru_cache(maxsize=4096)
def _noon_utc(day: date) -> datetime:
    """A snapshot's day as one instant (the fit only needs the days evenly placed); every
    cluster resource shares the same days, hence the cache."""
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)


def snapshot_rows(conn: Connection) -> list[tuple[int, str, int, int, float, int]]:
    """Every cluster resource now: cluster_id, resource, total, reserved, ratio, allocated."""
    return [tuple(r) for r in conn.execute(text(
        "SELECT k.cluster_id, k.resource, k.total, k.reserved, k.allocation_ratio, "
        "COALESCE((SELECT SUM(a.amount) FROM allocation a WHERE a.cluster_id = k.cluster_id "
        "AND a.resource = k.resource), 0) FROM cluster_capacity k ORDER BY k.cluster_id, k.resource"))]


def snapshot_days(conn: Connection, *, since: date) -> set[date]:
    """The days that have a capacity snapshot."""
    return {r[0] if isinstance(r[0], date) else date.fromisoformat(r[0]) for r in conn.execute(
        text("SELECT DISTINCT taken_on FROM capacity_snapshot WHERE taken_on >= :since"),
        _bind_times(conn, {"since": since}))}

