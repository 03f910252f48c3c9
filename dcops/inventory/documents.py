"""The schema of inventory YAML documents (pydantic) and their reading into plain desired state."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError as PydanticValidationError,
    model_validator,
)

from dcops.errors import in_our_words
from dcops.inventory.yamlfile import LocatedDict, LocatedList, YamlProblem, line_of, load_yaml
from dcops.vocabulary import (
    HOSTNAME_RE,
    MAX_ALLOCATION_RATIO,
    MAX_RESOURCE_AMOUNT,
    NAME_PATTERN,
    RESOURCES,
    SLUG_PATTERN,
)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if not _EMAIL_RE.match(value) or _control_character(value, allowed=""):
        raise ValueError(f"not an e-mail address: {value!r}")
    return value


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not HOSTNAME_RE.match(value):
        raise ValueError(f"not an IP address or host name: {value!r}")
    return value


def _control_character(value: str, *, allowed: str) -> str | None:
    """The first control character of `value` not in `allowed`, escaped ('\\x1b'); None if there is none."""
    for ch in value:
        code = ord(ch)
        if (code < 0x20 or 0x7F <= code < 0xA0) and ch not in allowed:
            return repr(ch)[1:-1]
    return None


def _check_text(value: str) -> str:
    # Free text is shown in terminals, reports and spreadsheets: escape sequences never get in.
    if (found := _control_character(value, allowed="\n\t")) is not None:
        raise ValueError(f"contains a control character ({found}); only line breaks and tabs are allowed")
    return value


def _check_line(value: str) -> str:
    if (found := _control_character(value, allowed="")) is not None:
        raise ValueError(f"contains a control character ({found}): one line of text, no escape sequences")
    return value


def _check_printable(value: str) -> str:
    # Targets and expected bodies are shown in terminals and CSV: no escape sequences.
    if not value.isprintable():
        raise ValueError("contains a control character")
    return value


# What a short name may hold besides letters (Lao ones too, with their vowel and tone marks) and digits.
SHORT_NAME_PUNCTUATION = " -._/()"
SHORT_NAME_MAX = 24


def _check_short_name(value: str) -> str:
    # A chart label: short, one line, nothing a terminal, SVG or spreadsheet would take as markup.
    for ch in value:
        if not (ch.isalnum() or ch in SHORT_NAME_PUNCTUATION or unicodedata.category(ch).startswith("M")):
            raise ValueError(f"{value!r} has {ch!r}: a short name is letters, digits, spaces and "
                             f"{SHORT_NAME_PUNCTUATION.strip()} only")
    if "  " in value:
        raise ValueError(f"{value!r}: one space between words")
    return value


def _check_domain(value: str) -> str:
    if not HOSTNAME_RE.match(value) or "." not in value:
        raise ValueError(f"not a DNS domain: {value!r}")
    return value


Slug = Annotated[
    str,
    Field(pattern=SLUG_PATTERN, description="[a-z0-9-], 2-63 characters, no dash at either end"),
]
Name = Annotated[
    str,
    Field(pattern=NAME_PATTERN, description="[a-z0-9-], 1-63 characters, no dash at either end"),
]
def bounded_text(min_length: int = 0, max_length: int = 10_000):
    """Free text (line breaks and tabs allowed, no other control character) of bounded length."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_check_text)]


Text = bounded_text()
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_line)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_check_email)]
Address = Annotated[str, AfterValidator(_check_address)]
ShortName = Annotated[str, Field(min_length=1, max_length=SHORT_NAME_MAX), AfterValidator(_check_short_name)]
# An external component's contact: an e-mail address, or one line such as "BOL IT duty desk +856 21 ...".
ContactLine = Annotated[str, Field(max_length=200), AfterValidator(_check_line)]
Minutes = Annotated[StrictInt, Field(ge=0, le=525_600)]  # at most a year
Ratio = Annotated[float, Field(gt=0, le=MAX_ALLOCATION_RATIO, allow_inf_nan=False)]

# What each name pattern asks for, in words (pydantic would print the regular expression).
PATTERN_MESSAGES = {
    SLUG_PATTERN: "must be 2-63 characters of [a-z0-9-], no dash at either end",
    NAME_PATTERN: "must be 1-63 characters of [a-z0-9-], no dash at either end",
}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SlaTierDoc(_Doc):
    tier: Literal[1, 2, 3]
    name: Name
    sla_target_percent: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
    # Whether downtime caused by a third party's external component is left out of this tier's SLA.
    excludes_external: StrictBool = False


class MinistryDoc(_Doc):
    code: Name
    name: Title
    contact: Email | Literal[""] = ""


class CapacityDoc(_Doc):
    total: Annotated[StrictInt, Field(ge=0)]
    reserved: Annotated[StrictInt, Field(ge=0)] = 0
    allocation_ratio: Ratio = 1.0
    # The largest physical host's share of this resource: the capacity report keeps that much
    # free (N+1), so losing any one host strands nothing. Unknown when not given.
    largest_host: Annotated[StrictInt, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _reserved_within_total(self) -> "CapacityDoc":
        if self.reserved > self.total:
            raise ValueError(f"reserved ({self.reserved}) is more than total ({self.total})")
        if self.largest_host is not None and self.largest_host > self.total:
            raise ValueError(f"largest_host ({self.largest_host}) is more than total ({self.total})")
        return self


class ClusterDoc(_Doc):
    name: Name
    description: Text = ""
    capacity: dict[Literal["vcpu", "ram_gib", "storage_gib"], CapacityDoc] = {}

    @model_validator(mode="after")
    def _not_absurd(self) -> "ClusterDoc":
        for resource, row in self.capacity.items():
            if row.total > MAX_RESOURCE_AMOUNT[resource]:
                raise ValueError(
                    f"{resource} total {row.total} is absurd (at most {MAX_RESOURCE_AMOUNT[resource]})"
                )
        return self


class SiteDoc(_Doc):
    code: Name
    name: Title
    role: Literal["primary", "disaster-recovery"]
    location: Text = ""
    clusters: list[ClusterDoc] = []


class EndpointDoc(_Doc):
    name: Name
    kind: Literal["http", "tcp", "tls"]
    target: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_check_printable)]
    expect_status: Annotated[str, Field(pattern=r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*$")] = (
        "200-399"
    )
    body_contains: Annotated[str, Field(max_length=500), AfterValidator(_check_printable)] = ""
    timeout_seconds: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 5.0
    interval_seconds: Annotated[StrictInt, Field(ge=10, le=86400)] = 60

    @model_validator(mode="after")
    def _target_fits_kind(self) -> "EndpointDoc":
        if self.timeout_seconds >= self.interval_seconds:
            raise ValueError(f"timeout_seconds ({self.timeout_seconds:g}) must be shorter than interval_seconds "
                             f"({self.interval_seconds})")
        if self.kind == "http":
            parts = urlsplit(self.target)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"an http endpoint needs an http:// or https:// URL, not {self.target!r}")
            try:
                parts.port
            except ValueError:
                raise ValueError(f"bad port in {self.target!r}") from None
        else:
            host, sep, port = self.target.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"a {self.kind} endpoint needs host:port, not {self.target!r}")
            _check_address(host.strip("[]"))
        return self


# The placeholders a catalogue check's target may hold, filled in when a request is approved.
CHECK_PLACEHOLDERS = ("host", "programme", "public_name")
# Stand-ins for the longest values the placeholders take, to check a template at catalogue load.
_LONGEST_SLUG = "p" * 63
_LONGEST_HOST = "h" * 63


def placeholders(target: str) -> set[str]:
    """The placeholders in a check's target; ValueError for unknown or malformed ones."""
    try:
        fields = list(Formatter().parse(target))
    except ValueError as error:
        raise ValueError(f"target {target!r}: unbalanced braces: {error} (write {{{{ and }}}} for literal "
                         "braces)") from None
    found = set()
    known = ", ".join(f"{{{name}}}" for name in CHECK_PLACEHOLDERS)
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"target {target!r}: a placeholder is a bare name ({known})")
        if name not in CHECK_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}} in target (known: {known})")
        found.add(name)
    return found


def public_name(slug: str, public_domain: str) -> str:
    """The public DNS name of a programme with no name of its own: <slug>.<public_domain>."""
    return f"{slug}.{public_domain}"


def _endpoint_problem(error: PydanticValidationError) -> str:
    item = error.errors(include_url=False)[0]
    message = item["msg"].removeprefix("Value error, ")
    field_name = ".".join(str(part) for part in item["loc"])
    return f"{field_name}: {message}" if field_name else message


def expand_checks(checks: list[dict], *, slug: str, hosts: list[str], public_domain: str = "",
                  own_public_name: str | None = None) -> list[dict]:
    """The endpoints a programme gets from its offering's checks, validated as inventory endpoints.

    A check whose target holds {host} becomes one endpoint per host (address), named
    <name>-1, <name>-2...; {programme} is the slug; {public_name} the programme's public
    name (`own_public_name`), else <slug>.<public_domain>. ValueError names the first
    check that does not expand.
    """
    derived = public_name(slug, public_domain) if public_domain else ""
    values = {"programme": slug, "public_name": own_public_name or derived}
    endpoints: list[dict] = []
    seen: set[str] = set()
    for check in checks:
        used = placeholders(check["target"])
        if "public_name" in used and not values["public_name"]:
            raise ValueError(f"check {check['name']!r}: {{public_name}} needs the offering's public_domain")
        if "host" in used:
            expansions = [(f"{check['name']}-{index}", _bracketed(address)) for index, address in
                          enumerate(hosts, start=1)]
        else:
            expansions = [(check["name"], "")]
        for name, host in expansions:
            document = {**check, "name": name, "target": check["target"].format(**values, host=host)}
            if name in seen:
                raise ValueError(f"check name {name!r} twice (a {{host}} check is named <name>-<n>)")
            seen.add(name)
            try:
                endpoint = EndpointDoc.model_validate(document)
            except PydanticValidationError as error:
                raise ValueError(f"check {check['name']!r} expands to a bad endpoint: "
                                 f"{_endpoint_problem(error)}") from None
            endpoints.append(endpoint.model_dump())
    return endpoints


def _bracketed(address: str) -> str:
    # An IPv6 literal needs brackets both in a URL and before :port.
    return f"[{address}]" if ":" in address else address


@contextmanager
def _stand_ins_named():
    """A problem found with the stand-in values reads with the placeholders instead."""
    try:
        yield
    except ValueError as error:
        raise ValueError(str(error).replace(_LONGEST_HOST, "{host}").replace(_LONGEST_SLUG, "{programme}")) from None


class CheckDoc(_Doc):
    """A check every programme of an offering gets: an endpoint whose target has placeholders.

    Unset fields take the inventory endpoint's defaults when the check is expanded.
    """

    name: Name
    kind: Literal["http", "tcp", "tls"]
    target: Annotated[str, Field(min_length=1, max_length=2000)]
    expect_status: str | None = None
    body_contains: str | None = None
    timeout_seconds: float | None = None
    interval_seconds: StrictInt | None = None

    @model_validator(mode="after")
    def _expands_to_an_endpoint(self) -> "CheckDoc":
        placeholders(self.target)
        with _stand_ins_named():
            expand_checks([self.state()], slug=_LONGEST_SLUG, hosts=[_LONGEST_HOST], public_domain="example.org")
        return self

    def state(self) -> dict[str, Any]:
        """The check as stored: the fields given, nothing else."""
        return self.model_dump(exclude_none=True)


class AllocationDoc(_Doc):
    cluster: Name
    vcpu: Annotated[StrictInt, Field(ge=0, le=MAX_RESOURCE_AMOUNT["vcpu"])] = 0
    ram_gib: Annotated[StrictInt, Field(ge=0, le=MAX_RESOURCE_AMOUNT["ram_gib"])] = 0
    storage_gib: Annotated[StrictInt, Field(ge=0, le=MAX_RESOURCE_AMOUNT["storage_gib"])] = 0


class HostDoc(_Doc):
    name: Name
    address: Address
    cluster: Name
    role: Name = "app"


class ContactsDoc(_Doc):
    owner: Email
    security: Email


class RecoveryDoc(_Doc):
    rto_minutes: Minutes | None = None
    rpo_minutes: Minutes | None = None
    backup_tier: Literal["none", "daily", "hourly", "continuous"] = "daily"


class ExternalComponentDoc(_Doc):
    """Something programmes depend on that the data centre does not host (the national ID service
    of another ministry, a bank's switch, the grid's power, the upstream link).

    Its slug shares one namespace with the programmes' (`depends_on` names either). `run_by`
    third-party: its time may be left out of an SLA that says so; data-centre (the data
    centre's own generator, its own uplink): never.
    """

    slug: Slug
    name: Title
    description: Text = ""
    run_by: Literal["third-party", "data-centre"] = "third-party"
    contact: ContactLine = ""


class ProgrammeDoc(_Doc):
    slug: Slug
    name: Title
    short_name: ShortName | None = None  # what charts and the status page call it: e-CRVS, LESMIS
    ministry: Name
    description: Text = ""
    tier: Literal[1, 2, 3]
    status: Literal[
        "requested", "approved", "provisioning", "active", "failed", "decommissioning", "retired"
    ] | None = None
    classification: Literal["public", "internal", "confidential", "secret"]
    environment: Literal["production", "staging"] = "production"
    contacts: ContactsDoc
    personal_data: StrictBool = False
    plan: Name | None = None  # the catalogue plan it is hosted on, which prices it
    recovery: RecoveryDoc = RecoveryDoc()
    review_date: date | None = None
    # Its own word on whether third-party dependency time is left out of its SLA (omitted: its tier's).
    excludes_external: StrictBool | None = None
    depends_on: list[Slug] = []  # programmes and external components it needs
    endpoints: list[EndpointDoc] = []
    allocations: list[AllocationDoc] = []
    hosts: list[HostDoc] = []


class CostDoc(_Doc):
    """An Open Service Broker plan cost: {amount: {lak: 1500000}, unit: MONTHLY}."""

    amount: dict[Literal["lak"], Annotated[StrictInt, Field(ge=0, le=10**13)]]
    unit: Literal["MONTHLY"]


class PlanMetadataDoc(_Doc):
    displayName: Title | None = None  # noqa: N815 - the Open Service Broker field name
    bullets: list[Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_check_text)]] = []
    costs: Annotated[list[CostDoc], Field(min_length=1, max_length=1)]


class PlanResourcesDoc(_Doc):
    """Resources of one instance, and how many instances a plan gives."""

    vcpu: Annotated[StrictInt, Field(ge=0, le=1024)] = 0
    ram_gib: Annotated[StrictInt, Field(ge=0, le=16384)] = 0
    storage_gib: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    instances: Annotated[StrictInt, Field(ge=1, le=1000)] = 1


class PlanDoc(_Doc):
    id: Name
    name: Name
    description: Text = ""
    resources: PlanResourcesDoc
    sla_tiers: Annotated[list[Literal[1, 2, 3]], Field(min_length=1)]
    metadata: PlanMetadataDoc


class OfferingMetadataDoc(_Doc):
    displayName: Title | None = None  # noqa: N815
    longDescription: Text = ""  # noqa: N815


class OfferingDoc(_Doc):
    """A catalogue service offering, shaped on the Open Service Broker API catalogue."""

    id: Name
    name: Name
    description: Text = ""
    tags: list[Name] = []
    metadata: OfferingMetadataDoc = OfferingMetadataDoc()
    plans: Annotated[list[PlanDoc], Field(min_length=1)]
    # What approval sets up to monitor each programme of this offering, and the DNS domain
    # its programmes' public names ({public_name}) are made under.
    checks: list[CheckDoc] = []
    public_domain: Annotated[str, Field(max_length=190), AfterValidator(_check_domain)] | None = None

    @model_validator(mode="after")
    def _checks_expand_on_every_plan(self) -> "OfferingDoc":
        # The longest slug and each plan's host count: what every approval could expand them to.
        with _stand_ins_named():
            for plan in self.plans:
                expand_checks([c.state() for c in self.checks], slug=_LONGEST_SLUG,
                              hosts=[_LONGEST_HOST] * plan.resources.instances, public_domain=self.public_domain or "")
        return self


class InventoryFileDoc(_Doc):
    """One inventory file: any of the sections, each a list."""

    sla_tiers: list[SlaTierDoc] = []
    ministries: list[MinistryDoc] = []
    sites: list[SiteDoc] = []
    programmes: list[ProgrammeDoc] = []
    offerings: list[OfferingDoc] = []
    external_components: list[ExternalComponentDoc] = []


SECTIONS = ("sla_tiers", "ministries", "sites", "programmes", "offerings", "external_components")


@dataclass
class Desired:
    """What the inventory files ask for, as plain state keyed by natural keys.

    `origins` maps ("programme", slug) and the like to "file:line" for messages.
    """

    sla_tiers: dict[int, dict] = field(default_factory=dict)
    ministries: dict[str, dict] = field(default_factory=dict)
    sites: dict[str, dict] = field(default_factory=dict)
    clusters: dict[str, dict] = field(default_factory=dict)
    programmes: dict[str, dict] = field(default_factory=dict)
    offerings: dict[str, dict] = field(default_factory=dict)
    plans: dict[str, dict] = field(default_factory=dict)
    external_components: dict[str, dict] = field(default_factory=dict)
    origins: dict[tuple, str] = field(default_factory=dict)
    # Records left out because they have schema problems, as ("ministry", code) and the like:
    # the cross-checks take them as present, so one round reports every other mistake too.
    unchecked: set[tuple] = field(default_factory=set)


def programme_state(doc: ProgrammeDoc) -> dict[str, Any]:
    """The plain state of a programme document, in the shape the database is read into."""
    return {
        "name": doc.name,
        "short_name": doc.short_name,
        "ministry": doc.ministry,
        "description": doc.description,
        "tier": doc.tier,
        "status": doc.status,
        "classification": doc.classification,
        "environment": doc.environment,
        "owner_contact": doc.contacts.owner,
        "security_contact": doc.contacts.security,
        "personal_data": doc.personal_data,
        "plan_id": doc.plan,
        "rto_minutes": doc.recovery.rto_minutes,
        "rpo_minutes": doc.recovery.rpo_minutes,
        "backup_tier": doc.recovery.backup_tier,
        "review_date": doc.review_date,
        "excludes_external": doc.excludes_external,
        "depends_on": sorted(set(doc.depends_on)),
        "endpoints": {e.name: e.model_dump(exclude={"name"}) for e in doc.endpoints},
        "allocations": {
            a.cluster: {r: getattr(a, r) for r in RESOURCES if getattr(a, r)} for a in doc.allocations
        },
        "hosts": {h.name: {"address": h.address, "cluster": h.cluster, "role": h.role} for h in doc.hosts},
    }


def external_component_state(doc: ExternalComponentDoc) -> dict[str, Any]:
    """The plain state of an external component, in the shape of its table row."""
    return {"name": doc.name, "description": doc.description, "run_by": doc.run_by, "contact": doc.contact}


def offering_state(doc: OfferingDoc) -> dict[str, Any]:
    """The plain state of an offering (its plans apart, keyed by plan id)."""
    return {
        "name": doc.name,
        "description": doc.description,
        "display_name": doc.metadata.displayName or "",
        "long_description": doc.metadata.longDescription,
        "tags": list(doc.tags),
        "checks": [check.state() for check in doc.checks],
        "public_domain": doc.public_domain or "",
    }


def plan_state(offering_id: str, doc: PlanDoc) -> dict[str, Any]:
    """The plain state of a plan, in the shape of its table row."""
    return {
        "offering_id": offering_id,
        "name": doc.name,
        "description": doc.description,
        "display_name": doc.metadata.displayName or "",
        "bullets": list(doc.metadata.bullets),
        "monthly_cost_lak": doc.metadata.costs[0].amount["lak"],
        "vcpu": doc.resources.vcpu,
        "ram_gib": doc.resources.ram_gib,
        "storage_gib": doc.resources.storage_gib,
        "instances": doc.resources.instances,
        "sla_tiers": sorted(set(doc.sla_tiers)),
    }


def pydantic_problems(error: PydanticValidationError, data: Any, where: str,
                      flags: dict[tuple, str] | None = None, skip: set[tuple] = frozenset()) -> list[str]:
    """Each problem pydantic found, as 'file:line: field: message' in dcops' words.

    `flags` maps a field's location to the command-line option that gave it: a problem
    with that field is then told as the option's ('--tier: ...'), not a line of the file.
    Problems at a location in `skip` are left out (the caller told them already).
    """
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if loc in skip:
            continue
        option = next((name for field_loc, name in (flags or {}).items() if loc[:len(field_loc)] == field_loc), None)
        line = line_of(data, loc)
        path = _format_loc(loc)
        message = in_our_words(item["msg"])
        if item["type"] == "string_pattern_mismatch":
            message = PATTERN_MESSAGES.get((item.get("ctx") or {}).get("pattern"), "has characters it may not have")
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "is required"
        given = item.get("input")
        if item["type"] in ("literal_error", "string_pattern_mismatch", "int_type", "int_parsing", "bool_type",
                            "bool_parsing", "float_parsing", "float_type", "greater_than_equal", "less_than_equal",
                            "greater_than", "less_than") and not isinstance(given, (dict, list)):
            message += f" (got {given!r})"
        if option is not None:
            problems.append(f"{option}: {message}")
            continue
        prefix = f"{where}:{line}" if line else where
        problems.append(f"{prefix}: {path}: {message}" if path else f"{prefix}: {message}")
    return problems


def _format_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


@dataclass
class _Seen:
    where: dict[tuple, str] = field(default_factory=dict)

    def claim(self, key: tuple, where: str, problems: list[str], what: str) -> bool:
        if key in self.where:
            problems.append(f"{where}: duplicate {what} (first at {self.where[key]})")
            return False
        self.where[key] = where
        return True


def inventory_files(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml file under `directory`, sorted, hidden ones left out."""
    files = [
        path
        for pattern in ("*.yaml", "*.yml")
        for path in directory.rglob(pattern)
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]
    return sorted(files)


def read_directory(directory: Path) -> tuple[Desired, list[str]]:
    """Parse and check every inventory file; return the desired state and every problem."""
    desired = Desired()
    problems: list[str] = []
    seen = _Seen()
    files = inventory_files(directory)
    if not files:
        problems.append(f"{directory}: no inventory files (*.yaml) found")
    for path in files:
        where = str(path)
        try:
            data = load_yaml(path)
        except YamlProblem as problem:
            problems.append(f"{where}:{problem.line}: {problem.message}")
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{where}:{getattr(data, 'line', 1)}: an inventory file is a mapping of sections "
                            f"({', '.join(SECTIONS)}), not a {type(data).__name__}")
            continue
        try:
            doc = InventoryFileDoc.model_validate(data)
        except PydanticValidationError as error:
            problems.extend(pydantic_problems(error, data, where))
            data, doc = _valid_part(data, error, desired.unchecked)
            if doc is None:
                continue
        add_document(desired, doc, data, where, problems, seen)
    return desired, problems


# The field that names a record of each section, and the kind the cross-checks know it by.
_RECORD_KEYS = {"ministries": ("ministry", "code"), "sites": ("site", "code"), "programmes": ("programme", "slug"),
                "offerings": ("offering", "id"), "sla_tiers": ("tier", "tier"),
                "external_components": ("external_component", "slug")}


def _valid_part(data: LocatedDict, error: PydanticValidationError, unchecked: set[tuple]):
    """The file without its records that have problems (their names go to `unchecked`), validated;
    (data, None) when what is left still fails."""
    bad: set[tuple] = set()
    for item in error.errors():
        loc = item["loc"]
        if len(loc) >= 2 and loc[0] in _RECORD_KEYS and isinstance(loc[1], int):
            bad.add((loc[0], loc[1]))
        else:
            return data, None  # a whole section is wrong: nothing in the file is told apart
    kept = LocatedDict()
    kept.line, kept.key_lines = data.line, dict(data.key_lines)
    for section, records in data.items():
        if not isinstance(records, LocatedList):
            kept[section] = records
            continue
        rest = LocatedList()
        rest.line, rest.item_lines = records.line, []
        for index, record in enumerate(records):
            if (section, index) not in bad:
                rest.append(record)
                rest.item_lines.append(records.item_lines[index])
                continue
            kind, key = _RECORD_KEYS[section]
            if isinstance(record, dict):
                if isinstance(record.get(key), (str, int)):  # a name so malformed names nothing
                    unchecked.add((kind, record.get(key)))
                children = {"sites": ("cluster", "clusters", "name"), "offerings": ("plan", "plans", "id")}
                if section in children:
                    child_kind, child_list, child_key = children[section]
                    children_given = record.get(child_list)
                    for child in children_given if isinstance(children_given, list) else []:
                        if isinstance(child, dict) and isinstance(child.get(child_key), str):
                            unchecked.add((child_kind, child.get(child_key)))
        kept[section] = rest
    try:
        return kept, InventoryFileDoc.model_validate(kept)
    except PydanticValidationError:
        return data, None


def add_document(
    desired: Desired, doc: InventoryFileDoc, data: Any, where: str, problems: list[str], seen: _Seen | None = None
) -> None:
    """Merge one valid file into the desired state, reporting names defined twice."""
    seen = seen or _Seen()

    def at(*loc) -> str:
        line = line_of(data, loc)
        return f"{where}:{line}" if line else where

    for i, tier in enumerate(doc.sla_tiers):
        if seen.claim(("tier", tier.tier), at("sla_tiers", i), problems, f"tier {tier.tier}"):
            desired.sla_tiers[tier.tier] = {"name": tier.name, "sla_target_percent": tier.sla_target_percent,
                                            "excludes_external": tier.excludes_external}
    for i, ministry in enumerate(doc.ministries):
        if seen.claim(("ministry", ministry.code), at("ministries", i), problems, f"ministry {ministry.code!r}"):
            desired.ministries[ministry.code] = {"name": ministry.name, "contact": ministry.contact}
            desired.origins[("ministry", ministry.code)] = at("ministries", i)
    for i, site in enumerate(doc.sites):
        if not seen.claim(("site", site.code), at("sites", i), problems, f"site {site.code!r}"):
            continue
        desired.sites[site.code] = {"name": site.name, "role": site.role, "location": site.location}
        for j, cluster in enumerate(site.clusters):
            place = at("sites", i, "clusters", j)
            if seen.claim(("cluster", cluster.name), place, problems, f"cluster {cluster.name!r}"):
                desired.clusters[cluster.name] = {
                    "site": site.code,
                    "description": cluster.description,
                    "capacity": {r: row.model_dump() for r, row in sorted(cluster.capacity.items())},
                }
                desired.origins[("cluster", cluster.name)] = place
    for i, programme in enumerate(doc.programmes):
        place = at("programmes", i)
        if not seen.claim(("programme", programme.slug), place, problems, f"programme {programme.slug!r}"):
            continue
        local = _Seen()
        for j, endpoint in enumerate(programme.endpoints):
            local.claim(("endpoint", endpoint.name), at("programmes", i, "endpoints", j), problems,
                        f"endpoint {endpoint.name!r} in {programme.slug}")
        for j, allocation in enumerate(programme.allocations):
            local.claim(("allocation", allocation.cluster), at("programmes", i, "allocations", j), problems,
                        f"allocation on cluster {allocation.cluster!r} in {programme.slug}")
        for j, host in enumerate(programme.hosts):
            seen.claim(("host", host.name), at("programmes", i, "hosts", j), problems, f"host {host.name!r}")
        desired.programmes[programme.slug] = programme_state(programme)
        desired.origins[("programme", programme.slug)] = place
    for i, component in enumerate(doc.external_components):
        place = at("external_components", i)
        if seen.claim(("external_component", component.slug), place, problems,
                      f"external component {component.slug!r}"):
            desired.external_components[component.slug] = external_component_state(component)
            desired.origins[("external_component", component.slug)] = place
    for i, offering in enumerate(doc.offerings):
        place = at("offerings", i)
        if not seen.claim(("offering", offering.id), place, problems, f"offering {offering.id!r}"):
            continue
        desired.offerings[offering.id] = offering_state(offering)
        desired.origins[("offering", offering.id)] = place
        for j, plan in enumerate(offering.plans):
            plan_place = at("offerings", i, "plans", j)
            if seen.claim(("plan", plan.id), plan_place, problems, f"plan {plan.id!r}"):
                desired.plans[plan.id] = plan_state(offering.id, plan)
                desired.origins[("plan", plan.id)] = plan_place
