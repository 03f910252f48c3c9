"""Benchmark of `dcops probe sync`: a month of 1-minute probes for 200 programmes read back from Prometheus.

What it measures (wall time with time.perf_counter; SQLite in a temp dir unless --postgres):

1. A month (30 days; --quick: 7) of probe_success at 60 s for 200 programmes, one http check each
   (8.64 million samples), is generated with outages (about 3 a month per check, 2 to 90 minutes,
   a tenth of them a single failure that damping holds back) and two prober-wide gaps of half an
   hour, written as OpenMetrics and backfilled with `promtool tsdb create-blocks-from openmetrics`;
   Debian's Prometheus 2.42 starts on that TSDB on a loopback port and compacts it (the sync is
   timed once its block count has stopped changing). Generation, backfill and start-up: information.
2. `dcops probe sync --prometheus URL --from START --to END` in a new process (interpreter start-up
   included) into a database holding the 200 programmes: target <= 30 s for the month (a week,
   --quick: information only). Its JSON
   summary gives the results written, the steps per verdict and the HTTP requests made.
3. Correctness: for 20 of the checks, the intervals the sync wrote are the pieces that
   dcops.health.history.fold_results (the store's own damping, one result at a time) makes of the
   generated samples; every check's step counts are the generated ones; a second sync (each check
   from its latest result) reads nothing and writes nothing.
4. Information: a re-sync of one day with --from, every result falling in measured time (the
   backfill path, one result at a time: how long the idempotent path takes per day).

The script exits 1 when a target is missed or a check fails, 0 otherwise (benchlib.print_summary).
Run it from the project root, with dcops installed (`pip install -e .`):

    python3 bench/bench_prometheus_sync.py            # a month (~3 min, most of it generating and backfilling)
    python3 bench/bench_prometheus_sync.py --quick    # a week
    python3 bench/bench_prometheus_sync.py --postgres postgresql+psycopg://dcops:dcops@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import CommandFailed, busy_note, clean_env, fmt, make_database, print_busy, print_summary, run  # noqa: E402
from bench_health import free_port, write_inventory  # noqa: E402

UTC = timezone.utc
PROGRAMMES = 200
INTERVAL = 60
SYNC_TARGET = 30.0  # s, a month of 200 programmes
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
CHECKED = 20  # checks compared interval by interval with fold_results


def endpoints(i: int) -> list[dict]:
    return [{"name": "web", "kind": "http", "target": f"https://prog-{i:05d}.gov.la/health"}]


def generate(days: int, end: int, seed: int) -> dict[str, list[tuple[int, int]]]:
    """Per check (programme slug), its (minute index, value) samples: outages, lone failures, gaps."""
    rng = random.Random(seed)
    steps = days * 1440
    gaps = set()
    for _ in range(2 * max(days // 30, 1)):
        start = rng.randrange(0, steps - 30)
        gaps.update(range(start, start + 30))
    history = {}
    for i in range(PROGRAMMES):
        down = set()
        for _ in range(max(1, round(rng.gauss(3 * days / 30, 1)))):
            start = rng.randrange(0, steps)
            length = 1 if rng.random() < 0.1 else rng.randint(2, 90)
            down.update(range(start, min(start + length, steps)))
        history[f"prog-{i:05d}"] = [(k, 0 if k in down else 1) for k in range(steps) if k not in gaps]
    return history


BLOCK_SECONDS = 7200  # Prometheus' (and promtool's) block range


def write_openmetrics(directory: Path, history: dict[str, list[tuple[int, int]]], first_step: int) -> tuple[list[Path], int]:
    """The samples as OpenMetrics files of one 2-hour block each (each sample at its step's end):
    promtool 2.42 reads its whole input once per block it writes, so a month in one file takes it
    hours, a file per block a minute. Returns the files and the number of samples."""
    directory.mkdir(parents=True)
    windows: dict[int, list[str]] = {}
    count = 0
    for slug, samples in history.items():
        head = f'probe_success{{check="web",job="dcops-blackbox",module="http_2xx",programme="{slug}"}} '
        for k, value in samples:
            moment = first_step + k * INTERVAL
            lines = windows.get(moment // BLOCK_SECONDS)
            if lines is None:
                lines = windows[moment // BLOCK_SECONDS] = []
            lines.append(f"{head}{value} {moment}\n")
        count += len(samples)
    files = []
    for window, lines in sorted(windows.items()):
        path = directory / f"{window}.om"
        path.write_text("# TYPE probe_success gauge\n" + "".join(lines) + "# EOF\n")
        files.append(path)
    return files, count


def promtool_backfill(files: list[Path], tsdb: Path) -> None:
    """One block per file, two promtool processes at a time."""
    running: list[subprocess.Popen] = []
    for path in files:
        running.append(subprocess.Popen([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(path),
                                         str(tsdb)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        if len(running) >= 2:
            _wait(running.pop(0))
    for process in running:
        _wait(process)


def _wait(process: subprocess.Popen) -> None:
    _out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"promtool failed: {err.decode()[-500:]}")


def api(base: str, path: str):
    with urllib.request.urlopen(f"{base}/api/v1/{path}", timeout=30) as response:
        return json.load(response)["data"]


def own_metric(base: str, name: str) -> float | None:
    """One of Prometheus' own metrics, from its /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def blocks_loaded(base: str) -> float | None:
    return own_metric(base, "prometheus_tsdb_blocks_loaded")


def start_prometheus(root: Path, tsdb: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    log = (root / "prometheus.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen([PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tsdb}", "--storage.tsdb.retention.time=3650d",
                                f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    # Prometheus compacts the backfilled 2-hour blocks into larger ones from a minute after it starts:
    # the sync is timed once that is over (a Prometheus that has run for a while), not during it.
    deadline = time.monotonic() + 600
    last, steady_since = None, time.monotonic()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: see {root / 'prometheus.log'}")
        try:
            loaded = blocks_loaded(base)
            compactions = own_metric(base, "prometheus_tsdb_compactions_total") or 0
        except OSError:
            loaded, compactions = None, 0
        if loaded is not None and loaded != last:
            last, steady_since = loaded, time.monotonic()
        if loaded is not None and time.monotonic() - steady_since > 15 and (compactions or time.monotonic() - started > 150):
            return process, base, time.perf_counter() - started
        time.sleep(1)
    raise RuntimeError("prometheus did not settle in 600 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def check_intervals(database, history: dict, first_step: int, problems: list[str]) -> None:
    """The check-level intervals of CHECKED checks against fold_results of their generated samples."""
    import sqlalchemy as sa

    from dcops.db import read_utc
    from dcops.health.history import Thresholds, fold_results

    for slug in list(history)[:: PROGRAMMES // CHECKED][:CHECKED]:
        results = ((datetime.fromtimestamp(first_step + k * INTERVAL, UTC), value == 1, "") for k, value in history[slug])
        pieces = fold_results(results, interval=timedelta(seconds=INTERVAL), thresholds=Thresholds())
        with database.transaction() as conn:
            rows = conn.execute(sa.text(
                "SELECT i.state, i.started_at, i.ended_at FROM state_interval i JOIN endpoint e ON e.id = i.endpoint_id "
                "JOIN programme p ON p.id = e.programme_id WHERE p.slug = :slug ORDER BY i.started_at"),
                {"slug": slug}).all()
            stored = [(state, read_utc(conn, began), read_utc(conn, ended)) for state, began, ended in rows]
        wanted = [(state, began, ended) for state, began, ended, _reason in pieces]
        # the last piece of fold_results ends one interval after the last result; the store's stays open
        if [s[:2] for s in stored] != [w[:2] for w in wanted] or [s[2] for s in stored[:-1]] != [w[2] for w in wanted[:-1]]:
            problems.append(f"{slug}: the synced intervals differ from fold_results' ({len(stored)} against "
                            f"{len(wanted)} pieces)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a week rather than a month")
    parser.add_argument("--postgres", help="a PostgreSQL URL whose role may create databases")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    days = 7 if args.quick else 30
    started = time.perf_counter()
    print(f"bench_prometheus_sync: {days} days of 1-minute probes for {PROGRAMMES} programmes, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}")
    print_busy()
    root = Path(tempfile.mkdtemp(prefix="dcops-bench-promsync-"))
    results, problems = [], []
    process = None
    postgres_name = None
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        end = int((now - timedelta(hours=3)).timestamp()) // 3600 * 3600
        first_step = end - (days * 1440 - 1) * INTERVAL
        t = time.perf_counter()
        history = generate(days, end, seed=14)
        files, samples = write_openmetrics(root / "om", history, first_step)
        generated = time.perf_counter() - t
        size = sum(path.stat().st_size for path in files)
        print(f"1. generated {samples:,} samples ({size / 1e6:.0f} MB of OpenMetrics in {len(files)} files) "
              f"in {fmt(generated)}")
        t = time.perf_counter()
        promtool_backfill(files, root / "tsdb")
        shutil.rmtree(root / "om")
        print(f"   promtool backfill {fmt(time.perf_counter() - t)}")
        process, base, settled = start_prometheus(root, root / "tsdb")
        print(f"   Prometheus {api(base, 'status/buildinfo')['version']} up and compacted in {fmt(settled)} "
              f"({blocks_loaded(base):g} blocks)")

        url = None
        if args.postgres:
            import sqlalchemy as sa

            postgres_name = f"dcops_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{postgres_name}"')
            admin.dispose()
            url = f"{args.postgres.rpartition('/')[0]}/{postgres_name}"
        settings, database = make_database(root, "db", url)
        from dcops.inventory.service import load_directory

        write_inventory(root / "inv", ((i, endpoints(i)) for i in range(PROGRAMMES)))
        load_directory(database, root / "inv", actor="bench")
        env = clean_env(root / "db", settings.database_url)
        iso = lambda seconds: datetime.fromtimestamp(seconds, UTC).isoformat()  # noqa: E731
        window = ["--from", iso(first_step - INTERVAL), "--to", iso(end)]

        seconds, result = run([sys.executable, "-m", "dcops", "probe", "sync", "--prometheus", base, *window,
                               "--output", "json"], env)
        summary = json.loads(result.stdout)
        print(f"2. dcops probe sync: {fmt(seconds)} end to end ({summary['seconds']:.2f} s inside), "
              f"{summary['requests']} requests, {summary['results']:,} results, {summary['checks']} checks, "
              f"{summary['changes']} programme state changes")
        # The target is the month's; a week (--quick) is information (its start-up is not a quarter of a month's).
        results.append((f"sync, {days} days x {PROGRAMMES} programmes", seconds, "s", SYNC_TARGET if days == 30 else None))
        results.append(("  results per second", summary["results"] / seconds, "/s", None))

        down = sum(1 for samples_ in history.values() for _k, value in samples_ if value == 0)
        if summary["results"] != samples or summary["steps"]["down"] != down or summary["steps"]["mixed"]:
            problems.append(f"the sync read {summary['results']} results ({summary['steps']}), the month holds "
                            f"{samples} ({down} down)")
        if summary["checks"] != PROGRAMMES or summary["unmatched"]:
            problems.append(f"checks synced {summary['checks']}, unmatched {summary['unmatched']}")
        check_intervals(database, history, first_step, problems)
        print(f"3. {CHECKED} checks' intervals compared with fold_results of their samples"
              + ("" if not problems else f": {len(problems)} problems"))

        seconds, result = run([sys.executable, "-m", "dcops", "probe", "sync", "--prometheus", base, "--to", iso(end),
                               "--output", "json"], env)
        again = json.loads(result.stdout)
        if again["wrote"] or again["results"]:
            problems.append(f"a second sync wrote something: {again}")
        results.append(("second sync (nothing new)", seconds, "s", None))
        seconds, result = run([sys.executable, "-m", "dcops", "probe", "sync", "--prometheus", base,
                               "--from", iso(end - 86400), "--to", iso(end), "--output", "json"], env)
        resync = json.loads(result.stdout)
        read = resync["steps"]["up"] + resync["steps"]["down"] + resync["steps"]["mixed"]
        if resync["wrote"] or resync["measured"] + resync["backfilled"] != read:
            problems.append(f"the re-sync of a day wrote something or lost results: {resync}")
        print(f"4. re-sync of the last day with --from: {fmt(seconds)}, {resync['measured']:,} results in measured "
              f"time, {resync['backfilled']} in time without data, wrote: {resync['wrote']}")
        results.append(("re-sync of one day (backfill path)", seconds, "s", None))
        database.dispose()
    except CommandFailed as error:
        problems.append(str(error))
    finally:
        if process is not None:
            stop(process)
        if postgres_name:
            import sqlalchemy as sa

            admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{postgres_name}" WITH (FORCE)')
            admin.dispose()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print()
    return print_summary(results, problems=problems, started=started, note=busy_note("at end"))


if __name__ == "__main__":
    sys.exit(main())
