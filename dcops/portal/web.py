"""What every portal route shares: who is asking, the CSRF and Origin checks, the security headers, rendering."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dcops import accounts
from dcops.access import Actor
from dcops.errors import Forbidden, NotFound, Unauthenticated
from dcops.portal import i18n
from dcops.resources import package_dir

SESSION_COOKIE = "dcops_session"
LANGUAGE_COOKIE = "dcops_language"
SIGNIN_CSRF_COOKIE = "dcops_signin_csrf"  # before sign-in there is no session to hold the form's token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# No inline script or style anywhere, no framing, forms post only here.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class Visitor:
    """Who is asking: signed in (with their session), or not; and in which language."""

    session: accounts.SessionInfo | None
    language: str

    @property
    def actor(self) -> Actor:
        """The signed-in actor; Unauthenticated for a visitor who is not signed in."""
        if self.session is None:
            raise Unauthenticated("sign in first")
        return self.session.actor


def visitor(request: Request) -> Visitor:
    """The one place a browser's session is read: cookie → accounts.session_for (timeouts, revocation)."""
    cached = getattr(request.state, "visitor", None)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    session = accounts.session_for(request.app.state.database, token) if token else None
    language = i18n.language_of(session.language if session else request.cookies.get(LANGUAGE_COOKIE))
    request.state.visitor = found = Visitor(session, language)
    return found


def api_actor(request: Request) -> Actor:
    """The one place an API call's caller is read: a bearer token, else a browser session (whose
    unsafe calls must then carry the CSRF token in a header). Unauthenticated otherwise."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        actor = accounts.token_actor(request.app.state.database, header[7:].strip())
        if actor is None:
            raise Unauthenticated("the bearer token is unknown, revoked, or its user disabled")
        return actor
    session = visitor(request).session
    if session is None:
        raise Unauthenticated("sign in, or send a bearer token (dcops portal token create)")
    if request.method in UNSAFE_METHODS:
        check_origin(request)
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf_token):
            raise Forbidden("the CSRF token is missing or wrong (send it in the X-CSRF-Token header)")
    return session.actor


def expected_origin(request: Request) -> str:
    """The portal's own origin: the configured public one (behind a proxy), else the one asked for."""
    configured = request.app.state.public_origin
    if configured:
        return configured
    url = request.url
    return f"{url.scheme}://{url.netloc}"


def check_origin(request: Request) -> None:
    """A state-changing request must come from the portal's own pages: its Origin (or, lacking one,
    its Referer) is ours. Browsers send Origin on every POST; a request that names neither is refused."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        if referer is None:
            raise Forbidden("a form must be sent from the portal's own pages (no Origin or Referer)")
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin != expected_origin(request):
        raise Forbidden("a form must be sent from the portal's own pages (cross-origin request refused)")


def check_form(request: Request, form: dict[str, Any]) -> Actor:
    """A signed-in form post: its origin is ours and its CSRF token is the session's. Returns the actor."""
    check_origin(request)
    current = visitor(request)
    actor = current.actor
    if not hmac.compare_digest(str(form.get(CSRF_FIELD, "")), current.session.csrf_token):
        raise Forbidden("this form has expired or did not come from the portal: reload the page and send it again")
    return actor


def new_signin_csrf() -> str:
    """The token of a sign-in form, kept in a short-lived cookie beside it (double submit)."""
    return secrets.token_urlsafe(32)


def is_https(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through the proxy that says so)."""
    origin = request.app.state.public_origin
    return request.url.scheme == "https" or bool(origin and origin.startswith("https://"))


def set_cookie(response, request: Request, name: str, value: str, *, max_age: int | None = None) -> None:
    """Every cookie of the portal: HttpOnly, SameSite=Lax, Secure under TLS, for the whole site."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=is_https(request))


def templates() -> dict[str, Environment]:
    """The portal's Jinja2 environments, one per language (each with its catalogue installed, so
    rendering in one language never touches another's): autoescaped, i18n with newstyle gettext."""
    loader = FileSystemLoader(str(package_dir("portal") / "templates"))
    environments = {}
    for language in i18n.LANGUAGES:
        # auto_reload off: the templates ship inside the package and change only with it; checking
        # their files' times on every render cost about 2 ms of a page.
        environment = Environment(loader=loader, autoescape=select_autoescape(default=True, default_for_string=True),
                                  extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True,
                                  auto_reload=False)
        environment.install_gettext_translations(i18n.translations(language), newstyle=True)
        environments[language] = environment
    return environments


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the visitor's language, with what every page shows (who is signed in, the CSRF token)."""
    current = visitor(request)
    state = request.app.state
    page = state.templates[current.language].get_template(template)
    html = page.render(
        request=request, visitor=current, session=current.session, language=current.language,
        languages=i18n.LANGUAGES, fmt=i18n.Formatter(current.language, state.settings.tz),
        csrf_token=current.session.csrf_token if current.session else "",
        data_centre_name=state.settings.data_centre_name, **context,
    )
    return HTMLResponse(html, status_code=status_code)


def render_fragment(request: Request, template: str, **context: Any):
    """A part of a page in the visitor's language, with nothing of the visitor in it, so it can be
    shared between people (see portal.cache): no session, no CSRF token."""
    from markupsafe import Markup

    current = visitor(request)
    state = request.app.state
    page = state.templates[current.language].get_template(template)
    return Markup(page.render(language=current.language, fmt=i18n.Formatter(current.language, state.settings.tz),
                              **context))


def redirect(url: str) -> RedirectResponse:
    """After a form post: see the result with a GET (303), so a reload does not post again."""
    return RedirectResponse(url, status_code=303)


_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def number_in_path(value: str) -> int:
    """A record number from the address; anything else is a page that does not exist (404, not 422)."""
    if not value.isdigit() or len(value) > 18:
        raise NotFound("not found")
    return int(value)


def month_in_path(value: str) -> str:
    """A month (YYYY-MM) from the address; anything else is a page that does not exist."""
    if not _MONTH.match(value):
        raise NotFound("not found")
    return value


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this portal only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
