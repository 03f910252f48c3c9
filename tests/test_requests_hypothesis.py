"""Property tests: random request documents never crash submission and never half-write."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from dcops.catalogue.requests import read_request_file, submit
from dcops.db import open_database, upgrade
from dcops.errors import UserError
from dcops.inventory.service import load_directory
from dcops.settings import Settings

import inventories
import requests_fixtures
from test_hypothesis import values
from test_inventory_load import snapshot

HOSTILE = ["{{ lookup('pipe', 'id') }}", "<script>alert(1)</script>", "../../etc/passwd", "$(rm -rf /); `id`",
           "'; DROP TABLE programme; --", "ລາວ", "\u202e", "a" * 300]
FIELDS = ["ministry", "programme", "offering", "plan", "tier", "classification", "environment", "personal_data",
          "justification", "contacts", "wanted_by", "site"]


@st.composite
def request_documents(draw):
    document = requests_fixtures.request(f"p-{draw(st.integers(0, 5))}")
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(FIELDS))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            document.pop(field, None)
        elif choice == 1:
            document[field] = draw(values)
        else:
            document[field] = draw(st.sampled_from(HOSTILE))
    if draw(st.booleans()):
        document["programme"] = {"slug": "hostile", "name": draw(st.sampled_from(HOSTILE)),
                                 "description": draw(st.sampled_from(HOSTILE))}
    return document


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(documents=st.lists(request_documents(), min_size=1, max_size=4))
def test_submit_never_crashes_and_never_half_writes(documents):
    with tempfile.TemporaryDirectory() as tmp:
        config = Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{tmp}/dcops.db", "DCOPS_HOME": tmp})
        upgrade(config)
        database = open_database(config)
        try:
            load_directory(database, inventories.write(Path(tmp) / "inv", requests_fixtures.inventory()))
            for document in documents:
                # Through a YAML file, as a ministry sends it.
                path = Path(tmp) / "request.yaml"
                path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
                before = snapshot(database)
                try:
                    submit(database, read_request_file(path), where=str(path))
                except UserError:
                    assert snapshot(database) == before
        finally:
            database.dispose()


def test_hostile_text_is_stored_literally(database, tmp_path):
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    document = requests_fixtures.request(programme={"slug": "hostile", "name": HOSTILE[1], "description": HOSTILE[0]})
    document["justification"] = HOSTILE[3] + " " + HOSTILE[2]
    request_id = submit(database, document)
    from dcops.catalogue.requests import show_request

    with database.transaction() as conn:
        record = show_request(conn, request_id)
    assert record["programme"] == {"slug": "hostile", "name": HOSTILE[1], "description": HOSTILE[0]}
    assert record["justification"] == HOSTILE[3] + " " + HOSTILE[2]


def test_yaml_bomb_in_a_request_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    try:
        read_request_file(path)
    except UserError as error:
        assert "expands to more than" in str(error)
    else:
        raise AssertionError("a YAML bomb was accepted")
