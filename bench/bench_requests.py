"""Benchmark of hosting-request approval and of publishing the catalogue website.

What it measures (wall time with time.perf_counter; SQLite databases in a temp dir):

1. Approving 1,000 requests one after another through the library, in one process:
   an inventory of 20 ministries, 2 sites and 4 clusters large enough for every request,
   and a catalogue of 2 offerings (5 plans); 1,000 requests (classification internal, no
   personal data, so no security sign-off) are submitted with
   dcops.catalogue.requests.submit (not timed against a target, but the rate is printed),
   then 1,000 approve() calls are timed, each on its own and the loop as a whole;
   target: the loop <= 5 s (scaled to the count given with --requests). Per-approval
   median and p95 are printed. Every request must end approved, with its programme.
2. A single `dcops request approve ID` command as a subprocess (DCOPS_DATABASE_URL pointing
   at that database, which then holds the 1,000 approved programmes): median of >= 10 runs
   after 2 warm-ups, each run approving a different request submitted beforehand;
   target <= 0.6 s. `dcops --help` is timed alongside, as a peer, for the ratio.
   Both are run with two runners, reported side by side: `sys.executable -m dcops` and the
   `dcops` console script next to sys.executable (when present); runs are interleaved so
   that drift in machine load hits all alike.
3. Publishing the catalogue website from another database holding 50 offerings of 3 plans
   each and 1,000 programmes (none secret, so all are on the public site) spread over
   20 ministries:
   - dcops.catalogue.site.publish() through the library (site_data() read once, timed
     apart): median of 5 runs, each into a new folder; target <= 3 s;
   - `dcops catalogue publish OUT` as a subprocess: median of 3 runs after 2 warm-ups,
     each into a new folder; target <= 3 s.
   Each output must hold index.html, catalog.json (50 services, 150 plans) and 50 pages
   under offerings/. Part 3 runs last, so that a catalogue site that is still being
   written fails only its own part.

PYTHONDONTWRITEBYTECODE is removed from the environment of every subprocess, so that .pyc
files are written once (during the warm-ups) and reused afterwards, as on an installed system.

The script exits 1 when a target is missed, a command fails (its stderr is printed) or a
sanity check fails; 0 otherwise. (It used to exit 0 when only a target was missed; all five
bench scripts now share this convention and their summary printer, benchlib.print_summary.)

Run it from the project root, with dcops installed (`pip install -e .`):

    python3 bench/bench_requests.py              # full repetitions (~1 min)
    python3 bench/bench_requests.py --quick      # fewer repetitions
    python3 bench/bench_requests.py --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from benchlib import (CommandFailed, clean_env, describe, dump, fmt, make_database, ms, print_summary, run,
                      site_documents)

MINISTRIES = 20
# Plans requests cycle through: (offering, plan id, per-instance resources, instances, tiers).
REQUEST_PLANS = (
    ("vm", "vm-small", {"vcpu": 2, "ram_gib": 4, "storage_gib": 50}, 1, [2, 3]),
    ("vm", "vm-medium", {"vcpu": 4, "ram_gib": 16, "storage_gib": 100}, 2, [1, 2, 3]),
    ("vm", "vm-large", {"vcpu": 8, "ram_gib": 32, "storage_gib": 250}, 2, [1, 2, 3]),
    ("pg", "pg-small", {"vcpu": 2, "ram_gib": 8, "storage_gib": 100}, 1, [2, 3]),
    ("pg", "pg-ha", {"vcpu": 4, "ram_gib": 16, "storage_gib": 200}, 3, [1, 2]),
)
SITE_OFFERINGS = 50
SITE_PLANS_PER_OFFERING = 3
SITE_PROGRAMMES = 1000
APPROVE_TARGET = 5.0
CLI_APPROVE_TARGET = 0.6
PUBLISH_TARGET = 3.0


# --------------------------------------------------------------------------- running


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def runners() -> dict[str, list[str]]:
    """The ways to start the CLI: the module always, the console script when installed."""
    found = {"python -m dcops": [sys.executable, "-m", "dcops"]}
    script = Path(sys.executable).parent / "dcops"
    if script.is_file() and os.access(script, os.X_OK):
        found["console script"] = [str(script)]
    return found


# --------------------------------------------------------------------------- inventories


def ministries() -> list[dict]:
    return [
        {"code": f"min{k:02d}", "name": f"Ministry number {k}", "contact": f"it@min{k:02d}.gov.la"}
        for k in range(MINISTRIES)
    ]


def plan_doc(plan_id: str, name: str, resources: dict, instances: int, tiers: list[int], cost: int) -> dict:
    return {
        "id": plan_id,
        "name": name,
        "description": f"Plan {plan_id}: {instances} instance(s).",
        "resources": {**resources, "instances": instances},
        "sla_tiers": tiers,
        "metadata": {
            "displayName": f"Plan {name}",
            "bullets": [f"{instances} x {resources['vcpu']} vCPU", f"{resources['ram_gib']} GiB RAM each"],
            "costs": [{"amount": {"lak": cost}, "unit": "MONTHLY"}],
        },
    }


def write_request_inventory(directory: Path, requests: int) -> None:
    """Ministries, 4 clusters large enough for `requests` of any plan, and a small catalogue."""
    offerings: dict[str, list[dict]] = {}
    for k, (offering, plan_id, resources, instances, tiers) in enumerate(REQUEST_PLANS):
        offerings.setdefault(offering, []).append(
            plan_doc(plan_id, plan_id.split("-", 1)[1], resources, instances, tiers, 1_000_000 * (k + 1))
        )
    worst = {r: max(res[r] * n for _o, _p, res, n, _t in REQUEST_PLANS) for r in ("vcpu", "ram_gib", "storage_gib")}
    # Every cluster alone could hold every request: the placement never runs short.
    capacity = {r: amount * requests * 2 for r, amount in worst.items()}
    dump(directory / "common.yaml", {"ministries": ministries()})
    dump(directory / "sites.yaml", {"sites": site_documents(lambda _cluster, resource: capacity[resource])})
    dump(
        directory / "catalogue.yaml",
        {
            "offerings": [
                {"id": offering, "name": offering, "description": f"The {offering} offering", "plans": plans}
                for offering, plans in offerings.items()
            ]
        },
    )


def write_site_inventory(directory: Path) -> None:
    """20 ministries, 1,000 programmes spread over them, 50 offerings of 3 plans each."""
    dump(directory / "common.yaml", {"ministries": ministries()})
    roomy = {"vcpu": 100_000, "ram_gib": 1_000_000, "storage_gib": 10_000_000}
    dump(directory / "sites.yaml", {"sites": site_documents(lambda _cluster, resource: roomy[resource])})
    offerings = []
    for i in range(SITE_OFFERINGS):
        oid = f"svc-{i:02d}"
        plans = [
            plan_doc(f"{oid}-p{j}", f"size{j}", {"vcpu": 2 << j, "ram_gib": 4 << j, "storage_gib": 50 << j},
                     1 + j, [1, 2, 3][j:] or [3], 500_000 * (j + 1) * (i + 1))
            for j in range(SITE_PLANS_PER_OFFERING)
        ]
        offerings.append(
            {
                "id": oid,
                "name": oid,
                "description": f"Service offering number {i}",
                "tags": ["bench", f"group-{i % 5}"],
                "metadata": {"displayName": f"Service {i}", "longDescription": f"The long description of service {i}."},
                "plans": plans,
            }
        )
    dump(directory / "catalogue.yaml", {"offerings": offerings})
    per_ministry: dict[str, list[dict]] = {m["code"]: [] for m in ministries()}
    for i in range(SITE_PROGRAMMES):
        ministry = f"min{i % MINISTRIES:02d}"
        per_ministry[ministry].append(
            {
                "slug": f"prog-{i:04d}",
                "name": f"Programme {i} of {ministry}",
                "ministry": ministry,
                "tier": 1 + i % 3,
                # no secret ones: the public site leaves those out, and all 1,000 should be on it
                "classification": ("public", "internal", "confidential")[i % 3],
                "environment": "production" if i % 5 else "staging",
                "contacts": {"owner": f"owner-{i}@{ministry}.gov.la", "security": f"security@{ministry}.gov.la"},
            }
        )
    for ministry, docs in per_ministry.items():
        dump(directory / "programmes" / f"{ministry}.yaml", {"programmes": docs})


def request_document(i: int, prefix: str = "req") -> dict:
    offering, plan_id, _resources, _instances, tiers = REQUEST_PLANS[i % len(REQUEST_PLANS)]
    ministry = f"min{i % MINISTRIES:02d}"
    return {
        "ministry": ministry,
        "programme": {"slug": f"{prefix}-{i:05d}", "name": f"Requested programme {i}", "description": "Benchmark"},
        "offering": offering,
        "plan": plan_id,
        "tier": tiers[-1],
        "classification": "internal",
        "environment": "production",
        "personal_data": False,
        "justification": "Benchmark request: a ministry needs hosting.",
        "contacts": {"owner": f"owner-{i}@{ministry}.gov.la", "security": f"security@{ministry}.gov.la"},
        "wanted_by": (date.today() + timedelta(days=30)).isoformat(),
    }


def count_requests(database, state: str) -> int:
    from sqlalchemy import func, select

    from dcops.models import HostingRequest

    table = HostingRequest.__table__
    with database.transaction() as conn:
        return conn.execute(select(func.count()).select_from(table).where(table.c.state == state)).scalar_one()


def check_site(out: Path) -> list[str]:
    """What is wrong with a published site (empty when it is complete)."""
    problems = []
    for name in ("index.html", "catalog.json"):
        if not (out / name).is_file():
            problems.append(f"{out}: {name} missing")
    pages = sorted((out / "offerings").glob("*.html")) if (out / "offerings").is_dir() else []
    if len(pages) != SITE_OFFERINGS:
        problems.append(f"{out}: {len(pages)} offering pages, expected {SITE_OFFERINGS}")
    if (out / "catalog.json").is_file():
        try:
            services = json.loads((out / "catalog.json").read_text(encoding="utf-8"))["services"]
            plans = sum(len(s["plans"]) for s in services)
            if len(services) != SITE_OFFERINGS or plans != SITE_OFFERINGS * SITE_PLANS_PER_OFFERING:
                problems.append(f"{out}/catalog.json: {len(services)} services and {plans} plans, expected "
                                f"{SITE_OFFERINGS} and {SITE_OFFERINGS * SITE_PLANS_PER_OFFERING}")
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f"{out}/catalog.json: not an OSB catalog ({error!r})")
    return problems


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests approved in one process (default 1000)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure, not the benchmark)")
    args = parser.parse_args()
    if args.requests < 20:
        parser.error("--requests must be at least 20")

    cli_runs, lib_publish_runs, cli_publish_runs = (5, 2, 1) if args.quick else (12, 5, 3)
    warmups = 2
    n = args.requests
    cli = runners()
    results: list[tuple[str, float, str, float | None]] = []  # (measure, seconds, "s", target): medians but the loop
    problems: list[str] = []

    from dcops.catalogue import requests as reqs
    from dcops.inventory.service import load_directory

    print(f"dcops request and catalogue benchmark: {n} approvals{' (--quick)' if args.quick else ''}")
    print(f"  python: {sys.executable} ({sys.version.split()[0]})")
    for label, argv in cli.items():
        print(f"  CLI runner '{label}': {' '.join(argv)}")
    if len(cli) == 1:
        print(f"  (no console script next to {sys.executable}; PATH has {shutil.which('dcops')})")
    print("  PYTHONDONTWRITEBYTECODE removed from every subprocess' environment "
          f"(it is {os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')!r} here), "
          f"so .pyc files are written and reused; {warmups} warm-up runs come first.")
    print()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcops-bench-") as tmp:
        root = Path(tmp)
        try:
            # 1. approvals through the library ------------------------------------------
            print(f"1. {n} approvals through the library (SQLite, one process)")
            settings, database = make_database(root, "requests")
            inventory_dir = root / "inventory-requests"
            write_request_inventory(inventory_dir, n + len(cli) * (warmups + cli_runs))
            load_directory(database, inventory_dir, actor="bench")
            print(f"  database: {settings.database_url}")

            t0 = time.perf_counter()
            ids = [reqs.submit(database, request_document(i), actor="bench-ministry") for i in range(n)]
            submit_time = time.perf_counter() - t0
            print(f"  submitted {n} requests in {fmt(submit_time)} ({n / submit_time:.0f}/s, "
                  f"{ms(submit_time / n, 2)} each; not a target)")

            per_call: list[float] = []
            clusters: dict[str, int] = {}
            t0 = time.perf_counter()
            for request_id in ids:
                t1 = time.perf_counter()
                placement = reqs.approve(database, request_id, actor="bench-ops")
                per_call.append(time.perf_counter() - t1)
                clusters[placement.cluster] = clusters.get(placement.cluster, 0) + 1
            loop_time = time.perf_counter() - t0
            print(f"  approved {n} requests in {fmt(loop_time)} ({n / loop_time:.0f}/s)")
            print(f"  per approval: median {ms(statistics.median(per_call), 2)}   p95 {ms(p95(per_call), 2)}   "
                  f"max {ms(max(per_call), 2)}   first {ms(per_call[0], 2)}")
            tenth = max(1, n // 10)
            print(f"  first {tenth} median {ms(statistics.median(per_call[:tenth]), 2)}, "
                  f"last {tenth} median {ms(statistics.median(per_call[-tenth:]), 2)} (growth with the data)")
            print(f"  placements: {', '.join(f'{c} {k}' for c, k in sorted(clusters.items()))}")
            approved = count_requests(database, "approved")
            with database.transaction() as conn:
                programmes = conn.exec_driver_sql("SELECT count(*) FROM programme").scalar_one()
            print(f"  check: {approved} requests approved, {programmes} programmes "
                  f"({'OK' if approved == n == programmes else 'WRONG'}, expected {n})")
            if not approved == n == programmes:
                problems.append(f"library approvals: {approved} approved and {programmes} programmes, expected {n}")
            results += [
                ("submit, per request (library)", submit_time / n, "s", None),
                (f"approve x{n}, loop (library)", loop_time, "s", APPROVE_TARGET * n / 1000),
                ("approve, per call median (library)", statistics.median(per_call), "s", None),
                ("approve, per call p95 (library)", p95(per_call), "s", None),
            ]
            print()

            # 2. one approval per CLI command --------------------------------------------
            extra = len(cli) * (warmups + cli_runs)
            pending = [reqs.submit(database, request_document(i, "cli"), actor="bench-ministry") for i in range(extra)]
            database.dispose()
            env = clean_env(root / "requests", settings.database_url)
            print(f"2. `dcops request approve ID` as a command ({extra} more requests submitted; "
                  f"{warmups} warm-ups, then {cli_runs} runs per runner, interleaved)")
            peers = {}
            for label, argv in cli.items():
                peers[f"request approve ({label})"] = ("approve", argv)
                peers[f"--help ({label})"] = ("help", argv)

            def argv_of(kind: str, base: list[str]) -> list[str]:
                if kind == "help":
                    return [*base, "--help"]
                return [*base, "request", "approve", str(pending.pop(0)), "--actor", "bench-cli"]

            for kind, base in peers.values():
                for _ in range(warmups):
                    run(argv_of(kind, base), env)
            times: dict[str, list[float]] = {label: [] for label in peers}
            last_out = ""
            for _ in range(cli_runs):
                for label, (kind, base) in peers.items():
                    elapsed, result = run(argv_of(kind, base), env)
                    times[label].append(elapsed)
                    if kind == "approve":
                        last_out = result.stdout.strip()
            print(f"  last approve printed: {last_out}")
            if " approved: " not in last_out:
                problems.append(f"dcops request approve: unexpected output {last_out!r}")
            for label, values in times.items():
                describe(label, values, width=40)
            for label in cli:
                approve_median = statistics.median(times[f"request approve ({label})"])
                help_median = statistics.median(times[f"--help ({label})"])
                print(f"  ratio ({label}): approve = {approve_median / help_median:.2f}x --help; "
                      f"approve's share above start-up: {fmt(approve_median - help_median)}")
                results += [
                    (f"dcops --help ({label}) (peer)", help_median, "s", None),
                    (f"dcops request approve ({label})", approve_median, "s", CLI_APPROVE_TARGET),
                ]
            approved = count_requests(database, "approved")
            expected = n + extra
            print(f"  check: {approved} requests approved in all ({'OK' if approved == expected else 'WRONG'}, "
                  f"expected {expected})")
            if approved != expected:
                problems.append(f"CLI approvals: {approved} approved in all, expected {expected}")
            database.dispose()
            print()

            # 3. the catalogue website ------------------------------------------------------
            print(f"3. catalogue publish: {SITE_OFFERINGS} offerings x {SITE_PLANS_PER_OFFERING} plans, "
                  f"{SITE_PROGRAMMES} programmes over {MINISTRIES} ministries")
            site_settings, site_db = make_database(root, "site")
            site_dir = root / "inventory-site"
            write_site_inventory(site_dir)
            load_directory(site_db, site_dir, actor="bench")
            try:
                from dcops.catalogue.queries import site_data
                from dcops.catalogue.site import publish

                t0 = time.perf_counter()
                with site_db.transaction() as conn:
                    data = site_data(conn)
                shown = sum(len(m["programmes"]) for m in data["ministries"])
                print(f"  site_data(): {fmt(time.perf_counter() - t0)} "
                      f"({len(data['offerings'])} offerings, {shown} programmes)")
                if shown != SITE_PROGRAMMES:
                    print(f"  WARNING: {shown} of the {SITE_PROGRAMMES} programmes are on the site: "
                          "the measure is of a smaller site than intended")
                lib_times = []
                written = []
                for i in range(lib_publish_runs):
                    out = root / f"site-lib-{i}"
                    t0 = time.perf_counter()
                    written = publish(data, out, generated_at=datetime.now(timezone.utc))
                    lib_times.append(time.perf_counter() - t0)
                    problems.extend(check_site(out))
                print(f"  publish() wrote {len(written)} files, "
                      f"{sum(p.stat().st_size for p in written) / 1e6:.1f} MB")
                describe("publish() (library)", lib_times, width=40)
                results.append(("catalogue publish (library)", statistics.median(lib_times), "s", PUBLISH_TARGET))
            except Exception:  # noqa: BLE001 - the site may still be being written: report, go on
                print("  publish() through the library FAILED:")
                print("    " + traceback.format_exc().rstrip().replace("\n", "\n    "))
                problems.append("catalogue publish through the library raised an exception (above)")
            site_db.dispose()

            env = clean_env(root / "site", site_settings.database_url)
            module = cli["python -m dcops"]
            for i in range(warmups):
                run([*module, "catalogue", "publish", str(root / f"site-warm-{i}")], env)
            cli_times = []
            for i in range(cli_publish_runs):
                out = root / f"site-cli-{i}"
                elapsed, result = run([*module, "catalogue", "publish", str(out)], env)
                cli_times.append(elapsed)
                problems.extend(check_site(out))
            print(f"  last publish printed: {result.stdout.strip()}")
            describe("catalogue publish (python -m dcops)", cli_times, width=40)
            results.append(
                ("dcops catalogue publish (python -m dcops)", statistics.median(cli_times), "s", PUBLISH_TARGET))
            print()
        except CommandFailed as error:
            print(f"\nERROR: {error}", file=sys.stderr)
            return 1

    return print_summary(results, problems=problems, started=started)


if __name__ == "__main__":
    sys.exit(main())
