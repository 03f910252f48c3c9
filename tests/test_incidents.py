"""Incident records: numbered from the history, kept as it grows, joined, annotated, audited; in the uptime report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dcops import incidents
from dcops.errors import Conflict, NotFound, UserError
from dcops.health.history import Thresholds
from dcops.health.store import load_checks, record_results
from dcops.inventory.service import load_directory
from dcops.models import (Programme, StateInterval, external_component_table, external_outage_table, incident_table,
                          programme_external_dependency_table)
from dcops.reports.documents import resolve_period, uptime_document

import inventories

UTC = timezone.utc
VIENTIANE = ZoneInfo("Asia/Vientiane")
MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Result:
    endpoint_id: int
    at: datetime
    success: bool
    duration_seconds: float = 0.05
    reason: str = ""


@pytest.fixture
def db(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", inventories.base()))
    return any_database


def ids(db) -> dict[str, int]:
    with db.transaction() as conn:
        return dict(conn.execute(sa.select(Programme.__table__.c.slug, Programme.__table__.c.id)).all())


def spans(db, rows) -> None:
    """Programme-level intervals written as the store would: (slug, state, from, to or None, reason)."""
    programme = ids(db)
    with db.transaction(immediate=True) as conn:
        conn.execute(sa.insert(StateInterval.__table__), [
            {"programme_id": programme[slug], "endpoint_id": None, "state": state, "started_at": at(start),
             "ended_at": at(end) if end else None, "reason": reason} for slug, state, start, end, reason in rows])


def records(db):
    with db.transaction() as conn:
        return [tuple(r) for r in conn.execute(sa.select(
            incident_table.c.id, incident_table.c.started_at, incident_table.c.ended_at, incident_table.c.status,
            incident_table.c.merged_into).order_by(incident_table.c.id))]


def sync(db, **kwargs) -> int:
    with db.transaction(immediate=True) as conn:
        return incidents.sync(conn, **kwargs)


def test_the_prober_numbers_a_stretch_of_downtime_and_keeps_its_number(db):
    with db.transaction() as conn:
        checks = load_checks(conn)
    (web,) = [c for c in checks if c.programme == "dhis2"]
    t0 = at("2026-11-10T03:00")
    outcomes = [True, False, False, False, False, True, True, True, False, False, False, True, True]
    for k, ok in enumerate(outcomes):
        with db.transaction(immediate=True) as conn:
            record_results(conn, checks, [Result(web.endpoint_id, t0 + k * MINUTE, ok, reason="" if ok else "503")],
                           thresholds=Thresholds(3, 2))
        if k == 4:  # down from the third failure (03:03), still down: one open record
            assert [(r[1], r[2], r[3]) for r in records(db)] == [(t0 + 3 * MINUTE, None, "new")]
    # Up again from the second success (03:06); down 03:10, up 03:12: two incidents, numbered in order.
    assert [(r[0], r[1], r[2]) for r in records(db)] == [
        (1, t0 + 3 * MINUTE, t0 + 6 * MINUTE), (2, t0 + 10 * MINUTE, t0 + 12 * MINUTE)]
    assert sync(db) == 0  # the repair finds nothing to do


def test_a_first_sync_numbers_history_written_before_records_and_joins_what_the_history_joins(db):
    spans(db, [("dhis2", "up", "2026-11-01T00:00", "2026-11-02T00:00", ""),
               ("dhis2", "down", "2026-11-02T00:00", "2026-11-02T01:00", "web: refused"),
               ("dhis2", "down", "2026-11-02T01:00", "2026-11-02T01:30", "db: refused"),  # the same stretch
               ("dhis2", "unknown", "2026-11-02T01:30", "2026-11-02T02:00", ""),
               ("dhis2", "down", "2026-11-02T02:00", "2026-11-02T03:00", "web: refused")])
    assert sync(db) == 2
    assert [(r[1], r[2]) for r in records(db)] == [(at("2026-11-02T00:00"), at("2026-11-02T01:30")),
                                                    (at("2026-11-02T02:00"), at("2026-11-02T03:00"))]
    # Imported results fill the unknown half hour with downtime: the two stretches are now one.
    with db.transaction(immediate=True) as conn:
        conn.execute(sa.text("UPDATE state_interval SET state = 'down' WHERE state = 'unknown'"))
    assert sync(db, programme_ids=ids(db).values(), since=at("2026-11-02T00:00")) == 2
    (first, second) = records(db)
    assert (first[1], first[2], first[3]) == (at("2026-11-02T00:00"), at("2026-11-02T03:00"), "new")
    assert (second[3], second[4]) == ("merged", first[0])
    with pytest.raises(Conflict, match="joined to incident 1"):
        incidents.update_incident(db, second[0], status="investigating", actor="ops")


def test_operators_annotate_an_incident_and_every_change_is_audited(db, tmp_path):
    spans(db, [("e-gov-portal", "down", "2026-11-02T00:00", None, "web: 502")])
    sync(db)
    now = at("2026-11-02T00:30")
    with pytest.raises(Conflict, match="still down"):
        incidents.update_incident(db, 1, status="resolved", actor="ops", now=now)
    found = incidents.update_incident(db, 1, status="identified", note="proxy pool exhausted", cause="proxy pool",
                                      attributed_to="data-centre", postmortem_url="https://wiki.dc.gov.la/pir/1",
                                      released=True, actor="ops", now=now)
    assert (found["status"], found["attributed_to"], found["released"]) == ("identified", "data-centre", True)
    assert [(u["status"], u["note"], u["by"]) for u in found["updates"]] == [
        ("identified", "proxy pool exhausted", "ops")]
    with db.transaction() as conn:
        actions = [r[0] for r in conn.execute(sa.text(
            "SELECT action FROM audit_entry WHERE object_type = 'incident' ORDER BY id"))]
    assert actions == ["incident.opened", "incident.updated", "incident.identified"]


@pytest.mark.parametrize(("change", "message"), [
    ({"attributed_to": "external:no-such"}, "no external component"),
    ({"attributed_to": "dependency:e-gov-portal"}, "not its own dependency"),
    ({"attributed_to": "the weather"}, "data-centre, ministry-application"),
    ({"postmortem_url": "javascript:alert(1)"}, "http:// or https://"),
    ({"note": "ok\x1b]0;owned\x07"}, "control characters"),
    ({"title": "two\nlines"}, "one line"),
    ({"status": "merged"}, "--status"),
    ({}, "nothing to change"),
])
def test_bad_annotations_are_refused_and_nothing_is_written(db, change, message):
    spans(db, [("e-gov-portal", "down", "2026-11-02T00:00", "2026-11-02T01:00", "web: 502")])
    sync(db)
    with db.transaction() as conn:
        before = conn.execute(sa.text("SELECT COUNT(*) FROM audit_entry")).scalar()
    with pytest.raises(UserError, match=message):
        incidents.update_incident(db, 1, actor="ops", **change)
    with db.transaction() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_entry")).scalar() == before
        assert conn.execute(sa.text("SELECT status, attributed_to FROM incident")).one() == ("new", None)


def test_a_classified_programmes_incident_is_never_released(db):
    spans(db, [("dhis2", "down", "2026-11-02T00:00", "2026-11-02T01:00", "web: refused")])
    sync(db)
    with pytest.raises(Conflict, match="confidential programme"):
        incidents.update_incident(db, 1, released=True, actor="ops")
    with pytest.raises(NotFound):
        incidents.update_incident(db, 99, note="x", actor="ops")


def test_the_report_names_the_incident_and_splits_its_downtime_by_cause(db):
    # November 2026 in Vientiane: a 30-day month. e-gov-portal needs the national ID service (an
    # external component, run by another ministry): down 90 min, 60 while the ID service was down.
    programme = ids(db)
    with db.transaction(immediate=True) as conn:
        component = conn.execute(sa.insert(external_component_table).values(
            slug="national-id", name="National ID service", run_by="third-party")
            .returning(external_component_table.c.id)).scalar_one()
        conn.execute(sa.insert(programme_external_dependency_table).values(
            programme_id=programme["e-gov-portal"], component_id=component))
        conn.execute(sa.insert(external_outage_table).values(
            component_id=component, started_at=at("2026-11-09T23:50"), ended_at=at("2026-11-10T01:00"),
            note="ID service maintenance overrun", recorded_at=at("2026-11-10T02:00"), recorded_by="ops"))
    spans(db, [("e-gov-portal", "up", "2026-10-31T17:00", "2026-11-10T00:00", ""),
               ("e-gov-portal", "down", "2026-11-10T00:00", "2026-11-10T01:30", "web: 502"),
               ("e-gov-portal", "up", "2026-11-10T01:30", "2026-11-30T17:00", "")])
    sync(db)
    now = at("2026-12-01T00:00")

    def report():
        with db.transaction() as conn:
            document = uptime_document(conn, resolve_period("2026-11", None, None, VIENTIANE), tz=VIENTIANE,
                                       now=now, data_centre_name="NDC")
        return next(p for p in document["programmes"] if p["slug"] == "e-gov-portal"), document

    portal, document = report()
    assert portal["period_seconds"] == 30 * 86400 and portal["downtime_seconds"] == 5400
    assert portal["availability"] == round(43110 / 43200, 6)  # 99.79 %: misses a 99.9 % target
    assert portal["availability_attributable"] == round(43170 / 43200, 6)  # 99.93 %
    assert (portal["downtime_own_seconds"], portal["downtime_dependency_seconds"]) == (1800, 3600)
    (incident,) = portal["incidents"]
    assert incident["number"] == 1 and incident["record_status"] == "new"
    assert incident["attribution"] == {"own_seconds": 1800, "dependency_seconds": 3600, "source": "computed",
                                       "dependencies": [{"name": "national-id", "kind": "external",
                                                         "seconds": 3600, "root": "national-id"}]}
    assert document["data_centre"]["root_incident_count"] == 2  # the ID service's outage and the portal's own

    # Its tier leaves third-party dependency time out of the SLA: judged on 99.93 %.
    with db.transaction(immediate=True) as conn:
        conn.execute(sa.text("UPDATE programme SET excludes_external = :t WHERE slug = 'e-gov-portal'"), {"t": True})
    portal, _ = report()
    assert portal["sla_basis"] == "excluding external dependencies"
    assert portal["downtime_excluded_seconds"] == 3600
    assert portal["met"] is (43170 / 43200 * 100 >= portal["target_percent"])

    # An operator says it was the application's own fault: the whole 90 minutes are its own.
    incidents.update_incident(db, 1, attributed_to="ministry-application", actor="ops", now=now)
    portal, document = report()
    assert portal["availability_attributable"] == portal["availability"]
    assert portal["incidents"][0]["attribution"]["source"] == "operator"


def test_a_hosted_dependency_outage_is_counted_once_under_its_root(db):
    # dhis2 needs digital-id (both hosted): digital-id down an hour, dhis2 down within it.
    spans(db, [("digital-id", "up", "2026-10-31T17:00", "2026-11-10T00:00", ""),
               ("digital-id", "down", "2026-11-10T00:00", "2026-11-10T01:00", "api: refused"),
               ("digital-id", "up", "2026-11-10T01:00", "2026-11-30T17:00", ""),
               ("dhis2", "up", "2026-10-31T17:00", "2026-11-10T00:10", ""),
               ("dhis2", "down", "2026-11-10T00:10", "2026-11-10T00:50", "web: login failed"),
               ("dhis2", "up", "2026-11-10T00:50", "2026-11-30T17:00", "")])
    with db.transaction() as conn:
        document = uptime_document(conn, resolve_period("2026-11", None, None, VIENTIANE), tz=VIENTIANE,
                                   now=at("2026-12-01T00:00"), data_centre_name="NDC")
    dhis2 = next(p for p in document["programmes"] if p["slug"] == "dhis2")
    assert (dhis2["downtime_own_seconds"], dhis2["downtime_dependency_seconds"]) == (0, 2400)
    assert dhis2["incidents"][0]["attribution"]["dependencies"] == [
        {"name": "digital-id", "kind": "hosted", "seconds": 2400, "root": "digital-id"}]
    assert dhis2["availability_attributable"] == 1.0
    assert document["data_centre"]["incident_count"] == 2 and document["data_centre"]["root_incident_count"] == 1


def test_the_incident_commands(loaded_cli, database):
    spans(database, [("lesmis", "down", "2026-11-02T00:00", "2026-11-02T01:00", "web: 502")])
    listed = json.loads(loaded_cli("incident", "list", "--period", "2026-11", "-o", "json").stdout)
    assert [(i["number"], i["programme"], i["counted_seconds"]) for i in listed] == [(1, "lesmis", 3600)]
    table = loaded_cli("incident", "list", "--period", "2026-11").stdout
    assert table.splitlines()[0].startswith("NO") and "lesmis" in table
    assert max(len(line) for line in table.splitlines()) <= 80
    loaded_cli("incident", "update", "1", "--status", "resolved", "--cause", "upstream proxy", "--note", "fixed",
               "--actor", "ops")
    shown = loaded_cli("incident", "show", "1").stdout
    assert "resolved" in shown and "upstream proxy" in shown and "ops: fixed" in shown
    bad = loaded_cli("incident", "update", "1", "--attributed-to", "weather", expect=2)
    assert bad.stderr.startswith("dcops: error: --attributed-to") and "Traceback" not in bad.stderr
    assert loaded_cli("incident", "show", "7", expect=2).stderr.startswith("dcops: error: no incident 7")
    assert "Example: dcops incident update" in loaded_cli("incident", "update", "--help").stdout


@pytest.mark.parametrize(("down_minutes", "status"), [(60, "insufficient data"), (24 * 60, "missed")])
def test_too_little_data_is_insufficient_unless_the_downtime_seen_misses_anyway(db, down_minutes, status):
    # Measured two days of November (coverage 6.7 %, under the 90 % minimum).
    start = at("2026-11-10T00:00")
    spans(db, [("e-gov-portal", "down", start.isoformat()[:16], (start + down_minutes * MINUTE).isoformat()[:16],
                "web: 502"),
               ("e-gov-portal", "up", (start + down_minutes * MINUTE).isoformat()[:16], "2026-11-12T00:00", "")])
    with db.transaction() as conn:
        document = uptime_document(conn, resolve_period("2026-11", None, None, VIENTIANE), tz=VIENTIANE,
                                   now=at("2026-12-01T00:00"), data_centre_name="NDC")
    (portal,) = [p for p in document["programmes"] if p["slug"] == "e-gov-portal"]
    assert portal["coverage"] < 0.9 and portal["met"] is False  # the known time alone misses either way
    # The whole month's budget at its target: only a day of downtime is more than it.
    budget = (1 - portal["target_percent"] / 100) * 30 * 86400
    assert (down_minutes * 60 > budget) is (status == "missed")
    assert portal["status"] == status
    assert document["data_centre"]["programmes_insufficient_data"] == (status == "insufficient data")


def test_the_judging_settings_reach_the_report(loaded_cli, monkeypatch):
    monkeypatch.setenv("DCOPS_REPORT_MIN_COVERAGE_PERCENT", "75")
    monkeypatch.setenv("DCOPS_MAJOR_INCIDENT_BUDGET_PERCENT", "20")
    document = json.loads(loaded_cli("report", "uptime", "--period", "2026-11", "--format", "json").stdout)
    assert document["settings"] == {"min_coverage_percent": 75.0, "major_incident_budget_percent": 20.0}
    monkeypatch.setenv("DCOPS_MAJOR_INCIDENT_BUDGET_PERCENT", "120")
    bad = loaded_cli("report", "uptime", "--period", "2026-11", "--format", "json", expect=2)
    assert "DCOPS_MAJOR_INCIDENT_BUDGET_PERCENT must be a percentage" in bad.stderr


def test_a_listing_is_the_period_and_what_is_still_down_not_every_unannotated_incident(db):
    spans(db, [("e-gov-portal", "down", "2026-09-02T00:00", "2026-09-02T01:00", "web: 502"),  # ended, never annotated
               ("dhis2", "down", "2026-09-20T00:00", None, "web: refused")])  # still down
    listed = incidents.list_incidents(db, start=at("2026-10-31T17:00"), end=at("2026-11-30T17:00"),
                                      now=at("2026-11-15T00:00"))
    assert [(i["programme"], i["ongoing"], i["status"]) for i in listed] == [("dhis2", True, "new")]
