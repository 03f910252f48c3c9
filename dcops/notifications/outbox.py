"""The outbox: a message written in the transaction of the change it tells of, and who it goes to.

Messages are plain text. Whatever they quote (a programme's name, a reason, an actor) may hold
line breaks or control characters: a subject is made one line here, a body keeps only its line
breaks and tabs, and recipients are plain addresses checked one by one, so nothing quoted can
become a header.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from dcops.db import iso_utc, utcnow
from dcops.models import HostingRequest, Ministry, outbox_message_table, portal_grant_table, portal_user_table
from dcops.settings import mail_address

log = logging.getLogger(__name__)

T_OUTBOX = outbox_message_table
T_REQUEST = HostingRequest.__table__
T_MINISTRY = Ministry.__table__
T_USER = portal_user_table
T_GRANT = portal_grant_table

SUBJECT_MAX = 200  # characters; a longer subject is cut with '…'
STATUSES = ("pending", "sent", "failed")

# What a request's new state is called in a subject, and what happens after it.
_STATE_WORDS = {
    "submitted": "submitted",
    "approved": "approved",
    "rejected": "rejected",
    "withdrawn": "withdrawn",
    "provisioning": "being built",
    "active": "in service",
    "failed": "build failed",
    "decommission-requested": "to be taken down",
    "retired": "retired",
}
_NEXT = {
    "approved": "The data centre builds the programme's hosts next; you will be told when it is in service.",
    "rejected": "Nothing more happens to this request. A new request that answers the reason may be submitted.",
    "withdrawn": "Nothing more happens to this request.",
    "provisioning": "The data centre is building the programme's hosts; you will be told when it is in service "
                    "or if the build fails.",
    "active": "The programme is in service and its health is monitored.",
    "failed": "The build did not finish; the data centre's operators have the details and will try again. "
              "Nothing is needed from you.",
    "decommission-requested": "The data centre takes the programme down and releases its capacity; you will be "
                              "told when it is retired.",
    "retired": "The programme is retired and its capacity released. Nothing more happens to this request.",
}
# A failed build's reason is the job's own summary (host names, the task, Ansible's message): it stays
# with the operators, not in a message to the ministry.
_REASON_WITHHELD = frozenset({"failed"})


def one_line(text: object, limit: int | None = None) -> str:
    """`text` as one line: every run of whitespace (line breaks included) one space, other control
    characters dropped; cut to `limit` characters with '…'."""
    line = " ".join(str(text).split())
    if not line.isprintable():
        line = "".join(ch for ch in line if ch.isprintable())
    if limit is not None and len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def plain_text(text: object) -> str:
    """`text` with '\\n' line breaks (from CR LF or CR too), tabs kept, every other control character dropped."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Most lines are printable already: only the others are filtered character by character.
    return "\n".join(line if line.isprintable() else "".join(ch for ch in line if ch.isprintable() or ch == "\t")
                     for line in lines)


def unique_addresses(recipients: Iterable[object]) -> list[str]:
    """The recipients as plain addresses, each once (compared without case), in their first order.

    A value that is no address dcops can send to (stored before it was checked, edited by hand)
    is skipped with a warning; it never stops the message to the others.
    """
    seen: set[str] = set()
    addresses = []
    for value in recipients:
        if value is None or not str(value).strip():
            continue
        address = mail_address(value)
        if address is None:
            log.warning("notification recipient skipped, not an e-mail address: %s", one_line(value, 120))
            continue
        if address.lower() not in seen:
            seen.add(address.lower())
            addresses.append(address)
    return addresses


def enqueue(conn: Connection, *, event: str, object_type: str, object_key: str, recipients: Iterable[object],
            subject: str, body: str, now: datetime | None = None) -> int | None:
    """Write one pending e-mail to the outbox in the caller's transaction; returns its id.

    Recipients are de-duplicated and checked (see `unique_addresses`); the subject is made one
    line (`one_line`, at most SUBJECT_MAX characters), the body plain text (`plain_text`).
    No recipient left: no message, and None. `now`: the time it is written and first due.
    """
    addresses = unique_addresses(recipients)
    if not addresses:
        return None
    now = now or utcnow()
    row = {
        "created_at": now, "channel": "email", "event": one_line(event, 100), "object_type": one_line(object_type, 40),
        "object_key": one_line(object_key, 200), "recipients": addresses, "subject": one_line(subject, SUBJECT_MAX),
        "body": plain_text(body), "status": "pending", "attempts": 0, "next_attempt_at": now, "sent_at": None,
        "last_error": "",
    }
    return conn.execute(insert(T_OUTBOX).values(**row).returning(T_OUTBOX.c.id)).scalar_one()


def _holders(conn: Connection, role: str, *, besides: str | None = None) -> list[str]:
    """The e-mail addresses of the enabled portal users who hold `role`, by name."""
    query = (select(T_USER.c.name, T_USER.c.email).join(T_GRANT, T_GRANT.c.user_id == T_USER.c.id)
             .where(T_GRANT.c.role == role, T_USER.c.disabled_at.is_(None), T_USER.c.email != "")
             .order_by(T_USER.c.name))
    if besides is not None:
        query = query.where(T_USER.c.name != besides)
    return [row.email for row in conn.execute(query)]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _facts(pairs: list[tuple[str, str]]) -> str:
    """Aligned 'Label: value' lines; a value's further lines indented under its first."""
    width = max(len(label) for label, _ in pairs) + 2
    lines = []
    for label, value in pairs:
        first, *rest = plain_text(value).split("\n")
        lines.append(f"{label + ':':<{width}}{first}")
        lines += [" " * width + more for more in rest]
    return "\n".join(lines)


_SIGNATURE = "\n\n-- \nSent by dcops, the data centre's operations tool.\n"


def request_changed(conn: Connection, request_id: int, to_state: str, *, actor: str, reason: str = "",
                    now: datetime | None = None) -> list[int]:
    """Enqueue the messages of a request's change, in the caller's transaction; returns their ids.

    `to_state` is the request's new state, or `signed-off` for the security sign-off. A new state
    goes to the requester (the portal user named `submitted_by`, enabled, with an e-mail), the
    request's owner contact and the ministry's contact: the request number, programme, new state,
    who, when, the reason if any (not a failed build's: that is the job's technical summary) and
    what happens next. A submitted request that needs a security sign-off also goes to every
    enabled security officer; a sign-off goes to the operators (not the officer who signed off,
    who may not approve it), who may now approve.
    """
    # Imported here: the request modules import the lifecycle, which imports this module.
    from dcops.catalogue.requests.document import needs_security_signoff

    now = now or utcnow()
    # One query: the request, its ministry, and its requester's address (an enabled portal user's).
    request = conn.execute(
        select(T_REQUEST, T_MINISTRY.c.code.label("ministry_code"), T_MINISTRY.c.name.label("ministry_name"),
               T_MINISTRY.c.contact.label("ministry_contact"), T_USER.c.email.label("requester_email"))
        .join(T_MINISTRY, T_MINISTRY.c.id == T_REQUEST.c.ministry_id)
        .outerjoin(T_USER, (T_USER.c.name == T_REQUEST.c.submitted_by) & T_USER.c.disabled_at.is_(None))
        .where(T_REQUEST.c.id == request_id)
    ).one()
    number = request.id
    programme = f"{request.programme_name} ({request.programme_slug})"
    title = f"Hosting request {number} ({one_line(request.programme_name, 80)})"
    ministry = f"{request.ministry_name} ({request.ministry_code})"
    signoff = needs_security_signoff(request.classification, request.personal_data)
    ids = []

    if to_state == "signed-off":
        body = (f"Hosting request {number} was signed off by security; it can now be approved.\n\n"
                + _facts([("Programme", programme), ("Ministry", ministry), ("Signed off by", actor),
                          ("At", _when(now))])
                + f"\n\nWhat happens next: an operator other than {one_line(actor)} approves it "
                  f"(dcops request approve {number}) or rejects it with a reason." + _SIGNATURE)
        ids.append(enqueue(conn, event="request.signed-off", object_type="request", object_key=str(number),
                           recipients=_holders(conn, "operator", besides=actor),
                           subject=f"{title} is signed off and can be approved", body=body, now=now))
        return [i for i in ids if i is not None]

    state = _STATE_WORDS.get(to_state, to_state)
    facts = [("Programme", programme), ("Ministry", ministry), ("Plan", f"{request.plan_id}, tier {request.tier}"),
             ("State", to_state), ("By", actor), ("At", _when(now))]
    if reason and reason.strip() and to_state not in _REASON_WITHHELD:
        facts.append(("Reason", reason.strip()))
    if to_state == "submitted":
        after = ("A security officer of the data centre signs it off first (it holds personal data or is "
                 "classified), then an operator approves or rejects it." if signoff else
                 "An operator of the data centre approves or rejects it.")
    else:
        after = _NEXT.get(to_state, "")
    body = (f"Hosting request {number} is now {state}.\n\n" + _facts(facts)
            + (f"\n\nWhat happens next: {after}" if after else "") + _SIGNATURE)
    ids.append(enqueue(conn, event=f"request.{to_state}", object_type="request", object_key=str(number),
                       recipients=[request.requester_email, request.owner_contact,
                                   request.ministry_contact],
                       subject=f"{title}: {state}", body=body, now=now))

    if to_state == "submitted" and signoff:
        kind = ", ".join(part for part in (request.classification,
                                           "personal data" if request.personal_data else "") if part)
        body = (f"Hosting request {number} needs your security sign-off before it can be approved.\n\n"
                + _facts([("Programme", programme), ("Ministry", ministry), ("Classification", kind),
                          ("Submitted by", request.submitted_by), ("At", _when(now))])
                + f"\n\nWhat happens next: review it (dcops request show {number}) and sign it off "
                  f"(dcops request sign-off {number}); another person, an operator, then approves it "
                  "(two-person rule)." + _SIGNATURE)
        ids.append(enqueue(conn, event="request.needs-signoff", object_type="request", object_key=str(number),
                           recipients=_holders(conn, "security-officer"),
                           subject=f"{title} needs your sign-off", body=body, now=now))
    return [i for i in ids if i is not None]


def list_messages(conn: Connection, *, status: str | None = None, limit: int = 200) -> list[dict]:
    """The outbox, oldest first: the latest `limit` messages (0: all), of one status if given.

    Keys: id, created_at, event, object_type, object_key, recipients, subject, body, status,
    attempts, next_attempt_at, sent_at, last_error (times ISO 8601 UTC).
    """
    query = select(T_OUTBOX).order_by(T_OUTBOX.c.id.desc())
    if status is not None:
        query = query.where(T_OUTBOX.c.status == status)
    if limit:
        query = query.limit(limit)
    rows = list(conn.execute(query))
    rows.reverse()
    return [{
        "id": row.id, "created_at": iso_utc(row.created_at), "event": row.event, "object_type": row.object_type,
        "object_key": row.object_key, "recipients": list(row.recipients), "subject": row.subject, "body": row.body,
        "status": row.status, "attempts": row.attempts, "next_attempt_at": iso_utc(row.next_attempt_at),
        "sent_at": iso_utc(row.sent_at), "last_error": row.last_error,
    } for row in rows]


def count_messages(conn: Connection) -> dict[str, int]:
    """How many messages the outbox holds in each status."""
    counts = dict(conn.execute(select(T_OUTBOX.c.status, func.count()).group_by(T_OUTBOX.c.status)).all())
    return {status: counts.get(status, 0) for status in STATUSES}
