"""The ministry portal in a real browser (Chromium through Playwright) against `dcops portal serve`:
a request's whole journey from the form to the approval e-mail, axe on every page at desktop and
phone width, the forms without JavaScript, and screenshots (desktop, phone, print, Lao).

Set DCOPS_SCREENSHOTS=1 to also write the screenshots to /tmp/portal-screenshots/ for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from dcops import accounts, incidents
from dcops.access import Grant
from dcops.catalogue import requests as requests_lib
from dcops.db import open_database, upgrade, utcnow
from dcops.inventory.service import load_directory
from dcops.settings import Settings

import inventories
from browsers import browser  # noqa: F401 - a fixture
import requests_fixtures
from outages import add_short_outages

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
PEOPLE = {
    "ravi": [Grant("requester", "mtc")],       # the journey's requester
    "nina": [Grant("requester", "mtc")],       # requests without JavaScript
    "noi": [Grant("requester", "mtc")],        # reads the portal in Lao (the language is kept on the account)
    "sam": [Grant("security-officer")],
    "olga": [Grant("operator")],
}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS_ENV = "DCOPS_SCREENSHOTS"
SCREENSHOTS_DIR = Path("/tmp/portal-screenshots")
FROM = "portal@dc.example.la"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def this_month(settings: Settings) -> str:
    return accounts.utcnow().astimezone(settings.tz).strftime("%Y-%m")


# --- the portal, served for real ----------------------------------------------------------------

class Portal:
    def __init__(self, url: str, settings: Settings, env: dict[str, str], seeded_request: int):
        self.url = url
        self.settings = settings
        self.env = env
        self.seeded_request = seeded_request  # a submitted request of mtc with personal data, by ravi


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    home = tmp_path_factory.mktemp("portal")
    env = {**os.environ, "DCOPS_HOME": str(home), "DCOPS_DATABASE_URL": f"sqlite:///{home / 'dcops.db'}"}
    for name in [n for n in env if n.startswith(("DCOPS_SMTP_", "DCOPS_OIDC_", "DCOPS_PORTAL_"))]:
        del env[name]
    settings = Settings.from_env(env)
    upgrade(settings)
    database = open_database(settings)
    try:
        load_directory(database, inventories.write(home / "inv", requests_fixtures.inventory()))
        for name, grants in PEOPLE.items():
            accounts.add_user(database, name, grants=frozenset(grants), password=PASSWORD,
                              display_name=name.capitalize(), email=f"{name}@example.la", actor="setup")
        seeded = requests_lib.submit(database, requests_fixtures.request("seeded-app", personal_data=True),
                                     actor="ravi")
        # A fortnight with outages, so that the status page has an incident told in full and the
        # table of the others (axe and the screenshots check both).
        outages = add_short_outages(database, "e-gov-portal", 6, end=utcnow() - timedelta(days=1))
        incidents.update_incident(database, outages[0], status="resolved", note="Load balancer restarted.",
                                  cause="A failed health check on one node.", actor="setup")
    finally:
        database.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "dcops", "portal", "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"dcops portal serve exited {process.returncode}: "
                            f"{(home / 'serve.log').read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{url}/signin", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("dcops portal serve did not answer within 30 s")
            time.sleep(0.1)
        yield Portal(url, settings, env, seeded)
    finally:
        process.terminate()  # uvicorn stops gracefully on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def new_context(browser, portal: Portal, viewport=DESKTOP, **options):
    context = browser.new_context(base_url=portal.url, viewport=viewport, **options)
    context.set_default_timeout(10_000)
    return context


def sign_in(page, name: str) -> None:
    """Sign in through the form, as a person does."""
    page.goto("/signin")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))
    assert page.locator(".who").inner_text() == name.capitalize()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin$"))


@pytest.fixture(scope="module")
def visitors(browser, portal):
    """A browser context for each visitor the page tests use: not signed in, ravi (a ministry's
    requester), olga (an operator). Each page sets its own size."""
    contexts = {}
    try:
        for who in (None, "ravi", "olga"):
            contexts[who] = context = new_context(browser, portal)
            if who is not None:
                page = context.new_page()
                sign_in(page, who)
                page.close()
        yield contexts
    finally:
        for context in contexts.values():
            context.close()


def fill_request_form(page, slug: str, *, wanted_by: str, personal_data: bool = False) -> None:
    page.get_by_label("Service tier").select_option("2")
    page.get_by_label("Short name (slug)").fill(slug)
    page.get_by_label("Name", exact=True).fill("Lao education statistics")
    page.get_by_label("Classification").select_option("internal")
    if personal_data:
        page.get_by_label("It holds personal data").check()
    page.get_by_label("Owner's e-mail").fill("owner@mtc.example.la")
    page.get_by_label("Security contact's e-mail").fill("sec@mtc.example.la")
    page.get_by_label("Wanted by").fill(wanted_by)
    page.get_by_label("Why the ministry needs it").fill("The ministry publishes school statistics.")


def in_a_month() -> str:
    return (date.today() + timedelta(days=30)).isoformat()


# --- a real SMTP server on loopback -------------------------------------------------------------

class Inbox:
    """An aiosmtpd handler that keeps every message it is sent."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes
        from email.policy import default

        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=default)))
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


# --- the journey ---------------------------------------------------------------------------------

def test_a_request_from_the_form_to_its_approval_e_mail(browser, portal, smtp_inbox):
    inbox, smtp_port = smtp_inbox
    context = new_context(browser, portal)
    page = context.new_page()
    try:
        # The requester finds a plan in the catalogue and asks for it, with two mistakes first.
        sign_in(page, "ravi")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Catalogue").click()
        plan = page.get_by_role("row", name=re.compile("medium"))
        assert "4 vCPU · 16 GiB memory · 100 GiB storage" in plan.inner_text()
        plan.get_by_role("link", name="Request this plan").click()
        page.wait_for_url(re.compile(r"/requests/new\?plan=vm/vm-medium$"))
        assert page.get_by_label("Plan").input_value() == "vm/vm-medium"
        fill_request_form(page, "Lao-Stats", wanted_by="2001-01-01", personal_data=True)
        page.get_by_role("button", name="Send the request").click()
        page.wait_for_load_state()

        summary = page.locator(".error-summary")
        assert summary.is_visible()
        assert summary.get_by_role("heading").inner_text() == "2 problems to fix: nothing was sent"
        assert summary.get_by_role("link").count() == 2
        for field, words in (("programme-slug", "[a-z0-9-]"), ("wanted_by", "past")):
            error = page.locator(f"#error-{field}")
            assert error.is_visible() and words in error.inner_text().lower(), error.inner_text()
            control = page.locator(f"#{field}")
            assert control.get_attribute("aria-invalid") == "true"
            assert control.get_attribute("aria-describedby") == f"error-{field}"
            # beside its field: in the same block, right above the control
            assert page.locator(f".field:has(#{field}) #error-{field}").count() == 1
            box, under = error.bounding_box(), control.bounding_box()
            assert 0 <= under["y"] - (box["y"] + box["height"]) < 40
        assert page.get_by_label("Short name (slug)").input_value() == "Lao-Stats"  # what was typed is kept
        assert page.get_by_label("It holds personal data").is_checked()

        page.get_by_label("Short name (slug)").fill("lao-stats")
        page.get_by_label("Wanted by").fill(in_a_month())
        page.get_by_role("button", name="Send the request").click()
        page.wait_for_url(re.compile(r"/requests/\d+\?submitted=1$"))
        request_id = int(re.search(r"/requests/(\d+)", page.url).group(1))
        assert page.get_by_role("status").inner_text() == "Your request was sent. We e-mail you when it changes."
        assert page.locator(".request-state").inner_text() == "submitted"
        sign_out(page)

        # The security officer signs it off (personal data: the two-person rule).
        sign_in(page, "sam")
        page.get_by_role("link", name=str(request_id), exact=True).click()
        page.wait_for_url(re.compile(rf"/requests/{request_id}$"))
        assert page.get_by_role("button", name="Approve").count() == 0  # not an operator
        page.get_by_role("button", name="Sign off its security").click()
        page.wait_for_url(re.compile(rf"/requests/{request_id}$"))
        assert "sam" in page.locator("dt:has-text('Security sign-off') + dd").inner_text()
        sign_out(page)

        # The operator sees where it would go and approves it.
        sign_in(page, "olga")
        page.get_by_role("link", name=str(request_id), exact=True).click()
        page.wait_for_url(re.compile(rf"/requests/{request_id}$"))
        assert page.get_by_text("It would go to gen-a.").is_visible()
        candidates = page.get_by_role("table", name="Candidate clusters")
        assert candidates.get_by_role("row", name=re.compile("gen-a")).count() == 1
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(re.compile(rf"/requests/{request_id}$"))
        assert page.locator(".request-state").inner_text() == "approved"
        sign_out(page)

        # The requester sees it approved.
        sign_in(page, "ravi")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
        row = page.get_by_role("row", name=re.compile(rf"^{request_id} "))
        assert row.locator(".request-state").inner_text() == "approved"
        row.get_by_role("link", name=str(request_id), exact=True).click()
        assert page.locator(".request-state").inner_text() == "approved"
        assert page.locator("dt:has-text('Placed on') + dd").inner_text() == "gen-a"
    finally:
        context.close()

    # One delivery pass, and the approval's e-mail is at the SMTP server, to the requester.
    smtp_env = {"DCOPS_SMTP_HOST": "127.0.0.1", "DCOPS_SMTP_PORT": str(smtp_port), "DCOPS_SMTP_FROM": FROM,
                "DCOPS_SMTP_TIMEOUT_S": "10"}
    sent = subprocess.run([sys.executable, "-m", "dcops", "outbox", "send"], env={**portal.env, **smtp_env},
                          capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    approved = [(rcpt, message) for rcpt, message in inbox.messages
                if message["subject"].startswith(f"Hosting request {request_id} ")
                and message["subject"].endswith(": approved")]
    assert len(approved) == 1, [m["subject"] for _r, m in inbox.messages]
    recipients, message = approved[0]
    assert "ravi@example.la" in recipients and "ravi@example.la" in message["to"]
    assert message["subject"] == f"Hosting request {request_id} (Lao education statistics): approved"
    assert message["from"] == FROM
    assert f"Hosting request {request_id} is now approved." in message.get_content()


# --- without JavaScript ---------------------------------------------------------------------------

def test_signing_in_and_requesting_work_without_javascript(browser, portal):
    context = new_context(browser, portal, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "nina")
        page.goto("/requests/new?plan=vm/vm-medium")
        assert page.locator("script").count() == 0  # nothing on the portal's pages needs a script
        fill_request_form(page, "nojs-app", wanted_by=in_a_month())
        page.get_by_role("button", name="Send the request").click()
        page.wait_for_url(re.compile(r"/requests/\d+\?submitted=1$"))
        assert page.get_by_role("status").inner_text() == "Your request was sent. We e-mail you when it changes."
        assert page.get_by_role("heading", level=1).inner_text().endswith(": Lao education statistics")
        assert page.locator("dt:has-text('Programme') + dd").inner_text() == "nojs-app"
    finally:
        context.close()


# --- accessibility ----------------------------------------------------------------------------------

def axe_pages(portal: Portal) -> list[tuple[str | None, str, str]]:
    """(who, path, what) of every page to check; who None: not signed in."""
    month = this_month(portal.settings)
    seeded = portal.seeded_request
    return [
        (None, "/signin", "sign-in"),
        ("ravi", "/", "home of a ministry"),
        ("olga", "/", "home of the staff"),
        ("ravi", "/catalogue", "catalogue"),
        ("ravi", "/requests/new", "request form"),
        ("ravi", "/requests/new#errors", "request form with errors"),
        ("ravi", "/requests", "requests"),
        ("ravi", f"/requests/{seeded}?submitted=1", "request of a ministry"),
        ("olga", f"/requests/{seeded}", "request for the staff"),
        ("ravi", "/programmes", "programmes"),
        ("ravi", "/programmes/digital-id", "programme"),
        ("ravi", "/reports", "reports"),
        ("ravi", f"/statements/mtc/{month}", "statement"),
        ("ravi", "/status", "status page of a ministry"),
        ("olga", "/status", "status page of the staff"),
        ("ravi", "/no-such-page", "not found"),
    ]


def load(page, path: str):
    """Show `path` in `page`; "/requests/new#errors" is the request form sent with two mistakes."""
    if path.endswith("#errors"):
        page.goto(path.removesuffix("#errors"))
        page.get_by_label("Short name (slug)").fill("Bad Slug")
        page.get_by_label("Wanted by").fill("2001-01-01")
        page.get_by_role("button", name="Send the request").click()
        page.wait_for_load_state()
        assert page.locator(".error-summary").is_visible()
    else:
        answer = page.goto(path)
        assert answer.status == (404 if "no-such" in path else 200), path
    return page


def open_page(context, path: str, viewport=DESKTOP):
    """A fresh page showing `path` (axe on a page used before would repeat its findings)."""
    page = context.new_page()
    page.set_viewport_size(viewport)
    return load(page, path)


def test_every_page_passes_axe_at_desktop_and_phone_width(visitors, portal):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    serious, minor = [], []
    for viewport in (DESKTOP, PHONE):
        for who, path, what in axe_pages(portal):
            page = open_page(visitors[who], path, viewport)
            try:
                result = axe.run(page)
                ids = page.evaluate("[...document.querySelectorAll('[id]')].map(element => element.id)")
            finally:
                page.close()
            where = f"{what} ({path}) at {viewport['width']} px"
            assert result.response["passes"], f"axe checked nothing on {where}"
            for violation in result.response["violations"]:
                targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
                line = f"{where}: {violation['id']} [{violation['impact']}] {violation['help']}: {targets}"
                (serious if violation["impact"] in ("serious", "critical") else minor).append(line)
            # axe 4.12 no longer checks this: a repeated id breaks the label or description naming it
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                serious.append(f"{where}: ids used more than once: {repeated}")
    for line in minor:
        print("axe (moderate or minor):", line)
    assert not serious, "\n".join(serious)


# --- screenshots ------------------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def no_wider_than_the_screen(page, what: str) -> None:
    """Nothing sticks out sideways: a wide table scrolls inside its wrapper, the page itself does not."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{what} is {overflow} px wider than the window"


def test_screenshots_at_desktop_and_phone_width_in_print_and_in_lao(browser, visitors, portal, tmp_path):
    targets = [tmp_path]
    if os.environ.get(SCREENSHOTS_ENV):
        SCREENSHOTS_DIR.mkdir(exist_ok=True)
        targets.append(SCREENSHOTS_DIR)
    month = this_month(portal.settings)
    seeded = portal.seeded_request
    pages = [
        (None, "/signin", "signin"),
        ("ravi", "/", "home"),
        ("ravi", "/catalogue", "catalogue"),
        ("ravi", "/requests/new#errors", "request-form-errors"),
        ("ravi", "/requests", "requests"),
        ("ravi", f"/requests/{seeded}", "request"),
        ("olga", f"/requests/{seeded}", "request-staff"),
        ("olga", "/", "staff-home"),
        ("ravi", "/programmes/digital-id", "programme"),
        ("ravi", "/reports", "reports"),
        ("ravi", f"/statements/mtc/{month}", "statement"),
        ("ravi", "/status", "status"),
    ]
    written = []

    def shoot(page, name: str, width: int) -> None:
        first = targets[0] / f"{name}.png"
        page.screenshot(path=str(first), full_page=True)
        for target in targets[1:]:
            shutil.copyfile(first, target / first.name)
        written.extend((target / first.name, width) for target in targets)

    tabs = {who: context.new_page() for who, context in visitors.items()}
    try:
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE), ("print", DESKTOP)):
            for who, path, name in pages:
                page = tabs[who]
                page.set_viewport_size(viewport)
                page.emulate_media(media="screen")  # the form with mistakes is filled in on screen
                load(page, path)
                if label == "print":
                    page.emulate_media(media="print")
                    assert page.locator("form:visible").count() == 0, f"a form shows in print on {path}"
                    assert page.locator(".site-nav:visible, .header-tools:visible").count() == 0, path
                    assert page.get_by_role("heading", level=1).is_visible()
                else:
                    no_wider_than_the_screen(page, f"{path} at {viewport['width']} px")
                shoot(page, f"{label}-{name}", viewport["width"])
    finally:
        for tab in tabs.values():
            tab.close()

    # Lao: switch the language with the header's form (the catalogue may still be partial).
    context = new_context(browser, portal, PHONE)
    try:
        page = context.new_page()
        sign_in(page, "noi")
        page.get_by_label("Language").select_option(label="ລາວ")
        page.locator(".header-tools form").first.get_by_role("button").click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "lo"
        for path, name in (("/", "home"), ("/catalogue", "catalogue"), ("/requests/new", "request-form"),
                           (f"/statements/mtc/{month}", "statement")):
            load(page, path)
            assert page.locator("html").get_attribute("lang") == "lo"
            assert page.get_by_role("main").locator("h1").count() == 1
            no_wider_than_the_screen(page, f"{path} in Lao at {PHONE['width']} px")
            shoot(page, f"lao-phone-{name}", PHONE["width"])
    finally:
        context.close()

    assert len(written) == len(targets) * (3 * len(pages) + 4)
    for path, width in written:
        shot_width, height = png_size(path)
        assert shot_width == width and height >= 300, (path, shot_width, height)
