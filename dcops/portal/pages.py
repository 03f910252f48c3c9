"""The portal's pages: each parses the browser's input, asks the library as the signed-in person, renders."""

from __future__ import annotations

import hmac
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dcops import accounts
from dcops.access import Actor
from dcops.catalogue import queries as catalogue_queries
from dcops.catalogue import requests as requests_lib
from dcops.errors import Forbidden, NotFound, TooManyAttempts, Unauthenticated, ValidationError
from dcops.inventory import queries as inventory_queries
from dcops.portal import i18n, web

router = APIRouter(include_in_schema=False)

# The request form's fields, named as the request document's fields (a dotted path for nested ones).
REQUEST_FIELDS = ("ministry", "programme.slug", "programme.name", "programme.description", "offering", "plan",
                  "tier", "classification", "environment", "personal_data", "justification", "contacts.owner",
                  "contacts.security", "wanted_by", "site")
FORM_WHERE = "form"
# A problem of the request checks reads "form: <field>: <message>" (see catalogue.requests.document).
_PROBLEM = re.compile(r"^form: ([a-z_]+(?:\.[a-z_]+)?): (.*)$", re.S)


async def form_data(request: Request) -> dict[str, Any]:
    """The posted form as a plain dict (one value per field; the last one wins)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _signed_in(request: Request) -> Actor:
    return web.visitor(request).actor


def _database(request: Request):
    return request.app.state.database


def _settings(request: Request):
    return request.app.state.settings


# --- signing in and out, and the language -------------------------------------------------------

@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str = "/"):
    token = web.new_signin_csrf()
    response = web.render(request, "signin.html", signin_csrf=token, next=web.safe_next(next), error="",
                          oidc=bool(_settings(request).oidc_issuer))
    web.set_cookie(response, request, web.SIGNIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/signin")
def signin(request: Request, form: dict = Depends(form_data)):
    web.check_origin(request)
    target = web.safe_next(form.get("next"))
    cookie_token = request.cookies.get(web.SIGNIN_CSRF_COOKIE, "")
    if not cookie_token or not hmac.compare_digest(cookie_token, form.get(web.CSRF_FIELD, "")):
        raise Forbidden("this sign-in form has expired: reload the page and sign in again")
    try:
        actor = accounts.authenticate(_database(request), form.get("name", "").strip().lower(),
                                      form.get("password", ""), client=_client(request))
    except (Unauthenticated, TooManyAttempts) as error:
        token = web.new_signin_csrf()
        response = web.render(request, "signin.html", status_code=error.http_status, signin_csrf=token,
                              next=target, error=str(error), name=form.get("name", ""),
                              oidc=bool(_settings(request).oidc_issuer))
        web.set_cookie(response, request, web.SIGNIN_CSRF_COOKIE, token, max_age=3600)
        return response
    # A new session on every sign-in, and any session the browser held before is ended:
    # nobody can plant a session id for someone else to sign into (session fixation).
    previous = request.cookies.get(web.SESSION_COOKIE)
    if previous:
        accounts.close_session(_database(request), previous)
    token, _csrf = accounts.open_session(_database(request), actor.name, client=_client(request))
    response = web.redirect(target)
    web.set_cookie(response, request, web.SESSION_COOKIE, token)
    response.delete_cookie(web.SIGNIN_CSRF_COOKIE, path="/")
    return response


@router.post("/signout")
def signout(request: Request, form: dict = Depends(form_data)):
    web.check_form(request, form)
    accounts.close_session(_database(request), request.cookies.get(web.SESSION_COOKIE, ""))
    response = web.redirect("/signin")
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    return response


@router.post("/language")
def choose_language(request: Request, form: dict = Depends(form_data)):
    """The language, remembered: on the person's account when signed in, in a cookie otherwise."""
    web.check_origin(request)
    language = i18n.language_of(form.get("language"))
    current = web.visitor(request)
    if current.session is not None:
        web.check_form(request, form)
        accounts.set_language(_database(request), current.session.user_id, language)
    response = web.redirect(web.safe_next(form.get("next")))
    web.set_cookie(response, request, web.LANGUAGE_COOKIE, language, max_age=365 * 86400)
    return response


# --- home ---------------------------------------------------------------------------------------

def ministry_section(request: Request, actor: Actor, code: str):
    """A ministry's home section (its programmes now and this month, open requests, maintenance),
    rendered once for all its people every few seconds (portal.cache); the actor is authorised
    first, on every request, cached or not."""
    from dcops.access import Owned, authorize
    from dcops.overview import ministry_overview
    from dcops.reports.documents import judging

    authorize(actor, "ministry.read", Owned("ministry", code, code))
    settings = _settings(request)
    language = web.visitor(request).language

    def compute():
        overview = ministry_overview(_database(request), actor, code, tz=settings.tz,
                                     data_centre_name=settings.data_centre_name, judging=judging(settings))
        return web.render_fragment(request, "_ministry.html", view=overview)

    return request.app.state.home_sections.get((code, language), compute)


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    actor = _signed_in(request)
    if actor.is_staff:
        return staff_queue(request)
    sections = [ministry_section(request, actor, code) for code in sorted(actor.ministries("ministry.read") or ())]
    return web.render(request, "home.html", sections=sections)


# --- the catalogue and the request form ---------------------------------------------------------

@router.get("/catalogue", response_class=HTMLResponse)
def catalogue(request: Request):
    actor = _signed_in(request)
    with _database(request).transaction() as conn:
        offerings = catalogue_queries.list_offerings(conn, actor=actor)
    return web.render(request, "catalogue.html", offerings=offerings, can_request=bool(
        actor.ministries("request.submit") is None or actor.ministries("request.submit")))


def _request_form_context(request: Request, actor: Actor, values: dict, problems: dict[str, list[str]],
                          general: list[str]) -> dict:
    with _database(request).transaction() as conn:
        offerings = catalogue_queries.list_offerings(conn, actor=actor)
        ministries = [m for m in inventory_queries.list_ministries(conn) if actor.can("request.submit", m["code"])]
        sites = [s["code"] for s in inventory_queries.list_sites(conn)]
    plans = [(offering, plan) for offering in offerings for plan in offering["plans"]]
    return {"values": values, "problems": problems, "general": general, "plans": plans, "ministries": ministries,
            "sites": sites}


@router.get("/requests/new", response_class=HTMLResponse)
def request_form(request: Request, plan: str = ""):
    actor = _signed_in(request)
    values: dict[str, Any] = {"plan": plan, "environment": "production"}
    mine = sorted(actor.ministries("request.submit") or ())
    if len(mine) == 1:
        values["ministry"] = mine[0]
    return web.render(request, "request_form.html", **_request_form_context(request, actor, values, {}, []))


def request_document(form: dict[str, str]) -> dict[str, Any]:
    """The request document a form post stands for: the same document a request file holds."""
    document: dict[str, Any] = {}
    for field in REQUEST_FIELDS:
        value: Any = form.get(field, "")
        if field == "personal_data":
            value = form.get(field) in ("on", "true", "yes")
        elif field == "tier":
            value = int(value) if value.strip().isdigit() else value
        elif field in ("site", "programme.description") and not value.strip():
            continue
        elif field in ("offering", "plan") and not value:
            # The plan's select names its offering ("offering/plan"); none chosen: both are missing,
            # and the checks say so once, beside the plan.
            continue
        head, _, tail = field.partition(".")
        if tail:
            document.setdefault(head, {})[tail] = value
        else:
            document[head] = value
    if "/" in str(document.get("plan", "")):
        document["offering"], document["plan"] = document["plan"].split("/", 1)
    return document


# Where a problem of a field the form does not show by itself is shown.
_SHOWN_AT = {"offering": "plan", "programme": "programme.slug", "contacts": "contacts.owner"}


def problems_by_field(error: ValidationError) -> tuple[dict[str, list[str]], list[str]]:
    """The checks' problems, each beside its field (once: the offering's and the plan's are one
    select); those of no field apart."""
    by_field: dict[str, list[str]] = {}
    general = []
    for problem in error.problems:
        match = _PROBLEM.match(problem)
        field = match and _SHOWN_AT.get(match.group(1), match.group(1))
        if field in REQUEST_FIELDS:
            shown = by_field.setdefault(field, [])
            if match.group(2) not in shown:
                shown.append(match.group(2))
        else:
            general.append(problem.removeprefix(f"{FORM_WHERE}: "))
    return by_field, general


@router.post("/requests")
def submit_request(request: Request, form: dict = Depends(form_data)):
    actor = web.check_form(request, form)
    document = request_document(form)
    try:
        request_id = requests_lib.submit(_database(request), document, actor=actor, where=FORM_WHERE,
                                         tz=_settings(request).tz)
    except ValidationError as error:
        by_field, general = problems_by_field(error)
        values = {field: form.get(field, "") for field in REQUEST_FIELDS}
        values["personal_data"] = document.get("personal_data", False)
        return web.render(request, "request_form.html", status_code=422,
                          **_request_form_context(request, actor, values, by_field, general))
    return web.redirect(f"/requests/{request_id}?submitted=1")


@router.get("/requests", response_class=HTMLResponse)
def request_list(request: Request, state: str | None = None):
    actor = _signed_in(request)
    with _database(request).transaction() as conn:
        found = requests_lib.list_requests(conn, state=state or None, actor=actor)
    return web.render(request, "requests.html", requests=list(reversed(found)), state=state or "")


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(request: Request, request_id: str, submitted: str = ""):
    actor = _signed_in(request)
    number = web.number_in_path(request_id)
    with _database(request).transaction() as conn:
        record = requests_lib.show_request(conn, number, actor=actor)
        placement = None
        if record["state"] == "submitted" and actor.can("request.approve", record["ministry"]):
            placement = requests_lib.preview_placement(conn, number, actor=actor)
    return web.render(request, "request.html", record=record, placement=placement, submitted=bool(submitted),
                      may={action: actor.can(f"request.{action}", record["ministry"])
                           for action in ("withdraw", "sign-off", "approve", "reject")})


@router.post("/requests/{request_id}/{action}")
def request_action(request: Request, request_id: str, action: str, form: dict = Depends(form_data)):
    actor = web.check_form(request, form)
    number = web.number_in_path(request_id)
    database = _database(request)
    if action == "withdraw":
        requests_lib.withdraw(database, number, actor=actor, reason=form.get("reason", ""))
    elif action == "sign-off":
        requests_lib.sign_off(database, number, actor=actor)
    elif action == "approve":
        requests_lib.approve(database, number, actor=actor)
    elif action == "reject":
        requests_lib.reject(database, number, actor=actor, reason=form.get("reason", ""))
    else:
        raise NotFound("not found")
    return web.redirect(f"/requests/{number}")


# --- programmes ---------------------------------------------------------------------------------

@router.get("/programmes", response_class=HTMLResponse)
def programme_list(request: Request):
    actor = _signed_in(request)
    with _database(request).transaction() as conn:
        programmes = inventory_queries.list_programmes(conn, actor=actor, include_retired=False)
    return web.render(request, "programmes.html", programmes=programmes)


@router.get("/programmes/{slug}", response_class=HTMLResponse)
def programme_page(request: Request, slug: str):
    from dcops.overview import programme_overview
    from dcops.reports.documents import judging

    actor = _signed_in(request)
    settings = _settings(request)
    details = programme_overview(_database(request), actor, slug, tz=settings.tz,
                                 data_centre_name=settings.data_centre_name, judging=judging(settings))
    return web.render(request, "programme.html", **details)


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request):
    """The status page as the signed-in person may see it: their own ministries whole, the others as the public."""
    from dcops.overview import status_overview
    from dcops.status import recent_listing

    actor = _signed_in(request)
    # What the view holds depends only on which ministries the person may read in full, so the
    # people of one ministry (and all the staff) share one computation every few seconds.
    scope = actor.ministries("programme.read")
    view = request.app.state.home_sections.get(
        ("status", scope), lambda: status_overview(_database(request), actor, tz=_settings(request).tz))
    return web.render(request, "status.html", view=view, recent=recent_listing(view["incidents"]["recent"]))


# --- the data centre's staff --------------------------------------------------------------------

def staff_queue(request: Request):
    actor = _signed_in(request)
    if not actor.is_staff:
        raise NotFound("not found")
    with _database(request).transaction() as conn:
        waiting = requests_lib.list_requests(conn, state="submitted", actor=actor)
        ministries = inventory_queries.list_ministries(conn)
    return web.render(request, "staff.html", waiting=waiting, ministries=ministries)


@router.get("/staff", response_class=HTMLResponse)
def staff_page(request: Request):
    return staff_queue(request)


@router.get("/ministries/{code}", response_class=HTMLResponse)
def ministry_page(request: Request, code: str):
    """One ministry's home, as its own people see it: any ministry for the staff, one's own otherwise."""
    actor = _signed_in(request)
    return web.render(request, "home.html", sections=[ministry_section(request, actor, code)])


# --- reports and statements ---------------------------------------------------------------------

REPORT_FORMATS = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8",
                  "csv": "text/csv; charset=utf-8", "json": "application/json"}
# A self-contained report carries its own styles and inline SVG, and nothing else runs in it.
REPORT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                 "form-action 'none'; frame-ancestors 'none'")


@router.get("/reports", response_class=HTMLResponse)
def report_index(request: Request, ministry: str = ""):
    from dcops.db import utcnow
    from dcops.reports.ministry import report_list

    actor = _signed_in(request)
    settings = _settings(request)
    scope = actor.ministries("report.read")
    with _database(request).transaction() as conn:
        ministries = [m for m in inventory_queries.list_ministries(conn) if scope is None or m["code"] in scope]
        chosen = [m["code"] for m in ministries if m["code"] == ministry] or (
            [m["code"] for m in ministries] if scope is not None else [])
        lists = [report_list(conn, actor, code, tz=settings.tz, now=utcnow()) for code in chosen]
    return web.render(request, "reports.html", lists=lists, ministries=ministries, chosen=ministry)


def _download(body: str, fmt: str, filename: str):
    from fastapi.responses import Response

    headers = {"content-disposition": f'inline; filename="{filename}"'}
    if fmt == "html":
        headers["content-security-policy"] = REPORT_POLICY
    return Response(body, media_type=REPORT_FORMATS[fmt], headers=headers)


@router.get("/reports/{ministry}/{name}")
def report_file(request: Request, ministry: str, name: str):
    """A month's SLA report of a ministry, in any report format: /reports/moh/2026-11.html."""
    from dcops.db import utcnow
    from dcops.reports.ministry import uptime_report
    from dcops.reports.documents import judging
    from dcops.reports.render import render

    actor = _signed_in(request)
    period, _, fmt = name.partition(".")
    if fmt not in REPORT_FORMATS:
        raise NotFound("not found")
    settings = _settings(request)
    with _database(request).transaction() as conn:
        document = uptime_report(conn, actor, ministry, web.month_in_path(period), tz=settings.tz, now=utcnow(),
                                 data_centre_name=settings.data_centre_name, judging=judging(settings))
    return _download(render(document, fmt), fmt, f"uptime-{ministry}-{period}.{fmt}")


@router.get("/statements/{ministry}/{name}")
def statement_page(request: Request, ministry: str, name: str):
    """A month's statement of a ministry: a page, or /statements/moh/2026-11.csv (or .json) to download."""
    import json

    from dcops.db import utcnow
    from dcops.reports.ministry import statement, statement_csv

    actor = _signed_in(request)
    period, _, fmt = name.partition(".")
    if fmt not in ("", "csv", "json"):
        raise NotFound("not found")
    settings = _settings(request)
    with _database(request).transaction() as conn:
        document = statement(conn, actor, ministry, web.month_in_path(period), tz=settings.tz, now=utcnow(),
                             data_centre_name=settings.data_centre_name)
    if fmt == "csv":
        return _download(statement_csv(document), "csv", f"statement-{ministry}-{period}.csv")
    if fmt == "json":
        return _download(json.dumps(document, ensure_ascii=False, indent=2), "json",
                         f"statement-{ministry}-{period}.json")
    return web.render(request, "statement.html", statement=document)
