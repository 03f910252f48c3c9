"""`dcops provision`: run the playbooks on programmes, and the jobs that record the runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, ActorOption, Output, RecordOutput, RecordOutputOption, echo_csv, echo_json,
                              echo_table, fail, id_argument, open_database, printable, settings)

app = typer.Typer(help="Provision and decommission programmes through Ansible; the job records.",
                  no_args_is_help=True)

SandboxOption = Annotated[
    Optional[Path],
    typer.Option("--sandbox", help="Sandbox mode: local connection, every path under this folder, no root."),
]
TimeoutOption = Annotated[Optional[int], typer.Option("--timeout", help="Cancel the run after this many seconds.")]

JobIdArgument = id_argument("The job's number.")

def _progress(event) -> None:
    if event.kind == "task":
        typer.echo(f"TASK {event.task}", err=True)
    elif event.kind in ("failed", "unreachable"):
        typer.echo(f"  {event.kind:<11} {event.host}: {event.message}", err=True)
    else:
        typer.echo(f"  {event.kind:<11} {event.host}", err=True)


def _report(outcome, output: RecordOutput) -> None:
    if output == RecordOutput.json:
        echo_json({"job": outcome.job_id, "status": outcome.status, "rc": outcome.rc,
                   "programmes": outcome.programmes, "host_stats": outcome.host_stats,
                   "failed_host": outcome.failed_host, "failed_task": outcome.failed_task,
                   "failure_message": outcome.failure_message})
    else:
        for host, stats in sorted(outcome.host_stats.items()):
            typer.echo(f"{host:<30} " + "  ".join(f"{k}={v}" for k, v in stats.items()))
        typer.echo(f"job {outcome.job_id} {outcome.status} ({', '.join(outcome.programmes)})")
    if not outcome.ok:
        typer.echo(f"dcops: error: {outcome.failure_summary}", err=True)
        raise typer.Exit(130 if outcome.status == "cancelled" else 1)


@app.command("run")
def run_command(
    slugs: Annotated[Optional[list[str]], typer.Argument(help="Programmes to provision.")] = None,
    all_approved: Annotated[bool, typer.Option("--all-approved", help="Every approved programme, in one run.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Ansible check mode: report, change nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show file differences.")] = False,
    timeout: TimeoutOption = None,
    sandbox: SandboxOption = None,
    forks: Annotated[int, typer.Option(min=1, help="Hosts Ansible works on at once.")] = 10,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Provision programmes: run playbooks/provision.yml on their hosts, recorded as one job.

    The programme (and its request) moves approved -> provisioning -> active, or failed
    with the reason (retry with the same command). Progress goes to stderr.

    Example: dcops provision run lesmis-v2 --sandbox /tmp/dc-sandbox
    """
    from dcops.provisioning.jobs import run_job

    if all_approved == bool(slugs):
        fail("give programme slugs or --all-approved (not both)")
    config = settings()
    outcome = run_job(open_database(), "provision", None if all_approved else slugs, home=config.home,
                      actor=actor, check=check, diff=diff, timeout=timeout, sandbox_root=sandbox, forks=forks,
                      on_event=_progress, playbooks_dir=config.playbooks_dir)
    _report(outcome, output)


@app.command("decommission")
def decommission_command(
    slug: Annotated[str, typer.Argument(help="The programme to decommission.")],
    check: Annotated[bool, typer.Option("--check", help="Ansible check mode: report, change nothing.")] = False,
    timeout: TimeoutOption = None,
    sandbox: SandboxOption = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Decommission a programme: stop it, archive its data and configuration (kept), remove the rest.

    On success the programme is retired and its capacity released.

    Example: dcops provision decommission census-2015-portal --sandbox /tmp/dc-sandbox
    """
    from dcops.provisioning.jobs import run_job

    config = settings()
    outcome = run_job(open_database(), "decommission", [slug], home=config.home, actor=actor, check=check,
                      timeout=timeout, sandbox_root=sandbox, on_event=_progress, playbooks_dir=config.playbooks_dir)
    _report(outcome, output)


@app.command("verify")
def verify_command(
    slugs: Annotated[list[str], typer.Argument(help="Programmes to check.")],
    sandbox: SandboxOption = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Check that what provisioning set up is in place (playbooks/verify.yml); changes nothing.

    Example: dcops provision verify lesmis-v2 --sandbox /tmp/dc-sandbox
    """
    from dcops.provisioning.jobs import run_job

    config = settings()
    outcome = run_job(open_database(), "verify", slugs, home=config.home, actor=actor,
                      sandbox_root=sandbox, on_event=_progress, playbooks_dir=config.playbooks_dir)
    _report(outcome, output)


@app.command("jobs")
def jobs_command(
    limit: Annotated[int, typer.Option(min=1, help="How many of the latest jobs.")] = 20,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List the latest jobs, newest first.

    Example: dcops provision jobs --limit 5
    """
    from dcops.provisioning.jobs import list_jobs

    with open_database().transaction() as conn:
        rows = list_jobs(conn, limit=limit)
    if output == Output.json:
        echo_json(rows)
        return
    if output == Output.csv:
        echo_csv([{**r, "programmes": " ".join(r["programmes"])} for r in rows],
                 ("id", "kind", "check_mode", "status", "rc", "programmes", "actor", "started_at", "finished_at",
                  "failed_host", "failed_task"))
        return
    echo_table(
        ((r["id"], r["kind"] + (" check" if r["check_mode"] else ""), r["status"], r["rc"], r["started_at"],
          ",".join(r["programmes"])) for r in rows),
        ("ID", "KIND", "STATUS", "RC", "STARTED", "PROGRAMMES"), right=(0, 3), shrink=(5,),
    )


@app.command("job")
def job_command(
    job_id: JobIdArgument,
    events: Annotated[bool, typer.Option("--events", help="Also print Ansible's events, in order.")] = False,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Show a job: status, per-host results, the failing task and where its event log is.

    Example: dcops provision job 7 --events
    """
    from dcops.provisioning.jobs import job_events, show_job

    with open_database().transaction() as conn:
        job = show_job(conn, job_id)
    event_rows = job_events(job) if events else []
    if output == RecordOutput.json:
        echo_json({**job, **({"events": event_rows} if events else {})})
        return
    for label, value in (("Job", f"{job['id']} {job['kind']}{' (check mode)' if job['check_mode'] else ''}"),
                         ("Status", f"{job['status']} (rc {job['rc']})"), ("Programmes", ", ".join(job["programmes"])),
                         ("Actor", job["actor"]), ("Started", job["started_at"]), ("Finished", job["finished_at"] or "-"),
                         ("Failed task", job["failed_task"] or "-"), ("Failed host", job["failed_host"] or "-"),
                         ("Message", job["failure_message"] or "-"), ("Event log", job["event_log"])):
        typer.echo(f"{label + ':':<14}{printable(value)}")
    if job["host_stats"]:
        typer.echo("")
        echo_table(((h, s["ok"], s["changed"], s["failed"], s["unreachable"], s["skipped"])
                    for h, s in sorted(job["host_stats"].items())),
                   ("HOST", "OK", "CHANGED", "FAILED", "UNREACHABLE", "SKIPPED"), right=(1, 2, 3, 4, 5), shrink=(0,))
    if events:
        typer.echo("")
        if not event_rows:
            typer.echo("(no event log: removed by retention, or the run never started)")
        for event in event_rows:
            typer.echo(f"{event['counter']:>5} {event['event']:<28} {event['host'] or '':<20} {event['task'] or ''}")
