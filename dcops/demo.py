"""The demo: the whole chain (inventory, requests through the portal too, provisioning, probes, metrics,
reports) in a folder of its own; with `serve`, the portal and /metrics stay up afterwards until a signal."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from dcops.errors import DcopsError, UserError
from dcops.resources import sample_dir

if TYPE_CHECKING:
    import os
    import ssl

    from dcops.db import Database
    from dcops.settings import Settings

SAMPLE_INVENTORY_DIR = sample_dir()
STEPS = 8
MIN_PROBE_SECONDS = 10.0
MAX_PROBE_SECONDS = 3600.0
# Dense probing so that damping (3 failures down, 2 successes up) shows within seconds.
PROBE_INTERVAL_SECONDS = 2
PROBE_TIMEOUT_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 5.0
# An outage must outlast three failed probes 2 s apart, plus the first probe's offset.
MIN_OUTAGE_SECONDS = 8.0
HOLD_SECONDS = 5.0  # the longest a stand-in waits for a request
SUBMITTER = "ministry-{code}"
SECURITY_OFFICER = "security-officer"
OPERATOR = "dc-operator"
# The portal account of the ministry whose request goes through the portal's API (a name the
# library submissions never use, so the audit log tells them apart).
PORTAL_REQUESTER = "{code}-requester"
PORTAL_START_SECONDS = 30.0  # the longest the portal may take to start listening
PORTAL_STOP_SECONDS = 5.0  # uvicorn's graceful shutdown: open connections get this long to finish
PASSWORD_BYTES = 15  # secrets.token_urlsafe(15): 20 characters, past the accounts' minimum of 12
# Which sample programmes act out the unplanned outage and the announced maintenance, when present.
OUTAGE_PROGRAMME = "immunisation-registry"
MAINTENANCE_PROGRAMME = "national-treasury"


@dataclass(frozen=True)
class DemoRequest:
    """A hosting request the demo submits, approves and provisions.

    `number` places it the way the sample inventory numbers its programmes: hosts at
    127.0.<number>.11 and up, endpoints on ports 18000 + 10 * number + k. The demo's numbers
    (90 and up) stay clear of the sample's (1-62, ports 18010-18629).
    """

    ministry: str
    slug: str
    name: str
    offering: str
    plan: str
    tier: int
    classification: str
    personal_data: bool
    justification: str
    number: int

    def address(self, index: int) -> str:
        """The loopback address of its `index`-th host (0-based)."""
        return f"127.0.{self.number}.{11 + index}"

    def port(self, k: int) -> int:
        """Its k-th endpoint's port: 0 the web endpoint, then the catalogue's checks."""
        return 18000 + 10 * self.number + k


DEMO_REQUESTS = (
    DemoRequest("moh", "maternal-health-tracker", "Maternal and child health tracker", "postgresql", "pg-standard",
                2, "confidential", True, "Antenatal and postnatal visits recorded at every district hospital.", 90),
    DemoRequest("moes", "school-grants-portal", "School block grants portal", "vm", "vm-medium", 3, "internal",
                False, "Schools report how they spend their block grants each term.", 91),
    DemoRequest("mof", "customs-risk-engine", "Customs risk engine", "vm", "vm-large", 2, "internal", False,
                "Scores import declarations for inspection at the border posts.", 92),
)


# The request submitted through the portal: moh's, the one that needs a security sign-off, so
# that each of the three demo accounts has its part in it.
PORTAL_REQUEST = DEMO_REQUESTS[0]


class DemoFailed(DcopsError):
    """A step of the demo failed (without --keep-going, the demo stops there)."""


@dataclass(frozen=True)
class DemoAccount:
    """A portal account the demo made in its own database, with the password it generated."""

    name: str
    password: str = field(repr=False)
    role: str  # as the CLI writes roles: requester@moh, security-officer, operator


@dataclass
class DemoResult:
    """What the demo did and where it left everything."""

    directory: Path
    database: Path
    started_at: datetime
    programmes: list[str] = field(default_factory=list)
    job_id: int | None = None
    job_status: str | None = None
    job_dir: Path | None = None
    sandbox: Path | None = None
    skipped: list[str] = field(default_factory=list)  # endpoints no stand-in answers, with why
    outage: str | None = None  # the programme with the unplanned outage
    results_recorded: int = 0
    states: dict[str, int] = field(default_factory=dict)  # state -> programmes, just before probing stopped
    metrics_url: str | None = None
    metrics_series: int | None = None  # dcops_programme_up series in the one /metrics fetched
    metrics_down: int | None = None  # ... of which 0 (down)
    accounts: list[DemoAccount] = field(default_factory=list)
    portal_url: str | None = None  # http://127.0.0.1:PORT, where the portal listened (listens, with serve)
    portal_request: int | None = None  # the request submitted through the portal's API
    serving_metrics_url: str | None = None  # /metrics while serving (serve)
    reports: list[Path] = field(default_factory=list)
    site: Path | None = None
    failures: list[str] = field(default_factory=list)  # steps that failed (with --keep-going)
    seconds: float = 0.0


def default_directory(now: datetime, environ: "os._Environ[str] | dict[str, str] | None" = None) -> Path:
    """`$DCOPS_HOME/demos/demo-YYYYmmdd-HHMMSS` (DCOPS_HOME as dcops reads it): never the current
    directory, which may be a checkout."""
    import os

    from dcops.settings import default_home

    env = os.environ if environ is None else environ
    home = Path(env.get("DCOPS_HOME") or default_home(env)).expanduser()
    return home / "demos" / f"demo-{now:%Y%m%d-%H%M%S}"


def check_directory(directory: Path) -> None:
    """Refuse a DIR that exists and is not an empty directory; writes nothing."""
    if directory.is_dir():
        if any(directory.iterdir()):
            raise UserError(f"{directory} is not empty: the demo needs a new or empty folder (choose another --dir)")
    elif directory.exists():
        raise UserError(f"{directory} exists and is not a folder (choose another --dir)")


def demo_settings(directory: Path) -> "Settings":
    """Settings for the demo's own folder: DCOPS_HOME=DIR, database DIR/dcops.db; nothing read from the environment."""
    from dcops.settings import Settings

    return Settings(home=directory, database_url=f"sqlite:///{directory / 'dcops.db'}")


def run_demo(directory: Path, *, probe_seconds: float, echo: Callable[[str], None],
             keep_going: bool = False, serve: bool = False) -> DemoResult:
    """Run the demo into `directory` (new or empty); `probe_seconds` of probing; progress through `echo`.

    A failed step raises DemoFailed (after stopping everything), or with `keep_going` is
    recorded in DemoResult.failures and the demo carries on. Ctrl-C raises KeyboardInterrupt
    once everything is stopped. With `serve`, once the chain is done the portal, the stand-ins,
    the prober and /metrics run on until SIGINT or SIGTERM (which then end the demo normally).
    Nothing is left running when it returns.
    """
    if not MIN_PROBE_SECONDS <= probe_seconds <= MAX_PROBE_SECONDS:
        raise UserError(f"--probe-seconds: from {MIN_PROBE_SECONDS:g} to {MAX_PROBE_SECONDS:g} (an outage needs "
                        f"three failed probes {PROBE_INTERVAL_SECONDS} s apart), not {probe_seconds:g}")
    directory = directory.expanduser().absolute()
    check_directory(directory)
    settings = demo_settings(directory)
    for needed, what in ((SAMPLE_INVENTORY_DIR, "sample inventory"), (settings.playbooks_dir, "playbooks")):
        if not needed.is_dir():
            raise UserError(f"the {what} is not at {needed}: run the demo from a source checkout (pip install -e .)")
    from dcops.db import utcnow

    started = time.perf_counter()
    result = DemoResult(directory=directory, database=directory / "dcops.db", started_at=utcnow())
    steps = _Steps(echo, keep_going, result)
    with ExitStack() as cleanup:
        _step_database(steps, settings)
        database = cleanup.enter_context(_opened(settings))
        portal = DemoPortal(settings, database)
        cleanup.callback(portal.stop)
        _step_requests(steps, database, portal, result)
        if not serve:
            portal.stop()
        _step_provision(steps, database, settings, result)
        stand_ins = _step_stand_ins(steps, database, directory, result, cleanup)
        _step_probe(steps, database, settings, stand_ins, probe_seconds, result)  # stops the stand-ins
        _step_snapshot(steps, database, settings, directory, result)
        _step_reports(steps, database, settings, directory, result)
        if serve:
            result.seconds = time.perf_counter() - started
            _summary(echo, result, serving=True)
            _serve(echo, database, settings, portal, stand_ins, result)
            return result
    result.seconds = time.perf_counter() - started
    _summary(echo, result)
    return result


# --- steps ---------------------------------------------------------------------------------------


class _Note:
    """The closing line of a step, set by the step."""

    text = "done"


class _Steps:
    """Numbered steps: a line when each starts, one with its time when it ends; failures per --keep-going."""

    def __init__(self, echo: Callable[[str], None], keep_going: bool, result: DemoResult):
        self.echo, self.keep_going, self.result = echo, keep_going, result

    def detail(self, text: str) -> None:
        self.echo(f"      {text}")

    @contextmanager
    def step(self, number: int, title: str, *, essential: bool = False) -> Iterator[_Note]:
        self.echo(f"[{number}/{STEPS}] {title} ...")
        note = _Note()
        began = time.perf_counter()
        try:
            yield note
        except (DcopsError, OSError) as error:  # OSError: a folder the demo cannot write in
            if isinstance(error, OSError):
                error = f"{error.filename or ''}: {error.strerror or error}"
            seconds = time.perf_counter() - began
            if essential or not self.keep_going:
                hint = "" if essential else " (--keep-going carries on past a failed step)"
                raise DemoFailed(f"step {number}/{STEPS} failed, {title}: {error}{hint}") from None
            self.detail(f"FAILED: {error} ({seconds:.1f} s); carrying on (--keep-going)")
            self.result.failures.append(f"step {number}/{STEPS}, {title}: {error}")
            return
        self.detail(f"{note.text} ({time.perf_counter() - began:.1f} s)")


@contextmanager
def _opened(settings: "Settings") -> Iterator["Database"]:
    from dcops.db import open_database

    database = open_database(settings)
    try:
        yield database
    finally:
        database.dispose()


def _step_database(steps: _Steps, settings: "Settings") -> None:
    from dcops.db import upgrade
    from dcops.inventory.service import load_directory

    with steps.step(1, f"creating {settings.home / 'dcops.db'} and loading the sample inventory",
                    essential=True) as note:
        settings.home.mkdir(parents=True, exist_ok=True)
        upgrade(settings)
        with _opened(settings) as database:
            plan = load_directory(database, SAMPLE_INVENTORY_DIR, actor=OPERATOR)
            counts = _table_counts(database)
        note.text = (f"{len(plan.changes)} records from {SAMPLE_INVENTORY_DIR}: {counts['ministry']} ministries, "
                     f"{counts['cluster']} clusters, {counts['programme']} programmes, {counts['plan']} catalogue "
                     f"plans, {counts['endpoint']} endpoints")


def _table_counts(database: "Database") -> dict[str, int]:
    from sqlalchemy import text

    with database.transaction() as conn:
        return {name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in ("ministry", "cluster", "programme", "plan", "endpoint")}


def request_document(request: DemoRequest, today: date) -> dict:
    """The request document a ministry would submit (the shape of the site's request templates)."""
    return {
        "ministry": request.ministry,
        "programme": {"slug": request.slug, "name": request.name, "description": request.justification},
        "offering": request.offering,
        "plan": request.plan,
        "tier": request.tier,
        "classification": request.classification,
        "environment": "production",
        "personal_data": request.personal_data,
        "justification": request.justification,
        "contacts": {"owner": f"{request.slug}@{request.ministry}.gov.la.example",
                     "security": f"security@{request.ministry}.gov.la.example"},
        "wanted_by": (today + timedelta(days=30)).isoformat(),
    }


def loopback_checks(request: DemoRequest, hosts: list[dict], checks: list[dict]
                    ) -> tuple[list[dict], list[dict], list[tuple[str, str, str]]]:
    """The request's hosts at loopback addresses and its endpoints: a web endpoint (port k=0) unless
    the catalogue gave it one, then every check approval created, re-pointed to a loopback stand-in.

    A check aimed at a host follows the host to its address; one aimed at another name (the
    programme's public name) goes to 127.0.<number>.1. Ports become the request's own
    (k = 1, 2...), since the real ones (22, 5432, 443) may be taken or privileged here.
    Returns (hosts, endpoints, [(check, old target, new target)]).
    """
    from urllib.parse import urlsplit, urlunsplit

    from dcops.health.probes import split_host_port

    addresses = {}
    moved_hosts = []
    for index, host in enumerate(sorted(hosts, key=lambda h: h["name"])):
        address = request.address(index)
        addresses[host["name"]] = addresses[host["address"]] = address
        moved_hosts.append({**host, "address": address})
    public = f"127.0.{request.number}.1"
    endpoints = [] if any(c["name"] == "web" for c in checks) else [
        {"name": "web", "kind": "http", "target": f"http://127.0.0.1:{request.port(0)}/healthz"}]
    moved = []
    for k, check in enumerate(checks, start=1):
        if check["kind"] == "http":
            url = urlsplit(check["target"])
            target = urlunsplit(url._replace(netloc=f"{addresses.get(url.hostname, public)}:{request.port(k)}"))
        else:
            host, _port = split_host_port(check["target"])
            target = f"{addresses.get(host, public)}:{request.port(k)}"
        endpoints.append({**check, "target": target})
        moved.append((check["name"], check["target"], target))
    return moved_hosts, endpoints, moved


def demo_accounts(database: "Database") -> tuple[list[DemoAccount], str]:
    """The demo's portal accounts, in its own database: a requester of PORTAL_REQUEST's ministry, the
    security officer and the operator (named as the demo's library calls act), each with a password
    generated now; and an API token for the requester. Returns (accounts, token)."""
    import secrets

    from dcops.access import Grant
    from dcops.accounts import add_user, create_token, role_names

    ministry = PORTAL_REQUEST.ministry
    people = ((PORTAL_REQUESTER.format(code=ministry), Grant("requester", ministry), f"{ministry}.gov.la.example"),
              (SECURITY_OFFICER, Grant("security-officer"), "dc.gov.la.example"),
              (OPERATOR, Grant("operator"), "dc.gov.la.example"))
    accounts = []
    for name, grant, domain in people:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        add_user(database, name, grants=frozenset({grant}), password=password, email=f"{name}@{domain}",
                 actor=OPERATOR)
        accounts.append(DemoAccount(name, password, role_names([grant])[0]))
    token = create_token(database, accounts[0].name, label="dcops demo: a ministry's script", actor=OPERATOR)
    return accounts, token


def submit_through_portal(url: str, token: str, document: dict) -> int:
    """POST the request document to the portal's API at `url` (http://host:port) with the bearer
    token, as a ministry's script does; returns the new request's id (DemoFailed otherwise)."""
    import httpx

    endpoint = f"{url}/api/v1/requests"
    try:
        # trust_env=False: loopback, never through a proxy the environment names.
        with httpx.Client(timeout=30.0, trust_env=False) as client:
            response = client.post(endpoint, json=document, headers={"authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        raise DemoFailed(f"POST {endpoint}: {error}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 201 or not isinstance(body.get("id"), int):
        said = body.get("problems") or [body.get("detail") or response.text[:200]]
        raise DemoFailed(f"POST {endpoint} answered {response.status_code}: " + "; ".join(map(str, said)))
    return body["id"]


def _step_requests(steps: _Steps, database: "Database", portal: "DemoPortal", result: DemoResult) -> None:
    from dcops.catalogue.requests import approve, needs_security_signoff, sign_off, submit
    from dcops.inventory.queries import list_endpoints, show_programme
    from dcops.inventory.service import update_programme

    with steps.step(2, f"submitting and approving {len(DEMO_REQUESTS)} hosting requests (one through the portal)"
                    ) as note:
        result.accounts, token = demo_accounts(database)
        result.portal_url = portal.start()
        steps.detail(f"portal serving {result.portal_url}/ with the demo's accounts: "
                     + ", ".join(f"{a.name} ({a.role})" for a in result.accounts))
        today = date.today()
        for request in DEMO_REQUESTS:
            if request is PORTAL_REQUEST:
                submitter = result.accounts[0].name
                request_id = submit_through_portal(result.portal_url, token, request_document(request, today))
                result.portal_request = request_id
                steps.detail(f"submitted request {request_id} through the portal (HTTP API) as {submitter}: "
                             f"POST {result.portal_url}/api/v1/requests with its API token, 201")
            else:
                submitter = SUBMITTER.format(code=request.ministry)
                request_id = submit(database, request_document(request, today), actor=submitter)
            signed = ""
            if needs_security_signoff(request.classification, request.personal_data):
                sign_off(database, request_id, actor=SECURITY_OFFICER)
                signed = f", signed off by {SECURITY_OFFICER}"
            placement = approve(database, request_id, actor=OPERATOR)
            how = "through the portal " if request is PORTAL_REQUEST else ""
            steps.detail(f"request {request_id} {request.slug} ({request.ministry}, {request.plan}, tier "
                         f"{request.tier}): submitted {how}by {submitter}{signed}, approved by {OPERATOR} "
                         f"onto {placement.cluster}")
            for warning in placement.warnings:
                steps.detail(f"warning: {warning}")
            with database.transaction() as conn:
                hosts = show_programme(conn, request.slug)["hosts"]
                checks = list_endpoints(conn, request.slug)
            # As the data centre's DNS would: each host gets its (loopback) address, and the
            # checks approval made from the catalogue follow it, so the stand-ins can answer them.
            hosts, endpoints, moved = loopback_checks(request, hosts, checks)
            update_programme(database, request.slug, {"hosts": hosts, "endpoints": endpoints}, actor=OPERATOR)
            for name, was, now in moved:
                steps.detail(f"  check {name} {was} -> stand-in at {now}")
            result.programmes.append(request.slug)
        note.text = f"{len(result.programmes)} programmes approved, capacity reserved"


def _step_provision(steps: _Steps, database: "Database", settings: "Settings", result: DemoResult) -> None:
    from dcops.provisioning.jobs import run_job

    if not result.programmes:
        steps.echo(f"[3/{STEPS}] provisioning: skipped (no approved programmes)")
        return
    count = len(result.programmes)
    with steps.step(3, f"provisioning {count} programmes (sandbox, one Ansible run, {count} forks)") as note:
        result.sandbox = settings.home / "sandbox"

        def on_event(event) -> None:
            if event.kind in ("failed", "unreachable"):
                steps.detail(f"{event.kind} {event.host}: {event.task}: {event.message}")

        outcome = run_job(database, "provision", list(result.programmes), home=settings.home, actor=OPERATOR,
                          sandbox_root=result.sandbox, forks=count, on_event=on_event,
                          playbooks_dir=settings.playbooks_dir)
        result.job_id, result.job_status = outcome.job_id, outcome.status
        result.job_dir = Path(outcome.private_data_dir)
        if outcome.status == "cancelled":
            raise KeyboardInterrupt
        for host, stats in sorted(outcome.host_stats.items()):
            steps.detail(f"{host:<28} " + " ".join(f"{k}={v}" for k, v in stats.items() if v))
        if not outcome.ok:
            raise DemoFailed(outcome.failure_summary)
        note.text = f"job {outcome.job_id} {outcome.status}: {', '.join(outcome.programmes)} active"


def _step_stand_ins(steps: _Steps, database: "Database", directory: Path, result: DemoResult,
                    cleanup: ExitStack) -> "StandIns":
    from dcops.health.store import load_checks

    with database.transaction() as conn:
        checks = load_checks(conn)
    stand_ins = StandIns()
    with steps.step(4, f"standing in for {len(checks)} endpoints on loopback (HTTP, TLS, TCP servers)",
                    essential=True) as note:
        listeners = plan_listeners(checks)
        tls_hosts = sorted({host for (host, _port), kind in listeners.items()
                            if kind in ("tls", "https") and _loopback(host)})
        ca_file = None
        if tls_hosts:
            ca_file, cert, key = make_demo_pki(directory / "pki", tls_hosts)
            stand_ins.tls = _server_context(cert, key)
        stand_ins.ca_file = ca_file
        cleanup.callback(stand_ins.stop)
        stand_ins.start()
        # Each stand-in takes a port the system gives it, and the checks follow: the sample's fixed
        # ports may belong to someone else (another demo), whose servers the demo must never measure.
        ports: dict[tuple[str, int], int] = {}
        for (host, port), kind in sorted(listeners.items(), key=lambda item: (item[0][1], item[0][0])):
            got, problem = stand_ins.listen(kind, host)
            if problem:
                result.skipped.append(f"{kind} {host}:{port}: {problem}")
                steps.detail(f"skipped {kind} {host}:{port}: {problem} (its checks will fail)")
            else:
                ports[(host, port)] = got
        moved = _repoint(database, checks, ports)
        by_kind: dict[str, int] = {}
        for kind in stand_ins.kinds.values():
            by_kind[kind] = by_kind.get(kind, 0) + 1
        note.text = (f"{len(stand_ins.kinds)} listening (" + ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items()))
                     + f") on ports of their own, {moved} checks pointed at them"
                     + (f"; CA for the TLS checks: {ca_file}" if ca_file else ""))
    return stand_ins


def retarget(kind: str, target: str, port: int) -> str:
    """`target` (a check's: an http URL, or host:port) with its port changed to `port`."""
    from urllib.parse import urlsplit, urlunsplit

    from dcops.health.probes import split_host_port

    if kind == "http":
        url = urlsplit(target)
        user = url.netloc.rpartition("@")[0]
        netloc = (f"{user}@" if user else "") + _host_port(url.hostname or "", port)
        return urlunsplit(url._replace(netloc=netloc))
    host, _old = split_host_port(target)
    return _host_port(host, port)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _repoint(database: "Database", checks, ports: dict[tuple[str, int], int]) -> int:
    """Point every check at the port its stand-in got (`ports`: planned address -> port); returns how many.

    The targets stay so afterwards: the database says what the demo measured, and a later
    `dcops serve` in its folder probes nothing of anyone else's.
    """
    from sqlalchemy import bindparam, update

    from dcops.models import Endpoint

    changes = []
    for check in checks:
        address = _address(check)
        if address in ports:
            changes.append({"b_id": check.endpoint_id, "b_target": retarget(check.kind, check.target, ports[address])})
    if changes:
        table = Endpoint.__table__
        # The demo's own wiring, as its dense probing is, not an operator's change: not audited.
        with database.transaction(immediate=True) as conn:
            conn.execute(update(table).where(table.c.id == bindparam("b_id"))
                         .values(target=bindparam("b_target")), changes)
    return len(changes)


def plan_listeners(checks) -> dict[tuple[str, int], str]:
    """(host, port) -> the kind of stand-in to run there: http, https, tls or tcp; one per address."""
    from urllib.parse import urlsplit

    from dcops.health.probes import split_host_port

    listeners: dict[tuple[str, int], str] = {}
    for check in checks:
        try:
            if check.kind == "http":
                url = urlsplit(check.target)
                kind = "https" if url.scheme == "https" else "http"
                address = (url.hostname or "", url.port or (443 if kind == "https" else 80))
            else:
                kind, address = check.kind, split_host_port(check.target)
        except ValueError:
            continue  # a malformed target: its check fails whatever the demo does
        listeners.setdefault(address, kind)
    return listeners


@dataclass(frozen=True)
class _Timeline:
    """When, in seconds after probing starts, the outage begins and ends."""

    starts: float
    ends: float

    @classmethod
    def for_run(cls, probe_seconds: float) -> "_Timeline":
        """The middle third of the run, widened to MIN_OUTAGE_SECONDS when the run is short."""
        length = max(probe_seconds / 3, min(MIN_OUTAGE_SECONDS, probe_seconds * 0.6))
        starts = (probe_seconds - length) / 2
        return cls(starts, starts + length)


def _choose(checks, kind: str, preferred: str, avoid: set[str]):
    """The check of `kind` the demo breaks: `preferred`'s if it has one, else the first other one."""
    candidates = [c for c in checks if c.kind == kind and c.programme not in avoid]
    for check in candidates:
        if check.programme == preferred:
            return check
    return candidates[0] if candidates else None


def _step_probe(steps: _Steps, database: "Database", settings: "Settings", stand_ins: "StandIns",
                probe_seconds: float, result: DemoResult) -> None:
    from dcops.health.store import load_checks

    timeline = _Timeline.for_run(probe_seconds)
    with database.transaction() as conn:
        checks = load_checks(conn)
    avoid = set(result.programmes)
    outage = _choose(checks, "http", OUTAGE_PROGRAMME, avoid)
    maintenance = _choose(checks, "tcp", MAINTENANCE_PROGRAMME, avoid | ({outage.programme} if outage else set()))
    with steps.step(5, f"probing every endpoint every {PROBE_INTERVAL_SECONDS} s for {probe_seconds:g} s, "
                       "serving /metrics") as note:
        saved = _dense_probing(database)
        try:
            _probe(steps, database, settings, stand_ins, probe_seconds, timeline, outage, maintenance, result)
        finally:
            _restore_probing(database, saved)
        states = ", ".join(f"{n} {state}" for state, n in sorted(result.states.items()))
        note.text = (f"{result.results_recorded} probe results recorded; programmes when probing ended: {states}; "
                     "all stopped")


def _dense_probing(database: "Database") -> dict[int, tuple[int, float]]:
    """Set every endpoint's interval to PROBE_INTERVAL_SECONDS (timeout below it); returns the old values."""
    from sqlalchemy import select, update

    from dcops.models import Endpoint

    table = Endpoint.__table__
    with database.transaction(immediate=True) as conn:
        saved = {r.id: (r.interval_seconds, r.timeout_seconds)
                 for r in conn.execute(select(table.c.id, table.c.interval_seconds, table.c.timeout_seconds))}
        conn.execute(update(table).values(interval_seconds=PROBE_INTERVAL_SECONDS,
                                          timeout_seconds=PROBE_TIMEOUT_SECONDS))
    return saved


def _restore_probing(database: "Database", saved: dict[int, tuple[int, float]]) -> None:
    """Put back the intervals and timeouts of the inventory (which allows no interval under 10 s)."""
    from sqlalchemy import bindparam, update

    from dcops.models import Endpoint

    if not saved:
        return
    table = Endpoint.__table__
    with database.transaction(immediate=True) as conn:
        conn.execute(update(table).where(table.c.id == bindparam("b_id"))
                     .values(interval_seconds=bindparam("b_interval"), timeout_seconds=bindparam("b_timeout")),
                     [{"b_id": i, "b_interval": interval, "b_timeout": timeout}
                      for i, (interval, timeout) in saved.items()])


def _probe(steps: _Steps, database: "Database", settings: "Settings", stand_ins: "StandIns", probe_seconds: float,
           timeline: _Timeline, outage, maintenance, result: DemoResult) -> None:
    """run_service (prober and /metrics) in this thread until the clock thread stops it."""
    from dcops.daemon import run_service, stop_on_signals
    from dcops.db import utcnow
    from dcops.maintenance import add_window

    stop = threading.Event()
    interrupted = threading.Event()
    clock: list[threading.Thread] = []

    def on_ready(server) -> None:
        result.metrics_url = server.url
        steps.detail(f"serving {server.url} (Ctrl-C stops the demo cleanly)")
        began = time.monotonic()
        if outage is not None:
            result.outage = outage.programme
            steps.detail(f"unplanned outage: {outage.programme} {outage.name} answers 503 from "
                         f"t={timeline.starts:.0f} s to t={timeline.ends:.0f} s")
        if maintenance is not None:
            now = utcnow()
            window = add_window(
                database, programme=maintenance.programme, cluster=None,
                starts_at=now + timedelta(seconds=max(timeline.starts - PROBE_INTERVAL_SECONDS, 1.0)),
                ends_at=now + timedelta(seconds=timeline.ends + 4 * PROBE_INTERVAL_SECONDS),
                reason="Demo: database failover test, its port closed meanwhile", change_ref="CHG-DEMO-1",
                actor=OPERATOR, now=now)
            steps.detail(f"announced maintenance window {window.id} ({window.change_ref}) for "
                         f"{maintenance.programme}: its {maintenance.name} port closes from t={timeline.starts:.0f} s "
                         f"to t={timeline.ends:.0f} s")
        thread = threading.Thread(
            target=_drive, name="dcops-demo-clock",
            args=(steps, database, stand_ins, began, probe_seconds, timeline, outage, maintenance, stop, result))
        clock.append(thread)
        thread.start()

    with stop_on_signals(stop, also=interrupted):
        try:
            run_service(database, stop, server_options={"host": "127.0.0.1", "port": 0, "cache_seconds": 1.0},
                        ca_file=str(stand_ins.ca_file) if stand_ins.ca_file else None, tz=settings.tz,
                        on_ready=on_ready)
        finally:
            stop.set()
            for thread in clock:
                thread.join()
            stand_ins.stop()
    if interrupted.is_set():
        raise KeyboardInterrupt
    result.results_recorded = _results_recorded(database)
    if not result.states:  # the clock read them before the stop, which makes every check unknown
        result.states = _state_counts(database)


def _drive(steps: _Steps, database: "Database", stand_ins: "StandIns", began: float, probe_seconds: float,
           timeline: _Timeline, outage, maintenance, stop: threading.Event, result: DemoResult) -> None:
    """The demo's clock: breaks and mends the chosen endpoints, prints progress, fetches /metrics once,
    and sets `stop` when the time is up."""
    broken = mended = fetched = False
    next_progress = PROGRESS_EVERY_SECONDS
    outage_address = _address(outage) if outage is not None else None
    maintenance_address = _address(maintenance) if maintenance is not None else None
    try:
        while not stop.wait(0.1):
            elapsed = time.monotonic() - began
            if not broken and elapsed >= timeline.starts:
                broken = True
                if outage_address:
                    stand_ins.failing.add(outage_address)
                if maintenance_address:
                    stand_ins.close(maintenance_address)
            if broken and not mended and elapsed >= timeline.ends:
                mended = True
                if outage_address:
                    stand_ins.failing.discard(outage_address)
                if maintenance_address:
                    problem = stand_ins.reopen(maintenance_address)
                    if problem:
                        steps.detail(f"could not reopen {maintenance_address[0]}:{maintenance_address[1]}: {problem}")
            if not fetched and elapsed >= timeline.ends - 1.0 and result.metrics_url:
                fetched = True
                _fetch_metrics(steps, result)
            if elapsed >= next_progress or elapsed >= probe_seconds:
                next_progress += PROGRESS_EVERY_SECONDS
                _progress(steps, database, elapsed, broken and not mended)
            if elapsed >= probe_seconds:
                result.states = _state_counts(database)
                break
    except DcopsError as error:  # a locked database: say so, the probing goes on to its end
        steps.detail(f"progress not shown: {error}")
        stop.wait(max(probe_seconds - (time.monotonic() - began), 0))
    finally:
        stop.set()


def _address(check) -> tuple[str, int] | None:
    listeners = plan_listeners([check])
    return next(iter(listeners), None)


def _progress(steps: _Steps, database: "Database", elapsed: float, breaking: bool) -> None:
    from dcops.health.status import programme_states

    states = programme_states(database)
    counts = {name: sum(1 for s in states if s["state"] == name) for name in ("up", "down", "unknown")}
    down = [s["programme"] for s in states if s["state"] == "down"]
    named = ", ".join(down[:3]) + (f" and {len(down) - 3} more" if len(down) > 3 else "")
    steps.detail(f"t={elapsed:3.0f} s  results {_results_recorded(database):5d}  up {counts['up']:2d}  "
                 f"down {counts['down']:2d}  unknown {counts['unknown']:2d}" + (f"  down: {named}" if down else "")
                 + ("  [outage under way]" if breaking else ""))


def _results_recorded(database: "Database") -> int:
    from sqlalchemy import func, select

    from dcops.models import ProbeResult

    with database.transaction() as conn:
        return conn.execute(select(func.count()).select_from(ProbeResult.__table__)).scalar_one()


def _state_counts(database: "Database") -> dict[str, int]:
    from dcops.health.status import programme_states

    counts: dict[str, int] = {}
    for state in programme_states(database):
        counts[state["state"]] = counts.get(state["state"], 0) + 1
    return counts


def _fetch_metrics(steps: _Steps, result: DemoResult) -> None:
    """GET /metrics once, as Prometheus would, and count the dcops_programme_up series."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(result.metrics_url, timeout=5) as response:
            body = response.read().decode("utf-8", "replace")
    except OSError as error:
        steps.detail(f"could not fetch {result.metrics_url}: {error}")
        result.failures.append(f"fetching {result.metrics_url}: {error}")
        return
    series = [line for line in body.splitlines() if line.startswith("dcops_programme_up{")]
    result.metrics_series = len(series)
    result.metrics_down = sum(1 for line in series if line.rsplit(" ", 1)[-1] in ("0", "0.0"))
    steps.detail(f"GET {result.metrics_url}: {len(body):,} bytes, {len(series)} dcops_programme_up series "
                 f"({result.metrics_down} at 0)")


def _step_snapshot(steps: _Steps, database: "Database", settings: "Settings", directory: Path,
                   result: DemoResult) -> None:
    from dcops.catalogue.queries import site_data
    from dcops.catalogue.site import publish
    from dcops.db import utcnow
    from dcops.reports.documents import take_capacity_snapshot

    with steps.step(6, "taking the capacity snapshot and publishing the catalogue site") as note:
        day, count = take_capacity_snapshot(database, tz=settings.tz)
        with database.transaction() as conn:
            data = site_data(conn)
        written = publish(data, directory / "catalogue-site", generated_at=utcnow(),
                          service_desk=settings.service_desk, data_centre_name=settings.data_centre_name)
        result.site = directory / "catalogue-site" / "index.html"
        note.text = f"snapshot of {day}: {count} cluster resources; site: {len(written)} files"


def _step_reports(steps: _Steps, database: "Database", settings: "Settings", directory: Path,
                  result: DemoResult) -> None:
    from dcops.db import utcnow
    from dcops.reports.documents import capacity_document, judging, resolve_period, uptime_document
    from dcops.reports.render import render

    with steps.step(7, "writing the uptime and capacity reports (HTML and Markdown)") as note:
        now = utcnow()
        # The local day(s) the demo ran on: a month would bury its minutes under weeks of "unknown".
        first, last = result.started_at.astimezone(settings.tz).date(), now.astimezone(settings.tz).date()
        period = resolve_period(None, first.isoformat(), last.isoformat(), settings.tz)
        _annotate_outage(steps, database, result, period, now)
        with database.transaction() as conn:
            uptime = uptime_document(conn, period, tz=settings.tz, now=now, data_centre_name=settings.data_centre_name,
                                     **judging(settings))
            capacity = capacity_document(conn, tz=settings.tz, now=now, data_centre_name=settings.data_centre_name)
        out = directory / "reports"
        out.mkdir(parents=True, exist_ok=True)
        stamp = now.astimezone(settings.tz).date().isoformat()
        for document, stem in ((uptime, f"uptime-{stamp}"), (capacity, f"capacity-{stamp}")):
            for fmt in ("html", "md"):
                path = out / f"{stem}.{fmt}"
                path.write_text(render(document, fmt), encoding="utf-8", newline="")
                result.reports.append(path)
        for programme in uptime["programmes"]:
            incidents, down = programme["incident_count"], programme["downtime_seconds"]
            maintenance = programme["maintenance_seconds"]
            if incidents or down or maintenance:
                steps.detail(f"{programme['slug']}: {_plural(incidents, 'incident')}, {down:.0f} s down"
                             + (f", {maintenance:.0f} s under announced maintenance (not held against its SLA)"
                                if maintenance else ""))
        centre = uptime["data_centre"]
        note.text = (f"{len(result.reports)} files in {out}; the data centre: "
                     f"{_plural(centre['incident_count'], 'incident')}, {centre['downtime_seconds']:.0f} s down, "
                     f"{centre['programmes_met']} of {centre['programmes_monitored']} monitored programmes met "
                     f"their SLA, {centre['programmes_missed']} missed, {centre['programmes_insufficient_data']} "
                     f"had too little data; {centre['programmes_not_monitored']} not monitored")


def _annotate_outage(steps: _Steps, database: "Database", result: DemoResult, period, now) -> None:
    """The operator's side of the outage the demo staged: its incident, identified and resolved,
    with what caused it and what was done, released for the public status page."""
    from dcops.errors import UserError
    from dcops.incidents import list_incidents, update_incident

    if result.outage is None:
        return
    found = list_incidents(database, start=period.start, end=period.end, programme=result.outage, actor="demo",
                           now=now)
    if not found:
        return
    incident = found[-1]  # the first of the run (newest first)
    number = incident["number"]
    try:
        update_incident(database, number, status="identified", note="the web front end answers 503",
                        cause="the demo's stand-in was told to fail", attributed_to="ministry-application",
                        actor="demo", now=now)
        if not incident["ongoing"]:  # in a short run the outage may not have healed yet
            update_incident(database, number, status="resolved", note="answering again",
                            action="the stand-in answers again", actor="demo", now=now)
    except UserError as error:
        steps.detail(f"incident {number} not annotated: {error}")
        return
    steps.detail(f"incident {number} ({result.outage}): "
                 + ("identified" if incident["ongoing"] else "identified, then resolved")
                 + f", attributed to the ministry's application (see `dcops incident show {number}`)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _summary(echo: Callable[[str], None], result: DemoResult, *, serving: bool = False) -> None:
    home = result.directory
    if serving:
        echo(f"[8/{STEPS}] the chain is done; the portal stays up (--serve) and the rest is stopped; what to open:")
    else:
        echo(f"[8/{STEPS}] everything stopped, nothing left running; what to open:")
    lines = [("database", f"{result.database}  (explore: DCOPS_HOME={home} dcops programme list)")]
    for path in result.reports:
        lines.append(("report", str(path)))
    if result.site:
        lines.append(("catalogue", str(result.site)))
    if result.job_id is not None:
        lines.append(("job", f"{result.job_dir}  (DCOPS_HOME={home} dcops provision job {result.job_id} --events)"))
    if result.sandbox and result.sandbox.is_dir():
        lines.append(("sandbox", f"{result.sandbox}  (what the playbooks wrote, one folder per host)"))
    if result.metrics_url:
        served = (f"{result.metrics_series} dcops_programme_up series" if result.metrics_series is not None
                  else "not fetched")
        lines.append(("metrics", f"{result.metrics_url} was served while probing ({served}); "
                                 f"DCOPS_HOME={home} dcops serve serves it again"))
    if result.portal_url:
        if serving:
            lines.append(("portal", f"{result.portal_url}/  (serving until Ctrl-C, below)"))
        else:
            took = (f"took request {result.portal_request} through its API" if result.portal_request is not None
                    else "was served")
            lines.append(("portal", f"{result.portal_url}/ {took}; DCOPS_HOME={home} dcops portal serve serves it "
                                    "again (dcops demo --serve keeps it up)"))
    for account in result.accounts:
        lines.append(("account", f"{account.name:<17} password {account.password}  ({account.role})"))
    for label, text in lines:
        echo(f"      {label:<10} {text}")
    for skipped in result.skipped:
        echo(f"      skipped    {skipped}")
    for failure in result.failures:
        echo(f"      FAILED     {failure}")
    echo(f"demo finished in {result.seconds:.1f} s")


# --- serving after the chain (--serve), and the portal in this process ---------------------------


def _serve(echo: Callable[[str], None], database: "Database", settings: "Settings", portal: "DemoPortal",
           stand_ins: "StandIns", result: DemoResult) -> None:
    """Keep the portal up and run the stand-ins, the prober and /metrics again (at the inventory's own
    intervals), until SIGINT or SIGTERM; then stop them all. A signal here is the normal end."""
    from dcops.daemon import run_service, stop_on_signals

    stop = threading.Event()

    def on_ready(server) -> None:
        result.serving_metrics_url = server.url
        echo("serving on loopback until Ctrl-C (SIGINT or SIGTERM stops everything cleanly):")
        echo(f"      portal     {portal.url}/  (sign in at {portal.url}/signin as an account above; "
             f"API: {portal.url}/api/v1/openapi.json)")
        echo(f"      metrics    {server.url}  (the stand-ins answer again; probed at the inventory's own "
             "intervals, programmes are up again within a minute or two)")

    with stop_on_signals(stop):  # from here on, a signal is the normal end
        try:
            if not portal.running:  # step 2 failed (--keep-going) before the portal was up: once more
                try:
                    result.portal_url = portal.start()
                except DcopsError as error:
                    raise DemoFailed(f"--serve: the portal did not start: {error}") from None
            for problem in stand_ins.restart():
                echo(f"      stand-in not reopened (its checks will fail): {problem}")
            run_service(database, stop, server_options={"host": "127.0.0.1", "port": 0, "cache_seconds": 1.0},
                        ca_file=str(stand_ins.ca_file) if stand_ins.ca_file else None, tz=settings.tz,
                        on_ready=on_ready)
        finally:
            stop.set()
            stand_ins.stop()
            portal.stop()
    echo("stopped the portal, /metrics, the prober and the stand-ins: nothing left running")


class DemoPortal:
    """The portal (dcops.portal.app) in this process: uvicorn in a thread, on a loopback port the system
    gives; `stop` ends it (uvicorn's graceful shutdown) and closes the port. Safe to stop twice."""

    def __init__(self, settings: "Settings", database: "Database"):
        self.settings, self.database = settings, database
        self.url: str | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._socket = None

    def start(self) -> str:
        """Listen and serve; returns the portal's origin (http://127.0.0.1:PORT) once it answers."""
        import socket

        import uvicorn

        from dcops.portal.app import create_app

        app = create_app(self.settings, self.database)
        # The socket bound here, so the port is known before uvicorn starts (no free-port race).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.bind(("127.0.0.1", 0))
        except OSError:
            self.stop()
            raise
        port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False,
            timeout_graceful_shutdown=PORTAL_STOP_SECONDS))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="dcops-demo-portal", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + PORTAL_START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DemoFailed(f"the portal did not start on 127.0.0.1:{port} "
                                 f"(uvicorn's warnings, if any, are above)")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    @property
    def running(self) -> bool:
        """Whether uvicorn is serving (started, and its thread not ended)."""
        return bool(self._server is not None and self._server.started and self._thread is not None
                    and self._thread.is_alive())

    def stop(self) -> None:
        """Stop serving and wait for uvicorn's thread; the listening socket is closed."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(PORTAL_STOP_SECONDS + 10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None


# --- loopback stand-ins ----------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 503: "Service Unavailable"}.get(status, "Status")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("latin-1") + body


class StandIns:
    """Loopback servers answering the programmes' endpoints (HTTP, HTTPS, TLS, TCP), on one event loop
    in one thread; `failing` holds the HTTP addresses that answer 503."""

    def __init__(self) -> None:
        self.tls: "ssl.SSLContext | None" = None
        self.ca_file: Path | None = None
        self.kinds: dict[tuple[str, int], str] = {}
        self.failing: set[tuple[str, int]] = set()
        self._servers: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self._connections: set[tuple[asyncio.Task, asyncio.StreamWriter]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the event loop thread."""
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda loop, context: None)  # a probe closing mid-handshake is expected
        self._thread = threading.Thread(target=self._loop.run_forever, name="dcops-demo-stand-ins", daemon=True)
        self._thread.start()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def listen(self, kind: str, host: str) -> tuple[int | None, str | None]:
        """Serve `kind` at `host` on a free port the system chooses; returns (port, None), or
        (None, why not: a non-loopback address, no certificate, an address not on this machine)."""
        if not _loopback(host):
            return None, "not a loopback IP address: the demo stands in on loopback only"
        if kind in ("tls", "https") and self.tls is None:
            return None, "no TLS certificate"
        try:
            server = self._call(self._open(kind, host, 0))
        except OSError as error:
            return None, error.strerror or str(error)
        port = server.sockets[0].getsockname()[1]
        self._servers[(host, port)] = server
        self.kinds[(host, port)] = kind
        return port, None

    async def _open(self, kind: str, host: str, port: int) -> asyncio.AbstractServer:
        """A server for `kind` at host:port (port 0: one the system chooses)."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            entry = (asyncio.current_task(), writer)
            self._connections.add(entry)
            try:
                if kind in ("http", "https"):
                    async with asyncio.timeout(HOLD_SECONDS):
                        await reader.readuntil(b"\r\n\r\n")
                    failing = (host, writer.get_extra_info("sockname")[1]) in self.failing
                    writer.write(_http_response(503, b"down for the demo\n") if failing
                                 else _http_response(200, b"ok\n"))
                    await writer.drain()
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass  # the probe went away or sent nonsense
            finally:
                self._connections.discard(entry)
                writer.close()

        context = self.tls if kind in ("tls", "https") else None
        return await asyncio.start_server(handle, host, port, ssl=context, backlog=256,
                                          ssl_handshake_timeout=HOLD_SECONDS if context else None)

    def restart(self) -> list[str]:
        """Start again after `stop`, listening at every address as before, none failing; returns
        what could not be reopened ("kind host:port: why")."""
        self.stop()
        self.failing.clear()
        self.start()
        problems = []
        for key in sorted(self.kinds, key=lambda k: (k[1], k[0])):
            problem = self.reopen(key)
            if problem:
                problems.append(f"{self.kinds[key]} {key[0]}:{key[1]}: {problem}")
        return problems

    def close(self, key: tuple[str, int]) -> None:
        """Stop listening at `key` (connecting is then refused)."""
        server = self._servers.pop(key, None)
        if server is not None and self._loop is not None:
            self._call(self._close(server))

    def reopen(self, key: tuple[str, int]) -> str | None:
        """Listen again at `key` as before; returns why not, else None."""
        if key not in self.kinds or key in self._servers:
            return None
        try:
            self._servers[key] = self._call(self._open(self.kinds[key], *key))
        except OSError as error:
            return error.strerror or str(error)
        return None

    @staticmethod
    async def _close(server: asyncio.AbstractServer) -> None:
        server.close()
        await server.wait_closed()

    async def _stop_all(self) -> None:
        for server in self._servers.values():
            server.close()
        tasks = [task for task, _writer in self._connections]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _task, writer in list(self._connections):
            writer.transport.abort()
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()
        await asyncio.sleep(0)  # let the aborted transports finish closing

    def stop(self) -> None:
        """Close every server and connection and end the thread; safe to call twice."""
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        try:
            asyncio.run_coroutine_threadsafe(self._stop_all(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
            loop.close()


def _server_context(cert: Path, key: Path) -> "ssl.SSLContext":
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def make_demo_pki(directory: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A CA and one server certificate for `hosts` (IP addresses), valid 30 days; returns (ca, cert, key) files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dcops demo"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def certificate(subject: str, key, issuer: x509.Name, issuer_key, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                         crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
        )
        if not ca:
            builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                       .add_extension(x509.SubjectAlternativeName(
                           [x509.IPAddress(ipaddress.ip_address(host)) for host in hosts]), critical=False))
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("dcops demo CA", ca_key, name("dcops demo CA"), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate("dcops demo stand-ins", key, ca.subject, ca_key, ca=False)
    ca_file, cert_file, key_file = directory / "ca.crt", directory / "stand-ins.crt", directory / "stand-ins.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file
