"""`dcops request`: hosting requests from ministries, from submission to approval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, ActorOption, Output, RecordOutput, RecordOutputOption, echo_csv, echo_json,
                              echo_table, fail, id_argument, open_database, printable, settings)

app = typer.Typer(help="Hosting requests: submit, review, sign off, approve (places capacity), reject.",
                  no_args_is_help=True)

IdArg = id_argument("The request's number.")


@app.command("submit")
def submit_command(
    file: Annotated[Optional[Path], typer.Argument(help="A filled-in request template (YAML).")] = None,
    ministry: Annotated[Optional[str], typer.Option(help="Requesting ministry (code).")] = None,
    slug: Annotated[Optional[str], typer.Option(help="Programme slug: [a-z0-9-], 2-63 characters.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Programme name.")] = None,
    description: Annotated[Optional[str], typer.Option(help="What the programme does.")] = None,
    offering: Annotated[Optional[str], typer.Option(help="Catalogue offering id.")] = None,
    plan: Annotated[Optional[str], typer.Option(help="Plan id within the offering.")] = None,
    tier: Annotated[Optional[int], typer.Option(help="SLA tier (one the plan offers).")] = None,
    classification: Annotated[Optional[str], typer.Option(help="public, internal, confidential or secret.")] = None,
    environment: Annotated[Optional[str], typer.Option(help="production or staging.")] = None,
    personal_data: Annotated[Optional[bool], typer.Option("--personal-data/--no-personal-data")] = None,
    justification: Annotated[Optional[str], typer.Option(help="Why the ministry needs it.")] = None,
    owner: Annotated[Optional[str], typer.Option(help="Owner contact (e-mail).")] = None,
    security_contact: Annotated[Optional[str], typer.Option(help="Security contact (e-mail).")] = None,
    wanted_by: Annotated[Optional[str], typer.Option(help="Wanted by (YYYY-MM-DD).")] = None,
    site: Annotated[Optional[str], typer.Option(help="Site the programme must run at (optional).")] = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Submit a hosting request from a filled-in template, or from flags (flags win).

    Every field is checked against the catalogue and the inventory; every problem is
    reported at once and nothing is written.

    Example: dcops request submit requests/lesmis-v2.yaml
    """
    from dcops.catalogue.requests import read_request_file, submit

    document = read_request_file(file) if file is not None else {}
    if not isinstance(document, dict):
        fail(f"{file}: a request is a mapping of fields (see the catalogue's request templates)")
    flags = {"ministry": ministry, "offering": offering, "plan": plan, "tier": tier,
             "classification": classification, "environment": environment, "personal_data": personal_data,
             "justification": justification, "wanted_by": wanted_by, "site": site}
    document.update({k: v for k, v in flags.items() if v is not None})
    # A problem with a value given as a flag names the flag, not a line of the file.
    given_by = {(k,): "--" + k.replace("_", "-") for k, v in flags.items() if v is not None}
    nested = {"programme": {"slug": slug, "name": name, "description": description},
              "contacts": {"owner": owner, "security": security_contact}}
    options = {("programme", "slug"): "--slug", ("programme", "name"): "--name",
               ("programme", "description"): "--description", ("contacts", "owner"): "--owner",
               ("contacts", "security"): "--security-contact"}
    for key, values in nested.items():
        given = {k: v for k, v in values.items() if v is not None}
        given_by.update({(key, k): options[(key, k)] for k in given})
        if isinstance(document.get(key), dict):
            document[key].update(given)
        elif given or key not in document:
            document[key] = given
    request_id = submit(open_database(), document, actor=actor, where=str(file) if file else "request",
                        tz=settings().tz, flags=given_by)
    if output == RecordOutput.json:
        echo_json({"id": request_id, "state": "submitted"})
    else:
        typer.echo(f"request {request_id} submitted")


@app.command("list")
def list_command(
    state: Annotated[Optional[str], typer.Option(help="Only requests in this state.")] = None,
    ministry: Annotated[Optional[str], typer.Option(help="Only this ministry's requests (code).")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List requests, oldest first.

    Example: dcops request list --state submitted --output json
    """
    from dcops.catalogue.requests import list_requests

    with open_database().transaction() as conn:
        rows = list_requests(conn, state=state, ministry=ministry)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        flat = [{**r, "programme": r["programme"]["slug"], "contacts": r["contacts"]["owner"]} for r in rows]
        echo_csv(flat, ("id", "state", "ministry", "programme", "offering", "plan", "tier", "classification",
                        "wanted_by", "cluster", "submitted_at"))
    else:
        echo_table(
            ((r["id"], r["state"], r["ministry"], r["programme"]["slug"], r["plan"], r["tier"],
              "yes" if r["security_signoff_by"] else ("needed" if r["needs_security_signoff"] else "-"))
             for r in rows),
            ("ID", "STATE", "MINISTRY", "PROGRAMME", "PLAN", "TIER", "SIGN-OFF"),
            right=(0, 5), shrink=(3, 4),
        )


@app.command("show")
def show_command(
    request_id: IdArg,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Show a request and its history.

    Example: dcops request show 12
    """
    import textwrap

    from dcops.catalogue.requests import show_request

    with open_database().transaction() as conn:
        record = show_request(conn, request_id)
    if output == RecordOutput.json:
        echo_json(record)
        return
    signoff = record["security_signoff_by"] or ("needed" if record["needs_security_signoff"] else "not needed")
    lines = [
        ("Request", f"{record['id']} ({record['state']})"),
        ("Ministry", record["ministry"]),
        ("Programme", f"{record['programme']['name']} ({record['programme']['slug']})"),
        ("Plan", f"{record['offering']} / {record['plan']}"),
        ("Tier", record["tier"]),
        ("Classification", record["classification"] + (", personal data" if record["personal_data"] else "")),
        ("Environment", record["environment"]),
        ("Wanted by", record["wanted_by"]),
        ("Site", record["site"] or "any"),
        ("Contacts", f"owner {record['contacts']['owner']}, security {record['contacts']['security']}"),
        ("Justification", record["justification"]),
        ("Sign-off", signoff),
        ("Submitted", f"{record['submitted_at']} by {record['submitted_by']}"),
        ("Decided", f"{record['decided_at']} by {record['decided_by']}" if record["decided_by"] else "-"),
        ("Cluster", record["cluster"] or "-"),
        ("Reason", record["reason"] or "-"),
    ]
    for label, value in lines:
        typer.echo(textwrap.fill(printable(value), 80, initial_indent=f"{label + ':':<16}", subsequent_indent=" " * 16))
    typer.echo("\nHistory")
    echo_table(((h["at"], h["actor"], h["action"]) for h in record["history"]), ("AT", "ACTOR", "ACTION"), shrink=(1,))


@app.command("sign-off")
def sign_off_command(request_id: IdArg, actor: ActorOption = None) -> None:
    """Record the security sign-off (first of two people for personal or classified data).

    Example: dcops request sign-off 12 --actor somphone.security
    """
    from dcops.catalogue.requests import sign_off

    sign_off(open_database(), request_id, actor=actor)
    typer.echo(f"request {request_id}: security signed off")


@app.command("approve")
def approve_command(
    request_id: IdArg,
    cluster: Annotated[Optional[str], typer.Option(help="Place on this cluster (default: the best that fits).")] = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Approve a request: place it where its plan fits, reserve the capacity, and set up the
    checks its offering declares (one per host for a {host} check).

    JSON output has the keys id, state, programme, cluster, site, reserved (resource ->
    amount), checks (the endpoint names created) and warnings (lines also printed on
    stderr, e.g. that an offering declares no checks).

    Example: dcops request approve 12 --cluster vte-gen1 --actor khamla.ops
    """
    from dcops.catalogue.requests import approve

    placement = approve(open_database(), request_id, actor=actor, cluster=cluster)
    if output == RecordOutput.json:
        echo_json({"id": placement.request_id, "state": "approved", "programme": placement.programme,
                   "cluster": placement.cluster, "site": placement.site, "reserved": placement.reserved,
                   "checks": list(placement.checks), "warnings": list(placement.warnings)})
    else:
        reserved = ", ".join(f"{r} {a}" for r, a in placement.reserved.items()) or "nothing"
        typer.echo(f"request {request_id} approved: {placement.programme} placed on {placement.cluster} "
                   f"({placement.site}), reserved {reserved}")
        if placement.checks:
            typer.echo(f"checks: {', '.join(placement.checks)}")
    for warning in placement.warnings:
        typer.echo(f"dcops: warning: {warning}", err=True)


@app.command("reject")
def reject_command(
    request_id: IdArg,
    reason: Annotated[str, typer.Option(help="Why, for the ministry.")],
    actor: ActorOption = None,
) -> None:
    """Reject a submitted request, with a reason.

    Example: dcops request reject 12 --reason "use the shared web hosting plan instead"
    """
    from dcops.catalogue.requests import reject

    reject(open_database(), request_id, reason=reason, actor=actor)
    typer.echo(f"request {request_id} rejected")


@app.command("withdraw")
def withdraw_command(
    request_id: IdArg,
    reason: Annotated[str, typer.Option(help="Why (optional).")] = "",
    actor: ActorOption = None,
) -> None:
    """Withdraw a submitted request on the ministry's behalf.

    Example: dcops request withdraw 12 --reason "merged into request 14"
    """
    from dcops.catalogue.requests import withdraw

    withdraw(open_database(), request_id, actor=actor, reason=reason)
    typer.echo(f"request {request_id} withdrawn")
