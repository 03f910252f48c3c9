"""A realistic month for the report's looks: October 2026 in Vientiane, with outages, maintenance,
a major incident, a dependency's outage (the national ID service under e-CRVS; GFIS under e-Tax),
a programme far below its target, one with insufficient data and eight not monitored.

Hand-built report documents in the shape uptime_document() and capacity_document() give
(with the second wave's keys: status, short_name, attribution, major incidents, settings).
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone

DAY = 86_400.0
PERIOD = 31 * DAY
FIRST = date(2026, 10, 1)
VIENTIANE = timezone(timedelta(hours=7))
MINISTRIES = {
    "moha": "Ministry of Home Affairs", "moes": "Ministry of Education and Sports", "moh": "Ministry of Health",
    "mof": "Ministry of Finance", "molsw": "Ministry of Labour and Social Welfare",
    "moic": "Ministry of Industry and Commerce", "monre": "Ministry of Natural Resources and Environment",
}
TIERS = {1: ("Critical", 99.9), 2: ("Important", 99.5), 3: ("Standard", 99.0)}


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in October 2026 (Vientiane) as UTC."""
    return datetime(2026, 10, day, hour, minute, tzinfo=VIENTIANE).astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident(number, day, hour, minute, minutes, reason, *, own=None, dependencies=(), major=False, cause="",
             action="", attributed_to=None, record_status=None, budget=None, postmortem=None) -> dict:
    start = utc(day, hour, minute)
    seconds = minutes * 60.0
    dependency_seconds = sum(d["seconds"] for d in dependencies)
    return {
        "number": number, "start": iso(start), "end": iso(start + timedelta(seconds=seconds)), "seconds": seconds,
        "reason": reason, "major": major, "record_status": record_status, "cause": cause, "action": action,
        "attributed_to": attributed_to, "postmortem_url": postmortem, "error_budget_used_percent": budget,
        "attribution": {"own_seconds": seconds - dependency_seconds if own is None else own,
                        "dependency_seconds": dependency_seconds, "dependencies": list(dependencies),
                        "source": "operator" if attributed_to else "computed"},
    }


def days(down: dict[int, float] | None = None, maintenance: dict[int, float] | None = None,
         unknown: dict[int, float] | None = None) -> list[dict]:
    """31 local days, up but for the seconds given per day of the month (1-31)."""
    out = []
    for n in range(1, 32):
        d = {"down": (down or {}).get(n, 0.0), "maintenance": (maintenance or {}).get(n, 0.0),
             "unknown": (unknown or {}).get(n, 0.0)}
        out.append({"day": (FIRST + timedelta(days=n - 1)).isoformat(), "up": DAY - sum(d.values()), **d})
    return out


def programme(slug, name, short, ministry, tier, *, incidents=(), maintenance=0.0, unknown=0.0, day_rows=None,
              dependency=0.0, status=None, sla_basis="experienced") -> dict:
    tier_name, target = TIERS[tier]
    down = sum(i["seconds"] for i in incidents)
    counted = PERIOD - maintenance - unknown
    availability = (counted - down) / counted
    attributable = (counted - (down - dependency)) / counted
    budget = (1 - target / 100) * counted
    judged = attributable if sla_basis != "experienced" else availability
    coverage = (PERIOD - unknown) / PERIOD
    if status is None:
        status = "insufficient data" if coverage < 0.9 else "met" if judged * 100 >= target else "missed"
    return {
        "slug": slug, "name": name, "short_name": short, "ministry": ministry, "ministry_name": MINISTRIES[ministry],
        "tier": tier, "tier_name": tier_name, "target_percent": target, "availability": availability,
        "availability_attributable": attributable, "met": {"met": True, "missed": False}.get(status),
        "status": status, "sla_basis": sla_basis, "period_seconds": PERIOD, "up_seconds": counted - down,
        "downtime_seconds": down, "downtime_own_seconds": down - dependency, "downtime_dependency_seconds": dependency,
        "maintenance_seconds": maintenance, "late_maintenance_seconds": 0.0, "unknown_seconds": unknown,
        "coverage": coverage, "incident_count": len(incidents),
        "longest_incident_seconds": max((i["seconds"] for i in incidents), default=0.0),
        "mttr_seconds": down / len(incidents) if incidents else None,
        "mtbf_seconds": (counted - down) / len(incidents) if incidents else None,
        "error_budget_used_percent": round(100 * down / budget, 1), "partial": False,
        "incidents": list(incidents), "late_windows": [], "days": day_rows or days(),
    }


def _down_by_day(incidents) -> dict[int, float]:
    out: dict[int, float] = {}
    for i in incidents:
        start = datetime.fromisoformat(i["start"].replace("Z", "+00:00")).astimezone(VIENTIANE)
        end = start + timedelta(seconds=i["seconds"])
        while start < end:
            midnight = datetime(start.year, start.month, start.day, tzinfo=VIENTIANE) + timedelta(days=1)
            piece = min(end, midnight)
            if start.month == 10:
                out[start.day] = out.get(start.day, 0.0) + (piece - start).total_seconds()
            start = piece
    return out


def uptime_month() -> dict:
    """October 2026: 11 monitored programmes (7 met, 3 missed, 1 insufficient data), 8 not monitored."""
    id_service = {"name": "National ID service", "kind": "external", "seconds": 3600.0, "root": True}
    crvs_major = incident(
        41, 14, 9, 10, 60, "http: 503 from /api/v2/registrations", dependencies=[id_service], major=True,
        cause="The national ID service's verification API was down; every registration waits on it.",
        action="Registrations queued offline and replayed at 10:25; the ID service team now pages us.",
        attributed_to="external:National ID service", record_status="resolved", budget=134.4,
        postmortem="https://wiki.dc.gov.la/incidents/41")
    crvs_own = incident(44, 22, 2, 40, 30, "db: connection refused", budget=67.2, major=True,
                        cause="Database failover after a disk alarm.", action="Failed back; disk replaced.",
                        attributed_to="data-centre", record_status="resolved")
    lesmis_major = incident(
        38, 6, 7, 30, 1_700, "http: timeout after 10 s", major=True,
        cause="Storage array controller failure on vte-gen1; the LESMIS database volume went read-only.",
        action="Moved to the standby array; vendor replaced the controller on 8 Oct.",
        attributed_to="data-centre", record_status="monitoring", budget=1_021.6)
    gfis_major = incident(
        39, 9, 13, 5, 52, "http: 502 bad gateway", major=True, cause="A release of the ministry's application "
        "exhausted its connection pool.", action="Rolled back by the ministry's team; pool size reviewed.",
        attributed_to="ministry-application", record_status="resolved", budget=116.5)
    etax_dependency = {"name": "gfis", "kind": "hosted", "seconds": 35 * 60.0, "root": True}
    etax = incident(40, 9, 13, 10, 40, "http: 502 bad gateway", dependencies=[etax_dependency], budget=17.9)
    dhis2 = [incident(36, 3, 11, 0, 12, "tls: handshake timeout", budget=44.8)]
    minor = lambda n, d, h, m, reason="http: timeout": incident(n, d, h, 0, m, reason, budget=round(100 * m * 60 / 2678.4 / 5, 1))
    rows = [
        programme("e-crvs", "Electronic Civil Registration and Vital Statistics", "e-CRVS", "moha", 1,
                  incidents=[crvs_major, crvs_own], dependency=3600.0, maintenance=2 * 3600.0,
                  day_rows=days(_down_by_day([crvs_major, crvs_own]), maintenance={18: 7200.0})),
        programme("lesmis", "Lao Education and Sports Management Information System", "LESMIS", "moes", 2,
                  incidents=[lesmis_major], maintenance=4 * 3600.0,
                  day_rows=days(_down_by_day([lesmis_major]), maintenance={25: 4 * 3600.0})),
        programme("gfis", "Government Financial Information System", "GFIS", "mof", 1, incidents=[gfis_major],
                  maintenance=4 * 3600.0, day_rows=days(_down_by_day([gfis_major]), maintenance={25: 4 * 3600.0})),
        programme("e-tax", "Tax and revenue e-filing portal", "e-Tax", "mof", 2, incidents=[etax],
                  dependency=35 * 60.0, maintenance=4 * 3600.0,
                  day_rows=days(_down_by_day([etax]), maintenance={25: 4 * 3600.0}),
                  sla_basis="excluding external dependencies"),
        programme("dhis2", "District Health Information Software 2", "DHIS2", "moh", 1, incidents=dhis2,
                  day_rows=days(_down_by_day(dhis2))),
        programme("hospital-referral", "Provincial hospital referral and bed availability system", None, "moh", 2,
                  unknown=10 * DAY, incidents=[minor(37, 4, 8, 5)],
                  day_rows=days({4: 300.0}, unknown={n: DAY for n in range(20, 30)} | {30: 0.0})),
        programme("lsso", "Lao Social Security Organisation member services and contributions", None, "molsw", 2,
                  incidents=[minor(42, 16, 10, 9), minor(43, 17, 10, 14)], maintenance=3 * 3600.0,
                  day_rows=days({16: 540.0, 17: 840.0}, maintenance={11: 3 * 3600.0})),
        programme("lnsw", "Lao National Single Window", "LNSW", "moic", 1, maintenance=4 * 3600.0,
                  day_rows=days(maintenance={25: 4 * 3600.0})),
        programme("e-gp", "National electronic government procurement", "e-GP", "mof", 2, maintenance=4 * 3600.0,
                  day_rows=days(maintenance={25: 4 * 3600.0})),
        programme("land-registry", "Land registration and titling", None, "monre", 3, maintenance=3 * 3600.0,
                  day_rows=days(maintenance={11: 3 * 3600.0})),
        programme("emis", "Education Management Information System", "EMIS", "moes", 3,
                  incidents=[minor(45, 28, 15, 25, "http: 500")], day_rows=days({28: 1500.0})),
    ]
    # hospital-referral's day strip: unknown days carry no up time.
    for d in rows[5]["days"]:
        if d["unknown"] >= DAY:
            d["up"] = 0.0
    major = [
        {**i, "programme": p["slug"], "programme_name": p["name"], "short_name": p["short_name"],
         "ministry": p["ministry"], "ministry_name": p["ministry_name"]}
        for p in rows for i in p["incidents"] if i["major"]
    ]
    major.sort(key=lambda i: i["start"])
    statuses = [p["status"] for p in rows]
    not_monitored = [
        {"slug": slug, "name": name, "short_name": None, "ministry": ministry, "ministry_name": MINISTRIES[ministry],
         "tier": 3, "tier_name": "Standard", "target_percent": 99.0, "reason": reason, "period_seconds": PERIOD}
        for slug, name, ministry, reason in (
            ("agri-census", "Agricultural census data portal", "monre", "no check"),
            ("moha-hr", "Civil service human resources", "moha", "no check"),
            ("school-grants", "School block grants tracker", "moes", "no results"),
            ("pharma-reg", "Pharmaceutical product registration", "moh", "no check"),
            ("treasury-cash", "Treasury cash forecasting", "mof", "no check"),
            ("labour-market", "Labour market information system", "molsw", "no results"),
            ("trade-portal", "Lao trade portal", "moic", "no check"),
            ("env-permits", "Environmental permits", "monre", "no check"),
        )
    ]

    def rollup(members):
        up = sum(p["up_seconds"] for p in members)
        down = sum(p["downtime_seconds"] for p in members)
        own = sum(p["downtime_own_seconds"] for p in members)
        incidents = [i for p in members for i in p["incidents"]]
        return {
            "programmes": len(members), "programmes_monitored": len(members),
            "programmes_met": sum(p["status"] == "met" for p in members),
            "programmes_missed": sum(p["status"] == "missed" for p in members),
            "programmes_insufficient_data": sum(p["status"] == "insufficient data" for p in members),
            "availability": up / (up + down), "availability_attributable": (up + down - own) / (up + down),
            "coverage": sum(PERIOD - p["unknown_seconds"] for p in members) / (PERIOD * len(members)),
            "period_seconds": PERIOD * len(members), "up_seconds": up, "downtime_seconds": down,
            "downtime_own_seconds": own, "downtime_dependency_seconds": down - own,
            "maintenance_seconds": sum(p["maintenance_seconds"] for p in members), "late_maintenance_seconds": 0.0,
            "unknown_seconds": sum(p["unknown_seconds"] for p in members), "incident_count": len(incidents),
            "root_incident_count": len(incidents) - 1,  # e-Tax's counts under GFIS, its root
            "longest_incident_seconds": max((i["seconds"] for i in incidents), default=0.0),
            "mttr_seconds": down / len(incidents) if incidents else None,
            "mtbf_seconds": up / len(incidents) if incidents else None, "error_budget_used_percent": None,
        }

    ministries = []
    for code, name in MINISTRIES.items():
        members = [p for p in rows if p["ministry"] == code]
        if members:
            ministries.append({"code": code, "name": name, **rollup(members)})
    data_centre = {**rollup(rows), "programmes_not_monitored": len(not_monitored)}
    assert statuses.count("met") == 7 and statuses.count("missed") == 3, statuses
    cluster_members = ["lesmis", "gfis", "e-tax", "lnsw", "e-gp"]
    maintenance = [
        {"id": 7, "programme": None, "cluster": "vte-gen1", "start": iso(utc(25, 22)), "end": iso(utc(26, 2)),
         "recorded_at": iso(utc(20, 9)), "recorded_by": "ops.somchai", "change_ref": "CHG-2210",
         "reason": "storage array firmware", "announced": True, "programmes": cluster_members},
        {"id": 8, "programme": "e-crvs", "cluster": None, "start": iso(utc(18, 21)), "end": iso(utc(18, 23)),
         "recorded_at": iso(utc(15, 14)), "recorded_by": "ops.noy", "change_ref": "CHG-2198",
         "reason": "database minor upgrade", "announced": True, "programmes": ["e-crvs"]},
        {"id": 9, "programme": None, "cluster": "vte-db1", "start": iso(utc(11, 20)), "end": iso(utc(11, 23)),
         "recorded_at": iso(utc(7, 10)), "recorded_by": "ops.somchai", "change_ref": "CHG-2187",
         "reason": "kernel security patches", "announced": True, "programmes": ["lsso", "land-registry"]},
    ]
    # The document's days fix the strips: e-CRVS's 25 Oct maintenance is not on its own (it is not on vte-gen1).
    return {
        "kind": "uptime", "title": "Uptime report", "data_centre_name": "National Data Centre of the Lao PDR",
        "period": {"label": "2026-10", "start": "2026-09-30T17:00:00Z", "end": "2026-10-31T17:00:00Z",
                   "timezone": "Asia/Vientiane", "partial": False, "first_day": "2026-10-01",
                   "last_day": "2026-10-31"},
        "generated_at": "2026-11-01T02:00:00Z", "filters": {"ministry": None, "programme": None}, "frozen": None,
        "inputs_digest": "sha256:2:" + "5e" * 32, "data_centre": data_centre, "ministries": ministries,
        "programmes": rows, "not_monitored": not_monitored, "maintenance": maintenance,
        "major_incidents": major, "settings": {"min_coverage_percent": 90.0, "major_incident_budget_percent": 50.0},
    }


SECOND_WAVE_PROGRAMME_KEYS = ("short_name", "status", "availability_attributable", "downtime_own_seconds",
                              "downtime_dependency_seconds", "sla_basis")
SECOND_WAVE_INCIDENT_KEYS = ("number", "major", "record_status", "cause", "action", "attributed_to",
                             "postmortem_url", "error_budget_used_percent", "attribution")
SECOND_WAVE_ROLLUP_KEYS = ("programmes_monitored", "programmes_insufficient_data", "availability_attributable",
                           "downtime_own_seconds", "downtime_dependency_seconds", "root_incident_count",
                           "programmes_not_monitored")


def as_before_the_second_wave(document: dict) -> dict:
    """The same document as a report frozen before incident records and attribution: none of their keys."""
    old = copy.deepcopy(document)
    for key in ("major_incidents", "settings"):
        old.pop(key, None)
    for p in old["programmes"]:
        for key in SECOND_WAVE_PROGRAMME_KEYS:
            p.pop(key, None)
        for i in p["incidents"]:
            for key in SECOND_WAVE_INCIDENT_KEYS:
                i.pop(key, None)
    for p in old["not_monitored"]:
        p.pop("short_name", None)
    for rollup in [old["data_centre"], *old["ministries"]]:
        for key in SECOND_WAVE_ROLLUP_KEYS:
            rollup.pop(key, None)
    for window in old["maintenance"]:
        window.pop("programmes", None)
    return old


def _resource(resource, *, total, reserved, ratio, largest, allocated, status="green", forecast=None, approved=0,
              submitted=0, history_days=90, slope=0.0) -> dict:
    capacity = (total - reserved) * ratio
    n1 = largest * ratio if largest is not None else 0.0
    buffer = capacity * 0.1
    usable = float(max(0, int(capacity - n1 - buffer)))
    start = date(2026, 8, 3)
    history = [{"day": (start + timedelta(days=i)).isoformat(), "allocated": round(allocated - slope * (history_days - 1 - i))}
               for i in range(history_days)]
    return {
        "resource": resource, "total": total, "reserved": reserved, "allocation_ratio": ratio, "capacity": capacity,
        "largest_host": largest, "n_plus_one_reserve": n1, "n_plus_one_known": largest is not None,
        "buffer": buffer, "usable": usable, "allocated": allocated, "free": usable - allocated,
        "used_percent": round(100 * allocated / usable, 3) if usable else None, "pipeline_approved": approved,
        "pipeline_submitted": submitted,
        "after_pipeline_percent": round(100 * (allocated + submitted) / usable, 3) if usable else None,
        "forecast": {**(forecast or {"status": "not enough history", "slope_per_day": None, "days_left": None,
                                     "runs_out_on": None, "fitted_allocated_now": None}), "points": history_days},
        "status": status, "history": history,
    }


def capacity_month() -> dict:
    """1 Nov 2026: vte-gen1 amber on RAM, vte-db1 red on vCPU, a storage line 126 years out, an edge
    cluster too new to forecast, shared storage without host sizes, an approved programme on two clusters."""
    gen1 = [
        _resource("vcpu", total=160, reserved=16, ratio=4.0, largest=32, allocated=300, approved=16, submitted=24,
                  slope=0.6, forecast={"status": "ok", "slope_per_day": 0.6, "days_left": 150.7,
                                       "runs_out_on": "2027-03-31", "fitted_allocated_now": 300.0}),
        _resource("ram_gib", total=1536, reserved=96, ratio=1.0, largest=384, allocated=860, status="amber",
                  approved=32, submitted=64, slope=1.8,
                  forecast={"status": "ok", "slope_per_day": 1.8, "days_left": 102.6, "runs_out_on": "2027-02-11",
                            "fitted_allocated_now": 860.0}),
        _resource("storage_gib", total=40000, reserved=0, ratio=1.0, largest=None, allocated=12000, slope=0.02,
                  forecast={"status": "ok", "slope_per_day": 0.52, "days_left": 46_150.0, "runs_out_on": "2152-07-24",
                            "fitted_allocated_now": 12000.0}),
    ]
    db1 = [
        _resource("vcpu", total=64, reserved=8, ratio=2.0, largest=16, allocated=86, status="red", approved=8,
                  slope=0.2, forecast={"status": "exhausted", "slope_per_day": 0.2, "days_left": 0.0,
                                       "runs_out_on": "2026-11-01", "fitted_allocated_now": 86.0}),
        _resource("ram_gib", total=512, reserved=32, ratio=1.0, largest=128, allocated=280, status="amber",
                  approved=16, slope=0.5, forecast={"status": "ok", "slope_per_day": 0.5, "days_left": 45.2,
                                                    "runs_out_on": "2026-12-16", "fitted_allocated_now": 280.0}),
    ]
    edge = [
        _resource("vcpu", total=32, reserved=4, ratio=4.0, largest=16, allocated=10, history_days=4),
        _resource("storage_gib", total=8000, reserved=0, ratio=1.0, largest=None, allocated=900, history_days=4),
    ]
    return {
        "kind": "capacity", "title": "Capacity report", "data_centre_name": "National Data Centre of the Lao PDR",
        "generated_at": "2026-11-01T02:00:00Z", "timezone": "Asia/Vientiane", "filters": {"site": None},
        "settings": {"buffer_percent": 10.0, "red_days": 30.0, "amber_days": 120.0, "trend_days": 90},
        "sites": [
            {"code": "vte-dc1", "name": "National Data Centre, Vientiane", "clusters": [
                {"name": "vte-gen1", "status": "amber", "binding_resource": "ram_gib", "first_to_run_out": "ram_gib",
                 "earliest_run_out": "2027-02-11", "resources": gen1},
                {"name": "vte-db1", "status": "red", "binding_resource": "vcpu", "first_to_run_out": "vcpu",
                 "earliest_run_out": "2026-11-01", "resources": db1}]},
            {"code": "lpq-dc2", "name": "Luang Prabang edge site", "clusters": [
                {"name": "lpq-edge1", "status": "green", "binding_resource": "storage_gib", "first_to_run_out": None,
                 "earliest_run_out": None, "resources": edge}]},
        ],
        "top_consumers": {
            "vcpu": {"ministries": [{"code": "moh", "amount": 120}, {"code": "mof", "amount": 96}],
                     "programmes": [{"slug": "dhis2", "ministry": "moh", "amount": 64},
                                    {"slug": "gfis", "ministry": "mof", "amount": 48}]},
            "ram_gib": {"ministries": [{"code": "moh", "amount": 512}],
                        "programmes": [{"slug": "dhis2", "ministry": "moh", "amount": 256}]},
        },
        "cost": {"currency": "LAK", "ministries": [
            {"code": "moh", "name": "Ministry of Health", "monthly_lak": 45_000_000, "programmes": 4,
             "unpriced": ["legacy-lab"]},
            {"code": "mof", "name": "Ministry of Finance", "monthly_lak": 78_000_000, "programmes": 3, "unpriced": []},
        ], "total_lak": 123_000_000},
        "pipeline": {
            "approved": [
                {"id": 3, "programme": "school-grants", "ministry": "moes", "plan": "vm-medium", "cluster": "vte-gen1"},
                {"id": None, "programme": "hr-records", "ministry": "moha", "plan": "db-small", "cluster": "vte-db1"},
            ],
            "submitted": [{"id": 5, "programme": "customs-risk", "ministry": "mof", "plan": "db-large",
                           "cluster": "vte-gen1"}],
        },
    }
