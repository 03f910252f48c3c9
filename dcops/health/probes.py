"""The probes: one HTTP, TCP or TLS check against one target, async, bounded by its timeout."""

# Reasons (ProbeResult.reason) are short and stable, because flap damping records them on
# state changes and the reports group by them:
#
#   ""                      success
#   "timeout"               nothing (or not enough) within check.timeout_seconds
#   "refused"               the port answered with a reset to the connect (nothing listening)
#   "reset"                 the connection was reset, or closed by the server before any response
#   "unreachable"           no route to the host or network
#   "dns"                   the name did not resolve
#   "tls error: <detail>"   the handshake failed or the certificate did not verify; <detail> is one of
#                           "self-signed certificate", "unknown issuer", "hostname mismatch",
#                           "certificate not yet valid", ... or OpenSSL's reason in lower case
#   "certificate expired"   the certificate's not-after is in the past
#   "status N"              the HTTP status is not in expect_status
#   "body mismatch"         body_contains is not in the first MAX_BODY_BYTES of the body
#   "invalid response"      the bytes are not HTTP, or the response is truncated or undecodable
#   "error: <detail>"       anything else: a bad check (target, URL, expect_status, kind) or a local error
#
# Security: a probe only ever connects to the host and port its check names (plus, for a
# failed TLS handshake, one more non-verifying handshake to the same place to read the
# certificate's expiry); redirects are never followed; proxies from the environment are ignored.

from __future__ import annotations

import asyncio
import codecs
import errno
import logging
import math
import re
import socket
import ssl
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

import h11
import httpx
from cryptography import x509

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # body_contains looks at the first MiB of the (decoded) body only
CLOSE_GRACE_SECONDS = 1.0  # how long a polite close (TLS close_notify) may take before the socket is dropped
USER_AGENT = "dcops-health/1"
USER_AGENT_BYTES = USER_AGENT.encode("ascii")
_MAX_HEAD_BYTES = 100 * 1024  # status line and headers: past this the response is refused as invalid
DETAIL_MAX = 80

# OpenSSL verification codes (X509_V_ERR_*) and the short, stable details used for them.
_CERT_HAS_EXPIRED = 10
_VERIFY_DETAILS = {
    2: "unknown issuer",  # unable to get issuer certificate
    9: "certificate not yet valid",
    18: "self-signed certificate",
    19: "self-signed certificate in chain",
    20: "unknown issuer",  # unable to get local issuer certificate
    21: "unknown issuer",  # unable to verify the first certificate
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsuitable certificate purpose",
    62: "hostname mismatch",
    64: "hostname mismatch",  # IP address mismatch
}
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Check:
    """One endpoint to probe, with its probe settings."""

    endpoint_id: int
    programme: str  # slug
    name: str  # endpoint name
    kind: str  # "http" | "tcp" | "tls"
    target: str  # http: URL; tcp/tls: "host:port" (IPv6 as "[::1]:443")
    expect_status: str = "200-399"  # ranges/codes: "200-299,301"
    body_contains: str = ""
    timeout_seconds: float = 5.0
    interval_seconds: int = 60


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw; `reason` is "" on success, else one of the reasons listed at the top."""

    endpoint_id: int
    at: datetime  # when the probe started (timezone-aware UTC)
    success: bool
    duration_seconds: float
    reason: str
    status_code: int | None = None
    tls_expires_at: datetime | None = None  # https and tls checks, whenever a certificate was seen


# --- expected status ------------------------------------------------------------------------

_CODE = re.compile(r"[0-9]{3}")


@lru_cache(maxsize=1024)
def parse_expect_status(expect: str) -> tuple[tuple[int, int], ...]:
    """'200-299,301' -> ((200, 299), (301, 301)); ValueError when malformed."""
    ranges = []
    for part in expect.split(","):
        low, sep, high = (piece.strip() for piece in part.partition("-"))
        if not _CODE.fullmatch(low) or (sep and not _CODE.fullmatch(high)):
            raise ValueError(f"bad expect_status {expect!r}: use codes and ranges like '200-299,301'")
        ranges.append((int(low), int(high) if sep else int(low)))
        if ranges[-1][0] > ranges[-1][1]:
            raise ValueError(f"bad expect_status {expect!r}: range {part.strip()!r} is backwards")
    return tuple(ranges)


def status_matches(code: int, expect: str) -> bool:
    """Whether an HTTP status is one of `expect` ("200-299,301"); ValueError when `expect` is malformed."""
    return any(low <= code <= high for low, high in parse_expect_status(expect))


# --- TLS contexts and certificates ----------------------------------------------------------


def verifying_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A new client context that verifies certificates and host names against the system CA store,
    plus `ca_file` (PEM) when given: operators point that at the data centre's internal CA."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            from dcops.errors import UserError

            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
            raise UserError(f"--ca-file: cannot load {ca_file} as a CA bundle (PEM): {reason}") from None
    return context


@lru_cache(maxsize=16)
def _shared_verifying_context(ca_file: str | None) -> ssl.SSLContext:
    # Loading the CA store takes milliseconds: the tls checks share one context per CA file.
    return verifying_context(ca_file)


@lru_cache(maxsize=1)
def _reading_context() -> ssl.SSLContext:
    """A context that verifies nothing: only ever used to read a certificate that failed verification."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _not_after(der: bytes | None) -> datetime | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


def _peer_not_after(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> datetime | None:
    return _not_after(ssl_object.getpeercert(binary_form=True)) if ssl_object is not None else None


# --- the client -----------------------------------------------------------------------------


class HttpClient:
    """What http checks share: the TLS context that verifies https targets (and nothing else:
    each probe opens a connection of its own, so there is no pool to share)."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.ssl_context = ssl_context
        self.is_closed = False

    async def aclose(self) -> None:
        self.is_closed = True

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


def make_client(ca_file: str | None = None) -> HttpClient:
    """The shared client for http checks.

    Verifies TLS (system CA store, plus `ca_file` when given), never follows redirects, ignores
    proxy and certificate settings from the environment, speaks HTTP/1.1 only, keeps no cookies,
    and opens a fresh connection for every probe (no keep-alive), so each probe measures connect
    and handshake and sees the certificate the server presents now.
    """
    return HttpClient(verifying_context(ca_file))


class _Connection(asyncio.Protocol):
    """One probe's connection: the bytes as they arrive, and the close.

    A plain protocol rather than a stream or an HTTP library's client: per probe it costs a few
    callbacks, where httpx's layers (pool, anyio streams, request and response models) cost
    thousands of function calls, which made a round of probes spend more CPU than blackbox_exporter.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._closed = loop.create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        if not self._closed.done():
            self._closed.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The bytes received since the last read; b"" at the end; raises what ended the connection."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = self._closed.get_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        return data

    def close(self) -> None:
        self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


async def _connect(host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> _Connection:
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(
        lambda: _Connection(loop), host, port, ssl=ssl_context, server_hostname=host if ssl_context else None)
    return connection


@lru_cache(maxsize=4096)
def _http_target(target: str) -> tuple[str, int, bool, bytes, bytes]:
    """(host to connect to, port, https?, Host header, request target) of an http check's URL;
    _BadCheck when unusable. Cached: the same URLs come back every round."""
    try:
        url = httpx.URL(target)
    except httpx.InvalidURL:
        raise _BadCheck("invalid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _BadCheck("unsupported URL")
    if url.port is not None and not 0 < url.port < 65536:
        raise _BadCheck("invalid URL")
    https = url.scheme == "https"
    host = url.raw_host.decode("ascii")
    return host, url.port or (443 if https else 80), https, url.netloc, url.raw_path or b"/"


def _charset(content_type: bytes | None) -> str | None:
    """The charset parameter of a Content-Type header, if any."""
    for parameter in (content_type or b"").decode("latin-1").split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _decompressor(content_encoding: bytes | None):
    """A zlib decompressor for a gzip or deflate body, None for identity (or an encoding not asked for)."""
    encoding = (content_encoding or b"").strip().lower()
    if encoding in (b"gzip", b"x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == b"deflate":
        return zlib.decompressobj()
    return None


# --- probing --------------------------------------------------------------------------------


class _BadCheck(Exception):
    """The check itself is unusable; the message is the reason's detail."""


@dataclass
class _Outcome:
    reason: str = ""
    status_code: int | None = None
    tls_expires_at: datetime | None = None
    tls_peer: tuple[str, int] | None = None  # where to read the certificate from if the handshake fails
    connection: _Connection | None = None  # to close once the outcome is known


def split_host_port(target: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError when malformed."""
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"bad target {target!r}")
        port = rest[1:]
    else:
        host, sep, port = target.rpartition(":")
        if not sep:
            raise ValueError(f"bad target {target!r}")
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad target {target!r}")
    return host, int(port)


async def probe(
    check: Check,
    *,
    client: HttpClient,
    now: Callable[[], datetime] = utcnow,
    ca_file: str | None = None,
) -> ProbeResult:
    """Probe one check; never raises (except when cancelled): every failure becomes a reason.

    Connect, TLS handshake, response and body read are all bounded by check.timeout_seconds.
    http checks use `client` (its TLS settings apply); tls checks verify against the system CA
    store plus `ca_file`.
    """
    at = now()
    loop = asyncio.get_running_loop()
    started = loop.time()
    timeout = float(check.timeout_seconds)
    bad_timeout = not (math.isfinite(timeout) and timeout > 0)
    deadline = started + (0.0 if bad_timeout else timeout)
    outcome = _Outcome()
    tls_failure = False
    try:
        async with asyncio.timeout_at(deadline):
            if bad_timeout:
                raise _BadCheck("invalid timeout")
            if check.kind == "http":
                await _probe_http(check, client, outcome)
            elif check.kind == "tcp":
                await _probe_tcp(check, outcome)
            elif check.kind == "tls":
                await _probe_tls(check, _shared_verifying_context(ca_file), outcome)
            else:
                raise _BadCheck(f"unknown kind {check.kind!r}")
    except TimeoutError:
        outcome.reason = "timeout"
    except _BadCheck as exc:
        outcome.reason = f"error: {exc}"
    except Exception as exc:  # a probe never raises; the failure is its result
        outcome.reason, tls_failure = classify(exc)
        log.debug("probe of %s (%s) failed: %s", check.target, check.kind, outcome.reason, exc_info=True)
    except BaseException:  # cancelled: drop the connection now rather than when it is collected
        if outcome.connection is not None and outcome.connection.transport is not None:
            outcome.connection.transport.abort()
        raise
    duration = loop.time() - started

    # After the verdict, still within the deadline: close politely, and read the certificate
    # of a failed handshake with a second, non-verifying one.
    if outcome.connection is not None:
        await _close(outcome.connection, deadline)
    if tls_failure and outcome.tls_expires_at is None and outcome.tls_peer is not None:
        outcome.tls_expires_at = await _read_not_after(*outcome.tls_peer, deadline)
    expires = outcome.tls_expires_at
    if expires is not None and expires <= at and (outcome.reason == "" or tls_failure):
        outcome.reason = "certificate expired"
    return ProbeResult(
        endpoint_id=check.endpoint_id,
        at=at,
        success=outcome.reason == "",
        duration_seconds=duration,
        reason=outcome.reason,
        status_code=outcome.status_code,
        tls_expires_at=expires,
    )


async def _probe_http(check: Check, client: HttpClient, outcome: _Outcome) -> None:
    host, port, https, host_header, request_target = _http_target(check.target)
    try:
        parse_expect_status(check.expect_status)
    except ValueError:
        raise _BadCheck("invalid expect_status") from None
    if https:
        outcome.tls_peer = (host, port)
    connection = await _connect(host, port, ssl_context=client.ssl_context if https else None)
    outcome.connection = connection
    if https:
        outcome.tls_expires_at = _peer_not_after(connection.transport.get_extra_info("ssl_object"))
    http = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_BYTES)
    connection.transport.write(http.send(h11.Request(method="GET", target=request_target, headers=[
        (b"Host", host_header), (b"User-Agent", USER_AGENT_BYTES), (b"Accept", b"*/*"),
        (b"Accept-Encoding", b"gzip, deflate"), (b"Connection", b"close")])) + http.send(h11.EndOfMessage()))
    received = False
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            data = await connection.read()
            if not data and not received:
                raise ConnectionResetError("the server closed the connection without a response")
            received = True
            http.receive_data(data)
        elif isinstance(event, h11.Response):
            break
        # an informational (1xx) response is followed by the real one
    outcome.status_code = event.status_code
    if not status_matches(event.status_code, check.expect_status):
        outcome.reason = f"status {event.status_code}"
        return
    if not check.body_contains:
        return
    headers = dict(event.headers)  # h11 lower-cases the names
    decompressor = _decompressor(headers.get(b"content-encoding"))
    raw_deflate_tried = False
    body = bytearray()
    while len(body) < MAX_BODY_BYTES:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await connection.read())
        elif isinstance(event, h11.Data):
            data = bytes(event.data)
            if decompressor is not None:
                try:
                    data = decompressor.decompress(data, MAX_BODY_BYTES - len(body))
                except zlib.error:
                    if raw_deflate_tried or body or headers.get(b"content-encoding", b"").strip().lower() != b"deflate":
                        raise
                    # Some servers send "deflate" without the zlib header: raw deflate, as browsers accept.
                    raw_deflate_tried = True
                    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                    data = decompressor.decompress(data, MAX_BODY_BYTES - len(body))
            body += data
        elif isinstance(event, h11.EndOfMessage):
            break
    if check.body_contains not in _decode(bytes(body[:MAX_BODY_BYTES]), _charset(headers.get(b"content-type"))):
        outcome.reason = "body mismatch"


def _decode(body: bytes, charset: str | None) -> str:
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = "utf-8"
    return body.decode(charset or "utf-8", errors="replace")


async def _probe_tcp(check: Check, outcome: _Outcome) -> None:
    host, port = _target(check)
    outcome.connection = await _connect(host, port)


async def _probe_tls(check: Check, context: ssl.SSLContext, outcome: _Outcome) -> None:
    host, port = _target(check)
    outcome.tls_peer = (host, port)
    outcome.connection = await _connect(host, port, ssl_context=context)
    outcome.tls_expires_at = _peer_not_after(outcome.connection.transport.get_extra_info("ssl_object"))


def _target(check: Check) -> tuple[str, int]:
    try:
        return split_host_port(check.target)
    except ValueError:
        raise _BadCheck("invalid target") from None


async def _close(connection: _Connection, deadline: float) -> None:
    """Close politely (TLS: send close_notify and wait a moment for the peer's), never past the deadline."""
    loop = asyncio.get_running_loop()
    try:
        connection.close()
        async with asyncio.timeout_at(min(deadline, loop.time() + CLOSE_GRACE_SECONDS)):
            await connection.wait_closed()
    except Exception:  # noqa: BLE001 - a peer that does not close nicely is no longer our concern
        connection.transport.abort()
    except BaseException:
        connection.transport.abort()
        raise


async def _read_not_after(host: str, port: int, deadline: float) -> datetime | None:
    """The expiry of the certificate at host:port, read with a handshake that verifies nothing."""
    connection = None
    try:
        async with asyncio.timeout_at(deadline):
            connection = await _connect(host, port, ssl_context=_reading_context())
            return _peer_not_after(connection.transport.get_extra_info("ssl_object"))
    except Exception:  # noqa: BLE001 - best effort: the probe's reason is already known
        return None
    finally:
        if connection is not None:
            connection.transport.abort()


# --- classifying failures -------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, the exceptions it was raised from or wraps, and the members of exception groups among them."""
    seen: list[BaseException] = []
    queue: list[BaseException | None] = [exc]
    while queue:
        current = queue.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            queue.extend(current.exceptions)
        # some libraries re-raise `from None`, keeping the original as an argument
        queue.extend(arg for arg in current.args if isinstance(arg, BaseException))
        queue.append(current.__cause__)
        if current.__cause__ is None and not current.__suppress_context__:
            queue.append(current.__context__)
    return seen


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 3] + "..."


def _verify_reason(exc: ssl.SSLCertVerificationError) -> str:
    if exc.verify_code == _CERT_HAS_EXPIRED:
        return "certificate expired"
    detail = _VERIFY_DETAILS.get(exc.verify_code) or (exc.verify_message or "verification failed").lower()
    return f"tls error: {_short(detail)}"


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    detail = reason.lower().replace("_", " ") if reason else "handshake failed"
    return f"tls error: {_short(detail)}"


def classify(exc: BaseException) -> tuple[str, bool]:
    """The reason for a failed probe's exception, and whether it was a TLS failure."""
    chain = _chain(exc)

    def first(*types: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    if (found := first(ssl.SSLCertVerificationError)) is not None:
        return _verify_reason(found), True  # type: ignore[arg-type]
    if (found := first(ssl.SSLError)) is not None:
        return _ssl_reason(found), True  # type: ignore[arg-type]
    if first(socket.gaierror) is not None:
        return "dns", False
    if first(TimeoutError) is not None:
        return "timeout", False
    if first(ConnectionRefusedError) is not None:
        return "refused", False
    if first(ConnectionResetError, ConnectionAbortedError, BrokenPipeError) is not None:
        return "reset", False
    if any(isinstance(e, OSError) and e.errno in _UNREACHABLE for e in chain):
        return "unreachable", False
    if first(h11.ProtocolError, zlib.error) is not None:
        return "invalid response", False  # not HTTP, malformed, truncated or undecodable
    oserror = next((e for e in chain if isinstance(e, OSError) and e.errno), None)
    if oserror is not None:
        return f"error: {_short(oserror.strerror or errno.errorcode.get(oserror.errno, 'OSError')).lower()}", False
    return f"error: {type(chain[-1]).__name__}", False  # the innermost exception says the most


# --- many checks ----------------------------------------------------------------------------

LOOP_LAG_SECONDS = 0.002  # a new probe starts only after a turn of the event loop at most this long
MAX_WAIT_TURNS = 50  # ... or after this many longer turns


class Admission:
    """Lets probes start: at most `concurrency` at a time, one per turn of the event loop, and only
    while the loop keeps up (a turn of at most LOOP_LAG_SECONDS).

    A probe's duration is the target's only if the loop serves the probe as soon as the target
    answers. When targets answer at once, the probes in flight are bounded by CPU, not by the
    targets, and a fixed concurrency of 100 kept every callback queueing behind a hundred others:
    loopback targets recorded 200 ms. Pacing the starts keeps the loop's turns short (the probes
    in flight find their own level, a handful when targets answer at once, up to `concurrency`
    when they are slow), for the same throughput.
    """

    def __init__(self, concurrency: int, *, lag_seconds: float = LOOP_LAG_SECONDS) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.lag_seconds = lag_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._turn = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            async with self._turn:  # one starter at a time: the starts are spread over the loop's turns
                loop = asyncio.get_running_loop()
                # Bounded, so that a machine too busy to ever turn the loop that fast still probes.
                for _turn in range(MAX_WAIT_TURNS):
                    before = loop.time()
                    await asyncio.sleep(0)  # one turn of the loop: every callback that was ready runs
                    if loop.time() - before <= self.lag_seconds:
                        break
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(self, *exc_info) -> None:
        self._slots.release()


async def probe_all(
    checks: Sequence[Check],
    *,
    concurrency: int = 100,
    client: HttpClient | None = None,
    ca_file: str | None = None,
) -> list[ProbeResult]:
    """Probe every check, at most `concurrency` at a time and no faster than the event loop keeps
    up (Admission); results in the order of `checks`.

    A slow or hanging target holds one slot for at most its own timeout. Without `client`, one
    is made (make_client(ca_file)) and closed afterwards; `ca_file` also applies to tls checks.
    """
    admission = Admission(concurrency)
    own_client = client is None
    shared = make_client(ca_file) if client is None else client

    async def one(check: Check) -> ProbeResult:
        async with admission:
            return await probe(check, client=shared, ca_file=ca_file)

    try:
        return list(await asyncio.gather(*(one(check) for check in checks)))
    finally:
        if own_client:
            await shared.aclose()
