"""The e-mail sender: the standard library's smtplib, STARTTLS and a login when configured.

A message is built with the `email` package's SMTP policy, which refuses a header holding a line
break; its subject is made one line and its recipients checked once more before that, whatever
the outbox row holds. The reply code decides what a failure is: 5xx for every recipient (or for
the message) is for good; a 4xx, a timeout, a connection refused or cut is tried again later.
A refused sender address or login is the configuration's mistake: tried again too, so nothing
is lost while it is put right.
"""

from __future__ import annotations

import smtplib
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from dcops.errors import ConfigError
from dcops.notifications.delivery import DeliveryError, Outgoing
from dcops.notifications.outbox import one_line, plain_text, unique_addresses
from dcops.settings import mail_address

if TYPE_CHECKING:
    from dcops.settings import Settings

PASSWORD_FILE_MAX_BYTES = 4096


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return one_line(f"{code} {words}", 200)


def _why(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply(error.smtp_code, error.smtp_error)
    text = one_line(error) or type(error).__name__
    if isinstance(error, TimeoutError) and text == type(error).__name__:
        text = "timed out"
    return text


def read_password_file(path: Path) -> str:
    """The password: the file's first line (a trailing line break is not part of it)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(PASSWORD_FILE_MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"DCOPS_SMTP_PASSWORD_FILE: cannot read {path}: {error.strerror}") from None
    if len(data) > PASSWORD_FILE_MAX_BYTES:
        raise ConfigError(f"DCOPS_SMTP_PASSWORD_FILE: {path} is larger than {PASSWORD_FILE_MAX_BYTES} bytes: "
                          "not a password file")
    try:
        password = data.decode("utf-8").split("\n", 1)[0].rstrip("\r")
    except UnicodeDecodeError:
        raise ConfigError(f"DCOPS_SMTP_PASSWORD_FILE: {path} is not UTF-8 text") from None
    if not password:
        raise ConfigError(f"DCOPS_SMTP_PASSWORD_FILE: {path} is empty")
    return password


def build_message(message: Outgoing, from_header: str) -> EmailMessage:
    """The RFC 5322 message of an outbox row: From, To, Subject, Date, a stable Message-ID, plain text.

    Raises DeliveryError (permanent) when the row holds no address to send to.
    """
    recipients = unique_addresses(message.recipients)
    if not recipients:
        raise DeliveryError("no valid recipient address", permanent=True)
    name, address = parseaddr(from_header)
    email = EmailMessage(policy=SMTP)
    email["From"] = formataddr((one_line(name), address)) if name else address
    email["To"] = ", ".join(recipients)
    email["Subject"] = one_line(message.subject, 200)
    email["Date"] = format_datetime(message.created_at)
    # The same id however often it is sent: a receiver can tell a second copy (after a crash) for one.
    email["Message-ID"] = f"<dcops-outbox-{message.id}-{int(message.created_at.timestamp())}@{address.split('@')[1]}>"
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies back to it
    email.set_content(plain_text(message.body))
    return email


@dataclass
class SmtpSession:
    """One open connection to the mail server."""

    smtp: smtplib.SMTP
    from_header: str
    envelope_from: str

    def send(self, message: Outgoing) -> dict[str, tuple[int, str]]:
        """Send one message; returns the recipients refused while others took it (address: (code, text))."""
        email = build_message(message, self.from_header)
        recipients = unique_addresses(message.recipients)
        try:
            refused = self.smtp.send_message(email, from_addr=self.envelope_from, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as error:
            codes = {address: (code, _reply(code, text)) for address, (code, text) in error.recipients.items()}
            permanent = bool(codes) and all(500 <= code < 600 for code, _text in codes.values())
            raise DeliveryError("every recipient refused: " + "; ".join(
                f"{address}: {text}" for address, (_code, text) in codes.items()), permanent=permanent) from None
        except smtplib.SMTPSenderRefused as error:
            raise DeliveryError(f"the sender {self.envelope_from} was refused: {_why(error)} "
                                "(see DCOPS_SMTP_FROM)") from None
        except smtplib.SMTPServerDisconnected as error:
            raise DeliveryError(f"the mail server closed the connection: {_why(error)}", broken=True) from None
        except smtplib.SMTPResponseException as error:  # the message itself (DATA), or an odd reply
            raise DeliveryError(f"the message was refused: {_why(error)}",
                                permanent=500 <= error.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"sending failed: {_why(error)}", broken=True) from None
        return {address: (code, _reply(code, text)) for address, (code, text) in refused.items()}


@dataclass(frozen=True)
class SmtpSender:
    """Sends the outbox through one SMTP server (DCOPS_SMTP_*)."""

    host: str
    port: int = 25
    from_header: str = ""
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> "SmtpSender":
        """The sender the settings describe, its password read from its file; ConfigError without a host."""
        if not settings.smtp_host:
            raise ConfigError("DCOPS_SMTP_HOST is not set: notifications are queued in the outbox but not sent "
                              "(set DCOPS_SMTP_HOST and DCOPS_SMTP_FROM)")
        password = read_password_file(settings.smtp_password_file) if settings.smtp_password_file else None
        return cls(host=settings.smtp_host, port=settings.smtp_port, from_header=settings.smtp_from,
                   starttls=settings.smtp_starttls, user=settings.smtp_user, password=password,
                   timeout_s=settings.smtp_timeout_s)

    @property
    def where(self) -> str:
        """host:port, and how: for the start-up line."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" + (" (STARTTLS)" if self.starttls else "")

    @contextmanager
    def session(self) -> Iterator[SmtpSession]:
        """A connection for one pass: greeted, STARTTLS and login done; DeliveryError (broken) if not."""
        envelope_from = mail_address(self.from_header)
        if envelope_from is None:
            raise ConfigError(f"DCOPS_SMTP_FROM is not an e-mail address: {self.from_header!r}")
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"cannot reach the mail server {self.where}: {_why(error)}", broken=True) from None
        try:
            step = "a greeting"
            try:
                smtp.ehlo_or_helo_if_needed()
                if self.starttls:
                    step = "STARTTLS"
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user is not None:
                    step = "a login (AUTH)"
                    smtp.login(self.user, self.password or "")
            except smtplib.SMTPNotSupportedError as error:
                raise DeliveryError(f"the mail server {self.where} does not offer {step}: {_why(error)}",
                                    broken=True) from None
            except smtplib.SMTPAuthenticationError as error:
                raise DeliveryError(f"the mail server {self.where} refused the login of {self.user}: {_why(error)}",
                                    broken=True) from None
            except (OSError, smtplib.SMTPException) as error:
                raise DeliveryError(f"the mail server {self.where} failed at {step}: {_why(error)}",
                                    broken=True) from None
            yield SmtpSession(smtp, self.from_header, envelope_from)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
