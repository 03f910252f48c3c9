"""The portal in Lao and English: the catalogue is complete and matches the templates, pages render in
Lao with no English template string left, dates and amounts are written as each language writes them."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from dcops import accounts
from dcops.access import Grant
from dcops.catalogue import requests as requests_lib
from dcops.inventory.service import load_directory
from dcops.portal import i18n
from dcops.portal.app import create_app

import inventories
import requests_fixtures

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "dcops" / "locale"
POT = LOCALE / "messages.pot"
LAO_PO = LOCALE / "lo" / "LC_MESSAGES" / "messages.po"
REFRESH = ("pybabel extract -F dcops/locale/babel.cfg --project=dcops -o dcops/locale/messages.pot dcops/portal"
           " && pybabel update -i dcops/locale/messages.pot -d dcops/locale --ignore-obsolete")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")

ORIGIN = "http://testserver"
PASSWORD = "correct horse battery staple"
VIENTIANE = ZoneInfo("Asia/Vientiane")


def read_catalog(path: Path, locale: str | None = None):
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def ids_of(catalog) -> set:
    """Each message's id: a string, or (singular, plural) for an ngettext message."""
    return {message.id for message in catalog if message.id}


def forms_of(message_id) -> tuple[str, ...]:
    return message_id if isinstance(message_id, tuple) else (message_id,)


def placeholders(text: str) -> set[str]:
    """The %(name)s placeholders of a message, each with its conversion."""
    return {match.group(0) for match in PLACEHOLDER.finditer(text)}


# --- the catalogue ------------------------------------------------------------------------------

def test_extracting_the_templates_gives_exactly_the_committed_pot(tmp_path):
    fresh_path = tmp_path / "messages.pot"
    run = subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "dcops/locale/babel.cfg",
                          "--project=dcops", "-o", str(fresh_path), "dcops/portal"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    fresh, committed = ids_of(read_catalog(fresh_path)), ids_of(read_catalog(POT))
    assert len(fresh) > 150  # the extractor really read the templates (every page's strings)
    assert {"Request this plan", "Sign in", ("%(num)d programme", "%(num)d programmes")} <= fresh
    assert fresh == committed, (
        f"dcops/locale/messages.pot is out of date: new in the templates {sorted(map(str, fresh - committed))}, "
        f"gone from them {sorted(map(str, committed - fresh))}. Refresh it and the .po with\n    {REFRESH}\n"
        "then translate the new entries in dcops/locale/lo/LC_MESSAGES/messages.po.")


def test_every_message_has_its_lao_with_the_same_placeholders():
    template = read_catalog(POT)
    lao = read_catalog(LAO_PO, locale="lo_LA")
    assert lao.plural_forms == "nplurals=1; plural=0;" and lao.num_plurals == 1
    assert ids_of(lao) == ids_of(template), (
        f"the Lao catalogue does not hold the .pot's messages: run\n    {REFRESH}\nthen translate the new entries")
    problems = []
    for message in lao:
        if not message.id:
            continue
        english = forms_of(message.id)
        strings = forms_of(message.string)
        if message.fuzzy:
            problems.append(f"{english[0]!r} is marked fuzzy (not used): check its Lao, then remove the flag")
        if len(strings) != lao.num_plurals or not all(s.strip() for s in strings):
            problems.append(f"{english[0]!r} has no Lao translation")
            continue
        wanted = set().union(*(placeholders(e) for e in english))
        values = {name: 1 for name in PLACEHOLDER.findall(" ".join(english))}
        for string in strings:
            if placeholders(string) != wanted:
                problems.append(f"{english[0]!r}: the Lao has {sorted(placeholders(string))}, "
                                f"the English {sorted(wanted)}")
            try:  # newstyle gettext always formats with %, so a stray % would break the page
                string % values
            except (ValueError, TypeError, KeyError) as error:
                problems.append(f"{english[0]!r}: the Lao does not format ({error})")
    assert not problems, "\n".join(problems) + f"\n(refresh with: {REFRESH})"


def test_the_catalogue_says_its_lao_needs_a_native_speakers_review():
    text = LAO_PO.read_text(encoding="utf-8")
    assert "NEEDS REVIEW BY A NATIVE LAO SPEAKER" in text.split('msgid ""', 1)[0]
    lao = read_catalog(LAO_PO, locale="lo_LA")
    assert all(message.user_comments for message in lao if message.id)


def test_the_compiled_lao_catalogue_is_what_the_portal_uses():
    lao = i18n.translations("lo")
    assert lao.gettext("Request this plan") == "ຂໍໃຊ້ແຜນບໍລິການນີ້"
    assert lao.ngettext("%(num)d programme", "%(num)d programmes", 5) == "%(num)d ໂຄງການ"
    assert i18n.translations("en").gettext("Request this plan") == "Request this plan"


# --- pages in Lao -------------------------------------------------------------------------------

@pytest.fixture
def portal_db(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    for name, grants in {"ravi": [Grant("requester", "mtc")], "olga": [Grant("operator")]}.items():
        accounts.add_user(any_database, name, grants=frozenset(grants), password=PASSWORD,
                          email=f"{name}@example.la", actor="setup")
    return any_database


@pytest.fixture
def app(portal_db, any_settings):
    return create_app(any_settings, portal_db)


def signed_in(app, name: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    page = client.get("/signin")
    token = re.search(r'action="/signin"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                      page.text).group(1)
    response = client.post("/signin", data={"name": name, "password": PASSWORD, "csrf_token": token, "next": "/"},
                           headers={"origin": ORIGIN})
    assert response.status_code == 303
    return client


def csrf(client: TestClient, path: str = "/") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def choose(client: TestClient, language: str, *, signed_in: bool = True):
    data = {"language": language, "next": "/"}
    if signed_in:
        data["csrf_token"] = csrf(client)
    response = client.post("/language", data=data, headers={"origin": ORIGIN})
    assert response.status_code == 303
    return response


class _Text(HTMLParser):
    """What a reader sees or hears of a page: its text, and the attributes read aloud."""

    SPOKEN = ("aria-label", "title", "alt", "placeholder")

    def __init__(self):
        super().__init__()
        self.segments: list[str] = []

    def handle_data(self, data):
        self._add(data)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in self.SPOKEN and value:
                self._add(value)

    def _add(self, text):
        for part in text.split("·"):
            part = " ".join(part.split())
            if part:
                self.segments.append(part)


def english_left(html: str, message_ids) -> set[str]:
    """The English template strings (msgids, placeholders standing for anything) that a page shows:
    a text that is one of them, or that holds one of several words."""
    parser = _Text()
    parser.feed(html)
    found = set()
    for message_id in message_ids:
        for form in forms_of(message_id):
            pattern = "".join(".+?" if PLACEHOLDER.fullmatch(piece) else re.escape(piece)
                              for piece in re.split(r"(%\(\w+\)[sd])", form) if piece)
            several_words = len(PLACEHOLDER.sub("", form).split()) > 1
            for segment in parser.segments:
                if re.fullmatch(pattern, segment) or (several_words and re.search(pattern, segment)):
                    found.add(form)
    return found


@pytest.fixture(scope="module")
def message_ids():
    return ids_of(read_catalog(POT))


def test_the_home_catalogue_and_request_form_are_all_lao(app, portal_db, message_ids):
    requests_lib.submit(portal_db, requests_fixtures.request("mtc-app"), actor="ravi")  # an open request on home
    client = signed_in(app, "ravi")
    english = {path: client.get(path).text for path in ("/", "/catalogue", "/requests/new?plan=vm/vm-medium")}
    for path, html in english.items():  # the check finds English where it is: in the English pages
        assert len(english_left(html, message_ids)) >= 10, path
    choose(client, "lo")
    expected = {
        "/": ["ໜ້າຫຼັກ", "ຄຳຮ້ອງທີ່ຍັງດຳເນີນການຢູ່", "ຍື່ນແລ້ວ"],
        "/catalogue": ["ລາຍການບໍລິການ", "ຂໍໃຊ້ແຜນບໍລິການນີ້", "4.000.000 ກີບ"],
        "/requests/new?plan=vm/vm-medium": ["ຍື່ນຄຳຮ້ອງຂໍໃຊ້ບໍລິການ", "ເຈົ້າໜ້າທີ່ຮັກສາຄວາມປອດໄພຮັບຮອງກ່ອນ", "ສົ່ງຄຳຮ້ອງ"],
    }
    for path, texts in expected.items():
        page = client.get(path)
        assert page.status_code == 200, path
        assert '<html lang="lo">' in page.text, path
        for text in texts:
            assert text in page.text, (path, text)
        assert english_left(page.text, message_ids) == set(), path


def test_the_request_forms_problems_are_counted_in_lao(app, portal_db, message_ids):
    client = signed_in(app, "ravi")
    choose(client, "lo")
    token = csrf(client, "/requests/new")
    mistaken = client.post("/requests", data={"csrf_token": token, "ministry": "mtc", "plan": "vm/vm-medium",
                                              "tier": "1", "programme.slug": "Bad Slug!"},
                           headers={"origin": ORIGIN})
    assert mistaken.status_code == 422
    assert re.search(r"ມີ \d+ ບັນຫາທີ່ຕ້ອງແກ້ໄຂ: ຍັງບໍ່ໄດ້ສົ່ງຄຳຮ້ອງ", mistaken.text)
    assert english_left(mistaken.text, message_ids) == set()


# What some pages show as it is stored, not through a template string: a programme's status and a
# request's or programme's classification (the request form offers the classifications in Lao).
STORED_CODES = {"active", "public", "internal", "confidential", "secret"}


def test_every_other_page_is_lao_too(app, portal_db, any_settings, message_ids):
    number = requests_lib.submit(portal_db, requests_fixtures.request("mtc-app"), actor="ravi")
    month = accounts.utcnow().astimezone(any_settings.tz).strftime("%Y-%m")
    ravi, olga = signed_in(app, "ravi"), signed_in(app, "olga")
    choose(ravi, "lo")
    choose(olga, "lo")
    pages = {ravi: ["/requests", f"/requests/{number}", "/programmes", "/programmes/digital-id", "/reports",
                    f"/statements/mtc/{month}", "/no-such-page"],
             olga: ["/", f"/requests/{number}"]}
    seen = 0
    for client, paths in pages.items():
        for path in paths:
            page = client.get(path)
            assert page.status_code in (200, 404), path
            assert '<html lang="lo">' in page.text, path
            assert english_left(page.text, message_ids) <= STORED_CODES, path
            seen += 1
    assert seen == 9


def test_the_sign_in_page_is_lao_for_a_visitor_who_chose_it(app, message_ids):
    client = TestClient(app, follow_redirects=False)
    response = choose(client, "lo", signed_in=False)
    assert "dcops_language=lo" in response.headers["set-cookie"]
    page = client.get("/signin")
    assert '<html lang="lo">' in page.text and "ເຂົ້າສູ່ລະບົບ" in page.text and "ລະຫັດຜ່ານ" in page.text
    assert english_left(page.text, message_ids) == set()


# --- dates and amounts --------------------------------------------------------------------------

def test_lao_dates_amounts_and_percentages():
    lao = i18n.Formatter("lo", VIENTIANE)
    assert lao.lak(32_000_000) == "32.000.000 ກີບ"
    assert lao.lak(0) == "0 ກີບ" and lao.lak(None) == "—"
    assert lao.date(date(2025, 3, 7)) == "7 ມ.ນ. 2025"  # ມີນາ, March
    assert lao.date("2025-12-31") == "31 ທ.ວ. 2025"  # ທັນວາ, December
    assert lao.date("2025-12-31T20:00:00Z") == "1 ມ.ກ. 2026"  # already January the 1st in Vientiane
    assert lao.datetime(datetime(2025, 3, 7, 2, 30, tzinfo=timezone.utc)) == "7 ມ.ນ. 2025, 9:30:00"
    assert lao.percent(0.9995) == "99,950 %"
    assert lao.percent(0.999, 2) == "99,90 %"
    assert lao.number(12345.5) == "12.345,5"


def test_english_dates_amounts_and_percentages():
    english = i18n.Formatter("en", VIENTIANE)
    assert english.lak(32_000_000) == "32,000,000 LAK"
    assert english.lak(4_000_000) == "4,000,000 LAK"
    assert english.date(date(2025, 3, 7)) == "7 Mar 2025"
    assert english.datetime(datetime(2025, 3, 7, 2, 30, tzinfo=timezone.utc)) == "7 Mar 2025, 09:30:00"
    assert english.percent(0.9995) == "99.950 %"
    assert english.percent(None) == "—"
    assert english.number(12345.5) == "12,345.5"


# --- a language nobody speaks here --------------------------------------------------------------

@pytest.mark.parametrize("code", ["xx", "", None, "LO", "lo_LA", "fr", "../lo"])
def test_an_unknown_language_code_is_english(code):
    assert i18n.language_of(code) == "en"
    formatter = i18n.Formatter(code, VIENTIANE)
    assert formatter.language == "en" and formatter.lak(32_000_000) == "32,000,000 LAK"
    assert i18n.translations(code or "").gettext("Request this plan") == "Request this plan"


def test_an_unknown_language_from_the_browser_shows_english(app):
    client = signed_in(app, "ravi")
    choose(client, "lo")
    assert '<html lang="lo">' in client.get("/").text
    response = choose(client, "xx")
    assert "dcops_language=en" in response.headers["set-cookie"]
    page = client.get("/catalogue")
    assert '<html lang="en">' in page.text and "Request this plan" in page.text and "ຂໍໃຊ້" not in page.text
    visitor = TestClient(app, follow_redirects=False)
    visitor.cookies.set("dcops_language", "xx")
    signin = visitor.get("/signin")
    assert '<html lang="en">' in signin.text and ">Password<" in signin.text
