"""Benchmark of a team at once: the soak of tests/soak.py for minutes, on PostgreSQL and on SQLite.

What it measures (wall time; each operator is a process of its own running real `dcops` commands
one after another, `dcops serve` probing beside them, `dcops probe sync` reading a real Prometheus
and blackbox_exporter when they are installed; tests/soak.py says what each does and checks):

1. PostgreSQL, --writers operators (default 10) for --minutes (default 5), in a database made for
   the run (dcops_bench_soak, dropped after) through the URL of a role that may create databases
   (--postgres, default DCOPS_TEST_POSTGRES_URL). Printed: commands and approvals per second
   (approvals placed, and approvals attempted, most of them refused for capacity on clusters kept
   nearly full), the p50 / p95 / max wall seconds per command kind, what was refused and why.
2. SQLite, the same soak at --sqlite-writers operator counts (default 2, 4, 6, 8, 10, 12), each for
   --sqlite-minutes (default 1): how many commands the busy timeout (DCOPS_BUSY_TIMEOUT_MS, 5 s)
   refused ("the database is locked"), so the largest count it holds without one.

Targets (the issue's): every run leaves 0 errors that are not user errors, 0 overcommitted cluster
resources, the audit chain intact, 0 deadlocks (PostgreSQL's own count), every command finished and
nothing a command reported lost; a run that breaks one fails the benchmark (exit 1). The rates and
latencies are figures, not targets: on a machine of two cores, ten operator processes, `dcops
serve` and Prometheus share the CPUs, so the latencies are mostly the wait for a CPU.

Run it from the project root, with dcops installed with its test extra (`pip install -e ".[test]"`):

    python3 bench/bench_soak.py                          # 5 min on PostgreSQL, then the SQLite sweep (~15 min)
    python3 bench/bench_soak.py --minutes 1 --sqlite-writers 4,8   # quicker
    python3 bench/bench_soak.py --database sqlite        # only the sweep
    python3 bench/bench_soak.py --runner subprocess      # each command a `python -m dcops` process
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the soak driver and the real-server starters

from benchlib import busy_note, make_database, print_busy, print_summary

DEFAULT_POSTGRES = "postgresql+psycopg://dcops:dcops@127.0.0.1:5432/postgres"
BENCH_DATABASE = "dcops_bench_soak"


def _postgres_database(admin_url: str) -> tuple[str, object]:
    """A fresh database for the run, and the admin engine that drops it after."""
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{BENCH_DATABASE}"')
    return admin_url.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}", admin


def _drop(admin) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    admin.dispose()


def _run(label: str, database_url: str, workdir: Path, *, writers: int, seconds: float, runner: str,
         problems: list[str]):
    import soak

    print(f"  {label}: {writers} operators for {seconds:.0f} s ({runner}) ...", flush=True)
    result = soak.soak(database_url, workdir, writers=writers, duration_seconds=seconds, runner=runner)
    for line in result.summary().splitlines():
        print(f"    {line}")
    if not result.ok:
        problems.append(f"{label}, {writers} operators: " + result.summary().splitlines()[0])
    return result


def _describe(result) -> dict[str, float]:
    """Print the rates and the latency table; return the figures for the summary."""
    wall = result.wall_seconds
    commands = len(result.outcomes)
    placed = result.count("approve", ok=True)
    attempted = result.count("approve")
    print(f"    {commands / wall:.1f} commands/s; approvals placed {placed} ({placed / wall:.2f}/s) of "
          f"{attempted} attempted ({attempted / wall:.2f}/s)")
    print(f"    {'command':<20} {'n':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    latencies = result.latencies()
    for kind, row in latencies.items():
        print(f"    {kind:<20} {row['n']:>5} {row['p50']:>7.2f} {row['p95']:>7.2f} {row['max']:>7.2f}")
    every = sorted(o.seconds for o in result.outcomes if o.exit_code is not None and o.kind != "serve")
    import soak

    overall = {"p50": soak.percentile(every, 50), "p95": soak.percentile(every, 95)} if every else {}
    if overall:
        print(f"    every command: p50 {overall['p50']:.2f} s, p95 {overall['p95']:.2f} s")
    refusals = result.refusals()
    if refusals:
        print("    refused (user errors), most frequent first:")
        for what, count in list(refusals.items())[:12]:
            print(f"      {count:>5}  {what}")
    return {"placed_per_s": placed / wall, "attempted_per_s": attempted / wall, "commands_per_s": commands / wall,
            **{f"{k}_all": v for k, v in overall.items()},
            "approve_p95": latencies.get("approve", {}).get("p95", float("nan"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="PostgreSQL soak length (default 5)")
    parser.add_argument("--writers", type=int, default=10, help="operators on PostgreSQL (default 10)")
    parser.add_argument("--database", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("DCOPS_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="a role that may create databases (a database dcops_bench_soak is made and dropped)")
    parser.add_argument("--sqlite-writers", default="2,4,6,8,10,12", help="operator counts of the SQLite sweep")
    parser.add_argument("--sqlite-minutes", type=float, default=1.0, help="each SQLite run's length (default 1)")
    parser.add_argument("--runner", choices=("inprocess", "subprocess"), default="inprocess")
    args = parser.parse_args()
    try:
        sweep = [int(n) for n in args.sqlite_writers.split(",") if n.strip()]
    except ValueError:
        parser.error("--sqlite-writers: operator counts separated by commas, as in 2,4,8")
    if args.writers < 1 or any(n < 1 for n in sweep) or args.minutes <= 0 or args.sqlite_minutes <= 0:
        parser.error("operator counts and minutes must be positive")

    started = time.perf_counter()
    print(f"Soak benchmark ({os.cpu_count()} CPUs)")
    print_busy()
    results, problems = [], []
    with tempfile.TemporaryDirectory(prefix="dcops-bench-soak-") as tmp:
        root = Path(tmp)
        if args.database in ("postgresql", "both"):
            print("1. PostgreSQL")
            url, admin = _postgres_database(args.postgres)
            try:
                make_database(root, "pg-home", url)[1].dispose()
                result = _run("PostgreSQL", url, root / "pg", writers=args.writers, seconds=args.minutes * 60,
                              runner=args.runner, problems=problems)
                figures = _describe(result)
            finally:
                _drop(admin)
            label = f"PostgreSQL x{args.writers}"
            results += [(f"{label}: approvals placed", figures["placed_per_s"], "/s", None),
                        (f"{label}: approvals attempted", figures["attempted_per_s"], "/s", None),
                        (f"{label}: commands", figures["commands_per_s"], "/s", None),
                        (f"{label}: p95, every command", figures.get("p95_all", float("nan")), "s", None),
                        (f"{label}: p95, approvals", figures["approve_p95"], "s", None),
                        (f"{label}: errors not a user's", len(result.failures), "n", 0),
                        (f"{label}: deadlocks", result.deadlocks or 0, "n", 0)]
        if args.database in ("sqlite", "both"):
            print("2. SQLite, operators until the busy timeout bites")
            held, clean_so_far = 0, True
            for writers in sorted(sweep):
                _settings, database = make_database(root, f"sqlite-{writers}")
                database.dispose()
                url = f"sqlite:///{root / f'sqlite-{writers}' / 'dcops.db'}"
                result = _run("SQLite", url, root / f"sqlite-{writers}-soak", writers=writers,
                              seconds=args.sqlite_minutes * 60, runner=args.runner, problems=problems)
                figures = _describe(result)
                busy = len(result.busy())
                print(f"    refused for the busy timeout: {busy}")
                if busy == 0 and clean_so_far:
                    held = writers  # it and every smaller count: none refused
                else:
                    clean_so_far = False
                label = f"SQLite x{writers}"
                results += [(f"{label}: approvals placed", figures["placed_per_s"], "/s", None),
                            (f"{label}: p95, every command", figures.get("p95_all", float("nan")), "s", None),
                            (f"{label}: refused, busy", busy, "n", None),
                            (f"{label}: errors not a user's", len(result.failures), "n", 0)]
            print(f"    SQLite held {held} operators without a command refused for the busy timeout"
                  if held else "    SQLite refused commands for the busy timeout at every count tried")
            results.append(("SQLite: operators held, none busy", held, "n", None))
    return print_summary(results, problems=problems, started=started, note=busy_note("at end"))


if __name__ == "__main__":
    sys.exit(main())
