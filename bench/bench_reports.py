"""Benchmark of the reports: the uptime (SLA) report over a year of history, the capacity report.

What it measures (wall time with time.perf_counter, SQLite in a temp dir; in-process figures are
the median of several runs after one warm-up, each run after gc.collect()):

1. The uptime report for 200 programmes over a year of 1-minute probe history. Target: <= 2 s.
   The database is bench_health.history_database(root, "year", 200, days=365, outages_per_week=0.75,
   seed=7): 200 programmes (300 checks, on 3 of 4 clusters), programme-level and check-level state
   intervals of a year (random outages, prober-wide unknown gaps, a few programmes down now), plus
   maintenance windows written straight into maintenance_window (bench_health.bulk_insert, times as
   SQLAlchemy stores them): about 2 a month per programme and per cluster, mostly at local night,
   30 min to 4 h; about 90 % announced (recorded 1 to 14 days ahead), about 10 % recorded late
   (after they started), about 5 % cancelled, a few upcoming ones after now.
   a. the library path for the last full month (Asia/Vientiane): uptime_document(conn, period, ...)
      inside database.transaction() ("query + maths"; uptime_inputs alone is printed as well), then
      render(doc, "html"); and, for information, render to md, json and csv;
   b. the same for a whole year: --from/--to spanning the 365 days up to yesterday (the maths
      builds one daily strip cell per programme per day: 73,000 cells);
   c. `python3 -m dcops report uptime --period YYYY-MM --format html -o FILE` end to end, as a new
      process (interpreter start-up included), DCOPS_HOME / DCOPS_DATABASE_URL on the bench database.
   The 2 s target applies to (a) (query + maths + HTML) and (c) for the month, and, the strict
   reading of "over a year", to (b).
2. The capacity report for 50 clusters with a year of daily snapshots. Target: <= 1 s.
   A generated inventory (load_directory): 2 sites, 50 clusters (vcpu, ram_gib, storage_gib; N+1
   largest_host for vcpu and ram_gib), 500 programmes on catalogue plans (the sample's catalogue.yaml,
   about 10 % on no plan), one allocation each on one cluster, every cluster under its capacity;
   then 365 daily capacity_snapshot rows per cluster resource (54,750 rows) with trends: growing
   (linear + noise), flat, falling, a few about to run out (red by construction), one over its
   safe line. Timed: capacity_document(conn, ..., trend_days=365) + render(doc, "html"), and
   `python3 -m dcops report capacity --trend-days 365 --format html -o FILE` end to end.
   The red/amber/green counts and the forecasts' statuses are printed.
3. The sizes of the HTML outputs: the month's must stay under 2 MB; the year's and the capacity
   report's are printed.

The CLI runs as `sys.executable -m dcops` (no shell shim measured), one untimed warm-up first.
PYTHONDONTWRITEBYTECODE is removed from the environment of every subprocess (benchlib.clean_env),
so that .pyc files are written once (warm-up) and reused, as on an installed system.

The script exits 1 when a target is missed, a command fails (its stderr is printed) or a sanity
check fails (wrong programme or day counts, no maintenance, no red cluster or no "ok" forecast
where the data guarantees some, CLI output unlike the library's); 0 otherwise: the convention of
all five bench scripts, whose summary benchlib.print_summary prints.

Run it from the project root on an otherwise idle machine, with dcops installed (`pip install -e .`):

    python3 bench/bench_reports.py            # everything (~35 s on 2 idle cores)
    python3 bench/bench_reports.py --quick    # fewer repetitions, a rough figure (~20 s)
    python3 bench/bench_reports.py --keep     # keep the temp dir (databases, inventories, outputs)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench_health import Measured, bulk_insert, history_database
from benchlib import (
    CommandFailed,
    busy_note,
    clean_env,
    dump,
    fmt,
    make_database,
    mb,
    print_busy,
    print_summary,
    show,
    spread,
)

TZ_NAME = "Asia/Vientiane"
DATA_CENTRE = "National Data Centre"

UPTIME_TARGET = 2.0  # s, 200 programmes, a year of history
CAPACITY_TARGET = 1.0  # s, 50 clusters, a year of daily snapshots
MONTH_HTML_TARGET = 2e6  # bytes

CAPACITY_SITES = (("site-a", "Data centre A", "primary"), ("site-b", "Data centre B", "disaster-recovery"))
CAPACITY_CLUSTERS = 50
CAPACITY_PROGRAMMES = 500
MINISTRIES = 20
# Catalogue plans (the sample's catalogue.yaml) a programme of each tier may be on.
PLANS_BY_TIER = {
    1: ("vm-ha-pair", "pg-ha", "web-ha", "pg-ha-large"),
    2: ("vm-medium", "vm-large", "pg-standard", "web-standard", "dr-standard"),
    3: ("vm-small", "vm-medium", "pg-small", "web-basic"),
}


# --------------------------------------------------------------------------- small helpers


def timed_runs(fn, runs: int, warmups: int = 1) -> list[dict[str, float]]:
    """fn() returns {part: seconds}; call it `warmups` times untimed, then `runs` times."""
    for _ in range(warmups):
        fn()
    out = []
    for _ in range(runs):
        gc.collect()
        out.append(fn())
    return out


def column(runs: list[dict[str, float]], key: str) -> list[float]:
    return [run[key] for run in runs]


def plan_catalogue() -> dict:
    """The sample catalogue's plans: id -> (resources, instances)."""
    import yaml

    from dcops.resources import sample_dir

    path = sample_dir() / "catalogue.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    plans = {}
    for offering in data["offerings"]:
        for plan in offering["plans"]:
            resources = dict(plan["resources"])
            instances = resources.pop("instances", 1)
            plans[plan["id"]] = ({k: v * instances for k, v in resources.items()}, plan)
    return plans


def cli(argv: list[str], env: dict[str, str], runs: int) -> tuple[list[Measured], float | None]:
    """`python3 -m dcops ...`: one untimed warm-up (writes the .pyc files), then `runs` timed;
    and the command's peak RSS in bytes from one more run under GNU time, when there is one.

    Measured's own max_rss is not used: subprocess starts the child with vfork, and Linux keeps
    the pre-exec high-water mark across exec, so it reports at least this (large) process' RSS.
    """
    full = [sys.executable, "-m", "dcops", *argv]
    Measured(full, env).check()
    measured = [Measured(full, env).check() for _ in range(runs)]
    rss = None
    if os.access("/usr/bin/time", os.X_OK):
        m = Measured(["/usr/bin/time", "-f", "%M", *full], env).check()
        try:
            rss = int(m.stderr.strip().splitlines()[-1]) * 1024
        except (IndexError, ValueError):
            rss = None
    return measured, rss


def describe_cli(measured: list[Measured], rss: float | None) -> list[float]:
    walls = [m.wall for m in measured]
    print(f"    wall {spread(walls)}; CPU median {show(statistics.median(m.cpu for m in measured))}; peak RSS "
          + (f"{mb(rss)} (GNU time, one more run)" if rss is not None else "not measured (no /usr/bin/time)"))
    return walls


# --------------------------------------------------------------------------- 1: uptime


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def add_maintenance(database, *, now: datetime, days: int, tz: ZoneInfo, seed: int) -> Counter:
    """About 2 windows a month per programme and per cluster over the history, plus a few upcoming."""
    from dcops.models import MaintenanceWindow

    rng = random.Random(seed)
    with database.transaction() as conn:
        programmes = [r[0] for r in conn.exec_driver_sql("SELECT id FROM programme ORDER BY id")]
        clusters = [r[0] for r in conn.exec_driver_sql("SELECT id FROM cluster ORDER BY id")]
    start = now - timedelta(days=days)
    horizon = now + timedelta(days=30)  # windows already recorded for the coming month
    rate = 2 / (30 * 86400)  # per second: 2 a month
    rows, kinds = [], Counter()
    reasons = ("OS patching", "Database minor upgrade", "Firmware update", "Storage migration",
               "Certificate renewal", "Network switch replacement", "Application release")
    for target_kind, ids in (("programme", programmes), ("cluster", clusters)):
        for target in ids:
            t = start.timestamp() + rng.uniform(0, 86400)
            while True:
                t += rng.expovariate(rate)
                if t >= horizon.timestamp():
                    break
                # Most work starts between 21:00 and 02:00 local time.
                day = datetime.fromtimestamp(t, UTC).astimezone(tz).date()
                hour = rng.choice((21, 22, 22, 23, 23, 0, 1)) if rng.random() < 0.85 else rng.randint(6, 18)
                local = datetime(day.year, day.month, day.day, hour, rng.choice((0, 15, 30)), tzinfo=tz)
                if hour < 6:
                    local += timedelta(days=1)
                starts = local.astimezone(UTC)
                ends = starts + timedelta(minutes=rng.choice((30, 45, 60, 90, 120, 180, 240)))
                if rng.random() < 0.10:  # recorded after it started: late, it excuses nothing
                    recorded = starts + timedelta(minutes=rng.uniform(5, 2 * 1440))
                    kind = "late"
                else:
                    recorded = starts - timedelta(days=rng.uniform(1, 14))
                    kind = "announced"
                if recorded > now:  # not recorded yet
                    continue
                cancelled = recorded + (starts - recorded) * rng.random() if (
                    kind == "announced" and rng.random() < 0.05) else None
                if cancelled is not None and cancelled > now:
                    cancelled = None
                kind = "cancelled" if cancelled else ("upcoming" if starts > now else kind)
                kinds[f"{target_kind} {kind}"] += 1
                rows.append((target if target_kind == "programme" else None,
                             target if target_kind == "cluster" else None,
                             _us(starts), _us(ends), rng.choice(reasons), f"CHG-{len(rows) + 1:06d}",
                             _us(recorded), "ops@ndc.gov.la", _us(cancelled) if cancelled else None,
                             "ops@ndc.gov.la" if cancelled else None))
    with database.transaction() as conn:
        bulk_insert(conn, MaintenanceWindow.__table__,
                    ("programme_id", "cluster_id", "starts_at", "ends_at", "reason", "change_ref", "recorded_at",
                     "recorded_by", "cancelled_at", "cancelled_by"), rows,
                    times=("starts_at", "ends_at", "recorded_at", "cancelled_at"))
        first = rows[0]
        back = conn.execute(
            MaintenanceWindow.__table__.select().where(MaintenanceWindow.__table__.c.change_ref == first[5])
        ).one()
        if _us(back.starts_at) != first[2] or _us(back.recorded_at) != first[6]:
            raise CommandFailed(f"maintenance_window times read back wrong: {back!r}")
    kinds["total"] = len(rows)
    return kinds


def add_dependencies(database, *, now: datetime, days: int, seed: int) -> dict[str, int]:
    """What attribution works through: each programme but the first ten needs one or two earlier ones
    (so chains form), a third need an external component (3 of them, each down about twice a month
    for 20 min to 3 h), and the incident records the history calls for (incidents.sync)."""
    import sqlalchemy as sa

    from dcops import incidents
    from dcops.models import (ProgrammeDependency, external_component_table, external_outage_table,
                              programme_external_dependency_table)

    rng = random.Random(seed)
    with database.transaction(immediate=True) as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM programme ORDER BY id"))]
        needs = set()
        for k, programme_id in enumerate(ids[10:], start=10):
            for other in rng.sample(ids[max(0, k - 40):k], rng.choice((1, 1, 2))):
                needs.add((programme_id, other))
        conn.execute(sa.insert(ProgrammeDependency.__table__),
                     [{"programme_id": a, "depends_on_id": b} for a, b in sorted(needs)])
        components = [conn.execute(sa.insert(external_component_table).values(
            slug=slug, name=slug, run_by=run_by).returning(external_component_table.c.id)).scalar_one()
            for slug, run_by in (("national-id", "third-party"), ("bank-switch", "third-party"),
                                 ("grid-power", "data-centre"))]
        externals = [{"programme_id": p, "component_id": rng.choice(components)} for p in ids if rng.random() < 0.33]
        conn.execute(sa.insert(programme_external_dependency_table), externals)
        outages = []
        for component in components:
            for _ in range(2 * days // 30):
                start = now - timedelta(days=rng.uniform(0, days))
                outages.append({"component_id": component, "started_at": start,
                                "ended_at": start + timedelta(minutes=rng.uniform(20, 180)), "note": "",
                                "recorded_at": start, "recorded_by": "bench"})
        conn.execute(sa.insert(external_outage_table), outages)
        written = incidents.sync(conn, now=now)
    return {"programmes": len(needs), "externals": len(externals), "outages": len(outages), "incidents": written}


def time_uptime(database, period, *, tz, now, runs: int, formats: bool) -> tuple[list[dict], dict, dict[str, str]]:
    """Runs of {inputs, document, html, total}; the last document; its renders (html, and md/json/csv)."""
    from dcops.reports.documents import uptime_document
    from dcops.reports.queries import uptime_inputs
    from dcops.reports.render import render

    holder = {}

    def once() -> dict[str, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        with database.transaction() as conn:
            doc = uptime_document(conn, period, tz=tz, now=now, data_centre_name=DATA_CENTRE)
        t1 = time.perf_counter()
        html = render(doc, "html")
        t2, c2 = time.perf_counter(), time.process_time()
        with database.transaction() as conn:
            uptime_inputs(conn, start=period.start, end=period.end, now=now)
        t3 = time.perf_counter()
        holder.update(doc=doc, html=html)
        return {"document": t1 - t0, "html": t2 - t1, "total": t2 - t0, "inputs": t3 - t2, "cpu": c2 - c0}

    results = timed_runs(once, runs)
    outputs = {"html": holder["html"]}
    if formats:
        for name in ("md", "json", "csv"):
            times = timed_runs(lambda name=name: {"t": _render_time(render, holder["doc"], name, outputs)}, runs)
            for run, t in zip(results, column(times, "t")):
                run[name] = t
    return results, holder["doc"], outputs


def _render_time(render, doc, name, outputs) -> float:
    t0 = time.perf_counter()
    outputs[name] = render(doc, name)
    return time.perf_counter() - t0


def check_uptime_document(doc: dict, programmes: int, days: int, label: str, problems: list[str]) -> None:
    rows = doc["programmes"]
    cells = sum(len(p["days"]) for p in rows)
    measured = sum(1 for p in rows if p["availability"] is not None)
    announced = sum(1 for w in doc["maintenance"] if w["announced"])
    late = len(doc["maintenance"]) - announced
    incidents = sum(p["incident_count"] for p in rows)
    missed = doc["data_centre"]["programmes_missed"]
    print(f"    {label}: {len(rows)} programmes ({measured} measured, {missed} missed their target), {cells:,} "
          f"daily strip cells, {incidents:,} incidents, {len(doc['maintenance'])} maintenance windows listed "
          f"({announced} announced, {late} late); data centre availability "
          f"{doc['data_centre']['availability']}, maintenance {doc['data_centre']['maintenance_seconds'] / 3600:,.0f} h")
    if len(rows) != programmes or measured != programmes:
        problems.append(f"uptime {label}: {len(rows)} programmes, {measured} measured (expected {programmes})")
    if cells != programmes * days:
        problems.append(f"uptime {label}: {cells} daily cells (expected {programmes} x {days} = {programmes * days})")
    if not announced or not late or not incidents:
        problems.append(f"uptime {label}: {announced} announced and {late} late windows, {incidents} incidents "
                        f"(the data has all three)")


def uptime_part(root: Path, quick: bool, results: list, problems: list[str]) -> None:
    tz = ZoneInfo(TZ_NAME)
    now = datetime.now(UTC)
    settings, database, _counts = history_database(root, "year", 200, now=now, days=365, outages_per_week=0.75,
                                                  seed=7)
    t0 = time.perf_counter()
    kinds = add_maintenance(database, now=now, days=365, tz=tz, seed=11)
    print(f"  plus {kinds['total']:,} maintenance windows in {fmt(time.perf_counter() - t0)}: "
          + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items()) if k != "total"))
    t0 = time.perf_counter()
    declared = add_dependencies(database, now=now, days=365, seed=13)
    print(f"  plus {declared['programmes']:,} dependencies between programmes (chains up to 4 long), "
          f"{declared['externals']:,} on 3 external components with {declared['outages']:,} outages, and "
          f"{declared['incidents']:,} incident records, in {fmt(time.perf_counter() - t0)}")

    from dcops.reports.documents import resolve_period

    today = now.astimezone(tz).date()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    month = resolve_period(f"{last_month_end:%Y-%m}", None, None, tz)
    year_last = today - timedelta(days=1)
    year = resolve_period(None, (year_last - timedelta(days=364)).isoformat(), year_last.isoformat(), tz)
    uncovered = max(now - timedelta(days=365) - year.start, timedelta(0))
    runs = 2 if quick else 5

    print(f"  a. library, the last full month {month.label} ({TZ_NAME}), median of {runs} after a warm-up:")
    month_runs, month_doc, outputs = time_uptime(database, month, tz=tz, now=now, runs=runs, formats=True)
    print(f"    uptime_document (query + maths)    {spread(column(month_runs, 'document'))}")
    print(f"      of which uptime_inputs (query)   {spread(column(month_runs, 'inputs'))}")
    print(f"    render html                        {spread(column(month_runs, 'html'))}")
    print(f"    document + html                    {spread(column(month_runs, 'total'))}; "
          f"CPU median {show(statistics.median(column(month_runs, 'cpu')))}")
    for name in ("md", "json", "csv"):
        print(f"    render {name:<4}                        {spread(column(month_runs, name))}"
              f"   ({mb(len(outputs[name].encode()))})")
    check_uptime_document(month_doc, 200, (month.last_day - month.first_day).days + 1, month.label, problems)
    month_html = len(outputs["html"].encode())
    print(f"    HTML: {mb(month_html)} ({month_html:,} bytes)")
    med = lambda rs, k: statistics.median(column(rs, k))
    results += [
        (f"uptime {month.label}: uptime_document (query + maths)", med(month_runs, "document"), "s", None),
        (f"uptime {month.label}: render html", med(month_runs, "html"), "s", None),
        (f"uptime {month.label}: document + html (library)", med(month_runs, "total"), "s", UPTIME_TARGET),
        (f"uptime {month.label}: render md / json / csv",
         med(month_runs, "md") + med(month_runs, "json") + med(month_runs, "csv"), "s", None),
    ]

    year_runs_n = 2 if quick else 3
    print(f"  b. library, a whole year {year.label} (365 days), median of {year_runs_n} after a warm-up"
          + (f"; its first {uncovered.total_seconds() / 3600:.1f} h precede the history (unknown)" if uncovered else "")
          + ":")
    year_runs, year_doc, year_out = time_uptime(database, year, tz=tz, now=now, runs=year_runs_n, formats=False)
    print(f"    uptime_document (query + maths)    {spread(column(year_runs, 'document'))}")
    print(f"      of which uptime_inputs (query)   {spread(column(year_runs, 'inputs'))}")
    print(f"    render html                        {spread(column(year_runs, 'html'))}")
    print(f"    document + html                    {spread(column(year_runs, 'total'))}; "
          f"CPU median {show(statistics.median(column(year_runs, 'cpu')))}")
    check_uptime_document(year_doc, 200, 365, "year", problems)
    year_html = len(year_out["html"].encode())
    print(f"    HTML: {mb(year_html)} ({year_html:,} bytes)")
    results += [
        ("uptime year: uptime_document (query + maths)", med(year_runs, "document"), "s", None),
        ("uptime year: render html", med(year_runs, "html"), "s", None),
        ("uptime year: document + html (library)", med(year_runs, "total"), "s", UPTIME_TARGET),
    ]
    database.dispose()

    cli_runs = 3 if quick else 7
    out = root / "uptime.html"
    env = clean_env(root / "year", settings.database_url)
    env.update(DCOPS_TIMEZONE=TZ_NAME, DCOPS_DATA_CENTRE_NAME=DATA_CENTRE)
    print(f"  c. `python3 -m dcops report uptime --period {month.label} --format html -o FILE`, a new process each, "
          f"median of {cli_runs} after a warm-up:")
    walls = describe_cli(*cli(["report", "uptime", "--period", month.label, "--format", "html", "--out", str(out)],
                              env, cli_runs))
    cli_html = out.stat().st_size
    print(f"    wrote {mb(cli_html)} ({cli_html:,} bytes; the library's {month_html:,})")
    if abs(cli_html - month_html) > 0.01 * month_html or DATA_CENTRE not in out.read_text(encoding="utf-8"):
        problems.append(f"the CLI's uptime HTML ({cli_html:,} bytes) is unlike the library's ({month_html:,})")
    results += [
        (f"uptime {month.label}: CLI end to end", statistics.median(walls), "s", UPTIME_TARGET),
        (f"uptime {month.label}: HTML size", month_html, "MB", MONTH_HTML_TARGET),
        ("uptime year: HTML size", year_html, "MB", None),
    ]


# --------------------------------------------------------------------------- 2: capacity


def _usable(total: int, reserved: int, ratio: float, largest: int | None, buffer_percent: float = 10.0) -> float:
    capacity = (total - reserved) * ratio
    return max(0.0, capacity - (largest or 0) * ratio - capacity * buffer_percent / 100)


def size_resource(allocated: int, fill: float, ratio: float, hosts: int | None) -> dict:
    """The smallest cluster resource whose usable amount (after N+1 and a 10 % buffer) puts
    `allocated` at about `fill` of it."""
    share = 0.95 * 0.9 - (1 / hosts if hosts else 0)  # usable / (total * ratio), roughly
    total = max(int(allocated / (fill * share * ratio)) - 2, 1)
    while True:
        reserved = total // 20
        largest = -(-total // hosts) if hosts else None
        if allocated <= fill * _usable(total, reserved, ratio, largest):
            break
        total += 1
    doc = {"total": total, "reserved": reserved, "allocation_ratio": ratio}
    if largest is not None:
        doc["largest_host"] = largest
    return doc


def write_capacity_inventory(directory: Path, seed: int) -> dict:
    """The capacity bench's inventory; returns, per cluster, its trend kind and per resource its
    allocated amount, growth over the year and capacity row."""
    rng = random.Random(seed)
    plans = plan_catalogue()
    from dcops.resources import sample_dir

    shutil.copy(sample_dir() / "catalogue.yaml", directory / "catalogue.yaml")
    ministries = [f"min{k:02d}" for k in range(MINISTRIES)]
    dump(directory / "ministries.yaml", {"ministries": [
        {"code": code, "name": f"Ministry number {k}", "contact": f"it@{code}.gov.la"}
        for k, code in enumerate(ministries)]})

    names = [f"{CAPACITY_SITES[k % 2][0]}-c{k // 2 + 1:02d}" for k in range(CAPACITY_CLUSTERS)]
    # Trend kinds: 4 about to run out, 1 already over its safe line, then growing / flat / falling.
    kinds = ["runout"] * 4 + ["over"] + [rng.choices(("growing", "flat", "falling"), (0.6, 0.27, 0.13))[0]
                                         for _ in range(CAPACITY_CLUSTERS - 5)]
    rng.shuffle(kinds)

    programmes, allocated = [], {name: Counter() for name in names}
    for i in range(CAPACITY_PROGRAMMES):
        tier = 1 + i % 3
        plan = rng.choice(PLANS_BY_TIER[tier])
        amounts, _doc = plans[plan]
        if rng.random() < 0.1:  # on no catalogue plan: its own sizes, listed unpriced
            plan = None
            amounts = {"vcpu": rng.choice((2, 4, 8)), "ram_gib": rng.choice((4, 8, 16, 32)),
                       "storage_gib": rng.choice((100, 250, 500))}
        cluster = names[i % CAPACITY_CLUSTERS] if i < 400 else rng.choice(names)
        # Several instances of the plan's size (its price is the plan's: the cost table is per plan).
        scale = rng.choice((1, 2, 2, 3, 4, 4, 6, 8))
        amounts = {r: amounts.get(r, 0) * scale for r in ("vcpu", "ram_gib", "storage_gib")}
        allocated[cluster].update(amounts)
        ministry = ministries[i % MINISTRIES]
        doc = {"slug": f"prog-{i:05d}", "name": f"Programme {i}", "ministry": ministry, "tier": tier,
               "status": "active", "classification": "internal",
               "contacts": {"owner": f"owner-{i}@{ministry}.gov.la", "security": f"security@{ministry}.gov.la"},
               "allocations": [{"cluster": cluster, **{r: a for r, a in amounts.items() if a}}]}
        if plan:
            doc["plan"] = plan
        programmes.append(doc)
    per_ministry: dict[str, list] = {m: [] for m in ministries}
    for doc in programmes:
        per_ministry[doc["ministry"]].append(doc)
    for ministry, docs in per_ministry.items():
        dump(directory / "programmes" / f"{ministry}.yaml", {"programmes": docs})

    clusters, sites = {}, {code: [] for code, _n, _r in CAPACITY_SITES}
    for k, name in enumerate(names):
        kind = kinds[k]
        if kind == "runout":  # the growth is set below from the headroom the sizing leaves
            fill, growth = rng.uniform(0.965, 0.98), 0.0
        elif kind == "over":
            fill, growth = rng.uniform(1.01, 1.05), rng.uniform(0.1, 0.3)
        elif kind == "growing":
            fill, growth = rng.uniform(0.35, 0.9), rng.uniform(0.1, 0.5)
        elif kind == "flat":
            fill, growth = rng.uniform(0.3, 0.8), 0.0
        else:
            fill, growth = rng.uniform(0.3, 0.65), -rng.uniform(0.1, 0.4)
        database_cluster = k % 7 == 3  # no CPU overcommit
        hosts = rng.randint(4, 12)
        ratios = {"vcpu": 1.0 if database_cluster else 4.0, "ram_gib": 1.0 if database_cluster else 1.5,
                  "storage_gib": 1.0}
        entry = {"kind": kind, "resources": {}}
        capacity = {}
        for resource in ("vcpu", "ram_gib", "storage_gib"):
            # vcpu is the binding resource; the others are less full and change more slowly.
            f = fill if resource == "vcpu" else fill * rng.uniform(0.45, 0.85)
            g = growth if resource == "vcpu" else growth * rng.uniform(0.4, 1.0)
            row = size_resource(allocated[name][resource], f, ratios[resource],
                                None if resource == "storage_gib" else hosts)
            capacity[resource] = row
            amount = allocated[name][resource]
            if kind == "runout":
                # Runs out in 12 to 25 days: growth over the year = headroom x 365 / days left
                # (at least 40 %; more when the whole-host sizing left a wider headroom).
                headroom = _usable(row["total"], row["reserved"], row["allocation_ratio"],
                                   row.get("largest_host")) / amount - 1
                if resource == "vcpu":
                    g = max(rng.uniform(0.4, 0.8), headroom * 365 / rng.uniform(12, 25))
                else:
                    g = rng.uniform(0.1, 0.3)
            entry["resources"][resource] = {"allocated": amount, "growth": g, **row}
        clusters[name] = entry
        sites[CAPACITY_SITES[k % 2][0]].append({"name": name, "description": f"Cluster {name} ({kind})",
                                                "capacity": capacity})
    dump(directory / "sites.yaml", {"sites": [
        {"code": code, "name": site_name, "role": role, "clusters": sites[code]}
        for code, site_name, role in CAPACITY_SITES]})
    return clusters


def add_snapshots(database, clusters: dict, *, now: datetime, tz: ZoneInfo, days: int, seed: int) -> int:
    """`days` daily capacity_snapshot rows per cluster resource, ending today with what is allocated now."""
    from dcops.models import CapacitySnapshot

    rng = random.Random(seed)
    with database.transaction() as conn:
        ids = dict(conn.exec_driver_sql("SELECT name, id FROM cluster").all())
    today = now.astimezone(tz).date()
    rows = []
    for name, entry in clusters.items():
        for resource, r in entry["resources"].items():
            noise = 0.004 if entry["kind"] in ("runout", "over") else 0.015
            for back in range(days - 1, -1, -1):
                day = today - timedelta(days=back)
                if back == 0:
                    value = r["allocated"]
                else:
                    value = r["allocated"] * (1 - r["growth"] * back / days) * (1 + rng.gauss(0, noise))
                taken = datetime(day.year, day.month, day.day, 0, 5, tzinfo=tz).astimezone(UTC)
                rows.append((ids[name], resource, day.isoformat(), r["total"], r["reserved"], r["allocation_ratio"],
                             max(0, round(value)), _us(min(taken, now))))
    with database.transaction() as conn:
        bulk_insert(conn, CapacitySnapshot.__table__,
                    ("cluster_id", "resource", "taken_on", "total", "reserved", "allocation_ratio", "allocated",
                     "taken_at"), rows, times=("taken_at",))
    return len(rows)


def capacity_part(root: Path, quick: bool, results: list, problems: list[str]) -> None:
    from dcops.inventory.service import load_directory
    from dcops.reports.documents import capacity_document
    from dcops.reports.render import render

    tz = ZoneInfo(TZ_NAME)
    now = datetime.now(UTC)
    settings, database = make_database(root, "capacity")
    inventory = root / "capacity-inventory"
    inventory.mkdir()
    clusters = write_capacity_inventory(inventory, seed=21)
    t0 = time.perf_counter()
    load_directory(database, inventory, actor="bench")
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapshots = add_snapshots(database, clusters, now=now, tz=tz, days=365, seed=22)
    kinds = Counter(entry["kind"] for entry in clusters.values())
    with database.transaction() as conn:
        programmes, allocations = conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM programme), (SELECT count(*) FROM allocation)").one()
    print(f"  built: 2 sites, {len(clusters)} clusters (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
          + f"), {programmes} programmes, {allocations} allocation rows (inventory load {fmt(loaded)}), "
          f"{snapshots:,} daily snapshots ({fmt(time.perf_counter() - t0)})")

    runs = 3 if quick else 7
    holder = {}

    def once() -> dict[str, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        with database.transaction() as conn:
            doc = capacity_document(conn, tz=tz, now=now, data_centre_name=DATA_CENTRE, trend_days=365)
        t1 = time.perf_counter()
        html = render(doc, "html")
        t2, c2 = time.perf_counter(), time.process_time()
        holder.update(doc=doc, html=html)
        return {"document": t1 - t0, "html": t2 - t1, "total": t2 - t0, "cpu": c2 - c0}

    cap_runs = timed_runs(once, runs)
    print(f"  library, median of {runs} after a warm-up:")
    print(f"    capacity_document (query + maths) {spread(column(cap_runs, 'document'))}")
    print(f"    render html                       {spread(column(cap_runs, 'html'))}")
    print(f"    document + html                   {spread(column(cap_runs, 'total'))}; "
          f"CPU median {show(statistics.median(column(cap_runs, 'cpu')))}")
    doc = holder["doc"]
    entries = [c for site in doc["sites"] for c in site["clusters"]]
    statuses = Counter(c["status"] for c in entries)
    forecasts = Counter(r["forecast"]["status"] for c in entries for r in c["resources"])
    points = Counter(r["forecast"]["points"] for c in entries for r in c["resources"])
    red_by_kind = Counter(clusters[c["name"]]["kind"] for c in entries if c["status"] == "red")
    print(f"    clusters: {statuses['red']} red, {statuses['amber']} amber, {statuses['green']} green "
          f"(red: " + ", ".join(f"{n} {k}" for k, n in sorted(red_by_kind.items())) + "); forecasts of the "
          f"{sum(forecasts.values())} cluster resources: " + ", ".join(f"{n} {k!r}" for k, n in forecasts.most_common())
          + f"; points fitted per resource: {', '.join(str(p) for p in sorted(points))}")
    html_size = len(holder["html"].encode())
    print(f"    HTML: {mb(html_size)} ({html_size:,} bytes)")
    if len(entries) != CAPACITY_CLUSTERS or sum(statuses.values()) != CAPACITY_CLUSTERS:
        problems.append(f"capacity: {len(entries)} clusters in the report (expected {CAPACITY_CLUSTERS})")
    if statuses["red"] == 0 or red_by_kind["runout"] < kinds["runout"]:
        problems.append(f"capacity: {statuses['red']} red clusters, {red_by_kind['runout']} of the "
                        f"{kinds['runout']} about to run out (all of them expected red)")
    if forecasts["ok"] == 0:
        problems.append("capacity: no forecast is 'ok' (the growing clusters should have one)")
    if forecasts["not enough history"]:
        problems.append(f"capacity: {forecasts['not enough history']} resources without enough history "
                        f"(each has 365 daily snapshots)")
    med = lambda k: statistics.median(column(cap_runs, k))
    results += [
        ("capacity: capacity_document (query + maths)", med("document"), "s", None),
        ("capacity: render html", med("html"), "s", None),
        ("capacity: document + html (library)", med("total"), "s", CAPACITY_TARGET),
    ]
    database.dispose()

    cli_runs = 3 if quick else 7
    out = root / "capacity.html"
    env = clean_env(root / "capacity", settings.database_url)
    env.update(DCOPS_TIMEZONE=TZ_NAME, DCOPS_DATA_CENTRE_NAME=DATA_CENTRE)
    print(f"  `python3 -m dcops report capacity --trend-days 365 --format html -o FILE`, a new process each, "
          f"median of {cli_runs} after a warm-up:")
    walls = describe_cli(*cli(["report", "capacity", "--trend-days", "365", "--format", "html", "--out", str(out)],
                              env, cli_runs))
    cli_html = out.stat().st_size
    print(f"    wrote {mb(cli_html)} ({cli_html:,} bytes; the library's {html_size:,})")
    if abs(cli_html - html_size) > 0.01 * html_size or DATA_CENTRE not in out.read_text(encoding="utf-8"):
        problems.append(f"the CLI's capacity HTML ({cli_html:,} bytes) is unlike the library's ({html_size:,})")
    results += [
        ("capacity: CLI end to end", statistics.median(walls), "s", CAPACITY_TARGET),
        ("capacity: HTML size", html_size, "MB", None),
    ]


# --------------------------------------------------------------------------- main


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}, {model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure, not the benchmark)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, inventories, outputs)")
    args = parser.parse_args()

    import sqlite3

    import dcops

    results: list[tuple[str, float, str, float | None]] = []
    problems: list[str] = []
    print(f"dcops reports benchmark{' (--quick)' if args.quick else ''}")
    print(f"  machine: {machine()}")
    print(f"  python {sys.version.split()[0]} ({sys.executable}), SQLite {sqlite3.sqlite_version}, "
          f"dcops from {Path(dcops.__file__).parent}")
    print_busy("the load average includes this script's own earlier runs for a minute or so")
    print("  PYTHONDONTWRITEBYTECODE removed from every subprocess' environment "
          f"(it is {os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')!r} here).")
    print()

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="dcops-bench-reports-"))
    try:
        print("1. uptime report: 200 programmes, a year of 1-minute history")
        uptime_part(root, args.quick, results, problems)
        print()
        print("2. capacity report: 50 clusters, a year of daily snapshots")
        capacity_part(root, args.quick, results, problems)
        print()
    except CommandFailed as error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    return print_summary(results, problems=problems, started=started,
                         note=f"{busy_note('at the end')}; this script keeps one CPU busy")


if __name__ == "__main__":
    sys.exit(main())
