"""Signing in through OpenID Connect: the code flow with PKCE, the ID token checked by authlib, claims to grants."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from dcops import accounts, audit
from dcops.access import MINISTRY_ROLES, STAFF_ROLES, Grant
from dcops.errors import Conflict, Unauthenticated, ValidationError
from dcops.portal import web

try:  # the HTTP client authlib itself chose (see authlib.integrations.httpx_client._compat), for its errors
    import httpx2 as _http
except ImportError:  # pragma: no cover - authlib falls back to httpx, with a deprecation warning
    import httpx as _http

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

START_PATH = "/signin/oidc"
CALLBACK_PATH = "/signin/oidc/callback"
FLOW_COOKIE = "dcops_oidc_flow"
FLOW_LIFETIME_S = 600  # from the portal to the provider's login and back
PROVIDER_TIMEOUT_S = 10.0
_NAME_RE = re.compile(accounts.NAME_PATTERN)
_MAX_FLOW_COOKIE = 2048

NO_ROLE = "your account holds no dcops role: ask the service desk"
FLOW_LOST = ("this sign-in was not started from this browser, or it took too long: "
             "go back to the sign-in page and try again")
PROVIDER_DOWN = "the government identity service cannot be reached now: try again in a few minutes"
ANSWER_UNCHECKED = ("the government identity service's answer could not be checked: go back to the sign-in page "
                    "and try again")

# Where the flow's state, nonce and PKCE verifier are kept between the redirect to the provider
# and its callback: in one short-lived cookie of their own (HttpOnly, SameSite=Lax, Secure under
# TLS, FLOW_LIFETIME_S), never in Starlette's SessionMiddleware and not in this process's memory.
# - Not the SessionMiddleware: it would be a second, signed-cookie session beside dcops' own
#   server-side one, with its own secret to manage, on every response.
# - Not memory: `dcops portal serve --workers N` runs several processes, and the callback may
#   reach another worker than the one that started the flow; the database has no table for it.
# The cookie is bound to the flow by its random `state` (256 bits): the callback takes the flow
# only when the state the provider sends back equals the cookie's (compared in constant time),
# checks it once and deletes the cookie whatever the outcome. A page of another
# site cannot read or set it, and cannot know its state, so it cannot finish a flow it did not
# start in this browser (login CSRF). The verifier stays in the browser that started the flow,
# so an authorisation code leaked on the way (logs, Referer) cannot be exchanged without it; the
# provider takes each code once. The cookie is not signed: whoever could plant a cookie in the
# browser could as well plant one of a flow of their own, which a signature would not stop.
# Lax (not Strict) because the callback is a top-level GET coming from the provider's site.


class ProviderUnavailable(Exception):
    """The identity provider could not be reached, or answered with something that is no OpenID Connect."""


# --- the provider client ------------------------------------------------------------------------

def _client(request: Request):
    """The app's authlib client, registered on first use with discovery from the issuer."""
    state = request.app.state
    client = getattr(state, "oidc_client", None)
    if client is None:
        settings = state.settings
        secret = _client_secret(settings.oidc_client_secret_file)
        oauth = OAuth()
        client = oauth.register(
            "dcops", client_id=settings.oidc_client_id, client_secret=secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256",
                           "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
                           "timeout": PROVIDER_TIMEOUT_S},
        )
        state.oidc_client = client
    return client


def _client_secret(path) -> str | None:
    """The client secret from its file (DCOPS_OIDC_CLIENT_SECRET_FILE); None for a public client."""
    if path is None:
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ProviderUnavailable(f"DCOPS_OIDC_CLIENT_SECRET_FILE {path} cannot be read: {error.strerror}") from None
    if not secret:
        raise ProviderUnavailable(f"DCOPS_OIDC_CLIENT_SECRET_FILE {path} is empty")
    return secret


async def _metadata(client, issuer: str) -> dict:
    """The provider's discovery document, which must name the configured issuer (OpenID Connect Discovery 4.3)."""
    metadata = await client.load_server_metadata()
    if metadata.get("issuer") != issuer:
        client.server_metadata.pop("_loaded_at", None)  # asked again next time
        raise ProviderUnavailable(f"the discovery document names the issuer {metadata.get('issuer')!r}, "
                                  f"not DCOPS_OIDC_ISSUER {issuer!r}")
    return metadata


# --- the flow cookie ----------------------------------------------------------------------------

def _pack(flow: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(flow, separators=(",", ":")).encode()).decode().rstrip("=")


def _unpack(value: str | None, *, now: float) -> dict | None:
    """The flow a cookie holds, if it is one of ours and not too old."""
    if not value or len(value) > _MAX_FLOW_COOKIE:
        return None
    try:
        flow = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        return None
    keys = ("state", "nonce", "verifier", "next", "redirect_uri")
    if not isinstance(flow, dict) or not all(isinstance(flow.get(k), str) and flow[k] for k in keys):
        return None
    started = flow.get("at")
    if not isinstance(started, (int, float)) or not 0 <= now - started <= FLOW_LIFETIME_S:
        return None
    return flow


def _callback_url(request: Request) -> str:
    return web.expected_origin(request) + CALLBACK_PATH


# --- the routes ---------------------------------------------------------------------------------

@router.get(START_PATH)
async def start(request: Request, next: str = "/"):
    """Send the browser to the provider's login, with a new state, nonce and PKCE (S256) challenge."""
    settings = request.app.state.settings
    try:
        client = _client(request)
        await _metadata(client, settings.oidc_issuer)
        redirect_uri = _callback_url(request)
        # 256 random bits each; authlib puts them in the request and derives the S256 challenge.
        authorization = await client.create_authorization_url(
            redirect_uri, state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64))
    except ProviderUnavailable as error:
        log.error("OpenID Connect: %s", error)
        return await _page(request, 502, PROVIDER_DOWN)
    except (_http.HTTPError, ValueError) as error:
        log.error("OpenID Connect: the provider's discovery document could not be read: %s", error)
        return await _page(request, 502, PROVIDER_DOWN)
    flow = {"state": authorization["state"], "nonce": authorization["nonce"],
            "verifier": authorization["code_verifier"], "next": web.safe_next(next), "redirect_uri": redirect_uri,
            "at": int(time.time())}
    response = RedirectResponse(authorization["url"], status_code=303)
    web.set_cookie(response, request, FLOW_COOKIE, _pack(flow), max_age=FLOW_LIFETIME_S)
    return response


@router.get(CALLBACK_PATH)
async def callback(request: Request):
    """The provider's answer: the flow checked, the code exchanged, the ID token checked, the person signed in."""
    settings = request.app.state.settings
    params = request.query_params
    flow = _unpack(request.cookies.get(FLOW_COOKIE), now=time.time())
    if flow is None or not hmac.compare_digest(params.get("state", "").encode(), flow["state"].encode()):
        log.warning("OpenID Connect callback refused: no flow of this browser matches its state")
        return await _page(request, 400, FLOW_LOST)
    if "iss" in params and params["iss"] != settings.oidc_issuer:  # RFC 9207: another provider's answer
        log.warning("OpenID Connect callback refused: iss %r is not the configured issuer", params["iss"])
        return await _page(request, 400, FLOW_LOST)
    if params.get("error"):
        log.warning("OpenID Connect: the provider answered %r (%r)", params["error"], params.get("error_description"))
        return await _page(request, 403, f"the government identity service did not sign you in "
                                         f"({params['error'][:100]}): go back to the sign-in page and try again")
    if not params.get("code"):
        return await _page(request, 400, FLOW_LOST)
    try:
        claims = await _verified_claims(request, flow, params["code"])
    except ProviderUnavailable as error:
        log.error("OpenID Connect: %s", error)
        return await _page(request, 502, PROVIDER_DOWN)
    except _http.HTTPError as error:
        log.error("OpenID Connect: the provider could not be reached: %s", error)
        return await _page(request, 502, PROVIDER_DOWN)
    except (AuthlibBaseError, JoseError, ValueError) as error:
        log.warning("OpenID Connect: the code exchange or the ID token was refused: %s: %s",
                    type(error).__name__, error)
        return await _page(request, 403, ANSWER_UNCHECKED)
    return await run_in_threadpool(_sign_in, request, flow, claims)


async def _verified_claims(request: Request, flow: dict, code: str) -> dict:
    """The person's claims: the ID token's, checked (signature, issuer, audience, nonce, expiry), and
    the userinfo endpoint's for those it lacks (OpenID Connect Core 5.4: scope claims may be there only)."""
    settings = request.app.state.settings
    client = _client(request)
    metadata = await _metadata(client, settings.oidc_issuer)
    token = await client.fetch_access_token(code=code, redirect_uri=flow["redirect_uri"],
                                            code_verifier=flow["verifier"])
    if "id_token" not in token:
        raise ValueError("the token response holds no ID token")
    # authlib checks iss only against the discovery document and aud only through azp: both are
    # asked for here, with exp (and iat, sub) essential; the nonce is the flow's.
    options = {"iss": {"essential": True, "value": settings.oidc_issuer},
               "aud": {"essential": True, "value": settings.oidc_client_id},
               "exp": {"essential": True}}
    claims = dict(await client.parse_id_token(token, nonce=flow["nonce"], claims_options=options))
    wanted = ("preferred_username", settings.oidc_ministry_claim, settings.oidc_roles_claim)
    if metadata.get("userinfo_endpoint") and any(_claim(claims, name) is None for name in wanted):
        userinfo = dict(await client.userinfo(token=token))
        if userinfo.get("sub") != claims["sub"]:  # Core 5.3.4: another person's answer is not used
            raise ValueError("the userinfo endpoint answered for another subject")
        claims = {**userinfo, **claims}
    return claims


# --- claims to a dcops account ------------------------------------------------------------------

def _claim(claims: dict, name: str) -> Any:
    """A claim by name; a dotted name not found as such is a path (Keycloak nests `a.b` claims)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any, what: str, ignored: list[str]) -> list[str]:
    """A claim as a list of strings: one string, a list of strings, or a map's keys (Keycloak's
    organization claim with its attributes); anything else in it is ignored and said so."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[Any] = [value]
    elif isinstance(value, dict):
        items = value.keys()
    elif isinstance(value, list):
        items = value
    else:
        ignored.append(f"{what}: not a string, list or map ({type(value).__name__})")
        return []
    found = []
    for item in items:
        if isinstance(item, str) and item.strip():
            found.append(item.strip().lower())
        else:
            ignored.append(f"{what}: {item!r} is not a name")
    return found


def grants_from_claims(claims: dict, *, ministry_claim: str, roles_claim: str,
                       ministries: Iterable[str]) -> tuple[frozenset[Grant], list[str]]:
    """The grants a provider's claims give, and what in them was ignored (to log).

    A ministry role (viewer, requester) is held in each ministry the ministry claim names that
    dcops knows; a staff role (operator, security-officer, auditor) data-centre wide. Unknown
    roles and organisations that are no dcops ministry are ignored.
    """
    ignored: list[str] = []
    known = set(ministries)
    codes = []
    for code in _strings(_claim(claims, ministry_claim), ministry_claim, ignored):
        if code in known:
            codes.append(code)
        else:
            ignored.append(f"{ministry_claim}: {code!r} is no dcops ministry")
    grants = set()
    for role in _strings(_claim(claims, roles_claim), roles_claim, ignored):
        if role in STAFF_ROLES:
            grants.add(Grant(role))
        elif role in MINISTRY_ROLES:
            if not codes:
                ignored.append(f"{roles_claim}: {role} needs a ministry, and {ministry_claim} names none of dcops'")
            grants.update(Grant(role, code) for code in codes)
        else:
            ignored.append(f"{roles_claim}: no dcops role {role!r}")
    return frozenset(grants), ignored


def _client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _sign_in(request: Request, flow: dict, claims: dict) -> Response:
    """The checked claims to a dcops account and a new session (sync: the database is)."""
    settings = request.app.state.settings
    database = request.app.state.database
    issuer, subject = settings.oidc_issuer, str(claims["sub"])
    client = _client_address(request)
    given = claims.get("preferred_username")
    name = given.strip().lower() if isinstance(given, str) else ""
    shown = given[:100] if isinstance(given, str) else ""
    display_name = claims.get("name") or " ".join(
        str(claims[part]) for part in ("given_name", "family_name") if claims.get(part))

    def refuse(status: int, message: str, reason: str) -> Response:
        with database.transaction(immediate=True) as conn:
            audit.record(conn, audit.Event(accounts.ANONYMOUS, "user.signin-failed", "user", name[:200] or "-",
                                           None, {"name": shown, "client": client, "reason": reason, "via": "oidc",
                                                  "issuer": issuer, "subject": subject}))
        return _refusal(request, status, message)

    if not _NAME_RE.match(name):
        said = f"gives your user name as {shown!r}" if shown else "gives no user name (preferred_username)"
        return refuse(403, f"the government identity service {said}, which dcops cannot use (2-63 characters "
                           "of a-z, 0-9, '.', '_' or '-', starting with a letter): ask the service desk",
                      "user name unusable")
    with database.transaction() as conn:
        ministries = accounts.ministry_codes(conn)
    grants, ignored = grants_from_claims(claims, ministry_claim=settings.oidc_ministry_claim,
                                         roles_claim=settings.oidc_roles_claim, ministries=ministries)
    for what in ignored:
        log.warning("OpenID Connect sign-in of %s: ignored %s", name, what)
    if not grants:
        return refuse(403, NO_ROLE, "no dcops role")
    try:
        user = accounts.upsert_oidc_user(database, issuer=issuer, subject=subject, name=name,
                                         email=claims.get("email") or "", display_name=display_name,
                                         grants=grants)
    except Conflict as error:
        return refuse(409, f"{error}: ask the service desk", "name taken")
    except ValidationError as error:
        return refuse(403, f"{'; '.join(error.problems)}: ask the service desk", "claims refused")
    # As pages.signin: a new session on every sign-in, any session this browser held ended first.
    previous = request.cookies.get(web.SESSION_COOKIE)
    if previous:
        accounts.close_session(database, previous)
    try:
        token, _csrf = accounts.open_session(database, user, client=client)
    except Unauthenticated:
        return refuse(403, "your dcops account is disabled: ask the service desk", "disabled")
    with database.transaction(immediate=True) as conn:
        audit.record(conn, audit.Event(user, "user.signed-in", "user", user, None,
                                       {"client": client, "via": "oidc", "issuer": issuer}))
    response = web.redirect(web.safe_next(flow["next"]))
    web.set_cookie(response, request, web.SESSION_COOKIE, token)
    response.delete_cookie(web.SIGNIN_CSRF_COOKIE, path="/")
    response.delete_cookie(FLOW_COOKIE, path="/")
    return response


# --- pages --------------------------------------------------------------------------------------

def _refusal(request: Request, status: int, message: str) -> Response:
    response = web.render(request, "error.html", status_code=status, status=status, message=message)
    response.delete_cookie(FLOW_COOKIE, path="/")  # a flow is checked once, whatever came of it
    return response


async def _page(request: Request, status: int, message: str) -> Response:
    return await run_in_threadpool(_refusal, request, status, message)
