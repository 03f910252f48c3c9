"""The published catalogue website and catalog.json, rendered from plain data."""

from __future__ import annotations

import json
import math
import re
import textwrap
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dcops import display
from dcops.errors import UserError
from dcops.files import write_atomically
from dcops.resources import templates_dir as shipped_templates_dir
from dcops.settings import DEFAULT_DATA_CENTRE_NAME, mail_address
from dcops.vocabulary import is_name

# The top-level pages: (template in templates/catalogue/, output file in out_dir).
PAGES = (
    ("index.html", "index.html"),
    ("ministries.html", "ministries.html"),
    ("how-to-request.html", "how-to-request.html"),
)
OFFERING_TEMPLATE = "offering.html"
# Lists the files a publish wrote, so the next one can remove those it no longer writes.
MANIFEST = ".dcops-site-files"
STYLESHEET = "style.css"
PLACEHOLDER = "CHANGE-ME"
# The periods the service levels are explained in: a 30-day month and a 365-day year.
MONTH_SECONDS = 30 * 86_400
YEAR_SECONDS = 365 * 86_400
MONTHS_PER_YEAR = 12


def default_templates_dir() -> Path:
    """templates/catalogue/, shipped inside the package."""
    return shipped_templates_dir() / "catalogue"


# --- formatting (the templates never compute) -------------------------------------------------


def format_number(value: Any) -> str:
    """1500000 -> "1,500,000"; 99.95 -> "99.95"; None -> "—"."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_percent(value: Any) -> str:
    """99.9 -> "99.9 %" (the house style of dcops.display); None -> "—"."""
    return display.percent(value)


def format_resources(resources: dict) -> str:
    """{"vcpu": 2, "ram_gib": 4, "storage_gib": 80} -> "2 vCPU, 4 GiB RAM, 80 GiB storage".

    Sizes go through display.gib, as everywhere dcops publishes them; a no-break space joins
    each amount to its unit, so that lines wrap between resources only.
    """
    parts = []
    if resources.get("vcpu"):
        parts.append(f"{format_number(resources['vcpu'])}\u00a0vCPU")
    for key, label in (("ram_gib", "RAM"), ("storage_gib", "storage")):
        if resources.get(key):
            parts.append(f"{display.gib(resources[key])} {label}")
    return ", ".join(parts) or "no dedicated resources"


# --- what a service level allows ---------------------------------------------------------------


def allowed_downtime_seconds(target_percent: float, period_seconds: float) -> float:
    """The downtime an availability target leaves in a period, in seconds: the period's
    (100 - target) %. 99.9 over a 30-day month (2,592,000 s) -> 2,592 s (43.2 min).

    Worked in decimal, so that 99.9 is 99.9 and not 99.900000000000006. The period is the
    time counted: announced maintenance and time without monitoring data are not in it.
    """
    target = Decimal(repr(float(target_percent)))
    if not 0 <= target <= 100:
        raise ValueError(f"an availability target is a percentage from 0 to 100, not {target_percent!r}")
    return float(Decimal(repr(float(period_seconds))) * (100 - target) / 100)


def format_allowance(seconds: float) -> str:
    """A downtime allowance in words a reader can picture: 2,592 s -> "43.2 min" (to a tenth under
    an hour), 12,960 s -> "3 h 36 min", 315,360 s -> "3 days 15 h 36 min" (from two days on)."""
    if seconds < 3600:
        minutes = math.floor(seconds / 6 + 0.5) / 10  # to the nearest tenth of a minute
        return f"{minutes:g}\u00a0min"
    minutes = math.floor(seconds / 60 + 0.5)
    days, minutes = divmod(minutes, 1440) if minutes >= 2 * 1440 else (0, minutes)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}\u00a0days"] if days else []
    parts += [f"{hours}\u00a0h"] if hours else []
    parts += [f"{minutes}\u00a0min"] if minutes else []
    return " ".join(parts)


def tier_view(row: dict) -> dict:
    """One SLA tier as the site shows it: its target and the downtime it allows a month and a year."""
    target = row["sla_target_percent"]
    return {
        "tier": row["tier"],
        "name": row["name"],
        "target": display.percent(target),
        "month": format_allowance(allowed_downtime_seconds(target, MONTH_SECONDS)),
        "year": format_allowance(allowed_downtime_seconds(target, YEAR_SECONDS)),
        # None: the data does not say (the page then says nothing of third parties' outages).
        "excludes_external": row.get("excludes_external"),
    }


# --- the service desk --------------------------------------------------------------------------

_MAIL_IN_TEXT = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d ()-]{5,}\d")


def contact_parts(service_desk: str) -> list[dict]:
    """The service desk's contact line in pieces, {"text", "href"}: an e-mail address links to
    mailto:, a telephone number to tel: (digits only), the rest is text (href None)."""
    parts: list[dict] = []
    position = 0
    found = sorted([*_MAIL_IN_TEXT.finditer(service_desk), *_PHONE_IN_TEXT.finditer(service_desk)],
                   key=lambda match: match.start())
    for match in found:
        if match.start() < position:
            continue  # a phone-like run of digits inside an address
        text = match.group()
        if "@" in text:
            if mail_address(text) is None:
                continue
            href = f"mailto:{text}"
        else:
            href = "tel:" + ("+" if text.startswith("+") else "") + re.sub(r"\D", "", text)
        if match.start() > position:
            parts.append({"text": service_desk[position:match.start()], "href": None})
        parts.append({"text": text, "href": href})
        position = match.end()
    if position < len(service_desk):
        parts.append({"text": service_desk[position:], "href": None})
    return parts


_CHECK_KINDS = {"tcp": "TCP connection to", "tls": "TLS handshake and certificate expiry at"}


def describe_check(check: dict, public_domain: str | None) -> str:
    """A catalogue check in words for a ministry: "TCP connection to <server>:22, on each server, every 60 s"."""
    target = check["target"].replace("{{", "{").replace("}}", "}")
    target = (target.replace("{host}", "<server>").replace("{programme}", "<programme>")
              .replace("{public_name}", f"<programme>.{public_domain}" if public_domain else "<programme>"))
    if check["kind"] == "http":
        scheme = target.split(":", 1)[0].upper()
        text = f"{scheme} {target} answering {check.get('expect_status') or '200-399'}"
        if check.get("body_contains"):
            text += f" with “{check['body_contains']}”"
    else:
        text = f"{_CHECK_KINDS[check['kind']]} {target}"
    if "{host}" in check["target"]:
        text += ", on each server"
    # A no-break space keeps the number with its unit when the line wraps.
    return f"{text}, every {format_number(check.get('interval_seconds') or 60)}\u00a0s"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# --- what the request validation enforces --------------------------------------------------

# What each classification means, for a ministry choosing one (the words of a data policy;
# which ones need the security sign-off is read from the validation itself).
CLASSIFICATION_MEANINGS = {
    "public": "Information anyone may read: published statistics, open data, a public website.",
    "internal": "Information for government staff, not published, whose disclosure would do little harm: "
                "internal documents, work plans, staff directories.",
    "confidential": "Information whose disclosure would harm people, a ministry or the government: personal "
                    "records, health, tax, land or court files, unpublished budgets.",
    "secret": "Information whose disclosure would seriously harm national security or public order. A secret "
              "programme is never listed on this site.",
}
SITE_ROLE_MEANINGS = {
    "primary": "primary: programmes run here",
    "disaster-recovery": "disaster recovery: standbys and backup copies, taken over if the primary site fails",
}


def _lengths(model, field: str) -> tuple[int | None, int | None]:
    """The (minimum, maximum) length a pydantic field's validation enforces, from its own metadata."""
    low = high = None
    for rule in model.model_fields[field].metadata:
        low = getattr(rule, "min_length", low)
        high = getattr(rule, "max_length", high)
    return low, high


def _choices(model, field: str) -> list:
    import typing

    return list(typing.get_args(model.model_fields[field].annotation))


def _pattern_lengths(pattern: str) -> tuple[int, int]:
    """The shortest and longest name a name pattern accepts, found by asking the pattern itself."""
    accepted = [n for n in range(1, 300) if re.match(pattern, "a" * n)]
    return accepted[0], accepted[-1]


def request_rules() -> dict:
    """Every rule the request validation enforces (a fresh copy of `_request_rules`)."""
    return dict(_request_rules())


@lru_cache(maxsize=1)
def _request_rules() -> dict:
    """Every rule the request validation enforces, read from the request document's model and
    constants (dcops.catalogue.requests.document), so the published page cannot drift from it."""
    from dcops.catalogue.requests.document import (MAX_REQUEST_BYTES, RequestContactsDoc, RequestDoc,
                                                   RequestProgrammeDoc, needs_security_signoff)
    from dcops.vocabulary import NAME_PATTERN, SLUG_PATTERN

    justification = _lengths(RequestDoc, "justification")
    name = _lengths(RequestProgrammeDoc, "name")
    description = _lengths(RequestProgrammeDoc, "description")
    email = _lengths(RequestContactsDoc, "owner")
    classifications = _choices(RequestDoc, "classification")
    return {
        "justification_min": justification[0], "justification_max": justification[1],
        "name_min": name[0], "name_max": name[1],
        "description_max": description[1],
        "email_max": email[1],
        "slug_min": _pattern_lengths(SLUG_PATTERN)[0], "slug_max": _pattern_lengths(SLUG_PATTERN)[1],
        "code_max": _pattern_lengths(NAME_PATTERN)[1],
        "tiers": _choices(RequestDoc, "tier"),
        "classifications": classifications,
        "signoff_classifications": [c for c in classifications if needs_security_signoff(c, False)],
        "environments": _choices(RequestDoc, "environment"),
        "environment_default": RequestDoc.model_fields["environment"].default,
        "max_file_kib": MAX_REQUEST_BYTES // 1024,
    }


def _or_list(items: list) -> str:
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def classification_views(rules: dict) -> list[dict]:
    """Each classification level with what it means and whether it needs the security sign-off."""
    return [{"name": name, "meaning": CLASSIFICATION_MEANINGS.get(name, ""),
             "signoff": name in rules["signoff_classifications"]} for name in rules["classifications"]]


def site_views(sites: list[dict]) -> list[dict]:
    """The data centre's sites (code, name, role, location) as the site explains them."""
    return [{"code": site["code"], "name": site["name"], "location": site.get("location") or "",
             "role": SITE_ROLE_MEANINGS.get(site["role"], site["role"])} for site in sites]


# --- sizes a plan's words state ----------------------------------------------------------------

_SIZE_IN_TEXT = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(GiB|TiB|GB|TB)\b")
_VCPU_IN_TEXT = re.compile(r"(?<![\w.,])(\d+)\s*vCPU\b")
_DECIMAL_UNITS = {"GB": "GiB", "TB": "TiB"}


def plan_unit_problems(plan: dict) -> list[str]:
    """Where a plan's name, description or bullets state a size or a vCPU count its resources do
    not have ("Backup 1 TiB" over 1,000 GiB: 1 TiB is 1,024 GiB), or a size in GB or TB (the
    catalogue counts in GiB). Sizes may be per instance or the plan's total."""
    resources = plan["resources"]
    instances = resources.get("instances", 1) or 1
    sizes = {resources.get(key) for key in ("ram_gib", "storage_gib") if resources.get(key)}
    sizes |= {size * instances for size in sizes}
    vcpus = {resources["vcpu"], resources["vcpu"] * instances} if resources.get("vcpu") else set()
    texts = [("name", plan.get("display_name") or plan["name"]), ("description", plan.get("description") or ""),
             *(("bullet", bullet) for bullet in plan.get("bullets") or [])]
    problems = []
    for where, text in texts:
        for amount, unit in _SIZE_IN_TEXT.findall(text):
            if unit in _DECIMAL_UNITS:
                problems.append(f"plan {plan['id']}: {where} {text!r}: {amount} {unit}: write sizes in "
                                f"{_DECIMAL_UNITS[unit]}, like the plan's resources")
                continue
            gib = float(amount.replace(",", "")) * (display.GIB_PER_TIB if unit == "TiB" else 1)
            if gib not in sizes:
                stated = f"{amount} {unit}" + (f" ({display.gib(gib)})" if unit == "TiB" else "")
                has = ", ".join(display.gib(size) for size in sorted(sizes)) or "no memory or storage"
                problems.append(f"plan {plan['id']}: {where} {text!r} says {stated}, but the plan has {has}")
        for amount in _VCPU_IN_TEXT.findall(text):
            if int(amount) not in vcpus:
                problems.append(f"plan {plan['id']}: {where} {text!r} says {amount} vCPU, but the plan has "
                                f"{', '.join(str(v) for v in sorted(vcpus)) or 'none'}")
    return [problem.replace("\u00a0", " ") for problem in problems]


def catalogue_warnings(data: dict) -> list[str]:
    """Every plan of the site's data whose words contradict its resources (plan_unit_problems)."""
    return [problem for offering in data["offerings"] for plan in offering["plans"]
            for problem in plan_unit_problems(plan)]


# --- the Open Service Broker catalog ----------------------------------------------------------


def osb_catalog(data: dict) -> dict:
    """The Open Service Broker catalog document (GET /v2/catalog) of the offerings in `data`."""
    services = []
    for offering in data["offerings"]:
        plans = []
        for plan in offering["plans"]:
            cost = plan["monthly_cost_lak"]
            plans.append(
                {
                    "id": plan["id"],
                    "name": plan["name"],
                    "description": plan["description"],
                    "free": cost == 0,
                    "metadata": {
                        "displayName": plan.get("display_name") or plan["name"],
                        "bullets": list(plan.get("bullets") or []),
                        "costs": [{"amount": {"lak": cost}, "unit": "MONTHLY"}],
                        "resources": dict(plan["resources"]),
                        "slaTiers": list(plan["sla_tiers"]),
                    },
                }
            )
        services.append(
            {
                "id": offering["id"],
                "name": offering["name"],
                "description": offering["description"],
                "bindable": False,
                "plan_updateable": False,
                "tags": list(offering.get("tags") or []),
                "metadata": {
                    "displayName": offering.get("display_name") or offering["name"],
                    "longDescription": offering.get("long_description") or "",
                    # What the data centre monitors on every programme of the offering.
                    "checks": [dict(check) for check in offering.get("checks") or []],
                    "monitoring": _monitoring(offering),
                },
                "plans": plans,
            }
        )
    return {"services": services}


def _monitoring(offering: dict) -> list[str]:
    return [describe_check(check, offering.get("public_domain")) for check in offering.get("checks") or []]


# --- the request template ---------------------------------------------------------------------


def _scalar(value: Any) -> str:
    """One YAML scalar, safely quoted: data never reaches the YAML text unescaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = yaml.safe_dump(str(value), allow_unicode=True, default_style='"', width=1 << 30)
    text = text.rstrip("\n")
    if "\n" in text:  # pragma: no cover - a double-quoted scalar is always one line at this width
        raise ValueError(f"cannot write {value!r} as a one-line YAML scalar")
    return text


def _comment(value: Any) -> str:
    """Text made safe for the inside of a YAML comment: one line, printable characters only."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return " ".join(text.split())


def _tier_labels(data: dict) -> dict[int, dict]:
    return {row["tier"]: row for row in data.get("tiers", [])}


def _tier_text(tier: int, tiers: dict[int, dict]) -> str:
    row = tiers.get(tier)
    if row is None:
        return f"tier {tier}"
    return f"tier {tier} ({_comment(row['name'])}, {format_percent(row['sla_target_percent'])})"


def desk_line(service_desk: str, data_centre_name: str = DEFAULT_DATA_CENTRE_NAME) -> str:
    """How to reach the service desk, in one line: its contact, or whom to ask when none is set."""
    if service_desk:
        return f"the {data_centre_name}'s service desk ({service_desk})"
    return f"the {data_centre_name}'s service desk"


def request_template(data: dict, offering: dict, plan: dict, *, service_desk: str = "",
                     data_centre_name: str = DEFAULT_DATA_CENTRE_NAME) -> str:
    """The YAML hosting-request template of one plan, with step-by-step instructions in comments."""
    tiers = _tier_labels(data)
    rules = _request_rules()
    allowed = sorted(set(plan["sla_tiers"]))
    lowest = allowed[0]
    offering_name = _comment(offering.get("display_name") or offering["name"])
    plan_name = _comment(plan.get("display_name") or plan["name"])
    resources = plan["resources"]
    per_instance = _comment(format_resources(resources))
    instances = resources.get("instances", 1)
    lines = [
        f"# Hosting request: {offering_name} / {plan_name}",
        f"# Plan {_comment(plan['id'])}: {per_instance} per instance, {format_number(instances)} instance(s);",
        f"# {display.lak(plan['monthly_cost_lak'])} a month, "
        f"{display.lak(plan['monthly_cost_lak'] * MONTHS_PER_YEAR)} a year.",
        "#",
        "# How to fill in this request",
        "#   1. Replace every CHANGE-ME below. Keep the double quotes around text values.",
        "#      Lines starting with # are instructions; you may leave them in.",
        "#   2. Leave `offering` and `plan` as they are: they name the plan you chose.",
        "#      To ask for another plan, download that plan's template instead.",
        "#   3. Choose the SLA tier (the availability you need) among those this plan offers.",
        "#   4. Write dates as YYYY-MM-DD (year-month-day), e.g. 2030-06-30.",
        "#   5. Send the completed file, as an e-mail attachment, to",
        *(f"#      {line}" for line in textwrap.wrap(_comment(desk_line(service_desk, data_centre_name)) + ".", 70)),
        "#      The service desk enters it for you. If your ministry uses the data",
        "#      centre's portal, its request form asks for the same fields.",
        "#",
        "# What happens next",
        "#   - The data centre reviews the request and may ask you questions.",
        *textwrap.wrap(f"Two-person rule: a request whose classification is "
                       f"{_or_list(rules['signoff_classifications'])}, or that holds personal data, needs a "
                       "security sign-off by a second person before it can be approved.", 72,
                       initial_indent="#   - ", subsequent_indent="#     "),
        "#   - Approval reserves the capacity; the data centre then provisions the",
        "#     service and sends the details to the owner contact.",
        "",
        "# Your ministry's code in the catalogue, e.g. moh (see ministries.html).",
        f"ministry: {_scalar(PLACEHOLDER)}",
        "",
        "# The programme (system) to host.",
        "programme:",
        "  # A short identifier: lowercase letters, digits and dashes, "
        f"{rules['slug_min']}-{rules['slug_max']} characters,",
        "  # not starting or ending with a dash, e.g. e-health-records.",
        f"  slug: {_scalar(PLACEHOLDER)}",
        f"  # Its full name, on one line (at most {format_number(rules['name_max'])} characters).",
        f"  name: {_scalar(PLACEHOLDER)}",
        "  # Optional: what it does and who uses it.",
        f"  description: {_scalar('')}",
        "",
        "# The catalogue offering and plan requested (do not change).",
        f"offering: {_scalar(offering['id'])}",
        f"plan: {_scalar(plan['id'])}",
        "",
        "# SLA tier. Allowed for this plan: " + "; ".join(_tier_text(t, tiers) for t in allowed) + ".",
        f"tier: {_scalar(int(lowest))}",
        "",
        f"# Classification of the data: {_or_list(rules['classifications'])}",
        "# (what each means: how-to-request.html#classification).",
        f"classification: {_scalar(PLACEHOLDER)}",
        "",
        "# production or staging.",
        f"environment: {_scalar('production')}",
        "",
        "# Does the programme hold personal data (names, ID numbers, health records...)?",
        "# true or false. true needs the security sign-off described above.",
        f"personal_data: {_scalar(True)}",
        "",
        "# Why the ministry needs this service, and for whom: "
        f"{format_number(rules['justification_min'])} to {format_number(rules['justification_max'])} characters.",
        "# Several lines are fine: keep the | and indent every line by two spaces.",
        "justification: |",
        "  CHANGE-ME",
        "",
        "# Who answers for the programme, and who answers for its security (e-mail addresses).",
        "contacts:",
        f"  owner: {_scalar(PLACEHOLDER)}",
        f"  security: {_scalar(PLACEHOLDER)}",
        "",
        "# The date the service is needed by, as YYYY-MM-DD; not in the past.",
        f"wanted_by: {_scalar('YYYY-MM-DD')}",
        "",
        "# Optional: only if the programme must run at a given site, e.g. vte-dc1",
        "# (the site codes: how-to-request.html#sites).",
        "# Remove the # at the start of the next line and write the site code.",
        "# site: vte-dc1",
        "",
    ]
    return "\n".join(lines)


# --- the website ------------------------------------------------------------------------------


def _check_ids(data: dict) -> None:
    """Offering and plan ids become file names: refuse anything but [a-z0-9-]."""
    seen: set[str] = set()
    for offering in data["offerings"]:
        if not isinstance(offering["id"], str) or not is_name(offering["id"]):
            raise UserError(f"offering id {offering['id']!r} is not [a-z0-9-]; cannot publish it as a file name")
        for plan in offering["plans"]:
            if not isinstance(plan["id"], str) or not is_name(plan["id"]):
                raise UserError(f"plan id {plan['id']!r} is not [a-z0-9-]; cannot publish it as a file name")
            if plan["id"] in seen:
                raise UserError(f"plan id {plan['id']!r} appears twice in the catalogue")
            seen.add(plan["id"])


def _views(data: dict) -> dict:
    """The data of the pages, with every derived value worked out here rather than in templates."""
    tiers = {row["tier"]: tier_view(row) for row in data.get("tiers", [])}
    offerings = []
    for offering in data["offerings"]:
        plans = []
        for plan in offering["plans"]:
            resources = plan["resources"]
            cost = plan["monthly_cost_lak"]
            plans.append(
                {
                    **plan,
                    "title": plan.get("display_name") or plan["name"],
                    "per_instance": format_resources(resources),
                    "instances": resources.get("instances", 1),
                    "total": format_resources(plan.get("totals") or {}),
                    "monthly_cost": display.lak(cost),
                    "yearly_cost": display.lak(cost * MONTHS_PER_YEAR),
                    "tiers": [tiers.get(t) or {"tier": t, "name": "", "target": display.NO_DATA,
                                                "month": display.NO_DATA, "year": display.NO_DATA}
                              for t in sorted(set(plan["sla_tiers"]))],
                    "tier_list": ", ".join(str(t) for t in sorted(set(plan["sla_tiers"]))),
                    "template": f"requests/{plan['id']}.yaml",
                    "bullets": list(plan.get("bullets") or []),
                }
            )
        costs = [plan["monthly_cost_lak"] for plan in offering["plans"]]
        offerings.append(
            {
                **offering,
                "title": offering.get("display_name") or offering["name"],
                "tags": list(offering.get("tags") or []),
                "page": f"offerings/{offering['id']}.html",
                "plans": plans,
                "plan_count": len(plans),
                "from_cost": display.lak(min(costs)) if costs else None,
                "from_cost_yearly": display.lak(min(costs) * MONTHS_PER_YEAR) if costs else None,
                "monitoring": _monitoring(offering),
            }
        )
    ministries = [
        {**ministry, "programme_count": len(ministry["programmes"])} for ministry in data.get("ministries", [])
    ]
    programme_count = sum(m["programme_count"] for m in ministries)
    rules = request_rules()
    known = [tier for tier in tiers.values() if tier["excludes_external"] is not None]
    return {
        "tiers": list(tiers.values()),
        # Which tiers leave out downtime whose cause is a third party's service (None: not known).
        "external_excluded": [t["tier"] for t in known if t["excludes_external"]] if known else None,
        "offerings": offerings,
        "ministries": ministries,
        "ministry_count": len(ministries),
        "programme_count": programme_count,
        "plan_count": sum(o["plan_count"] for o in offerings),
        "rules": rules,
        "classifications": classification_views(rules),
        # None: the data does not say (the site then sends the reader to the service desk).
        "sites": site_views(data["sites"]) if data.get("sites") is not None else None,
    }


def _write(path: Path, text: str, written: list[Path]) -> None:
    # Like every file dcops writes: whole or not at all, never over a device, FIFO or folder.
    write_atomically(path, text, make_parents=True)
    written.append(path)


def publish(
    data: dict, out_dir: Path, *, generated_at: datetime, templates_dir: Path | None = None,
    service_desk: str = "", data_centre_name: str = DEFAULT_DATA_CENTRE_NAME,
) -> list[Path]:
    """Render the catalogue site into `out_dir` (created if missing); return the files written.

    `service_desk` is the desk's contact line (Settings.service_desk), shown on every page; empty,
    the pages tell the reader to ask the `data_centre_name`'s service desk.
    """
    import jinja2

    templates_dir = Path(templates_dir) if templates_dir is not None else default_templates_dir()
    if not templates_dir.is_dir():
        raise UserError(f"{templates_dir}: no catalogue templates there (the templates/catalogue/ folder)")
    stylesheet = templates_dir / STYLESHEET
    if not stylesheet.is_file():
        raise UserError(f"{stylesheet}: the catalogue stylesheet is missing")
    _check_ids(data)

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = format_number
    env.filters["percent"] = format_percent

    moment = _utc(generated_at)
    views = _views(data)
    common = {
        **views,
        "generated_at": moment.strftime("%Y-%m-%d %H:%M UTC"),
        "generated_iso": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_centre": data_centre_name,
        "desk": contact_parts(service_desk),
    }

    def render(name: str, **context: Any) -> str:
        try:
            return env.get_template(name).render(**common, **context)
        except jinja2.TemplateNotFound as missing:
            raise UserError(f"{templates_dir / str(missing)}: catalogue template missing") from None

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a directory")
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for template, output in PAGES:
            _write(out_dir / output, render(template, root="", page=template.removesuffix(".html")), written)
        for offering in views["offerings"]:
            html = render(OFFERING_TEMPLATE, root="../", page="offering", offering=offering)
            _write(out_dir / offering["page"], html, written)
        for offering in data["offerings"]:
            for plan in offering["plans"]:
                template = request_template(data, offering, plan, service_desk=service_desk,
                                            data_centre_name=data_centre_name)
                _write(out_dir / "requests" / f"{plan['id']}.yaml", template, written)
        _write(out_dir / "catalog.json", json.dumps(osb_catalog(data), indent=2, ensure_ascii=False) + "\n",
               written)
        _write(out_dir / STYLESHEET, stylesheet.read_text(encoding="utf-8"), written)
        _remove_stale(out_dir, written)
    except OSError as error:
        raise UserError(f"cannot write to {out_dir}: {error.strerror or error}") from None
    return written


def _remove_stale(out_dir: Path, written: list[Path]) -> None:
    """Delete what the previous publish wrote and this one did not (a withdrawn plan's page).

    Only files named in the previous manifest are touched: never anything else in a
    folder the operator chose.
    """
    manifest = out_dir / MANIFEST
    current = {path.relative_to(out_dir).as_posix() for path in written}
    if manifest.is_file():
        for name in manifest.read_text(encoding="utf-8").splitlines():
            stale = out_dir / name
            if name and name not in current and ".." not in Path(name).parts and stale.is_file():
                stale.unlink()
    manifest.write_text("".join(f"{name}\n" for name in sorted(current)), encoding="utf-8")
