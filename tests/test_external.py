"""External components and their outages: the reports' reads, recording, ending, cancelling, the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dcops.access import Actor, Grant
from dcops.audit import default_actor
from dcops.errors import Conflict, Forbidden, NotFound, UserError
from dcops.external import (cancel_outage, components, end_outage, list_components, list_outages, outages_between,
                            record_outage, show_component)
from dcops.inventory.service import load_directory
from dcops.models import external_component_table, external_outage_table

import inventories


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def _component(conn, slug: str, run_by: str = "third-party") -> int:
    return conn.execute(sa.insert(external_component_table).values(
        slug=slug, name=slug.upper(), description=f"the {slug}", run_by=run_by, contact="")
        .returning(external_component_table.c.id)).scalar_one()


def _outage(conn, component_id: int, start: datetime, end: datetime | None, cancelled: bool = False) -> None:
    conn.execute(sa.insert(external_outage_table).values(
        component_id=component_id, started_at=start, ended_at=end, note="", recorded_at=utc(2026, 12, 1),
        recorded_by="test", cancelled_at=utc(2026, 12, 1) if cancelled else None))


def test_outages_between_gives_uncancelled_overlapping_outages_per_component_sorted(any_database):
    with any_database.transaction() as conn:
        nid, grid, link = _component(conn, "national-id"), _component(conn, "grid"), _component(conn, "uplink", "data-centre")
        _outage(conn, nid, utc(2026, 10, 20, 3), utc(2026, 10, 20, 4))
        _outage(conn, nid, utc(2026, 10, 5, 1), utc(2026, 10, 5, 2))
        _outage(conn, nid, utc(2026, 10, 6), utc(2026, 10, 7), cancelled=True)
        _outage(conn, nid, utc(2026, 9, 30, 23), utc(2026, 10, 1, 0))  # ends exactly at the start: outside
        _outage(conn, grid, utc(2026, 9, 30, 22), utc(2026, 10, 1, 1))  # straddles the start: inside
        _outage(conn, grid, utc(2026, 10, 31, 23), None)  # still down
        _outage(conn, link, utc(2026, 11, 1), utc(2026, 11, 2))  # starts exactly at the end: outside
    with any_database.transaction() as conn:
        found = outages_between(conn, utc(2026, 10, 1), utc(2026, 11, 1))
        assert components(conn) == {
            "grid": {"name": "GRID", "run_by": "third-party", "description": "the grid"},
            "national-id": {"name": "NATIONAL-ID", "run_by": "third-party", "description": "the national-id"},
            "uplink": {"name": "UPLINK", "run_by": "data-centre", "description": "the uplink"},
        }
    assert found == {
        "national-id": [(utc(2026, 10, 5, 1), utc(2026, 10, 5, 2)), (utc(2026, 10, 20, 3), utc(2026, 10, 20, 4))],
        "grid": [(utc(2026, 9, 30, 22), utc(2026, 10, 1, 1)), (utc(2026, 10, 31, 23), None)],
    }
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0
               for spans in found.values() for span in spans for t in span if t is not None)


# Recording outages: the domain functions, on SQLite and PostgreSQL.

NOW = utc(2026, 11, 15, 12)
VIENTIANE = ZoneInfo("Asia/Vientiane")


def small_inventory(directory):
    """The tests' small inventory, with two components: dhis2 depends on the switch."""
    files = inventories.base()
    files["external.yaml"] = {"external_components": [
        {"slug": "bank-switch", "name": "Bank payment switch", "contact": "switch@bank.example.la"},
        {"slug": "dc-generator", "name": "Standby generator", "run_by": "data-centre"},
    ]}
    files["programmes/moh.yaml"]["programmes"][0]["depends_on"] = ["digital-id", "bank-switch"]
    files["programmes/mtc.yaml"]["programmes"][1]["depends_on"] = ["bank-switch"]
    files["programmes/mtc.yaml"]["programmes"][1]["status"] = "retired"
    return inventories.write(directory, files)


def _counts(database) -> tuple[int, int]:
    with database.transaction() as conn:
        return (conn.execute(sa.text("SELECT count(*) FROM external_outage")).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM audit_entry")).scalar())


def test_outages_are_recorded_ended_cancelled_and_audited(any_database, tmp_path):
    load_directory(any_database, small_inventory(tmp_path / "inv"))
    first = record_outage(any_database, "bank-switch", started_at=utc(2026, 10, 12, 2, 10),
                          ended_at=utc(2026, 10, 12, 3, 40), note="  switch core failover  ", actor="khamla", now=NOW)
    assert (first.component, first.note, first.recorded_by, first.duration_seconds) == (
        "bank-switch", "switch core failover", "khamla", 5400.0)
    open_one = record_outage(any_database, "bank-switch", started_at=utc(2026, 11, 15, 11), note="down again",
                             now=NOW)
    assert open_one.ended_at is None and open_one.duration_seconds is None
    with any_database.transaction() as conn:
        listed = {c["slug"]: c for c in list_components(conn, now=NOW)}
        shown = show_component(conn, "bank-switch", now=NOW)
    # dhis2 depends on it; the retired e-gov-portal is not counted.
    assert (listed["bank-switch"]["dependants"], listed["bank-switch"]["outage_now"]) == (1, open_one.id)
    assert (listed["dc-generator"]["run_by"], listed["dc-generator"]["outage_now"]) == ("data-centre", None)
    assert [d["slug"] for d in shown["dependants"]] == ["dhis2", "e-gov-portal"]
    assert [o.id for o in shown["outages"]] == [open_one.id, first.id]  # newest first

    ended = end_outage(any_database, open_one.id, at=utc(2026, 11, 15, 11, 30), actor="khamla", now=NOW)
    assert ended.ended_at == utc(2026, 11, 15, 11, 30)
    cancelled = cancel_outage(any_database, first.id, actor="khamla", now=NOW)
    assert cancelled.cancelled_at == NOW
    with any_database.transaction() as conn:
        assert [o.id for o in list_outages(conn)] == [open_one.id]
        assert [o.id for o in list_outages(conn, include_cancelled=True)] == [first.id, open_one.id]
        assert [o.id for o in list_outages(conn, start=utc(2026, 10, 1), end=utc(2026, 11, 1),
                                           include_cancelled=True)] == [first.id]
        assert outages_between(conn, utc(2026, 10, 1), utc(2026, 12, 1)) == {
            "bank-switch": [(utc(2026, 11, 15, 11), utc(2026, 11, 15, 11, 30))]}
        entries = [tuple(r) for r in conn.execute(sa.text(
            "SELECT action, object_type, object_key, actor FROM audit_entry "
            "WHERE action LIKE 'external.%' ORDER BY id"))]
    assert entries == [
        ("external.outage.recorded", "external_outage", str(first.id), "khamla"),
        ("external.outage.recorded", "external_outage", str(open_one.id), default_actor()),
        ("external.outage.ended", "external_outage", str(open_one.id), "khamla"),
        ("external.outage.cancelled", "external_outage", str(first.id), "khamla"),
    ]


@pytest.mark.parametrize(("start", "end", "message"), [
    (utc(2026, 11, 1, 10), utc(2026, 11, 1, 9), "--to (2026-11-01 16:00 Asia/Vientiane) must be after --from "
                                                "(2026-11-01 17:00 Asia/Vientiane)"),
    (utc(2026, 11, 1, 10), utc(2026, 11, 1, 10), "must be after --from"),
    (NOW + timedelta(minutes=1), None, "--from (2026-11-15 19:01 Asia/Vientiane) is in the future"),
    (utc(2026, 11, 15, 10), NOW + timedelta(hours=1), "--to (2026-11-15 20:00 Asia/Vientiane) is in the future: "
                                                      "leave --to out while it is still down"),
    (utc(2026, 10, 12, 3), utc(2026, 10, 12, 5), "bank-switch already has outage 1 from 2026-10-12 09:10 "
                                                 "Asia/Vientiane to 2026-10-12 10:40 Asia/Vientiane, which overlaps"),
    (utc(2026, 10, 12, 1), None, "already has outage 1"),  # still down from before it: overlaps
    (utc(2026, 10, 12, 1), utc(2026, 10, 12, 2, 11), "already has outage 1"),
])
def test_bad_outages_are_refused_and_nothing_is_written(database, tmp_path, start, end, message):
    load_directory(database, small_inventory(tmp_path / "inv"))
    record_outage(database, "bank-switch", started_at=utc(2026, 10, 12, 2, 10), ended_at=utc(2026, 10, 12, 3, 40),
                  note="first", now=NOW)
    before = _counts(database)
    with pytest.raises(UserError) as caught:
        record_outage(database, "bank-switch", started_at=start, ended_at=end, note="second", now=NOW, tz=VIENTIANE)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2
    assert _counts(database) == before


def test_outages_that_touch_or_follow_a_cancelled_one_are_fine_and_an_open_one_blocks_later_ones(database, tmp_path):
    load_directory(database, small_inventory(tmp_path / "inv"))
    first = record_outage(database, "bank-switch", started_at=utc(2026, 10, 12, 2), ended_at=utc(2026, 10, 12, 3),
                          note="first", now=NOW)
    record_outage(database, "bank-switch", started_at=utc(2026, 10, 12, 3), ended_at=utc(2026, 10, 12, 4),
                  note="right after", now=NOW)
    record_outage(database, "dc-generator", started_at=utc(2026, 10, 12, 2), note="another component", now=NOW)
    with pytest.raises(Conflict):
        record_outage(database, "dc-generator", started_at=utc(2026, 11, 1), ended_at=utc(2026, 11, 2), note="x",
                      now=NOW)
    cancel_outage(database, first.id, now=NOW)
    record_outage(database, "bank-switch", started_at=utc(2026, 10, 12, 2, 30), ended_at=utc(2026, 10, 12, 3),
                  note="in the cancelled one's place", now=NOW)
    with pytest.raises(Conflict, match="was cancelled"):
        cancel_outage(database, first.id, now=NOW)
    with pytest.raises(Conflict, match="was cancelled"):
        end_outage(database, first.id, now=NOW)


def test_ending_is_checked_too(database, tmp_path):
    load_directory(database, small_inventory(tmp_path / "inv"))
    outage = record_outage(database, "bank-switch", started_at=utc(2026, 11, 15, 10), note="down", now=NOW)
    before = _counts(database)
    for at, error, message in [(utc(2026, 11, 15, 9), UserError, "must be after the outage began"),
                               (NOW + timedelta(seconds=1), UserError, "is in the future"),
                               (None, NotFound, "no external outage 99")]:
        with pytest.raises(error, match=message):
            end_outage(database, 99 if error is NotFound else outage.id, at=at, now=NOW)
    assert _counts(database) == before
    end_outage(database, outage.id, now=NOW)
    with pytest.raises(Conflict, match="already ended at"):
        end_outage(database, outage.id, now=NOW)
    with pytest.raises(NotFound, match="no external component 'nowhere'"):
        record_outage(database, "nowhere", started_at=utc(2026, 11, 1), note="x", now=NOW)
    with pytest.raises(UserError, match="--note: one line"):
        record_outage(database, "bank-switch", started_at=utc(2026, 11, 1), ended_at=utc(2026, 11, 1, 1),
                      note="two\nlines", now=NOW)


def test_writes_need_the_operator_and_reads_a_staff_role(database, tmp_path):
    load_directory(database, small_inventory(tmp_path / "inv"))
    auditor = Actor("audrey", frozenset({Grant("auditor")}))
    viewer = Actor("vieng", frozenset({Grant("viewer", "moh")}))
    with pytest.raises(Forbidden, match="needs the role operator"):
        record_outage(database, "bank-switch", started_at=utc(2026, 11, 1), note="x", actor=auditor, now=NOW)
    with database.transaction() as conn:
        assert [c["slug"] for c in list_components(conn, actor=auditor)] == ["bank-switch", "dc-generator"]
        with pytest.raises(Forbidden):
            list_outages(conn, actor=viewer)
    assert _counts(database)[0] == 0


def test_the_whole_cli_path(cli, tmp_path):
    """Declared in the inventory, shown with the programme, outages recorded, refused, listed, ended, cancelled."""
    import csv
    import io
    import json

    cli("inventory", "load", small_inventory(tmp_path / "inv"))
    shown = json.loads(cli("programme", "show", "dhis2", "-o", "json").stdout)
    assert shown["depends_on"] == ["digital-id"]  # programmes, as before
    assert [(d["slug"], d["kind"], d["run_by"]) for d in shown["dependencies"]] == [
        ("bank-switch", "external", "third-party"), ("digital-id", "programme", None)]
    assert (shown["excludes_external"], shown["excludes_external_from"]) == (False, "tier")
    cli("programme", "update", "dhis2", "--short-name", "DHIS2", "--excludes-external")
    table = cli("programme", "show", "dhis2").stdout
    assert "Short name:     DHIS2\n" in table
    assert "bank-switch (external, third-party), digital-id (programme)" in table
    assert "Third party:    outages left out of its SLA (its own setting)" in table

    listed = json.loads(cli("external", "list", "-o", "json").stdout)
    assert [(c["slug"], c["dependants"], c["outage_now"]) for c in listed] == [("bank-switch", 1, None),
                                                                              ("dc-generator", 0, None)]
    added = json.loads(cli("external", "outage", "add", "bank-switch", "--from", "2026-10-12 09:10",
                           "--to", "2026-10-12T03:40Z", "--note", "switch core failover", "-o", "json").stdout)
    assert (added["started_at"], added["ended_at"], added["duration_seconds"]) == (
        "2026-10-12T02:10:00Z", "2026-10-12T03:40:00Z", 5400.0)
    still = cli("external", "outage", "add", "dc-generator", "--from", "2026-11-01 08:00", "--note", "fuel pump").stdout
    assert still.startswith("outage 2 of dc-generator recorded: from 2026-11-01 08:00 still down")

    for args, message in [
        (("--from", "2026-10-12 10:00", "--note", "again"), "bank-switch already has outage 1 from 2026-10-12 09:10"),
        (("--from", "2026-10-13 10:00", "--to", "2999-01-01 00:00", "--note", "x"), "--to (2999-01-01 00:00 "),
        (("--from", "yesterday", "--note", "x"), "--from: 'yesterday' is not a time"),
    ]:
        refused = cli("external", "outage", "add", "bank-switch", *args, expect=2)
        assert refused.stderr.startswith("dcops: error: ") and message in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1
    october = json.loads(cli("external", "outage", "list", "--period", "2026-10", "-o", "json").stdout)
    assert [o["id"] for o in october] == [1]
    rows = list(csv.DictReader(io.StringIO(cli("external", "outage", "list", "-o", "csv").stdout)))
    assert [(r["id"], r["component"], r["ended_at"]) for r in rows] == [("1", "bank-switch", "2026-10-12T03:40:00Z"),
                                                                        ("2", "dc-generator", "")]
    assert "down (2)" in cli("external", "list").stdout
    assert "--period: invalid period '2026-13'" in cli("external", "outage", "list", "--period", "2026-13",
                                                      expect=2).stderr

    cli("external", "outage", "end", "2", "--at", "2026-11-01 09:30")
    assert "already ended" in cli("external", "outage", "end", "2", expect=2).stderr
    assert cli("external", "outage", "cancel", "1").stdout == "outage 1 of bank-switch cancelled\n"
    assert [o["id"] for o in json.loads(cli("external", "outage", "list", "-o", "json").stdout)] == [2]
    assert "no external component 'nope'" in cli("external", "show", "nope", expect=2).stderr
    component = cli("external", "show", "bank-switch").stdout
    assert "dhis2" in component and "cancelled" in component and "switch core failover" in component

    outputs = [component, table, cli("external", "list").stdout,
               cli("external", "outage", "list", "--all").stdout]
    assert all(len(line) <= 80 for text in outputs for line in text.splitlines()), outputs
