"""The published catalogue site: every file, working relative links, escaping, catalog.json, request templates."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from dcops.catalogue.queries import site_data
from dcops.catalogue.site import (_scalar, allowed_downtime_seconds, catalogue_warnings, contact_parts,
                                  default_templates_dir, format_allowance, osb_catalog, plan_unit_problems, publish,
                                  request_rules, request_template)
from dcops.db import open_database
from dcops.errors import UserError
from dcops.inventory.service import load_directory

from conftest import SAMPLE_INVENTORY

SCRIPT = "<script>alert(1)</script>"
JINJA = "{{ 7*7 }}"
TRAVERSAL = "../../etc/passwd"
SHELL = '"; rm -rf / #'
LAO = "ລາວ"
HOSTILE = (SCRIPT, JINJA, TRAVERSAL, SHELL, LAO)
# Line breaks YAML knows (\n, \r, NEL, LS, PS) and characters it refuses: neither may break a template.
INJECTION = "Nice plan\nplan: injected\r\x85\u2028\u2029tier: 9\x00\x07\ufeff"

# 2025-01-02 10:04 in Vientiane (UTC+7) is 03:04 UTC.
GENERATED_AT = datetime(2025, 1, 2, 10, 4, 5, tzinfo=timezone(timedelta(hours=7)))
GENERATED_UTC = "2025-01-02 03:04 UTC"

REQUEST_KEYS = {
    "ministry", "programme", "offering", "plan", "tier", "classification", "environment",
    "personal_data", "justification", "contacts", "wanted_by",
}


def _plan(plan_id: str, offering_id: str, *, name: str, display: str, cost: int, tiers: list[int],
          bullets: list[str], vcpu=2, ram=4, storage=80, instances=1) -> dict:
    return {
        "id": plan_id,
        "offering_id": offering_id,
        "name": name,
        "description": f"Plan description {SHELL} {LAO}",
        "display_name": display,
        "bullets": bullets,
        "monthly_cost_lak": cost,
        "resources": {"vcpu": vcpu, "ram_gib": ram, "storage_gib": storage, "instances": instances},
        "totals": {"vcpu": vcpu * instances, "ram_gib": ram * instances, "storage_gib": storage * instances},
        "sla_tiers": tiers,
    }


def hostile_data() -> dict:
    """Plain site data with hostile text wherever text is shown."""
    return {
        "tiers": [
            {"tier": 1, "name": "critical", "sla_target_percent": 99.9},
            {"tier": 2, "name": "important", "sla_target_percent": 99.5},
            {"tier": 3, "name": "standard", "sla_target_percent": 99.0},
        ],
        "offerings": [
            {
                "id": "vm",
                "name": SCRIPT,
                "description": f"Machines {JINJA} {SCRIPT}",
                "display_name": f"Virtual machines {SCRIPT}",
                "long_description": f"{TRAVERSAL} {SHELL} {LAO}",
                "tags": ["compute", SCRIPT, LAO],
                "plans": [
                    _plan("vm-free", "vm", name="free", display=f"Free {JINJA}", cost=0, tiers=[3],
                          bullets=[SCRIPT, JINJA], storage=0),
                    _plan("vm-small", "vm", name=TRAVERSAL, display=f"Small {SHELL}", cost=1_500_000, tiers=[3, 2],
                          bullets=[TRAVERSAL, SHELL, LAO]),
                    _plan("vm-pair", "vm", name="pair", display=INJECTION, cost=12_500_000, tiers=[1, 2, 3],
                          bullets=[INJECTION], vcpu=8, ram=32, storage=500, instances=2),
                ],
            },
            {
                "id": "postgresql",
                "name": "managed-postgresql",
                "description": f"{LAO} databases",
                "display_name": f"PostgreSQL {LAO}",
                "long_description": "",
                "tags": [],
                "plans": [
                    _plan("pg-ha", "postgresql", name="ha", display=f"HA {SCRIPT}", cost=32_000_000,
                          tiers=[2, 1], bullets=[], vcpu=8, ram=64, storage=1000, instances=2),
                ],
            },
            {
                "id": "empty",
                "name": "empty",
                "description": "An offering without plans.",
                "display_name": "Empty",
                "long_description": "",
                "tags": [],
                "plans": [],
            },
        ],
        "ministries": [
            {
                "code": "moh",
                "name": f"Ministry of Health {SCRIPT} {LAO}",
                "contact": "dc-liaison@moh.gov.la.example",
                "programmes": [
                    {"slug": "e-health", "name": f"e-Health {JINJA}", "tier": 1, "status": "active",
                     "environment": "production", "classification": "confidential"},
                    {"slug": "his", "name": f"{TRAVERSAL} {SHELL}", "tier": 3, "status": "provisioning",
                     "environment": "staging", "classification": "internal"},
                ],
            },
            {"code": "mtc", "name": f"Ministry {SHELL}", "contact": "", "programmes": []},
        ],
    }


class _Page(HTMLParser):
    """The links, ids, meta tags, <html lang> and text of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.metas: list[dict] = []
        self.lang: str | None = None
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        for name in ("href", "src"):
            if attributes.get(name) is not None:
                self.links.append(attributes[name])
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "meta":
            self.metas.append(attributes)
        if tag == "html":
            self.lang = attributes.get("lang")

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture
def site(tmp_path):
    """The hostile data published into tmp_path/site (which does not exist beforehand)."""
    out = tmp_path / "site" / "nested"
    data = hostile_data()
    written = publish(data, out, generated_at=GENERATED_AT)
    return data, out, written


def _html_pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def test_publish_writes_every_expected_file(site):
    data, out, written = site
    expected = {
        "index.html", "ministries.html", "how-to-request.html", "catalog.json", "style.css",
        "offerings/vm.html", "offerings/postgresql.html", "offerings/empty.html",
        "requests/vm-free.yaml", "requests/vm-small.yaml", "requests/vm-pair.yaml", "requests/pg-ha.yaml",
    }
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected | {".dcops-site-files"}
    assert (out / ".dcops-site-files").read_text().split() == sorted(expected)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(expected)
    # Nothing was written outside the output folder, whatever the text said.
    outside = {p for p in out.parent.parent.rglob("*") if p.is_file() and out not in p.parents}
    assert outside == set()


def test_every_link_resolves_to_a_published_file(site):
    _data, out, _written = site
    pages = {path: _parse(path) for path in _html_pages(out)}
    checked = 0
    for path, page in pages.items():
        assert page.links, f"{path} has no links"
        for link in page.links:
            if link.startswith("mailto:"):
                continue
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, f"{path}: {link} is not a relative link"
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path.resolve()
            assert target.is_file(), f"{path.relative_to(out)}: {link} -> {target} does not exist"
            assert out.resolve() in target.parents, f"{path}: {link} points outside the site"
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                assert parts.fragment in ids, f"{path}: {link}: no id {parts.fragment!r} there"
            checked += 1
    assert checked > 50


def test_hostile_text_is_escaped_and_shown_literally(site):
    _data, out, _written = site
    seen_text = ""
    for path in _html_pages(out):
        html = path.read_text(encoding="utf-8")
        assert "<script" not in html.lower(), path
        assert "49" not in html, f"{path}: a template expression in the data was evaluated"
        page = _parse(path)
        assert "script" not in page.tags
        seen_text += "".join(page.text)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;" in index
    assert JINJA in index
    for text in HOSTILE:
        assert text in seen_text, f"{text!r} not shown as text"
    assert LAO in (out / "ministries.html").read_text(encoding="utf-8")


def test_pages_are_self_contained_responsive_and_dated(site):
    _data, out, _written = site
    for path in [*_html_pages(out), out / "style.css"]:
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, f"{path} references a remote resource"
        assert "@import" not in text and "url(" not in text, path
    for path in _html_pages(out):
        page = _parse(path)
        assert page.lang == "en", path
        viewports = [m for m in page.metas if m.get("name") == "viewport"]
        assert viewports and "width=device-width" in viewports[0]["content"], path
        assert any(m.get("charset", "").lower() == "utf-8" for m in page.metas), path
        assert GENERATED_UTC in "".join(page.text), f"{path}: no UTC generation time"
        assert "nav" in page.tags and "header" in page.tags and "footer" in page.tags, path


def test_offering_page_shows_plans_with_formatted_numbers(site):
    _data, out, _written = site
    page = _parse(out / "offerings" / "vm.html")
    text = " ".join(" ".join(page.text).split())
    assert "12,500,000 LAK" in text and "1,500,000 LAK" in text
    assert "150,000,000 LAK" in text and "18,000,000 LAK" in text  # a year: 12 x the month
    assert "99.9 % availability, at most 43.2 min of downtime a month (8 h 46 min a year)" in text
    assert "99.5 %" in text and "%" not in text.replace(" %", "")
    assert "8\u00a0vCPU" in "".join(page.text)
    assert "16\u00a0vCPU" in "".join(page.text)  # the total of the pair: 2 x 8
    for plan_id in ("vm-free", "vm-small", "vm-pair"):
        assert f"../requests/{plan_id}.yaml" in page.links
    index = " ".join(" ".join(_parse(out / "index.html").text).split())
    assert "3 plans" in index and "from 0 LAK a month (0 LAK a year)" in index
    assert "from 32,000,000 LAK a month (384,000,000 LAK a year)" in index
    ministries = " ".join(" ".join(_parse(out / "ministries.html").text).split())
    assert "e-health" in ministries and "provisioning" in ministries and "staging" in ministries
    assert "confidential" not in ministries  # the classification is not published


def test_catalog_json_is_an_osb_catalog(site):
    data, out, _written = site
    catalog = json.loads((out / "catalog.json").read_text(encoding="utf-8"))
    assert catalog == osb_catalog(data)
    services = {s["id"]: s for s in catalog["services"]}
    assert set(services) == {"vm", "postgresql", "empty"}
    for service in catalog["services"]:
        assert {"id", "name", "description", "bindable", "plan_updateable", "tags", "metadata", "plans"} <= set(service)
        assert service["bindable"] is False and service["plan_updateable"] is False
        assert {"displayName", "longDescription"} <= set(service["metadata"])
        for plan in service["plans"]:
            assert {"id", "name", "description", "free", "metadata"} <= set(plan)
            meta = plan["metadata"]
            assert {"displayName", "bullets", "costs", "resources", "slaTiers"} <= set(meta)
            assert meta["costs"][0]["unit"] == "MONTHLY"
            assert plan["free"] is (meta["costs"][0]["amount"]["lak"] == 0)
    vm = services["vm"]
    assert vm["name"] == SCRIPT and vm["metadata"]["displayName"] == f"Virtual machines {SCRIPT}"
    free = vm["plans"][0]
    assert free["free"] is True and free["metadata"]["bullets"] == [SCRIPT, JINJA]
    assert vm["plans"][2]["metadata"]["resources"] == {"vcpu": 8, "ram_gib": 32, "storage_gib": 500, "instances": 2}


def test_request_templates_parse_into_requests(site):
    data, out, _written = site
    for offering in data["offerings"]:
        for plan in offering["plans"]:
            text = (out / "requests" / f"{plan['id']}.yaml").read_text(encoding="utf-8")
            assert text == request_template(data, offering, plan)
            request = yaml.safe_load(text)
            assert set(request) == REQUEST_KEYS, plan["id"]
            assert request["offering"] == offering["id"] and request["plan"] == plan["id"]
            assert request["tier"] == min(plan["sla_tiers"])
            assert set(request["programme"]) == {"slug", "name", "description"}
            assert set(request["contacts"]) == {"owner", "security"}
            assert request["environment"] == "production"
            assert isinstance(request["personal_data"], bool)
            assert request["wanted_by"] == "YYYY-MM-DD"
            for word in ("service desk", "two-person rule", "YYYY-MM-DD", "10 to 5,000 characters"):
                assert word.lower() in text.lower()
            assert "{{" not in text.replace(JINJA, "")
    # The allowed tiers, with their names and targets, are listed next to the tier.
    pair = (out / "requests" / "vm-pair.yaml").read_text(encoding="utf-8")
    assert "tier 1 (critical, 99.9 %); tier 2 (important, 99.5 %); tier 3 (standard, 99 %)" in pair
    assert "# 12,500,000 LAK a month, 150,000,000 LAK a year." in pair.splitlines()
    # Hostile display names stay inside their comment line, literally.
    small = (out / "requests" / "vm-small.yaml").read_text(encoding="utf-8")
    assert f"# Hosting request: Virtual machines {SCRIPT} / Small {SHELL}" in small.splitlines()
    assert "# Hosting request: Virtual machines <script>alert(1)</script> / Nice plan plan: injected tier: 9" in (
        pair.splitlines()
    )


@pytest.mark.parametrize("value", [*HOSTILE, INJECTION.replace("\x00", ""), "", "yes", "~", "- a", "1e3", "\U0001F600"])
def test_template_values_round_trip_as_literal_text(value):
    assert yaml.safe_load(f"key: {_scalar(value)}\n") == {"key": value}
    assert "\n" not in _scalar(value)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "Vm", "a/b", "", "-x"])
def test_ids_that_are_not_file_names_are_refused(tmp_path, bad):
    data = hostile_data()
    data["offerings"][1]["plans"][0]["id"] = bad
    with pytest.raises(UserError, match="plan id"):
        publish(data, tmp_path / "out", generated_at=GENERATED_AT)
    data = hostile_data()
    data["offerings"][0]["id"] = bad
    with pytest.raises(UserError, match="offering id"):
        publish(data, tmp_path / "out", generated_at=GENERATED_AT)
    assert not (tmp_path / "out").exists()


def test_missing_templates_are_a_user_error(tmp_path):
    with pytest.raises(UserError) as error:
        publish(hostile_data(), tmp_path / "out", generated_at=GENERATED_AT, templates_dir=tmp_path / "nowhere")
    assert "\n" not in str(error.value) and "nowhere" in str(error.value)


def test_publish_the_sample_inventory_from_a_database(loaded_cli, tmp_path):
    from dcops.cli.main import app

    out = tmp_path / "site"
    desk = "+856 21 000 000 · servicedesk@dc.gov.la.example"
    result = loaded_cli.runner.invoke(app, ["catalogue", "publish", str(out)], catch_exceptions=False,
                                      env={**loaded_cli.env, "DCOPS_SERVICE_DESK": desk})
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr  # the sample's plan names and bullets agree with their resources
    database = open_database(loaded_cli.settings)
    try:
        with database.transaction() as conn:
            data = site_data(conn)
    finally:
        database.dispose()
    assert len(data["offerings"]) >= 6
    assert catalogue_warnings(data) == []
    for offering in data["offerings"]:
        assert (out / "offerings" / f"{offering['id']}.html").is_file()
        for plan in offering["plans"]:
            request = yaml.safe_load((out / "requests" / f"{plan['id']}.yaml").read_text(encoding="utf-8"))
            assert request["plan"] == plan["id"] and request["tier"] in plan["sla_tiers"]
    ministries = (out / "ministries.html").read_text(encoding="utf-8")
    assert "e-crvs" in ministries
    for path in _html_pages(out):
        html = path.read_text(encoding="utf-8")
        assert '<a href="tel:+85621000000">+856 21 000 000</a>' in html, path
        assert '<a href="mailto:servicedesk@dc.gov.la.example">' in html, path
    assert "+856 21 000 000" in (out / "requests" / "pg-ha.yaml").read_text(encoding="utf-8")
    # The site codes, from the database: primary first, with their roles and locations.
    how = " ".join(" ".join(_parse(out / "how-to-request.html").text).split())
    assert "vte-dc1 National Data Centre, Vientiane primary: programmes run here Vientiane Capital" in how
    assert "lpb-dr1" in how and "disaster recovery:" in how
    index = " ".join(" ".join(_parse(out / "index.html").text).split())
    assert "outside the data centre (a bank's payment switch, the upstream Internet link) counts as downtime at " \
           "every tier" in index  # no sample tier leaves third parties' outages out
    _assert_no_command_lines(out)


def test_a_filled_in_template_is_a_valid_request_and_an_unfilled_one_is_not(site):
    from pydantic import ValidationError as PydanticValidationError

    from dcops.catalogue.requests import RequestDoc

    _data, out, _written = site
    text = (out / "requests" / "vm-pair.yaml").read_text(encoding="utf-8")
    with pytest.raises(PydanticValidationError) as error:
        RequestDoc.model_validate(yaml.safe_load(text))
    unfilled = {".".join(map(str, e["loc"])) for e in error.value.errors()}
    assert {"ministry", "programme.slug", "classification", "justification",
            "contacts.owner", "contacts.security", "wanted_by"} <= unfilled
    filled = (
        text.replace('ministry: "CHANGE-ME"', 'ministry: "moh"')
        .replace('slug: "CHANGE-ME"', 'slug: "e-health"')
        .replace('name: "CHANGE-ME"', f'name: "e-Health {LAO}"')
        .replace('classification: "CHANGE-ME"', 'classification: "confidential"')
        .replace("  CHANGE-ME\n", "  Patient records for the provincial hospitals.\n")
        .replace('owner: "CHANGE-ME"', 'owner: "ehr@moh.gov.la.example"')
        .replace('security: "CHANGE-ME"', 'security: "security@moh.gov.la.example"')
        .replace('wanted_by: "YYYY-MM-DD"', "wanted_by: 2030-06-30")
        .replace("# site: vte-dc1", "site: vte-dc1")
    )
    request = RequestDoc.model_validate(yaml.safe_load(filled))
    assert (request.offering, request.plan, request.tier, request.site) == ("vm", "vm-pair", 1, "vte-dc1")
    assert request.programme.name == f"e-Health {LAO}" and request.personal_data is True


def test_republish_removes_pages_of_withdrawn_plans_and_nothing_else(tmp_path):
    import copy

    from dcops.catalogue.site import publish

    data = copy.deepcopy(_republish_data())
    out = tmp_path / "site"
    out.mkdir()
    (out / "operator-notes.txt").write_text("keep me")
    publish(data, out, generated_at=datetime(2026, 11, 29, tzinfo=timezone.utc))
    assert (out / "requests" / "gone-plan.yaml").is_file()
    data["offerings"][0]["plans"] = [p for p in data["offerings"][0]["plans"] if p["id"] != "gone-plan"]
    publish(data, out, generated_at=datetime(2026, 11, 29, tzinfo=timezone.utc))
    assert not (out / "requests" / "gone-plan.yaml").exists()
    assert (out / "requests" / "kept-plan.yaml").is_file()
    assert (out / "operator-notes.txt").read_text() == "keep me"


def test_a_republish_replaces_every_file_by_a_rename_the_stylesheet_too(tmp_path):
    """A reader holding a file of the previous publish keeps it whole (its inode): each file is
    written beside and renamed into place, never rewritten where it stands (the stylesheet was a
    plain copy over the old one); no temporary file is left."""
    from dcops.catalogue.site import publish

    out = tmp_path / "site"
    publish(_republish_data(), out, generated_at=datetime(2026, 11, 29, tzinfo=timezone.utc))
    (out / "style.css").write_text("/* the previous publish */")
    (out / "index.html").write_text("the previous page")
    with open(out / "style.css") as stylesheet, open(out / "index.html") as page:
        publish(_republish_data(), out, generated_at=datetime(2026, 11, 30, tzinfo=timezone.utc))
        assert stylesheet.read() == "/* the previous publish */" and page.read() == "the previous page"
    assert (out / "style.css").read_text() == (default_templates_dir() / "style.css").read_text()
    assert sorted(p.name for p in out.iterdir()) == [".dcops-site-files", "catalog.json", "how-to-request.html",
                                                     "index.html", "ministries.html", "offerings", "requests",
                                                     "style.css"]


def _republish_data() -> dict:
    def plan(plan_id):
        return {"id": plan_id, "offering_id": "vm", "name": plan_id, "description": "", "display_name": plan_id,
                "bullets": [], "monthly_cost_lak": 1000, "resources": {"vcpu": 1, "ram_gib": 1, "storage_gib": 1,
                "instances": 1}, "totals": {"vcpu": 1, "ram_gib": 1, "storage_gib": 1}, "sla_tiers": [3]}

    return {
        "tiers": [{"tier": 3, "name": "standard", "sla_target_percent": 99.0}],
        "offerings": [{"id": "vm", "name": "vm", "description": "", "display_name": "VM", "long_description": "",
                       "tags": [], "plans": [plan("kept-plan"), plan("gone-plan")]}],
        "ministries": [],
    }


def test_catalog_json_says_what_is_monitored(settings, tmp_path):
    import shutil

    (tmp_path / "inv").mkdir()
    shutil.copy(SAMPLE_INVENTORY / "catalogue.yaml", tmp_path / "inv" / "catalogue.yaml")
    database = open_database(settings)
    try:
        load_directory(database, tmp_path / "inv")
        with database.transaction() as conn:
            data = site_data(conn)
    finally:
        database.dispose()
    publish(data, tmp_path / "site", generated_at=GENERATED_AT)
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text(encoding="utf-8"))
    services = {s["id"]: s["metadata"] for s in catalog["services"]}
    assert {"name": "ssh", "kind": "tcp", "target": "{host}:22"} in services["vm"]["checks"]
    assert "TCP connection to <server>:22, on each server, every 60\u00a0s" in services["vm"]["monitoring"]
    assert any(line.startswith("HTTPS https://<programme>.web.gov.la.example/")
               for line in services["web-hosting"]["monitoring"])
    assert all(meta["monitoring"] for meta in services.values())
    page = (tmp_path / "site" / "offerings" / "vm.html").read_text(encoding="utf-8")
    assert "What we monitor" in page and "TCP connection to &lt;server&gt;:22, on each server" in page


# --- what a ministry needs to decide ------------------------------------------------------------

DAY = 86_400


@pytest.mark.parametrize(("target", "days", "seconds"), [
    (99.9, 30, 2_592),      # 0.1 % of 2,592,000 s: 43.2 min
    (99.5, 30, 12_960),     # 0.5 %: 216 min = 3 h 36 min
    (99.0, 30, 25_920),     # 1 %: 432 min = 7 h 12 min
    (99.95, 30, 1_296),     # 0.05 %: 21.6 min
    (99.9, 365, 31_536),    # 0.1 % of 31,536,000 s: 525.6 min
    (99.0, 365, 315_360),   # 5,256 min = 3 days 15 h 36 min
    (100, 30, 0),
    (0, 30, 30 * DAY),
])
def test_allowed_downtime_is_the_period_left_by_the_target(target, days, seconds):
    assert allowed_downtime_seconds(target, days * DAY) == seconds


@pytest.mark.parametrize("target", [100.1, -0.5])
def test_a_target_outside_0_to_100_is_refused(target):
    with pytest.raises(ValueError):
        allowed_downtime_seconds(target, 30 * DAY)


@pytest.mark.parametrize(("seconds", "words"), [
    (2_592, "43.2 min"), (1_296, "21.6 min"), (0, "0 min"), (30, "0.5 min"),
    (3_600, "1 h"), (12_960, "3 h 36 min"), (31_536, "8 h 46 min"), (157_680, "43 h 48 min"),
    (172_800, "2 days"), (315_360, "3 days 15 h 36 min"),
])
def test_allowances_read_in_minutes_hours_and_days(seconds, words):
    assert format_allowance(seconds) == words.replace(" ", "\u00a0").replace("\u00a0h\u00a0", "\u00a0h ")\
        .replace("\u00a0days\u00a0", "\u00a0days ")


def test_index_explains_each_tier_and_what_is_not_counted(site):
    _data, out, _written = site
    text = " ".join(" ".join(_parse(out / "index.html").text).split())
    assert "Tier 1 critical 99.9 % 43.2 min 8 h 46 min" in text
    assert "Tier 2 important 99.5 % 3 h 36 min 43 h 48 min" in text
    assert "Tier 3 standard 99 % 7 h 12 min 3 days 15 h 36 min" in text
    assert "Announced maintenance is not counted" in text
    assert "Time without monitoring data is not counted" in text


def test_a_tier_that_leaves_third_party_outages_out_says_so(tmp_path):
    data = hostile_data()
    for row, excludes in zip(data["tiers"], (True, False, False)):
        row["excludes_external"] = excludes
    publish(data, tmp_path, generated_at=GENERATED_AT)
    text = " ".join(" ".join(_parse(tmp_path / "index.html").text).split())
    assert "At tier 1, downtime caused by a third party's service outside the data centre is not counted " \
           "as downtime" in text
    assert "At the other tiers it counts." in text


def test_contact_parts_link_addresses_and_numbers_and_keep_the_rest_as_text():
    assert contact_parts("+856 21 000 000 · servicedesk@dc.gov.la") == [
        {"text": "+856 21 000 000", "href": "tel:+85621000000"},
        {"text": " · ", "href": None},
        {"text": "servicedesk@dc.gov.la", "href": "mailto:servicedesk@dc.gov.la"},
    ]
    assert contact_parts("Room 12, ground floor") == [{"text": "Room 12, ground floor", "href": None}]
    assert contact_parts("") == []


def test_the_service_desk_is_on_every_page_escaped_or_named_when_unset(tmp_path):
    hostile = f"{SCRIPT} 021 000 000 desk@dc.gov.la.example {JINJA}"
    out = tmp_path / "with"
    publish(hostile_data(), out, generated_at=GENERATED_AT, service_desk=hostile, data_centre_name="NDC Laos")
    for path in _html_pages(out):
        html = path.read_text(encoding="utf-8")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html, path
        assert '<a href="tel:021000000">021 000 000</a>' in html and JINJA in html, path
        assert "NDC Laos's service desk" in html, path
    out = tmp_path / "without"
    publish(hostile_data(), out, generated_at=GENERATED_AT)
    for path in _html_pages(out):
        text = " ".join(" ".join(_parse(path).text).split())
        assert "ask the National Data Centre's service desk." in text, path
    template = (out / "requests" / "vm-small.yaml").read_text(encoding="utf-8")
    assert "the National Data Centre's service desk." in template


def test_the_fields_table_states_what_the_validator_enforces(site):
    from pydantic import ValidationError as PydanticValidationError

    from dcops.catalogue.requests import RequestDoc

    def valid(justification: str) -> bool:
        document = {"ministry": "moh", "programme": {"slug": "e-health", "name": "e-Health"}, "offering": "vm",
                    "plan": "vm-pair", "tier": 1, "classification": "internal", "personal_data": False,
                    "justification": justification, "wanted_by": "2030-06-30",
                    "contacts": {"owner": "ehr@moh.gov.la.example", "security": "sec@moh.gov.la.example"}}
        try:
            RequestDoc.model_validate(document)
        except PydanticValidationError:
            return False
        return True

    accepted = [n for n in (1, 5, 9, 10, 11, 100, 4_999, 5_000, 5_001) if valid("x" * n)]
    shortest, longest = min(accepted), max(accepted)
    assert (shortest, longest) == (request_rules()["justification_min"], request_rules()["justification_max"])
    _data, out, _written = site
    text = " ".join("".join(_parse(out / "how-to-request.html").text).split())
    rows = {_row_field(row): row for row in _rows(out / "how-to-request.html")}
    assert f"Required. {shortest} to {longest:,} characters" in rows["justification"]
    assert "Required. 2 to 63 characters" in rows["programme.slug"]
    assert "Required. 2 to 63 characters: lowercase letters a–z" in text
    assert "Required. 1, 2 or 3, and one of the tiers the plan offers" in text
    assert "public, internal, confidential or secret." in text
    assert "today or later" in text and "at most 254 characters" in text and "256 KiB" in text
    # The two-person rule names the levels the validation asks a sign-off for.
    assert "confidential Information whose disclosure would harm" in " ".join(
        " ".join(_parse(out / "how-to-request.html").text).split())
    assert "classification is confidential or secret, or that holds personal data" in text
    # The template states the same rule.
    assert f"{shortest} to {longest:,} characters" in (out / "requests" / "vm-free.yaml").read_text(encoding="utf-8")


def _rows(path: Path) -> list[str]:
    """The text of each table row of a page, tags removed."""
    html = path.read_text(encoding="utf-8")
    return [" ".join(re.sub(r"<(/t[dh]|br)>", " ", re.sub(r"<(?!/t[dh]>)[^>]+>", "", row)).split())
            for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)]


def _row_field(row: str) -> str:
    return row.split(" ", 1)[0].rstrip(",")


_COMMAND_LINE = re.compile(r"\bdcops\s+[a-z][a-z-]*", re.IGNORECASE)


def _assert_no_command_lines(out: Path) -> None:
    pages = [*_html_pages(out), *sorted((out / "requests").glob("*.yaml"))]
    assert pages
    for path in pages:
        text = path.read_text(encoding="utf-8")
        assert not _COMMAND_LINE.search(text), f"{path}: {_COMMAND_LINE.search(text).group()!r}"
        assert "<code>dcops" not in text, path


def test_no_internal_command_line_on_public_pages(site):
    _data, out, _written = site
    _assert_no_command_lines(out)


def _sized_plan(display_name: str, bullets: list[str], **resources) -> dict:
    return {"id": "p", "name": "p", "display_name": display_name, "description": "", "bullets": bullets,
            "resources": {"vcpu": 0, "ram_gib": 0, "storage_gib": 0, "instances": 1, **resources}}


def test_a_plan_whose_words_contradict_its_resources_is_found():
    assert plan_unit_problems(_sized_plan("Backup 1 TiB", ["1,024 GiB of storage"], storage_gib=1024)) == []
    problems = plan_unit_problems(_sized_plan("Backup 1 TiB", ["1,000 GiB of storage"], storage_gib=1000))
    assert problems == ["plan p: name 'Backup 1 TiB' says 1 TiB (1,024 GiB), but the plan has 1,000 GiB"]
    assert "write sizes in GiB" in plan_unit_problems(_sized_plan("Disk", ["500 GB"], storage_gib=500))[0]
    pair = _sized_plan("Pair", ["2 × (8 vCPU, 32 GiB RAM, 500 GiB storage)", "16 vCPU in total"],
                       vcpu=8, ram_gib=32, storage_gib=500, instances=2)
    assert plan_unit_problems(pair) == []
    assert plan_unit_problems(_sized_plan("Small", ["4 vCPU, 8 GiB RAM"], vcpu=2, ram_gib=8)) == [
        "plan p: bullet '4 vCPU, 8 GiB RAM' says 4 vCPU, but the plan has 2"]
    # Durations and counts are not sizes.
    assert plan_unit_problems(_sized_plan("DR (RPO 4 h)", ["Kept 30 days", "RTO 30 minutes"], vcpu=4)) == []
