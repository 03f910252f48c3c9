"""A soak: several operators at once against one database, each running real `dcops` commands.

Each operator is a process of its own (multiprocessing, spawned) that runs one `dcops` command
after another, each opening the database afresh, as a team at their terminals would; `dcops
serve` runs beside them the whole time. How a command is run (`runner`):

- "inprocess" (the default): through the `dcops` command's own group in the operator's process:
  the CLI's parsing, its one error boundary and exit codes, its stdout and stderr; a command
  that raises anything else prints its traceback, exit 1, as a `dcops` process would.
- "subprocess": `python -m dcops ...` each time: the whole CLI, interpreter start-up included.

In-process is the default because the start-up costs about 1.2 s of CPU a command (imports), so
on a two-core machine ten subprocess operators measure the imports, not the database: with it a
command's latency is its work and its wait for the database. The subprocess runner is there to
show nothing differs (bench/bench_soak.py --runner subprocess).

What they do, chosen at random by weight until the time is up: submit hosting requests and
approve or reject them on clusters that are nearly full (so many approvals are refused for
capacity), retire approved programmes (which frees capacity), load one of two inventory versions
(one lowers a cluster's capacity, refused while its allocations do not fit), add and cancel
maintenance windows, write the uptime and capacity reports, take a capacity snapshot, probe
loopback targets (an HTTP server of the driver's that turns down and up every few seconds, and
a port nobody listens on) and sync the same targets' probe_success from a real Prometheus
scraping a real blackbox_exporter (when installed and this dcops has `probe sync`). Approvals
place capacity without provisioning: approval runs no playbook in dcops (provisioning is its own
command), so the soak measures the placement's transaction and its lock.

Afterwards the checks: no error that is not a user error (a user error is exit 2 told in
`dcops: error:` lines with no traceback; a traceback, exit 1 or a database error is not), no
cluster resource allocated beyond (total - reserved) x allocation ratio (from the tables), the
audit chain intact (`dcops audit verify`), no deadlock (PostgreSQL's own count for the database),
every command and process finished (`dcops serve` too, stopped cleanly by SIGTERM); and nothing
lost: every request a command said it submitted is there, every approval it reported holds its
programme and capacity, or none once a reported retirement released it.

Used by tests/test_soak.py (short) and bench/bench_soak.py (minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import inventories
import sqlalchemy as sa

COMMAND_TIMEOUT_SECONDS = 180
FLIP_SECONDS = 4  # the HTTP target turns down and up this often

CATALOGUE = {
    "offerings": [
        {
            "id": "vm",
            "name": "vm",
            "description": "Virtual machines",
            "plans": [
                {"id": "vm-small", "name": "small", "resources": {"vcpu": 2, "ram_gib": 4, "storage_gib": 50},
                 "sla_tiers": [2, 3], "metadata": {"costs": [{"amount": {"lak": 1000000}, "unit": "MONTHLY"}]}},
                {"id": "vm-medium", "name": "medium",
                 "resources": {"vcpu": 4, "ram_gib": 16, "storage_gib": 100, "instances": 2},
                 "sla_tiers": [2, 3], "metadata": {"costs": [{"amount": {"lak": 4000000}, "unit": "MONTHLY"}]}},
                {"id": "vm-large", "name": "large", "resources": {"vcpu": 16, "ram_gib": 64, "storage_gib": 500},
                 "sla_tiers": [2, 3], "metadata": {"costs": [{"amount": {"lak": 9000000}, "unit": "MONTHLY"}]}},
            ],
        }
    ]
}
PLANS = ("vm-small", "vm-small", "vm-medium", "vm-medium", "vm-large")
INVENTORY_PROGRAMMES = ("dhis2", "digital-id", "e-gov-portal")
CLUSTERS = ("gen-a", "gen-b")

# The mix: (kind, weight). A kind is one operator action, i.e. one dcops command.
MIX = (
    ("submit", 6), ("approve", 6), ("reject", 1.5), ("retire", 2), ("inventory-load", 0.6),
    ("maintenance-add", 1.5), ("maintenance-cancel", 1), ("report-uptime", 0.6), ("report-capacity", 0.6),
    ("capacity-snapshot", 0.4), ("probe-run", 1), ("probe-sync", 1), ("request-list", 0.5),
)


# --------------------------------------------------------------------------- the scene


class FlippingTarget:
    """A loopback HTTP server whose /healthz answers 200 and 503 in turns, FLIP_SECONDS each."""

    def __init__(self, flip_seconds: float = FLIP_SECONDS):
        started = time.monotonic()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                up = int((time.monotonic() - started) // flip_seconds) % 2 == 0
                body = b"ok" if up else b"down"
                self.send_response(200 if up else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FlippingTarget":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def inventory_files(http_port: int, down_port: int, *, tight: bool) -> dict:
    """The soak's inventory: two small clusters, three programmes probed on loopback, the catalogue.

    `tight` is the second version an operator may load: gen-b keeps 8 more vCPU in reserve, which
    the load refuses while gen-b's allocations would not fit.
    """
    files = inventories.base()
    site = files["sites.yaml"]["sites"][0]
    site["clusters"] = [
        {"name": "gen-a", "capacity": {"vcpu": {"total": 32, "reserved": 0, "allocation_ratio": 2.0},
                                       "ram_gib": {"total": 256, "reserved": 16},
                                       "storage_gib": {"total": 4000}}},
        {"name": "gen-b", "capacity": {"vcpu": {"total": 24, "reserved": 8 if tight else 0},
                                       "ram_gib": {"total": 128},
                                       "storage_gib": {"total": 2000}}},
    ]
    moh = files["programmes/moh.yaml"]["programmes"][0]
    often = {"interval_seconds": 10, "timeout_seconds": 2}  # Prometheus scrapes each target this often
    moh["endpoints"] = [{"name": "web", "kind": "http", "target": f"http://127.0.0.1:{http_port}/healthz", **often}]
    moh["hosts"] = [{"name": "dhis2-app-01", "address": "127.0.1.1", "cluster": "gen-a"}]
    moh["description"] = "Health information (tight version)" if tight else "Health information"
    mtc = files["programmes/mtc.yaml"]["programmes"]
    mtc[0]["endpoints"] = [{"name": "api", "kind": "tcp", "target": f"127.0.0.1:{http_port}", **often}]
    mtc[1]["endpoints"] = [{"name": "web", "kind": "tcp", "target": f"127.0.0.1:{down_port}", **often}]
    mtc[1]["allocations"] = [{"cluster": "gen-b", "vcpu": 4, "ram_gib": 8}]
    files["catalogue.yaml"] = json.loads(json.dumps(CATALOGUE))
    return files


def request_document(slug: str, plan: str, ministry: str) -> dict:
    """A request a ministry could send: internal, no personal data (no security sign-off needed)."""
    return {
        "ministry": ministry,
        "programme": {"slug": slug, "name": f"Programme {slug}", "description": "Soak test programme"},
        "offering": "vm",
        "plan": plan,
        "tier": 3,
        "classification": "internal",
        "environment": "production",
        "personal_data": False,
        "justification": "Needed by the ministry for its citizens' services.",
        "contacts": {"owner": f"owner@{ministry}.example.la", "security": f"sec@{ministry}.example.la"},
        "wanted_by": (datetime.now(timezone.utc).date() + timedelta(days=30)).isoformat(),
    }


# --------------------------------------------------------------------------- running commands


@dataclass
class Outcome:
    """One dcops command: what it was, how it ended and how long it took (wall seconds)."""

    operator: int
    kind: str
    argv: list[str]
    exit_code: int | None  # None: did not finish within COMMAND_TIMEOUT_SECONDS
    stdout: str
    stderr: str
    started: float  # seconds since the soak began
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def user_error(self) -> bool:
        """Exit 2, told in `dcops: error:` lines, no traceback: the user's (or the moment's) mistake."""
        return (self.exit_code == 2 and "Traceback" not in self.stderr
                and any(line.startswith("dcops: error: ") for line in self.stderr.splitlines()))

    @property
    def error_kind(self) -> str:
        """What went wrong in a few words: the first error line with its numbers and names taken out."""
        if self.exit_code is None:
            return "did not finish"
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if "Traceback" in self.stderr:
            return "traceback: " + (lines[-1] if lines else "?")[:100]
        errors = [line for line in lines if line.startswith("dcops: error: ")]
        text = errors[0] if errors else (lines[-1] if lines else f"exit {self.exit_code}, nothing said")
        text = text.removeprefix("dcops: error: ")
        if "does not fit" in text:
            return "capacity refused (does not fit)"
        text = re.sub(r"'[^']*'", "'…'", text)
        text = re.sub(r"\bop\d+-p\d+\b", "SLUG", text)
        text = re.sub(r"\d+", "N", text)
        return text[:100]


def environment(database_url: str, home: Path) -> dict[str, str]:
    """A subprocess environment for one operator: the shared database, its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCOPS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["DCOPS_DATABASE_URL"] = database_url
    env["DCOPS_HOME"] = str(home)
    return env


class Subprocesses:
    """Runs each command as `python -m dcops ...`: the whole CLI, interpreter start-up included."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, args: list[str]) -> tuple[int | None, str, str]:
        try:
            done = subprocess.run([sys.executable, "-m", "dcops", *args], env=self.env, capture_output=True,
                                  text=True, timeout=COMMAND_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
            return done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as late:  # subprocess.run has killed it, by its own PID
            return None, _text(late.stdout), _text(late.stderr)


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


class InProcess:
    """Runs each command through the `dcops` command's own group (its parsing, its error boundary)
    inside this long-lived process: what the CLI does, less the interpreter's start-up (about
    1.2 s of CPU a command, which on a small machine would measure the imports, not the database).

    Every command opens the database afresh, as a `dcops` process does; the engines it opened are
    disposed of when it returns, so that their connections close as at a process' exit.
    """

    def __init__(self, env: dict[str, str]):
        import weakref

        import typer.main
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from typer.testing import CliRunner

        from dcops.cli.main import app

        os.environ.clear()
        os.environ.update(env)
        self.command = typer.main.get_command(app)  # built once: Typer builds it anew on each invoke
        self.runner = CliRunner()
        self.engines: weakref.WeakSet = weakref.WeakSet()
        event.listen(Engine, "engine_connect", lambda conn: self.engines.add(conn.engine))

    def __call__(self, args: list[str]) -> tuple[int | None, str, str]:
        import traceback

        code: int | None = 0
        with self.runner.isolation() as (out, err, _both):
            try:
                self.command.main(args=args, prog_name="dcops")
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            except Exception:  # what a `dcops` process would die of: its traceback, exit 1
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        for engine in list(self.engines):
            engine.dispose()
        self.engines.clear()
        return code, stdout, stderr


RUNNERS = {"inprocess": InProcess, "subprocess": Subprocesses}


# --------------------------------------------------------------------------- the operators


@dataclass
class Scene:
    """Where the soak runs: the database, a work folder, the inventory versions, the loopback targets."""

    database_url: str
    workdir: Path
    inventory_dirs: tuple[Path, Path]
    http_port: int
    down_port: int
    prometheus: str | None = None  # the base URL of the Prometheus that `probe sync` reads
    began: str = ""  # when the soak began (ISO 8601), for `probe sync --from`


def prepare(database_url: str, workdir: Path, http_port: int) -> Scene:
    """Write both inventory versions and load the first (the database is migrated already)."""
    down_port = closed_port()
    dirs = (workdir / "inventory-a", workdir / "inventory-b")
    for directory, tight in zip(dirs, (False, True)):
        inventories.write(directory, inventory_files(http_port, down_port, tight=tight))
    code, _out, err = Subprocesses(environment(database_url, workdir / "setup"))(
        ["inventory", "load", str(dirs[0]), "--actor", "setup"])
    if code != 0:
        raise RuntimeError(f"the soak's inventory did not load:\n{err}")
    return Scene(database_url, workdir, dirs, http_port, down_port)


class Operator:
    """One operator at a terminal: a dcops command after another, until the deadline.

    What to act on (a submitted request, an approved programme) the operator reads from the
    database, as `dcops request list` would show it; that read is not one of the timed commands.
    """

    def __init__(self, number: int, scene: Scene, run, seed: int, mix=MIX):
        self.number = number
        self.scene = scene
        self.run = run
        self.random = random.Random(seed * 1000 + number)
        self.home = scene.workdir / f"operator-{number:02d}"
        self.kinds = [k for k, _w in mix]
        self.weights = [w for _k, w in mix]
        self.counter = 0
        self.windows: list[int] = []  # maintenance windows this operator added and has not cancelled
        self.engine = sa.create_engine(scene.database_url)

    @property
    def actor(self) -> str:
        return f"op-{self.number:02d}"

    def work(self, deadline: float, epoch: float) -> list[Outcome]:
        """Commands until `deadline` (time.time()); their outcomes, `started` counted from `epoch`."""
        outcomes = []
        try:
            while time.time() < deadline:
                kind = self.random.choices(self.kinds, self.weights)[0]
                args = getattr(self, "_" + kind.replace("-", "_"))()
                if args is None:  # nothing of that kind to act on right now
                    continue
                args = [str(a) for a in args]
                started = time.time()
                clock = time.perf_counter()
                code, out, err = self.run(args)
                outcome = Outcome(self.number, kind, args, code, out, err, started - epoch,
                                  time.perf_counter() - clock)
                outcomes.append(outcome)
                if kind == "maintenance-add" and outcome.ok:
                    self.windows.append(json.loads(out)["id"])
        finally:
            self.engine.dispose()
        return outcomes

    def _pick(self, sql: str):
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(sql)).scalars().all()
        return self.random.choice(rows) if rows else None

    # Each action returns the command's arguments (None when there is nothing to act on).

    def _submit(self):
        import yaml

        self.counter += 1
        slug = f"op{self.number:02d}-p{self.counter:04d}"
        path = self.home / "request.yaml"
        document = request_document(slug, self.random.choice(PLANS), self.random.choice(("moh", "mtc")))
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return ["request", "submit", path, "--actor", self.actor, "-o", "json"]

    def _submitted(self):
        return self._pick("SELECT id FROM hosting_request WHERE state = 'submitted' ORDER BY id DESC LIMIT 20")

    def _approve(self):
        request_id = self._submitted()
        return None if request_id is None else ["request", "approve", request_id, "--actor", self.actor, "-o", "json"]

    def _reject(self):
        request_id = self._submitted()
        return None if request_id is None else ["request", "reject", request_id, "--reason", "no capacity this quarter",
                                                "--actor", self.actor]

    def _retire(self):
        slug = self._pick("SELECT p.slug FROM programme p JOIN hosting_request r ON r.programme_id = p.id "
                          "WHERE p.status <> 'retired'")
        return None if slug is None else ["programme", "retire", slug, "--actor", self.actor]

    def _inventory_load(self):
        return ["inventory", "load", self.random.choice(self.scene.inventory_dirs), "--actor", self.actor]

    def _maintenance_add(self):
        start = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(
            days=self.random.randint(1, 20), minutes=self.random.randrange(0, 24 * 60, 15))
        self.counter += 1
        target = (["--cluster", self.random.choice(CLUSTERS)] if self.random.random() < 0.25
                  else [self.random.choice(INVENTORY_PROGRAMMES)])
        return ["maintenance", "add", *target, "--start", start.isoformat(),
                "--end", (start + timedelta(hours=2)).isoformat(), "--reason", "firmware upgrade",
                "--change-ref", f"CHG-{self.number:02d}{self.counter:04d}", "--actor", self.actor, "-o", "json"]

    def _maintenance_cancel(self):
        if not self.windows:
            return None
        return ["maintenance", "cancel", self.windows.pop(self.random.randrange(len(self.windows))),
                "--actor", self.actor]

    def _report_uptime(self):
        period = datetime.now(timezone.utc).strftime("%Y-%m")
        return ["report", "uptime", "--period", period, "-f", "json", "--out", self.home / "uptime.json"]

    def _report_capacity(self):
        return ["report", "capacity", "-f", "json", "--out", self.home / "capacity.json"]

    def _capacity_snapshot(self):
        return ["capacity", "snapshot"]

    def _probe_run(self):
        return ["probe", "run", "--once", "--concurrency", "10", "-o", "json"]

    def _probe_sync(self):
        if self.scene.prometheus is None:
            return None
        # Up to a little before now (the scrapes of the last seconds may not be in yet); from the
        # soak's start half the time: older results then fill only what dcops holds no data for.
        until = datetime.now(timezone.utc) - timedelta(seconds=12)
        began = datetime.fromisoformat(self.scene.began)
        since = ["--from", self.scene.began] if until > began + timedelta(seconds=10) and self.random.random() < 0.5 \
            else []
        return ["probe", "sync", "--prometheus", self.scene.prometheus, *since, "--to", until.isoformat(),
                "--actor", self.actor, "-o", "json"]

    def _request_list(self):
        return ["request", "list", "--state", "submitted", "-o", "json"]


def operate(number: int, scene: Scene, runner: str, seed: int, mix, deadline: float, epoch: float) -> list[Outcome]:
    """One operator process: its runner, its commands until the deadline (a multiprocessing target)."""
    home = scene.workdir / f"operator-{number:02d}"
    home.mkdir(parents=True, exist_ok=True)
    run = RUNNERS[runner](environment(scene.database_url, home))
    return Operator(number, scene, run, seed, mix).work(deadline, epoch)


# --------------------------------------------------------------------------- the run and its checks


@dataclass
class Result:
    """A soak's outcomes and what the checks found."""

    writers: int
    runner: str
    duration_seconds: float
    wall_seconds: float
    outcomes: list[Outcome]
    failures: list[Outcome] = field(default_factory=list)  # not user errors
    overcommitted: list[tuple] = field(default_factory=list)
    audit_ok: bool = False
    audit_report: str = ""
    deadlocks: int | None = None  # PostgreSQL's count for the database during the soak
    unfinished: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    synced: bool = False  # probe sync from a real Prometheus was in the mix

    @property
    def ok(self) -> bool:
        return not (self.failures or self.overcommitted or not self.audit_ok or self.deadlocks or self.unfinished
                    or self.lost)

    def count(self, kind: str, *, ok: bool | None = None) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind and (ok is None or o.ok == ok))

    def refusals(self) -> dict[str, int]:
        """User errors by command kind and what was said, most frequent first."""
        counts: dict[str, int] = {}
        for o in self.outcomes:
            if o.user_error:
                key = f"{o.kind}: {o.error_kind}"
                counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def busy(self) -> list[Outcome]:
        """Commands refused because the database stayed locked past the busy timeout (SQLite)."""
        return [o for o in self.outcomes if o.user_error and "database is locked" in o.stderr]

    def latencies(self) -> dict[str, dict[str, float]]:
        """Per command kind: n, p50, p95 and max wall seconds of the commands that finished."""
        table = {}
        for kind in sorted({o.kind for o in self.outcomes}):
            times = sorted(o.seconds for o in self.outcomes if o.kind == kind and o.exit_code is not None)
            if times:
                table[kind] = {"n": len(times), "p50": statistics.median(times), "p95": percentile(times, 95),
                               "max": times[-1]}
        return table

    def summary(self) -> str:
        """The findings in a few lines, for an assertion message or the bench."""
        lines = [f"{len(self.outcomes)} commands by {self.writers} operators ({self.runner}) in "
                 f"{self.wall_seconds:.1f} s: {self.count('approve', ok=True)} approved, "
                 f"{len(self.outcomes) - sum(o.ok for o in self.outcomes)} refused or failed; "
                 f"failures {len(self.failures)}, overcommitted {len(self.overcommitted)}, "
                 f"audit {'intact' if self.audit_ok else 'BROKEN'}, deadlocks {self.deadlocks}, "
                 f"unfinished {len(self.unfinished)}, lost {len(self.lost)}"]
        if self.synced:
            wrote = sum(1 for o in self.outcomes if o.kind == "probe-sync" and o.ok and json.loads(o.stdout)["wrote"])
            lines.append(f"  probe sync from Prometheus: {self.count('probe-sync')} runs, {wrote} wrote history")
        for o in self.failures[:10]:
            lines.append(f"  FAILED {o.kind} exit {o.exit_code}: dcops {' '.join(o.argv)}\n"
                         + "\n".join("    " + line for line in o.stderr.strip().splitlines()[-15:]))
        lines += [f"  overcommitted {row}" for row in self.overcommitted]
        lines += [f"  unfinished: {u}" for u in self.unfinished]
        lines += [f"  lost: {u}" for u in self.lost[:20]]
        if not self.audit_ok:
            lines.append(f"  audit verify: {self.audit_report.strip()}")
        return "\n".join(lines)


def percentile(sorted_values: list[float], p: float) -> float:
    """The p-th percentile, nearest rank, of values sorted ascending."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def _deadlocks(engine) -> int | None:
    """PostgreSQL's count of deadlocks detected in this database so far; None on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.exec_driver_sql(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").scalar()


class Serve:
    """`dcops serve` beside the operators, as a team runs it: probing on schedule, sending the outbox,
    serving /metrics; stopped with SIGTERM by its own PID at the end, its ending an outcome."""

    def __init__(self, scene: Scene):
        home = scene.workdir / "serve"
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / "serve.log"
        self.argv = ["serve", "--port", str(closed_port()), "--cache-seconds", "0"]
        self.scene = scene
        self.env = environment(scene.database_url, home)
        self.process: subprocess.Popen | None = None
        self.outcome: Outcome | None = None

    def __enter__(self) -> "Serve":
        self.started = time.time()
        with self.log.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "dcops", *self.argv], env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self, epoch: float) -> Outcome:
        """Stop it (it should still be running) and say how it ended: exit 0 and no traceback is well."""
        if self.outcome is None:
            early = self.process.poll() is not None
            if not early:
                self.process.terminate()
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            code = self.process.returncode
            text = self.log.read_text(errors="replace")
            if early:
                text += f"\n(dcops serve had exited by itself, code {code}, before the soak's end)"
                code = 1 if code == 0 else code
            self.outcome = Outcome(-1, "serve", self.argv, 1 if code == 0 and "Traceback" in text else code,
                                   "", text, self.started - epoch, time.time() - self.started)
        return self.outcome

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def prometheus_available() -> bool:
    """Debian's Prometheus and blackbox_exporter are installed, and this dcops has `probe sync`."""
    import promservers

    installed = all(Path(tool).is_file() for tool in (promservers.PROMETHEUS, promservers.BLACKBOX))
    return installed and Subprocesses(environment("sqlite://", Path("/nonexistent")))(
        ["probe", "sync", "--help"])[0] == 0


def start_prometheus(stack: contextlib.ExitStack, scene: Scene) -> str:
    """blackbox_exporter probing the soak's targets and Prometheus scraping it, as the README has
    them (promservers.blackbox_through_prometheus); Prometheus' base URL."""
    from promservers import blackbox_through_prometheus

    run = Subprocesses(environment(scene.database_url, scene.workdir / "setup"))

    def dcops(*args: str) -> str:
        code, out, err = run(list(args))
        if code != 0:
            raise RuntimeError(f"dcops {' '.join(args)} failed:\n{err}")
        return out

    prometheus, _targets = stack.enter_context(blackbox_through_prometheus(scene.workdir / "servers", dcops))
    return prometheus.base


def soak(database_url: str, workdir: Path, *, writers: int, duration_seconds: float, runner: str = "inprocess",
         prometheus: bool | None = None, serve: bool = True, seed: int = 14, mix=MIX) -> Result:
    """Run `writers` operator processes for `duration_seconds` against the migrated database at
    `database_url` (its inventory loaded here), then check what they left.

    `prometheus`: run `probe sync` against a real Prometheus and blackbox_exporter started here
    (None: when they are installed and this dcops has the command). `serve`: run `dcops serve`
    beside the operators for the whole soak.
    """
    import multiprocessing

    engine = sa.create_engine(database_url)
    try:
        deadlocks_before = _deadlocks(engine)
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(FlippingTarget())
            scene = prepare(database_url, workdir, target.port)
            if prometheus if prometheus is not None else prometheus_available():
                scene.prometheus = start_prometheus(stack, scene)
            server = stack.enter_context(Serve(scene)) if serve else None
            context = multiprocessing.get_context("spawn")
            with context.Pool(writers) as pool:
                # The clock starts once every operator process is up (spawning ten takes seconds).
                pool.map(_ready, range(writers), chunksize=1)
                epoch = time.time()
                scene.began = datetime.fromtimestamp(epoch, timezone.utc).isoformat()
                pending = pool.starmap_async(operate, [(n, scene, runner, seed, mix, epoch + duration_seconds, epoch)
                                                       for n in range(writers)], chunksize=1)
                unfinished = []
                try:
                    per_operator = pending.get(duration_seconds + 2 * COMMAND_TIMEOUT_SECONDS)
                except multiprocessing.TimeoutError:
                    per_operator, unfinished = [], ["the operators had not finished 2 command timeouts after the end"]
            wall = time.time() - epoch
            served = [server.stop(epoch)] if server is not None else []
        outcomes = sorted((o for batch in [*per_operator, served] for o in batch), key=lambda o: o.started)
        result = Result(writers, runner, duration_seconds, wall, outcomes, unfinished=unfinished,
                        synced=scene.prometheus is not None)
        result.unfinished += [f"{o.kind} did not finish in {COMMAND_TIMEOUT_SECONDS} s: dcops {' '.join(o.argv)}"
                              for o in outcomes if o.exit_code is None]
        result.failures = [o for o in outcomes if not o.ok and not o.user_error and o.exit_code is not None]
        check(result, engine, scene)
        if deadlocks_before is not None:
            time.sleep(1.0)  # a backend reports its statistics within a second of its last transaction
            result.deadlocks = _deadlocks(engine) - deadlocks_before
        return result
    finally:
        engine.dispose()


def _ready(_number: int) -> bool:
    import dcops.cli.main  # noqa: F401 - imported once per operator process, before the clock starts

    return True


OVERCOMMIT_SQL = """
SELECT c.name, k.resource, k.total, k.reserved, k.allocation_ratio,
       COALESCE((SELECT SUM(a.amount) FROM allocation a
                 WHERE a.cluster_id = k.cluster_id AND a.resource = k.resource), 0) AS allocated
FROM cluster_capacity k JOIN cluster c ON c.id = k.cluster_id
"""


def overcommitted(conn) -> list[tuple]:
    """Every cluster resource whose allocations exceed (total - reserved) x allocation ratio."""
    return [tuple(row) for row in conn.execute(sa.text(OVERCOMMIT_SQL))
            if row.allocated > (row.total - row.reserved) * row.allocation_ratio + 1e-9]


def check(result: Result, engine, scene: Scene) -> None:
    """Read the database after the soak: capacity, the audit chain, nothing the commands reported lost."""
    with engine.connect() as conn:
        result.overcommitted = overcommitted(conn)
        requests = {row.id: row for row in conn.execute(sa.text(
            "SELECT r.id, r.state, r.programme_slug, p.status, "
            "(SELECT COUNT(*) FROM allocation a WHERE a.programme_id = p.id) AS allocations "
            "FROM hosting_request r LEFT JOIN programme p ON p.id = r.programme_id"))}
    retired = {o.argv[2] for o in result.outcomes if o.kind == "retire" and o.ok}
    for o in result.outcomes:
        if o.kind == "submit" and o.ok:
            request_id = json.loads(o.stdout)["id"]
            if request_id not in requests:
                result.lost.append(f"request {request_id} was reported submitted but is not in the database")
        elif o.kind == "approve" and o.ok:
            row, slug = requests.get(int(o.argv[2])), json.loads(o.stdout)["programme"]
            if row is None or row.state != "approved" or row.programme_slug != slug:
                result.lost.append(f"request {o.argv[2]} was reported approved but is {row.state if row else 'missing'}")
            elif (row.status, bool(row.allocations)) != (("retired", False) if slug in retired else ("approved", True)):
                result.lost.append(f"{slug} was reported {'retired' if slug in retired else 'approved'} but is "
                                   f"{row.status} with {row.allocations} allocations")
    code, out, err = Subprocesses(environment(scene.database_url, scene.workdir / "setup"))(["audit", "verify"])
    result.audit_ok = code == 0
    result.audit_report = out + err
