"""The state machines: each table against hand-listed moves, and the one function per table that moves and audits."""

from __future__ import annotations

from itertools import product

import pytest
import sqlalchemy as sa

from dcops import audit, lifecycle
from dcops.catalogue import requests
from dcops.catalogue.requests import approve, submit
from dcops.errors import Conflict
from dcops.inventory.service import load_directory, update_programme
from dcops.provisioning import jobs
from dcops.provisioning.jobs import finish_job, start_job
from dcops.provisioning.runner import RunResult
from dcops.vocabulary import PROGRAMME_STATUSES

import inventories
import requests_fixtures

REQUEST_MOVES = {
    ("submitted", "approved"), ("submitted", "rejected"), ("submitted", "withdrawn"),
    ("approved", "provisioning"), ("provisioning", "active"), ("provisioning", "failed"),
    ("failed", "provisioning"), ("active", "decommission-requested"), ("decommission-requested", "retired"),
}
PROGRAMME_MOVES = {
    ("requested", "approved"), ("approved", "provisioning"), ("provisioning", "active"),
    ("provisioning", "failed"), ("failed", "provisioning"), ("failed", "decommissioning"),
    ("active", "decommissioning"), ("decommissioning", "retired"),
}
JOB_MOVES = {("running", end) for end in ("successful", "failed", "timeout", "cancelled", "interrupted")}


def _moves(table) -> set[tuple[str, str]]:
    return {(start, end) for start, ends in table.items() for end in ends}


@pytest.mark.parametrize(("table", "legal"), [
    (lifecycle.REQUEST_TRANSITIONS, REQUEST_MOVES),
    (lifecycle.PROGRAMME_TRANSITIONS, PROGRAMME_MOVES),
    (lifecycle.JOB_TRANSITIONS, JOB_MOVES),
], ids=["request", "programme", "job"])
def test_each_table_allows_exactly_the_hand_listed_moves(table, legal):
    assert _moves(table) == legal
    for start, end in product(table, repeat=2):
        if (start, end) in legal:
            lifecycle.require_move(table, "thing 1", start, end)
        else:
            with pytest.raises(Conflict, match=f"^thing 1 is {start}; it cannot become {end} "):
                lifecycle.require_move(table, "thing 1", start, end)


@pytest.mark.parametrize(("table", "start", "end"), [
    (lifecycle.REQUEST_TRANSITIONS, "submitted", "provisioning"),
    (lifecycle.REQUEST_TRANSITIONS, "rejected", "approved"),
    (lifecycle.REQUEST_TRANSITIONS, "active", "retired"),
    (lifecycle.PROGRAMME_TRANSITIONS, "approved", "active"),
    (lifecycle.PROGRAMME_TRANSITIONS, "active", "provisioning"),
    (lifecycle.PROGRAMME_TRANSITIONS, "retired", "active"),
    (lifecycle.PROGRAMME_TRANSITIONS, "decommissioning", "active"),
    (lifecycle.JOB_TRANSITIONS, "successful", "failed"),
    (lifecycle.JOB_TRANSITIONS, "interrupted", "running"),
    (lifecycle.JOB_TRANSITIONS, "running", "running"),
])
def test_an_illegal_move_is_one_line_naming_object_from_and_to(table, start, end):
    with pytest.raises(Conflict) as refused:
        lifecycle.require_move(table, "programme dhis2", start, end)
    message = str(refused.value)
    assert message.startswith(f"programme dhis2 is {start}; it cannot become {end} (allowed: ")
    assert "\n" not in message


def test_final_states_say_so():
    with pytest.raises(Conflict, match=r"\(allowed: none: it is final\)$"):
        lifecycle.require_move(lifecycle.PROGRAMME_TRANSITIONS, "programme x", "retired", "active")


def test_the_tables_cover_the_vocabulary_and_agree_with_each_other():
    assert set(lifecycle.PROGRAMME_TRANSITIONS) == set(PROGRAMME_STATUSES)
    inventory = _moves(lifecycle.INVENTORY_PROGRAMME_TRANSITIONS)
    assert inventory == {(a, b) for a, b in product(PROGRAMME_STATUSES, repeat=2) if a != b}
    # Every request move its programme follows is a legal programme move.
    for start, end in REQUEST_MOVES:
        if start in lifecycle.PROGRAMME_STATUS and end in lifecycle.PROGRAMME_STATUS:
            assert (lifecycle.PROGRAMME_STATUS[start], lifecycle.PROGRAMME_STATUS[end]) in PROGRAMME_MOVES
    # What a job starts from: the statuses it accepts and moves out of.
    assert {("approved", "provisioning"), ("failed", "provisioning")} <= PROGRAMME_MOVES
    assert {("active", "decommissioning"), ("failed", "decommissioning")} <= PROGRAMME_MOVES


def test_the_old_names_are_the_tables():
    assert requests.TRANSITIONS is lifecycle.REQUEST_TRANSITIONS
    assert requests.REQUEST_STATES == lifecycle.REQUEST_STATES == tuple(lifecycle.REQUEST_TRANSITIONS)
    assert lifecycle.OPEN_STATES == {"submitted", "approved", "provisioning", "failed", "active",
                                    "decommission-requested"}
    assert jobs.TERMINAL == lifecycle.TERMINAL == ("successful", "failed", "timeout", "cancelled", "interrupted")


@pytest.fixture
def db(any_database, tmp_path):
    load_directory(any_database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()), actor="loader")
    return any_database


def _snapshot(database, table: str, key: str, value) -> tuple:
    """A row of `table` and the length of the audit log."""
    with database.transaction() as conn:
        row = conn.execute(sa.text(f"SELECT * FROM {table} WHERE {key} = :v"), {"v": value}).mappings().one()
        entries = conn.execute(sa.text("SELECT count(*) FROM audit_entry")).scalar_one()
    return dict(row), entries


def _programme_entries(database, slug: str) -> list[dict]:
    with database.transaction() as conn:
        return [e for e in audit.list_entries(conn, object_type="programme", object_key=slug)
                if e["action"].startswith("programme.")]


def _programme_id(database, slug: str) -> int:
    with database.transaction() as conn:
        return conn.execute(sa.text("SELECT id FROM programme WHERE slug = :s"), {"s": slug}).scalar_one()


def test_an_illegal_programme_move_writes_nothing(db):
    before = _snapshot(db, "programme", "slug", "dhis2")
    assert before[0]["status"] == "active"
    programme_id = _programme_id(db, "dhis2")
    with db.transaction(immediate=True) as conn:  # the caller's transaction commits: the refusal wrote nothing
        with pytest.raises(Conflict, match="^programme dhis2 is active; it cannot become provisioning "):
            lifecycle.move_programme(conn, programme_id, "provisioning", actor="ops")
        with pytest.raises(Conflict, match="^programme dhis2 is active; it cannot become retired "):
            lifecycle.move_programme(conn, programme_id, "retired", actor="ops")
    assert _snapshot(db, "programme", "slug", "dhis2") == before
    with db.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM allocation WHERE programme_id = :p"),
                            {"p": programme_id}).scalar_one() > 0  # retiring would have released them


def test_an_illegal_request_move_writes_nothing(db):
    request_id = submit(db, requests_fixtures.request(), actor="desk")
    before = _snapshot(db, "hosting_request", "id", request_id)
    with db.transaction(immediate=True) as conn:
        request = conn.execute(sa.text("SELECT * FROM hosting_request WHERE id = :i"), {"i": request_id}).one()
        with pytest.raises(Conflict, match=f"^request {request_id} is submitted; it cannot become active "):
            lifecycle.move_request(conn, request, "active", actor="ops", reason="no")
    assert _snapshot(db, "hosting_request", "id", request_id) == before


def test_an_illegal_job_move_writes_nothing(db, tmp_path):
    request_id = submit(db, requests_fixtures.request(), actor="desk")
    approve(db, request_id, actor="ops")
    job_id, _chosen, _folder = start_job(db, "provision", ["new-portal"], actor="ops", check=False, sandbox=True,
                                         home=tmp_path)
    finish_job(db, job_id, RunResult(status="successful", rc=0), actor="ops")
    before = _snapshot(db, "job", "id", job_id)
    with db.transaction(immediate=True) as conn:
        job = conn.execute(sa.text("SELECT * FROM job WHERE id = :i"), {"i": job_id}).one()
        with pytest.raises(Conflict, match=f"^job {job_id} is successful; it cannot become failed "):
            lifecycle.move_job(conn, job, "failed", actor="ops", rc=2)
    assert _snapshot(db, "job", "id", job_id) == before
    assert before[0]["status"] == "successful"


def test_a_legal_move_is_written_in_the_callers_transaction(db):
    before = _snapshot(db, "programme", "slug", "dhis2")
    programme_id = _programme_id(db, "dhis2")
    with pytest.raises(RuntimeError):
        with db.transaction(immediate=True) as conn:
            lifecycle.move_programme(conn, programme_id, "decommissioning", actor="ops")
            assert conn.execute(sa.text("SELECT status FROM programme WHERE id = :p"),
                                {"p": programme_id}).scalar_one() == "decommissioning"
            raise RuntimeError("the caller fails later")
    assert _snapshot(db, "programme", "slug", "dhis2") == before  # the row and its entry went back together
    with db.transaction(immediate=True) as conn:
        lifecycle.move_programme(conn, programme_id, "decommissioning", actor="ops", reason="end of life")
    row, entries = _snapshot(db, "programme", "slug", "dhis2")
    assert row["status"] == "decommissioning" and entries == before[1] + 1
    [entry] = _programme_entries(db, "dhis2")
    assert (entry["actor"], entry["action"], entry["before"], entry["after"]) == (
        "ops", "programme.decommissioning", {"status": "active"}, {"status": "decommissioning", "reason": "end of life"})


def test_a_request_approval_leaves_the_programmes_own_entry(db):
    request_id = submit(db, requests_fixtures.request(), actor="desk")
    approve(db, request_id, actor="ops")
    [entry] = _programme_entries(db, "new-portal")
    assert (entry["actor"], entry["action"], entry["before"], entry["after"]) == (
        "ops", "programme.approved", {"status": "requested"}, {"status": "approved", "request": request_id})
    with db.transaction() as conn:
        request_actions = [e["action"] for e in audit.list_entries(conn, object_type="request",
                                                                   object_key=str(request_id))]
    assert request_actions == ["request.submitted", "request.approved"]  # the request keeps its own


def test_a_provisioning_job_leaves_the_programmes_own_entries(db, tmp_path):
    request_id = submit(db, requests_fixtures.request(), actor="desk")
    approve(db, request_id, actor="ops")
    job_id, _chosen, _folder = start_job(db, "provision", ["new-portal"], actor="ops", check=False, sandbox=True,
                                         home=tmp_path)
    finish_job(db, job_id, RunResult(status="failed", rc=2, failed_task="Start service"), actor="ops")
    moves = [(e["before"]["status"], e["after"]["status"], e["after"].get("request"))
             for e in _programme_entries(db, "new-portal")]
    assert moves == [("requested", "approved", request_id), ("approved", "provisioning", request_id),
                     ("provisioning", "failed", request_id)]
    assert _programme_entries(db, "new-portal")[-1]["after"]["reason"].startswith(f"job {job_id} failed")
    with db.transaction() as conn:
        state = conn.execute(sa.text("SELECT state FROM hosting_request WHERE id = :i"), {"i": request_id}).scalar()
    assert state == "failed"


def test_a_job_on_a_programme_without_a_request_moves_and_audits_it(db, tmp_path):
    update_programme(db, "dhis2", {"status": "failed"}, actor="editor")
    job_id, _chosen, _folder = start_job(db, "provision", ["dhis2"], actor="ops", check=False, sandbox=True,
                                         home=tmp_path)
    finish_job(db, job_id, RunResult(status="successful", rc=0), actor="ops")
    entries = _programme_entries(db, "dhis2")
    assert [(e["action"], e["before"], e["after"]) for e in entries] == [
        ("programme.provisioning", {"status": "failed"}, {"status": "provisioning"}),
        ("programme.active", {"status": "provisioning"}, {"status": "active"}),
    ]
    assert _snapshot(db, "job", "id", job_id)[0]["status"] == "successful"


def test_an_inventory_move_may_set_any_status_and_is_audited_by_the_load(db):
    update_programme(db, "dhis2", {"status": "requested"}, actor="editor")  # active -> requested: not a job's move
    assert _snapshot(db, "programme", "slug", "dhis2")[0]["status"] == "requested"
    assert _programme_entries(db, "dhis2") == []
    with db.transaction() as conn:
        last = audit.list_entries(conn, object_type="programme", object_key="dhis2")[-1]
    assert (last["action"], last["before"], last["after"]) == (
        "inventory.programme.updated", {"status": "active"}, {"status": "requested"})
