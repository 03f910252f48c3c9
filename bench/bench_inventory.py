"""Benchmark of the dcops CLI on a large generated inventory.

What it measures (every command run as a subprocess, wall time with time.perf_counter):

1. `dcops --help`: median of >= 15 runs after 2 warm-ups; target <= 0.15 s.
   Measured side by side, as peers: bare `python3 -c pass` and `python3 -c "import typer"`,
   so the ratio of dcops' start-up to the interpreter's and to typer's can be read.
2. `dcops inventory load DIR` of a generated inventory of 10,000 programmes
   (20 ministries, 2 sites, 4 clusters, one file per ministry under programmes/):
   - into a fresh SQLite database (DCOPS_HOME a new temp dir, after `dcops db upgrade`,
     which is not timed): median of 3 runs, each into its own fresh database; target <= 10 s;
   - the same files again into the loaded database (the "nothing to change" plan);
   - files in which 100 programmes changed (name and endpoint port) into the loaded database.
   The plan summary printed by each load is checked (10,000 created / nothing to do / 100 updated).
3. `dcops programme list --output json` over those programmes: median of >= 10 runs;
   target <= 0.5 s; the output must parse as JSON and hold one entry per programme.

The CLI runs as `sys.executable -m dcops` (the interpreter running this script), not the
`dcops` console script, so that no shell shim (pyenv) is measured. PYTHONDONTWRITEBYTECODE
is removed from the environment of every subprocess, so that .pyc files are written once
(during the warm-ups) and reused afterwards, as on an installed system.

The script exits 1 when a target is missed, a command fails (its stderr is printed) or a
sanity check fails; 0 otherwise. (It used to exit 0 when only a target was missed; all five
bench scripts now share this convention and their summary printer, benchlib.print_summary.)

Run it from the project root, with dcops installed (`pip install -e .`):

    python3 bench/bench_inventory.py              # 10,000 programmes, full repetitions (~1-3 min)
    python3 bench/bench_inventory.py --quick      # fewer repetitions
    python3 bench/bench_inventory.py --programmes 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import CLUSTERS, CommandFailed, Dumper, clean_env, describe, dump, fmt, print_summary, run, site_documents

MINISTRIES = 20
CHANGED_PROGRAMMES = 100
CLASSIFICATIONS = ("public", "internal", "confidential", "secret")
BACKUP_TIERS = ("none", "daily", "hourly", "continuous")


# --------------------------------------------------------------------------- running


def repeat(argv: list[str], env: dict[str, str], runs: int, warmups: int = 0) -> list[float]:
    for _ in range(warmups):
        run(argv, env)
    return [run(argv, env)[0] for _ in range(runs)]


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------- inventory


def build_inventory(count: int, seed: int = 20240601) -> dict:
    """The inventory as plain data: common sections and programmes per ministry."""
    rng = random.Random(seed)
    ministries = [f"min{k:02d}" for k in range(MINISTRIES)]
    programmes: dict[str, list[dict]] = {m: [] for m in ministries}
    needed = {cluster: {"vcpu": 0, "ram_gib": 0, "storage_gib": 0} for _site, cluster in CLUSTERS}
    slugs: list[str] = []
    for i in range(count):
        slug = f"prog-{i:05d}"
        ministry = ministries[i % MINISTRIES]
        cluster = CLUSTERS[i % len(CLUSTERS)][1]
        allocation = {
            "cluster": cluster,
            "vcpu": rng.choice((2, 4, 8, 16)),
            "ram_gib": rng.choice((4, 8, 16, 32, 64)),
            "storage_gib": rng.choice((50, 100, 250, 500, 1000)),
        }
        for resource in ("vcpu", "ram_gib", "storage_gib"):
            needed[cluster][resource] += allocation[resource]
        n = i + 1  # 127.0.0.1 upwards, unique per programme
        address = f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        depends_on = []
        if i >= 10 and i % 3 == 0:  # links to earlier programmes only: no cycles
            depends_on = sorted({slugs[rng.randrange(i)] for _ in range(rng.randint(1, 2))})
        doc = {
            "slug": slug,
            "name": f"Programme {i} of {ministry}",
            "ministry": ministry,
            "description": f"Generated benchmark programme number {i}.",
            "tier": 1 + i % 3,
            "classification": CLASSIFICATIONS[i % 4],
            "environment": "production" if i % 5 else "staging",
            "contacts": {"owner": f"owner-{i}@{ministry}.gov.la", "security": f"security@{ministry}.gov.la"},
            "personal_data": i % 2 == 0,
            "recovery": {"rto_minutes": 240, "rpo_minutes": 60, "backup_tier": BACKUP_TIERS[i % 4]},
            "review_date": f"2027-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "depends_on": depends_on,
            "endpoints": [{"name": "web", "kind": "http", "target": f"http://127.0.0.1:{1024 + i % 60000}/healthz"}],
            "allocations": [allocation],
            "hosts": [{"name": f"{slug}-app1", "address": address, "cluster": cluster, "role": "app"}],
        }
        programmes[ministry].append(doc)
        slugs.append(slug)

    def total(resource: str, amount: int) -> int:
        from dcops.vocabulary import MAX_RESOURCE_AMOUNT

        return min(MAX_RESOURCE_AMOUNT[resource], max(1000, amount * 2))

    sites = site_documents(lambda cluster, resource: total(resource, needed[cluster][resource]))
    common = {
        "sla_tiers": [
            {"tier": 1, "name": "critical", "sla_target_percent": 99.9},
            {"tier": 2, "name": "important", "sla_target_percent": 99.5},
            {"tier": 3, "name": "standard", "sla_target_percent": 99.0},
        ],
        "ministries": [
            {"code": m, "name": f"Ministry number {k}", "contact": f"it@{m}.gov.la"} for k, m in enumerate(ministries)
        ],
    }
    return {"common": common, "sites": {"sites": sites}, "programmes": programmes}


def change_programmes(inventory: dict, count: int, revision: int) -> int:
    """Change the name and endpoint port of `count` programmes spread over all files."""
    everything = [doc for docs in inventory["programmes"].values() for doc in docs]
    everything.sort(key=lambda doc: doc["slug"])
    step = max(1, len(everything) // count)
    changed = 0
    for doc in everything[::step][:count]:
        doc["name"] = f"{doc['name'].split(' (rev')[0]} (rev {revision})"
        doc["endpoints"][0]["target"] = f"http://127.0.0.1:{20000 + revision}/healthz"
        changed += 1
    return changed


def write_inventory(directory: Path, inventory: dict) -> None:
    directory.mkdir(parents=True)
    dump(directory / "common.yaml", inventory["common"])
    dump(directory / "sites.yaml", inventory["sites"])
    for ministry, docs in inventory["programmes"].items():
        dump(directory / "programmes" / f"{ministry}.yaml", {"programmes": docs})


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programmes", type=int, default=10_000, help="programmes to generate (default 10000)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure, not the benchmark)")
    args = parser.parse_args()
    if args.programmes < CHANGED_PROGRAMMES:
        parser.error(f"--programmes must be at least {CHANGED_PROGRAMMES}")

    help_runs, list_runs, load_runs = (5, 3, 1) if args.quick else (15, 10, 3)
    warmups = 2
    dcops = [sys.executable, "-m", "dcops"]
    n = args.programmes
    results: list[tuple[str, float, str, float | None]] = []  # (measure, median, unit, target)
    problems: list[str] = []

    print(f"dcops benchmark: {n} programmes{' (--quick)' if args.quick else ''}")
    print(f"  python: {sys.executable} ({sys.version.split()[0]})")
    print(f"  CLI run as: {' '.join(dcops)}   (module, not the console script {shutil.which('dcops')})")
    print("  PYTHONDONTWRITEBYTECODE removed from every subprocess' environment "
          f"(it is {os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')!r} here), "
          f"so .pyc files are written and reused; {warmups} warm-up runs come first.")
    print()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcops-bench-") as tmp:
        root = Path(tmp)
        try:
            # 1. start-up ------------------------------------------------------------
            env = clean_env(root / "home-help")
            print(f"1. start-up ({warmups} warm-ups each, then {help_runs} runs, interleaved)")
            peers = {
                "python3 -c pass": [sys.executable, "-c", "pass"],
                'python3 -c "import typer"': [sys.executable, "-c", "import typer"],
                "dcops --help": [*dcops, "--help"],
            }
            for argv in peers.values():
                repeat(argv, env, 0, warmups)
            times: dict[str, list[float]] = {label: [] for label in peers}
            for _ in range(help_runs):  # interleaved, so drift in machine load hits all alike
                for label, argv in peers.items():
                    times[label].append(run(argv, env)[0])
            _elapsed, result = run([*dcops, "--help"], env)
            if "inventory" not in result.stdout:
                problems.append("dcops --help does not list the inventory command")
            for label, values in times.items():
                describe(label, values)
            base = statistics.median(times["python3 -c pass"])
            typer_time = statistics.median(times['python3 -c "import typer"'])
            help_time = statistics.median(times["dcops --help"])
            print(f"  ratios: dcops --help = {help_time / base:.1f}x bare python, "
                  f"{help_time / typer_time:.2f}x import typer; "
                  f"dcops' own share above import typer: {fmt(help_time - typer_time)}")
            results += [
                ("python3 -c pass (peer)", base, "s", None),
                ("python3 -c 'import typer' (peer)", typer_time, "s", None),
                ("dcops --help", help_time, "s", 0.15),
            ]
            print()

            # 2. inventory load ---------------------------------------------------------
            print(f"2. inventory load of {n} programmes")
            t0 = time.perf_counter()
            inventory = build_inventory(n)
            base_dir = root / "inventory-0"
            write_inventory(base_dir, inventory)
            files = sorted(base_dir.rglob("*.yaml"))
            size = sum(p.stat().st_size for p in files)
            print(f"  generated {len(files)} files, {size / 1e6:.1f} MB, in {time.perf_counter() - t0:.1f} s "
                  f"(YAML dumper {Dumper.__name__}): {base_dir}")

            # every programme, ministry, site and cluster is created; the 3 SLA tiers the
            # migration seeds are unchanged
            expected_creates = n + MINISTRIES + len({site for site, _c in CLUSTERS}) + len(CLUSTERS)
            fresh_times = []
            home = None
            for i in range(load_runs):
                home = root / f"home-load-{i}"
                env = clean_env(home)
                run([*dcops, "db", "upgrade"], env)  # not timed
                elapsed, result = run([*dcops, "inventory", "load", str(base_dir)], env)
                fresh_times.append(elapsed)
                summary = last_line(result)
                print(f"  fresh DB run {i + 1}: {fmt(elapsed)}   [{summary}]")
                if not summary.startswith(f"applied: {expected_creates} create, 0 update, 0 retire"):
                    problems.append(f"fresh load {i + 1}: expected {expected_creates} creates, got {summary!r}")
            describe("load into a fresh DB", fresh_times)
            results.append((f"inventory load, {n} new", statistics.median(fresh_times), "s", 10.0))

            env = clean_env(home)  # the last loaded database
            same_times = []
            for i in range(load_runs):
                elapsed, result = run([*dcops, "inventory", "load", str(base_dir)], env)
                same_times.append(elapsed)
                summary = last_line(result)
                print(f"  same files again, run {i + 1}: {fmt(elapsed)}   [{summary}]")
                if not summary.startswith("nothing to do"):
                    problems.append(f"reload {i + 1}: expected nothing to do, got {summary!r}")
            describe("load, nothing to change", same_times)
            results.append((f"inventory load, {n} unchanged", statistics.median(same_times), "s", None))

            changed_times = []
            for revision in range(1, load_runs + 1):
                changed = change_programmes(inventory, CHANGED_PROGRAMMES, revision)
                directory = root / f"inventory-{revision}"
                write_inventory(directory, inventory)
                elapsed, result = run([*dcops, "inventory", "load", str(directory)], env)
                changed_times.append(elapsed)
                summary = last_line(result)
                print(f"  {changed} programmes changed, run {revision}: {fmt(elapsed)}   [{summary}]")
                if not summary.startswith(f"applied: 0 create, {changed} update"):
                    problems.append(f"changed load {revision}: expected {changed} updates, got {summary!r}")
            describe(f"load, {CHANGED_PROGRAMMES} changed", changed_times)
            results.append(
                (f"inventory load, {CHANGED_PROGRAMMES} changed", statistics.median(changed_times), "s", None))
            print()

            # 3. programme list ---------------------------------------------------------
            print(f"3. programme list --output json ({warmups} warm-ups, then {list_runs} runs)")
            argv = [*dcops, "programme", "list", "--output", "json"]
            repeat(argv, env, 0, warmups)
            list_times = []
            for _ in range(list_runs):
                elapsed, result = run(argv, env)
                list_times.append(elapsed)
            try:
                rows = json.loads(result.stdout)
            except json.JSONDecodeError as error:
                rows = None
                problems.append(f"programme list --output json: not JSON ({error})")
            if rows is not None:
                slugs = {row.get("slug") for row in rows} if isinstance(rows, list) else set()
                ok = isinstance(rows, list) and len(rows) == n and len(slugs) == n
                print(f"  output: {len(result.stdout) / 1e6:.1f} MB of JSON, "
                      f"{len(rows) if isinstance(rows, list) else '?'} entries "
                      f"({'OK' if ok else 'WRONG'}, expected {n})")
                if not ok:
                    problems.append(f"programme list: expected a list of {n} programmes")
            describe("programme list --output json", list_times)
            results.append((f"programme list --output json ({n})", statistics.median(list_times), "s", 0.5))
            print()
        except CommandFailed as error:
            print(f"\nERROR: {error}", file=sys.stderr)
            return 1

    return print_summary(results, problems=problems, started=started, value_header="median")


if __name__ == "__main__":
    sys.exit(main())
