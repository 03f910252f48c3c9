"""Notifications: the outbox written in each change's transaction, and its delivery to a real SMTP
server on loopback (aiosmtpd) with retries, backoff and permanent failures; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from dcops.access import Actor, Grant
from dcops.catalogue.requests import advance, approve, reject, sign_off, submit
from dcops.db import open_database, utcnow
from dcops.errors import Conflict
from dcops.inventory.service import load_directory
from dcops.models import outbox_message_table, portal_grant_table, portal_user_table
from dcops.notifications import deliver_pending, enqueue, list_messages, retry_delay_s
from dcops.notifications.smtp import SmtpSender

import inventories
import requests_fixtures

T_OUTBOX = outbox_message_table
T_USER = portal_user_table
T_GRANT = portal_grant_table
OWNER = "owner@mtc.example.la"
MINISTRY_CONTACT = "dc@mtc.example.la"  # mtc's contact in the test inventory
FROM = "National Data Centre <noreply@dc.example.la>"


# --- a real SMTP server on loopback ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps what it is sent; `replies` refuses chosen recipients."""

    def __init__(self, replies: dict[str, str] | None = None, data_reply: str | None = None, delay_s: float = 0):
        self.replies = replies or {}
        self.data_reply = data_reply
        self.delay_s = delay_s
        self.received: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default) for _f, _r, raw in self.received]


@contextmanager
def smtp_server(handler: Inbox, port: int | None = None, **options):
    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port(), **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def sender_for(port: int, **options) -> SmtpSender:
    return SmtpSender(host="127.0.0.1", port=port, from_header=FROM, timeout_s=5, **options)


# --- the database: the small catalogue, portal users, the outbox -------------------------------

@pytest.fixture
def db(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    return any_database


@pytest.fixture
def sdb(database, tmp_path):
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    return database


def add_user(database, name: str, email_address: str = "", roles: tuple[str, ...] = (), *,
             ministry: str | None = None, disabled: bool = False) -> None:
    """A portal user with grants, written as the portal would store them (staff roles: ministry NULL)."""
    now = utcnow()
    with database.transaction() as conn:
        user_id = conn.execute(sa.insert(T_USER).values(
            name=name, display_name=name.title(), email=email_address, source="local", language="en",
            disabled_at=now if disabled else None, created_at=now, updated_at=now,
        ).returning(T_USER.c.id)).scalar_one()
        ministry_id = None
        if ministry is not None:
            ministry_id = conn.execute(sa.text("SELECT id FROM ministry WHERE code = :c"), {"c": ministry}).scalar_one()
        for role in roles:
            in_ministry = role in ("viewer", "requester")  # staff roles hold no ministry
            conn.execute(sa.insert(T_GRANT).values(user_id=user_id, role=role,
                                                   ministry_id=ministry_id if in_ministry else None))


def outbox(database) -> list[dict]:
    with database.transaction() as conn:
        return list_messages(conn, limit=0)


def by_event(database) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for message in outbox(database):
        found.setdefault(message["event"], []).append(message)
    return found


def row(database, message_id: int):
    with database.transaction() as conn:
        return conn.execute(sa.select(T_OUTBOX).where(T_OUTBOX.c.id == message_id)).one()


def staff(name: str, *roles: str) -> Actor:
    return Actor(name, frozenset(Grant(role) for role in roles))


# --- what is written, to whom --------------------------------------------------------------------

def test_submitting_personal_data_tells_requester_contacts_and_officers_then_signoff_tells_operators(db):
    add_user(db, "amy", "amy@mtc.example.la", ("requester",), ministry="mtc")
    add_user(db, "sec-one", "sec.one@dc.example.la", ("security-officer",))
    add_user(db, "sec-gone", "sec.gone@dc.example.la", ("security-officer",), disabled=True)
    add_user(db, "sec-nomail", "", ("security-officer",))
    add_user(db, "sec-op", "sec.op@dc.example.la", ("security-officer", "operator"))
    add_user(db, "op-one", "op.one@dc.example.la", ("operator",))
    add_user(db, "viewer", "viewer@mtc.example.la", ("viewer",), ministry="mtc")
    document = requests_fixtures.request(personal_data=True, contacts={"owner": "AMY@mtc.example.la",
                                                                       "security": "sec@mtc.example.la"})
    request_id = submit(db, document, actor=Actor("amy", frozenset({Grant("requester", "mtc")})))

    events = by_event(db)
    assert sorted(events) == ["request.needs-signoff", "request.submitted"]
    [told] = events["request.submitted"]
    # The requester once (the owner contact is the same address in other case), the ministry's contact.
    assert told["recipients"] == ["amy@mtc.example.la", MINISTRY_CONTACT]
    assert told["subject"] == f"Hosting request {request_id} (New portal): submitted"
    assert (told["status"], told["attempts"], told["object_type"], told["object_key"]) == \
        ("pending", 0, "request", str(request_id))
    assert told["next_attempt_at"] == told["created_at"]
    for text in (f"Hosting request {request_id} is now submitted.", "New portal (new-portal)",
                 "Ministry of Technology and Communications (mtc)", "By:", "amy", "UTC",
                 "What happens next: A security officer of the data centre signs it off first"):
        assert text in told["body"], text
    [officers] = events["request.needs-signoff"]
    # Enabled officers with an e-mail only: not the disabled one, not the one without an address.
    assert sorted(officers["recipients"]) == ["sec.one@dc.example.la", "sec.op@dc.example.la"]
    assert officers["subject"] == f"Hosting request {request_id} (New portal) needs your sign-off"
    assert "personal data" in officers["body"] and f"dcops request sign-off {request_id}" in officers["body"]

    sign_off(db, request_id, actor=staff("sec-op", "security-officer"))
    [signed] = by_event(db)["request.signed-off"]
    # The operators, but not the officer who signed off (who holds operator too and may not approve).
    assert signed["recipients"] == ["op.one@dc.example.la"]
    assert "can be approved" in signed["subject"] and "sec-op" in signed["body"]

    approve(db, request_id, actor="op-one")
    [approved] = by_event(db)["request.approved"]
    assert approved["recipients"] == ["amy@mtc.example.la", MINISTRY_CONTACT]
    assert approved["subject"] == f"Hosting request {request_id} (New portal): approved"
    assert "What happens next: The data centre builds the programme's hosts next" in approved["body"]
    assert "gen-a" not in approved["body"]  # no internal placement details for the ministry


def test_a_plain_request_asks_no_officer_and_a_bad_stored_address_is_skipped(sdb, caplog):
    add_user(sdb, "sec-one", "sec.one@dc.example.la", ("security-officer",))
    with sdb.transaction() as conn:  # stored before addresses were checked, or edited by hand
        conn.execute(sa.text("UPDATE ministry SET contact = :c WHERE code = 'mtc'"),
                     {"c": "the IT desk\r\nBcc: evil@attacker.example"})
    submit(sdb, requests_fixtures.request(), actor="desk")  # no portal user called desk
    [message] = outbox(sdb)
    assert message["event"] == "request.submitted" and message["recipients"] == [OWNER]
    assert "An operator of the data centre approves or rejects it." in message["body"]
    assert "not an e-mail address" in caplog.text
    with sdb.transaction() as conn:
        nobody = enqueue(conn, event="test", object_type="request", object_key="1",
                         recipients=["", None, "not-an-address", "x@y.la\nBcc: z@q.la"], subject="s", body="b")
    assert nobody is None and len(outbox(sdb)) == 1


def test_a_rejection_carries_its_reason_and_a_failed_build_keeps_its_details(sdb):
    rejected = submit(sdb, requests_fixtures.request("to-reject"), actor="desk")
    reject(sdb, rejected, reason="The plan is larger than the budget allows.\nAsk for a smaller plan.",
           actor="op-one")
    [message] = by_event(sdb)["request.rejected"]
    assert message["subject"] == f"Hosting request {rejected} (New portal): rejected"
    assert ("\nReason:    The plan is larger than the budget allows.\n           Ask for a smaller plan.\n"
            in message["body"])
    assert message["body"].endswith("\n\n-- \nSent by dcops, the data centre's operations tool.\n")
    assert "A new request that answers the reason may be submitted." in message["body"]

    built = submit(sdb, requests_fixtures.request("to-build"), actor="desk")
    approve(sdb, built, actor="op-one")
    advance(sdb, built, "provisioning", actor="op-one")
    advance(sdb, built, "failed", actor="op-one", reason="job 3 failed on to-build-01 at task 'x': 10.0.0.5 down")
    [failed] = by_event(sdb)["request.failed"]
    assert "10.0.0.5" not in failed["body"] and "Reason:" not in failed["body"]
    assert "the data centre's operators have the details" in failed["body"]
    assert [m["event"] for m in outbox(sdb)].count("request.provisioning") == 1


def test_a_change_that_fails_leaves_no_message(db):
    request_id = submit(db, requests_fixtures.request("too-big", plan="vm-huge", tier=1), actor="desk")
    before = outbox(db)
    assert [m["event"] for m in before] == ["request.submitted"]
    with pytest.raises(Conflict, match="does not fit"):
        approve(db, request_id, actor="op-one")
    with pytest.raises(Conflict, match="cannot become active"):
        advance(db, request_id, "active", actor="op-one")
    assert outbox(db) == before
    # The outbox row is in the caller's transaction: rolled back with it.
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            assert enqueue(conn, event="request.test", object_type="request", object_key=str(request_id),
                           recipients=[OWNER], subject="s", body="b") is not None
            raise RuntimeError("the change fails after its message was written")
    assert outbox(db) == before


def test_enqueue_makes_the_subject_one_line_and_deduplicates(sdb):
    with sdb.transaction() as conn:
        message_id = enqueue(conn, event="request.x", object_type="request", object_key="7",
                             recipients=["A@b.la", "a@B.la", "Someone <c@d.la>", "c@d.la"],
                             subject="Line one\r\nBcc: evil@attacker.example\x1b]0;title\x07", body="a\r\nb\rc\x00d")
    stored = row(sdb, message_id)
    assert stored.recipients == ["A@b.la", "c@d.la"]
    assert stored.subject == "Line one Bcc: evil@attacker.example]0;title"
    assert stored.body == "a\nb\ncd"


def test_backoff_doubles_from_a_minute_to_an_hour():
    assert [retry_delay_s(n) for n in range(1, 10)] == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert retry_delay_s(10_000) == 3600


# --- delivery ------------------------------------------------------------------------------------

def test_server_down_records_attempts_and_backoff_then_up_delivers_once(db):
    document = requests_fixtures.request(programme={"slug": "lao-portal", "name": "ລະບົບ ພອດທັລ",
                                                    "description": "A portal"})
    request_id = submit(db, document, actor="desk")
    reason = "The plan is larger than the budget allows.\nAsk for a smaller plan."
    reject(db, request_id, reason=reason, actor="op-one")
    port = free_port()
    sender = sender_for(port)
    t0 = utcnow()

    down = deliver_pending(db, sender, now=t0)
    assert (len(down.sent), len(down.retried), len(down.failed)) == (0, 2, 0)
    for message in outbox(db):
        stored = row(db, message["id"])
        assert stored.status == "pending" and stored.attempts == 1
        assert stored.next_attempt_at == t0 + timedelta(seconds=60)
        assert f"cannot reach the mail server 127.0.0.1:{port}" in stored.last_error
        assert "\n" not in stored.last_error
    assert deliver_pending(db, sender, now=t0 + timedelta(seconds=30)).claimed == 0  # not due yet

    t1 = t0 + timedelta(seconds=61)
    again = deliver_pending(db, sender, now=t1)
    assert [o.attempts for o in again.retried] == [2, 2]
    assert all(o.next_attempt_at == t1 + timedelta(seconds=120) for o in again.retried)

    inbox = Inbox()
    with smtp_server(inbox, port):
        t2 = t1 + timedelta(seconds=121)
        up = deliver_pending(db, sender, now=t2)
        assert (len(up.sent), len(up.retried), len(up.failed)) == (2, 0, 0)
        assert deliver_pending(db, sender, now=t2 + timedelta(days=1)).claimed == 0
    assert len(inbox.received) == 2  # each once
    for message in outbox(db):
        stored = row(db, message["id"])
        assert (stored.status, stored.attempts, stored.sent_at, stored.last_error) == ("sent", 3, t2, "")
    [(mail_from, rcpt_tos, rejected)] = [(sent_from, rcpts, message) for (sent_from, rcpts, _raw), message
                                         in zip(inbox.received, inbox.messages())
                                         if message["Subject"].endswith("rejected")]
    assert mail_from == "noreply@dc.example.la" and rcpt_tos == [OWNER, MINISTRY_CONTACT]
    # Sent as RFC 2047 encoded words, read back whole.
    assert rejected["Subject"] == f"Hosting request {request_id} (ລະບົບ ພອດທັລ): rejected"
    assert rejected["To"] == f"{OWNER}, {MINISTRY_CONTACT}"
    assert rejected["From"] == FROM and rejected["Auto-Submitted"] == "auto-generated"
    assert rejected["Message-ID"].startswith("<dcops-outbox-") and rejected["Message-ID"].endswith("@dc.example.la>")
    body = rejected.get_content()
    assert f"Hosting request {request_id} is now rejected." in body
    assert "The plan is larger than the budget allows." in body and "Ask for a smaller plan." in body
    assert rejected.get_content_type() == "text/plain"


def test_a_5xx_for_every_recipient_fails_a_4xx_waits_and_a_partial_refusal_retries_only_the_refused(sdb):
    refused = {"gone@mtc.example.la": "550 5.1.1 no such mailbox", "other@mtc.example.la": "550 5.1.1 no such user",
               "busy@mtc.example.la": "451 4.2.1 mailbox busy, try later"}
    now = utcnow()
    with sdb.transaction() as conn:
        ids = {name: enqueue(conn, event=f"request.{name}", object_type="request", object_key="1",
                             recipients=recipients, subject=name, body="b", now=now) for name, recipients in {
            "all-5xx": ["gone@mtc.example.la", "other@mtc.example.la"],
            "all-4xx": ["busy@mtc.example.la"],
            "partly": [OWNER, "gone@mtc.example.la", "busy@mtc.example.la"],
        }.items()}
    inbox = Inbox(refused)
    with smtp_server(inbox) as server:
        report = deliver_pending(sdb, sender_for(server.port), now=now)
    assert [o.id for o in report.failed] == [ids["all-5xx"]]
    assert [o.id for o in report.retried] == [ids["all-4xx"]]
    assert [o.id for o in report.sent] == [ids["partly"]]
    failed = row(sdb, ids["all-5xx"])
    assert failed.status == "failed" and "550 5.1.1 no such mailbox" in failed.last_error
    waiting = row(sdb, ids["all-4xx"])
    assert waiting.status == "pending" and waiting.attempts == 1 and "451" in waiting.last_error
    partly = row(sdb, ids["partly"])
    assert partly.status == "sent" and "gone@mtc.example.la: 550" in partly.last_error
    assert [r for _f, r, _raw in inbox.received] == [[OWNER]]
    # The recipient refused for a while gets the same message later; the owner does not get it twice.
    [later] = [m for m in outbox(sdb) if m["id"] not in ids.values()]
    assert later["recipients"] == ["busy@mtc.example.la"] and later["subject"] == "partly"
    assert later["status"] == "pending" and later["attempts"] == 1
    assert later["next_attempt_at"] == (now + timedelta(seconds=60)).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def test_a_message_refused_at_data_with_5xx_fails(sdb):
    with sdb.transaction() as conn:
        message_id = enqueue(conn, event="request.x", object_type="request", object_key="1", recipients=[OWNER],
                             subject="s", body="b")
    with smtp_server(Inbox(data_reply="554 5.6.0 message content rejected")) as server:
        report = deliver_pending(sdb, sender_for(server.port))
    assert [o.id for o in report.failed] == [message_id]
    assert "554 5.6.0 message content rejected" in row(sdb, message_id).last_error


def test_a_header_injection_in_a_programme_name_or_reason_adds_no_header_and_no_recipient(sdb):
    request_id = submit(sdb, requests_fixtures.request(), actor="desk")
    with sdb.transaction() as conn:  # a name stored before names were checked for line breaks
        conn.execute(sa.text("UPDATE hosting_request SET programme_name = :n WHERE id = :i"),
                     {"n": "Portal\r\nBcc: evil@attacker.example\r\nX-Evil: 1", "i": request_id})
    reject(sdb, request_id, actor="op-one",
           reason="No.\r\nBcc: evil2@attacker.example\r\n.\r\nMAIL FROM:<x@attacker.example>\r\n"
                  "RCPT TO:<evil3@attacker.example>\r\nDATA\r\nSubject: forged")
    inbox = Inbox()
    with smtp_server(inbox) as server:
        report = deliver_pending(sdb, sender_for(server.port))
    assert len(report.sent) == 2 and len(inbox.received) == 2  # no third message smuggled in
    assert all(rcpts == [OWNER, MINISTRY_CONTACT] for _f, rcpts, _raw in inbox.received)
    for raw in (raw for _f, _r, raw in inbox.received):
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nBcc:" not in head and b"\r\nX-Evil:" not in head and b"attacker" not in head.split(
            b"Subject:")[0]
    rejected = next(m for m in inbox.messages() if "rejected" in m["Subject"])
    assert rejected["Bcc"] is None and rejected["X-Evil"] is None
    # One header, folded by the email package (an '@' in it makes it fold before the value: the space is the fold's).
    assert rejected["Subject"].strip() == \
        f"Hosting request {request_id} (Portal Bcc: evil@attacker.example X-Evil: 1): rejected"
    body = rejected.get_content()
    assert "Bcc: evil2@attacker.example" in body and "RCPT TO:<evil3@attacker.example>" in body


def test_starttls_and_a_login_from_the_password_file(sdb, tmp_path, monkeypatch):
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the client trusts this test's own certificate

    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        logins.append((bytes(auth_data.login), bytes(auth_data.password)))
        ok = (bytes(auth_data.login), bytes(auth_data.password)) == (b"dcops", b"s3cret pass")
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd itself answers 235 or 535

    with sdb.transaction() as conn:
        message_id = enqueue(conn, event="request.x", object_type="request", object_key="1", recipients=[OWNER],
                             subject="over TLS", body="b")
    (tmp_path / "wrong").write_text("not it\n")
    (tmp_path / "password").write_text("s3cret pass\n")
    inbox = Inbox()
    with smtp_server(inbox, tls_context=server_tls, require_starttls=True, auth_required=True,
                     authenticator=authenticator) as server:
        base = {"DCOPS_HOME": str(tmp_path), "DCOPS_SMTP_HOST": "127.0.0.1", "DCOPS_SMTP_PORT": str(server.port),
                "DCOPS_SMTP_FROM": FROM, "DCOPS_SMTP_STARTTLS": "true", "DCOPS_SMTP_USER": "dcops"}
        from dcops.settings import Settings

        wrong = SmtpSender.from_settings(Settings.from_env({**base,
                                                            "DCOPS_SMTP_PASSWORD_FILE": str(tmp_path / "wrong")}))
        refused = deliver_pending(sdb, wrong)
        assert [o.id for o in refused.retried] == [message_id]
        assert "refused the login of dcops: 535" in refused.retried[0].error
        right = SmtpSender.from_settings(Settings.from_env({**base,
                                                            "DCOPS_SMTP_PASSWORD_FILE": str(tmp_path / "password")}))
        assert right.password == "s3cret pass" and right.where == f"127.0.0.1:{server.port} (STARTTLS)"
        sent = deliver_pending(sdb, right, now=utcnow() + timedelta(minutes=2))
    assert [o.id for o in sent.sent] == [message_id]
    # smtplib tries its next mechanism (PLAIN, then LOGIN) after a refusal: the wrong password only, then the right.
    assert set(logins[:-1]) == {(b"dcops", b"not it")} and logins[-1] == (b"dcops", b"s3cret pass")
    assert inbox.messages()[0]["Subject"] == "over TLS"


@pytest.mark.slow
def test_two_senders_sharing_the_database_send_each_message_once(any_settings):
    first, second = open_database(any_settings), open_database(any_settings)
    try:
        now = utcnow()
        with first.transaction() as conn:
            ids = [enqueue(conn, event="request.x", object_type="request", object_key=str(n), recipients=[OWNER],
                           subject=f"message {n}", body="b", now=now) for n in range(40)]
        inbox = Inbox(delay_s=0.01)
        claimed: dict[str, int] = {"first": 0, "second": 0}
        with smtp_server(inbox) as server:
            def drain(database, name):
                sender = sender_for(server.port)
                while (report := deliver_pending(database, sender, batch=5)).claimed:
                    claimed[name] += len(report.sent)

            threads = [threading.Thread(target=drain, args=(first, "first")),
                       threading.Thread(target=drain, args=(second, "second"))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        subjects = sorted(m["Subject"] for m in inbox.messages())
        assert subjects == sorted(f"message {n}" for n in range(40))  # every one, none twice
        assert len({m["Message-ID"] for m in inbox.messages()}) == 40
        assert claimed["first"] + claimed["second"] == 40 and claimed["first"] and claimed["second"]
        assert {m["status"] for m in outbox(first) if m["id"] in ids} == {"sent"}
    finally:
        first.dispose()
        second.dispose()


def test_a_pass_told_to_stop_hands_its_claimed_messages_back(sdb):
    now = utcnow()
    with sdb.transaction() as conn:
        ids = [enqueue(conn, event="request.x", object_type="request", object_key=str(n), recipients=[OWNER],
                       subject=f"m{n}", body="b", now=now) for n in range(3)]
    stop = threading.Event()
    stop.set()
    with smtp_server(Inbox()) as server:
        report = deliver_pending(sdb, sender_for(server.port), now=now, stop=stop)
    assert report.claimed == 3 and not report.outcomes
    assert [(row(sdb, i).status, row(sdb, i).attempts, row(sdb, i).next_attempt_at) for i in ids] == \
        [("pending", 0, now)] * 3  # due again at once, no try counted


# --- the CLI -------------------------------------------------------------------------------------

def run(cli, *args, env: dict[str, str] | None = None, expect: int | None = 0):
    from dcops.cli.main import app

    result = cli.runner.invoke(app, [str(a) for a in args], env={**cli.env, **(env or {})}, catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def test_outbox_list_and_send(cli, tmp_path):
    database = open_database(cli.settings)
    try:
        with database.transaction() as conn:
            enqueue(conn, event="request.decommission-requested", object_type="request", object_key="123456",
                    recipients=["a.very.long.mailbox.name@ministry-of-technology.example.la", OWNER],
                    subject="first", body="b")
            enqueue(conn, event="request.approved", object_type="request", object_key="2", recipients=[OWNER],
                    subject="second", body="b")
    finally:
        database.dispose()
    table = run(cli, "outbox", "list").stdout
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "(UTC)", "STATUS", "TRIES", "ABOUT", "TO"]
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)
    # The long event is cut to leave the first recipient and the count room; JSON has both whole.
    assert "pending" in lines[1] and "request 123456: decommi" in lines[1]
    assert lines[1].endswith("… +1") and "a.very.long" in lines[1]
    assert "request 2: approved" in lines[2] and "owner@mtc.exam" in lines[2]
    listed = json.loads(run(cli, "outbox", "list", "-o", "json").stdout)
    assert [m["subject"] for m in listed] == ["first", "second"]
    assert listed[0]["recipients"][1] == OWNER and listed[0]["body"] == "b"
    csv_lines = run(cli, "outbox", "list", "-o", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("id,created_at,event,object_type,object_key,recipients,subject,status")
    assert len(csv_lines) == 3
    assert run(cli, "outbox", "list", "--status", "sent").stdout.splitlines()[1:] == []

    port = free_port()
    smtp_env = {"DCOPS_SMTP_HOST": "127.0.0.1", "DCOPS_SMTP_PORT": str(port), "DCOPS_SMTP_FROM": FROM,
                "DCOPS_SMTP_TIMEOUT_S": "5"}
    down = run(cli, "outbox", "send", env=smtp_env, expect=1)
    assert down.stdout.splitlines()[-1] == "0 sent, 2 to retry, 0 failed"
    assert down.stdout.startswith("retry   1  request.decommission-requested  try 1, next at ")
    assert "cannot reach the mail server" in down.stdout

    inbox = Inbox()
    with smtp_server(inbox, port):
        database = open_database(cli.settings)
        try:  # the next try is due in a minute: make it due now, as a minute passing would
            with database.transaction() as conn:
                conn.execute(sa.update(T_OUTBOX).values(next_attempt_at=utcnow()))
        finally:
            database.dispose()
        up = run(cli, "outbox", "send", env=smtp_env)
    assert up.stdout.splitlines() == [
        (f"sent    1  request.decommission-requested  to a.very.long.mailbox.name@ministry-of-technology.example.la, "
         f"{OWNER}"),
        f"sent    2  request.approved  to {OWNER}",
        "2 sent, 0 to retry, 0 failed",
    ]
    assert len(inbox.received) == 2
    assert [m["status"] for m in json.loads(run(cli, "outbox", "list", "--status", "sent", "-o", "json").stdout)] \
        == ["sent", "sent"]
    nothing = run(cli, "outbox", "send", env=smtp_env)
    assert nothing.stdout == "0 sent, 0 to retry, 0 failed\n" and len(inbox.received) == 2


@pytest.mark.parametrize(("env", "message"), [
    ({}, "DCOPS_SMTP_HOST is not set: notifications are queued in the outbox but not sent"),
    ({"DCOPS_SMTP_HOST": "mail.dc.example.la"}, "DCOPS_SMTP_FROM is required when DCOPS_SMTP_HOST is set"),
    ({"DCOPS_SMTP_PORT": "smtp"}, "DCOPS_SMTP_PORT must be a port number from 1 to 65535, not 'smtp'"),
    ({"DCOPS_SMTP_PORT": "70000"}, "DCOPS_SMTP_PORT must be a port number from 1 to 65535, not '70000'"),
    ({"DCOPS_SMTP_FROM": "noreply at dc"}, "DCOPS_SMTP_FROM must be an e-mail address"),
    ({"DCOPS_SMTP_STARTTLS": "maybe"}, "DCOPS_SMTP_STARTTLS must be true or false, not 'maybe'"),
    ({"DCOPS_SMTP_USER": "dcops"}, "DCOPS_SMTP_USER needs DCOPS_SMTP_PASSWORD_FILE"),
    ({"DCOPS_SMTP_PASSWORD": "hunter2"}, "DCOPS_SMTP_PASSWORD is not read: put the password in a file"),
    ({"DCOPS_SMTP_TIMEOUT_S": "0"}, "DCOPS_SMTP_TIMEOUT_S must be a number of seconds above 0 and at most 600"),
    ({"DCOPS_SMTP_HOST": "mail.dc.example.la", "DCOPS_SMTP_FROM": FROM, "DCOPS_SMTP_USER": "dcops",
      "DCOPS_SMTP_PASSWORD_FILE": "/nonexistent"}, "DCOPS_SMTP_USER needs DCOPS_SMTP_STARTTLS=true"),
    ({"DCOPS_SMTP_HOST": "mail.dc.example.la", "DCOPS_SMTP_FROM": FROM, "DCOPS_SMTP_STARTTLS": "yes",
      "DCOPS_SMTP_USER": "dcops", "DCOPS_SMTP_PASSWORD_FILE": "{tmp}/missing"},
     "DCOPS_SMTP_PASSWORD_FILE: cannot read {tmp}/missing: No such file or directory"),
])
def test_bad_mail_settings_are_one_line_and_exit_2(cli, tmp_path, env, message):
    env = {name: value.replace("{tmp}", str(tmp_path)) for name, value in env.items()}
    result = run(cli, "outbox", "send", env=env, expect=2)
    assert result.stderr.startswith(f"dcops: error: {message.replace('{tmp}', str(tmp_path))}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --- dcops serve ---------------------------------------------------------------------------------

def _serve(cli, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DCOPS_SMTP_")}
    env.update(cli.env)
    env.update(extra_env)
    return subprocess.Popen([sys.executable, "-m", "dcops", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _first_line(process: subprocess.Popen) -> str:
    line = process.stderr.readline()
    assert line, "dcops serve said nothing"
    return line


@pytest.mark.slow
def test_serve_sends_the_outbox_and_says_so_at_start(cli, unused_port):
    database = open_database(cli.settings)
    try:
        with database.transaction() as conn:
            message_id = enqueue(conn, event="request.approved", object_type="request", object_key="1",
                                 recipients=[OWNER], subject="from the service", body="b")
    finally:
        database.dispose()
    inbox = Inbox()
    with smtp_server(inbox) as server:
        process = _serve(cli, unused_port, {"DCOPS_SMTP_HOST": "127.0.0.1", "DCOPS_SMTP_PORT": str(server.port),
                                            "DCOPS_SMTP_FROM": FROM})
        try:
            started = _first_line(process)
            assert f"e-mail via 127.0.0.1:{server.port}" in started
            deadline = time.monotonic() + 30
            while not inbox.received and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert [m["Subject"] for m in inbox.messages()] == ["from the service"]
    database = open_database(cli.settings)
    try:
        assert row(database, message_id).status == "sent"
    finally:
        database.dispose()


@pytest.mark.slow
def test_serve_without_a_mail_server_says_notifications_are_queued(cli, unused_port):
    process = _serve(cli, unused_port, {})
    try:
        started = _first_line(process)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert "notifications queued, not sent (DCOPS_SMTP_HOST unset)" in started
    assert process.returncode == 0 and "Traceback" not in err


def test_serve_with_an_unreadable_password_file_stops_at_once_with_one_line(cli, tmp_path):
    result = run(cli, "serve", "--port", "0", env={
        "DCOPS_SMTP_HOST": "127.0.0.1", "DCOPS_SMTP_FROM": FROM, "DCOPS_SMTP_USER": "dcops",
        "DCOPS_SMTP_PASSWORD_FILE": str(tmp_path / "missing")}, expect=2)
    assert result.stderr.startswith("dcops: error: DCOPS_SMTP_PASSWORD_FILE: cannot read")
    assert result.stderr.count("\n") == 1
