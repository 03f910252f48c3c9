"""Benchmark of provisioning: one Ansible run for many programmes, and dcops' cost over ansible-playbook.

What it measures (wall time with time.perf_counter; SQLite databases in a temp dir; the real
provision.yml shipped in the package in sandbox mode: local connection, every path under the sandbox
folder, one folder per host; run date 20261129):

Every programme has one host (`<slug>-app`, address 127.0.0.1) and one http endpoint on
127.0.0.1 (a distinct port each), and is loaded with `status: approved` from a generated
inventory (1 ministry, 1 site, 1 cluster). Every run goes into a fresh sandbox folder, so
every run does the same first-run work (everything is created: 11 changed tasks per host).

1. Batch against separate runs, through the library (dcops.provisioning.jobs.run_job, in
   this process; ansible-runner starts ansible-playbook):
   - the N programmes (--programmes, default 50) in ONE job: run_job with all N slugs,
     forks = min(N, 25);
   - the same N programmes in N jobs, one run_job per programme, from a second, fresh
     database loaded with the same inventory, each job into its own fresh sandbox folder.
   Both wall times and their ratio are printed (no target: the figure the operator needs to
   choose between `--all-approved` and one run per programme). One untimed warm-up job
   comes first. Each job must end successful with every programme active and its files in
   the sandbox.
2. The overhead of `dcops provision run` over a plain `ansible-playbook` of the same
   playbook and inventory: target dcops / ansible-playbook <= 1.1, for 1 programme (1 host)
   and for the N-programme batch.
   - dcops: `python -m dcops provision run SLUG... --sandbox FRESH -o json --forks F` as a
     subprocess (the whole CLI: start-up, database, job records, ansible-runner). Programmes
     that are active are provisioned again (allowed), into a fresh sandbox each time.
   - ansible-playbook: the `ansible-playbook` next to sys.executable, with the static
     inventory dcops wrote for that same selection (inventory/hosts.yml of a dcops job's
     private data directory; every later dcops job must write the very same file), `-f F`
     and the extra vars dcops passes (dcops_sandbox=true, dcops_sandbox_root=FRESH,
     dcops_run_date=20261129, ansible_connection=local, ansible_python_interpreter=
     sys.executable), and the environment dcops gives ansible-runner: ANSIBLE_ROLES_PATH=
     the playbooks' roles, ANSIBLE_HOME, ANSIBLE_LOCAL_TEMP and ANSIBLE_REMOTE_TMP in a fresh
     folder per run (as each dcops job has its own), retry files off, no colour.
   The two alternate, the order flipping every round (so that drift in machine load hits
   both alike): 1 host, median of 5 runs after one untimed warm-up of each (whose dcops job
   writes the inventory); the batch, median of 3 runs, no warm-up (all is warm by then;
   the first round starts with dcops, whose job writes the inventory). --quick: 3 and 2.
   The same forks F = min(hosts, 25) is given to both. Printed beside them, as peers:
   `python -m dcops --help` (bare start-up) and `python -c "import dcops.cli.main,
   dcops.provisioning.jobs, ansible_runner"` (the start-up `provision run` pays before
   Ansible starts), 3 runs each. The CPU seconds of each command (user + system, its
   descendants included, from getrusage) are printed beside the wall times with their
   ratio (information only: the target is on wall time), and the load average (with the CPU
   pressure, where Linux reports it) after each part: other work on the machine moves wall
   times much more than CPU seconds.

The CLI runs as `sys.executable -m dcops` (the interpreter running this script), not the
`dcops` console script, so that no shell shim (pyenv) is measured. PYTHONDONTWRITEBYTECODE
is removed from the environment of every subprocess, and from this process' own environment
too (ansible-runner hands it on to ansible-playbook and the modules), so that .pyc files
are written once (during the warm-ups) and reused afterwards, as on an installed system.

The script exits 1 when a target is missed, a command fails (its stderr is printed) or a
sanity check fails; 0 otherwise. (It used to exit 0 when only a target was missed; all five
bench scripts now share this convention and their summary printer, benchlib.print_summary.)

Run it from the project root, with dcops installed (`pip install -e .`):

    python3 bench/bench_provisioning.py                  # 50 programmes: ~5 min where a 1-host run takes
                                                         # ~1.5 s; ~40 min on 2 CPUs where it takes ~9 s
    python3 bench/bench_provisioning.py --quick          # 10 programmes, fewer repetitions
    python3 bench/bench_provisioning.py --programmes 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import CommandFailed, busy_note, clean_env, describe, dump, fmt, print_summary, run

from dcops.resources import playbooks_dir  # the shipped playbooks, as dcops runs them

PLAYBOOK = playbooks_dir() / "provision.yml"
ROLES = playbooks_dir() / "roles"
RUN_DATE = "20261129"
MAX_FORKS = 25
FIRST_PORT = 20000
OVERHEAD_TARGET = 1.1
# What `dcops provision run` imports before it starts Ansible (timed as a peer: start-up cost).
IMPORTS_OF_PROVISION_RUN = "import dcops.cli.main, dcops.provisioning.jobs, ansible_runner"
RECAP_RE = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


# --------------------------------------------------------------------------- inventory


def slug_of(i: int, prefix: str = "bench") -> str:
    return f"{prefix}-{i:03d}"


def host_of(slug: str) -> str:
    return f"{slug}-app"


def programme_doc(slug: str, port: int) -> dict:
    return {
        "slug": slug,
        "name": f"Benchmark programme {slug}",
        "ministry": "mobench",
        "description": "Provisioning benchmark",
        "tier": 2,
        "status": "approved",
        "classification": "internal",
        "environment": "production",
        "contacts": {"owner": f"owner-{slug}@mobench.gov.la", "security": "security@mobench.gov.la"},
        "endpoints": [{"name": "web", "kind": "http", "target": f"http://127.0.0.1:{port}/healthz"}],
        "allocations": [{"cluster": "gen-a", "vcpu": 2, "ram_gib": 4, "storage_gib": 50}],
        "hosts": [{"name": host_of(slug), "address": "127.0.0.1", "cluster": "gen-a", "role": "app"}],
    }


def write_inventory(directory: Path, slugs: list[str]) -> dict[str, int]:
    """1 ministry, 1 site, 1 cluster, one approved programme per slug; returns slug -> port."""
    ports = {slug: FIRST_PORT + i for i, slug in enumerate(slugs)}
    dump(directory / "common.yaml",
         {"ministries": [{"code": "mobench", "name": "Ministry of Benchmarks", "contact": "it@mobench.gov.la"}]})
    size = 10 * max(len(slugs), 1)
    dump(directory / "sites.yaml", {"sites": [{
        "code": "dc1", "name": "Primary", "role": "primary", "location": "Vientiane",
        "clusters": [{"name": "gen-a", "description": "General purpose",
                      "capacity": {r: {"total": amount * size, "reserved": 0, "allocation_ratio": 1.0}
                                   for r, amount in (("vcpu", 2), ("ram_gib", 4), ("storage_gib", 50))}}],
    }]})
    dump(directory / "programmes" / "mobench.yaml", {"programmes": [programme_doc(s, p) for s, p in ports.items()]})
    return ports


def make_home(root: Path, name: str, slugs: list[str]):
    """A fresh home with an upgraded SQLite database holding `slugs` (approved): (settings, Database, ports)."""
    from dcops.db import open_database, upgrade
    from dcops.inventory.service import load_directory
    from dcops.settings import Settings

    home = root / name
    home.mkdir(parents=True)
    settings = Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{home / 'dcops.db'}", "DCOPS_HOME": str(home)})
    upgrade(settings)
    database = open_database(settings)
    ports = write_inventory(root / f"inventory-{name}", slugs)
    load_directory(database, root / f"inventory-{name}", actor="bench")
    return settings, database, ports


def statuses(database, slugs: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from dcops.models import Programme

    table = Programme.__table__
    with database.transaction() as conn:
        return dict(conn.execute(select(table.c.slug, table.c.status).where(table.c.slug.in_(slugs))).all())


# --------------------------------------------------------------------------- checks


def check_sandbox(sandbox: Path, ports: dict[str, int], slugs: list[str], where: str) -> list[str]:
    """What is missing from a sandbox a first provisioning run wrote (empty when complete)."""
    problems = []
    for slug in slugs:
        base = sandbox / host_of(slug)
        health = base / "etc" / "dcops" / "health.d" / f"{slug}.json"
        for path in (base / "opt" / "dcops" / slug / "etc" / "programme.yaml",
                     base / "etc" / "systemd" / "system" / f"dcops-{slug}.service",
                     base / "etc" / "nginx" / "sites-available" / f"dcops-{slug}.conf", health):
            if not path.is_file():
                problems.append(f"{where}: {path} missing")
        if health.is_file() and f":{ports[slug]}/" not in health.read_text(encoding="utf-8"):
            problems.append(f"{where}: {health} does not name port {ports[slug]}")
    return problems


def check_stats(host_stats: dict[str, dict[str, int]], slugs: list[str], where: str) -> list[str]:
    """Every host of `slugs` ran, changed things (first run) and neither failed nor was unreachable."""
    problems = []
    expected = {host_of(s) for s in slugs}
    if set(host_stats) != expected:
        problems.append(f"{where}: stats for {len(host_stats)} hosts, expected {len(expected)} "
                        f"(missing {sorted(expected - set(host_stats))[:3]})")
    for host, stats in host_stats.items():
        if stats.get("failed") or stats.get("unreachable") or not stats.get("changed"):
            problems.append(f"{where}: {host} {stats}")
    return problems


def check_outcome(outcome, database, slugs: list[str], where: str) -> list[str]:
    problems = [] if outcome.ok else [f"{where}: job {outcome.job_id} {outcome.status}: {outcome.failure_message}"]
    problems += check_stats(outcome.host_stats, slugs, where)
    wrong = {s: st for s, st in statuses(database, slugs).items() if st != "active"}
    if wrong:
        problems.append(f"{where}: programmes not active after the job: {dict(list(wrong.items())[:3])}")
    return problems


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """ansible-playbook's PLAY RECAP as dcops-style host stats."""
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP_RE.finditer(stdout.split("PLAY RECAP", 1)[-1])}


# --------------------------------------------------------------------------- part 2 commands


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far, theirs included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """`run`, plus the CPU seconds the command and its descendants used (runs are sequential)."""
    before = children_cpu()
    elapsed, result = run(argv, env)
    return elapsed, children_cpu() - before, result


def dcops_argv(cli: list[str], slugs: list[str], sandbox: Path, forks: int) -> list[str]:
    return [*cli, "provision", "run", *slugs, "--sandbox", str(sandbox), "--forks", str(forks), "-o", "json",
            "--actor", "bench"]


def playbook_argv(ansible_playbook: str, inventory: Path, sandbox: Path, forks: int) -> list[str]:
    return [ansible_playbook, "-i", str(inventory), str(PLAYBOOK), "-f", str(forks),
            "-e", "dcops_sandbox=true", "-e", f"dcops_sandbox_root={sandbox}", "-e", f"dcops_run_date={RUN_DATE}",
            "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}"]


def playbook_env(base: dict[str, str], ansible_home: Path) -> dict[str, str]:
    """What dcops' runner gives ansible-runner, with a fresh ANSIBLE_HOME per run."""
    return {
        **base,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
        "ANSIBLE_HOME": str(ansible_home),
        "ANSIBLE_LOCAL_TEMP": str(ansible_home / "tmp"),
        "ANSIBLE_REMOTE_TMP": str(ansible_home / "remote-tmp"),
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def dcops_job(result: subprocess.CompletedProcess, slugs: list[str], where: str) -> tuple[dict, list[str]]:
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return {}, [f"{where}: output is not JSON: {result.stdout[-300:]!r}"]
    problems = []
    if report.get("status") != "successful":
        problems.append(f"{where}: job {report.get('job')} {report.get('status')}: {report.get('failure_message')}")
    return report, problems + check_stats(report.get("host_stats") or {}, slugs, where)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programmes", type=int, default=None,
                        help="programmes (one host each) in the batch (default 50; 10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="10 programmes, fewer repetitions (a rough figure)")
    args = parser.parse_args()
    n = args.programmes if args.programmes is not None else (10 if args.quick else 50)
    if not 2 <= n <= 999:
        parser.error("--programmes must be between 2 and 999")
    solo_runs, batch_runs, help_runs = (3, 2, 3) if args.quick else (5, 3, 3)
    batch_forks = min(n, MAX_FORKS)
    cli = [sys.executable, "-m", "dcops"]
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    if not ansible_playbook.is_file():
        print(f"ERROR: no ansible-playbook next to {sys.executable}", file=sys.stderr)
        return 1

    # run_job below starts ansible-runner in this process: its children inherit os.environ.
    inherited = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    results: list[tuple[str, float, str, float | None]] = []  # (measure, value, unit "s" or "x", target)
    problems: list[str] = []

    from importlib.metadata import version

    import ansible

    from dcops.provisioning.jobs import run_job

    print(f"dcops provisioning benchmark: {n} programmes, one host each{' (--quick)' if args.quick else ''}")
    print(f"  python: {sys.executable} ({sys.version.split()[0]}); ansible-core {ansible.__version__}, "
          f"ansible-runner {version('ansible-runner')}; {os.cpu_count()} CPUs")
    print(f"  CLI runner: {' '.join(cli)} (not the console script: no shell shim is measured)")
    print(f"  plain runner: {ansible_playbook}")
    print(f"  playbook: {PLAYBOOK} in sandbox mode (local connection), run date {RUN_DATE}")
    print("  PYTHONDONTWRITEBYTECODE removed from every subprocess' environment and this process' own "
          f"(it was {inherited!r}), so .pyc files are written and reused; untimed warm-ups come first.")
    print()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcops-bench-prov-") as tmp:
        root = Path(tmp)
        try:
            # 1. one job for N programmes against N jobs ----------------------------------
            slugs = [slug_of(i) for i in range(n)]
            print(f"  ({busy_note('at the start')})")
            print(f"1. {n} programmes in one job (forks {batch_forks}) against {n} jobs of one programme "
                  "(library: run_job in this process, ansible-runner)")
            _s, warm_db, _ports = make_home(root, "warm", [slug_of(0, "warm")])
            t0 = time.perf_counter()
            outcome = run_job(warm_db, "provision", None, home=root / "warm", sandbox_root=root / "sandbox-warm",
                              run_date=RUN_DATE, forks=1, actor="bench")
            print(f"  warm-up job (1 programme, untimed): {fmt(time.perf_counter() - t0)}")
            problems += check_outcome(outcome, warm_db, [slug_of(0, "warm")], "warm-up job")
            warm_db.dispose()

            _s, batch_db, ports = make_home(root, "batch", slugs)
            t0 = time.perf_counter()
            outcome = run_job(batch_db, "provision", slugs, home=root / "batch", sandbox_root=root / "sandbox-batch",
                              run_date=RUN_DATE, forks=batch_forks, actor="bench")
            batch_time = time.perf_counter() - t0
            problems += check_outcome(outcome, batch_db, slugs, "batch job")
            problems += check_sandbox(root / "sandbox-batch", ports, slugs, "batch job")
            changed = sum(s["changed"] for s in outcome.host_stats.values())
            print(f"  one job, {n} programmes:  {fmt(batch_time)}  (job {outcome.job_id} {outcome.status}, "
                  f"{len(outcome.host_stats)} hosts, {changed} changed tasks; {fmt(batch_time / n)} per programme)")
            batch_db.dispose()

            _s, separate_db, ports = make_home(root, "separate", slugs)
            separate: list[float] = []
            for slug in slugs:
                t0 = time.perf_counter()
                outcome = run_job(separate_db, "provision", [slug], home=root / "separate",
                                  sandbox_root=root / "sandbox-separate" / slug, run_date=RUN_DATE, forks=1,
                                  actor="bench")
                separate.append(time.perf_counter() - t0)
                problems += check_outcome(outcome, separate_db, [slug], f"separate job {slug}")
                problems += check_sandbox(root / "sandbox-separate" / slug, ports, [slug], f"separate job {slug}")
            separate_time = sum(separate)
            separate_db.dispose()
            print(f"  {n} jobs, one programme each: {fmt(separate_time)}  (per job: median "
                  f"{fmt(statistics.median(separate))}, min {fmt(min(separate))}, max {fmt(max(separate))})")
            print(f"  ({busy_note()})")
            print(f"  ratio: {n} separate jobs take {separate_time / batch_time:.2f}x the one job "
                  f"(one job saves {fmt(separate_time - batch_time)})")
            results += [
                (f"one job, {n} programmes (library)", batch_time, "s", None),
                (f"{n} jobs of 1 programme (library)", separate_time, "s", None),
                ("separate / one job", separate_time / batch_time, "x", None),
            ]
            print()

            # 2. dcops provision run against ansible-playbook ---------------------------
            print("2. `dcops provision run` against `ansible-playbook`, same playbook, inventory, forks and extra vars "
                  "(interleaved, order flipped every round; each run into a fresh sandbox)")
            solo = slug_of(0, "solo")
            _s, cli_db, ports = make_home(root, "cli", [solo, *slugs])
            cli_db.dispose()
            env = clean_env(root / "cli", f"sqlite:///{root / 'cli' / 'dcops.db'}")
            help_times = [run([*cli, "--help"], env)[0] for _ in range(help_runs + 1)][1:]
            describe("python -m dcops --help (bare start-up)", help_times, width=40)
            import_argv = [sys.executable, "-c", IMPORTS_OF_PROVISION_RUN]
            import_times = [run(import_argv, env)[0] for _ in range(help_runs + 1)][1:]
            describe("python -c 'import ...' (see below)", import_times, width=40)
            print(f"    (the imports `provision run` needs before Ansible starts: {IMPORTS_OF_PROVISION_RUN})")
            counter = iter(range(10_000))
            cases = (("1 host", [solo], 1, solo_runs), (f"{n} hosts", slugs, batch_forks, batch_runs))

            def fresh(kind: str) -> Path:
                return root / "sandbox-cli" / f"{kind}-{next(counter):03d}"

            def job_inventory(report: dict) -> Path:
                return root / "cli" / "jobs" / f"job-{report.get('job', 0):06d}" / "inventory" / "hosts.yml"

            for label, chosen, forks, runs in cases:
                inventory = root / f"hosts-{len(chosen)}.yml"
                if len(chosen) == 1:
                    # warm-ups (the first `provision run` of this home writes the .pyc files it needs);
                    # the dcops one also writes the static inventory ansible-playbook is given
                    elapsed, result = run(dcops_argv(cli, chosen, fresh("dcops"), forks), env)
                    report, found = dcops_job(result, chosen, f"dcops warm-up ({label})")
                    problems += found
                    shutil.copyfile(job_inventory(report), inventory)
                    warm_ap, _r = run(playbook_argv(str(ansible_playbook), inventory, fresh("playbook"), forks),
                                      playbook_env(env, root / "ansible-homes" / f"{next(counter):03d}"))
                    print(f"  {label}: warm-ups (untimed) dcops {fmt(elapsed)}, ansible-playbook {fmt(warm_ap)}; "
                          f"inventory from job {report.get('job')}; forks {forks}")
                else:
                    print(f"  {label}: no warm-ups (everything is warm by now); the first dcops run, which comes "
                          f"first, writes the inventory; forks {forks}")

                times: dict[str, list[float]] = {"dcops": [], "ansible-playbook": []}
                cpu: dict[str, list[float]] = {"dcops": [], "ansible-playbook": []}
                for i in range(runs):
                    order = ("dcops", "ansible-playbook") if i % 2 == 0 else ("ansible-playbook", "dcops")
                    for kind in order:
                        sandbox = fresh(kind)
                        where = f"{kind} ({label}, run {i})"
                        if kind == "dcops":
                            elapsed, used, result = timed(dcops_argv(cli, chosen, sandbox, forks), env)
                            report, found = dcops_job(result, chosen, where)
                            if not inventory.exists():
                                shutil.copyfile(job_inventory(report), inventory)
                            elif job_inventory(report).read_bytes() != inventory.read_bytes():
                                found.append(f"{where}: job {report.get('job')} wrote another inventory than the one "
                                             "ansible-playbook is given")
                        else:
                            elapsed, used, result = timed(
                                playbook_argv(str(ansible_playbook), inventory, sandbox, forks),
                                playbook_env(env, root / "ansible-homes" / f"{next(counter):03d}"))
                            found = check_stats(recap(result.stdout), chosen, where)
                        times[kind].append(elapsed)
                        cpu[kind].append(used)
                        problems += found + check_sandbox(sandbox, ports, chosen, where)
                describe(f"dcops provision run ({label})", times["dcops"], width=40)
                describe(f"ansible-playbook ({label})", times["ansible-playbook"], width=40)
                cpu_ratio = statistics.median(cpu["dcops"]) / statistics.median(cpu["ansible-playbook"])
                print(f"  CPU seconds (user + system, all processes; less sensitive to other load than wall time): "
                      f"dcops median {statistics.median(cpu['dcops']):.3f}, ansible-playbook median "
                      f"{statistics.median(cpu['ansible-playbook']):.3f}, ratio {cpu_ratio:.3f}x")
                dcops_median = statistics.median(times["dcops"])
                playbook_median = statistics.median(times["ansible-playbook"])
                ratio = dcops_median / playbook_median
                print(f"  ratio ({label}): dcops = {ratio:.3f}x ansible-playbook; dcops adds "
                      f"{fmt(dcops_median - playbook_median)} (its start-up with those imports alone: "
                      f"{fmt(statistics.median(import_times))})")
                results += [
                    (f"ansible-playbook ({label}) (peer)", playbook_median, "s", None),
                    (f"dcops provision run ({label})", dcops_median, "s", None),
                    (f"dcops / ansible-playbook ({label})", ratio, "x", OVERHEAD_TARGET),
                    (f"CPU seconds, dcops / ansible-playbook ({label})", cpu_ratio, "x", None),
                ]
                print(f"  ({busy_note()})")
            results.append(("python -c 'import ...' (peer)", statistics.median(import_times), "s", None))
            results.append(("python -m dcops --help (peer)", statistics.median(help_times), "s", None))
            print()
        except CommandFailed as error:
            print(f"\nERROR: {error}", file=sys.stderr)
            return 1

    return print_summary(results, problems=problems, started=started,
                         note=f"{busy_note('at the end')}, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
