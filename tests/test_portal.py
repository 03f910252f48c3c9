"""The ministry portal through its routes: sign-in, sessions, CSRF, scoping, the request form, staff decisions, API."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dcops import accounts
from dcops.access import Grant
from dcops.catalogue import requests as requests_lib
from dcops.inventory.service import load_directory
from dcops.portal.app import create_app

import inventories
import requests_fixtures

ORIGIN = "http://testserver"
PASSWORD = "correct horse battery staple"
PEOPLE = {
    "vera": [Grant("viewer", "mtc")],
    "ravi": [Grant("requester", "mtc")],
    "hana": [Grant("requester", "moh")],
    "olga": [Grant("operator")],
    "sam": [Grant("security-officer")],
    "aude": [Grant("auditor")],
}


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One real Argon2id hash of PASSWORD for every test's people: hashing six people per test would
    cost more than the tests themselves (sign-ins still verify it, at full cost)."""
    return accounts.hash_password(PASSWORD)


def with_people(database, tmp_path, password_hash: str):
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    for name, grants in PEOPLE.items():
        accounts.add_user(database, name, grants=frozenset(grants), password=None, email=f"{name}@example.la",
                          actor="setup")
    with database.transaction() as conn:
        conn.execute(sa.text("UPDATE portal_user SET password_hash = :h"), {"h": password_hash})
    return database


@pytest.fixture
def portal_db(database, tmp_path, password_hash):
    """SQLite: the routes' own behaviour does not depend on the database."""
    return with_people(database, tmp_path, password_hash)


@pytest.fixture
def app(portal_db, settings):
    return create_app(settings, portal_db)


@pytest.fixture
def any_portal_db(any_database, tmp_path, password_hash):
    """SQLite and PostgreSQL: for the tests of who sees and changes what."""
    return with_people(any_database, tmp_path, password_hash)


@pytest.fixture
def any_app(any_portal_db, any_settings):
    return create_app(any_settings, any_portal_db)


def client_for(app, name: str | None = None) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    if name is not None:
        sign_in(client, name)
    return client


def sign_in(client: TestClient, name: str, password: str = PASSWORD):
    token = signin_token(client)
    return client.post("/signin", data={"name": name, "password": password, "csrf_token": token, "next": "/"},
                       headers={"origin": ORIGIN})


def signin_token(client: TestClient) -> str:
    """The sign-in form's own token (a signed-in page's header forms carry the session's)."""
    page = client.get("/signin")
    return re.search(r'action="/signin"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                     page.text).group(1)


def csrf(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def post(client: TestClient, path: str, data: dict | None = None, *, token: str | None = None):
    data = dict(data or {})
    data["csrf_token"] = token if token is not None else csrf(client)
    return client.post(path, data=data, headers={"origin": ORIGIN})


def two_requests(db, suffix: str = "") -> tuple[int, int]:
    """One request of mtc, one of moh (personal data: the two-person rule applies)."""
    mtc = requests_lib.submit(db, requests_fixtures.request(f"mtc-app{suffix}", personal_data=True), actor="ravi")
    moh = requests_lib.submit(db, requests_fixtures.request(f"moh-app{suffix}", ministry="moh", personal_data=True),
                              actor="hana")
    return mtc, moh


# --- signing in ---------------------------------------------------------------------------------

def test_a_page_asks_to_sign_in_and_the_api_answers_401(app):
    client = client_for(app)
    page = client.get("/requests?state=submitted")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=/requests%3Fstate%3Dsubmitted"
    api = client.get("/api/v1/programmes")
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"


def test_sign_in_sets_an_opaque_httponly_lax_cookie_and_shows_the_ministry(app, portal_db):
    client = client_for(app)
    response = sign_in(client, "ravi")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = [h for h in response.headers.get_list("set-cookie") if h.startswith("dcops_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain HTTP here
    token = cookie.split(";")[0].split("=", 1)[1]
    with portal_db.transaction() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM portal_session")).scalars().all()
    assert token not in stored and len(stored) == 1
    home = client.get("/")
    assert home.status_code == 200
    assert "Ministry of Technology and Communications" in home.text
    assert "Digital identity" in home.text and "Health information system" not in home.text


def test_wrong_password_and_unknown_name_answer_alike(app):
    wrong = sign_in(client_for(app), "ravi", "not the password at all")
    unknown = sign_in(client_for(app), "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong name or password" in wrong.text and "wrong name or password" in unknown.text
    assert "dcops_session=" not in wrong.headers.get("set-cookie", "")


def test_sign_in_without_its_form_token_or_from_another_site_is_refused(app):
    client = client_for(app)
    client.get("/signin")
    no_token = client.post("/signin", data={"name": "ravi", "password": PASSWORD}, headers={"origin": ORIGIN})
    assert no_token.status_code == 403
    token = signin_token(client)
    elsewhere = client.post("/signin", data={"name": "ravi", "password": PASSWORD, "csrf_token": token},
                            headers={"origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    assert client.get("/").status_code == 303  # still not signed in


def test_a_session_planted_before_sign_in_is_not_the_one_signed_into(app, portal_db):
    attacker = client_for(app, "vera")
    planted = attacker.cookies.get("dcops_session")
    victim = client_for(app)
    victim.cookies.set("dcops_session", planted, domain="testserver.local")
    sign_in(victim, "ravi")
    assert victim.cookies.get("dcops_session") != planted
    # The planted session was ended, so the attacker's browser is signed out, not signed in as ravi.
    assert attacker.get("/").status_code == 303


def test_sign_out_revokes_the_session_server_side(app):
    client = client_for(app, "ravi")
    cookie = client.cookies.get("dcops_session")
    assert post(client, "/signout").status_code == 303
    replay = client_for(app)
    replay.cookies.set("dcops_session", cookie, domain="testserver.local")
    assert replay.get("/").status_code == 303


def test_an_expired_session_is_refused(app, portal_db):
    client = client_for(app, "ravi")
    with portal_db.transaction() as conn:
        conn.execute(sa.text("UPDATE portal_session SET last_seen_at = :old"),
                     {"old": accounts.utcnow() - accounts.IDLE_TIMEOUT - accounts.TOUCH_INTERVAL})
    assert client.get("/").status_code == 303


def test_security_headers_on_every_page(app):
    for path in ("/signin", "/static/portal.css"):
        response = client_for(app).get(path)
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert "script-src 'self'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client_for(app).get("/signin").headers["cache-control"] == "no-store"


# --- the request form ---------------------------------------------------------------------------

def form_fields(**changes) -> dict:
    document = requests_fixtures.request("lesmis-v2")
    fields = {
        "ministry": document["ministry"], "plan": f"{document['offering']}/{document['plan']}",
        "tier": str(document["tier"]), "classification": document["classification"],
        "environment": document["environment"], "justification": document["justification"],
        "programme.slug": document["programme"]["slug"], "programme.name": document["programme"]["name"],
        "contacts.owner": document["contacts"]["owner"], "contacts.security": document["contacts"]["security"],
        "wanted_by": document["wanted_by"],
    }
    fields.update(changes)
    return fields


def test_the_form_shows_every_mistake_beside_its_field_then_takes_the_corrected_request(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    client = client_for(app, "ravi")
    form = client.get("/requests/new?plan=vm/vm-medium")
    assert form.status_code == 200 and 'value="vm/vm-medium" selected' in form.text
    assert "security officer signs off first" in form.text  # the two-person rule, explained
    token = csrf(client, "/requests/new")
    mistaken = post(client, "/requests", form_fields(**{"programme.slug": "Bad Slug!", "tier": "1",
                                                         "contacts.owner": "not-an-address",
                                                         "wanted_by": "2001-01-01"}), token=token)
    assert mistaken.status_code == 422
    errors = dict(re.findall(r'<p class="field-error" id="error-([a-z_-]+)">([^<]+)</p>', mistaken.text))
    assert set(errors) == {"programme-slug", "tier", "contacts-owner", "wanted_by"}, errors
    assert "does not offer tier 1" in errors["tier"]
    assert 'aria-invalid="true" aria-describedby="error-programme-slug"' in mistaken.text
    assert 'value="Bad Slug!"' in mistaken.text  # what was typed is kept
    with portal_db.transaction() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM hosting_request")).scalar() == 0
    sent = post(client, "/requests", form_fields(), token=token)
    assert sent.status_code == 303
    page = client.get(sent.headers["location"])
    assert "Your request was sent" in page.text and "submitted" in page.text
    with portal_db.transaction() as conn:
        row = conn.execute(sa.text("SELECT submitted_by, programme_slug FROM hosting_request")).one()
        actor = conn.execute(sa.text("SELECT actor FROM audit_entry WHERE action = 'request.submitted'")).scalar()
    assert tuple(row) == ("ravi", "lesmis-v2") and actor == "ravi"


def test_a_requester_cannot_request_for_another_ministry(app, portal_db):
    client = client_for(app, "ravi")
    response = post(client, "/requests", form_fields(ministry="moh"))
    assert response.status_code == 422
    assert "you may not request hosting for &#39;moh&#39;" in response.text
    with portal_db.transaction() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM hosting_request")).scalar() == 0


def test_a_form_without_the_session_token_changes_nothing(app, portal_db):
    mtc, _moh = two_requests(portal_db)
    client = client_for(app, "ravi")
    forged = client.post(f"/requests/{mtc}/withdraw", data={"csrf_token": "guessed"}, headers={"origin": ORIGIN})
    assert forged.status_code == 403
    no_origin = client.post(f"/requests/{mtc}/withdraw", data={"csrf_token": csrf(client)})
    assert no_origin.status_code == 403
    with portal_db.transaction() as conn:
        assert requests_lib.show_request(conn, mtc)["state"] == "submitted"


def test_a_requester_withdraws_their_own_request(app, portal_db):
    mtc, _moh = two_requests(portal_db)
    client = client_for(app, "ravi")
    assert post(client, f"/requests/{mtc}/withdraw").status_code == 303
    with portal_db.transaction() as conn:
        record = requests_lib.show_request(conn, mtc)
    assert record["state"] == "withdrawn" and record["history"][-1]["actor"] == "ravi"


def test_a_viewer_reads_but_may_not_withdraw(app, portal_db):
    mtc, _moh = two_requests(portal_db)
    client = client_for(app, "vera")
    page = client.get(f"/requests/{mtc}")
    assert page.status_code == 200 and "Withdraw this request" not in page.text
    assert post(client, f"/requests/{mtc}/withdraw").status_code == 403


# --- the staff ----------------------------------------------------------------------------------

def test_sign_off_then_approval_by_two_people_with_the_placement_shown(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    request_id = requests_lib.submit(portal_db, requests_fixtures.request("pd-app", personal_data=True),
                                     actor="ravi")
    operator = client_for(app, "olga")
    queue = operator.get("/")
    assert f'href="/requests/{request_id}"' in queue.text
    page = operator.get(f"/requests/{request_id}")
    assert "It would go to gen-a." in page.text and "Free after" in page.text
    refused = post(operator, f"/requests/{request_id}/approve")
    assert refused.status_code == 409 and "needs a security sign-off first" in refused.text
    assert post(operator, f"/requests/{request_id}/sign-off").status_code == 403  # not a security officer
    officer = client_for(app, "sam")
    assert post(officer, f"/requests/{request_id}/sign-off").status_code == 303
    assert post(officer, f"/requests/{request_id}/approve").status_code == 403  # not an operator
    assert post(operator, f"/requests/{request_id}/approve").status_code == 303
    with portal_db.transaction() as conn:
        record = requests_lib.show_request(conn, request_id)
    assert record["state"] == "approved" and record["security_signoff_by"] == "sam"
    assert record["decided_by"] == "olga" and record["cluster"] == "gen-a"
    ministry_page = client_for(app, "ravi").get(f"/requests/{request_id}")
    assert "approved" in ministry_page.text and "gen-a" in ministry_page.text


def test_a_rejection_needs_a_reason_and_the_ministry_reads_it(app, portal_db):
    mtc, _moh = two_requests(portal_db)
    operator = client_for(app, "olga")
    assert post(operator, f"/requests/{mtc}/reject", {"reason": " "}).status_code == 400
    assert post(operator, f"/requests/{mtc}/reject", {"reason": "Use the shared portal plan"}).status_code == 303
    assert "Use the shared portal plan" in client_for(app, "ravi").get(f"/requests/{mtc}").text


# --- who sees what ------------------------------------------------------------------------------

def test_authorisation_matrix_every_read_route_every_role_own_and_other_ministry(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    """Every route that shows one object, for every role, on the own ministry's object, another
    ministry's object and an id or slug that does not exist: another ministry's object answers
    exactly like a missing one."""
    mtc, moh = two_requests(portal_db)
    routes = {
        "request page": ("/requests/{}", {"mtc": str(mtc), "moh": str(moh), "none": "999999"}),
        "request page, odd id": ("/requests/{}", {"none": "0x10"}),
        "programme page": ("/programmes/{}", {"mtc": "digital-id", "moh": "dhis2", "none": "no-such-thing"}),
        "request api": ("/api/v1/requests/{}", {"mtc": str(mtc), "moh": str(moh), "none": "999999"}),
        "programme api": ("/api/v1/programmes/{}", {"mtc": "digital-id", "moh": "dhis2", "none": "nope"}),
        "ministry page": ("/ministries/{}", {"mtc": "mtc", "moh": "moh", "none": "nope"}),
    }
    sees = {"vera": {"mtc"}, "ravi": {"mtc"}, "hana": {"moh"}, "olga": {"mtc", "moh"}, "sam": {"mtc", "moh"},
            "aude": {"mtc", "moh"}}
    leaks = []
    for person, visible in sees.items():
        client = client_for(app, person)
        for route, (pattern, keys) in routes.items():
            missing = client.get(pattern.format(keys["none"]))
            if missing.status_code != 404:
                leaks.append((person, route, "none", missing.status_code))
            for ministry in ("mtc", "moh"):
                if ministry not in keys:
                    continue
                response = client.get(pattern.format(keys[ministry]))
                expected = 200 if ministry in visible else 404
                if response.status_code != expected:
                    leaks.append((person, route, ministry, response.status_code))
                # A page names its own address (the language form's way back): all else is alike.
                same = response.text.replace(pattern.format(keys[ministry]), "") == \
                    missing.text.replace(pattern.format(keys["none"]), "")
                if expected == 404 and not same:
                    leaks.append((person, route, ministry, "answers unlike a missing object"))
    assert leaks == []


def test_listings_hold_only_the_ministrys_own_rows(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    mtc, moh = two_requests(portal_db)
    ravi = client_for(app, "ravi")
    listed = ravi.get("/requests").text
    assert f'href="/requests/{mtc}"' in listed and f'href="/requests/{moh}"' not in listed
    programmes = ravi.get("/programmes").text
    assert "digital-id" in programmes and "dhis2" not in programmes
    everyone = client_for(app, "aude").get("/requests").text
    assert f'href="/requests/{mtc}"' in everyone and f'href="/requests/{moh}"' in everyone


# --- the JSON API -------------------------------------------------------------------------------

def test_the_api_with_a_bearer_token(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    token = accounts.create_token(portal_db, "ravi", label="script", actor="setup")
    api = TestClient(app, headers={"authorization": f"Bearer {token}"})
    assert [p["slug"] for p in api.get("/api/v1/programmes").json()] == ["digital-id", "e-gov-portal"]
    created = api.post("/api/v1/requests", json=requests_fixtures.request("api-app"))
    assert created.status_code == 201 and created.headers["location"] == f"/api/v1/requests/{created.json()['id']}"
    bad = api.post("/api/v1/requests", json=requests_fixtures.request("Bad Slug", tier=1, ministry="moh"))
    assert bad.status_code == 422 and len(bad.json()["problems"]) == 3
    request_id = created.json()["id"]
    assert api.get(f"/api/v1/requests/{request_id}").json()["submitted_by"] == "ravi"
    withdrawn = api.post(f"/api/v1/requests/{request_id}/withdraw", json={"reason": "duplicate"})
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    accounts.revoke_token(portal_db, token[:accounts.TOKEN_PREFIX_LENGTH], actor="setup")
    assert api.get("/api/v1/programmes").status_code == 401


def test_the_api_refuses_a_session_post_without_the_csrf_header(app, portal_db):
    client = client_for(app, "ravi")
    refused = client.post("/api/v1/requests", json=requests_fixtures.request("csrf-app"),
                          headers={"origin": ORIGIN})
    assert refused.status_code == 403
    accepted = client.post("/api/v1/requests", json=requests_fixtures.request("csrf-app"),
                           headers={"origin": ORIGIN, "x-csrf-token": csrf(client)})
    assert accepted.status_code == 201


def test_the_openapi_document_lists_the_api_and_no_page(app):
    document = TestClient(app).get("/api/v1/openapi.json").json()
    paths = set(document["paths"])
    assert {"/api/v1/programmes", "/api/v1/programmes/{slug}", "/api/v1/requests", "/api/v1/requests/{request_id}",
            "/api/v1/requests/{request_id}/withdraw"} <= paths
    assert not any(not path.startswith("/api/v1/") for path in paths)


# --- languages, and the CLI's start-up ----------------------------------------------------------

def test_the_language_is_chosen_and_remembered_on_the_account(app, portal_db):
    client = client_for(app, "ravi")
    assert post(client, "/language", {"language": "lo", "next": "/"}).status_code == 303
    again = client_for(app, "ravi")
    assert '<html lang="lo">' in again.get("/").text
    assert post(client, "/language", {"language": "xx", "next": "https://evil.example/"}).headers["location"] == "/"


def test_the_cli_does_not_import_the_web_stack():
    heavy = ("fastapi", "starlette", "uvicorn", "argon2", "authlib", "babel", "dcops.portal", "dcops.accounts")
    probe = subprocess.run([sys.executable, "-c", "import sys, dcops.cli.main; "
                            f"print([m for m in {heavy!r} if m in sys.modules])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"


# --- reports and statements ---------------------------------------------------------------------

def this_month(settings) -> str:
    return accounts.utcnow().astimezone(settings.tz).strftime("%Y-%m")


def test_a_ministry_reads_its_own_reports_and_statements_in_every_format(app, portal_db, settings):
    month = this_month(settings)
    client = client_for(app, "ravi")
    index = client.get("/reports")
    assert index.status_code == 200 and f'href="/reports/mtc/{month}.html"' in index.text
    assert "/reports/moh/" not in index.text
    html = client.get(f"/reports/mtc/{month}.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "'unsafe-inline'" in html.headers["content-security-policy"]  # its own styles, no script
    assert "script-src" not in html.headers["content-security-policy"]
    document = client.get(f"/reports/mtc/{month}.json").json()
    assert document["filters"]["ministry"] == "mtc"
    assert {p["ministry"] for p in document["programmes"] + document["not_monitored"]} <= {"mtc"}
    assert client.get(f"/reports/mtc/{month}.csv").text.startswith("ministry,ministry_name,programme,")
    statement = client.get(f"/statements/mtc/{month}")
    assert statement.status_code == 200 and "Provisional" in statement.text
    assert client.get(f"/statements/mtc/{month}.csv").text.splitlines()[0].startswith("programme,name,plan")


def test_another_ministrys_reports_answer_as_missing_ones(any_app, any_settings):
    app = any_app
    month = this_month(any_settings)
    client = client_for(app, "ravi")
    for path in (f"/reports/moh/{month}.html", f"/statements/moh/{month}", f"/api/v1/reports/moh/{month}",
                 f"/api/v1/statements/moh/{month}", "/api/v1/reports/moh"):
        other = client.get(path)
        missing = client.get(path.replace("moh", "nope"))
        assert other.status_code == missing.status_code == 404, path
    assert client.get(f"/reports/mtc/{month}.exe").status_code == 404
    assert client.get("/reports/mtc/2026-13.html").status_code == 404
    assert client_for(app, "aude").get(f"/reports/moh/{month}.json").status_code == 200


def test_behind_a_tls_proxy_the_origin_is_the_configured_one_and_cookies_are_secure(portal_db, settings):
    from dataclasses import replace

    app = create_app(replace(settings, portal_origin="https://portal.example.gov.la"), portal_db)
    # The proxy speaks TLS to the browser, which then sends the Secure cookies back.
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    token = signin_token(client)
    direct = client.post("/signin", data={"name": "ravi", "password": PASSWORD, "csrf_token": token},
                         headers={"origin": ORIGIN})
    assert direct.status_code == 403  # the address the proxy forwards from is not the portal's origin
    proxied = client.post("/signin", data={"name": "ravi", "password": PASSWORD, "csrf_token": signin_token(client)},
                          headers={"origin": "https://portal.example.gov.la"})
    assert proxied.status_code == 303
    cookie = [h for h in proxied.headers.get_list("set-cookie") if h.startswith("dcops_session=")][0]
    assert "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize("value", ["portal.example.gov.la", "ftp://portal", "https://portal/path", "https://"])
def test_a_malformed_portal_origin_is_a_one_line_setting_error(value, tmp_path):
    from dcops.errors import ConfigError
    from dcops.settings import Settings

    with pytest.raises(ConfigError, match="DCOPS_PORTAL_ORIGIN must be a scheme and a host"):
        Settings.from_env({"DCOPS_HOME": str(tmp_path), "DCOPS_PORTAL_ORIGIN": value})


def test_authorisation_matrix_every_action_every_role_own_and_other_ministry(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    """Each action on a request, for every role, on the own ministry's and another's: another
    ministry's request is not there (404), one's own without the role is forbidden (403)."""
    allowed = {"withdraw": {"requester", "operator"}, "sign-off": {"security-officer"}, "approve": {"operator"},
               "reject": {"operator"}}
    roles = {"vera": ("viewer", "mtc"), "ravi": ("requester", "mtc"), "olga": ("operator", None),
             "sam": ("security-officer", None), "aude": ("auditor", None)}
    wrong = []
    for action, who_may in allowed.items():
        for person, (role, ministry) in roles.items():
            mtc, moh = two_requests(portal_db, f"-{action}-{person}")
            client = client_for(app, person)
            for target, owner in ((mtc, "mtc"), (moh, "moh")):
                visible = ministry is None or ministry == owner
                response = post(client, f"/requests/{target}/{action}", {"reason": "not needed any more"})
                if not visible:
                    expected = {404}
                elif role not in who_may:
                    expected = {403}
                else:
                    expected = {303, 409}  # done, or refused by the workflow (e.g. nothing to sign off)
                if response.status_code not in expected:
                    wrong.append((action, person, owner, response.status_code))
    assert wrong == []


def test_failed_sign_ins_are_limited_and_audited(app, portal_db):
    client = client_for(app)
    codes = [sign_in(client, "ravi", "wrong password, again").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert sign_in(client, "ravi").status_code == 429  # even the right password, until the window passes
    with portal_db.transaction() as conn:
        failed = conn.execute(sa.text("SELECT COUNT(*) FROM audit_entry WHERE action = 'user.signin-failed'")).scalar()
    assert failed == 5


def test_the_staff_decide_through_the_api_under_the_same_rules(any_app, any_portal_db):
    app, portal_db = any_app, any_portal_db
    request_id = requests_lib.submit(portal_db, requests_fixtures.request("api-decided", personal_data=True),
                                     actor="ravi")
    operator = TestClient(app, headers={"authorization": f"Bearer {accounts.create_token(portal_db, 'olga', actor='setup')}"})
    officer = TestClient(app, headers={"authorization": f"Bearer {accounts.create_token(portal_db, 'sam', actor='setup')}"})
    requester = TestClient(app, headers={"authorization": f"Bearer {accounts.create_token(portal_db, 'hana', actor='setup')}"})
    assert operator.get(f"/api/v1/requests/{request_id}/placement").json()["cluster"] == "gen-a"
    assert requester.post(f"/api/v1/requests/{request_id}/approve").status_code == 404  # another ministry's
    early = operator.post(f"/api/v1/requests/{request_id}/approve")
    assert early.status_code == 409 and "security sign-off first" in early.json()["detail"]
    assert officer.post(f"/api/v1/requests/{request_id}/approve").status_code == 403
    assert officer.post(f"/api/v1/requests/{request_id}/sign-off").json()["security_signoff_by"] == "sam"
    placed = operator.post(f"/api/v1/requests/{request_id}/approve")
    assert placed.status_code == 200 and placed.json()["cluster"] == "gen-a"
    assert placed.json()["reserved"] == {"vcpu": 8, "ram_gib": 32, "storage_gib": 200}
    other = requests_lib.submit(portal_db, requests_fixtures.request("api-refused"), actor="ravi")
    assert operator.post(f"/api/v1/requests/{other}/reject", json={"reason": ""}).status_code == 400
    refused = operator.post(f"/api/v1/requests/{other}/reject", json={"reason": "Use the shared plan"})
    assert refused.json()["state"] == "rejected" and refused.json()["reason"] == "Use the shared plan"


def test_a_cached_ministry_section_is_still_only_for_its_ministry_and_a_change_shows_at_once(app, portal_db):
    staff = client_for(app, "olga")
    assert "Health information system" in staff.get("/ministries/moh").text  # now cached for a few seconds
    ravi = client_for(app, "ravi")
    assert ravi.get("/ministries/moh").status_code == 404
    assert "Health information system" not in ravi.get("/").text
    before = ravi.get("/").text
    assert "lesmis-v2" not in before and "None." in before
    assert post(ravi, "/requests", form_fields()).status_code == 303
    assert "New portal" in ravi.get("/").text  # the open request, without waiting for the cache
