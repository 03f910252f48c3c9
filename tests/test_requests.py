"""Hosting requests: validation, the state machine, the two-person rule, placement and capacity."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from dcops.catalogue import requests
from dcops.catalogue.requests import workflow
from dcops.catalogue.requests import TRANSITIONS, approve, submit
from dcops.inventory.capacity import choose_cluster
from dcops.errors import Conflict, NotFound, UserError, ValidationError
from dcops.inventory.capacity import ResourceUsage
from dcops.inventory.service import load_directory

import inventories
import requests_fixtures
from test_inventory_load import snapshot


@pytest.fixture
def db(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    return any_database


@pytest.fixture
def sdb(database, tmp_path):
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    return database


def programme_status(database, slug):
    with database.transaction() as conn:
        return conn.execute(sa.text("SELECT status FROM programme WHERE slug = :s"), {"s": slug}).scalar()


def test_submit_approve_places_and_reserves(db):
    request_id = submit(db, requests_fixtures.request(), actor="ministry-desk")
    placement = approve(db, request_id, actor="ops")
    assert placement.cluster == "gen-a"
    assert placement.reserved == {"vcpu": 8, "ram_gib": 32, "storage_gib": 200}  # 2 instances
    assert programme_status(db, "new-portal") == "approved"
    with db.transaction() as conn:
        record = requests.show_request(conn, request_id)
        allocated = conn.execute(sa.text(
            "SELECT a.resource, a.amount FROM allocation a JOIN programme p ON p.id = a.programme_id "
            "WHERE p.slug = 'new-portal' ORDER BY a.resource")).all()
    assert record["state"] == "approved" and record["cluster"] == "gen-a" and record["decided_by"] == "ops"
    assert [tuple(r) for r in allocated] == [("ram_gib", 32), ("storage_gib", 200), ("vcpu", 8)]
    assert [h["action"] for h in record["history"]] == ["request.submitted", "request.approved"]


def test_every_problem_reported_at_once_and_nothing_written(sdb):
    submit(sdb, requests_fixtures.request("taken-slug"))
    before = snapshot(sdb)
    document = requests_fixtures.request(
        "taken-slug", ministry="nope", plan="vm-huge", tier=1, wanted_by="2001-01-01", site="mars",
        contacts={"owner": "owner@mtc.example.la"},
    )
    document["offering"] = "storage"
    with pytest.raises(ValidationError) as caught:
        submit(sdb, document)
    text = "\n".join(caught.value.problems)
    for expected in ("contacts.security: is required", "unknown ministry 'nope'",
                     "plan 'vm-huge' belongs to offering 'vm', not 'storage'",
                     "'taken-slug' is already requested", "2001-01-01 is in the past", "unknown site 'mars'"):
        assert expected in text
    assert snapshot(sdb) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"plan": "vm-nope"}, "no plan 'vm-nope' in the catalogue"),
        ({"tier": 1}, "plan 'vm-medium' does not offer tier 1 (offers 2, 3)"),
        ({"programme": {"slug": "dhis2", "name": "x"}}, "'dhis2' is already a programme"),
        ({"contacts": {"owner": "a@b.la"}}, "contacts.security: is required"),
        ({"justification": "short"}, "justification: must be at least 10 characters"),
        ({"programme": {"slug": "../etc", "name": "x"}}, "programme.slug: must be 2-63 characters of [a-z0-9-]"),
        ({"classification": "top-secret"}, "classification: must be 'public'"),
        ({"extra": 1}, "extra: unknown field"),
    ],
)
def test_invalid_requests(sdb, changes, message):
    with pytest.raises(ValidationError) as caught:
        submit(sdb, requests_fixtures.request(**changes))
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_transition_table_refuses_illegal_moves(sdb):
    request_id = submit(sdb, requests_fixtures.request())
    requests.reject(sdb, request_id, reason="use shared hosting", actor="ops")
    for action in (lambda: approve(sdb, request_id, actor="ops"),
                   lambda: requests.withdraw(sdb, request_id),
                   lambda: requests.advance(sdb, request_id, "provisioning")):
        with pytest.raises(Conflict):
            action()
    with pytest.raises(Conflict, match="request 1 is rejected; it cannot become provisioning"):
        requests.advance(sdb, request_id, "provisioning")
    assert TRANSITIONS["rejected"] == frozenset()


def test_lifecycle_moves_the_programme_status_and_releases_capacity_at_the_end(sdb):
    request_id = submit(sdb, requests_fixtures.request())
    approve(sdb, request_id, actor="ops")
    for state, status in (("provisioning", "provisioning"), ("failed", "failed"), ("provisioning", "provisioning"),
                          ("active", "active"), ("decommission-requested", "decommissioning"),
                          ("retired", "retired")):
        requests.advance(sdb, request_id, state, actor="ops")
        assert programme_status(sdb, "new-portal") == status
    with sdb.transaction() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM allocation a JOIN programme p ON p.id = a.programme_id "
                                    "WHERE p.slug = 'new-portal'")).scalar()
    assert held == 0
    with pytest.raises(UserError, match="use `dcops request approve`"):
        requests.advance(sdb, request_id, "approved")


def test_two_person_rule(db):
    request_id = submit(db, requests_fixtures.request(classification="confidential"))
    with pytest.raises(Conflict, match="needs a security sign-off first"):
        approve(db, request_id, actor="alice")
    requests.sign_off(db, request_id, actor="alice")
    with pytest.raises(Conflict, match="two-person rule"):
        approve(db, request_id, actor="alice")
    with pytest.raises(Conflict, match="already signed off"):
        requests.sign_off(db, request_id, actor="carol")
    approve(db, request_id, actor="bob")
    personal = submit(db, requests_fixtures.request("p2", classification="public", personal_data=True))
    with pytest.raises(Conflict, match="needs a security sign-off"):
        approve(db, personal, actor="bob")


def test_two_person_rule_holds_in_the_transition_function_itself(sdb):
    """A second code path that moves a request to approved still meets the rule."""
    request_id = submit(sdb, requests_fixtures.request(classification="secret"))
    with sdb.transaction(immediate=True) as conn:
        row = workflow._load(conn, request_id)
        with pytest.raises(Conflict, match="needs a security sign-off first"):
            requests.transition(conn, row, "approved", actor="mallory")


def test_refusal_says_which_resource_is_short_where_and_by_how_much(sdb):
    request_id = submit(sdb, requests_fixtures.request(plan="vm-huge", tier=1))
    before = snapshot(sdb)
    with pytest.raises(Conflict) as caught:
        approve(sdb, request_id, actor="ops")
    # gen-a: (64 - 4) x 2 = 120 vCPU, 24 allocated: 96 free, the plan needs 200
    assert "gen-a: vcpu short by 104 (free 96, needs 200)" in str(caught.value)
    assert snapshot(sdb) == before


def test_cluster_option_and_site(sdb):
    request_id = submit(sdb, requests_fixtures.request())
    with pytest.raises(NotFound, match="no cluster 'nowhere'"):
        approve(sdb, request_id, actor="ops", cluster="nowhere")
    other = submit(sdb, requests_fixtures.request("other", site="dc1"))
    assert approve(sdb, other, actor="ops").site == "dc1"


def test_choose_cluster_spreads_load_and_lists_shortfalls():
    def usage(name, total, allocated):
        return {"vcpu": ResourceUsage(name, "s", "vcpu", total=total, reserved=0, allocation_ratio=1.0,
                                      allocated=allocated)}

    candidates = {"a": usage("a", 100, 80), "b": usage("b", 100, 10), "c": usage("c", 10, 0)}
    chosen, refusals = choose_cluster({"vcpu": 15}, candidates)
    assert chosen == "b"
    assert refusals == {"c": ["vcpu short by 5 (free 10, needs 15)"]}
    assert choose_cluster({"vcpu": 95}, candidates)[0] is None


def test_prune_leaves_request_programmes_alone(sdb, tmp_path):
    request_id = submit(sdb, requests_fixtures.request())
    approve(sdb, request_id, actor="ops")
    plan = load_directory(sdb, tmp_path / "inv", prune=True)
    assert "new-portal" not in [c.key for c in plan.changes if c.action == "retire"]


def test_request_cli_round_trip(cli, tmp_path):
    import yaml

    cli("inventory", "load", inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(requests_fixtures.request(classification="confidential")))
    assert json.loads(cli("request", "submit", path, "-o", "json").stdout) == {"id": 1, "state": "submitted"}
    assert "needs a security sign-off" in cli("request", "approve", "1", "--actor", "a", expect=2).stderr
    cli("request", "sign-off", "1", "--actor", "a")
    out = cli("request", "approve", "1", "--actor", "b").stdout
    assert "placed on gen-a" in out
    rows = json.loads(cli("request", "list", "--state", "approved", "-o", "json").stdout)
    assert [r["id"] for r in rows] == [1]
    assert "Traceback" not in cli("request", "show", "99", expect=2).stderr
    assert "a rejection needs a reason" in cli("request", "reject", "1", "--reason", " ", expect=2).stderr
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in cli("request", "submit", bad, expect=2).stderr
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 300_000)
    assert "at most 256 KiB" in cli("request", "submit", big, expect=2).stderr
