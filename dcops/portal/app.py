"""The portal's application: its routes, its error pages, its security headers, built over one database."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from dcops.db import Database
from dcops.errors import DcopsError, NotFound, Unauthenticated, ValidationError
from dcops.portal import web
from dcops.portal.cache import HOME_SECTION_SECONDS, TtlCache
from dcops.resources import package_dir
from dcops.settings import Settings

API_PREFIX = "/api/v1"


class SecurityHeaders:
    """Adds the security headers to every response, and keeps signed-in pages out of caches."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in web.SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A route that sets its own policy (a self-contained report) keeps it.
                present = {name.lower() for name, _value in headers}
                headers.extend(header for header in self.headers if header[0] not in present)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ForgetAfterChange:
    """After a change made through this worker succeeds, its cached pages are computed again, so the
    person who made it sees it at once (other workers' caches expire within seconds)."""

    def __init__(self, app, cache: TtlCache):
        self.app = app
        self.cache = cache

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in web.UNSAFE_METHODS:
            return await self.app(scope, receive, send)

        async def send_and_forget(message):
            if message["type"] == "http.response.start" and message["status"] < 400:
                self.cache.clear()
            await send(message)

        await self.app(scope, receive, send_and_forget)


def create_app(settings: Settings, database: Database) -> FastAPI:
    """The portal over `database`. `settings.portal_origin` (https://portal.example) is the address browsers
    use when a reverse proxy stands in front: the Origin check and the Secure cookies follow it."""
    from dcops.portal import api, pages

    app = FastAPI(title="dcops portal API", version="1", docs_url=None, redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json")
    app.state.settings = settings
    app.state.database = database
    app.state.public_origin = settings.portal_origin
    app.state.templates = web.templates()
    app.state.home_sections = TtlCache(HOME_SECTION_SECONDS)
    app.mount("/static", StaticFiles(directory=str(package_dir("portal") / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(api.router, prefix=API_PREFIX)
    if settings.oidc_issuer:
        from dcops.portal import oidc

        app.include_router(oidc.router)
    app.add_middleware(ForgetAfterChange, cache=app.state.home_sections)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(DcopsError)
    async def dcops_error(request: Request, error: DcopsError):
        return error_response(request, error)

    @app.exception_handler(404)
    async def not_found(request: Request, _error):
        return error_response(request, NotFound("not found"))

    return app


def error_response(request: Request, error: DcopsError):
    """A dcops error as the client expects it: JSON for the API, a page otherwise.

    A NotFound never carries the library's words: a missing object and another ministry's one
    must answer alike, byte for byte.
    """
    api = request.url.path.startswith(API_PREFIX + "/")
    status = error.http_status
    if isinstance(error, Unauthenticated) and not api:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={_quoted(target)}", status_code=303)
    if api:
        body = {"detail": "not found" if isinstance(error, NotFound) else str(error)}
        if isinstance(error, ValidationError):
            body["problems"] = error.problems
        headers = {"www-authenticate": "Bearer"} if isinstance(error, Unauthenticated) else None
        return JSONResponse(body, status_code=status, headers=headers)
    message = "" if isinstance(error, NotFound) else str(error)
    return web.render(request, "error.html", status_code=status, status=status, message=message)


def _quoted(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
