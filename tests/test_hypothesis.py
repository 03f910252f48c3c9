"""Property tests: random inventory documents never crash the loader and never half-write."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from dcops.db import open_database, upgrade
from dcops.errors import DcopsError, UserError
from dcops.inventory.service import load_directory
from dcops.settings import Settings

import inventories
from test_inventory_load import snapshot

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["moh", "mtc", "gen-a", "dc1", "dhis2", "digital-id", "http", "tcp", "primary", "2027-01-01"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
FIELDS = {
    "programme": ["slug", "name", "ministry", "tier", "status", "classification", "environment", "contacts",
                  "personal_data", "recovery", "review_date", "depends_on", "endpoints", "allocations", "hosts"],
    "allocation": ["cluster", "vcpu", "ram_gib", "storage_gib"],
    "capacity": ["total", "reserved", "allocation_ratio"],
}


@st.composite
def mutated_inventories(draw):
    """The small valid inventory with a few fields replaced by random values (or deleted)."""
    files = inventories.base()
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        target = draw(st.sampled_from(["programme", "allocation", "capacity", "file"]))
        if target == "file":
            files[draw(st.sampled_from(["x.yaml", "programmes/moh.yaml"]))] = draw(
                st.one_of(values, st.text(max_size=80))
            )
            continue
        try:  # an earlier mutation may have removed or replaced what this one targets
            if target == "programme":
                document = draw(st.sampled_from(["programmes/moh.yaml", "programmes/mtc.yaml"]))
                programmes = files[document]["programmes"]
                record = programmes[draw(st.integers(0, len(programmes) - 1))]
            elif target == "allocation":
                record = files["programmes/moh.yaml"]["programmes"][0]["allocations"][0]
            else:
                record = files["sites.yaml"]["sites"][0]["clusters"][0]["capacity"][
                    draw(st.sampled_from(["vcpu", "ram_gib", "storage_gib"]))
                ]
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        field = draw(st.sampled_from(FIELDS[target]))
        if draw(st.booleans()):
            record.pop(field, None)
        else:
            record[field] = draw(values)
    return files


def _write(directory: Path, files: dict) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    for name, document in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(document, str):
            path.write_text(document, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=mutated_inventories())
def test_loader_never_crashes_and_never_half_writes(files):
    with tempfile.TemporaryDirectory() as tmp:
        config = Settings.from_env({"DCOPS_DATABASE_URL": f"sqlite:///{tmp}/dcops.db", "DCOPS_HOME": tmp})
        upgrade(config)
        database = open_database(config)
        try:
            directory = Path(tmp) / "inv"
            _write(directory, files)
            before = snapshot(database)
            try:
                plan = load_directory(database, directory)
            except UserError:
                assert snapshot(database) == before
                return
            except DcopsError as error:  # pragma: no cover - shown if it ever happens
                raise AssertionError(f"not a user error: {error}") from error
            assert plan.applied or not plan.has_changes
            after = snapshot(database)
            # Whatever was accepted is stable: loading the same files again changes nothing.
            assert not load_directory(database, directory).has_changes
            assert snapshot(database) == after
        finally:
            database.dispose()
