"""Loopback servers for the prober's tests: HTTP(S) with a behaviour per path, TCP, and a test PKI.

    pki = make_pki(tmp_path)                       # CA, valid / expired / self-signed / wrong-name certificates
    with http_server({"/": Respond(200, b"hello"), "/hang": Hang()}) as server:
        server.url("/")                            # http://127.0.0.1:<port>/
    with http_server(routes, tls=pki.valid) as server:
        server.url("/")                            # https://127.0.0.1:<port>/ (also a tls check target)
    with tcp_listener() as port: ...               # accepts connections
    with refused_port() as port: ...               # nothing listens there: connecting is refused

Everything listens on 127.0.0.1 only, on ports the OS picks; every server stops (and its
thread ends) when its `with` block does, and no connection is held longer than HOLD_LIMIT.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
HOLD_LIMIT = 30.0  # seconds: the longest any server keeps a connection (hanging, slow, half-sent requests)
START_STOP_LIMIT = 10.0


# --- behaviours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """Answer with `status` and `body`, after `delay` seconds."""

    status: int = 200
    body: bytes = b"ok\n"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Read the request, never answer (until the client closes, the server stops, or HOLD_LIMIT)."""


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection (RST, no response)."""


@dataclass(frozen=True)
class Close:
    """Read the request, then close the connection cleanly (FIN, no response)."""


@dataclass(frozen=True)
class Garbage:
    """Read the request, answer with bytes that are not HTTP, close."""

    data: bytes = b"\x00\x17 this is not HTTP at all \xff\xfe\r\n\r\n"


@dataclass(frozen=True)
class Flap:
    """Each request gets the next of `answers`, round and round (200, 503, 200, ...)."""

    answers: tuple[Respond, ...] = (Respond(200), Respond(503, b"down\n"))


Behaviour = Respond | Hang | Reset | Close | Garbage | Flap
NOT_FOUND = Respond(404, b"not found\n")


# --- an event loop in a thread --------------------------------------------------------------


class _LoopThread:
    """An asyncio loop running in a daemon thread, for servers the tests start and stop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, context: None)  # failed handshakes are expected here
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-server", daemon=True)
        self._thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(START_STOP_LIMIT)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(START_STOP_LIMIT)
        if self._thread.is_alive():
            raise RuntimeError("the test server's thread did not stop")
        self.loop.close()


# --- HTTP(S) --------------------------------------------------------------------------------


@dataclass
class HttpServer:
    """A running test server; `hits` counts requests per path, `open` the connections open now
    (a connection counts until the client closes it, or the server answers and closes it)."""

    port: int
    scheme: str
    routes: dict[str, Behaviour]
    hits: Counter = field(default_factory=Counter)
    open: int = 0

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{HOST}:{self.port}{path}"


def _linger_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _response(answer: Respond) -> bytes:
    reason = {200: "OK", 302: "Found", 404: "Not Found", 503: "Service Unavailable"}.get(answer.status, "Status")
    head = [f"HTTP/1.1 {answer.status} {reason}", f"Content-Length: {len(answer.body)}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in answer.headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body


class _Handler:
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.tasks: set[asyncio.Task] = set()
        self.writers: list[asyncio.StreamWriter] = []  # every connection, to drop any left when stopping
        self.flaps: Counter = Counter()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        self.writers.append(writer)
        self.server.open += 1
        reset = False
        try:
            async with asyncio.timeout(HOLD_LIMIT):
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1") if b" " in head else "/"
                self.server.hits[path] += 1
                behaviour = self.server.routes.get(path, NOT_FOUND)
                if isinstance(behaviour, Flap):
                    behaviour = behaviour.answers[self.flaps[path] % len(behaviour.answers)]
                    self.flaps[path] += 1
                if isinstance(behaviour, Respond):
                    await asyncio.sleep(behaviour.delay)
                    writer.write(_response(behaviour))
                    await writer.drain()
                elif isinstance(behaviour, Hang):
                    while await reader.read(65536):  # until the client gives up (or HOLD_LIMIT)
                        pass
                elif isinstance(behaviour, Reset):
                    reset = True
                    _linger_reset(writer)
                elif isinstance(behaviour, Garbage):
                    writer.write(behaviour.data)
                    await writer.drain()
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, sent nonsense or held on too long
        finally:
            self.server.open -= 1
            self.tasks.discard(task)
            if not reset:
                writer.close()  # TLS: close_notify; the transport is dropped at the latest when the server stops

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.transport.abort()


@dataclass(frozen=True)
class ServerCert:
    """A certificate and its key, as PEM files, and the certificate's not-after."""

    cert: Path
    key: Path
    not_after: dt.datetime


def server_context(cert: ServerCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    return context


@contextmanager
def http_server(routes: Mapping[str, Behaviour] | None = None, *, tls: ServerCert | None = None) -> Iterator[HttpServer]:
    """An HTTP (or, with `tls`, HTTPS) server on 127.0.0.1; unknown paths get 404."""
    runner = _LoopThread()
    server = HttpServer(port=0, scheme="https" if tls else "http", routes=dict(routes or {}))
    handler = _Handler(server)
    context = server_context(tls) if tls else None

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handler, HOST, 0, ssl=context, backlog=1024,
                                          ssl_handshake_timeout=HOLD_LIMIT if context else None)

    async def stop(listener: asyncio.Server) -> None:
        listener.close()
        await handler.stop()
        await listener.wait_closed()

    try:
        listener = runner.run(start())
        server.port = listener.sockets[0].getsockname()[1]
        try:
            yield server
        finally:
            runner.run(stop(listener))
    finally:
        runner.stop()


# --- plain TCP ------------------------------------------------------------------------------


@contextmanager
def tcp_listener() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (and closes each once accepted); yields the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(128)
    listener.settimeout(0.1)
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            connection.close()

    thread = threading.Thread(target=accept, name="test-tcp-listener", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(START_STOP_LIMIT)
        listener.close()


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 with nothing listening: it is bound (so nobody else takes it) but not
    listening, and connecting to it is refused."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind((HOST, 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()


# --- a test PKI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path  # the CA certificate (PEM), to pass as ca_file
    valid: ServerCert  # for 127.0.0.1, signed by the CA, valid for 30 days
    expired: ServerCert  # for 127.0.0.1, signed by the CA, expired yesterday
    self_signed: ServerCert  # for 127.0.0.1, signed by itself
    wrong_name: ServerCert  # signed by the CA, for another name (not 127.0.0.1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dcops tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(*, subject: str, key, issuer: x509.Name | None, issuer_key, not_before: dt.datetime,
                 not_after: dt.datetime, ca: bool, san: x509.GeneralName | None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer or _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, stem: str, certificate: x509.Certificate, key) -> ServerCert:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ServerCert(cert_path, key_path, certificate.not_valid_after_utc)


def make_pki(directory: Path) -> Pki:
    """Generate the test CA and server certificates into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    day = dt.timedelta(days=1)
    loopback = x509.IPAddress(ipaddress.ip_address(HOST))

    ca_key = _key()
    ca = _certificate(subject="dcops test CA", key=ca_key, issuer=None, issuer_key=ca_key,
                      not_before=now - day, not_after=now + 365 * day, ca=True, san=None)
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(stem: str, *, not_before: dt.datetime, not_after: dt.datetime, san=loopback, self_signed=False):
        key = _key()
        certificate = _certificate(
            subject=stem, key=key, issuer=None if self_signed else ca.subject,
            issuer_key=key if self_signed else ca_key, not_before=not_before, not_after=not_after,
            ca=False, san=san,
        )
        return _write(directory, stem, certificate, key)

    return Pki(
        ca_file=ca_file,
        valid=leaf("valid", not_before=now - day, not_after=now + 30 * day),
        expired=leaf("expired", not_before=now - 60 * day, not_after=now - day),
        self_signed=leaf("self-signed", not_before=now - day, not_after=now + 30 * day, self_signed=True),
        wrong_name=leaf("wrong-name", not_before=now - day, not_after=now + 30 * day,
                        san=x509.DNSName("elsewhere.invalid")),
    )
