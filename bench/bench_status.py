"""Benchmark of the status page: `dcops.status` publishing 1,000 programmes with 90-day bars.

The database (SQLite in a temp dir, built as bench_portal builds its own): bench_health.write_inventory
of 1,000 programmes (1-2 checks each) over its 20 ministries, every fifth one confidential and every
twentieth secret (so the public page has 750 programmes, the ministries' 1,000);
bench_health.build_history for 90 days (outages_per_week=0.75, seed=7: programme- and check-level
state intervals, prober-wide unknown gaps, about 3 % of programmes down or unknown now) and
bench_reports.add_maintenance (about 2 windows a month per programme and per cluster, a few
upcoming). A first publish brings the incident records up to date with that history (its sync
opens one record per stretch of downtime: a one-time cost, printed, not the target); then one in
ten of the last 14 days' incidents (at most 40) is annotated (investigating, then resolved, with notes) and
released. Before each run the checks that are not unknown get a last result in the last 30 s, as
a running prober keeps them.

What it measures (wall time, time.perf_counter, after gc.collect()):
1. dcops.status.publish for the public page, into a folder already holding the previous publish:
   sync, the view, rendering, the four atomic writes. Twice: as a one-off (`dcops status publish`,
   every day swept), and as `dcops serve` publishes each minute (a status.PastDays kept across
   publishes: the days before today reused while their history is unchanged, today swept).
   Median of 5 (--quick: 3) each. Target: <= 1,000 ms.
2. The same for the ministries' page. Target: <= 1,000 ms.
3. dcops.status.publish_both each minute, what `dcops serve` runs (one reading, two sites), for
   information; and the split of one ministries' one-off publish: the view (its transaction) and
   the rendering.
Each published index.html is checked: 90 marks a programme are drawn, the public page names no
confidential or secret programme and no unreleased incident; feed.atom parses (feedparser, not
bozo) and maintenance.ics parses (icalendar), when those are installed.

The script exits 1 when a target is missed or a check fails, 0 otherwise (benchlib.print_summary).

    python3 bench/bench_status.py            # ~1 min on 2 cores, most of it the build
    python3 bench/bench_status.py --quick    # 3 runs each
    python3 bench/bench_status.py --keep     # keep the temp dir (database, inventory, sites)
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_health import build_history, history_endpoints, stored_time, write_inventory  # noqa: E402
from bench_portal import refresh_probes  # noqa: E402
from bench_reports import add_maintenance  # noqa: E402
from benchlib import make_database, ms, print_busy, print_summary  # noqa: E402

PROGRAMMES = 1000
DAYS = 90
TZ_NAME = "Asia/Vientiane"
TARGET = 1.0  # s, one audience's publish
RELEASED = 40  # incidents annotated and released


def classify(inventory: Path) -> dict[str, int]:
    """Every fifth programme confidential, every twentieth secret (the rest internal)."""
    import yaml

    counts = {"internal": 0, "confidential": 0, "secret": 0}
    for path in sorted((inventory / "programmes").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        for programme in document["programmes"]:
            index = int(programme["slug"].split("-")[1])
            programme["classification"] = "secret" if index % 20 == 0 else (
                "confidential" if index % 5 == 0 else "internal")
            counts[programme["classification"]] += 1
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return counts


def build(root: Path):
    from dcops.inventory.service import load_directory

    now = datetime.now(UTC)
    settings, database = make_database(root, "status")
    inventory = root / "inventory"
    write_inventory(inventory, ((i, history_endpoints(i)) for i in range(PROGRAMMES)))
    counts = classify(inventory)
    t0 = time.perf_counter()
    load_directory(database, inventory, actor="bench")
    with database.transaction() as conn:  # in service from before the 90 days
        conn.exec_driver_sql("UPDATE programme SET activated_at = ?",
                             (stored_time(int((now - timedelta(days=DAYS + 5)).timestamp() * 1e6)),))
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = build_history(database, now=now, days=DAYS, outages_per_week=0.75, seed=7)
    built = time.perf_counter() - t0
    kinds = add_maintenance(database, now=now, days=DAYS, tz=ZoneInfo(TZ_NAME), seed=11)
    print(f"  built: {history['programmes']:,} programmes ({counts['internal']} internal, {counts['confidential']} "
          f"confidential, {counts['secret']} secret), {history['intervals']:,} state intervals "
          f"({history['programme_intervals']:,} programme-level) over {DAYS} days, {kinds['total']:,} maintenance "
          f"windows (load {loaded:.1f} s, history {built:.1f} s)")
    return settings, database


def annotate(database, now: datetime) -> tuple[int, int]:
    """One in ten of the last 14 days' ended incidents of internal programmes (at most RELEASED):
    investigating, then resolved with notes, released. Returns (incidents of the 14 days, released)."""
    from dcops import incidents

    since = now - timedelta(days=14)
    found = [i for i in incidents.list_incidents(database, start=since, end=now, now=now)
             if i["ongoing"] or i["end"] >= since.isoformat().replace("+00:00", "Z")]
    ended = [i for i in found if not i["ongoing"] and i["publishable"]]
    released = 0
    for incident in ended[::10][:RELEASED]:
        number = incident["number"]
        incidents.update_incident(database, number, status="investigating", note="Looking into it.", actor="bench",
                                  now=now)
        incidents.update_incident(database, number, status="resolved", note="Service restored; cause found.",
                                  released=True, actor="bench", now=now)
        released += 1
    return len(found), released


CPU: list[float] = []  # the thread's CPU seconds of the last timed() runs


def timed(fn, runs: int, database) -> list[float]:
    """Wall seconds of `runs` calls of fn (CPU seconds of each in CPU)."""
    times = []
    CPU.clear()
    for _ in range(runs):
        refresh_probes(database)
        gc.collect()
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        CPU.append(time.thread_time() - c0)
    return times


def check_site(site: Path, audience: str, problems: list[str], *, public_names: set[str]) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    bars = page.count('<svg class="bar"')
    expected = 800 if audience == "public" else PROGRAMMES
    if bars != expected:
        problems.append(f"{audience}: {bars} bars drawn, expected {expected}")
    if audience == "public":
        for index in range(PROGRAMMES):
            if (index % 5 == 0) and f"Programme {index}<" in page:
                problems.append(f"public page names a confidential or secret programme (Programme {index})")
                break
        if "Looking into it" not in page:
            problems.append("public page: no released incident shown")
    try:
        import feedparser
        import icalendar
    except ImportError:
        return
    feed = feedparser.parse((site / "feed.atom").read_bytes())
    if feed.bozo:
        problems.append(f"{audience}: feed.atom does not parse: {feed.bozo_exception}")
    icalendar.Calendar.from_ical((site / "maintenance.ics").read_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each rather than 5")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, inventory, sites)")
    args = parser.parse_args()
    runs = 3 if args.quick else 5

    import dcops
    from dcops import status

    print(f"dcops status page benchmark{' (--quick)' if args.quick else ''}")
    print(f"  python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; "
          f"dcops from {Path(dcops.__file__).parent}")
    print_busy()
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="dcops-bench-status-"))
    results: list = []
    problems: list[str] = []
    try:
        print(f"0. the database: {PROGRAMMES:,} programmes, {DAYS} days of history")
        settings, database = build(root)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        status.publish(database, root / "public", audience="public", settings=settings, actor="bench")
        print(f"  first publish, opening the incident records of the history: {ms(time.perf_counter() - t0)}")
        total, released = annotate(database, now)
        print(f"  {total:,} incidents in the last 14 days, {released} annotated and released")
        print()

        figures = {}
        for number, audience in ((1, "public"), (2, "ministries")):
            site = root / audience
            for mode, past in (("as one-off (CLI)", None), ("each minute (serve)", status.PastDays())):
                if past is not None:  # serve's first publish of the day fills it
                    status.publish(database, site, audience=audience, settings=settings, actor="bench", past=past)
                times = timed(lambda: status.publish(database, site, audience=audience, settings=settings,
                                                     actor="bench", past=past), runs, database)
                figures[(audience, mode)] = statistics.median(times)
                print(f"{number}. publish {audience} {mode}: median {ms(figures[(audience, mode)])} "
                      f"(runs: {', '.join(ms(t) for t in times)}; CPU median {ms(statistics.median(CPU))})")
                results.append((f"{number}. publish {audience} {mode}, median of {runs}", figures[(audience, mode)],
                                "s", TARGET))
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e3:,.0f} kB" for p in sorted(site.iterdir()))
            print(f"   files: {sizes}")
            check_site(site, audience, problems, public_names=set())

        past = status.PastDays()
        status.publish_both(database, root / "serve", settings=settings, actor="bench", past=past)
        both = timed(lambda: status.publish_both(database, root / "serve", settings=settings, actor="bench",
                                                 past=past), runs, database)
        print(f"3. publish_both each minute (what dcops serve runs): median {ms(statistics.median(both))}")
        refresh_probes(database)
        t0 = time.perf_counter()
        view = status.views(database, audiences=["ministries"], settings=settings, actor="bench")["ministries"]
        t1 = time.perf_counter()
        files = status.render_files(view, data_centre_name=settings.data_centre_name)
        t2 = time.perf_counter()
        status.write_site(files, root / "split")
        t3 = time.perf_counter()
        print(f"   one ministries' one-off publish split: view {ms(t1 - t0)}, render {ms(t2 - t1)}, "
              f"write {ms(t3 - t2)}")
        results += [("3. publish both audiences each minute (info)", statistics.median(both), "s", None),
                    ("   view, ministries, one-off (info)", t1 - t0, "s", None),
                    ("   render, ministries (info)", t2 - t1, "s", None)]
        print()
        database.dispose()
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"target: each audience's publish <= {TARGET * 1000:,.0f} ms")
    return print_summary(results, problems=problems, started=started)


if __name__ == "__main__":
    sys.exit(main())
