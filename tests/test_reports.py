"""Maintenance windows, the uptime and capacity reports end to end, freezing, history and snapshots."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dcops.inventory.service import load_directory
from dcops.models import CapacitySnapshot, Cluster, MaintenanceWindow, Programme, StateInterval
from dcops.reports.documents import DIGEST_PREFIX

from conftest import SAMPLE_INVENTORY

UTC = timezone.utc
VIENTIANE = ZoneInfo("Asia/Vientiane")
OCTOBER_SECONDS = 31 * 86400  # 2,678,400


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def count(database, table: str) -> int:
    with database.transaction() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


# --- maintenance windows ------------------------------------------------------------------------


def test_maintenance_add_list_cancel_is_audited(loaded_cli):
    added = loaded_cli("maintenance", "add", "e-crvs", "--start", "2099-12-05 22:00", "--end", "2099-12-06 02:00",
                       "--reason", "database minor upgrade", "--change-ref", "CHG-1042", "--actor", "ops1")
    assert "maintenance window 1 recorded: programme e-crvs, 2099-12-05 22:00 to 2099-12-06 02:00" in added.stdout
    loaded_cli("maintenance", "add", "--cluster", "vte-gen1", "--start", "2099-12-07T15:00Z", "--end",
               "2099-12-07T16:00Z", "--reason", "firmware", "--change-ref", "CHG-1043")
    windows = json.loads(loaded_cli("maintenance", "list", "--output", "json").stdout)
    # Local 22:00 in Vientiane (UTC+7) is 15:00 UTC.
    assert [(w["id"], w["programme"], w["cluster"], w["starts_at"], w["announced"]) for w in windows] == [
        (1, "e-crvs", None, "2099-12-05T15:00:00Z", True), (2, None, "vte-gen1", "2099-12-07T15:00:00Z", True)]
    # A programme's windows include its clusters'; another cluster's programme sees only its own.
    mine = json.loads(loaded_cli("maintenance", "list", "--programme", "e-crvs", "--output", "json").stdout)
    assert [w["id"] for w in mine] == [1, 2]
    loaded_cli("maintenance", "cancel", "1", "--actor", "ops2")
    assert [w["id"] for w in json.loads(loaded_cli("maintenance", "list", "--output", "json").stdout)] == [2]
    everything = json.loads(loaded_cli("maintenance", "list", "--all", "--output", "json").stdout)
    assert everything[0]["cancelled_by"] == "ops2"
    again = loaded_cli("maintenance", "cancel", "1", expect=2)
    assert again.stderr.count("\n") == 1 and "already cancelled" in again.stderr
    actions = [e["action"] for e in json.loads(loaded_cli("audit", "list", "--object", "1", "--output",
                                                          "json").stdout)]
    assert actions[-2:] == ["maintenance.added", "maintenance.cancelled"]


@pytest.mark.parametrize("arguments, message", [
    (("e-crvs", "--start", "2099-12-05 22:00", "--end", "2099-12-05 21:00"), "must be after --start"),
    (("e-crvs", "--start", "tomorrow", "--end", "2099-12-05 21:00"), "is not a time"),
    (("no-such", "--start", "2099-12-05 22:00", "--end", "2099-12-05 23:00"), "no programme 'no-such'"),
    (("--cluster", "nowhere", "--start", "2099-12-05 22:00", "--end", "2099-12-05 23:00"), "no cluster"),
    (("e-crvs", "--cluster", "vte-gen1", "--start", "2099-12-05 22:00", "--end", "2099-12-05 23:00"), "not both"),
    (("--start", "2099-12-05 22:00", "--end", "2099-12-05 23:00"), "give either a PROGRAMME"),
    (("e-crvs", "--start", "2099-12-01 22:00", "--end", "2099-12-20 23:00"), "at most 7 days"),
])
def test_maintenance_refusals_are_one_line_and_write_nothing(loaded_cli, database, arguments, message):
    audit_before = count(database, "audit_entry")
    change_ref = "CHG-1" if "--change-ref" not in arguments else None
    result = loaded_cli("maintenance", "add", *arguments, "--reason", "work", "--change-ref", change_ref, expect=2)
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.startswith("dcops: error:") and "Traceback" not in result.stderr
    assert count(database, "maintenance_window") == 0 and count(database, "audit_entry") == audit_before


def test_a_change_reference_with_shell_or_template_text_is_refused(loaded_cli, database):
    result = loaded_cli("maintenance", "add", "e-crvs", "--start", "2099-12-05 22:00", "--end", "2099-12-05 23:00",
                        "--reason", "work", "--change-ref", "{{ lookup('pipe','id') }}", expect=2)
    assert "not a change reference" in result.stderr and count(database, "maintenance_window") == 0


def test_a_window_recorded_late_is_kept_flagged_and_cannot_be_cancelled(loaded_cli):
    result = loaded_cli("maintenance", "add", "e-crvs", "--start", "2020-01-01 01:00", "--end", "2020-01-01 02:00",
                        "--reason", "emergency patch", "--change-ref", "CHG-9")
    assert "counts as downtime" in result.stderr
    listed = loaded_cli("maintenance", "list", "--since", "2019-12-31")
    assert "late" in listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
    refused = loaded_cli("maintenance", "cancel", "1", expect=2)
    assert "cannot be cancelled" in refused.stderr


# --- the uptime report ----------------------------------------------------------------------------


def _history(database) -> None:
    """e-crvs (tier 1, 99.9 %, on vte-gen1) in October 2026 as cut in Vientiane
    (2026-09-30T17:00Z to 2026-10-31T17:00Z):

    up 09-25 .. 10-10T10:00; down 10:00-12:00 (an announced vte-gen1 window 11:00-11:30 takes 30 min
    out); up .. 10-20T00:00; unknown 00:00-01:00; up .. 10-31T16:00; down 16:00-19:00 (crosses the
    period end at 17:00; a window for 16:00-16:30 recorded at 18:00 is late: still downtime); up after.
    """
    with database.transaction(immediate=True) as conn:
        programme = conn.execute(sa.select(Programme.__table__.c.id).where(Programme.__table__.c.slug == "e-crvs")
                                 ).scalar_one()
        cluster = conn.execute(sa.select(Cluster.__table__.c.id).where(Cluster.__table__.c.name == "vte-gen1")
                               ).scalar_one()
        spans = [("up", "2026-09-25T00:00", "2026-10-10T10:00", ""), ("down", "2026-10-10T10:00", "2026-10-10T12:00",
                 "web: status 503"), ("up", "2026-10-10T12:00", "2026-10-20T00:00", ""),
                 ("unknown", "2026-10-20T00:00", "2026-10-20T01:00", "no data"),
                 ("up", "2026-10-20T01:00", "2026-10-31T16:00", ""),
                 ("down", "2026-10-31T16:00", "2026-10-31T19:00", "web: timeout"), ("up", "2026-10-31T19:00", None, "")]
        conn.execute(sa.insert(StateInterval.__table__), [
            {"programme_id": programme, "endpoint_id": None, "state": state, "started_at": at(start),
             "ended_at": at(end) if end else None, "reason": reason} for state, start, end, reason in spans])
        conn.execute(sa.insert(MaintenanceWindow.__table__), [
            {"programme_id": None, "cluster_id": cluster, "starts_at": at("2026-10-10T11:00"),
             "ends_at": at("2026-10-10T11:30"), "reason": "switch firmware", "change_ref": "CHG-1",
             "recorded_at": at("2026-10-01T00:00"), "recorded_by": "ops1"},
            {"programme_id": programme, "cluster_id": None, "starts_at": at("2026-10-31T16:00"),
             "ends_at": at("2026-10-31T16:30"), "reason": "emergency fix", "change_ref": "CHG-2",
             "recorded_at": at("2026-10-31T18:00"), "recorded_by": "ops2"},
        ])


@pytest.fixture
def sample(any_database):
    load_directory(any_database, SAMPLE_INVENTORY, actor="test")
    return any_database


def test_uptime_figures_are_the_hand_computed_ones(sample):
    from dcops.reports.documents import resolve_period, uptime_document

    _history(sample)
    period = resolve_period("2026-10", None, None, VIENTIANE)
    with sample.transaction() as conn:
        document = uptime_document(conn, period, tz=VIENTIANE, now=at("2026-11-15T00:00"),
                                   data_centre_name="National Data Centre")
    assert document["period"]["start"] == "2026-09-30T17:00:00Z" and document["period"]["partial"] is False
    ecrvs = next(p for p in document["programmes"] if p["slug"] == "e-crvs")
    # T = 2,678,400; M = 1,800 (the announced window); U = 3,600;
    # D = 3,600 (10:00-11:00) + 1,800 (11:30-12:00) + 3,600 (16:00-17:00, the late window excuses nothing).
    assert ecrvs["period_seconds"] == OCTOBER_SECONDS
    assert (ecrvs["maintenance_seconds"], ecrvs["unknown_seconds"], ecrvs["downtime_seconds"]) == (1800, 3600, 9000)
    assert ecrvs["late_maintenance_seconds"] == 1800
    # (T - M - U - D) / (T - M - U) = 2,664,000 / 2,673,000
    assert ecrvs["availability"] == pytest.approx(2_664_000 / 2_673_000, abs=1e-6)
    assert ecrvs["met"] is False and ecrvs["target_percent"] == 99.9
    # Three incidents (the window splits the first outage); MTTR 9,000 / 3; MTBF up 2,664,000 / 3.
    assert (ecrvs["incident_count"], ecrvs["longest_incident_seconds"]) == (3, 3600)
    assert (ecrvs["mttr_seconds"], ecrvs["mtbf_seconds"]) == (3000, 888_000)
    # Budget: 0.1 % of 2,673,000 = 2,673 s; used 9,000 / 2,673 = 336.7 %.
    assert ecrvs["error_budget_used_percent"] == pytest.approx(100 * 9000 / 2673, abs=1e-3)
    assert ecrvs["coverage"] == pytest.approx(2_674_800 / OCTOBER_SECONDS, abs=1e-6)
    assert [w["change_ref"] for w in ecrvs["late_windows"]] == ["CHG-2"]
    assert len(ecrvs["days"]) == 31 and ecrvs["days"][9]["down"] == 3600 + 1800  # 10 Oct local
    # The other programmes came into dcops (the inventory load) after October, without history in
    # it: they were not in service then, so October's report does not hold them at all.
    assert [p["slug"] for p in document["programmes"]] == ["e-crvs"] and document["not_monitored"] == []
    moha = next(m for m in document["ministries"] if m["code"] == "moha")
    assert moha["availability"] == pytest.approx(2_664_000 / 2_673_000, abs=1e-6) and moha["programmes_missed"] == 1
    assert document["data_centre"]["incident_count"] == 3
    assert {w["change_ref"]: w["announced"] for w in document["maintenance"]} == {"CHG-1": True, "CHG-2": False}


def test_the_collector_is_paused_while_a_document_is_built_and_runs_again_after(sample):
    import gc

    from dcops import collector
    from dcops.reports.documents import resolve_period, uptime_document

    _history(sample)
    period = resolve_period("2026-10", None, None, VIENTIANE)
    seen = []
    with sample.transaction() as conn:
        sa.event.listen(conn, "before_cursor_execute", lambda *_args: seen.append(gc.isenabled()))
        uptime_document(conn, period, tz=VIENTIANE, now=at("2026-11-15T00:00"), data_centre_name="NDC")
    assert seen and not any(seen)  # every query of the build ran with the collector off
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with collector.paused():
            with collector.paused():  # nested: the inner block leaves it off
                pass
            assert not gc.isenabled()
            raise RuntimeError("a failed read")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()  # a caller that had turned it off keeps it off
    finally:
        gc.enable()


def test_the_same_month_cut_in_utc_keeps_the_whole_last_outage(sample):
    from dcops.reports.documents import resolve_period, uptime_document

    _history(sample)
    utc = ZoneInfo("UTC")
    with sample.transaction() as conn:
        document = uptime_document(conn, resolve_period("2026-10", None, None, utc), tz=utc,
                                   now=at("2026-11-15T00:00"), data_centre_name="X", programme="e-crvs")
    (ecrvs,) = document["programmes"]
    # 1 Oct 00:00Z - 1 Nov 00:00Z holds all of 16:00-19:00 on the 31st: D = 3,600 + 1,800 + 10,800.
    assert ecrvs["downtime_seconds"] == 16_200 and ecrvs["incident_count"] == 3


# --- freezing, re-issuing, history ---------------------------------------------------------------


def test_a_frozen_report_reissues_byte_identical_and_history_shows_a_later_change(loaded_cli, database, tmp_path):
    _history(database)
    issued = tmp_path / "issued.html"
    result = loaded_cli("report", "uptime", "--period", "2026-10", "--format", "html", "--out", issued, "--freeze")
    assert "frozen as report 1" in result.stderr
    reissued = tmp_path / "again.html"
    loaded_cli("report", "reissue", "1", "--format", "html", "--out", reissued)
    assert reissued.read_bytes() == issued.read_bytes()
    assert "frozen report" in issued.read_text().lower()
    history = json.loads(loaded_cli("report", "history", "--output", "json").stdout)
    assert [(h["id"], h["period"], h["status"], h["changes"]) for h in history] == [(1, "2026-10", "unchanged", [])]
    assert history[0]["frozen_partial"] is False  # October was over when it was frozen

    # A late-arriving outage inside October: the figures issued no longer hold.
    with database.transaction(immediate=True) as conn:
        conn.execute(sa.text("UPDATE state_interval SET state = 'down', reason = 'late data' "
                             "WHERE state = 'unknown' AND ended_at IS NOT NULL"))
    history = json.loads(loaded_cli("report", "history", "--period", "2026-10", "--output", "json").stdout)
    assert history[0]["status"] == "changed" and history[0]["current_digest"] != history[0]["inputs_digest"]
    changed = {(c["programme"], c["figure"]) for c in history[0]["changes"]}
    assert {("e-crvs", "downtime_seconds"), ("e-crvs", "unknown_seconds"), ("e-crvs", "availability")} <= changed
    table = loaded_cli("report", "history").stdout
    assert "changed" in table and "downtime_seconds: 9000.0 then, 12600.0 now" in table
    # The frozen report itself still re-issues as issued.
    loaded_cli("report", "reissue", "1", "--format", "html", "--out", reissued)
    assert reissued.read_bytes() == issued.read_bytes()


def test_a_report_frozen_by_an_older_dcops_is_judged_by_its_figures(loaded_cli, database):
    """Its digest (a bare sha256:, over other inputs) cannot match today's: only figures that moved
    make it "changed"."""
    _history(database)
    loaded_cli("report", "uptime", "--period", "2026-10", "--format", "json", "--freeze")
    with database.transaction(immediate=True) as conn:
        conn.execute(sa.text("UPDATE frozen_report SET inputs_digest = :d"), {"d": "sha256:" + "ab" * 32})
    (entry,) = json.loads(loaded_cli("report", "history", "-o", "json").stdout)
    assert (entry["status"], entry["changes"]) == ("unchanged", [])
    assert entry["current_digest"].startswith(DIGEST_PREFIX) and DIGEST_PREFIX != "sha256:"
    with database.transaction(immediate=True) as conn:
        conn.execute(sa.text("UPDATE state_interval SET state = 'down' WHERE state = 'unknown' AND ended_at IS NOT NULL"))
    (entry,) = json.loads(loaded_cli("report", "history", "-o", "json").stdout)
    assert entry["status"] == "changed" and entry["changes"]


@pytest.mark.parametrize("arguments, message", [
    (("uptime", "--period", "2026-13"), "YYYY-MM"),
    (("uptime", "--period", "2026-10", "--from", "2026-10-01", "--to", "2026-10-02"), "not both"),
    (("uptime",), "give --period"),
    (("uptime", "--from", "2026-10-05", "--to", "2026-10-01"), "--from/--to"),
    (("uptime", "--period", "2026-10", "--ministry", "nope"), "no ministry 'nope'"),
    (("capacity", "--site", "nowhere"), "no site 'nowhere'"),
    (("capacity", "--buffer", "150"), "--buffer"),
    (("reissue", "7"), "no frozen report 7"),
])
def test_report_refusals_are_one_line_exit_2(loaded_cli, arguments, message):
    result = loaded_cli("report", *arguments, expect=2)
    assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_broken_template_writes_no_file_and_freezes_nothing(loaded_cli, database, tmp_path):
    template = tmp_path / "mine.html.j2"
    template.write_text("<h1>{{ document.title }</h1>\n")
    target = tmp_path / "out.html"
    result = loaded_cli("report", "uptime", "--period", "2026-10", "--format", "html", "--template", template,
                        "--out", target, "--freeze", expect=2)
    assert str(template.name) in result.stderr and not target.exists()
    assert count(database, "frozen_report") == 0


def test_every_format_renders_from_the_cli(loaded_cli, database, tmp_path):
    _history(database)
    for fmt in ("md", "html", "csv", "json"):
        out = tmp_path / f"uptime.{fmt}"
        loaded_cli("report", "uptime", "--period", "2026-10", "--programme", "e-crvs", "--format", fmt, "--out", out)
        assert "e-crvs" in out.read_text()
    document = json.loads((tmp_path / "uptime.json").read_text())
    assert [p["slug"] for p in document["programmes"]] == ["e-crvs"]
    assert "99.663" in (tmp_path / "uptime.md").read_text()  # 2,664,000 / 2,673,000 = 99.6633 %


# --- capacity: snapshots, forecast, cost ---------------------------------------------------------


def test_capacity_forecast_from_snapshot_history_and_cost(sample):
    from dcops.reports.documents import capacity_document

    now = at("2026-11-29T05:00")
    with sample.transaction(immediate=True) as conn:
        rows = conn.execute(sa.text(
            "SELECT k.cluster_id, k.total, k.reserved, k.allocation_ratio FROM cluster_capacity k "
            "JOIN cluster c ON c.id = k.cluster_id WHERE c.name = 'vte-gen1' AND k.resource = 'vcpu'")).one()
        # 30 days of vCPU on vte-gen1 growing 2 a day, reaching 300 today.
        conn.execute(sa.insert(CapacitySnapshot.__table__), [
            {"cluster_id": rows[0], "resource": "vcpu", "taken_on": date(2026, 11, 29) - timedelta(days=29 - d),
             "total": rows[1], "reserved": rows[2], "allocation_ratio": rows[3], "allocated": 242 + 2 * d,
             "taken_at": now} for d in range(30)])
    with sample.transaction() as conn:
        document = capacity_document(conn, tz=VIENTIANE, now=now, data_centre_name="X", buffer_percent=10)
    clusters = {c["name"]: c for site in document["sites"] for c in site["clusters"]}
    vcpu = next(r for r in clusters["vte-gen1"]["resources"] if r["resource"] == "vcpu")
    # capacity (160 - 16) x 4 = 576; N+1 27 x 4 = 108; buffer 57.6; usable 410.4, in whole vCPU 410.
    assert (vcpu["capacity"], vcpu["n_plus_one_reserve"], vcpu["usable"]) == (576, 108, 410)
    # The fitted line is 2/day and reads 300 at noon today; at 05:00 UTC (7 h before) 300 - 2 x 7/24.
    fitted_now = 300 - 2 * 7 / 24
    assert vcpu["forecast"]["status"] == "ok"
    assert vcpu["forecast"]["slope_per_day"] == pytest.approx(2.0, abs=1e-3)
    assert vcpu["forecast"]["days_left"] == pytest.approx((410 - fitted_now) / 2, abs=1e-2)
    ram = next(r for r in clusters["vte-gen1"]["resources"] if r["resource"] == "ram_gib")
    assert ram["forecast"]["status"] == "not enough history"
    # Cost from the catalogue plans: moh holds dhis2-hmis (pg-ha-large, 60,000,000), the hospital
    # information system (pg-ha, 32,000,000), and immunisation-registry, elmis and health-insurance
    # (pg-standard, 8,000,000 each).
    moh = next(m for m in document["cost"]["ministries"] if m["code"] == "moh")
    assert moh["monthly_lak"] == 60_000_000 + 32_000_000 + 3 * 8_000_000 and moh["name"] == "Ministry of Health"
    assert document["cost"]["total_lak"] == sum(m["monthly_lak"] for m in document["cost"]["ministries"])


def test_snapshots_once_a_day_replacing_the_same_day(sample):
    from dcops.daemon import snapshot_daily
    from dcops.reports.documents import snapshot_due, take_capacity_snapshot

    assert snapshot_due(sample, tz=VIENTIANE)
    stop = threading.Event()
    worker = threading.Thread(target=snapshot_daily, args=(sample, stop, VIENTIANE), kwargs={"check_seconds": 0.05})
    worker.start()
    try:
        for _ in range(100):
            if not snapshot_due(sample, tz=VIENTIANE):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive() and not snapshot_due(sample, tz=VIENTIANE)
    rows = count(sample, "capacity_snapshot")
    assert rows == count(sample, "cluster_capacity") > 0
    day, taken = take_capacity_snapshot(sample, tz=VIENTIANE)
    assert taken == rows and count(sample, "capacity_snapshot") == rows  # replaced, not added


def test_the_report_modules_light_tables_match_the_models():
    from dcops.models import CapacitySnapshot, FrozenReport
    from dcops.reports.documents import T_FROZEN, T_SNAPSHOT

    for light, model in ((T_FROZEN, FrozenReport), (T_SNAPSHOT, CapacitySnapshot)):
        assert {c.name: type(c.type).__name__ for c in light.columns} == {
            c.name: type(c.type).__name__.replace("AutoString", "String") for c in model.__table__.columns}


def test_a_programme_takes_its_catalogue_plan_on_the_command_line(loaded_cli, database, tmp_path):
    shown = json.loads(loaded_cli("programme", "show", "e-crvs", "--output", "json").stdout)
    assert shown["plan"] == "pg-ha"  # from the sample inventory
    loaded_cli("programme", "update", "e-crvs", "--plan", "pg-ha-large")
    assert json.loads(loaded_cli("programme", "show", "e-crvs", "--output", "json").stdout)["plan"] == "pg-ha-large"
    assert "Plan:" in loaded_cli("programme", "show", "e-crvs").stdout
    audit_before = count(database, "audit_entry")
    refused = loaded_cli("programme", "update", "e-crvs", "--plan", "gold-plated", expect=2)
    assert "unknown catalogue plan 'gold-plated'" in refused.stderr
    assert count(database, "audit_entry") == audit_before
    # The export carries the plan, so loading it back changes nothing.
    loaded_cli("inventory", "export", tmp_path / "exported")
    assert "plan: pg-ha-large" in (tmp_path / "exported" / "programmes" / "moha.yaml").read_text()
    plan = json.loads(loaded_cli("inventory", "load", tmp_path / "exported", "--dry-run", "--output", "json").stdout)
    assert plan["summary"]["create"] == plan["summary"]["update"] == plan["summary"]["retire"] == 0


def test_a_site_report_counts_a_submitted_request_only_where_placement_would_put_it(sample):
    """A request that names no site is placed across every site, as approval would place it,
    and appears in the report of that site only."""
    from dcops.catalogue.requests import submit
    from dcops.reports.documents import capacity_document

    import requests_fixtures

    submit(sample, requests_fixtures.request("new-registry", plan="vm-large", offering="vm"), actor="moh-clerk")
    now = at("2026-11-29T05:00")

    def submitted_vcpu(site):
        with sample.transaction() as conn:
            document = capacity_document(conn, tz=VIENTIANE, now=now, data_centre_name="X", site=site)
        placed = {r["cluster"]: r["pipeline_submitted"] for s in document["sites"] for c in s["clusters"]
                  for r in c["resources"] if r["resource"] == "vcpu"}
        return placed, [entry["cluster"] for entry in document["pipeline"]["submitted"]]

    everywhere, listed = submitted_vcpu(None)
    # vm-large: 8 vCPU, once, on the one cluster placement picks; listed once.
    assert sum(everywhere.values()) == 8 and len(listed) == 1
    (cluster,) = [name for name, amount in everywhere.items() if amount]
    home = "vte-dc1" if cluster.startswith("vte") else "lpb-dr1"
    other = "lpb-dr1" if home == "vte-dc1" else "vte-dc1"
    home_placed, home_listed = submitted_vcpu(home)
    assert home_placed[cluster] == 8 and home_listed == [cluster]
    elsewhere, listed_elsewhere = submitted_vcpu(other)
    assert sum(elsewhere.values()) == 0 and listed_elsewhere == []


def test_a_report_file_is_readable_by_all_and_an_unwritable_one_freezes_nothing(loaded_cli, database, tmp_path):
    import os

    out = tmp_path / "sub" / "uptime.md"
    loaded_cli("report", "uptime", "--period", "2026-10", "--out", out, "--mkdir")
    assert out.stat().st_mode & 0o777 == 0o644
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    refused = loaded_cli("report", "uptime", "--period", "2026-10", "--freeze", "--out", blocker / "x.md", expect=2)
    assert "cannot write" in refused.stderr and "frozen" not in refused.stderr
    assert count(database, "frozen_report") == 0
    assert not [name for name in os.listdir(tmp_path / "sub") if name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("arguments", [
    ("report", "uptime", "--from", "9999-12-30", "--to", "9999-12-31"),
    ("report", "capacity", "--trend-days", "1000000"),
    ("report", "capacity", "--red-days", "inf", "--amber-days", "inf"),
    ("report", "reissue", "99999999999999999999999"),
    ("maintenance", "add", "e-crvs", "--start", "0001-01-01T00:00", "--end", "0001-01-01T01:00", "--reason", "r",
     "--change-ref", "C-1"),
    ("maintenance", "list", "--since", "9999-12-31T23:59-14:00"),
    ("maintenance", "cancel", "0"),
])
def test_out_of_range_input_is_exit_2_without_a_traceback(loaded_cli, arguments):
    result = loaded_cli(*arguments, expect=2)
    assert "Traceback" not in result.stderr and "error" in result.stderr.lower()


def test_the_capacity_summary_counts_programmes_the_inventory_approved_with_those_requests_did(sample):
    """The sample's mobile wallet is being provisioned without a hosting request: its held capacity is
    pipeline in the bars, and so it is in the summary's count (it said "0 approved")."""
    from dcops.reports.documents import capacity_document
    from dcops.reports.render import render

    with sample.transaction() as conn:
        document = capacity_document(conn, tz=VIENTIANE, now=at("2026-11-29T05:00"), data_centre_name="X")
    approved = document["pipeline"]["approved"]
    # Listed under each cluster that holds part of it (both draw its approved tail), counted once.
    assert {(p["programme"], p["id"]) for p in approved} == {("lao-mobile-wallet", None)}
    assert sorted(p["cluster"] for p in approved) == ["lpb-gen1", "vte-db1"]
    held = sum(r["pipeline_approved"] for s in document["sites"] for c in s["clusters"] for r in c["resources"]
               if r["resource"] == "vcpu")
    assert held > 0
    assert "| Requests in the pipeline | 1 approved, 0 submitted |" in render(document, "md")
