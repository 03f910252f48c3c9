"""`dcops programme`: list, show, add, update and retire hosted programmes, and manage their endpoints."""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, TABLE_WIDTH, ActorOption, Output, RecordOutput, RecordOutputOption, echo_csv,
                              echo_json, echo_table, fail, open_database, printable)

app = typer.Typer(help="The programmes the data centre hosts.", no_args_is_help=True)

OutputOption = Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)]


@app.command("list")
def list_command(
    ministry: Annotated[Optional[str], typer.Option(help="Only this ministry's programmes (its code).")] = None,
    status: Annotated[Optional[str], typer.Option(help="Only programmes in this lifecycle status.")] = None,
    tier: Annotated[Optional[int], typer.Option(help="Only this tier (1, 2 or 3).")] = None,
    output: OutputOption = Output.table,
) -> None:
    """List programmes, ordered by slug.

    JSON output is a list of objects with the keys slug, name, ministry, tier,
    sla_target_percent, status, classification, environment, personal_data,
    owner_contact, security_contact, review_date (YYYY-MM-DD or null) and
    updated_at (ISO 8601 UTC); scripts may rely on them.

    Example: dcops programme list --ministry moh --tier 1 --output json
    """
    from dcops.inventory.queries import PROGRAMME_LIST_KEYS, list_programmes

    database = open_database()
    with database.transaction() as conn:
        rows = list_programmes(conn, ministry=ministry, status=status, tier=tier)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        echo_csv(rows, PROGRAMME_LIST_KEYS)
    else:
        echo_table(
            ((r["slug"], r["ministry"], r["tier"], r["status"], r["classification"][:4], r["name"]) for r in rows),
            ("SLUG", "MINISTRY", "TIER", "STATUS", "CLASS", "NAME"),
            shrink=(5, 0),
            right=(2,),
        )


@app.command("show")
def show_command(
    slug: Annotated[str, typer.Argument(help="The programme's slug.")],
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Show everything about one programme: its dependencies (programmes and external
    components, each said which) and whether a third party's downtime is left out of its SLA.

    JSON output adds to the keys of `programme list`: description, ministry_name, plan,
    recovery, created_at, short_name, depends_on (programme slugs), dependencies [{slug,
    name, kind (programme or external), run_by}], depended_on_by, excludes_external,
    excludes_external_from (tier or programme), endpoints, allocations and hosts.

    Example: dcops programme show e-crvs
    """
    from dcops.inventory.queries import show_programme

    database = open_database()
    with database.transaction() as conn:
        record = show_programme(conn, slug)
    if output == RecordOutput.json:
        echo_json(record)
        return
    recovery = record["recovery"]
    needs = [f"{d['slug']} ({'programme' if d['kind'] == 'programme' else 'external, ' + d['run_by']})"
             for d in record["dependencies"]]
    whose = "its own setting" if record["excludes_external_from"] == "programme" else f"tier {record['tier']}'s setting"
    excluded = "left out of" if record["excludes_external"] else "counted in"
    lines = [
        ("Programme", f"{record['name']} ({record['slug']})"),
        ("Short name", record["short_name"] or "-"),
        ("Ministry", f"{record['ministry_name']} ({record['ministry']})"),
        ("Status", record["status"]),
        ("Tier", f"{record['tier']} (SLA target {record['sla_target_percent']:g} %)"),
        ("Classification", record["classification"] + (", personal data" if record["personal_data"] else "")),
        ("Environment", record["environment"]),
        ("Owner", record["owner_contact"]),
        ("Security", record["security_contact"]),
        ("Recovery", f"RTO {recovery['rto_minutes'] if recovery['rto_minutes'] is not None else '-'} min, "
                     f"RPO {recovery['rpo_minutes'] if recovery['rpo_minutes'] is not None else '-'} min, "
                     f"backup {recovery['backup_tier']}"),
        ("Plan", record["plan"] or "-"),
        ("Review by", record["review_date"] or "-"),
        ("Depends on", ", ".join(needs) or "-"),
        ("Third party", f"outages {excluded} its SLA ({whose})"),
        ("Needed by", ", ".join(record["depended_on_by"]) or "-"),
        ("Created", record["created_at"]),
        ("Updated", record["updated_at"]),
    ]
    if record["description"]:
        lines.append(("Description", record["description"]))
    for label, value in lines:
        # Slugs hold dashes: a line is broken between words, never inside a slug.
        typer.echo(textwrap.fill(printable(value), TABLE_WIDTH, initial_indent=f"{label + ':':<16}",
                                 subsequent_indent=" " * 16, break_on_hyphens=False))
    if record["endpoints"]:
        typer.echo("\nEndpoints")
        echo_table(((e["name"], e["kind"], e["target"]) for e in record["endpoints"]), ("NAME", "KIND", "TARGET"),
                   shrink=(2,))
    if record["allocations"]:
        typer.echo("\nAllocations")
        echo_table(
            ((a["cluster"], a.get("vcpu", 0), a.get("ram_gib", 0), a.get("storage_gib", 0)) for a in record["allocations"]),
            ("CLUSTER", "VCPU", "RAM_GIB", "STORAGE_GIB"),
            right=(1, 2, 3),
        )
    if record["hosts"]:
        typer.echo("\nHosts")
        echo_table(((h["name"], h["address"], h["cluster"], h["role"]) for h in record["hosts"]),
                   ("NAME", "ADDRESS", "CLUSTER", "ROLE"), shrink=(0,))


def _date(value: Optional[str], option: str):
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        fail(f"{option}: expected a date as YYYY-MM-DD, not {value!r}")


def _document(**options) -> dict:
    """The options given on the command line, in the shape of an inventory document."""
    document: dict = {}
    contacts = {k: options.pop(k) for k in ("owner", "security") if options.get(k) is not None}
    options.pop("owner", None), options.pop("security", None)
    recovery = {k: options.pop(k) for k in ("rto_minutes", "rpo_minutes", "backup_tier") if options.get(k) is not None}
    for key in ("rto_minutes", "rpo_minutes", "backup_tier"):
        options.pop(key, None)
    document.update({k: v for k, v in options.items() if v is not None})
    if contacts:
        document["contacts"] = contacts
    if recovery:
        document["recovery"] = recovery
    return document


def _render_change(plan, output: RecordOutput, verb: str, slug: str) -> None:
    from dcops.cli.inventory import render_plan, warn_unmonitored

    if output == RecordOutput.json:
        echo_json(plan.as_dict())
    elif not plan.has_changes:
        typer.echo(f"programme {slug}: nothing to change")
    else:
        render_plan(plan)
    warn_unmonitored(plan)


NameOpt = Annotated[Optional[str], typer.Option("--name", help="Full name of the programme.")]
ShortNameOpt = Annotated[Optional[str], typer.Option("--short-name", help="What charts call it, 1-24 characters: "
                                                     "e.g. e-CRVS, LESMIS.")]
ExternalOpt = Annotated[Optional[bool], typer.Option(
    "--excludes-external/--counts-external",
    help="Whether a third party's outages (an external component it depends on) are left out of its SLA "
         "(default: its tier's setting).")]
MinistryOpt = Annotated[Optional[str], typer.Option("--ministry", help="Code of the owning ministry.")]
DescriptionOpt = Annotated[Optional[str], typer.Option("--description", help="What the programme does.")]
TierOpt = Annotated[Optional[int], typer.Option("--tier", help="1, 2 or 3 (SLA 99.9 / 99.5 / 99.0 % by default).")]
ClassOpt = Annotated[Optional[str], typer.Option("--classification", help="public, internal, confidential or secret.")]
EnvOpt = Annotated[Optional[str], typer.Option("--environment", help="production or staging.")]
OwnerOpt = Annotated[Optional[str], typer.Option("--owner", help="Owner contact (e-mail).")]
SecurityOpt = Annotated[Optional[str], typer.Option("--security-contact", help="Security contact (e-mail).")]
PersonalOpt = Annotated[
    Optional[bool], typer.Option("--personal-data/--no-personal-data", help="Whether it holds personal data.")
]
RtoOpt = Annotated[Optional[int], typer.Option("--rto", help="Recovery time objective, minutes.")]
RpoOpt = Annotated[Optional[int], typer.Option("--rpo", help="Recovery point objective, minutes.")]
BackupOpt = Annotated[Optional[str], typer.Option("--backup-tier", help="none, daily, hourly or continuous.")]
ReviewOpt = Annotated[Optional[str], typer.Option("--review-date", help="When hosting is re-approved (YYYY-MM-DD).")]
PlanOpt = Annotated[Optional[str], typer.Option("--plan", help="The catalogue plan that prices it (see "
                                             "`dcops catalogue list`).")]
DependsOpt = Annotated[
    Optional[list[str]], typer.Option("--depends-on", help="Slug of a programme or external component it needs "
                                                            "(repeat for several).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would change; write nothing.")]
ChangeOutput = Annotated[RecordOutput, typer.Option("--output", "-o", help="table or json (the plan: applied, summary, "
                                                                     "changes, unmonitored; see `inventory load "
                                                                     "--help`)")]


@app.command("add")
def add_command(
    slug: Annotated[str, typer.Argument(help="Short name: [a-z0-9-], 2-63 characters.")],
    name: NameOpt = None,
    short_name: ShortNameOpt = None,
    ministry: MinistryOpt = None,
    description: DescriptionOpt = None,
    tier: TierOpt = None,
    classification: ClassOpt = None,
    environment: EnvOpt = None,
    owner: OwnerOpt = None,
    security_contact: SecurityOpt = None,
    personal_data: PersonalOpt = None,
    rto: RtoOpt = None,
    rpo: RpoOpt = None,
    backup_tier: BackupOpt = None,
    review_date: ReviewOpt = None,
    plan: PlanOpt = None,
    depends_on: DependsOpt = None,
    excludes_external: ExternalOpt = None,
    dry_run: DryRunOpt = False,
    output: ChangeOutput = RecordOutput.table,
    actor: ActorOption = None,
) -> None:
    """Add a programme (the same checks as `inventory load`).

    Example: dcops programme add lao-tax --name "Tax administration" --ministry mof --tier 1
    --classification confidential --owner tax@mof.gov.la --security-contact sec@mof.gov.la
    """
    from dcops.inventory.service import add_programme

    document = _document(
        slug=slug, name=name, ministry=ministry, description=description, tier=tier,
        classification=classification, environment=environment, owner=owner, security=security_contact,
        personal_data=personal_data, rto_minutes=rto, rpo_minutes=rpo, backup_tier=backup_tier,
        review_date=_date(review_date, "--review-date"), plan=plan, depends_on=depends_on or None,
        short_name=short_name, excludes_external=excludes_external,
    )
    plan = add_programme(open_database(), document, actor=actor, dry_run=dry_run)
    _render_change(plan, output, "added", slug)


@app.command("update")
def update_command(
    slug: Annotated[str, typer.Argument(help="The programme's slug.")],
    name: NameOpt = None,
    short_name: ShortNameOpt = None,
    ministry: MinistryOpt = None,
    description: DescriptionOpt = None,
    tier: TierOpt = None,
    classification: ClassOpt = None,
    environment: EnvOpt = None,
    owner: OwnerOpt = None,
    security_contact: SecurityOpt = None,
    personal_data: PersonalOpt = None,
    rto: RtoOpt = None,
    rpo: RpoOpt = None,
    backup_tier: BackupOpt = None,
    review_date: ReviewOpt = None,
    plan: PlanOpt = None,
    depends_on: DependsOpt = None,
    excludes_external: ExternalOpt = None,
    dry_run: DryRunOpt = False,
    output: ChangeOutput = RecordOutput.table,
    actor: ActorOption = None,
) -> None:
    """Change fields of a programme; only the options given change.

    Example: dcops programme update lesmis --tier 1 --review-date 2027-12-31
    """
    from dcops.inventory.service import update_programme

    changes = _document(
        name=name, ministry=ministry, description=description, tier=tier,
        classification=classification, environment=environment, owner=owner, security=security_contact,
        personal_data=personal_data, rto_minutes=rto, rpo_minutes=rpo, backup_tier=backup_tier,
        review_date=_date(review_date, "--review-date"), plan=plan, depends_on=depends_on or None,
        short_name=short_name, excludes_external=excludes_external,
    )
    if not changes:
        fail("nothing to change: give at least one option (see --help)")
    plan = update_programme(open_database(), slug, changes, actor=actor, dry_run=dry_run)
    _render_change(plan, output, "updated", slug)


@app.command("retire")
def retire_command(
    slug: Annotated[str, typer.Argument(help="The programme's slug.")],
    dry_run: DryRunOpt = False,
    output: ChangeOutput = RecordOutput.table,
    actor: ActorOption = None,
) -> None:
    """Retire a programme: it stops counting, its capacity is released; its history stays.

    Example: dcops programme retire old-portal
    """
    from dcops.inventory.service import retire_programme

    plan = retire_programme(open_database(), slug, actor=actor, dry_run=dry_run)
    _render_change(plan, output, "retired", slug)


endpoint_app = typer.Typer(help="A programme's endpoints: the checks that monitor it.", no_args_is_help=True)
app.add_typer(endpoint_app, name="endpoint")


def _printable(value) -> str:
    # Stored before targets were checked for control characters, a value could still carry one.
    return "".join(ch if ch.isprintable() else "?" for ch in str(value))


@endpoint_app.command("add")
def endpoint_add_command(
    slug: Annotated[str, typer.Argument(help="The programme's slug.")],
    name: Annotated[str, typer.Option("--name", help="The check's name: [a-z0-9-], e.g. web, ssh, db.")],
    kind: Annotated[str, typer.Option("--kind", help="http (a URL), tcp (connect) or tls (handshake, expiry).")],
    target: Annotated[str, typer.Option("--target", help="http: an http:// or https:// URL; tcp, tls: host:port.")],
    expect_status: Annotated[Optional[str], typer.Option(
        "--expect-status", help="http: the status codes that pass, e.g. 200 or 200-299,301 (default 200-399).")] = None,
    body_contains: Annotated[Optional[str], typer.Option(
        "--body-contains", help="http: text the response body must contain.")] = None,
    interval_seconds: Annotated[Optional[int], typer.Option(
        "--interval-seconds", help="How often it is probed, 10-86400 (default 60).")] = None,
    timeout_seconds: Annotated[Optional[float], typer.Option(
        "--timeout-seconds", help="How long a probe may take, under the interval (default 5).")] = None,
    dry_run: DryRunOpt = False,
    output: ChangeOutput = RecordOutput.table,
    actor: ActorOption = None,
) -> None:
    """Add an endpoint (a check) to a programme: the same checks and audit as `inventory load`.

    Example: dcops programme endpoint add lesmis --name web --kind http
    --target https://lesmis.moes.gov.la/healthz --expect-status 200
    """
    from dcops.inventory.service import add_endpoint

    given = {"expect_status": expect_status, "body_contains": body_contains,
             "interval_seconds": interval_seconds, "timeout_seconds": timeout_seconds}
    endpoint = {"name": name, "kind": kind, "target": target, **{k: v for k, v in given.items() if v is not None}}
    plan = add_endpoint(open_database(), slug, endpoint, actor=actor, dry_run=dry_run)
    _render_change(plan, output, "updated", slug)


@endpoint_app.command("remove")
def endpoint_remove_command(
    slug: Annotated[str, typer.Argument(help="The programme's slug.")],
    name: Annotated[str, typer.Argument(help="The endpoint's name (see `dcops programme endpoint list`).")],
    dry_run: DryRunOpt = False,
    output: ChangeOutput = RecordOutput.table,
    actor: ActorOption = None,
) -> None:
    """Remove an endpoint of a programme; the programme's SLA history stays, the check's own goes.

    Example: dcops programme endpoint remove lesmis web
    """
    from dcops.inventory.service import remove_endpoint

    plan = remove_endpoint(open_database(), slug, name, actor=actor, dry_run=dry_run)
    _render_change(plan, output, "updated", slug)


@endpoint_app.command("list")
def endpoint_list_command(
    slug: Annotated[str, typer.Argument(help="The programme's slug.")],
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """List a programme's endpoints, by name.

    JSON output is a list of objects with the keys name, kind, target, expect_status,
    body_contains, timeout_seconds and interval_seconds; scripts may rely on them.

    Example: dcops programme endpoint list e-crvs --output json
    """
    from dcops.inventory.queries import list_endpoints

    with open_database().transaction() as conn:
        rows = list_endpoints(conn, slug)
    if output == RecordOutput.json:
        echo_json(rows)
        return
    echo_table(
        ((_printable(r["name"]), r["kind"], _printable(r["target"]), r["expect_status"] if r["kind"] == "http" else "-",
          r["interval_seconds"], r["timeout_seconds"]) for r in rows),
        ("NAME", "KIND", "TARGET", "EXPECT", "EVERY_S", "TIMEOUT_S"),
        shrink=(2, 0), right=(4, 5),
    )
