"""`dcops outbox`: the notifications waiting to be sent, sent, or failed; one delivery pass now."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from dcops.cli.common import (OUTPUT_HELP, TABLE_WIDTH, Output, echo_csv, echo_json, echo_table, open_database,
                              printable, settings)

app = typer.Typer(help="The notifications outbox: what is queued, sent or failed, and sending it.",
                  no_args_is_help=True)


class Status(str, Enum):
    """A message's status in the outbox."""

    pending = "pending"
    sent = "sent"
    failed = "failed"


def _about(row: dict) -> str:
    """'request 12: approved': the object, and the event without the object's type before it."""
    event = row["event"]
    prefix = f"{row['object_type']}."
    return f"{row['object_type']} {row['object_key']}: {event[len(prefix):] if event.startswith(prefix) else event}"


def _to(recipients: list[str], room: int) -> str:
    """The first recipient and how many more ('a@b.la +2'), the address cut to keep the count in `room`."""
    more = f" +{len(recipients) - 1}" if len(recipients) > 1 else ""
    first = recipients[0] if recipients else "-"
    if len(first) + len(more) > room:
        first = first[: max(room - len(more) - 1, 1)] + "…"
    return first + more


@app.command("list")
def list_command(
    status: Annotated[Optional[Status], typer.Option(help="Only messages in this status.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many of the latest messages (0: all).")] = 200,
    output: Annotated[Output, typer.Option("--output", "-o", help=OUTPUT_HELP)] = Output.table,
) -> None:
    """List the outbox's messages, oldest first.

    What each is about (the object, the event), its status and tries, and whom it goes to:
    TO names the first recipient and how many more. JSON has everything: id, created_at,
    event, object_type, object_key, recipients, subject, body, status, attempts,
    next_attempt_at, sent_at, last_error.

    Example: dcops outbox list --status pending --output json
    """
    from dcops.notifications import list_messages

    with open_database().transaction() as conn:
        rows = list_messages(conn, status=status.value if status else None, limit=limit)
    if output == Output.json:
        echo_json(rows)
    elif output == Output.csv:
        flat = [{**r, "recipients": " ".join(r["recipients"])} for r in rows]
        echo_csv(flat, ("id", "created_at", "event", "object_type", "object_key", "recipients", "subject", "status",
                        "attempts", "next_attempt_at", "sent_at", "last_error"))
    else:
        headers = ("ID", "CREATED (UTC)", "STATUS", "TRIES", "ABOUT", "TO")
        cells = [(r["id"], r["created_at"][:16].replace("T", " "), r["status"], r["attempts"], printable(_about(r)))
                 for r in rows]
        widths = [max([len(h), *(len(str(c[i])) for c in cells)]) for i, h in enumerate(headers[:5])]
        room = max(TABLE_WIDTH - sum(widths) - 2 * len(widths), 16)  # what the TO column has left
        echo_table([(*c, _to(r["recipients"], room)) for c, r in zip(cells, rows)], headers,
                   right=(0, 3), shrink=(4, 5))


@app.command("send")
def send_command() -> None:
    """Send what is due now, once, and print what became of each message.

    Sends through DCOPS_SMTP_HOST. Exits 1 when a message is put back to retry or failed for
    good. `dcops serve` sends the outbox on its own every 10 seconds; this is for trying the
    settings, or for a cron job.

    Example: dcops outbox send
    """
    from dcops.db import iso_utc
    from dcops.notifications import deliver_pending
    from dcops.notifications.smtp import SmtpSender

    sender = SmtpSender.from_settings(settings())
    database = open_database()
    report = deliver_pending(database, sender)
    for outcome in report.outcomes:
        if outcome.status == "sent":
            detail = "to " + ", ".join(outcome.recipients) + (f" ({outcome.error})" if outcome.error else "")
        elif outcome.status == "retry":
            detail = f"try {outcome.attempts}, next at {iso_utc(outcome.next_attempt_at)}: {outcome.error}"
        else:
            detail = outcome.error
        typer.echo(printable(f"{outcome.status:<6}  {outcome.id}  {outcome.event}  {detail}"))
    typer.echo(f"{len(report.sent)} sent, {len(report.retried)} to retry, {len(report.failed)} failed")
    database.dispose()
    if report.retried or report.failed:
        raise typer.Exit(1)
