"""The portal's status page: a ministry's people see their own programmes whole and the others' as the public does."""

from __future__ import annotations

from datetime import timedelta

import inventories
import pytest
import requests_fixtures
import sqlalchemy as sa
from fastapi.testclient import TestClient
from test_portal import PASSWORD, client_for, post

from dcops import accounts, incidents
from dcops.access import Actor, Grant
from dcops.db import utcnow
from dcops.inventory.service import load_directory
from dcops.models import Programme, StateInterval
from dcops.overview import status_overview
from dcops.portal.app import create_app

PEOPLE = {"vera": [Grant("viewer", "mtc")], "hana": [Grant("requester", "moh")], "olga": [Grant("operator")],
          "aude": [Grant("auditor")]}
# A programme of moh the public page shows (dhis2, moh's other one, is confidential).
BOOKING = {"slug": "moh-booking", "name": "Clinic booking", "ministry": "moh", "tier": 2, "classification": "internal",
           "contacts": {"owner": "booking@moh.example.la", "security": "sec@moh.example.la"}}


@pytest.fixture
def status_db(database, tmp_path):
    files = requests_fixtures.inventory()
    files["programmes/moh.yaml"]["programmes"].append(BOOKING)
    load_directory(database, inventories.write(tmp_path / "inv", files))
    hashed = accounts.hash_password(PASSWORD)
    for name, grants in PEOPLE.items():
        accounts.add_user(database, name, grants=frozenset(grants), password=None, email=f"{name}@example.la",
                          actor="setup")
    with database.transaction() as conn:
        conn.execute(sa.text("UPDATE portal_user SET password_hash = :h"), {"h": hashed})
    return database


def outages(db, now) -> dict[str, int]:
    """An hour down two hours ago on e-gov-portal (mtc, public), moh-booking (moh, internal) and dhis2
    (moh, confidential), each with its incident record; moh-booking's a second one, released, before it."""
    with db.transaction() as conn:
        ids = dict(conn.execute(sa.select(Programme.__table__.c.slug, Programme.__table__.c.id)).all())
    rows = []
    for slug in ("e-gov-portal", "moh-booking", "dhis2"):
        rows += [(slug, "up", now - timedelta(days=2), now - timedelta(hours=3), ""),
                 (slug, "down", now - timedelta(hours=3), now - timedelta(hours=2), f"{slug} refused connections"),
                 (slug, "up", now - timedelta(hours=2), now - timedelta(hours=1), "")]
    rows.insert(0, ("moh-booking", "down", now - timedelta(days=2, hours=1), now - timedelta(days=2), "released one"))
    with db.transaction(immediate=True) as conn:
        conn.execute(sa.insert(StateInterval.__table__), [
            {"programme_id": ids[slug], "endpoint_id": None, "state": state, "started_at": start, "ended_at": end,
             "reason": reason} for slug, state, start, end, reason in rows])
        incidents.sync(conn, now=now)
        numbers: dict[str, list[int]] = {}
        for number, slug in conn.execute(sa.text(
                "SELECT incident.id, programme.slug FROM incident JOIN programme ON programme.id = incident.programme_id "
                "ORDER BY incident.started_at, incident.id")):
            numbers.setdefault(slug, []).append(number)
    released, unreleased = numbers["moh-booking"]
    incidents.update_incident(db, numbers["e-gov-portal"][0], note="Portal load balancer restarted",
                              cause="mtc-cause-text", now=now)
    incidents.update_incident(db, unreleased, note="moh-secret-note", cause="moh-cause-text", now=now)
    incidents.update_incident(db, released, note="moh-released-note", released=True, now=now)
    incidents.update_incident(db, numbers["dhis2"][0], note="dhis2-note", now=now)
    return {"mtc": numbers["e-gov-portal"][0], "moh_unreleased": unreleased, "moh_released": released,
            "dhis2": numbers["dhis2"][0]}


def slugs(view) -> set[str]:
    return {p["slug"] for group in view["ministries"] for p in group["programmes"]}


def numbers_of(view) -> set[int]:
    return {i["number"] for key in ("current", "recent") for i in view["incidents"][key]}


def test_a_ministry_sees_its_own_programmes_whole_and_the_others_as_the_public(status_db, settings):
    now = utcnow()
    made = outages(status_db, now)
    vera = Actor("vera", frozenset(PEOPLE["vera"]))
    view = status_overview(status_db, vera, tz=settings.tz, now=now)
    assert slugs(view) == {"e-gov-portal", "digital-id", "moh-booking"}  # not moh's confidential dhis2
    assert numbers_of(view) == {made["mtc"], made["moh_released"]}
    own = next(i for i in view["incidents"]["recent"] if i["number"] == made["mtc"])
    assert own["cause"] == "mtc-cause-text" and own["updates"][0]["note"] == "Portal load balancer restarted"
    other = next(i for i in view["incidents"]["recent"] if i["number"] == made["moh_released"])
    assert "cause" not in other and "reason" not in other
    groups = {g["code"]: g for g in view["ministries"]}
    assert groups["mtc"]["own"] and not groups["moh"]["own"]
    assert view["programme_count"] == 3 and sum(view["counts"].values()) == 3
    booking = groups["moh"]["programmes"][0]
    # Its two outages (see outages) touch two local days, or three when one crosses a local midnight
    # (then no day of its two days' history may be wholly up: the bar is only asked to show the
    # downtime and to cover every day).
    spans = [(now - timedelta(days=2, hours=1), now - timedelta(days=2)),
             (now - timedelta(hours=3), now - timedelta(hours=2))]
    touched = {moment.astimezone(settings.tz).date() for start, end in spans
               for moment in (start, end - timedelta(microseconds=1))}
    assert booking["days_down"] == len(touched) and "down" in {run["state"] for run in booking["bar"]}
    assert sum(run["width"] for run in booking["bar"]) == view["days"]

    hana = Actor("hana", frozenset(PEOPLE["hana"]))
    theirs = status_overview(status_db, hana, tz=settings.tz, now=now)
    assert slugs(theirs) == {"dhis2", "moh-booking", "e-gov-portal"}  # not mtc's secret digital-id
    assert numbers_of(theirs) == {made["moh_unreleased"], made["moh_released"], made["dhis2"]}

    for name in ("olga", "aude"):
        staff = status_overview(status_db, Actor(name, frozenset(PEOPLE[name])), tz=settings.tz, now=now)
        assert slugs(staff) == {"dhis2", "moh-booking", "e-gov-portal", "digital-id"}
        assert numbers_of(staff) == set(made.values())
        assert all(g["own"] for g in staff["ministries"])


def test_the_status_page_signed_out_in_english_and_in_lao(status_db, settings):
    now = utcnow()
    made = outages(status_db, now)
    app = create_app(settings, status_db)
    signed_out = TestClient(app, follow_redirects=False).get("/status")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/signin?next=/status"

    vera = client_for(app, "vera")
    page = vera.get("/status")
    assert page.status_code == 200
    assert 'href="/status" aria-current="page"' in page.text
    assert "Portal load balancer restarted" in page.text and "mtc-cause-text" in page.text
    assert f'id="incident-{made["mtc"]}"' in page.text
    assert "moh-released-note" in page.text and f'id="incident-{made["moh_released"]}"' in page.text
    assert "moh-secret-note" not in page.text and "moh-cause-text" not in page.text
    assert "dhis2" not in page.text and "Health information system" not in page.text
    assert '<svg class="status-bar"' in page.text and 'class="d-down"' in page.text

    olga = client_for(app, "olga")
    staff = olga.get("/status").text
    assert "moh-secret-note" in staff and "dhis2-note" in staff and "Health information system" in staff

    assert post(vera, "/language", {"language": "lo", "next": "/status"}).status_code == 303
    lao = vera.get("/status")
    assert '<html lang="lo">' in lao.text
    assert "ສະຖານະ" in lao.text and "ເຫດຂັດຂ້ອງພາຍໃນ 14 ມື້ຜ່ານມາ" in lao.text
    assert "Incidents of the last 14 days" not in lao.text and "Current incidents" not in lao.text
    assert "not monitored" not in lao.text and "ບໍ່ໄດ້ຕິດຕາມ" in lao.text  # the page's own reason, in Lao


def test_the_portal_lists_the_newest_plain_incidents_and_says_how_many_more(status_db, settings):
    from dcops.status import PLAIN_LISTED
    from outages import add_short_outages

    now = utcnow()
    made = outages(status_db, now)
    plain = add_short_outages(status_db, "moh-booking", PLAIN_LISTED + 7, end=now - timedelta(days=3))
    app = create_app(settings, status_db)
    page = client_for(app, "olga").get("/status").text
    recent = page[page.index('id="recent-title"'):]
    rows = [int(part.split('"')[0]) for part in recent.split('<tr id="incident-')[1:]]
    # The newest plain ones (e-gov-portal's and dhis2's are annotated, told as articles above the table).
    assert rows == plain[:PLAIN_LISTED]
    assert f'<article class="status-incident" id="incident-{made["mtc"]}"' in recent
    assert "7 older incidents of the last 14 days are not listed here" in recent

    vera = client_for(app, "vera")
    assert post(vera, "/language", {"language": "lo", "next": "/status"}).status_code == 303
    lao = vera.get("/status").text
    # vera (mtc) sees moh's incidents as the public does: only the released one, annotated.
    assert "ບໍ່ໄດ້ສະແດງຢູ່ນີ້" not in lao and '<tr id="incident-' not in lao
    hana = client_for(app, "hana")
    assert post(hana, "/language", {"language": "lo", "next": "/status"}).status_code == 303
    theirs = hana.get("/status").text
    assert "ເຫດຂັດຂ້ອງອີກ 7 ລາຍການທີ່ເກົ່າກວ່າ" in theirs and "older incidents" not in theirs
    assert theirs.count('<tr id="incident-') == PLAIN_LISTED
