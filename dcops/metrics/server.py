"""The exporter's HTTP server: /metrics for Prometheus and /healthz, with optional TLS and basic auth;
and, given a shared secret, POST /alertmanager/webhook for Alertmanager's notifications."""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import ipaddress
import os
import socket
import ssl
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy import text

from dcops.db import Database, utcnow
from dcops.errors import UserError
from dcops.metrics.collector import InventoryCollector

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9410
DEFAULT_CACHE_SECONDS = 5.0
PBKDF2_PREFIX = "pbkdf2_sha256"
PBKDF2_ITERATIONS = 600_000
# A client gets this long to send its request (and finish the TLS handshake).
REQUEST_TIMEOUT_SECONDS = 30
WEBHOOK_PATH = "/alertmanager/webhook"


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1; any other name or address is remote."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A PBKDF2-SHA256 hash to keep in the password file instead of the password.

    Format: pbkdf2_sha256$<iterations>$<salt, base64>$<hash, base64>.
    """
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{PBKDF2_PREFIX}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(supplied: str, stored: str) -> bool:
    """True when `supplied` matches `stored`: a hash_password() hash, else the password itself."""
    if stored.startswith(PBKDF2_PREFIX + "$"):
        try:
            _prefix, iterations, salt, digest = stored.split("$")
            expected = base64.b64decode(digest, validate=True)
            actual = hashlib.pbkdf2_hmac("sha256", supplied.encode(), base64.b64decode(salt, validate=True),
                                         int(iterations))
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(actual, expected)
    return hmac.compare_digest(supplied.encode(), stored.encode())


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    exporter: "MetricsServer"

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up or fails the TLS handshake is its own problem, not a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = REQUEST_TIMEOUT_SECONDS
    server_version = "dcops-exporter"

    def setup(self) -> None:
        # The handshake runs here, in the request's thread, so that a slow client
        # cannot hold up accept() for everyone else.
        self.request.settimeout(self.timeout)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        exporter = self.server.exporter
        if not exporter.authorized(self.headers.get("Authorization")):
            self._reply(401, b"unauthorized\n", "text/plain; charset=utf-8",
                        {"WWW-Authenticate": 'Basic realm="dcops", charset="UTF-8"'})
            return
        path = urlsplit(self.path).path
        if path == "/metrics":
            try:
                body = exporter.render()
            except Exception as error:  # the scrape fails, the server carries on
                self.log_error("scrape failed: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
                self._reply(500, b"dcops: cannot read the database\n", "text/plain; charset=utf-8")
                return
            headers = {}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            self._reply(200, body, CONTENT_TYPE_LATEST, headers)
        elif path == "/healthz":
            if exporter.healthy():
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._reply(503, b"database unavailable\n", "text/plain; charset=utf-8")
        else:
            self._reply(404, b"not found: try /metrics\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        """Alertmanager's webhook: the shared secret as a bearer token (not the metrics' basic auth:
        Alertmanager sends one Authorization header), a JSON body of bounded size."""
        from dcops.alertmanager import MAX_WEBHOOK_BYTES, parse_webhook, record_notification
        from dcops.errors import DcopsError

        exporter = self.server.exporter
        text_plain = "text/plain; charset=utf-8"
        if urlsplit(self.path).path != WEBHOOK_PATH or exporter.webhook_secret is None:
            self._drain()
            self._reply(404, b"not found\n", text_plain)
            return
        if not exporter.webhook_authorized(self.headers.get("Authorization")):
            self._drain()
            self._reply(401, b"unauthorized\n", text_plain, {"WWW-Authenticate": 'Bearer realm="dcops"'})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_WEBHOOK_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self._reply(400, f"a JSON body of at most {MAX_WEBHOOK_BYTES} bytes, with its "
                             "Content-Length\n".encode(), text_plain)
            return
        body = self.rfile.read(length)
        try:
            counts = record_notification(exporter.database, parse_webhook(body))
        except DcopsError as error:
            status = 400 if error.http_status < 500 else 503
            self._reply(status, f"{error}\n".encode(), text_plain)
            return
        except Exception as error:  # noqa: BLE001 - the database went away: Alertmanager sends it again
            self.log_error("webhook not recorded: %s", type(error).__name__)
            self._reply(503, b"dcops: cannot record the notification now\n", text_plain)
            return
        import json

        self._reply(200, json.dumps(counts).encode() + b"\n", "application/json")

    def _drain(self) -> None:
        """Read a refused request's (small) body, so the client reads the answer, not a reset."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if 0 < length <= 65536:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        # Prometheus scrapes every few seconds: an access log line per scrape is noise.
        pass

    def log_error(self, format: str, *args) -> None:  # noqa: A002
        sys.stderr.write(f"dcops: metrics: {format % args}\n")


class MetricsServer:
    """The exporter's HTTP server, bound at construction; start() serves in a thread, stop() ends it.

    Refuses (UserError) a non-loopback address without `allow_remote`, basic auth
    without TLS on a non-loopback address, and half a TLS configuration.
    """

    def __init__(
        self,
        database: Database,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        basic_auth: tuple[str, str] | None = None,
        allow_remote: bool = False,
        now: Callable[[], datetime] = utcnow,
        webhook_secret_file: Path | str | None = None,
    ):
        remote = not is_loopback(host)
        if remote and not allow_remote:
            raise UserError(f"refusing to serve metrics on {host}, not a loopback address: "
                            "pass the address explicitly (dcops metrics serve --host) to expose them")
        if (tls_cert is None) != (tls_key is None):
            raise UserError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
        if basic_auth is not None and remote and tls_cert is None:
            raise UserError(f"refusing basic auth without TLS on {host}: the password would cross "
                            "the network in clear (add --tls-cert and --tls-key)")
        if basic_auth is not None and (not basic_auth[0] or not basic_auth[1]):
            raise UserError("basic auth needs a user name and a non-empty password")
        self.database = database
        self.basic_auth = basic_auth
        self.registry = CollectorRegistry()
        # The collector keeps one reading (and its text) for `cache_seconds`; scrapes meanwhile share it.
        self.collector = InventoryCollector(database, now=now, cache_seconds=cache_seconds, registry=self.registry)
        self.cache_seconds = cache_seconds
        self._verified: set[bytes] = set()
        self._thread: threading.Thread | None = None
        # Alertmanager's shared secret (first line of its file); None: the webhook path answers 404.
        self.webhook_secret = read_secret_file(webhook_secret_file) if webhook_secret_file is not None else None

        context = None
        if tls_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(str(tls_cert), str(tls_key))
            except (OSError, ssl.SSLError) as error:
                reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
                raise UserError(f"cannot load the TLS certificate {tls_cert} and key {tls_key}: {reason}") from None
        try:
            self._server = (_HTTPServer6 if ":" in host else _HTTPServer)((host, port), _Handler)
        except OSError as error:
            raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        if context is not None:
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        self._server.exporter = self
        self.tls = context is not None
        self.host = host

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The /metrics URL, for people and tests."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    @property
    def webhook_url(self) -> str | None:
        """The Alertmanager webhook's URL; None when no secret is configured (the path answers 404)."""
        if self.webhook_secret is None:
            return None
        return self.url.removesuffix("/metrics") + WEBHOOK_PATH

    def render(self) -> bytes:
        """The exposition of the collector's registry (text format), reused for `cache_seconds`.

        The registry holds only the collector, so its direct writer gives the bytes that
        generate_latest(self.registry) would, in well under half the time at 10,000 programmes.
        """
        return self.collector.exposition()

    def healthy(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.database.transaction() as conn:
                conn.execute(text("SELECT 1")).scalar()
            return True
        except Exception:  # whatever the driver raises, the answer is "not healthy"
            return False

    def authorized(self, header: str | None) -> bool:
        """True without basic auth, else when the Authorization header carries the user and password."""
        if self.basic_auth is None:
            return True
        if not header or not header.startswith("Basic "):
            return False
        # A PBKDF2 check costs a good fraction of a second: remember credentials already verified.
        fingerprint = hashlib.sha256(header.encode()).digest()
        if fingerprint in self._verified:
            return True
        try:
            user, _sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return False
        good = hmac.compare_digest(user.encode(), self.basic_auth[0].encode())
        good = check_password(password, self.basic_auth[1]) and good
        if good:
            if len(self._verified) > 16:
                self._verified.clear()
            self._verified.add(fingerprint)
        return good

    def webhook_authorized(self, header: str | None) -> bool:
        """True when the Authorization header is `Bearer <the shared secret>` (compared in constant time)."""
        if self.webhook_secret is None or not header:
            return False
        scheme, _sep, token = header.partition(" ")
        expected = self.webhook_secret.encode()
        # Digests of both sides: compare_digest's time then does not depend on the secret's length either.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            hashlib.sha256(token.strip().encode()).digest(), hashlib.sha256(expected).digest())

    def serve_forever(self) -> None:
        """Serve in this thread until stop() is called from another."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve in a background (daemon) thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="dcops-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the listening socket and wait for the serving thread."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "MetricsServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(
    database: Database,
    *,
    stop_event: threading.Event | None = None,
    on_ready: Callable[[MetricsServer], None] | None = None,
    **options,
) -> None:
    """Serve /metrics and /healthz until `stop_event` is set (forever without one).

    `options` are MetricsServer's (host, port, cache_seconds, TLS, basic_auth, allow_remote, now).
    """
    server = MetricsServer(database, **options)
    stop_event = stop_event or threading.Event()
    server.start()
    try:
        if on_ready is not None:
            on_ready(server)
        # A bounded wait, so that a signal handler setting the event is seen promptly.
        while not stop_event.wait(0.5):
            pass
    finally:
        server.stop()


def _first_line(path: Path | str, what: str) -> str:
    """The first line of `path` ("" when it is empty), or a UserError naming the `what` file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the {what} file {path}: {getattr(error, 'strerror', None) or error}") from None
    return lines[0] if lines else ""


def read_secret_file(path: Path | str) -> str:
    """Alertmanager's webhook secret: the first line of `path`, at least 16 characters."""
    secret = _first_line(path, "webhook secret").strip()
    if len(secret) < 16:
        raise UserError(f"the webhook secret file {path} needs a secret of at least 16 characters on its "
                        "first line (e.g. from `openssl rand -hex 32`)")
    return secret


def read_password_file(path: Path | str) -> str:
    """The password (or hash_password() hash) on the first line of `path`."""
    password = _first_line(path, "password")
    if not password:
        raise UserError(f"the password file {path} is empty")
    return password
