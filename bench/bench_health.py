"""Benchmark of the health side of dcops: probe rounds, the /metrics exporter, the history's storage.

What it measures (wall time with time.perf_counter, CPU time alongside; SQLite in a temp dir unless said):

1. One probe round over 2,000 HTTP targets on loopback; targets <= 5 s wall and <= 300 MB peak RSS.
   The targets are a small asyncio server in a process of its own (8 loopback ports, 2,000 distinct
   URLs, 200 answered at once and the connection closed), so that its CPU is not the prober's; it
   counts what it answers, and every round must have every target answered and succeeded.
   - probe_all(checks, concurrency=200) in a fresh process per round (median of 3): the round's
     time inside the process, its CPU (process_time around the round, imports excluded: CPU
     seconds per probe), the median and p95 of the durations the probes recorded (target: median
     < 20 ms, since the targets answer at once: a probe must record the target, not its wait for
     the event loop), and the process' peak RSS (ru_maxrss from os.wait4 of that child);
   - `dcops probe run --once --concurrency 200` end to end (a new process, interpreter start-up
     included) with 1,000 programmes x 2 http endpoints loaded from generated YAML with
     load_directory: three rounds, each timed, because they differ: the first creates the check
     states, in the second every check and programme turns up (4,000 intervals written), the third
     changes nothing.
2. The same 2,000 targets through Debian's prometheus-blackbox-exporter (http_2xx module, timeout
   5s, on a loopback port): 2,000 /probe?target=...&module=http_2xx requests, 200 at a time over 200
   kept-alive connections from a bare asyncio driver in this process (cheap per request: ~0.1 s of
   CPU for the batch, so the exporter never waits for it); the batch is timed (median of 3 after a
   warm-up) and the exporter's own CPU read from /proc/PID/stat. Target: dcops' CPU seconds per
   probe <= 1.2x the exporter's (the wall-time ratio is shown for information).
3. /metrics for 1,000 programmes (1-2 checks each; 1,500 checks, a third https or tls with a
   certificate expiry) with a month of history written straight into the tables: per check and per
   programme state intervals from random outages (about 2 a week per check, minutes to hours,
   plus prober-wide unknown gaps; 2% of programmes down now, 1% unknown). Target: the median HTTP
   GET /metrics against a MetricsServer with cache_seconds=0 <= 100 ms (median of 25 scrapes).
   In process: collector.snapshot(), generate_latest of its families, collect() + generate_latest,
   and collector.exposition(). With --postgres URL the part runs again on PostgreSQL.
4. /metrics for 10,000 programmes (the same history, ten times over: 104,000 series): the dcops
   collector's registry against a separate CollectorRegistry of plain prometheus_client Gauges
   holding the same label sets and values (built from the collector's families; their text must be
   byte-identical), generate_latest of each, uncached (median of 7). Target: dcops >= 2x faster.
5. A synthetic year of 1-minute probes for 200 programmes (300 checks) in the form the store keeps
   after compaction: state intervals of the year (about 3 outages a month per check, 2 prober-wide
   gaps a month), hourly latency rollups for the last 14 days and daily ones before, raw results of
   the last 48 h (1 a minute per check), check states. After VACUUM: the file size (target < 50 MB,
   with the largest tables and indexes from dbstat), and every programme's availability (1d, 7d,
   30d) through the exporter's collector from a fresh collector, which reads the intervals of the
   month (target < 0.5 s). Then dcops.health.importer.import_history of one week (--quick: 2 days)
   of 1-minute results for 10 checks (100,800 rows, a few outages a day) into a fresh database: its rate.

How the collector meets targets 3 and 4 (dcops/metrics/collector.py):
- times are read as Unix microseconds computed by the database (SQLite: the seconds of the first
  19 characters of the stored text plus its fraction digits; PostgreSQL: extract(epoch)), so no
  datetime is made per row, and the availability maths runs on integers (exact, then one division);
- the programme-level intervals of the last 30 days are kept between scrapes (history changes
  slowly; they are the bulk of the rows): a scrape reads, in one statement, the intervals inserted
  since (id above the highest seen) and those it held open that are now closed; everything is read
  afresh on the first scrape and every 10 minutes. Per programme the closed intervals sit in arrays
  sorted by end, with running sums of up and down time, so each window takes two bisections;
- the families are built from per-family columns (lists of strings and numbers, not a tuple per
  series, which kept the garbage collector walking the heap once per scrape), and Samples are made
  directly rather than through add_metric;
- collector.exposition() writes the text format itself, byte for byte what generate_latest makes of
  collect(): generate_latest spends ~5 us per sample (sorting and escaping labels, formatting the
  value), whatever the collector does, so a collector feeding it cannot be 2x faster than Gauges
  (Gauges only add their own collect()). /metrics gets that speed once MetricsServer.render() calls
  collector.exposition() instead of generate_latest(registry) (dcops/metrics/server.py, not changed
  here): parts 3 and 4 report both, and say which one the server uses.

The figures are wall times: run on an otherwise idle machine (the load average is printed at the
start and the end; with 2 cores, a busy machine inflates every probe round). PYTHONDONTWRITEBYTECODE
is removed from the environment of every subprocess, so that .pyc files are written once and reused.

The script exits 1 when a target is missed, a command fails (its stderr is printed) or a sanity
check fails (a target not answered or not succeeding, texts that should be identical and are not, an
import that loses rows); 0 otherwise. (It used to exit 0 when only a target was missed; all five bench
scripts now share this convention and their summary printer, benchlib.print_summary.)

Run it from the project root, with dcops installed (`pip install -e .`):

    python3 bench/bench_health.py                 # everything (~4 min)
    python3 bench/bench_health.py --quick         # fewer repetitions, smaller import (~2 min)
    python3 bench/bench_health.py --parts 3,4     # only the exporter
    python3 bench/bench_health.py --postgres postgresql+psycopg://dcops:dcops@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import os
import random
import socket
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from benchlib import (
    AtLeast,
    CommandFailed,
    busy_note,
    clean_env,
    dump,
    fmt,
    make_database,
    mb,
    ms,
    print_busy,
    print_summary,
    spread,
)

UTC = timezone.utc
MINISTRIES = 20
CONCURRENCY = 200
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"

ROUND_TARGET = 5.0  # s, one round over 2,000 targets
ROUND_RSS_TARGET = 300.0  # MB
DURATION_MEDIAN_TARGET = 0.020  # s, the median recorded probe duration in that round (the targets answer at once)
CPU_RATIO_TARGET = 1.2  # dcops' CPU seconds per probe over blackbox_exporter's, the same 2,000 targets
# Part 1 and 2 as measured on a 2-CPU machine before probes started through Admission and read
# HTTP with their own h11 client instead of httpx's (this script, run against that code).
BEFORE = ("before paced starts and the lean HTTP client: recorded duration median 333 ms, p95 476 ms; "
          "round 4.06 s; CPU 1.78 ms a probe, blackbox 0.95 ms a probe, ratio 1.87x")
SCRAPE_TARGET = 0.100  # s, /metrics for 1,000 programmes, uncached
GAUGE_RATIO_TARGET = AtLeast(2.0)  # the Gauges' generate_latest over dcops' render, 10,000 programmes
STORAGE_TARGET = 50.0  # MB, a year of 200 programmes
AVAILABILITY_TARGET = 0.5  # s, every programme's 30-day availability from that year


# --------------------------------------------------------------------------- small helpers


def median_of(fn, runs: int, warmups: int = 1) -> tuple[float, list[float]]:
    """Median wall time of fn() over `runs` (after `warmups`), and every time."""
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Measured:
    """A finished subprocess: wall seconds, exit code, output, and its own rusage (os.wait4)."""

    def __init__(self, argv: list[str], env: dict[str, str], timeout: float = 300):
        # The child's own ru_maxrss is no use: started by vfork, it inherits this (large) process's
        # peak at exec. GNU time, small itself, reports its child's true peak.
        gnu_time = shutil.which("time", path="/usr/bin:/bin")
        peak_file = tempfile.NamedTemporaryFile(prefix="dcops-bench-rss-", delete=False) if gnu_time else None
        if peak_file is not None:
            peak_file.close()
            argv_run = [gnu_time, "-q", "-f", "%M", "-o", peak_file.name, *argv]
        else:
            argv_run = argv
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv_run, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            try:
                _pid, status, usage = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
            self.wall = time.perf_counter() - t0
            proc.returncode = self.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            self.stdout = out.read().decode("utf-8", "replace")
            self.stderr = err.read().decode("utf-8", "replace")
        self.argv = argv
        self.max_rss = usage.ru_maxrss * 1024  # bytes (Linux reports KiB); an upper bound, see above
        if peak_file is not None:
            try:
                self.max_rss = int(Path(peak_file.name).read_text().split()[-1]) * 1024
            except (OSError, ValueError, IndexError):
                pass  # the command was killed before GNU time wrote: keep the upper bound
            finally:
                os.unlink(peak_file.name)
        self.cpu = usage.ru_utime + usage.ru_stime

    def check(self) -> "Measured":
        if self.returncode != 0:
            raise CommandFailed(
                f"command failed (exit {self.returncode}): {' '.join(self.argv)}\n"
                f"--- stderr ---\n{self.stderr.rstrip()}\n--- stdout (last 20 lines) ---\n"
                + "\n".join(self.stdout.rstrip().splitlines()[-20:])
            )
        return self


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, peak RSS bytes) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


# --------------------------------------------------------------------------- databases and inventories


def write_inventory(directory: Path, endpoints_of) -> None:
    """20 ministries, 2 sites of 2 clusters, and the programmes `endpoints_of` yields:
    (index, [endpoint documents]) for each programme."""
    ministries = [f"min{k:02d}" for k in range(MINISTRIES)]
    dump(directory / "common.yaml", {"ministries": [
        {"code": code, "name": f"Ministry number {k}", "contact": f"it@{code}.gov.la"} for k, code in enumerate(ministries)]})
    dump(directory / "sites.yaml", {"sites": [
        {"code": site, "name": f"Data centre {site[-1].upper()}", "role": role, "clusters": [
            {"name": f"{site}-c{j}", "capacity": {"vcpu": {"total": 100_000}, "ram_gib": {"total": 1_000_000},
                                                  "storage_gib": {"total": 10_000_000}}} for j in (1, 2)]}
        for site, role in (("site-a", "primary"), ("site-b", "disaster-recovery"))]})
    per_ministry: dict[str, list[dict]] = {m: [] for m in ministries}
    for i, endpoints in endpoints_of:
        ministry = ministries[i % MINISTRIES]
        per_ministry[ministry].append({
            "slug": f"prog-{i:05d}", "name": f"Programme {i}", "ministry": ministry, "tier": 1 + i % 3,
            "classification": "internal", "environment": "production" if i % 5 else "staging",
            "contacts": {"owner": f"owner-{i}@{ministry}.gov.la", "security": f"security@{ministry}.gov.la"},
            "endpoints": endpoints,
            "allocations": [{"cluster": ("site-a-c1", "site-a-c2", "site-b-c1")[i % 3], "vcpu": 2, "ram_gib": 4,
                             "storage_gib": 50}],
        })
    for ministry, docs in per_ministry.items():
        dump(directory / "programmes" / f"{ministry}.yaml", {"programmes": docs})


def history_endpoints(i: int) -> list[dict]:
    """One or two checks per programme (half have two); some are https or tls (certificate expiry)."""
    slug = f"prog-{i:05d}"
    scheme = "https" if i % 3 else "http"
    checks = [{"name": "web", "kind": "http", "target": f"{scheme}://{slug}.gov.la/health"}]
    if i % 2:
        checks.append({"name": "api", "kind": "tls" if i % 4 == 1 else "tcp", "target": f"{slug}-api.gov.la:443"})
    return checks


# --------------------------------------------------------------------------- synthetic history


def _overlay(start: float, end: float, spans: list[tuple[float, float, str, str]]) -> list[list]:
    """Up from `start` to `end`, except where `spans` (from, to, state, reason) say otherwise
    (unknown beats down): merged [state, from, to, reason] segments."""
    cuts = sorted({start, end, *(t for s in spans for t in s[:2] if start < t < end)})
    priority = {"up": 0, "down": 1, "unknown": 2}
    segments: list[list] = []
    for lo, hi in zip(cuts, cuts[1:]):
        state, reason = "up", ""
        for a, b, s, r in spans:
            if a <= lo < b and priority[s] > priority[state]:
                state, reason = s, r
        if segments and segments[-1][0] == state:
            segments[-1][2] = hi
        else:
            segments.append([state, lo, hi, reason])
    return segments


def _worst(segments_per_check: list[list[list]], names: list[str]) -> list[list]:
    """The programme's segments: down if any check is down, up if all are up, else unknown."""
    cuts = sorted({t for segments in segments_per_check for seg in segments for t in seg[1:3]})
    result: list[list] = []
    index = [0] * len(segments_per_check)
    for lo, hi in zip(cuts, cuts[1:]):
        states, reasons = [], []
        for k, segments in enumerate(segments_per_check):
            while segments[index[k]][2] <= lo:
                index[k] += 1
            seg = segments[index[k]]
            states.append(seg[0])
            if seg[0] == "down":
                reasons.append(f"{names[k]}: {seg[3]}")
        state = "down" if "down" in states else "up" if all(s == "up" for s in states) else "unknown"
        if result and result[-1][0] == state:
            result[-1][2] = hi
        else:
            result.append([state, lo, hi, "; ".join(reasons) if state == "down" else ("no data" if state == "unknown" else "")])
    return result


EPOCH = datetime(1970, 1, 1)


def stored_time(us: int) -> str:
    """Unix microseconds as the text SQLAlchemy's SQLite DateTime stores ('YYYY-MM-DD HH:MM:SS.ffffff', UTC)."""
    return (EPOCH + timedelta(microseconds=us)).isoformat(" ", "microseconds")


def aware_time(us: int) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).replace(tzinfo=UTC)


def bulk_insert(conn, table, columns: tuple[str, ...], rows: list[tuple], times: tuple[str, ...] = ()) -> None:
    """Insert rows (tuples in the order of `columns`; the `times` columns in Unix microseconds
    or None) fast: on SQLite straight through the driver, times as the text SQLAlchemy writes
    (checked against a Core read by the caller); elsewhere through Core with datetimes."""
    if not rows:
        return
    from dcops.db import EpochMicroseconds

    sqlite = conn.dialect.name == "sqlite"
    # Columns of type EpochMicroseconds store the integers themselves.
    slots = [columns.index(c) for c in times
             if not (sqlite and isinstance(table.c[c].type, EpochMicroseconds))]
    convert = stored_time if sqlite else aware_time
    if slots:
        rows = [list(row) for row in rows]
        for row in rows:
            for k in slots:
                if row[k] is not None:
                    row[k] = convert(row[k])
    if sqlite:
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for start in range(0, len(rows), 50_000):
            conn.exec_driver_sql(sql, [tuple(row) for row in rows[start:start + 50_000]])
    else:
        for start in range(0, len(rows), 20_000):
            conn.execute(table.insert(), [dict(zip(columns, row)) for row in rows[start:start + 20_000]])


REASONS = ("timeout", "status 503", "refused", "status 502", "reset", "tls error: unknown issuer")


def build_history(database, *, now: datetime, days: float, outages_per_week: float, seed: int,
                  gaps_per_month: float = 2.0) -> dict[str, int]:
    """Write a probing history straight into the tables (bulk_insert): per check and per
    programme state intervals from a random outage pattern (Poisson outages, mostly minutes,
    sometimes hours; prober-wide unknown gaps), and each check's state (last probe, TLS expiry).
    About 2% of programmes are down now, 1% unknown. Returns row counts."""
    from sqlalchemy import select

    from dcops.models import CheckState, Endpoint, StateInterval

    rng = random.Random(seed)
    t_now = now.timestamp()
    t0 = t_now - days * 86400
    with database.transaction() as conn:
        endpoints = conn.execute(select(Endpoint.__table__.c.id, Endpoint.__table__.c.programme_id,
                                        Endpoint.__table__.c.name, Endpoint.__table__.c.target)
                                 .order_by(Endpoint.__table__.c.programme_id, Endpoint.__table__.c.name)).all()
    by_programme: dict[int, list] = defaultdict(list)
    for row in endpoints:
        by_programme[row.programme_id].append(row)

    # Prober-wide gaps: nothing probed, every check unknown.
    gaps = []
    t = t0
    while True:
        t += rng.expovariate(gaps_per_month / (30 * 86400))
        if t >= t_now - 3600:
            break
        gaps.append((t, t + rng.uniform(600, 3600), "unknown", "no data"))

    def us(seconds: float) -> int:
        return int(round(seconds * 1e6))

    intervals: list[tuple] = []
    states: list[tuple] = []
    rate = outages_per_week / (7 * 86400)
    for programme_id, checks in by_programme.items():
        roll = rng.random()
        ongoing = "down" if roll < 0.02 else "unknown" if roll < 0.03 else None
        per_check = []
        for k, check in enumerate(checks):
            spans = list(gaps)
            t = t0 + rng.uniform(0, 3600)
            while True:
                t += rng.expovariate(rate)
                if t >= t_now:
                    break
                length = min(180 + rng.expovariate(1 / 900) * (8 if rng.random() < 0.05 else 1), 6 * 3600)
                spans.append((t, t + length, "down", rng.choice(REASONS)))
            if ongoing and k == 0:
                spans.append((t_now - rng.uniform(300, 3 * 3600), t_now + 1, ongoing,
                              "timeout" if ongoing == "down" else "no data"))
            segments = _overlay(t0, t_now + 1, spans)
            per_check.append(segments)
            last = len(segments) - 1
            intervals += [(programme_id, check.id, state, us(lo), None if n == last else us(hi), reason)
                          for n, (state, lo, hi, reason) in enumerate(segments)]
            state, since, _hi, reason = segments[-1]
            secure = check.target.startswith("https:") or (check.name == "api" and check.id % 2)
            states.append((
                check.id, state, us(since), 3 if state == "down" else 0, 0 if state == "down" else 5,
                us(t_now - rng.uniform(0, 60)) if state != "unknown" else us(since - 60), state != "down",
                round(rng.lognormvariate(-3, 0.8), 6), reason if state == "down" else "",
                us(t_now + rng.uniform(-5, 90) * 86400) if secure else None,
            ))
        programme = _worst(per_check, [c.name for c in checks])
        last = len(programme) - 1
        intervals += [(programme_id, None, state, us(lo), None if n == last else us(hi), reason)
                      for n, (state, lo, hi, reason) in enumerate(programme)]
    with database.transaction() as conn:
        bulk_insert(conn, StateInterval.__table__,
                    ("programme_id", "endpoint_id", "state", "started_at", "ended_at", "reason"), intervals,
                    times=("started_at", "ended_at"))
        bulk_insert(conn, CheckState.__table__,
                    ("endpoint_id", "state", "since", "fail_streak", "ok_streak", "last_at", "last_success",
                     "last_duration_seconds", "last_reason", "tls_expires_at"), states,
                    times=("since", "last_at", "tls_expires_at"))
        # The text written on SQLite must read back, through the model's type, as the time meant.
        first = intervals[0]
        back = conn.execute(select(StateInterval.__table__.c.started_at).where(
            StateInterval.__table__.c.programme_id == first[0], StateInterval.__table__.c.endpoint_id == first[1])
            .order_by(StateInterval.__table__.c.started_at).limit(1)).scalar_one()
        if back != aware_time(first[3]):
            raise CommandFailed(f"bulk_insert wrote a time that reads back as {back!r}, not {aware_time(first[3])!r}")
    programme_level = sum(1 for row in intervals if row[1] is None)
    return {"programmes": len(by_programme), "checks": len(endpoints), "intervals": len(intervals),
            "programme_intervals": programme_level}


def history_database(root: Path, name: str, programmes: int, *, now: datetime, days: float,
                     outages_per_week: float, seed: int, url: str | None = None):
    """A database of `programmes` programmes (1-2 checks each) and their synthetic history."""
    from dcops.inventory.service import load_directory

    settings, database = make_database(root, name, url)
    inventory = root / f"{name}-inventory"
    write_inventory(inventory, ((i, history_endpoints(i)) for i in range(programmes)))
    t0 = time.perf_counter()
    load_directory(database, inventory, actor="bench")
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts = build_history(database, now=now, days=days, outages_per_week=outages_per_week, seed=seed)
    if database.engine.dialect.name == "postgresql":
        # A settled database, as after autovacuum: statistics, and the new rows' hint bits set.
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    print(f"  built: {counts['programmes']} programmes, {counts['checks']} checks, {counts['intervals']} state "
          f"intervals ({counts['programme_intervals']} programme-level) over {days:g} days "
          f"(inventory load {fmt(loaded)}, history {fmt(time.perf_counter() - t0)})")
    return settings, database, counts


# --------------------------------------------------------------------------- 3 and 4: /metrics


def series_of(exposition: bytes) -> int:
    return sum(1 for line in exposition.splitlines() if line and not line.startswith(b"#"))


def fast_render(collector):
    """The collector's own exposition renderer when it has one (see the docstring), else None."""
    return getattr(collector, "exposition", None)


def server_uses_fast_render() -> bool:
    import inspect

    from dcops.metrics.server import MetricsServer

    return "exposition(" in inspect.getsource(MetricsServer.render)


def time_collector(database, registry, collector, runs: int, label: str) -> dict[str, float]:
    """In-process, uncached: the collector's read (snapshot), generate_latest of its registry
    (read and render, what /metrics does), and the collector's own renderer when it has one."""
    from prometheus_client import CollectorRegistry, generate_latest

    figures = {}
    read, read_times = median_of(collector.snapshot, runs)
    families = collector.snapshot()

    class Fixed:
        def collect(self):
            return iter(families)

    fixed = CollectorRegistry(auto_describe=False)
    fixed.register(Fixed())
    render, _ = median_of(lambda: generate_latest(fixed), runs)
    total, total_times = median_of(lambda: generate_latest(registry), runs)
    cpu0 = time.process_time()
    generate_latest(registry)
    cpu = time.process_time() - cpu0
    body = generate_latest(registry)
    print(f"  {label}: {series_of(body)} series, {mb(len(body))} of text")
    print(f"    collector.snapshot() (read + families)       {spread(read_times)}")
    print(f"    generate_latest of those families (render)   median {ms(render)}")
    print(f"    collect() + generate_latest (uncached)       {spread(total_times)}; CPU {ms(cpu)} (one run)")
    figures.update(read=read, render=render, generate_latest=total)
    exposition = fast_render(collector)
    if exposition is not None:
        fast, fast_times = median_of(exposition, runs)
        same = exposition() == generate_latest(registry)
        print(f"    collector.exposition() (read + direct text)  {spread(fast_times)}; "
              f"{'byte-identical to' if same else 'DIFFERENT FROM'} generate_latest")
        figures.update(exposition=fast, identical=float(same))
    return figures


def time_scrapes(database, runs: int, *, fast: bool, now: datetime) -> list[float]:
    """Median of HTTP GET /metrics against a MetricsServer (cache_seconds=0), new connection each."""
    from dcops.metrics.server import MetricsServer

    server = MetricsServer(database, port=0, cache_seconds=0, now=lambda: now)
    if fast:  # what the server would do with render() calling the collector's renderer
        server.render = server.collector.exposition
    with server:
        def scrape():
            with urllib.request.urlopen(server.url, timeout=30) as response:
                body = response.read()
            if response.status != 200 or b"dcops_programme_info" not in body:
                raise CommandFailed(f"/metrics answered {response.status}: {body[:200]!r}")
        _median, times = median_of(scrape, runs, warmups=2)
    return times


def gauge_registry(families):
    """A separate registry of plain prometheus_client Gauges holding the same series (label
    sets and values, in the same order) as `families`: the usual instrumentation, as a peer."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    for family in families:
        names = list(getattr(family, "_labelnames", ()))
        gauge = Gauge(family.name, family.documentation, labelnames=names, registry=registry)
        for sample in family.samples:
            gauge.labels(*(sample.labels[name] for name in names)).set(sample.value)
    return registry


# --------------------------------------------------------------------------- 1 and 2: probe rounds

# The targets: a small asyncio server (its own process, so that its CPU is not the prober's)
# listening on several loopback ports, answering every request 200 at once and closing.
# A line on stdin asks it how many requests it has answered; end of stdin stops it.
TARGET_SERVER = r'''
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
served = 0
class Target(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        global served
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            served += 1
            self.transport.write(RESPONSE)
            self.transport.close()
async def main(count):
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Target, "127.0.0.1", 0, backlog=4096) for _ in range(count)]
    print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        print(served, flush=True)
asyncio.run(main(int(sys.argv[1])))
'''

# One probe_all() round in a process of its own (so that its peak RSS is the round's).
PROBE_ROUND = r'''
import asyncio, json, sys, time
from collections import Counter
from dcops.health.probes import Check, probe_all

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

targets = json.load(open(sys.argv[1]))
checks = [Check(endpoint_id=i, programme=f"p{i}", name="web", kind="http", target=url, timeout_seconds=5.0)
          for i, url in enumerate(targets)]
before = rss()
cpu0 = time.process_time()
t0 = time.perf_counter()
results = asyncio.run(probe_all(checks, concurrency=int(sys.argv[2])))
seconds = time.perf_counter() - t0
cpu = time.process_time() - cpu0
durations = sorted(r.duration_seconds for r in results)
print(json.dumps({"seconds": seconds, "cpu": cpu, "succeeded": sum(r.success for r in results), "rss_before": before,
                  "failures": Counter(r.reason for r in results if not r.success),
                  "probe_median": durations[len(durations) // 2], "probe_p95": durations[int(len(durations) * 0.95)]}))
'''


class Targets:
    """The target server: `ports` loopback ports; `urls(n)` spreads n distinct URLs over them."""

    def __init__(self, ports: int = 8):
        self.proc = subprocess.Popen([sys.executable, "-c", TARGET_SERVER, str(ports)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=clean_env(Path(tempfile.gettempdir())))
        self.ports = [int(p) for p in self.proc.stdout.readline().split()]
        if not self.ports:
            raise CommandFailed("the target server did not start")

    def urls(self, count: int, prefix: str = "t") -> list[str]:
        return [f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/{prefix}/{i}" for i in range(count)]

    def served(self) -> int:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def cpu(self) -> float:
        return proc_stats(self.proc.pid)[0]

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def probe_rounds(root: Path, targets: Targets, count: int, runs: int, results: list, problems: list[str]) -> dict:
    """probe_all() over `count` targets in a subprocess each run; returns the medians: round seconds,
    the round's CPU seconds (inside the process, imports excluded) and the recorded durations."""
    urls_file = root / "targets.json"
    urls_file.write_text(json.dumps(targets.urls(count)))
    env = clean_env(root)
    print(f"  probe_all(): {count} http checks over {len(targets.ports)} loopback ports, concurrency {CONCURRENCY}, "
          f"each round in a fresh process (peak RSS from its rusage)")
    seconds, walls, rss, cpus, round_cpus, medians, p95s = [], [], [], [], [], [], []
    for run_number in range(runs):
        served = targets.served()
        server_cpu = targets.cpu()
        m = Measured([sys.executable, "-c", PROBE_ROUND, str(urls_file), str(CONCURRENCY)], env).check()
        out = json.loads(m.stdout)
        answered = targets.served() - served
        seconds.append(out["seconds"])
        walls.append(m.wall)
        rss.append(m.max_rss)
        cpus.append(m.cpu)
        round_cpus.append(out["cpu"])
        medians.append(out["probe_median"])
        p95s.append(out["probe_p95"])
        print(f"    run {run_number + 1}: round {fmt(out['seconds'])} (CPU {fmt(out['cpu'])}, "
              f"{ms(out['cpu'] / count, 3)} a probe; process {fmt(m.wall)}, CPU {fmt(m.cpu)}; "
              f"target server CPU {fmt(targets.cpu() - server_cpu)}), peak RSS {mb(m.max_rss)} "
              f"(after imports {mb(out['rss_before'])}), {out['succeeded']}/{count} succeeded, "
              f"recorded duration median {ms(out['probe_median'])} p95 {ms(out['probe_p95'])}")
        if out["succeeded"] != count or answered != count:
            problems.append(f"probe_all round: {out['succeeded']}/{count} succeeded, the targets answered "
                            f"{answered} (failures: {out['failures']})")
    print(f"    ({BEFORE})")
    median = statistics.median(seconds)
    figures = {"seconds": median, "cpu_per_probe": statistics.median(round_cpus) / count,
               "duration_median": statistics.median(medians), "duration_p95": statistics.median(p95s)}
    results += [(f"probe_all() round, {count} targets (c={CONCURRENCY})", median, "s", ROUND_TARGET),
                ("probe_all() round, peak RSS", max(rss), "MB", ROUND_RSS_TARGET * 1e6),
                ("probe_all() round, process CPU (info)", statistics.median(cpus), "s", None),
                ("probe_all() recorded duration, median", figures["duration_median"], "s", DURATION_MEDIAN_TARGET),
                ("probe_all() recorded duration, p95 (info)", figures["duration_p95"], "s", None),
                ("probe_all() CPU per probe, in the round (info)", figures["cpu_per_probe"], "s", None)]
    return figures


def cli_rounds(root: Path, targets: Targets, programmes: int, rounds: int, results: list, problems: list[str]) -> None:
    """`dcops probe run --once` end to end over programmes x 2 endpoints loaded from YAML."""
    from dcops.inventory.service import load_directory

    settings, database = make_database(root, "cli-probe")
    inventory = root / "cli-probe-inventory"
    urls = targets.urls(programmes * 2, prefix="cli")
    write_inventory(inventory, ((i, [{"name": "web", "kind": "http", "target": urls[2 * i]},
                                     {"name": "api", "kind": "http", "target": urls[2 * i + 1]}])
                                for i in range(programmes)))
    load_directory(database, inventory, actor="bench")
    database.dispose()
    count = programmes * 2
    env = clean_env(root / "cli-probe", settings.database_url)
    argv = [sys.executable, "-m", "dcops", "probe", "run", "--once", "--concurrency", str(CONCURRENCY), "--output", "json"]
    Measured([sys.executable, "-m", "dcops", "--help"], env).check()  # writes the .pyc files
    print(f"  `dcops probe run --once --concurrency {CONCURRENCY}`: {programmes} programmes x 2 http endpoints "
          f"({count} checks, loaded with load_directory) in SQLite; {rounds} rounds, each a new process")
    labels = ["first ever (states created)", "second (every check and programme turns up)", "steady (no change)"]
    for number in range(rounds):
        served = targets.served()
        m = Measured(argv, env).check()
        out = json.loads(m.stdout)
        answered = targets.served() - served
        label = labels[min(number, len(labels) - 1)]
        print(f"    round {number + 1}, {label}: command {fmt(m.wall)} (round in process {fmt(out['seconds'])}, "
              f"CPU {fmt(m.cpu)}), peak RSS {mb(m.max_rss)}, {out['succeeded']}/{out['checks']} succeeded, "
              f"{len(out['programme_changes'])} programme changes")
        if out["checks"] != count or out["succeeded"] != count or answered != count:
            problems.append(f"dcops probe run --once round {number + 1}: {out['succeeded']}/{out['checks']} succeeded "
                            f"(expected {count}), the targets answered {answered}")
        results += [(f"dcops probe run --once, round {number + 1}: {label.split(' (')[0]}", m.wall, "s", ROUND_TARGET),
                    (f"dcops probe run --once, round {number + 1}: peak RSS", m.max_rss, "MB", ROUND_RSS_TARGET * 1e6)]
    with database.transaction() as conn:
        intervals = conn.exec_driver_sql("SELECT count(*) FROM state_interval").scalar_one()
    print(f"    the database now holds {intervals} state intervals")
    database.dispose()


BLACKBOX_CONFIG = {"modules": {"http_2xx": {"prober": "http", "timeout": "5s", "http": {
    "preferred_ip_protocol": "ip4", "ip_protocol_fallback": False}}}}


async def _batches(port: int, urls: list[str], concurrency: int, runs: int, exporter_pid: int,
                   targets: "Targets") -> list[dict]:
    """A warm-up, then `runs` timed batches of GET /probe for every url, `concurrency` at a time.

    The driver must cost little beside the exporter, or the exporter waits for it (an httpx client
    spent 1.5x the exporter's CPU and held it back on 2 cores): `concurrency` kept-alive
    connections, each a bare asyncio protocol that writes a prepared request and finds the end of
    the answer (Content-Length or the last chunk) without parsing more. A Python driver rather
    than wrk because it fires each URL exactly once, checks every answer, and needs nothing
    installed; its CPU is printed beside the exporter's.
    """
    from urllib.parse import quote

    loop = asyncio.get_running_loop()
    requests = {url: (f"GET /probe?target={quote(url, safe='')}&module=http_2xx HTTP/1.1\r\n"
                      f"Host: 127.0.0.1:{port}\r\n\r\n").encode("ascii") for url in urls}

    class Driver(asyncio.Protocol):
        def __init__(self):
            self.buffer = bytearray()
            self.waiter = None

        def data_received(self, data):
            self.buffer += data
            if self.waiter is not None and not self.waiter.done() and self.complete() is not None:
                self.waiter.set_result(None)

        def connection_lost(self, exc):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc or ConnectionError("the exporter closed the connection"))

        def complete(self) -> int | None:
            """The length of the first whole response in the buffer, None while it is incomplete."""
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return None
            for line in bytes(self.buffer[:head_end]).lower().split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip() == b"content-length":
                    length = head_end + 4 + int(value)
                    return length if len(self.buffer) >= length else None
            end = self.buffer.find(b"\r\n0\r\n\r\n", head_end)  # chunked: the last chunk
            return end + 7 if end >= 0 else None

        async def get(self, transport, url: str) -> bytes:
            self.waiter = loop.create_future()
            transport.write(requests[url])
            if self.complete() is None:
                await self.waiter
            length = self.complete()
            answer = bytes(self.buffer[:length])
            del self.buffer[:length]
            return answer

    def unchunked(answer: bytes) -> bytes:
        """The answer with a chunked body joined up (a chunk may end inside 'probe_success')."""
        head, _, body = answer.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" not in head.lower():
            return answer
        parts, at = [head, b"\r\n\r\n"], 0
        while True:
            line_end = body.index(b"\r\n", at)
            size = int(body[at:line_end].split(b";")[0], 16)
            if size == 0:
                return b"".join(parts)
            parts.append(body[line_end + 2:line_end + 2 + size])
            at = line_end + 4 + size

    connections = [await loop.create_connection(Driver, "127.0.0.1", port) for _ in range(concurrency)]

    failed: list[str] = []

    async def batch(todo: list[str]) -> int:
        pending = iter(todo)
        succeeded = 0

        async def worker(transport, driver) -> None:
            nonlocal succeeded
            for url in pending:  # the workers share the iterator: each takes the next target
                answer = unchunked(await driver.get(transport, url))
                if answer.startswith(b"HTTP/1.1 200") and b"\nprobe_success 1\n" in answer:
                    succeeded += 1
                elif not failed:
                    failed.append(answer[-600:].decode("latin-1"))

        await asyncio.gather(*(worker(transport, driver) for transport, driver in connections))
        return succeeded

    try:
        await batch(urls[:concurrency * 2])  # warm-up: the exporter's goroutines and buffers
        figures = []
        for _ in range(runs):
            served = targets.served()
            cpu_before, _peak = proc_stats(exporter_pid)
            client_cpu = time.process_time()
            t0 = time.perf_counter()
            succeeded = await batch(urls)
            seconds = time.perf_counter() - t0
            client_cpu = time.process_time() - client_cpu
            cpu_after, peak = proc_stats(exporter_pid)
            figures.append({"seconds": seconds, "succeeded": succeeded, "exporter_cpu": cpu_after - cpu_before,
                            "client_cpu": client_cpu, "peak": peak, "answered": targets.served() - served,
                            "first_failure": failed[0] if failed else ""})
            failed.clear()
        return figures
    finally:
        for transport, _driver in connections:
            transport.close()


def blackbox_rounds(root: Path, targets: Targets, count: int, runs: int, dcops_round: dict | None,
                    results: list, problems: list[str]) -> None:
    """The same targets through prometheus-blackbox-exporter's /probe, fired by a lean asyncio driver."""
    if not os.access(BLACKBOX, os.X_OK):
        print(f"  {BLACKBOX} is not installed: skipped")
        return
    config = root / "blackbox.yml"
    config.write_text(yaml.safe_dump(BLACKBOX_CONFIG))
    port = free_port()
    log = (root / "blackbox.log").open("w")
    proc = subprocess.Popen([BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise CommandFailed(f"{BLACKBOX} did not start (log: {root / 'blackbox.log'})")
                time.sleep(0.1)
        urls = targets.urls(count, prefix="bb")
        print(f"  {BLACKBOX} (module http_2xx, timeout 5s) on 127.0.0.1:{port}: {count} /probe requests, "
              f"{CONCURRENCY} at a time, over {CONCURRENCY} kept-alive connections from a bare asyncio driver "
              f"in this process; the exporter's CPU from /proc/{proc.pid}/stat")
        times, cpus = [], []
        for number, run in enumerate(asyncio.run(_batches(port, urls, CONCURRENCY, runs, proc.pid, targets))):
            times.append(run["seconds"])
            cpus.append(run["exporter_cpu"])
            print(f"    run {number + 1}: batch {fmt(run['seconds'])}, exporter CPU {fmt(run['exporter_cpu'])} "
                  f"({ms(run['exporter_cpu'] / count, 3)} a probe), driver CPU {fmt(run['client_cpu'])}, "
                  f"exporter peak RSS {mb(run['peak'])}, {run['succeeded']}/{count} probe_success 1")
            if run["succeeded"] != count or run["answered"] != count:
                problems.append(f"blackbox batch: {run['succeeded']}/{count} probe_success 1, the targets answered "
                                f"{run['answered']}; the first answer without it ends: {run['first_failure']!r}")
        median = statistics.median(times)
        cpu_per_probe = statistics.median(cpus) / count
        results += [(f"blackbox exporter, {count} /probe (c={CONCURRENCY}) (peer)", median, "s", None),
                    ("blackbox exporter, CPU per probe (peer)", cpu_per_probe, "s", None)]
        if dcops_round is not None:
            ratio = dcops_round["seconds"] / median
            cpu_ratio = dcops_round["cpu_per_probe"] / cpu_per_probe
            print(f"  ratio dcops probe_all / blackbox: wall {ratio:.2f}x ({fmt(dcops_round['seconds'])} / "
                  f"{fmt(median)}), CPU per probe {cpu_ratio:.2f}x ({ms(dcops_round['cpu_per_probe'], 3)} / "
                  f"{ms(cpu_per_probe, 3)})")
            results += [("ratio probe_all / blackbox, wall (info)", ratio, "x", None),
                        ("ratio probe_all / blackbox, CPU per probe", cpu_ratio, "x", CPU_RATIO_TARGET)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def metrics_1k(root: Path, quick: bool, results: list, problems: list[str], postgres: str | None = None) -> None:
    """/metrics for 1,000 programmes with a month of history: in process, and over HTTP."""
    from prometheus_client import CollectorRegistry

    from dcops.metrics.collector import InventoryCollector

    where = "PostgreSQL" if postgres else "SQLite"
    name = f"metrics-1k-{where.lower()}"
    admin = None
    if postgres:
        import sqlalchemy as sa

        admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP DATABASE IF EXISTS "dcops_bench_health" WITH (FORCE)')
            conn.exec_driver_sql('CREATE DATABASE "dcops_bench_health"')
        postgres = postgres.rsplit("/", 1)[0] + "/dcops_bench_health"
    try:
        built = datetime.now(UTC)
        settings, database, counts = history_database(root, name, 1000, now=built, days=35,
                                                      outages_per_week=2, seed=3, url=postgres)
        # The windows end a minute after the history does, the same for every scrape, so that
        # scrapes can be compared byte for byte.
        now = built + timedelta(minutes=1)
        runs = 10 if quick else 25
        registry = CollectorRegistry()
        collector = InventoryCollector(database, registry=registry, now=lambda: now)
        print(f"  in process ({where}, uncached, {runs} runs each after a warm-up):")
        figures = time_collector(database, registry, collector, runs, "dcops collector")
        if figures.get("identical") == 0.0:
            problems.append(f"collector.exposition() differs from generate_latest on the 1,000-programme history ({where})")
        scrapes = time_scrapes(database, runs, fast=False, now=now)
        wired = server_uses_fast_render()
        print(f"  HTTP GET /metrics, MetricsServer(cache_seconds=0) as it is (render = "
              f"{'collector.exposition()' if wired else 'generate_latest(registry)'}): {spread(scrapes)}")
        results += [(f"/metrics HTTP, 1,000 programmes, uncached ({where})", statistics.median(scrapes), "s",
                     SCRAPE_TARGET),
                    (f"  collect() + generate_latest in process ({where})", figures["generate_latest"], "s", None)]
        if "exposition" in figures:
            results.append((f"  collector.exposition() in process ({where})", figures["exposition"], "s", None))
            if not wired:
                fast = time_scrapes(database, runs, fast=True, now=now)
                print(f"  HTTP GET /metrics with MetricsServer.render = collector.exposition (the proposed "
                      f"one-line change in server.py): {spread(fast)}")
                results.append((f"/metrics HTTP, render = exposition() (proposed) ({where})",
                                statistics.median(fast), "s", SCRAPE_TARGET))
        database.dispose()
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql('DROP DATABASE IF EXISTS "dcops_bench_health" WITH (FORCE)')
            admin.dispose()


def metrics_10k(root: Path, quick: bool, results: list, problems: list[str]) -> None:
    """10,000 programmes: the dcops collector's registry against plain Gauges holding the same series."""
    from prometheus_client import CollectorRegistry, generate_latest

    from dcops.metrics.collector import InventoryCollector

    built = datetime.now(UTC)
    settings, database, counts = history_database(root, "metrics-10k", 10_000, now=built, days=35,
                                                  outages_per_week=2, seed=4)
    now = built + timedelta(minutes=1)
    registry = CollectorRegistry()
    collector = InventoryCollector(database, registry=registry, now=lambda: now)
    t0 = time.perf_counter()
    first = generate_latest(registry)
    print(f"  first scrape (nothing kept yet): {ms(time.perf_counter() - t0)}; {series_of(first)} series, "
          f"{mb(len(first))} of text")
    gauges = gauge_registry(collector.snapshot())
    same = generate_latest(gauges) == generate_latest(registry)
    print(f"  Gauges registry built from the collector's families: its text is "
          f"{'byte-identical to' if same else 'DIFFERENT FROM'} the collector's")
    if not same:
        problems.append("the Gauges peer does not hold the same series as the dcops collector")
    runs = 3 if quick else 7
    peer, peer_times = median_of(lambda: generate_latest(gauges), runs)
    plain, plain_times = median_of(lambda: generate_latest(registry), runs)
    print(f"    generate_latest(Gauges registry)              {spread(peer_times)}")
    print(f"    generate_latest(dcops registry), uncached     {spread(plain_times)}")
    results += [("10,000 programmes: generate_latest(Gauges) (peer)", peer, "s", None),
                ("10,000 programmes: generate_latest(dcops registry)", plain, "s", None)]
    exposition = fast_render(collector)
    wired = server_uses_fast_render()
    # The target applies to what /metrics serves; the other path is shown for information.
    results.append((f"ratio Gauges / dcops generate_latest{' (what /metrics serves)' if not wired else ''}",
                     peer / plain, "x", None if wired and exposition is not None else GAUGE_RATIO_TARGET))
    if exposition is not None:
        fast, fast_times = median_of(exposition, runs)
        identical = exposition() == generate_latest(registry)
        print(f"    collector.exposition(), uncached             {spread(fast_times)} "
              f"({'byte-identical' if identical else 'DIFFERENT'})")
        if not identical:
            problems.append("collector.exposition() differs from generate_latest on 10,000 programmes")
        results += [("10,000 programmes: collector.exposition()", fast, "s", None),
                    (f"ratio Gauges / dcops exposition(){' (what /metrics serves)' if wired else ''}",
                     peer / fast, "x", GAUGE_RATIO_TARGET)]
        print(f"  ratios: Gauges / dcops generate_latest {peer / plain:.2f}x, Gauges / dcops exposition() "
              f"{peer / fast:.2f}x (target >= {GAUGE_RATIO_TARGET:g}x)")
    database.dispose()


# --------------------------------------------------------------------------- 5: a year of history


def build_latency(database, *, now: datetime, seed: int) -> dict[str, int]:
    """What compaction leaves of a year of 1-minute probes: hourly rollups for the last 14 days,
    daily ones before, raw results for the last 48 hours (1 a minute per check)."""
    from sqlalchemy import select

    from dcops.health.store import DEFAULT_HOURLY_RETENTION, DEFAULT_RAW_RETENTION
    from dcops.models import Endpoint, LatencyRollup, ProbeResult

    rng = random.Random(seed)
    with database.transaction() as conn:
        checks = [row[0] for row in conn.execute(select(Endpoint.__table__.c.id))]
    hour_us, day_us, minute_us = 3_600_000_000, 86_400_000_000, 60_000_000
    now_us = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    this_hour = now_us - now_us % hour_us
    cutoff = this_hour - DEFAULT_HOURLY_RETENTION // timedelta(microseconds=1)
    first_day = (now_us - 365 * day_us) - (now_us - 365 * day_us) % day_us
    rollups, raw = [], []

    def rollup(check: int, start: int, period: str, count: int) -> tuple:
        failures = rng.randint(1, count // 4) if rng.random() < (0.004 if period == "hour" else 0.09) else 0
        mean = rng.lognormvariate(-3, 0.5)
        fast = round(count * rng.uniform(0.75, 0.95))
        return (check, start, period, count, failures, round(mean * count, 6), round(mean / 3, 6),
                round(mean * rng.uniform(3, 30), 6), fast, fast + (count - fast) * 9 // 10, count - failures // 2,
                count - failures // 4)

    for check in checks:
        rollups += [rollup(check, day, "day", 1440) for day in range(first_day, cutoff - cutoff % day_us, day_us)]
        rollups += [rollup(check, hour, "hour", 60) for hour in range(cutoff - cutoff % day_us, this_hour + 1, hour_us)]
        start = now_us - DEFAULT_RAW_RETENTION // timedelta(microseconds=1)
        raw += [(check, at + rng.randrange(1_000_000), rng.random() > 0.002, round(rng.lognormvariate(-3, 0.5), 6), "")
                for at in range(start, now_us, minute_us)]
    with database.transaction() as conn:
        bulk_insert(conn, LatencyRollup.__table__,
                    ("endpoint_id", "period_start", "period", "count", "failures", "sum_seconds", "min_seconds",
                     "max_seconds", "le_0_1", "le_0_5", "le_1", "le_5"), rollups, times=("period_start",))
        bulk_insert(conn, ProbeResult.__table__, ("endpoint_id", "at", "success", "duration_seconds", "reason"), raw,
                    times=("at",))
    return {"rollups": len(rollups), "raw": len(raw), "hourly_days": DEFAULT_HOURLY_RETENTION.days}


def storage_year(root: Path, quick: bool, results: list, problems: list[str]) -> None:
    from dcops.metrics.collector import InventoryCollector

    now = datetime.now(UTC)
    settings, database, counts = history_database(root, "year", 200, now=now, days=365, outages_per_week=0.75, seed=7)
    t0 = time.perf_counter()
    latency = build_latency(database, now=now, seed=8)
    print(f"  plus {latency['rollups']} latency rollups (hourly for the last {latency['hourly_days']} days, daily "
          f"before) and {latency['raw']} raw "
          f"results (48 h at 1 a minute per check), in {fmt(time.perf_counter() - t0)}")
    database.dispose()
    path = root / "year" / "dcops.db"
    import sqlite3

    raw = sqlite3.connect(path)
    try:
        raw.execute("VACUUM")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            tables = raw.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        except sqlite3.DatabaseError:  # SQLite built without the dbstat table
            tables = []
    finally:
        raw.close()
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob("dcops.db-*"))
    print(f"  after VACUUM: {mb(size)} on disk; largest tables and indexes:")
    for name, pages in tables[:8]:
        print(f"    {name:<40} {mb(pages)}")
    results.append(("a year of 200 programmes, SQLite file after VACUUM", size, "MB", STORAGE_TARGET * 1e6))

    runs = 3 if quick else 7
    cold = []
    at = now + timedelta(minutes=1)
    for _ in range(runs):
        collector = InventoryCollector(database, now=lambda: at)
        gc.collect()
        t0 = time.perf_counter()
        body = collector.exposition() if fast_render(collector) else None
        if body is None:
            collector.snapshot()
        cold.append(time.perf_counter() - t0)
    warm, warm_times = median_of(collector.snapshot, runs)
    ratios = sum(1 for family in collector.snapshot() if family.name == "dcops_programme_availability_ratio"
                 for sample in family.samples if sample.labels["window"] == "30d")
    print(f"  every programme's availability (1d, 7d, 30d) through the exporter's collector, from a fresh "
          f"collector (reads the month of intervals): {spread(cold)}; {ratios} 30-day ratios")
    print(f"  the same, collector already running (incremental read): {spread(warm_times)}")
    if ratios < 190:
        problems.append(f"only {ratios} programmes have a 30-day availability ratio (expected about 200)")
    results += [("a year of 200 programmes: availability of all, fresh collector", statistics.median(cold), "s",
                 AVAILABILITY_TARGET),
                ("  the same, collector running (info)", warm, "s", None)]
    database.dispose()


def import_week(root: Path, quick: bool, results: list, problems: list[str]) -> None:
    """dcops.health.importer.import_history of a week (quick: 2 days) of 1-minute results for 10 checks."""
    from dcops.health.importer import import_history
    from dcops.inventory.service import load_directory

    days = 2 if quick else 7
    settings, database = make_database(root, "import")
    inventory = root / "import-inventory"
    write_inventory(inventory, ((i, [{"name": name, "kind": "http", "target": f"https://prog-{i}.gov.la/{name}"}
                                     for name in ("web", "api")]) for i in range(5)))
    load_directory(database, inventory, actor="bench")
    rng = random.Random(9)
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    minutes = days * 1440
    path = root / "history.csv"
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "programme", "check", "success", "duration", "reason"])
        for i in range(5):
            for name in ("web", "api"):
                down_until = -1
                for m in range(minutes):
                    if m > down_until and rng.random() < 3 / 1440:  # about 3 outages a day
                        down_until = m + rng.randint(2, 30)
                    ok = m > down_until
                    at = end - timedelta(minutes=minutes - m) + timedelta(seconds=rng.random())
                    writer.writerow([at.isoformat().replace("+00:00", "Z"), f"prog-{i:05d}", name,
                                     "true" if ok else "false", f"{rng.lognormvariate(-3, 0.5):.4f}",
                                     "" if ok else "timeout"])
                    rows += 1
    t0 = time.perf_counter()
    summary = import_history(database, path)
    seconds = time.perf_counter() - t0
    print(f"  import_history of {rows} rows ({days} days x 1/min x 10 checks, {mb(path.stat().st_size)} CSV): "
          f"{fmt(seconds)}, {rows / seconds:,.0f} rows/s; {summary.programme_changes} programme state changes")
    if summary.rows != rows:
        problems.append(f"import_history imported {summary.rows} rows of {rows}")
    results.append((f"import_history, {rows} rows (rate {rows / seconds:,.0f}/s) (info)", seconds, "s", None))
    database.dispose()


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure, not the benchmark)")
    parser.add_argument("--parts", default="1,2,3,4,5", help="which parts to run, e.g. 3,4 (default: all)")
    parser.add_argument("--postgres", metavar="URL", help="also run part 3 on PostgreSQL: the URL of a role that "
                        "may create databases (a database dcops_bench_health is made and dropped)")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",") if p.strip()}
    if not parts <= {1, 2, 3, 4, 5}:
        parser.error("--parts takes numbers from 1 to 5")

    import sqlite3
    from importlib import metadata

    results: list[tuple[str, float, str, float | None]] = []
    problems: list[str] = []
    print(f"dcops health benchmark{' (--quick)' if args.quick else ''}: parts {','.join(map(str, sorted(parts)))}")
    print(f"  python {sys.version.split()[0]} ({sys.executable}), SQLite {sqlite3.sqlite_version}, "
          f"prometheus_client {metadata.version('prometheus_client')}, {os.cpu_count()} CPUs")
    import dcops

    print(f"  dcops from {Path(dcops.__file__).parent}")
    print_busy("CPU times are printed alongside")
    print("  PYTHONDONTWRITEBYTECODE removed from every subprocess' environment "
          f"(it is {os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')!r} here).")
    print()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcops-bench-health-") as tmp:
        root = Path(tmp)
        targets = None
        try:
            if parts & {1, 2}:
                targets = Targets()
            dcops_round = None
            if 1 in parts:
                print("1. one probe round over 2,000 HTTP targets on loopback")
                dcops_round = probe_rounds(root, targets, 2000, 1 if args.quick else 3, results, problems)
                cli_rounds(root, targets, 1000, 2 if args.quick else 3, results, problems)
                print()
            if 2 in parts:
                print("2. the same 2,000 targets through prometheus-blackbox-exporter")
                blackbox_rounds(root, targets, 2000, 1 if args.quick else 3, dcops_round, results, problems)
                print()
            if targets is not None:
                targets.stop()
                targets = None
            if 3 in parts:
                print("3. /metrics for 1,000 programmes with a month of history")
                metrics_1k(root, args.quick, results, problems)
                if args.postgres:
                    metrics_1k(root, args.quick, results, problems, postgres=args.postgres)
                print()
            if 4 in parts:
                print("4. /metrics for 10,000 programmes: the dcops collector against plain Gauges")
                metrics_10k(root, args.quick, results, problems)
                print()
            if 5 in parts:
                print("5. a year of 1-minute probes for 200 programmes, as the store keeps it")
                storage_year(root, args.quick, results, problems)
                import_week(root, args.quick, results, problems)
                print()
        except CommandFailed as error:
            print(f"\nERROR: {error}", file=sys.stderr)
            return 1
        finally:
            if targets is not None:
                targets.stop()

    return print_summary(results, problems=problems, started=started, note=busy_note("at the end"))


if __name__ == "__main__":
    sys.exit(main())
