"""The probes against real loopback servers (tests/servers.py): HTTP, HTTPS, TCP and TLS, every failure class."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from dcops.health.probes import (
    Check, ProbeResult, make_client, probe, probe_all, split_host_port, status_matches,
)

from servers import Close, Flap, Garbage, Hang, Reset, Respond, http_server, make_pki, refused_port, tcp_listener

BODY = b"<html><title>Portail des subventions</title><p>service nominal</p></html>\n"
ROUTES = {
    "/": Respond(200, BODY),
    "/down": Respond(503, b"maintenance\n"),
    "/teapot": Respond(418, b"short and stout\n"),
    "/moved": Respond(302, b"", headers=(("Location", "/elsewhere"),)),
    "/elsewhere": Respond(200, BODY),
    "/slow": Respond(200, BODY, delay=0.3),
    "/slower": Respond(200, BODY, delay=5.0),
    "/big": Respond(200, b"a" * (2 * 1024 * 1024) + b"needle"),
    "/latin1": Respond(200, "état: opérationnel".encode("latin-1"),
                       headers=(("Content-Type", "text/plain; charset=iso-8859-1"),)),
    "/hang": Hang(),
    "/reset": Reset(),
    "/close": Close(),
    "/garbage": Garbage(),
    "/flap": Flap(),
}


def check(kind: str, target: str, **settings) -> Check:
    return Check(endpoint_id=7, programme="subventions", name="portail", kind=kind, target=target, **settings)


def run_probe(one: Check, *, ca_file=None, now=None) -> ProbeResult:
    async def go() -> ProbeResult:
        async with make_client(ca_file=ca_file) as client:
            extra = {"now": now} if now else {}
            return await probe(one, client=client, ca_file=ca_file, **extra)

    return asyncio.run(go())


def assert_failed(result: ProbeResult, reason: str) -> None:
    assert (result.success, result.reason) == (False, reason), result


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def ca(pki) -> str:
    return str(pki.ca_file)


@pytest.fixture(scope="module")
def web():
    with http_server(ROUTES) as server:
        yield server


@pytest.fixture(scope="module")
def https(pki):
    """HTTPS servers with the valid, expired, self-signed and wrong-name certificates."""
    with http_server(ROUTES, tls=pki.valid) as valid, http_server(ROUTES, tls=pki.expired) as expired, \
            http_server(ROUTES, tls=pki.self_signed) as self_signed, http_server(ROUTES, tls=pki.wrong_name) as wrong:
        yield {"valid": valid, "expired": expired, "self_signed": self_signed, "wrong_name": wrong}


@pytest.fixture
def no_dns(monkeypatch):
    """Resolving any name fails (EAI_NONAME) without asking a resolver; numeric loopback still works."""
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "::1", None):
            asked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# --- expected status ------------------------------------------------------------------------


@pytest.mark.parametrize("code, expect, matches", [
    (200, "200-399", True), (399, "200-399", True), (400, "200-399", False), (199, "200-399", False),
    (301, "200-299,301", True), (302, "200-299,301", False), (204, "200-299,301", True),
    (418, " 200 - 204 , 418 ", True), (503, "503", True), (500, "503", False),
])
def test_status_matches(code, expect, matches):
    assert status_matches(code, expect) is matches


@pytest.mark.parametrize("expect", ["", "2xx", "200-", "-200", "299-200", "200;301", "20", "2000"])
def test_status_matches_refuses_malformed_expectations(expect):
    with pytest.raises(ValueError):
        status_matches(200, expect)


# --- HTTP -----------------------------------------------------------------------------------


def test_up_with_body_match(web):
    before = datetime.now(timezone.utc)
    result = run_probe(check("http", web.url("/"), body_contains="service nominal"))
    assert result.success and result.reason == "" and result.status_code == 200
    assert result.endpoint_id == 7 and result.tls_expires_at is None
    assert result.at.tzinfo is not None and before <= result.at <= datetime.now(timezone.utc)
    assert 0 < result.duration_seconds < 1


def test_at_comes_from_the_injected_clock(web):
    fixed = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert run_probe(check("http", web.url("/")), now=lambda: fixed).at == fixed


def test_status_503(web):
    result = run_probe(check("http", web.url("/down")))
    assert_failed(result, "status 503")
    assert result.status_code == 503


def test_expect_status_ranges(web):
    assert run_probe(check("http", web.url("/down"), expect_status="500-599")).success
    assert run_probe(check("http", web.url("/teapot"), expect_status="200-299,418")).success
    assert_failed(run_probe(check("http", web.url("/"), expect_status="201-299,418")), "status 200")
    assert_failed(run_probe(check("http", web.url("/missing"))), "status 404")


def test_redirects_are_not_followed(web):
    before = web.hits["/elsewhere"]
    result = run_probe(check("http", web.url("/moved")))
    assert result.success and result.status_code == 302
    assert_failed(run_probe(check("http", web.url("/moved"), expect_status="200")), "status 302")
    assert web.hits["/elsewhere"] == before


def test_body_mismatch(web):
    result = run_probe(check("http", web.url("/"), body_contains="Erreur interne"))
    assert_failed(result, "body mismatch")
    assert result.status_code == 200


def test_status_is_judged_before_the_body(web):
    assert_failed(run_probe(check("http", web.url("/down"), body_contains="maintenance")), "status 503")


def test_body_is_read_up_to_one_mebibyte_only(web):
    assert run_probe(check("http", web.url("/big"), body_contains="aaaa")).success
    assert_failed(run_probe(check("http", web.url("/big"), body_contains="needle")), "body mismatch")


def test_body_is_decoded_with_its_charset(web):
    assert run_probe(check("http", web.url("/latin1"), body_contains="opérationnel")).success


def test_http_refused():
    with refused_port() as port:
        assert_failed(run_probe(check("http", f"http://127.0.0.1:{port}/")), "refused")


def test_slow_within_timeout(web):
    result = run_probe(check("http", web.url("/slow"), timeout_seconds=2))
    assert result.success and 0.3 <= result.duration_seconds < 1.5


def test_slow_beyond_timeout_is_a_timeout_of_about_the_timeout(web):
    started = time.monotonic()
    result = run_probe(check("http", web.url("/slower"), timeout_seconds=0.5))
    assert_failed(result, "timeout")
    assert 0.5 <= result.duration_seconds < 0.9
    assert time.monotonic() - started < 1.5


def test_hanging_is_a_timeout(web):
    result = run_probe(check("http", web.url("/hang"), timeout_seconds=0.5))
    assert_failed(result, "timeout")
    assert 0.5 <= result.duration_seconds < 0.9


def test_reset_before_responding(web):
    assert_failed(run_probe(check("http", web.url("/reset"))), "reset")


def test_closed_without_response_counts_as_reset(web):
    assert_failed(run_probe(check("http", web.url("/close"))), "reset")


def test_garbage_is_an_invalid_response(web):
    assert_failed(run_probe(check("http", web.url("/garbage"))), "invalid response")


def test_flapping(web):
    async def go():
        async with make_client() as client:
            return [await probe(check("http", web.url("/flap")), client=client) for _ in range(4)]

    assert [(r.success, r.reason) for r in asyncio.run(go())] == [
        (True, ""), (False, "status 503"), (True, ""), (False, "status 503")]


@pytest.mark.parametrize("target, expect_status, reason", [
    ("ftp://127.0.0.1/", "200", "error: unsupported URL"),
    ("http://", "200", "error: unsupported URL"),
    ("http://127.0.0.1:99999/", "200", "error: invalid URL"),
    ("http://127.0.0.1:1/", "2xx", "error: invalid expect_status"),
])
def test_bad_http_checks_become_reasons(target, expect_status, reason):
    assert_failed(run_probe(check("http", target, expect_status=expect_status)), reason)


def test_unknown_kind_becomes_a_reason():
    assert_failed(run_probe(check("icmp", "127.0.0.1")), "error: unknown kind 'icmp'")


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_unusable_timeout_becomes_a_reason(web, timeout):
    assert_failed(run_probe(check("http", web.url("/"), timeout_seconds=timeout)), "error: invalid timeout")


def test_dns_failure_without_network(no_dns):
    assert_failed(run_probe(check("http", "http://portail.example.invalid/")), "dns")
    assert_failed(run_probe(check("tcp", "portail.example.invalid:443")), "dns")
    assert_failed(run_probe(check("tls", "portail.example.invalid:443")), "dns")
    assert set(no_dns) == {"portail.example.invalid"}


# --- TCP ------------------------------------------------------------------------------------


def test_tcp_up():
    with tcp_listener() as port:
        result = run_probe(check("tcp", f"127.0.0.1:{port}"))
    assert result.success and result.reason == "" and result.status_code is None and result.tls_expires_at is None


def test_tcp_refused():
    with refused_port() as port:
        assert_failed(run_probe(check("tcp", f"127.0.0.1:{port}")), "refused")


@pytest.mark.parametrize("target, parsed", [
    ("127.0.0.1:443", ("127.0.0.1", 443)), ("[::1]:8443", ("::1", 8443)), ("db.intra:5432", ("db.intra", 5432)),
    ("::1:443", ("::1", 443)),  # as the inventory reads it: the last colon starts the port
])
def test_targets(target, parsed):
    assert split_host_port(target) == parsed


@pytest.mark.parametrize("target", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "127.0.0.1:0",
                                    "[::1]443", "[::1", ":80", "127.0.0.1:٤٤٣"])
def test_bad_targets_become_reasons(target):
    with pytest.raises(ValueError):
        split_host_port(target)
    assert_failed(run_probe(check("tcp", target)), "error: invalid target")
    assert_failed(run_probe(check("tls", target)), "error: invalid target")


# --- TLS ------------------------------------------------------------------------------------


def test_tls_valid_with_the_ca(https, pki, ca):
    result = run_probe(check("tls", https["valid"].address), ca_file=ca)
    assert result.success and result.reason == ""
    assert result.tls_expires_at == pki.valid.not_after


def test_tls_without_the_ca_is_an_unknown_issuer_and_still_reads_the_expiry(https, pki):
    result = run_probe(check("tls", https["valid"].address))
    assert_failed(result, "tls error: unknown issuer")
    assert result.tls_expires_at == pki.valid.not_after


def test_tls_self_signed(https, pki, ca):
    result = run_probe(check("tls", https["self_signed"].address), ca_file=ca)
    assert_failed(result, "tls error: self-signed certificate")
    assert result.tls_expires_at == pki.self_signed.not_after


def test_tls_expired(https, pki, ca):
    result = run_probe(check("tls", https["expired"].address), ca_file=ca)
    assert_failed(result, "certificate expired")
    assert result.tls_expires_at == pki.expired.not_after
    assert result.tls_expires_at < datetime.now(timezone.utc)


def test_tls_wrong_name(https, pki, ca):
    result = run_probe(check("tls", https["wrong_name"].address), ca_file=ca)
    assert_failed(result, "tls error: hostname mismatch")
    assert result.tls_expires_at == pki.wrong_name.not_after


def test_tls_certificate_past_its_end_by_the_probes_clock_is_expired(https, pki, ca):
    later = pki.valid.not_after + timedelta(seconds=1)
    result = run_probe(check("tls", https["valid"].address), ca_file=ca, now=lambda: later)
    assert_failed(result, "certificate expired")


def test_tls_refused():
    with refused_port() as port:
        result = run_probe(check("tls", f"127.0.0.1:{port}"))
    assert_failed(result, "refused")
    assert result.tls_expires_at is None


def test_tls_to_a_server_that_never_handshakes_is_a_timeout(web):
    result = run_probe(check("tls", web.address, timeout_seconds=0.5))  # plain HTTP: waits for a request
    assert_failed(result, "timeout")
    assert result.tls_expires_at is None and result.duration_seconds < 0.9


# --- HTTPS ----------------------------------------------------------------------------------


def test_https_valid(https, pki, ca):
    result = run_probe(check("http", https["valid"].url("/"), body_contains="service nominal"), ca_file=ca)
    assert result.success and result.status_code == 200
    assert result.tls_expires_at == pki.valid.not_after


def test_https_status_failure_still_records_the_expiry(https, pki, ca):
    result = run_probe(check("http", https["valid"].url("/down")), ca_file=ca)
    assert_failed(result, "status 503")
    assert result.tls_expires_at == pki.valid.not_after


def test_https_expired(https, pki, ca):
    result = run_probe(check("http", https["expired"].url("/")), ca_file=ca)
    assert_failed(result, "certificate expired")
    assert result.tls_expires_at == pki.expired.not_after and result.status_code is None


def test_https_self_signed(https, pki, ca):
    result = run_probe(check("http", https["self_signed"].url("/")), ca_file=ca)
    assert_failed(result, "tls error: self-signed certificate")
    assert result.tls_expires_at == pki.self_signed.not_after


def test_https_without_the_ca(https, pki):
    result = run_probe(check("http", https["valid"].url("/")))
    assert_failed(result, "tls error: unknown issuer")
    assert result.tls_expires_at == pki.valid.not_after


def test_https_hanging_is_a_timeout(https, ca):
    result = run_probe(check("http", https["valid"].url("/hang"), timeout_seconds=0.5), ca_file=ca)
    assert_failed(result, "timeout")
    assert 0.5 <= result.duration_seconds < 0.9


def test_https_to_a_plain_http_server_is_a_timeout(web):
    # The plain server waits for a request line that never comes: the handshake cannot finish.
    assert_failed(run_probe(check("http", f"https://{web.address}/", timeout_seconds=0.5)), "timeout")


# --- no connection outlives its probe ------------------------------------------------------


def wait_for_no_connections(server, limit: float = 3.0) -> bool:
    deadline = time.monotonic() + limit
    while server.open and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.open == 0


@pytest.mark.parametrize("kind, scheme, path, tls", [
    ("http", "http", "/hang", False),  # timed out waiting for the response
    ("http", "https", "/hang", True),  # the same over TLS
    ("http", "https", "/", False),  # timed out in the TLS handshake (httpcore leaves that socket open)
    ("tls", "", "", False),  # the same with the tls check
])
def test_timed_out_probes_close_their_connections(pki, ca, kind, scheme, path, tls):
    with http_server({"/hang": Hang()}, tls=pki.valid if tls else None) as server:
        target = f"{scheme}://{server.address}{path}" if kind == "http" else server.address
        result = run_probe(check(kind, target, timeout_seconds=0.3), ca_file=ca)
        assert_failed(result, "timeout")
        assert wait_for_no_connections(server), f"{server.open} connection(s) left open"


# --- many at once ---------------------------------------------------------------------------


def test_probe_all_hanging_targets_do_not_hold_up_the_rest(web):
    checks = [
        check("http", web.url("/hang" if i % 10 == 0 else "/"), timeout_seconds=1, body_contains="nominal")
        for i in range(200)
    ]
    checks = [Check(**{**c.__dict__, "endpoint_id": i}) for i, c in enumerate(checks)]
    started = time.monotonic()
    results = asyncio.run(probe_all(checks, concurrency=50))
    elapsed = time.monotonic() - started
    assert elapsed < 6
    assert [r.endpoint_id for r in results] == list(range(200))
    hanging = [r for r in results if r.endpoint_id % 10 == 0]
    fast = [r for r in results if r.endpoint_id % 10 != 0]
    assert len(hanging) == 20 and {r.reason for r in hanging} == {"timeout"}
    assert len(fast) == 180 and all(r.success for r in fast), [r for r in fast if not r.success][:3]
    assert max(r.duration_seconds for r in hanging) < 1.5


def test_probe_all_records_what_each_target_took_not_the_wait_for_the_loop():
    # 400 targets that answer at once and 8 that take 200 ms, probed at the default concurrency:
    # the round lasts as long as the prober's CPU needs, and a probe that counted its wait for the
    # event loop (or for a slot) would record a good share of it (about half, for a slot). The
    # bounds leave room for a loaded machine: on a busy CI host a loopback answer took 65 ms of
    # a 0.6 s round, still an order below what a counted wait records.
    with http_server({"/": Respond(200), "/slow": Respond(200, delay=0.2)}) as server:
        checks = [Check(endpoint_id=i, programme=f"p{i}", name="web", kind="http", timeout_seconds=5,
                        target=server.url("/slow" if i % 50 == 0 else "/")) for i in range(400)]
        started = time.monotonic()
        results = asyncio.run(probe_all(checks))
        round_seconds = time.monotonic() - started
    assert all(r.success for r in results), [r for r in results if not r.success][:3]
    slow = sorted(r.duration_seconds for r in results if r.endpoint_id % 50 == 0)
    fast = sorted(r.duration_seconds for r in results if r.endpoint_id % 50 != 0)
    assert len(slow) == 8 and slow[0] >= 0.2
    assert round_seconds > 0.2
    assert fast[len(fast) // 2] < round_seconds / 4, (fast[len(fast) // 2], round_seconds)
    assert fast[len(fast) // 2] < slow[0] / 2, (fast[len(fast) // 2], slow[0])


def test_probe_all_mixes_kinds_and_leaves_a_given_client_open(web, https, ca):
    with tcp_listener() as port, refused_port() as closed:
        checks = [
            check("http", web.url("/")),
            check("tcp", f"127.0.0.1:{port}"),
            check("tls", https["valid"].address),
            check("tcp", f"127.0.0.1:{closed}"),
        ]

        async def go():
            async with make_client(ca_file=ca) as client:
                results = await probe_all(checks, concurrency=2, client=client, ca_file=ca)
                assert not client.is_closed
                return results

        results = asyncio.run(go())
    assert [(r.success, r.reason) for r in results] == [(True, ""), (True, ""), (True, ""), (False, "refused")]


def test_probe_all_with_nothing_to_do():
    assert asyncio.run(probe_all([])) == []


def test_cancelling_a_probe_cancels_it(web):
    async def go():
        async with make_client() as client:
            task = asyncio.create_task(probe(check("http", web.url("/hang"), timeout_seconds=10), client=client))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    started = time.monotonic()
    asyncio.run(go())
    assert time.monotonic() - started < 2
