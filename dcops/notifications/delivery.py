"""Delivering the outbox: claim the messages that are due, send each, record what became of it.

A pass claims due messages in one short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
two `dcops serve` processes claim different rows; SQLite: its writer lock) by moving their
`next_attempt_at` a lease ahead, sends them with no transaction open, and records each outcome
in a transaction of its own, only while the row is still under this pass's lease. A process that
dies mid-pass leaves its messages due again when the lease ends: a message may then go twice,
never not at all.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from dcops.db import Database, utcnow
from dcops.models import outbox_message_table
from dcops.notifications.outbox import one_line

log = logging.getLogger(__name__)

T_OUTBOX = outbox_message_table

FIRST_RETRY_S = 60.0
MAX_RETRY_S = 3600.0
LEASE_S = 600.0  # how long a claimed message is this pass's; the pass stops sending at half of it
ERROR_MAX = 500  # characters of last_error


def retry_delay_s(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 60, 120, 240, ... at most 3600."""
    return min(FIRST_RETRY_S * 2 ** min(max(attempts, 1) - 1, 16), MAX_RETRY_S)


class DeliveryError(Exception):
    """A message not delivered: `permanent` (the server refused it for good) or to try again.

    `broken`: the connection is gone, so the pass stops (the rest of its messages are tried again
    at once by the next pass).
    """

    def __init__(self, message: str, *, permanent: bool = False, broken: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.broken = broken


@dataclass(frozen=True)
class Outgoing:
    """One message as a sender sees it."""

    id: int
    created_at: datetime
    event: str
    recipients: tuple[str, ...]
    subject: str
    body: str


class Session(Protocol):
    """An open connection to the mail server."""

    def send(self, message: Outgoing) -> dict[str, tuple[int, str]]:
        """Send one message; returns the recipients refused while others took it (address: (code, text)),
        raises DeliveryError when nobody did."""


class Sender(Protocol):
    """What delivers messages: `dcops.notifications.smtp.SmtpSender`, or a test's."""

    def session(self) -> AbstractContextManager[Session]:
        """A connection for one pass; DeliveryError (broken) when the server cannot be reached."""


@dataclass(frozen=True)
class Outcome:
    """What became of one message in a pass: sent, retry (with its next time) or failed."""

    id: int
    event: str
    recipients: tuple[str, ...]
    status: str  # sent | retry | failed
    attempts: int
    error: str = ""
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """One pass: the messages sent, put back to retry, and failed for good; how many were claimed."""

    sent: tuple[Outcome, ...] = ()
    retried: tuple[Outcome, ...] = ()
    failed: tuple[Outcome, ...] = ()
    claimed: int = 0

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        """Every message the pass settled, by id."""
        return tuple(sorted((*self.sent, *self.retried, *self.failed), key=lambda o: o.id))


def _writing(database: Database):
    # SQLite: BEGIN IMMEDIATE, the writer lock, so two senders' claims cannot interleave. PostgreSQL:
    # the row locks are enough; the writer advisory lock would queue the claim behind every approval.
    return database.transaction(immediate=database.engine.dialect.name == "sqlite")


def _claim(database: Database, now: datetime, batch: int, lease_until: datetime) -> list[Outgoing]:
    due = (T_OUTBOX.c.status == "pending", T_OUTBOX.c.channel == "email", T_OUTBOX.c.next_attempt_at <= now)
    with database.transaction() as conn:  # most passes find nothing: they need not take the writer lock
        if conn.execute(select(T_OUTBOX.c.id).where(*due).limit(1)).first() is None:
            return []
    with _writing(database) as conn:
        rows = conn.execute(
            select(T_OUTBOX.c.id, T_OUTBOX.c.created_at, T_OUTBOX.c.event, T_OUTBOX.c.recipients,
                   T_OUTBOX.c.subject, T_OUTBOX.c.body)
            .where(*due).order_by(T_OUTBOX.c.next_attempt_at, T_OUTBOX.c.id).limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            conn.execute(update(T_OUTBOX).where(T_OUTBOX.c.id.in_([r.id for r in rows]))
                         .values(next_attempt_at=lease_until))
    return [Outgoing(r.id, r.created_at, r.event, tuple(r.recipients), r.subject, r.body) for r in rows]


def _ours(message_id: int, lease_until: datetime):
    """The row, while it is still pending under this pass's lease."""
    return (T_OUTBOX.c.id == message_id, T_OUTBOX.c.status == "pending", T_OUTBOX.c.next_attempt_at == lease_until)


def _attempts(conn: Connection, message_id: int) -> int:
    return conn.execute(select(T_OUTBOX.c.attempts).where(T_OUTBOX.c.id == message_id)).scalar_one()


def _record(database: Database, message: Outgoing, lease_until: datetime, at: datetime, *,
            refused: dict[str, tuple[int, str]] | None = None, error: DeliveryError | None = None) -> Outcome | None:
    """Write what became of one message; None if the row is no longer this pass's (its lease ran out)."""
    with _writing(database) as conn:
        attempts = _attempts(conn, message.id) + 1
        if error is None:
            refused = refused or {}
            note = "; ".join(f"{address}: {code} {text}" for address, (code, text) in refused.items())
            values = {"status": "sent", "sent_at": at, "attempts": attempts,
                      "last_error": one_line(f"not taken for {note}", ERROR_MAX) if note else ""}
            outcome = Outcome(message.id, message.event, message.recipients, "sent", attempts, values["last_error"])
        elif error.permanent:
            values = {"status": "failed", "attempts": attempts, "last_error": one_line(error, ERROR_MAX)}
            outcome = Outcome(message.id, message.event, message.recipients, "failed", attempts, values["last_error"])
        else:
            due = at + timedelta(seconds=retry_delay_s(attempts))
            values = {"attempts": attempts, "next_attempt_at": due, "last_error": one_line(error, ERROR_MAX)}
            outcome = Outcome(message.id, message.event, message.recipients, "retry", attempts,
                              values["last_error"], due)
        if conn.execute(update(T_OUTBOX).where(*_ours(message.id, lease_until)).values(**values)).rowcount != 1:
            log.warning("outbox message %d: its claim ran out while it was sent; the other sender's try stands",
                        message.id)
            return None
        later = [a for a, (code, _text) in (refused or {}).items() if 400 <= code < 500]
        if error is None and later:
            # Refused for a while by some: they get the same message again later, the others not twice.
            row = conn.execute(select(T_OUTBOX).where(T_OUTBOX.c.id == message.id)).one()
            conn.execute(insert(T_OUTBOX).values(
                created_at=at, channel=row.channel, event=row.event, object_type=row.object_type,
                object_key=row.object_key, recipients=later, subject=row.subject, body=row.body, status="pending",
                attempts=1, next_attempt_at=at + timedelta(seconds=retry_delay_s(1)),
                last_error=one_line(f"refused for a while when message {message.id} was sent: {values['last_error']}",
                                    ERROR_MAX)))
    return outcome


def _release(database: Database, messages: list[Outgoing], lease_until: datetime, at: datetime) -> None:
    """Hand claimed messages that were not tried back, due at once."""
    if not messages:
        return
    with _writing(database) as conn:
        for message in messages:
            conn.execute(update(T_OUTBOX).where(*_ours(message.id, lease_until)).values(next_attempt_at=at))


def deliver_pending(database: Database, sender: Sender, *, now: datetime | None = None, batch: int = 50,
                    stop: threading.Event | None = None, lease_s: float = LEASE_S) -> DeliveryReport:
    """One delivery pass: send up to `batch` due pending messages over one connection of `sender`.

    Each is marked sent (with sent_at), or on a temporary failure (no connection, a timeout, a
    4xx) its attempts counted and its next try put off by `retry_delay_s`, or on a permanent one
    (5xx for every recipient, say) marked failed; `last_error` says why in one line. `now`: the
    time the pass runs at (due-ness, sent_at, backoff), default the clock. `stop` set: the pass
    ends after the message it is sending, handing the rest back.
    """
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    started_at = clock()
    lease_until = started_at + timedelta(seconds=lease_s)
    claimed = _claim(database, started_at, batch, lease_until)
    if not claimed:
        return DeliveryReport()
    outcomes: list[Outcome] = []

    def settle(message: Outgoing, **result) -> None:
        outcome = _record(database, message, lease_until, clock(), **result)
        if outcome is not None:
            outcomes.append(outcome)

    started = time.monotonic()
    remaining = list(claimed)
    try:
        with sender.session() as session:
            while remaining:
                if (stop is not None and stop.is_set()) or time.monotonic() - started > lease_s / 2:
                    break
                message = remaining.pop(0)
                try:
                    refused = session.send(message)
                except DeliveryError as error:
                    settle(message, error=error)
                    if error.broken:
                        break
                    continue
                settle(message, refused=refused)
    except DeliveryError as error:  # no connection at all: every claimed message was tried, and waits
        while remaining:
            settle(remaining.pop(0), error=error)
    finally:
        _release(database, remaining, lease_until, clock())
    by_status = {status: tuple(o for o in outcomes if o.status == status) for status in ("sent", "retry", "failed")}
    return DeliveryReport(sent=by_status["sent"], retried=by_status["retry"], failed=by_status["failed"],
                          claimed=len(claimed))
