"""Report documents: inputs gathered, maths run, plain JSON-ready documents built; freezing, history, snapshots."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Float, Integer, String, column, delete, insert, select, table, update
from sqlalchemy.engine import Connection

from dcops.access import Actor, as_actor, authorize
from dcops import collector
from dcops.audit import Event, record
from dcops.db import Database, UTCDateTime, epoch_us, iso_utc, utcnow
from dcops.errors import NotFound, UserError
from dcops.reports import attribution
from dcops.reports import capacity as capacity_maths
from dcops.reports import uptime as uptime_maths
from dcops.reports.queries import (capacity_inputs, dependency_inputs, snapshot_days, snapshot_rows,
                                   uptime_inputs)
from dcops.settings import DEFAULT_MAJOR_INCIDENT_BUDGET_PERCENT, DEFAULT_MIN_COVERAGE_PERCENT

# The two tables this module writes, as light table clauses: the models (SQLModel, pydantic)
# cost a fifth of a second to import, a quarter of a capacity report's time from the CLI.
# tests/test_reports.py holds these to the models' columns.
T_FROZEN = table(
    "frozen_report", column("id", Integer), column("kind", String), column("period", String),
    column("scope", String), column("frozen_at", UTCDateTime), column("frozen_by", String),
    column("inputs_digest", String), column("document", String),
)
T_SNAPSHOT = table(
    "capacity_snapshot", column("cluster_id", Integer), column("resource", String), column("taken_on", Date),
    column("total", Integer), column("reserved", Integer), column("allocation_ratio", Float),
    column("allocated", Integer), column("taken_at", UTCDateTime),
)

# The figures compared between a frozen report and the same report computed again.
# (A figure a report frozen before it existed does not have is not compared.)
COMPARED_FIGURES = ("availability", "met", "downtime_seconds", "maintenance_seconds", "late_maintenance_seconds",
                    "unknown_seconds", "incident_count", "availability_attributable", "downtime_own_seconds",
                    "status")


@dataclass(frozen=True)
class Period:
    """A report period: its label and its bounds in UTC, cut at local midnights."""

    label: str
    start: datetime
    end: datetime
    first_day: date
    last_day: date


def resolve_period(period: str | None, date_from: str | None, date_to: str | None, tz: ZoneInfo,
                   *, now: datetime | None = None) -> Period:
    """`--period YYYY-MM`, or `--from D --to D` (both days included); exactly one of the two forms.

    With `now`, a period that has not begun is refused: it has nothing to report, not a partial report.
    """
    if period is not None and (date_from is not None or date_to is not None):
        raise UserError("give --period YYYY-MM or --from/--to, not both")
    if period is not None:
        try:
            start, end = uptime_maths.period_bounds(period, tz)
        except ValueError as error:
            raise UserError(f"--period: {error}") from None
        label = period
    elif date_from is not None and date_to is not None:
        try:
            first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
        except ValueError:
            raise UserError(f"--from/--to: dates are YYYY-MM-DD, not {date_from!r} and {date_to!r}") from None
        try:
            start, end = uptime_maths.range_bounds(first, last, tz)
        except ValueError as error:
            raise UserError(f"--from/--to: {error}") from None
        if last - first > timedelta(days=366):
            raise UserError("--from/--to: at most a year (366 days)")
        label = f"{first.isoformat()}..{last.isoformat()}"
    else:
        raise UserError("give --period YYYY-MM, or --from YYYY-MM-DD and --to YYYY-MM-DD")
    if now is not None and start > now:
        option = "--period" if period is not None else "--from"
        raise UserError(f"{option}: {label} has not begun (it starts on {start.astimezone(tz).date().isoformat()} "
                        f"in {tz.key}): nothing to report yet")
    return Period(label, start, end, start.astimezone(tz).date(), (end.astimezone(tz) - timedelta(days=1)).date())


# What the inputs digest covers changed with the service span and the read-time rule; a report
# frozen before carries a bare "sha256:" digest, which can only be compared by its figures.
# The digest covers the dependencies, external outages and operators' attributions since form 3.
DIGEST_PREFIX = "sha256:3:"


def _digest(data) -> str:
    return DIGEST_PREFIX + hashlib.sha256(canonical_json(data).encode()).hexdigest()


def canonical_json(data) -> str:
    """The one JSON form documents are stored and digested in: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def uptime_document(conn: Connection, period: Period, *, tz: ZoneInfo, now: datetime, data_centre_name: str,
                    ministry: str | None = None, programme: str | None = None,
                    min_coverage_percent: float = DEFAULT_MIN_COVERAGE_PERCENT,
                    major_incident_budget_percent: float = DEFAULT_MAJOR_INCIDENT_BUDGET_PERCENT) -> dict:
    """The uptime (SLA) report of one period: per programme, per ministry and for the data centre.

    Each programme's downtime is split by cause (its own, or through what it depends on); its
    availability is given as experienced and as attributable to it, and its SLA is judged on the
    experienced figure unless its tier (or itself) leaves third-party dependency time out.
    """
    with collector.paused():
        return _uptime_document(conn, period, tz=tz, now=now, data_centre_name=data_centre_name, ministry=ministry,
                                programme=programme, min_coverage_percent=min_coverage_percent,
                                major_incident_budget_percent=major_incident_budget_percent)


def _uptime_document(conn: Connection, period: Period, *, tz: ZoneInfo, now: datetime, data_centre_name: str,
                     ministry: str | None, programme: str | None, min_coverage_percent: float,
                     major_incident_budget_percent: float) -> dict:
    histories, windows = uptime_inputs(conn, start=period.start, end=period.end, now=now, ministry=ministry,
                                       programme=programme)
    dependencies = dependency_inputs(conn, histories, start=period.start, end=period.end, now=now)
    causes = attribution.cause_timelines(dependencies.down, dependencies.depends_on, dependencies.outages)
    third_party = frozenset(slug for slug, c in dependencies.components.items() if c["run_by"] == "third-party")
    measured_end = min(period.end, now)
    figures = []
    by_ministry: dict[str, list] = {}
    programmes = []
    not_monitored = []
    major_incidents = []
    digest_input = []
    for history in histories:
        result = uptime_maths.programme_uptime(history.spans, history.windows, start=period.start, end=period.end,
                                               now=now, target_percent=history.target_percent, tz=tz,
                                               service_start=history.service_start, service_end=history.service_end)
        described = {"slug": history.slug, "name": history.name, "short_name": history.short_name,
                     "ministry": history.ministry, "ministry_name": history.ministry_name, "tier": history.tier,
                     "tier_name": history.tier_name}
        served_from = max(history.service_start, period.start)
        served_to = measured_end if history.service_end is None else min(history.service_end, measured_end)
        if result.up_seconds + result.downtime_seconds == 0:
            # No up or down time at all: listed apart, never mixed into the figures as 100 % or 0 %.
            not_monitored.append({**described, "target_percent": history.target_percent,
                                  "reason": "no results" if history.has_checks else "no check",
                                  "period_seconds": result.period_seconds})
            digest_input.append([history.slug, "not monitored"])
            continue
        judged = _attributed(history, result, causes.get(history.slug, []), third_party=third_party,
                             min_coverage_percent=min_coverage_percent,
                             major_incident_budget_percent=major_incident_budget_percent)
        figures.append((result, judged))
        by_ministry.setdefault(history.ministry, []).append((history, result, judged))
        entry = {**described, **result.as_dict(incidents=False), **judged["figures"]}
        programmes.append(entry)
        major_incidents += [{**incident, "programme": history.slug, "programme_name": history.name,
                             "short_name": history.short_name, "ministry": history.ministry}
                            for incident in entry["incidents"] if incident["major"]]
        # Times as Unix microseconds: as exact as text, and a year of spans digests in a tenth the time.
        # Only a downtime's reason is a figure (it names the incident); the others are notes.
        digest_input.append([
            history.slug, history.name, history.ministry, history.tier, history.target_percent,
            [epoch_us(served_from), epoch_us(max(served_to, served_from))],
            [[s.state, epoch_us(max(s.start, served_from)), epoch_us(min(s.end or served_to, served_to)),
              s.reason if s.state == "down" else ""]
             for s in history.spans if s.start < served_to and (s.end is None or s.end > served_from)],
            [[w.id, epoch_us(w.start), epoch_us(w.end), epoch_us(w.recorded_at)] for w in history.windows],
            # Attribution as its outcome: the graph of dependencies and other programmes' history
            # change later without changing this period's figures.
            [history.excludes_external, judged["digest"]],
        ])
    ministries = []
    for code, members in by_ministry.items():
        summary = uptime_maths.rollup([result for _h, result, _j in members], with_days=False)
        ministries.append({"code": code, "name": members[0][0].ministry_name,
                           **_without_days(summary.as_dict()), **_judged_rollup([j for _h, _r, j in members])})
    overall = uptime_maths.rollup([result for result, _j in figures], with_days=False)
    data_centre = {**_without_days(overall.as_dict()),
                   **_judged_rollup([judged for _r, judged in figures]),
                   "programmes_not_monitored": len(not_monitored)}
    major_incidents.sort(key=lambda i: (i["start"], i["programme"]))
    return {
        "kind": "uptime",
        "title": "Uptime report",
        "data_centre_name": data_centre_name,
        "period": {"label": period.label, "start": iso_utc(period.start), "end": iso_utc(period.end),
                   "timezone": tz.key, "partial": now < period.end, "first_day": period.first_day.isoformat(),
                   "last_day": period.last_day.isoformat()},
        "generated_at": iso_utc(now),
        "filters": {"ministry": ministry, "programme": programme},
        "settings": {"min_coverage_percent": min_coverage_percent,
                     "major_incident_budget_percent": major_incident_budget_percent},
        "frozen": None,
        "inputs_digest": _digest({"period": [iso_utc(period.start), iso_utc(measured_end)], "timezone": tz.key,
                                  "programmes": digest_input,
                                  "settings": [min_coverage_percent, major_incident_budget_percent]}),
        "data_centre": data_centre,
        "ministries": ministries,
        "major_incidents": major_incidents,
        "programmes": programmes,
        "not_monitored": not_monitored,
        "maintenance": [listed.as_dict() for listed in windows],
    }


def judging(settings) -> dict:
    """The settings that judge an uptime report's programmes and incidents, as uptime_document takes them."""
    return {"min_coverage_percent": settings.min_coverage_percent,
            "major_incident_budget_percent": settings.major_incident_budget_percent}


def _operator_attribution(value: str | None) -> tuple[str, str, str] | None:
    """An incident record's `attributed_to` as attribution.split takes it."""
    if not value:
        return None
    if value in ("data-centre", "ministry-application"):
        return ("own", value, value)
    kind, _, slug = value.partition(":")
    if kind == "external":
        return (attribution.EXTERNAL, slug, slug)
    if kind == "dependency":
        return (attribution.HOSTED, slug, slug)
    return None


def _record_for(records: list, starts: list, incident) -> object | None:
    """The incident record a computed incident lies in: records are disjoint, sorted by start
    (`starts`), and hold their stretches, so it is the last to begin at or before it, if it
    reaches it; else the first to overlap it (a record the history has not caught up with)."""
    k = bisect_right(starts, incident.start) - 1
    if k >= 0 and (records[k].ended_at is None or records[k].ended_at >= incident.end):
        return records[k]
    for row in records[max(k, 0):]:
        if row.started_at >= incident.end:
            break
        if row.ended_at is None or row.ended_at > incident.start:
            return row
    return None


def _attributed(history, result, causes, *, third_party, min_coverage_percent,
                major_incident_budget_percent) -> dict:
    """A programme's figures by cause, its status, and its incidents annotated: the document's keys,
    what the roll-ups add up, and what the digest covers."""
    budget = result.error_budget_seconds
    incidents, own, dependency, excluded, roots, digest = [], 0.0, 0.0, 0.0, set(), []
    record_starts = [row.started_at for row in history.incidents]
    # Causes are disjoint and in time order: each incident is set against the few it overlaps.
    cause_ends = [cause.end for cause in causes]
    for incident, plain in zip(result.incidents, (i.as_dict() for i in result.incidents)):
        row = _record_for(history.incidents, record_starts, incident)
        operator = _operator_attribution(row.attributed_to if row is not None else None)
        lo, hi = attribution.us(incident.start), attribution.us(incident.end)
        first = bisect_right(cause_ends, lo)
        if operator is None and not history.depends_on:
            # Nothing it needs, no operator's word: all its own, the outage named as its dependants
            # name it (by the start of its stretch of down time). Most incidents, at a fraction of a split.
            roots.add((history.slug, causes[first].down_start if first < len(causes) else lo))
            own += incident.seconds
            counted = incident.seconds
            described = {"own_seconds": plain["seconds"], "dependency_seconds": 0.0, "dependencies": [],
                         "source": "computed"}
            digest.append([None, incident.seconds, [], 0.0])
        else:
            last = first
            while last < len(causes) and causes[last].start < hi:
                last += 1
            mine = attribution.all_own(history.slug, lo, hi, causes[first:last]) if operator is None else None
            if mine is not None:
                # Nothing it needs was down meanwhile: what split gives (all its own, one root),
                # without making a Split; most incidents of a programme that needs others.
                roots.add(mine)
                own += (hi - lo) / 1_000_000
                counted = incident.seconds
                described = {"own_seconds": plain["seconds"], "dependency_seconds": 0.0, "dependencies": [],
                             "source": "computed"}
                digest.append([row.attributed_to if row is not None else None, (hi - lo) / 1_000_000, [], 0.0])
            else:
                split = attribution.split(history.slug, incident.start, incident.end, causes[first:last],
                                          third_party=third_party, operator=operator)
                own += split.own_seconds
                dependency += split.dependency_seconds
                left_out = split.external_root_seconds if history.excludes_external else 0.0
                excluded += left_out
                roots |= split.roots
                counted = incident.seconds - left_out
                described = split.as_dict()
                digest.append([row.attributed_to if row is not None else None, split.own_seconds,
                               [[d["name"], d["kind"], d["root"], d["seconds"]] for d in split.dependencies],
                               split.external_root_seconds])
        incidents.append({
            **plain,
            "number": row.id if row is not None else None,
            "record_status": row.status if row is not None else None,
            "title": row.title if row is not None else "",
            "cause": row.cause if row is not None else "",
            "action": row.action if row is not None else "",
            "attributed_to": row.attributed_to if row is not None else None,
            "postmortem_url": row.postmortem_url if row is not None else None,
            "major": attribution.is_major(counted, budget, threshold_percent=major_incident_budget_percent),
            "error_budget_used_percent": uptime_maths._round_percent(100 * counted / budget) if budget > 0 else None,
            "attribution": described,
        })
    counted_seconds = result.up_seconds + result.downtime_seconds
    met = result.met
    error_budget_used = result.error_budget_used_percent
    if history.excludes_external and excluded:
        basis = attribution.availability(counted_seconds, result.downtime_seconds - excluded)
        met = None if basis is None else basis * 100 >= result.target_percent - uptime_maths.EPSILON
        error_budget_used = 100 * (result.downtime_seconds - excluded) / budget if budget > 0 else None
    coverage_short = result.coverage is not None and result.coverage * 100 < min_coverage_percent - 1e-9
    status = "missed" if met is False else "met"
    if coverage_short:
        # Too little of the period was measured to judge it, unless the downtime seen would miss
        # even were every unmeasured minute up: more than the whole period's budget (T - M).
        whole_budget = uptime_maths._allowed_seconds(result.target_percent,
                                                     result.period_seconds - result.maintenance_seconds)
        counted_down = result.downtime_seconds - (excluded if history.excludes_external else 0.0)
        status = "missed" if counted_down > whole_budget + 1e-9 else "insufficient data"
    figures = {
        "met": met,
        "status": status,
        "sla_basis": "excluding external dependencies" if history.excludes_external else "experienced",
        "error_budget_used_percent": uptime_maths._round_percent(error_budget_used),
        "availability_attributable": uptime_maths._round_ratio(attribution.availability(counted_seconds, own)),
        "downtime_own_seconds": uptime_maths._round_seconds(own),
        "downtime_dependency_seconds": uptime_maths._round_seconds(dependency),
        "downtime_excluded_seconds": uptime_maths._round_seconds(excluded),
        "depends_on": list(history.depends_on),
        "incidents": incidents,
    }
    return {"figures": figures, "digest": digest, "own": own, "dependency": dependency, "roots": roots,
            "counted": counted_seconds, "status": status}


def _judged_rollup(members: list[dict]) -> dict:
    """What a roll-up adds by cause: the programmes by status, the time by cause, and the outages
    counted once each, under their roots (an outage of the ID service that took e-CRVS down is one)."""
    counted = sum(m["counted"] for m in members)
    own = sum(m["own"] for m in members)
    roots = set().union(*(m["roots"] for m in members)) if members else set()
    return {
        "programmes_monitored": len(members),
        "programmes_met": sum(1 for m in members if m["status"] == "met"),
        "programmes_missed": sum(1 for m in members if m["status"] == "missed"),
        "programmes_insufficient_data": sum(1 for m in members if m["status"] == "insufficient data"),
        "availability_attributable": uptime_maths._round_ratio(attribution.availability(counted, own)),
        "downtime_own_seconds": uptime_maths._round_seconds(own),
        "downtime_dependency_seconds": uptime_maths._round_seconds(sum(m["dependency"] for m in members)),
        "root_incident_count": len(roots),
    }


def _without_days(summary: dict) -> dict:
    """Roll-ups are tables in the report; the daily strips belong to programmes."""
    return {k: v for k, v in summary.items() if k != "days"}


def capacity_document(conn: Connection, *, tz: ZoneInfo, now: datetime, data_centre_name: str,
                      site: str | None = None, buffer_percent: float = capacity_maths.DEFAULT_BUFFER_PERCENT,
                      red_days: float = capacity_maths.RED_DAYS, amber_days: float = capacity_maths.AMBER_DAYS,
                      trend_days: int = capacity_maths.DEFAULT_TREND_DAYS) -> dict:
    """The capacity report: per site, cluster and resource, with run-out forecasts, consumers and cost."""
    if not 0 <= buffer_percent < 100:
        raise UserError(f"--buffer: a percentage from 0 to 100, not {buffer_percent:g}")
    if not (math.isfinite(amber_days) and 0 < red_days <= amber_days):
        raise UserError(f"--red-days ({red_days:g}) must be more than 0 and at most --amber-days ({amber_days:g}), "
                        "a number of days")
    if not 2 <= trend_days <= capacity_maths.MAX_TREND_DAYS:
        raise UserError(f"--trend-days: from 2 to {capacity_maths.MAX_TREND_DAYS}")
    today = now.astimezone(tz).date()
    inputs = capacity_inputs(conn, site=site, history_since=today - timedelta(days=trend_days))
    clusters: dict[tuple[str, str], list] = {}
    for resource in inputs.resources:
        figures = capacity_maths.resource_figures(resource, buffer_percent=buffer_percent)
        points = inputs.history.get((resource.cluster, resource.resource), [])
        forecast = capacity_maths.forecast(points, usable=figures.usable, now=now)
        clusters.setdefault((resource.site, resource.cluster), []).append((figures, forecast, points))
    sites = []
    for code, name in inputs.sites.items():
        entries = []
        for (site_code, cluster), members in clusters.items():
            if site_code != code:
                continue
            summary = capacity_maths.cluster_summary({f.resource: f for f, _fc, _p in members},
                                                     {f.resource: fc for f, fc, _p in members},
                                                     red_days=red_days, amber_days=amber_days)
            resources = []
            for figures, forecast, points in sorted(members, key=lambda m: capacity_maths.RESOURCE_ORDER.index(
                    m[0].resource) if m[0].resource in capacity_maths.RESOURCE_ORDER else 99):
                resources.append({
                    **figures.as_dict(),
                    "forecast": {**forecast.as_dict(), "points": len(points)},
                    "status": summary.resource_statuses[figures.resource],
                    "history": [{"day": p.at.date().isoformat(), "allocated": p.allocated} for p in points],
                })
            entries.append({"name": cluster, "status": summary.status, "binding_resource": summary.binding_resource,
                            "first_to_run_out": summary.first_to_run_out,
                            "earliest_run_out": summary.runs_out_on.isoformat() if summary.runs_out_on else None,
                            "resources": resources})
        sites.append({"code": code, "name": name, "clusters": entries})
    top = capacity_maths.top_consumers(inputs.allocations)
    cost = capacity_maths.monthly_cost(inputs.priced)
    return {
        "kind": "capacity",
        "title": "Capacity report",
        "data_centre_name": data_centre_name,
        "generated_at": iso_utc(now),
        "timezone": tz.key,
        "filters": {"site": site},
        "settings": {"buffer_percent": buffer_percent, "red_days": red_days, "amber_days": amber_days,
                     "trend_days": trend_days},
        "sites": sites,
        "top_consumers": {
            resource: {"ministries": [{"code": c, "amount": a} for c, a in lists["ministries"]],
                       "programmes": [{"slug": s, "ministry": m, "amount": a} for s, m, a in lists["programmes"]]}
            for resource, lists in top.items()
        },
        "cost": {
            "currency": "LAK",
            "ministries": [{"code": m.ministry, "name": inputs.ministry_names.get(m.ministry, ""),
                            "monthly_lak": m.total_lak, "programmes": m.programme_count,
                            "unpriced": list(m.without_plan)} for m in cost.ministries],
            "total_lak": cost.total_lak,
        },
        "pipeline": {"approved": inputs.approved, "submitted": inputs.submitted},
    }


# --- freezing and history -----------------------------------------------------------------------


def freeze(database: Database, document: dict, *, actor: "Actor | str | None" = None,
           now: datetime | None = None) -> dict:
    """Store an uptime document as issued; returns it with its `frozen` stamp, as stored."""
    operator = as_actor(actor)
    authorize(operator, "report.freeze")
    actor = operator.name
    now = now or utcnow()
    filters = document["filters"]
    scope = ",".join(f"{k}={v}" for k, v in sorted(filters.items()) if v is not None)
    with database.transaction(immediate=True) as conn:
        report_id = conn.execute(insert(T_FROZEN).values(
            kind=document["kind"], period=document["period"]["label"], scope=scope, frozen_at=now, frozen_by=actor,
            inputs_digest=document["inputs_digest"], document="",
        ).returning(T_FROZEN.c.id)).scalar_one()
        frozen = {**document, "frozen": {"id": report_id, "inputs_digest": document["inputs_digest"],
                                          "frozen_at": iso_utc(now), "frozen_by": actor}}
        conn.execute(update(T_FROZEN).where(T_FROZEN.c.id == report_id).values(document=canonical_json(frozen)))
        record(conn, Event(actor, "report.frozen", "report", str(report_id), None,
                           {"kind": document["kind"], "period": document["period"]["label"], "scope": scope,
                            "inputs_digest": document["inputs_digest"]}))
    return frozen


def frozen_document(conn: Connection, report_id: int) -> dict:
    """A frozen report's document, exactly as stored."""
    row = conn.execute(select(T_FROZEN.c.document).where(T_FROZEN.c.id == report_id)).first()
    if row is None:
        raise NotFound(f"no frozen report {report_id} (see `dcops report history`)")
    return json.loads(row[0])


def history(conn: Connection, *, tz: ZoneInfo, now: datetime, data_centre_name: str,
            period: str | None = None) -> list[dict]:
    """Frozen reports, each compared with the same report computed again now."""
    query = select(T_FROZEN).order_by(T_FROZEN.c.id)
    if period is not None:
        query = query.where(T_FROZEN.c.period == period)
    entries = []
    recomputed: dict[tuple, dict] = {}  # reports frozen again for the same period and scope compute once
    for row in conn.execute(query).all():
        frozen = json.loads(row.document)
        key = (frozen["period"]["label"], frozen["period"]["timezone"], tuple(sorted(frozen["filters"].items())))
        if key not in recomputed:
            recomputed[key] = uptime_document(
                conn, _period_of(frozen), tz=ZoneInfo(frozen["period"]["timezone"]), now=now,
                data_centre_name=data_centre_name, **frozen["filters"], **frozen.get("settings", {}))
        again = recomputed[key]
        changes = compare(frozen, again)
        entries.append({
            "id": row.id, "kind": row.kind, "period": row.period, "scope": row.scope,
            "frozen_at": iso_utc(row.frozen_at), "frozen_by": row.frozen_by,
            "inputs_digest": row.inputs_digest, "current_digest": again["inputs_digest"],
            "status": "unchanged" if _same_inputs(row.inputs_digest, again["inputs_digest"]) and not changes
            else "changed",
            # Frozen before its period ended: later figures differ because more time has passed.
            "frozen_partial": bool(frozen["period"]["partial"]),
            "changes": changes,
        })
    return entries


def _same_inputs(frozen_digest: str, current_digest: str) -> bool:
    """Whether the inputs are the same; a digest of an older form (another prefix) cannot say, and
    the figures alone decide."""
    if not frozen_digest.startswith(DIGEST_PREFIX):
        return True
    return frozen_digest == current_digest


def _period_of(document: dict) -> Period:
    period = document["period"]
    return Period(period["label"], datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"]),
                  date.fromisoformat(period["first_day"]), date.fromisoformat(period["last_day"]))


def compare(frozen: dict, again: dict) -> list[dict]:
    """Figures that differ between two uptime documents: programme, figure, then and now."""
    before = {p["slug"]: p for p in frozen["programmes"]}
    after = {p["slug"]: p for p in again["programmes"]}
    # A programme without data is listed apart (and frozen reports from before that list had none).
    reported_before = before.keys() | {p["slug"] for p in frozen.get("not_monitored", [])}
    reported_after = after.keys() | {p["slug"] for p in again.get("not_monitored", [])}
    changes = []
    for slug in sorted(reported_before | reported_after):
        for figure, then, now in (("reported", slug in reported_before, slug in reported_after),
                                  ("monitored", slug in before, slug in after)):
            if then != now:
                changes.append({"programme": slug, "figure": figure, "frozen": then, "now": now})
                break
        if slug not in after or slug not in before:
            continue
        for figure in COMPARED_FIGURES:
            if figure not in before[slug]:
                continue
            if before[slug].get(figure) != after[slug].get(figure):
                changes.append({"programme": slug, "figure": figure, "frozen": before[slug].get(figure),
                                "now": after[slug].get(figure)})
    return changes


# --- capacity snapshots -------------------------------------------------------------------------


def take_capacity_snapshot(database: Database, *, tz: ZoneInfo, now: datetime | None = None) -> tuple[date, int]:
    """Record what every cluster resource holds today (local date); taken again the same day, it replaces."""
    now = now or utcnow()
    today = now.astimezone(tz).date()
    with database.transaction(immediate=True) as conn:
        rows = snapshot_rows(conn)
        conn.execute(delete(T_SNAPSHOT).where(T_SNAPSHOT.c.taken_on == today))
        if rows:
            conn.execute(insert(T_SNAPSHOT), [
                {"cluster_id": cluster_id, "resource": resource, "taken_on": today, "total": total,
                 "reserved": reserved, "allocation_ratio": ratio, "allocated": int(allocated), "taken_at": now}
                for cluster_id, resource, total, reserved, ratio, allocated in rows
            ])
    return today, len(rows)


def snapshot_due(database: Database, *, tz: ZoneInfo, now: datetime | None = None) -> bool:
    """True when today (local date) has no capacity snapshot yet."""
    today = (now or utcnow()).astimezone(tz).date()
    with database.transaction() as conn:
        return today not in snapshot_days(conn, since=today)

