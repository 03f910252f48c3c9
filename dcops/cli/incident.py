"""`dcops incident`: list, show and annotate incidents (each stretch of a programme's downtime)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, ActorOption, Output, RecordOutput, RecordOutputOption, echo_csv, echo_json,
                              echo_table, id_argument, open_database, printable, settings)

app = typer.Typer(help="Incidents: each stretch of a programme's downtime, numbered, and what is known of it.",
                  no_args_is_help=True)

IncidentArgument = id_argument("The incident's number (see `dcops incident list`).")
LIST_COLUMNS = ("number", "programme", "ministry", "start", "end", "ongoing", "seconds", "counted_seconds",
                "status", "major", "own_seconds", "dependency_seconds", "error_budget_used_percent", "attributed_to",
                "cause", "action", "postmortem_url", "released", "reason")


class Status(str, Enum):
    investigating = "investigating"
    identified = "identified"
    monitoring = "monitoring"
    resolved = "resolved"


def _duration(seconds: float | None) -> str:
    from dcops.reports.render import format_duration  # the reports' wording: a table reads like the report

    return format_duration(seconds)


def _local(moment: str | None, tz) -> str:
    from datetime import datetime

    if moment is None:
        return "-"
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(tz).strftime("%Y-%m-%d %H:%M")


@app.command("list")
def list_command(
    period: Annotated[Optional[str], typer.Option(help="The month, YYYY-MM (default: this month); open "
                                                  "incidents are listed whatever it says.")] = None,
    programme: Annotated[Optional[str], typer.Option(help="Only this programme's (slug).")] = None,
    status: Annotated[Optional[str], typer.Option(help="Only incidents in this status: new, investigating, "
                                                  "identified, monitoring, resolved (or merged).")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List incidents, newest first, with the figures the month's uptime report gives them.

    COUNTED is the downtime the SLA counts (outside announced maintenance); MAJOR marks an
    incident that breached the SLA or used DCOPS_MAJOR_INCIDENT_BUDGET_PERCENT of its error budget.

    Example: dcops incident list --period 2026-11 --programme e-crvs
    """
    from dcops.db import utcnow
    from dcops.incidents import list_incidents
    from dcops.reports.documents import resolve_period

    config = settings()
    tz = config.tz
    now = utcnow()
    chosen = resolve_period(period or f"{now.astimezone(tz):%Y-%m}", None, None, tz, now=now)
    found = list_incidents(open_database(), start=chosen.start, end=chosen.end, programme=programme, status=status,
                           now=now, tz=tz, major_incident_budget_percent=config.major_incident_budget_percent)
    if output == Output.json:
        echo_json(found)
        return
    if output == Output.csv:
        echo_csv(found, LIST_COLUMNS)
        return
    if not found:
        typer.echo(f"no incidents in {chosen.label}")
        return
    echo_table(((i["number"], i["programme"], _local(i["start"], tz),
                 _duration(i["seconds"]) + ("…" if i["ongoing"] else ""), _duration(i.get("counted_seconds")),
                 i["status"], "major" if i.get("major") else "", i["attributed_to"] or _computed(i))
                for i in found),
               ("NO", "PROGRAMME", f"START ({tz.key})", "LASTED", "COUNTED", "STATUS", "", "CAUSED BY"),
               right=(0,), shrink=(1, 7))


def _computed(incident: dict) -> str:
    """What the histories say caused it: the dependency that took most of it down, or its own."""
    dependencies = incident.get("dependencies") or []
    if not dependencies:
        return "-"
    top = max(dependencies, key=lambda d: d["seconds"])
    return f"{top['name']}?"


@app.command("show")
def show_command(
    number: IncidentArgument,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Show one incident: its times, figures, attribution, what was found and done, the alerts
    Alertmanager sent for it (through `dcops serve`'s webhook), its updates.

    Example: dcops incident show 42
    """
    from dcops.incidents import show

    config = settings()
    found = show(open_database(), number, tz=config.tz,
                 major_incident_budget_percent=config.major_incident_budget_percent)
    if output == RecordOutput.json:
        echo_json(found)
        return
    _print(found, config.tz)


def _print(found: dict, tz) -> None:
    lines = [
        f"incident {found['number']}: {found['programme']} ({found['ministry']})"
        + (" · MAJOR" if found.get("major") else ""),
        f"  status       {found['status']}" + (" · still down" if found["ongoing"] else ""),
        f"  from         {_local(found['start'], tz)} to {_local(found['end'], tz) if found['end'] else 'now'}"
        f" ({tz.key}), {_duration(found['seconds'])}",
    ]
    if "counted_seconds" in found:
        lines.append(f"  counted      {_duration(found['counted_seconds'])} (own {_duration(found['own_seconds'])}, "
                     f"through dependencies {_duration(found['dependency_seconds'])})")
        for dependency in found["dependencies"]:
            root = "" if dependency["root"] == dependency["name"] else f", root {dependency['root']}"
            lines.append(f"    via {dependency['name']} ({dependency['kind']}{root}): "
                         f"{_duration(dependency['seconds'])}")
        if found.get("error_budget_used_percent") is not None:
            lines.append(f"  error budget {found['error_budget_used_percent']:.1f} % of the month's")
    for label, key in (("title", "title"), ("reason", "reason"), ("cause", "cause"), ("action", "action"),
                       ("attributed", "attributed_to"), ("review", "postmortem_url")):
        if found.get(key):
            lines.append(f"  {label:<12} {found[key]}")
    lines.append(f"  public page  {'released' if found['released'] else 'not released'}"
                 + ("" if found["publishable"] else " (a classified programme: never public)"))
    if found.get("alerts"):
        lines.append("  alerts (Alertmanager)")
        for alert in found["alerts"]:
            paged = (f"sent to {alert['receiver'] or '-'} at {_local(alert['fired_notified_at'], tz)}"
                     if alert["fired_notified_at"] else "its firing notification never reached dcops")
            lines.append(f"    {alert['alertname']} fired {_local(alert['starts_at'], tz)}, {paged}")
            if alert["status"] == "resolved":
                lines.append(f"      resolved {_local(alert['ends_at'], tz)}"
                             + (f", told at {_local(alert['resolved_notified_at'], tz)}"
                                if alert["resolved_notified_at"] else ""))
            else:
                lines.append("      still firing")
    if found.get("updates"):
        lines.append("  updates")
        for item in found["updates"]:
            lines.append(f"    {_local(item['at'], tz)}  {item['status']:<13} {item['by']}: {item['note']}")
    typer.echo("\n".join(printable(line) for line in lines))


@app.command("update")
def update_command(
    number: IncidentArgument,
    status: Annotated[Optional[Status], typer.Option(help="investigating, identified, monitoring or "
                                                     "resolved (with a timed update).")] = None,
    note: Annotated[Optional[str], typer.Option(help="What to say now, as a timed update.")] = None,
    title: Annotated[Optional[str], typer.Option(help="A one-line title for the status page.")] = None,
    cause: Annotated[Optional[str], typer.Option(help="What caused it (\"\" clears).")] = None,
    action: Annotated[Optional[str], typer.Option(help="What was done about it (\"\" clears).")] = None,
    attributed_to: Annotated[Optional[str], typer.Option(
        "--attributed-to", help="Whose it was: data-centre, ministry-application, external:COMPONENT or "
        "dependency:PROGRAMME; replaces what the histories say (none: back to computed).")] = None,
    postmortem: Annotated[Optional[str], typer.Option(help="The post-incident review's address, "
                                                      "https://... (\"\" clears).")] = None,
    release: Annotated[Optional[bool], typer.Option("--release/--withhold", help="Show it on the public "
                                                    "status page, or take it off.")] = None,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Annotate an incident; every change is audited, all in one transaction.

    Example: dcops incident update 42 --status identified --note "database disk full"
    --cause "archive log volume full" --attributed-to data-centre
    """
    from dcops.incidents import update_incident

    config = settings()
    found = update_incident(open_database(), number, actor=actor, status=status.value if status else None,
                            note=note, title=title, cause=cause, action=action, attributed_to=attributed_to,
                            postmortem_url=postmortem, released=release)
    if output == RecordOutput.json:
        echo_json(found)
        return
    _print(found, config.tz)
