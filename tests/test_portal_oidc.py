"""Signing in to the portal through a real OpenID Connect provider (npm's oidc-provider) on loopback, over HTTP."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from dcops import accounts
from dcops.db import open_database, upgrade
from dcops.errors import ConfigError
from dcops.inventory.service import load_directory
from dcops.portal import oidc
from dcops.portal.app import create_app
from dcops.settings import Settings

import inventories
import requests_fixtures

pytestmark = pytest.mark.slow

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "dcops-portal"
CLIENT_SECRET = "test-client-secret-of-the-portal"
START_LIMIT_S = 20.0

# The provider's people (tests/oidc/provider.mjs has the same by default): the tests write them to
# its ACCOUNTS_FILE, which it reads at every sign-in.
PEOPLE = {
    "ravi": {"preferred_username": "ravi", "name": "Ravi Phommachanh", "email": "ravi@mtc.example.la",
             "organization": ["mtc"], "dcops_roles": ["requester", "viewer"]},
    "olga": {"preferred_username": "Olga", "name": "Olga Sayavong", "email": "olga@dc.example.la",
             "organization": [], "dcops_roles": ["operator"]},
    "nora": {"preferred_username": "nora", "name": "Nora Keo", "email": "nora@moh.example.la",
             "organization": ["moh"], "dcops_roles": []},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the provider and the portal ----------------------------------------------------------------

class Provider:
    """The node provider as a subprocess; stopped by its PID."""

    def __init__(self, folder: Path, portal_port: int, *, claims_only_in_userinfo: bool = False):
        node = shutil.which("node")
        if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            pytest.fail("the OpenID Connect tests need node and tests/oidc/node_modules: "
                        "npm ci --prefix tests/oidc --no-audit --no-fund (.ci/run does it)", pytrace=False)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.portal_port = portal_port
        self.accounts_file = folder / "accounts.json"
        self.set_people(PEOPLE)
        self.log = folder / "provider.log"
        env = {**os.environ, "PORT": str(self.port), "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET,
               "REDIRECT_URI": f"http://127.0.0.1:{portal_port}{oidc.CALLBACK_PATH}",
               "ACCOUNTS_FILE": str(self.accounts_file),
               "CLAIMS_ONLY_IN_USERINFO": "1" if claims_only_in_userinfo else "0"}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([node, str(PROVIDER_DIR / "provider.mjs")], cwd=PROVIDER_DIR, env=env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the OpenID Connect provider did not start:\n{self.log.read_text(errors='replace')}")

    def set_people(self, people: dict) -> None:
        self.accounts_file.write_text(json.dumps(people), encoding="utf-8")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # its own PID, as Popen knows it
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextlib.contextmanager
def provider_running(folder: Path, portal_port: int, **options):
    provider = Provider(folder, portal_port, **options)
    try:
        yield provider
    finally:
        provider.stop()


@contextlib.contextmanager
def portal_running(app, port: int):
    """The portal under uvicorn in a thread, on 127.0.0.1:port, until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="portal", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_LIMIT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert server.started, "the portal did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def portal_settings(folder: Path, provider: Provider, **env) -> Settings:
    secret = folder / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    settings = Settings.from_env({
        "DCOPS_DATABASE_URL": f"sqlite:///{folder / 'dcops.db'}", "DCOPS_HOME": str(folder),
        "DCOPS_OIDC_ISSUER": provider.issuer, "DCOPS_OIDC_CLIENT_ID": CLIENT_ID,
        "DCOPS_OIDC_CLIENT_SECRET_FILE": str(secret), **env,
    })
    upgrade(settings)
    return settings


def loaded_database(settings: Settings, folder: Path):
    database = open_database(settings)
    load_directory(database, inventories.write(folder / "inv", requests_fixtures.inventory()))
    return database


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    portal_port = free_port()
    with provider_running(tmp_path_factory.mktemp("provider"), portal_port) as running:
        yield running


class Portal:
    def __init__(self, url: str, database, provider: Provider):
        self.url = url
        self.database = database
        self.provider = provider

    def rows(self, query: str, **params) -> list:
        with self.database.transaction() as conn:
            return conn.execute(sa.text(query), params).all()

    def audit(self, action: str) -> list[dict]:
        found = []
        for actor, key, after in self.rows("SELECT actor, object_key, after FROM audit_entry WHERE action = :a "
                                           "ORDER BY id", a=action):
            found.append({"actor": actor, "key": key, **(json.loads(after) if isinstance(after, str) else after)})
        return found


@pytest.fixture
def portal(provider, tmp_path):
    provider.set_people(PEOPLE)
    settings = portal_settings(tmp_path, provider)
    database = loaded_database(settings, tmp_path)
    try:
        with portal_running(create_app(settings, database), provider.portal_port) as url:
            yield Portal(url, database, provider)
    finally:
        database.dispose()


# --- a browser, by hand -------------------------------------------------------------------------

def browser() -> httpx.Client:
    """A new browser: its own cookies (the provider's login session too), redirects followed by hand."""
    return httpx.Client(follow_redirects=False, timeout=15)


def _form(page: httpx.Response) -> tuple[str, dict[str, str]]:
    """The provider's page's form: where it posts, and its hidden fields."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert action, f"no form on the provider's page:\n{page.text[:2000]}"
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return urljoin(str(page.url), unescape(action.group(1))), hidden


def to_callback(client: httpx.Client, portal: Portal, login: str, *, next: str = "/") -> str:
    """From the portal's OIDC button through the provider's login and consent pages to the callback
    address the provider sends the browser back to (not yet followed)."""
    start = client.get(f"{portal.url}{oidc.START_PATH}", params={"next": next})
    assert start.status_code == 303, start.text
    response = start
    for _ in range(20):
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(f"{portal.url}{oidc.CALLBACK_PATH}"):
            return location
        assert location.startswith(portal.provider.issuer), location
        response = client.get(location)
        while response.status_code == 200:  # a page of the provider's: log in, then consent
            action, fields = _form(response)
            if fields.get("prompt") == "login":
                fields.update(login=login, password="any password will do")
            response = client.post(action, data=fields)
        assert response.status_code in (302, 303), f"{response.status_code}: {response.text[:2000]}"
    raise AssertionError("the provider never sent the browser back to the portal")


def sign_in(portal: Portal, login: str, *, next: str = "/") -> tuple[httpx.Client, httpx.Response]:
    client = browser()
    try:
        return client, client.get(to_callback(client, portal, login, next=next))
    except BaseException:
        client.close()
        raise


def session_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("dcops_session="):
            return header
    return None


def with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def flow_of(client: httpx.Client) -> dict:
    value = client.cookies.get(oidc.FLOW_COOKIE)
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def set_flow(client: httpx.Client, flow: dict) -> None:
    packed = base64.urlsafe_b64encode(json.dumps(flow).encode()).decode().rstrip("=")
    client.cookies.delete(oidc.FLOW_COOKIE)
    client.cookies.set(oidc.FLOW_COOKIE, packed, domain="127.0.0.1", path="/")


# --- signing in ---------------------------------------------------------------------------------

def test_the_sign_in_page_offers_the_identity_service(portal):
    with browser() as client:
        page = client.get(f"{portal.url}/signin", params={"next": "/programmes"})
    assert page.status_code == 200
    assert 'href="/signin/oidc?next=/programmes"' in page.text


def test_the_redirect_asks_for_a_code_with_pkce_s256_a_state_and_a_nonce(portal):
    with browser() as client:
        start = client.get(f"{portal.url}{oidc.START_PATH}", params={"next": "https://evil.example/"})
        flow = flow_of(client)
    assert start.status_code == 303
    location = urlsplit(start.headers["location"])
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}" == portal.provider.issuer
    assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{portal.url}{oidc.CALLBACK_PATH}"
    assert query["scope"].split() == ["openid", "profile", "email", "organization"]
    assert query["code_challenge_method"] == "S256"
    verifier_digest = base64.urlsafe_b64encode(hashlib.sha256(flow["verifier"].encode()).digest())
    assert query["code_challenge"] == verifier_digest.decode().rstrip("=")
    assert query["state"] == flow["state"] and len(flow["state"]) >= 32
    assert query["nonce"] == flow["nonce"] and len(flow["nonce"]) >= 20
    assert flow["next"] == "/"  # another site is never where sign-in leads
    cookie = next(h for h in start.headers.get_list("set-cookie") if h.startswith(f"{oidc.FLOW_COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and f"Max-Age={oidc.FLOW_LIFETIME_S}" in cookie


def test_a_requester_of_mtc_lands_signed_in_and_sees_only_mtc(portal):
    client, callback = sign_in(portal, "ravi", next="/programmes")
    with contextlib.closing(client):
        assert callback.status_code == 303, callback.text
        assert callback.headers["location"] == "/programmes"
        cookie = session_cookie(callback)
        assert cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert client.cookies.get(oidc.FLOW_COOKIE) is None  # the flow was checked once, and is gone
        programmes = client.get(f"{portal.url}/programmes")
        assert programmes.status_code == 200
        assert "Digital identity" in programmes.text and "Health information system" not in programmes.text
        home = client.get(f"{portal.url}/")
        assert home.status_code == 200
        assert "Ministry of Technology and Communications" in home.text
        assert "Digital identity" in home.text
        assert "Ministry of Health" not in home.text and "Health information system" not in home.text
    with portal.database.transaction() as conn:
        user = accounts.show_user(conn, "ravi", actor="test")
    assert user["source"] == "oidc" and user["roles"] == ["requester@mtc", "viewer@mtc"]
    assert user["email"] == "ravi@mtc.example.la" and user["display_name"] == "Ravi Phommachanh"
    [(source, password_hash, issuer, subject)] = portal.rows(
        "SELECT source, password_hash, oidc_issuer, oidc_subject FROM portal_user WHERE name = 'ravi'")
    assert (source, password_hash, issuer, subject) == ("oidc", None, portal.provider.issuer, "ravi")
    assert len(portal.rows("SELECT 1 FROM portal_session")) == 1
    [signed_in] = portal.audit("user.signed-in")
    assert signed_in["actor"] == "ravi" and signed_in["via"] == "oidc"
    assert signed_in["issuer"] == portal.provider.issuer


def test_the_oidc_account_cannot_sign_in_with_a_password(portal):
    sign_in(portal, "ravi")[0].close()
    with browser() as client:
        form = client.get(f"{portal.url}/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        local = client.post(f"{portal.url}/signin", data={"name": "ravi", "password": "any password will do",
                                                           "csrf_token": token, "next": "/"},
                            headers={"origin": portal.url})
    assert local.status_code == 401 and "wrong name or password" in local.text
    assert session_cookie(local) is None
    [failed] = portal.audit("user.signin-failed")
    assert failed["reason"] == "signs in through OpenID Connect"


def test_the_name_of_a_local_account_is_not_taken_over(portal):
    accounts.add_user(portal.database, "ravi", grants=frozenset(), password="a local password, long enough",
                      actor="setup")
    client, callback = sign_in(portal, "ravi")
    client.close()
    assert callback.status_code == 409 and "belongs to a local account" in callback.text
    assert session_cookie(callback) is None and portal.rows("SELECT 1 FROM portal_session") == []
    assert portal.rows("SELECT source FROM portal_user WHERE name = 'ravi'") == [("local",)]
    [refused] = portal.audit("user.signin-failed")
    assert refused["reason"] == "name taken"


def test_a_staff_role_is_data_centre_wide_and_the_name_lower_cased(portal):
    client, callback = sign_in(portal, "olga")
    with contextlib.closing(client):
        assert callback.status_code == 303 and session_cookie(callback)
        home = client.get(f"{portal.url}/")
        assert home.status_code == 200 and "Requests to decide" in home.text  # the staff's queue
    with portal.database.transaction() as conn:
        assert accounts.show_user(conn, "olga", actor="test")["roles"] == ["operator"]
    assert portal.rows("SELECT name FROM portal_user WHERE name = 'Olga'") == []


def test_a_second_sign_in_brings_the_providers_new_roles(portal, caplog):
    sign_in(portal, "ravi")[0].close()
    people = json.loads(json.dumps(PEOPLE))
    # Keycloak's organization claim with its attributes is a map keyed by alias; an organisation
    # that is no dcops ministry and a role dcops does not know are ignored, and logged.
    people["ravi"]["organization"] = {"mtc": {"id": "4f1c"}, "MOH": {"id": "9a2b"}, "unicef": {"id": "77aa"}}
    people["ravi"]["dcops_roles"] = ["viewer", "superuser"]
    portal.provider.set_people(people)
    with caplog.at_level(logging.WARNING, logger="dcops.portal.oidc"):
        client, callback = sign_in(portal, "ravi")
    with contextlib.closing(client):
        assert callback.status_code == 303, callback.text
        home = client.get(f"{portal.url}/")
        assert "Ministry of Health" in home.text and "Ministry of Technology and Communications" in home.text
    with portal.database.transaction() as conn:
        assert accounts.show_user(conn, "ravi", actor="test")["roles"] == ["viewer@moh", "viewer@mtc"]
    [changed] = portal.audit("user.roles-changed")
    assert changed["roles"] == ["viewer@moh", "viewer@mtc"] and changed["issuer"] == portal.provider.issuer
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "no dcops role 'superuser'" in logged and "'unicef' is no dcops ministry" in logged
    assert len(portal.rows("SELECT 1 FROM portal_user WHERE name = 'ravi'")) == 1


def test_a_person_with_no_dcops_role_is_refused_and_gets_no_session(portal):
    client, callback = sign_in(portal, "nora")
    with contextlib.closing(client):
        assert callback.status_code == 403
        assert oidc.NO_ROLE in callback.text
        assert session_cookie(callback) is None
        assert client.get(f"{portal.url}/").status_code == 303  # still asked to sign in
    assert portal.rows("SELECT 1 FROM portal_session") == []
    assert portal.rows("SELECT 1 FROM portal_user WHERE name = 'nora'") == []
    [refused] = portal.audit("user.signin-failed")
    assert refused["key"] == "nora" and refused["reason"] == "no dcops role" and refused["via"] == "oidc"


def test_only_unknown_roles_is_no_role(portal):
    people = json.loads(json.dumps(PEOPLE))
    people["nora"]["dcops_roles"] = ["admin", "requester"]
    people["nora"]["organization"] = ["who"]  # a requester, but of no ministry dcops knows
    portal.provider.set_people(people)
    client, callback = sign_in(portal, "nora")
    client.close()
    assert callback.status_code == 403 and oidc.NO_ROLE in callback.text
    assert portal.rows("SELECT 1 FROM portal_session") == []


def test_a_tampered_state_is_refused_and_the_flow_is_checked_once(portal):
    with browser() as client:
        url = to_callback(client, portal, "ravi")
        tampered = client.get(with_query(url, state="x" * 48))
        assert tampered.status_code == 400
        assert session_cookie(tampered) is None
        # The flow's cookie went with that answer: the genuine callback no longer finds it.
        genuine = client.get(url)
        assert genuine.status_code == 400 and session_cookie(genuine) is None
    assert portal.rows("SELECT 1 FROM portal_session") == []
    assert portal.rows("SELECT 1 FROM portal_user") == []  # refused before the claims were asked for


def test_a_callback_in_another_browser_is_refused(portal):
    with browser() as client:
        url = to_callback(client, portal, "ravi")
    with browser() as other:  # no flow cookie: a login CSRF, the attacker's code in the victim's browser
        answer = other.get(url)
    assert answer.status_code == 400 and session_cookie(answer) is None
    assert portal.rows("SELECT 1 FROM portal_session") == []


def test_a_changed_nonce_fails_the_id_token_check(portal):
    with browser() as client:
        url = to_callback(client, portal, "ravi")
        set_flow(client, {**flow_of(client), "nonce": "not-the-nonce-the-provider-signed"})
        answer = client.get(url)
    assert answer.status_code == 403 and "could not be checked" in answer.text
    assert session_cookie(answer) is None and portal.rows("SELECT 1 FROM portal_session") == []


def test_a_wrong_pkce_verifier_fails_the_code_exchange(portal):
    with browser() as client:
        url = to_callback(client, portal, "ravi")
        set_flow(client, {**flow_of(client), "verifier": "v" * 64})
        answer = client.get(url)
    assert answer.status_code == 403 and "could not be checked" in answer.text
    assert session_cookie(answer) is None and portal.rows("SELECT 1 FROM portal_session") == []


def test_a_session_planted_before_sign_in_is_ended_not_signed_into(portal):
    attacker, callback = sign_in(portal, "olga")
    with contextlib.closing(attacker):
        planted = attacker.cookies.get("dcops_session")
        assert planted and callback.status_code == 303
        with browser() as victim:
            victim.cookies.set("dcops_session", planted, domain="127.0.0.1", path="/")
            answer = victim.get(to_callback(victim, portal, "ravi"))
            assert answer.status_code == 303
            assert victim.cookies.get("dcops_session") != planted
        assert attacker.get(f"{portal.url}/").status_code == 303  # signed out, not signed in as ravi
    [(revoked,)] = portal.rows("SELECT COUNT(*) FROM portal_session WHERE revoked_at IS NOT NULL")
    assert revoked == 1
    [closed] = portal.audit("user.signed-out")
    assert closed["actor"] == "olga"


def test_claims_the_provider_gives_only_at_userinfo_are_read_there(tmp_path):
    portal_port = free_port()
    folder = tmp_path / "provider"
    folder.mkdir()
    with provider_running(folder, portal_port, claims_only_in_userinfo=True) as provider:
        settings = portal_settings(tmp_path, provider)
        database = loaded_database(settings, tmp_path)
        try:
            with portal_running(create_app(settings, database), portal_port) as url:
                portal = Portal(url, database, provider)
                client, callback = sign_in(portal, "ravi")
                with contextlib.closing(client):
                    assert callback.status_code == 303, callback.text
                    assert "Digital identity" in client.get(f"{url}/").text
                with database.transaction() as conn:
                    assert accounts.show_user(conn, "ravi", actor="test")["roles"] == ["requester@mtc", "viewer@mtc"]
        finally:
            database.dispose()


def test_a_provider_that_names_another_issuer_is_not_followed(provider, tmp_path):
    # localhost and 127.0.0.1 reach the same provider, whose discovery document says 127.0.0.1.
    settings = portal_settings(tmp_path, provider,
                               DCOPS_OIDC_ISSUER=provider.issuer.replace("127.0.0.1", "localhost"))
    database = loaded_database(settings, tmp_path)
    try:
        with portal_running(create_app(settings, database), free_port()) as url, browser() as client:
            start = client.get(f"{url}{oidc.START_PATH}")
        assert start.status_code == 502 and "cannot be reached" in start.text
        assert not [h for h in start.headers.get_list("set-cookie") if h.startswith(f"{oidc.FLOW_COOKIE}=") and
                    not h.startswith(f'{oidc.FLOW_COOKIE}="";')]  # no flow started
    finally:
        database.dispose()


# --- without a provider -------------------------------------------------------------------------

def test_without_an_issuer_there_is_no_oidc_route_nor_button(settings):
    from fastapi.testclient import TestClient

    database = open_database(settings)
    try:
        client = TestClient(create_app(settings, database), follow_redirects=False)
        assert client.get("/signin/oidc").status_code == 404
        assert "/signin/oidc" not in client.get("/signin").text
    finally:
        database.dispose()


def test_claims_to_grants_accept_a_string_a_list_or_a_map():
    known = ["moh", "mtc"]

    def grants(organization, roles):
        found, ignored = oidc.grants_from_claims({"organization": organization, "dcops_roles": roles},
                                                 ministry_claim="organization", roles_claim="dcops_roles",
                                                 ministries=known)
        return accounts.role_names(found), ignored

    assert grants("mtc", ["requester"]) == (["requester@mtc"], [])
    assert grants(["mtc", "moh"], "viewer")[0] == ["viewer@moh", "viewer@mtc"]
    assert grants({"MTC": {"id": "1"}}, ["viewer", "auditor"])[0] == ["auditor", "viewer@mtc"]
    found, ignored = grants(["mtc", 7, "who"], ["viewer", "root", None])
    assert found == ["viewer@mtc"] and len(ignored) == 4  # 7, 'who', None and 'root', each said
    assert grants(None, ["requester"])[0] == []
    assert grants(["mtc"], 42)[0] == []
    nested = oidc.grants_from_claims({"resource_access": {"dcops": {"roles": ["operator"]}}},
                                     ministry_claim="organization", roles_claim="resource_access.dcops.roles",
                                     ministries=known)[0]
    assert accounts.role_names(nested) == ["operator"]


@pytest.mark.parametrize("issuer", ["http://id.example.la", "ftp://id.example.la", "https://", "https://a@b.la",
                                    "https://id.example.la/?x=1", "http://127.0.0.1:port"])
def test_the_issuer_must_be_https_but_on_loopback(issuer, tmp_path):
    with pytest.raises(ConfigError, match="DCOPS_OIDC_ISSUER"):
        Settings.from_env({"DCOPS_HOME": str(tmp_path), "DCOPS_OIDC_ISSUER": issuer, "DCOPS_OIDC_CLIENT_ID": "c"})


def test_oidc_settings_are_checked_and_a_secret_is_never_read_from_the_environment(tmp_path):
    base = {"DCOPS_HOME": str(tmp_path)}
    assert Settings.from_env(base).oidc_issuer is None
    on = Settings.from_env({**base, "DCOPS_OIDC_ISSUER": "https://id.example.la/realms/gov",
                            "DCOPS_OIDC_CLIENT_ID": "dcops", "DCOPS_OIDC_ROLES_CLAIM": "resource_access.dcops.roles",
                            "DCOPS_OIDC_SCOPES": "openid  profile openid"})
    assert (on.oidc_issuer, on.oidc_client_id, on.oidc_scopes) == ("https://id.example.la/realms/gov", "dcops",
                                                                  "openid profile")
    assert on.oidc_ministry_claim == "organization" and on.oidc_roles_claim == "resource_access.dcops.roles"
    for env, words in (({"DCOPS_OIDC_ISSUER": "https://id.example.la"}, "DCOPS_OIDC_CLIENT_ID is required"),
                       ({"DCOPS_OIDC_CLIENT_SECRET": "s3cret"}, "DCOPS_OIDC_CLIENT_SECRET_FILE"),
                       ({"DCOPS_OIDC_SCOPES": "profile email"}, "openid among them"),
                       ({"DCOPS_OIDC_MINISTRY_CLAIM": "two words"}, "DCOPS_OIDC_MINISTRY_CLAIM")):
        with pytest.raises(ConfigError, match=words):
            Settings.from_env({**base, **env})
