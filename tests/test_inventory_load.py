"""`inventory load`: validation with file and line, plans, one-transaction apply, prune, export round trip."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from dcops.errors import ValidationError
from dcops.inventory.reconcile import read_current
from dcops.inventory.service import load_directory

import inventories


def snapshot(database) -> dict:
    """Every row of every inventory table, for 'nothing changed' comparisons."""
    tables = ("sla_tier", "ministry", "site", "cluster", "cluster_capacity", "programme",
              "programme_dependency", "endpoint", "allocation", "host", "external_component",
              "programme_external_dependency")
    with database.transaction() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}"))), key=repr) for t in tables}


def test_load_creates_everything_then_a_second_load_changes_nothing(any_database, tmp_path):
    directory = inventories.write(tmp_path / "inv", inventories.base())
    plan = load_directory(any_database, directory)
    assert plan.applied
    assert plan.count("create") == 2 + 1 + 1 + 3  # ministries, site, cluster, programmes
    with any_database.transaction() as conn:
        current = read_current(conn)
    assert current.programmes["dhis2"]["depends_on"] == ["digital-id"]
    assert current.programmes["dhis2"]["allocations"] == {"gen-a": {"vcpu": 16, "ram_gib": 64, "storage_gib": 500}}
    assert current.programmes["dhis2"]["status"] == "active"
    assert str(current.programmes["dhis2"]["review_date"]) == "2027-06-30"
    before = snapshot(any_database)
    again = load_directory(any_database, directory)
    assert not again.has_changes and not again.applied
    assert again.count("unchanged") == plan.count("create")
    assert snapshot(any_database) == before


def test_update_plan_lists_field_diffs_and_keeps_endpoint_ids(database, tmp_path):
    files = inventories.base()
    directory = inventories.write(tmp_path / "inv", files)
    load_directory(database, directory)
    with database.transaction() as conn:
        endpoint_id = conn.execute(sa.text("SELECT id FROM endpoint WHERE name = 'web'")).scalar()
    programme = files["programmes/moh.yaml"]["programmes"][0]
    programme["tier"] = 2
    programme["endpoints"][0]["target"] = "http://127.0.0.1:18009/health"
    inventories.write(directory, files)
    plan = load_directory(database, directory)
    (change,) = [c for c in plan.changes if c.action == "update"]
    assert (change.kind, change.key) == ("programme", "dhis2")
    fields = {f.field: (f.old, f.new) for f in change.fields}
    assert fields["tier"] == (1, 2)
    assert set(fields) == {"tier", "endpoints"}
    with database.transaction() as conn:
        row = conn.execute(sa.text("SELECT id, target FROM endpoint WHERE name = 'web'")).one()
    assert tuple(row) == (endpoint_id, "http://127.0.0.1:18009/health")


def test_dry_run_writes_nothing(database, tmp_path):
    directory = inventories.write(tmp_path / "inv", inventories.base())
    before = snapshot(database)
    plan = load_directory(database, directory, dry_run=True)
    assert plan.has_changes and not plan.applied
    assert snapshot(database) == before


def test_prune_retires_missing_programmes_and_frees_their_capacity(any_database, tmp_path):
    files = inventories.base()
    directory = inventories.write(tmp_path / "inv", files)
    load_directory(any_database, directory)
    (directory / "programmes" / "mtc.yaml").unlink()
    files["programmes/moh.yaml"]["programmes"][0]["depends_on"] = []
    inventories.write(directory, {"programmes/moh.yaml": files["programmes/moh.yaml"]})
    without_prune = load_directory(any_database, directory)
    assert without_prune.count("retire") == 0
    plan = load_directory(any_database, directory, prune=True)
    assert sorted(c.key for c in plan.changes if c.action == "retire") == ["digital-id", "e-gov-portal"]
    with any_database.transaction() as conn:
        current = read_current(conn)
    assert current.programmes["digital-id"]["status"] == "retired"
    assert current.programmes["digital-id"]["allocations"] == {}
    assert current.programmes["digital-id"]["endpoints"]  # history and records stay
    assert load_directory(any_database, directory, prune=True).count("retire") == 0


def test_host_can_move_between_programmes_in_one_load(database, tmp_path):
    files = inventories.base()
    directory = inventories.write(tmp_path / "inv", files)
    load_directory(database, directory)
    host = files["programmes/moh.yaml"]["programmes"][0].pop("hosts")
    files["programmes/mtc.yaml"]["programmes"][0]["hosts"] = host
    inventories.write(directory, files)
    load_directory(database, directory)
    with database.transaction() as conn:
        owner = conn.execute(sa.text(
            "SELECT p.slug FROM host h JOIN programme p ON p.id = h.programme_id WHERE h.name = 'dhis2-app-01'"
        )).scalar()
    assert owner == "digital-id"


def _problems(database, tmp_path, files) -> list[str]:
    directory = inventories.write(tmp_path / "bad", files)
    before = snapshot(database)
    with pytest.raises(ValidationError) as caught:
        load_directory(database, directory)
    assert snapshot(database) == before
    return caught.value.problems


def _programme(files, index=0, name="programmes/moh.yaml"):
    return files[name]["programmes"][index]


BAD_PROGRAMMES = [
    ("tier", 5, "tier: must be 1, 2 or 3 (got 5)"),
    ("slug", "Bad_Slug", "slug: must be 2-63 characters of [a-z0-9-]"),
    ("slug", "x", "slug: must be 2-63 characters of [a-z0-9-]"),
    ("slug", "-edge", "slug: must be 2-63 characters of [a-z0-9-]"),
    ("ministry", "mon", "unknown ministry 'mon'"),
    ("classification", "top", "classification: must be 'public'"),
    ("personal_data", "maybe", "personal_data: must be true or false"),
    ("review_date", "tomorrow", "review_date: must be a date, YYYY-MM-DD"),
    ("colour", "blue", "colour: unknown field"),
    ("depends_on", ["dhis2"], "depends on itself"),
    ("depends_on", ["nowhere"], "depends on unknown programme 'nowhere'"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_PROGRAMMES)
def test_bad_programme_fields_are_reported_with_file_and_line(database, tmp_path, field, value, message):
    files = inventories.base()
    _programme(files)[field] = value
    problems = _problems(database, tmp_path, files)
    assert any(message in p for p in problems), problems
    assert all("moh.yaml:" in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vcpu": -1}, "vcpu: must be at least 0"),
        ({"vcpu": 10**9}, "vcpu: must be at most"),
        ({"vcpu": 1000}, "vcpu allocations total 1008, more than its capacity 120 (short by 888)"),
        ({"cluster": "nowhere"}, "allocation on unknown cluster 'nowhere'"),
        ({"ram_gib": 1.5}, "ram_gib: must be a whole number"),
    ],
)
def test_bad_allocations(database, tmp_path, change, message):
    files = inventories.base()
    _programme(files)["allocations"][0].update(change)
    problems = _problems(database, tmp_path, files)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"allocation_ratio": 0}, "allocation_ratio: must be more than 0"),
        ({"allocation_ratio": -2}, "allocation_ratio: must be more than 0"),
        ({"reserved": 100}, "reserved (100) is more than total (64)"),
        ({"total": -5}, "total: must be at least 0"),
        ({"total": 10**8}, "vcpu total 100000000 is absurd"),
    ],
)
def test_bad_capacity(database, tmp_path, change, message):
    files = inventories.base()
    files["sites.yaml"]["sites"][0]["clusters"][0]["capacity"]["vcpu"].update(change)
    problems = _problems(database, tmp_path, files)
    assert any(message in p and "sites.yaml:" in p for p in problems), problems


def test_every_error_in_every_file_is_reported_at_once_with_lines(database, tmp_path):
    files = inventories.base()
    files["programmes/moh.yaml"] = (
        "programmes:\n"
        "  - slug: dhis2\n"
        "    name: Health information system\n"
        "    ministry: moh\n"
        "    tier: 7\n"                       # line 5
        "    classification: internal\n"
        "    contacts: {owner: not-an-email, security: sec@moh.example.la}\n"  # line 7
    )
    files["broken.yaml"] = "ministries:\n  - code: x\n    name: [unclosed\n"
    files["dup.yaml"] = "ministries:\n  - code: moh\n    name: Again\n"
    files["keys.yaml"] = "ministries:\n  - code: mpi\n    name: A\n    name: B\n"
    problems = _problems(database, tmp_path, files)
    text = "\n".join(problems)
    assert "moh.yaml:5: programmes[0].tier: must be 1, 2 or 3 (got 7)" in text
    assert "moh.yaml:7: programmes[0].contacts.owner: not an e-mail address" in text
    assert "broken.yaml:4: invalid YAML" in text
    assert any("ministries.yaml:2: duplicate ministry 'moh' (first at" in p and p.endswith("dup.yaml:2)")
               for p in problems), problems
    assert "keys.yaml:4: duplicate key 'name' (first at line 3)" in text


def test_schema_and_cross_reference_mistakes_are_reported_in_one_round(database, tmp_path):
    files = inventories.base()
    _programme(files)["tier"] = 7  # a schema mistake in dhis2
    other = _programme(files, 0, "programmes/mtc.yaml")
    other["ministry"] = "nope"  # a cross-reference mistake in another, well-formed programme
    other["depends_on"] = ["dhis2"]  # dhis2 has a problem of its own, but it is there
    problems = _problems(database, tmp_path, files)
    assert any(p.endswith("programmes[0].tier: must be 1, 2 or 3 (got 7)") for p in problems), problems
    assert any(f"programme {other['slug']}: unknown ministry 'nope'" in p for p in problems), problems
    assert not any("unknown programme 'dhis2'" in p for p in problems), problems
    assert not any("Input should" in p for p in problems), problems


def test_duplicate_slug_across_files(database, tmp_path):
    files = inventories.base()
    files["programmes/extra.yaml"] = {"programmes": [dict(_programme(files), depends_on=[])]}
    problems = _problems(database, tmp_path, files)
    assert any("moh.yaml:2: duplicate programme 'dhis2' (first at" in p and p.endswith("extra.yaml:2)")
               for p in problems), problems


def test_dependency_cycle(database, tmp_path):
    files = inventories.base()
    _programme(files, 0, "programmes/mtc.yaml")["depends_on"] = ["dhis2"]
    problems = _problems(database, tmp_path, files)
    assert any("dependency cycle" in p and "dhis2" in p and "digital-id" in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    ["just a string\n", "- a\n- list\n", "ministries: {code: x}\n", "a: !!python/object:os.system x\n",
     "programmes:\n  - &a {slug: x}\n  - *a\n", "\xff\xfe", "catalogue: []\n"],
)
def test_malformed_files_are_user_errors(database, tmp_path, text):
    files = inventories.base()
    files["odd.yaml"] = text
    problems = _problems(database, tmp_path, files)
    assert any("odd.yaml" in p for p in problems), problems


def test_billion_laughs_is_refused(database, tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    problems = _problems(database, tmp_path, {"bomb.yaml": "\n".join(lines) + "\n"})
    assert any("expands to more than" in p for p in problems), problems


def test_retired_programme_may_not_hold_allocations(database, tmp_path):
    files = inventories.base()
    _programme(files)["status"] = "retired"
    problems = _problems(database, tmp_path, files)
    assert any("a retired programme holds no allocations" in p for p in problems), problems


def test_empty_directory_is_an_error(database, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="no inventory files"):
        load_directory(database, tmp_path / "empty")


def test_plan_as_json_via_cli(cli, tmp_path):
    directory = inventories.write(tmp_path / "inv", inventories.base())
    result = cli("inventory", "load", directory, "--dry-run", "--output", "json")
    plan = json.loads(result.stdout)
    assert plan["applied"] is False
    assert plan["summary"]["create"] == 7
    assert cli("programme", "list", "-o", "json").stdout.strip() == "[]"


def test_removing_capacity_still_used_by_programmes_outside_the_files_is_refused(database, tmp_path):
    files = inventories.base()
    load_directory(database, inventories.write(tmp_path / "inv", files))
    del files["sites.yaml"]["sites"][0]["clusters"][0]["capacity"]["vcpu"]
    only_sites = inventories.write(tmp_path / "sites-only", {"sites.yaml": files["sites.yaml"]})
    before = snapshot(database)
    with pytest.raises(ValidationError) as caught:
        load_directory(database, only_sites, dry_run=True)
    assert any("cluster gen-a offers no vcpu, but dhis2, digital-id hold 24 of it" in p for p in caught.value.problems)
    with pytest.raises(ValidationError):
        load_directory(database, only_sites)
    assert snapshot(database) == before


def test_sample_inventory_loads_and_round_trips_through_export(any_database, tmp_path):
    from dcops.inventory.export import export_inventory
    from conftest import SAMPLE_INVENTORY

    first = load_directory(any_database, SAMPLE_INVENTORY)
    with any_database.transaction() as conn:
        current = read_current(conn)
    # The size the national data centre is planned for: 50 or more programmes of 15 or more ministries.
    assert len(current.ministries) >= 15 and len(current.sites) >= 2
    assert len(current.clusters) >= 5 and len(current.programmes) >= 50
    assert first.applied
    before = snapshot(any_database)
    result = export_inventory(any_database, tmp_path / "exported")
    assert (tmp_path / "exported" / "sites.yaml") in result.files
    assert (tmp_path / "exported" / "external.yaml") in result.files
    plan = load_directory(any_database, tmp_path / "exported", prune=True)
    assert not plan.has_changes, [c.as_dict() for c in plan.changes if c.action != "unchanged"]
    assert plan.count("unchanged") == first.count("create") + first.count("unchanged")
    # The sample's new fields made the trip: short names, components, what depends on them, exclusions.
    assert current.programmes["e-crvs"]["short_name"] == "e-CRVS"
    assert current.external_components["lapnet-switch"]["run_by"] == "third-party"
    assert current.external_components["vte-dc1-generator"]["run_by"] == "data-centre"
    assert "lapnet-switch" in current.programmes["lao-mobile-wallet"]["depends_on"]
    assert current.programmes["tax-e-filing"]["excludes_external"] is True
    assert snapshot(any_database) == before
    with pytest.raises(Exception, match="already holds inventory files"):
        export_inventory(any_database, tmp_path / "exported")


# External components, short names and who leaves third-party time out of an SLA.

COMPONENTS = {"external.yaml": {"external_components": [
    {"slug": "bank-switch", "name": "Bank payment switch", "description": "run by the central bank",
     "contact": "switch@bank.example.la"},
    {"slug": "dc-generator", "name": "Standby generator", "run_by": "data-centre"},
]}}


def _with_components() -> dict:
    files = {**inventories.base(), **copy.deepcopy(COMPONENTS)}
    files["sla_tiers.yaml"] = {"sla_tiers": [{"tier": 1, "name": "critical", "sla_target_percent": 99.9,
                                              "excludes_external": True}]}
    dhis2 = _programme(files)
    dhis2.update(short_name="DHIS2 ສາທາລະນະສຸກ", depends_on=["digital-id", "bank-switch"], excludes_external=False)
    _programme(files, 0, "programmes/mtc.yaml")["depends_on"] = ["dc-generator"]
    return files


def _rows(database, query: str) -> list[tuple]:
    with database.transaction() as conn:
        return sorted(map(tuple, conn.execute(sa.text(query))))


def test_components_short_names_and_exclusions_load_and_are_stored_apart_from_programme_dependencies(
        any_database, tmp_path):
    files = _with_components()
    directory = inventories.write(tmp_path / "inv", files)
    plan = load_directory(any_database, directory)
    created = {(c.kind, c.key) for c in plan.changes if c.action == "create"}
    assert {("external_component", "bank-switch"), ("external_component", "dc-generator")} <= created
    assert _rows(any_database, "SELECT slug, name, description, run_by, contact FROM external_component") == [
        ("bank-switch", "Bank payment switch", "run by the central bank", "third-party", "switch@bank.example.la"),
        ("dc-generator", "Standby generator", "", "data-centre", ""),
    ]
    assert _rows(any_database, "SELECT p.slug, c.slug FROM programme_external_dependency x "
                               "JOIN programme p ON p.id = x.programme_id "
                               "JOIN external_component c ON c.id = x.component_id") == [
        ("dhis2", "bank-switch"), ("digital-id", "dc-generator")]
    assert _rows(any_database, "SELECT p.slug, d.slug FROM programme_dependency x JOIN programme p "
                               "ON p.id = x.programme_id JOIN programme d ON d.id = x.depends_on_id") == [
        ("dhis2", "digital-id")]
    assert _rows(any_database, "SELECT slug, short_name, excludes_external FROM programme") == [
        ("dhis2", "DHIS2 ສາທາລະນະສຸກ", False), ("digital-id", None, None), ("e-gov-portal", None, None)]
    assert _rows(any_database, "SELECT tier, excludes_external FROM sla_tier WHERE tier = 1") == [(1, True)]
    with any_database.transaction() as conn:
        assert read_current(conn).programmes["dhis2"]["depends_on"] == ["bank-switch", "digital-id"]
    assert not load_directory(any_database, directory).has_changes

    # Changes to each show in the plan, field by field, and apply.
    files["external.yaml"]["external_components"][0]["run_by"] = "data-centre"
    _programme(files)["short_name"] = "DHIS2"
    _programme(files)["depends_on"] = ["dc-generator"]
    files["sla_tiers.yaml"]["sla_tiers"][0]["excludes_external"] = False
    inventories.write(directory, files)
    plan = load_directory(any_database, directory)
    fields = {(c.kind, c.key): {f.field: (f.old, f.new) for f in c.fields} for c in plan.changes
              if c.action == "update"}
    assert fields == {
        ("external_component", "bank-switch"): {"run_by": ("third-party", "data-centre")},
        ("programme", "dhis2"): {"short_name": ("DHIS2 ສາທາລະນະສຸກ", "DHIS2"),
                                 "depends_on": (["bank-switch", "digital-id"], ["dc-generator"])},
        ("sla_tier", "1"): {"excludes_external": (True, False)},
    }
    assert _rows(any_database, "SELECT programme_id FROM programme_dependency") == []
    assert len(_rows(any_database, "SELECT * FROM programme_external_dependency")) == 2
    with any_database.transaction() as conn:
        actions = {r[0] for r in conn.execute(sa.text("SELECT action FROM audit_entry"))}
    assert {"inventory.external_component.created", "inventory.external_component.updated"} <= actions


@pytest.mark.parametrize(("where", "value", "message"), [
    ("short_name", "x" * 25, "short_name: must be at most 24 characters"),
    ("short_name", "", "short_name: must not be empty"),
    ("short_name", "e-CRVS\x1b[31m", "has '\\x1b'"),
    ("short_name", "<b>DHIS2</b>", "a short name is letters, digits, spaces and"),
    ("short_name", "two  spaces", "one space between words"),
    ("excludes_external", "yes", "excludes_external: must be true or false"),
    ("depends_on", ["nowhere"], "depends on unknown programme 'nowhere' (no programme or external component"),
])
def test_bad_short_names_exclusions_and_dependencies_are_refused(database, tmp_path, where, value, message):
    files = _with_components()
    _programme(files)[where] = value
    problems = _problems(database, tmp_path, files)
    assert any(message in p and "moh.yaml:" in p for p in problems), problems


@pytest.mark.parametrize(("change", "message"), [
    ({"run_by": "the-bank"}, "run_by: must be 'third-party' or 'data-centre'"),
    ({"slug": "Bank_Switch"}, "slug: must be 2-63 characters of [a-z0-9-]"),
    ({"contact": "line one\nline two"}, "contact: contains a control character"),
    ({"colour": "red"}, "colour: unknown field"),
    ({"name": ""}, "name: must not be empty"),
])
def test_bad_components_are_refused_with_file_and_line(database, tmp_path, change, message):
    files = _with_components()
    files["external.yaml"]["external_components"][0].update(change)
    problems = _problems(database, tmp_path, files)
    assert any(message in p and "external.yaml:" in p for p in problems), problems


def test_a_component_may_not_share_a_programme_slug(database, tmp_path):
    files = _with_components()
    files["external.yaml"]["external_components"].append({"slug": "digital-id", "name": "Someone else's ID"})
    problems = _problems(database, tmp_path, files)
    assert any(p.startswith(str(tmp_path / "bad" / "external.yaml") + ":") and
               "external component digital-id: a programme has the same slug" in p for p in problems), problems
    # ... nor a programme added later a component's slug already in the database.
    load_directory(database, inventories.write(tmp_path / "inv", _with_components()))
    extra = dict(_programme(inventories.base()), slug="bank-switch", depends_on=[], hosts=[], allocations=[])
    problems = _problems(database, tmp_path / "later", {"programmes/extra.yaml": {"programmes": [extra]}})
    assert any("extra.yaml:" in p and "external component bank-switch: a programme has the same slug" in p
               for p in problems), problems


def test_prune_removes_a_component_gone_from_the_files_unless_depended_on_or_with_outages(database, tmp_path):
    from dcops.external import record_outage

    files = _with_components()
    directory = inventories.write(tmp_path / "inv", files)
    load_directory(database, directory)
    del files["external.yaml"]["external_components"][0]  # bank-switch, which dhis2 still depends on
    inventories.write(directory, files)
    assert not load_directory(database, directory).has_changes  # without --prune, records stay
    before = snapshot(database)
    with pytest.raises(ValidationError) as caught:
        load_directory(database, directory, prune=True)
    assert caught.value.problems == ["external component bank-switch is no longer in the files, but dhis2 depends "
                                     "on it: drop it from their depends_on first"]
    assert snapshot(database) == before

    _programme(files)["depends_on"] = ["digital-id"]
    inventories.write(directory, files)
    record_outage(database, "bank-switch", started_at=datetime(2026, 10, 1, tzinfo=timezone.utc),
                  ended_at=datetime(2026, 10, 1, 1, tzinfo=timezone.utc), note="switch down")
    with pytest.raises(ValidationError, match="has 1 recorded outage, which are the SLA record: keep it"):
        load_directory(database, directory, prune=True)
    assert snapshot(database) == before

    files["external.yaml"]["external_components"].insert(0, copy.deepcopy(COMPONENTS["external.yaml"]["external_components"][0]))
    files["external.yaml"]["external_components"].append({"slug": "spare-link", "name": "Spare uplink"})
    inventories.write(directory, files)
    load_directory(database, directory)
    del files["external.yaml"]["external_components"][-1]
    inventories.write(directory, files)
    plan = load_directory(database, directory, prune=True)
    assert [(c.kind, c.key, c.action) for c in plan.changes if c.action != "unchanged"] == [
        ("external_component", "spare-link", "remove")]
    assert plan.as_dict()["summary"]["remove"] == 1
    assert [r[0] for r in _rows(database, "SELECT slug FROM external_component")] == ["bank-switch", "dc-generator"]
    with database.transaction() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_entry WHERE action = "
                                    "'inventory.external_component.removed'")).scalar() == 1
