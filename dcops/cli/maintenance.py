"""`dcops maintenance`: record, list and cancel maintenance windows."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, ActorOption, Output, RecordOutput, RecordOutputOption, echo_csv, echo_json,
                              echo_table, id_argument, open_database, printable, settings)

app = typer.Typer(help="Maintenance windows: planned work that the SLA excuses when recorded ahead.",
                  no_args_is_help=True)

WindowIdArgument = id_argument("The window's number (see `dcops maintenance list`).")
WINDOW_COLUMNS = ("id", "programme", "cluster", "starts_at", "ends_at", "announced", "change_ref", "reason",
                  "recorded_at", "recorded_by", "cancelled_at", "cancelled_by", "silence", "silence_error")


def _say_silence(silence: dict | None, *, cancelled: bool = False) -> None:
    """One line on what became of the window's Alertmanager silence (nothing when it has none)."""
    if silence is None:
        return
    state, error = silence["state"], silence["last_error"]
    if state == "created":
        typer.echo(printable(f"Alertmanager silence {silence['silence_id']} created"))
    elif state == "expired":
        typer.echo(printable(f"Alertmanager silence {silence['silence_id']} expired"))
    elif state in ("pending", "expiring"):
        what = "expired" if state == "expiring" else "created"
        typer.echo(printable(f"note: the Alertmanager silence is pending ({error or 'not tried yet'}); "
                             f"`dcops serve` tries again every minute until it is {what}"), err=True)
    elif state == "failed":
        typer.echo(printable(f"warning: Alertmanager refused the silence, not tried again: {error}"), err=True)
    elif state == "withdrawn" and not cancelled:
        typer.echo(printable(f"note: no Alertmanager silence: {error}"), err=True)


@app.command("add")
def add_command(
    programme: Annotated[Optional[str], typer.Argument(help="The programme (slug); or give --cluster.")] = None,
    cluster: Annotated[Optional[str], typer.Option(help="A whole cluster: every programme on it.")] = None,
    start: Annotated[str, typer.Option("--start", help="When work starts: local time (data centre's zone) "
                                       "or ISO 8601 with an offset.")] = ...,
    end: Annotated[str, typer.Option("--end", help="When work ends (same forms as --start).")] = ...,
    reason: Annotated[str, typer.Option(help="What is done, one line.")] = ...,
    change_ref: Annotated[str, typer.Option("--change-ref", help="The change request's reference.")] = ...,
    actor: ActorOption = None,
    output: RecordOutputOption = RecordOutput.table,
) -> None:
    """Record a maintenance window for one programme or a whole cluster.

    Only a window recorded before it starts is taken out of the SLA; one recorded later
    is kept and shown, but its time counts as downtime and the report flags it. With
    DCOPS_ALERTMANAGER_URL set, the window also becomes an Alertmanager silence of its
    programmes' alerts; an Alertmanager that is down leaves it pending (`dcops serve` retries).

    Example: dcops maintenance add e-crvs --start "2026-12-05 22:00" --end "2026-12-06 02:00"
    --reason "database minor upgrade" --change-ref CHG-1042
    """
    from dcops.alertmanager import client_from
    from dcops.maintenance import add_window, parse_time, silence_of

    config = settings()
    tz = config.tz
    starts_at = parse_time(start, tz, option="--start")
    ends_at = parse_time(end, tz, option="--end")
    database = open_database()
    window = add_window(database, programme=programme, cluster=cluster, starts_at=starts_at, ends_at=ends_at,
                        reason=reason, change_ref=change_ref, actor=actor, tz=tz, alertmanager=client_from(config))
    silence = silence_of(database, window.id)
    if output == RecordOutput.json:
        echo_json({**window.as_dict(), "silence": silence})
        return
    target = f"programme {window.programme}" if window.programme else f"cluster {window.cluster}"
    local = window.starts_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), window.ends_at.astimezone(tz).strftime(
        "%Y-%m-%d %H:%M %Z")
    typer.echo(f"maintenance window {window.id} recorded: {target}, {local[0]} to {local[1]} ({window.change_ref})")
    if not window.announced:
        typer.echo("note: recorded after it started, so its time counts as downtime in the uptime report",
                   err=True)
    _say_silence(silence)


@app.command("list")
def list_command(
    programme: Annotated[Optional[str], typer.Option(help="Windows of this programme (its own and its "
                                                     "clusters').")] = None,
    cluster: Annotated[Optional[str], typer.Option(help="Windows of this cluster.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Windows ending after this time.")] = None,
    until: Annotated[Optional[str], typer.Option(help="Windows starting before this time.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include cancelled windows.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List maintenance windows, oldest first; times in the data centre's zone.

    SILENCE is the window's Alertmanager silence: created, pending (Alertmanager could not be
    reached; `dcops serve` retries), expiring, expired, failed (refused), withdrawn, with why.

    Example: dcops maintenance list --programme e-crvs --since 2026-12-01
    """
    from dcops.alertmanager import describe, silence_states
    from dcops.maintenance import list_windows, parse_time

    tz = settings().tz
    since_at = parse_time(since, tz, option="--since") if since else None
    until_at = parse_time(until, tz, option="--until") if until else None
    with open_database().transaction() as conn:
        windows = list_windows(conn, programme=programme, cluster=cluster, since=since_at, until=until_at,
                               include_cancelled=all_)
        silences = silence_states(conn, [w.id for w in windows])
    rows = [{**w.as_dict(), "silence": silences.get(w.id)} for w in windows]
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        echo_csv([{**row, "silence": (row["silence"] or {}).get("state"),
                   "silence_error": (row["silence"] or {}).get("last_error")} for row in rows], WINDOW_COLUMNS)
    else:
        def when(w):
            return f"{w.starts_at.astimezone(tz):%Y-%m-%d %H:%M}-{w.ends_at.astimezone(tz):%H:%M}"

        def flag(w):
            return "cancelled" if w.cancelled_at else ("late" if not w.announced else "")

        echo_table(((w.id, w.programme or f"[{w.cluster}]", when(w), w.change_ref, flag(w),
                     (silences.get(w.id) or {}).get("state"), w.reason)
                    for w in windows),
                   ("ID", "TARGET", f"WHEN ({tz.key})", "CHANGE", "FLAG", "SILENCE", "REASON"),
                   right=(0,), shrink=(6, 1, 3))
        # Why a silence is not as asked, in full: a table cell would cut it.
        for w in windows:
            silence = silences.get(w.id)
            # (a withdrawn one always says why; of a cancelled window that is no news)
            if silence and silence["last_error"] and not (silence["state"] == "withdrawn" and w.cancelled_at):
                typer.echo(printable(f"window {w.id}: silence {describe(silence)}"))


@app.command("cancel")
def cancel_command(
    window_id: WindowIdArgument,
    actor: ActorOption = None,
) -> None:
    """Cancel a window that has not started yet (audited); its Alertmanager silence is expired.

    Example: dcops maintenance cancel 12
    """
    from dcops.alertmanager import client_from
    from dcops.maintenance import cancel_window, silence_of

    database = open_database()
    window = cancel_window(database, window_id, actor=actor, alertmanager=client_from(settings()))
    typer.echo(f"maintenance window {window.id} cancelled")
    _say_silence(silence_of(database, window.id), cancelled=True)
