"""Every programme is monitored or says it is not: catalogue checks, approval, the endpoint commands, warnings."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from dcops.catalogue.requests import approve, submit
from dcops.errors import ValidationError
from dcops.inventory.service import load_directory

import inventories
import requests_fixtures
from test_inventory_load import snapshot

CHECKS = [
    {"name": "ssh", "kind": "tcp", "target": "{host}:22"},
    {"name": "web", "kind": "http", "target": "https://{public_name}/healthz", "expect_status": "200",
     "interval_seconds": 30},
    {"name": "cert", "kind": "tls", "target": "{programme}.apps.gov.la.example:443"},
]
WARNING = "dcops: warning: programme {slug} is active with no check: it will not be monitored"


def catalogue_with_checks(checks=None, public_domain: str | None = "apps.gov.la.example") -> dict:
    """The request tests' inventory, its `vm` offering declaring `checks`."""
    files = requests_fixtures.inventory()
    offering = files["catalogue.yaml"]["offerings"][0]
    offering["checks"] = copy.deepcopy(CHECKS if checks is None else checks)
    if public_domain is not None:
        offering["public_domain"] = public_domain
    return files


def endpoints_of(database, slug: str) -> dict[str, tuple]:
    with database.transaction() as conn:
        rows = conn.execute(sa.text(
            "SELECT e.name, e.kind, e.target, e.expect_status, e.interval_seconds FROM endpoint e "
            "JOIN programme p ON p.id = e.programme_id WHERE p.slug = :s ORDER BY e.name"), {"s": slug}).all()
    return {r[0]: tuple(r[1:]) for r in rows}


# --- a request-created programme gets its checks -------------------------------------------------


def test_approval_creates_the_offerings_checks_with_expanded_targets(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", catalogue_with_checks()))
    request_id = submit(any_database, requests_fixtures.request("new-portal"), actor="ministry-desk")
    placement = approve(any_database, request_id, actor="ops")
    assert endpoints_of(any_database, "new-portal") == {
        "cert": ("tls", "new-portal.apps.gov.la.example:443", "200-399", 60),
        "ssh-1": ("tcp", "new-portal-01:22", "200-399", 60),
        "ssh-2": ("tcp", "new-portal-02:22", "200-399", 60),
        "web": ("http", "https://new-portal.apps.gov.la.example/healthz", "200", 30),
    }
    assert placement.checks == ("cert", "ssh-1", "ssh-2", "web")
    assert placement.warnings == ()
    with any_database.transaction() as conn:
        entries = conn.execute(sa.text(
            "SELECT action, after FROM audit_entry WHERE object_type = 'programme' AND object_key = 'new-portal' "
            "ORDER BY id")).all()
    after = {action: (json.loads(a) if isinstance(a, str) else a) for action, a in entries}
    assert set(after["endpoint.created"]["endpoints"]) == {"cert", "ssh-1", "ssh-2", "web"}
    assert after["endpoint.created"]["request"] == request_id


def test_approval_of_an_offering_without_checks_says_it_will_not_be_monitored(database, tmp_path):
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    placement = approve(database, submit(database, requests_fixtures.request("bare")), actor="ops")
    assert endpoints_of(database, "bare") == {}
    assert placement.checks == ()
    (warning,) = placement.warnings
    assert "offering vm declares no checks" in warning and "bare" in warning


def test_request_approve_cli_prints_the_checks_and_the_warning(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    path = tmp_path / "request.yaml"
    path.write_text(json.dumps(requests_fixtures.request("bare")), encoding="utf-8")
    cli("request", "submit", path)
    result = cli("request", "approve", "1", "-o", "json")
    document = json.loads(result.stdout)
    assert document["checks"] == [] and len(document["warnings"]) == 1
    assert result.stderr.startswith("dcops: warning: offering vm declares no checks")


def test_offering_checks_are_stored_exported_and_shown(database, tmp_path):
    from dcops.catalogue.queries import show_offering
    from dcops.inventory.export import export_inventory

    load_directory(database, inventories.write(tmp_path / "inv", catalogue_with_checks()))
    with database.transaction() as conn:
        offering = show_offering(conn, "vm")
    assert [c["name"] for c in offering["checks"]] == ["ssh", "web", "cert"]
    assert offering["public_domain"] == "apps.gov.la.example"
    before = snapshot(database)
    export_inventory(database, tmp_path / "exported")
    plan = load_directory(database, tmp_path / "exported")
    assert not plan.has_changes, [c.as_dict() for c in plan.changes if c.action != "unchanged"]
    assert snapshot(database) == before


@pytest.mark.parametrize(
    ("checks", "public_domain", "message"),
    [
        ([{"name": "ssh", "kind": "tcp", "target": "{hots}:22"}], None,
         "unknown placeholder {hots} in target (known: {host}, {programme}, {public_name})"),
        ([{"name": "ssh", "kind": "tcp", "target": "{host!r}:22"}], None, "a placeholder is a bare name"),
        ([{"name": "ssh", "kind": "tcp", "target": "{host:22"}], None, "unbalanced"),
        ([{"name": "ssh", "kind": "tcp", "target": "{host}"}], None, "a tcp endpoint needs host:port"),
        ([{"name": "web", "kind": "http", "target": "ftp://{programme}.example/"}], None,
         "an http endpoint needs an http:// or https:// URL"),
        ([{"name": "web", "kind": "http", "target": "https://{public_name}/"}], None,
         "{public_name} needs the offering's public_domain"),
        ([{"name": "web", "kind": "http", "target": "https://x.example/", "timeout_seconds": 90}], None,
         "timeout_seconds"),
        ([{"name": "ssh", "kind": "tcp", "target": "{host}:22"}, {"name": "ssh-1", "kind": "tcp",
                                                                  "target": "{programme}.example:22"}],
         None, "check name 'ssh-1' twice"),
        ([{"name": "ssh", "kind": "tcp", "target": "{host}:22"}], "not a domain!", "public_domain"),
    ],
)
def test_bad_checks_are_refused_at_catalogue_load_with_file_and_line(database, tmp_path, checks, public_domain,
                                                                     message):
    directory = inventories.write(tmp_path / "inv", catalogue_with_checks(checks, public_domain))
    before = snapshot(database)
    with pytest.raises(ValidationError) as caught:
        load_directory(database, directory)
    text = "\n".join(caught.value.problems)
    assert message in text
    assert f"{directory / 'catalogue.yaml'}:" in text  # file and line
    assert snapshot(database) == before


# --- operators manage endpoints from the CLI -----------------------------------------------------


@pytest.fixture
def small(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", inventories.base()))
    return cli


def test_an_operator_adds_lists_and_removes_an_endpoint(small, settings):
    from dcops.db import open_database

    added = small("programme", "endpoint", "add", "e-gov-portal", "--name", "web", "--kind", "http",
                  "--target", "https://portal.gov.la.example/healthz", "--expect-status", "200,301",
                  "--body-contains", "ok", "--interval-seconds", "30", "--timeout-seconds", "4", "--actor", "khamla")
    assert "create" in added.stdout or "update" in added.stdout
    assert WARNING.format(slug="e-gov-portal") not in added.stderr
    listed = json.loads(small("programme", "endpoint", "list", "e-gov-portal", "-o", "json").stdout)
    assert listed == [{"name": "web", "kind": "http", "target": "https://portal.gov.la.example/healthz",
                       "expect_status": "200,301", "body_contains": "ok", "timeout_seconds": 4.0,
                       "interval_seconds": 30}]
    table = small("programme", "endpoint", "list", "e-gov-portal").stdout
    assert "web" in table and "https://portal.gov.la.example/healthz" in table
    assert all(len(line) <= 80 for line in table.splitlines())
    audit = json.loads(small("audit", "list", "--object", "e-gov-portal", "-o", "json").stdout)
    assert any(e["actor"] == "khamla" and "endpoints" in (e["after"] or {}) for e in audit)

    database = open_database(settings)
    with database.transaction() as conn:
        ids = conn.execute(sa.text("SELECT p.id, e.id FROM endpoint e JOIN programme p ON p.id = e.programme_id "
                                   "WHERE p.slug = 'e-gov-portal'")).one()
        at = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for endpoint_id in (ids[1], None):
            conn.execute(sa.text("INSERT INTO state_interval (programme_id, endpoint_id, state, started_at, reason) "
                                 "VALUES (:p, :e, 'up', :at, '')"), {"p": ids[0], "e": endpoint_id, "at": at})
    removed = small("programme", "endpoint", "remove", "e-gov-portal", "web")
    assert WARNING.format(slug="e-gov-portal") in removed.stderr
    assert json.loads(small("programme", "endpoint", "list", "e-gov-portal", "-o", "json").stdout) == []
    with database.transaction() as conn:
        kept = conn.execute(sa.text("SELECT endpoint_id FROM state_interval WHERE programme_id = :p"),
                            {"p": ids[0]}).all()
    database.dispose()
    assert [tuple(r) for r in kept] == [(None,)]  # the programme's SLA record stays, the check's goes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "e-gov-portal", "--name", "web", "--kind", "tcp", "--target", "nowhere"],
         "a tcp endpoint needs host:port"),
        (["add", "e-gov-portal", "--name", "Web!", "--kind", "tcp", "--target", "127.0.0.1:80"], "name"),
        (["add", "e-gov-portal", "--name", "web", "--kind", "smtp", "--target", "127.0.0.1:25"], "kind"),
        (["add", "e-gov-portal", "--name", "web", "--kind", "http", "--target", "http://x.example/\x1b[2J"],
         "control character"),
        (["add", "dhis2", "--name", "web", "--kind", "tcp", "--target", "127.0.0.1:80"], "already has an endpoint"),
        (["add", "nope", "--name", "web", "--kind", "tcp", "--target", "127.0.0.1:80"], "no programme 'nope'"),
        (["remove", "dhis2", "nope"], "has no endpoint 'nope'"),
        (["list", "nope"], "no programme 'nope'"),
    ],
)
def test_bad_endpoint_commands_exit_2_with_one_line_and_write_nothing(small, settings, args, message):
    from dcops.db import open_database

    database = open_database(settings)
    before = snapshot(database)
    result = small("programme", "endpoint", *args, expect=2)
    assert message in result.stderr and result.stderr.startswith("dcops: error:")
    assert "Traceback" not in result.stderr
    assert snapshot(database) == before
    database.dispose()


def test_endpoints_added_from_the_cli_round_trip_through_export(small, settings, tmp_path):
    from dcops.db import open_database

    small("programme", "endpoint", "add", "e-gov-portal", "--name", "tls", "--kind", "tls",
          "--target", "127.0.0.1:18443", "--interval-seconds", "120")
    small("programme", "endpoint", "add", "dhis2", "--name", "db", "--kind", "tcp", "--target", "127.0.1.1:5432")
    database = open_database(settings)
    before = snapshot(database)
    small("inventory", "export", tmp_path / "exported")
    plan = json.loads(small("inventory", "load", tmp_path / "exported", "--prune", "-o", "json").stdout)
    assert plan["applied"] is False and plan["changes"] == []
    assert snapshot(database) == before
    database.dispose()


# --- warnings ------------------------------------------------------------------------------------


def test_inventory_load_warns_of_active_programmes_without_checks(cli, tmp_path):
    result = cli("inventory", "load", inventories.write(tmp_path / "inv", inventories.base()), "-o", "json")
    assert json.loads(result.stdout)["unmonitored"] == ["e-gov-portal"]
    assert result.stderr.splitlines() == [WARNING.format(slug="e-gov-portal")]


def test_programme_add_and_update_warn_and_the_library_does_not_print(small, capsys, settings):
    from dcops.db import open_database
    from dcops.inventory.service import update_programme

    added = small("programme", "add", "lao-tax", "--name", "Tax", "--ministry", "moh", "--tier", "2",
                  "--classification", "internal", "--owner", "tax@mof.example.la",
                  "--security-contact", "sec@mof.example.la")
    assert added.stderr.splitlines() == [WARNING.format(slug="lao-tax")]
    updated = small("programme", "update", "dhis2", "--tier", "2")
    assert updated.stderr == ""  # dhis2 has its check
    database = open_database(settings)
    plan = update_programme(database, "e-gov-portal", {"tier": 3})
    database.dispose()
    assert plan.unmonitored == ["e-gov-portal"] and plan.as_dict()["unmonitored"] == ["e-gov-portal"]
    assert capsys.readouterr().err == ""


def test_programmes_not_active_are_not_warned_about(cli, tmp_path):
    files = inventories.base()
    files["programmes/mtc.yaml"]["programmes"][1]["status"] = "provisioning"
    result = cli("inventory", "load", inventories.write(tmp_path / "inv", files), "-o", "json")
    assert json.loads(result.stdout)["unmonitored"] == [] and result.stderr == ""


def test_every_sample_offering_declares_checks(database, tmp_path):
    import shutil

    from conftest import SAMPLE_INVENTORY
    from dcops.catalogue.queries import list_offerings

    (tmp_path / "inv").mkdir()
    shutil.copy(SAMPLE_INVENTORY / "catalogue.yaml", tmp_path / "inv" / "catalogue.yaml")
    load_directory(database, tmp_path / "inv")
    with database.transaction() as conn:
        offerings = list_offerings(conn)
    assert len(offerings) >= 6 and all(o["checks"] for o in offerings)
    web = next(o for o in offerings if o["id"] == "web-hosting")
    assert {c["kind"] for c in web["checks"]} >= {"http", "tls"} and web["public_domain"]


def test_catalogue_show_says_what_is_monitored(cli, tmp_path):
    cli("inventory", "load", inventories.write(tmp_path / "inv", catalogue_with_checks()))
    text = cli("catalogue", "show", "vm").stdout
    assert "Monitored:" in text and "TCP connection to <server>:22, on each server" in text
    assert "HTTPS https://<programme>.apps.gov.la.example/healthz answering 200" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    document = json.loads(cli("catalogue", "show", "vm", "-o", "json").stdout)
    assert document["public_domain"] == "apps.gov.la.example" and len(document["checks"]) == 3
