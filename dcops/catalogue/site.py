"""The published catalogue website and catalog.json, rendered from plain data."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from dcops.errors import UserError
from dcops.files import write_atomically
from dcops.resources import templates_dir as shipped_templates_dir
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
RESOURCE_LABELS = (("vcpu", "vCPU"), ("ram_gib", "GiB RAM"), ("storage_gib", "GiB storage"))


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
    """99.9 -> "99.9%"; None -> "—"."""
    if value is None:
        return "—"
    return f"{float(value):.6g}%"


def format_resources(resources: dict) -> str:
    """{"vcpu": 2, "ram_gib": 4, "storage_gib": 80} -> "2 vCPU, 4 GiB RAM, 80 GiB storage".

    A no-break space joins each amount to its unit, so that lines wrap between resources only.
    """
    parts = [f"{format_number(resources[key])}\u00a0{label}" for key, label in RESOURCE_LABELS if resources.get(key)]
    return ", ".join(parts) or "no dedicated resources"


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


def request_template(data: dict, offering: dict, plan: dict) -> str:
    """The YAML hosting-request template of one plan, with step-by-step instructions in comments."""
    tiers = _tier_labels(data)
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
        f"# {format_number(plan['monthly_cost_lak'])} LAK per month.",
        "#",
        "# How to fill in this request",
        "#   1. Replace every CHANGE-ME below. Keep the double quotes around text values.",
        "#      Lines starting with # are instructions; you may leave them in.",
        "#   2. Leave `offering` and `plan` as they are: they name the plan you chose.",
        "#      To ask for another plan, download that plan's template instead.",
        "#   3. Choose the SLA tier (the availability you need) among those this plan offers.",
        "#   4. Write dates as YYYY-MM-DD (year-month-day), e.g. 2030-06-30.",
        "#   5. Send the completed file to the National Data Centre service desk",
        "#      (as an e-mail attachment or on the request form). The data centre",
        "#      enters it with:  dcops request submit FILE.yaml",
        "#",
        "# What happens next",
        "#   - The data centre reviews the request and may ask you questions.",
        "#   - Two-person rule: a request whose classification is confidential or",
        "#     secret, or that holds personal data, needs a security sign-off by a",
        "#     second person before it can be approved.",
        "#   - Approval reserves the capacity; the data centre then provisions the",
        "#     service and sends the details to the owner contact.",
        "",
        "# Your ministry's code in the catalogue, e.g. moh (see ministries.html).",
        f"ministry: {_scalar(PLACEHOLDER)}",
        "",
        "# The programme (system) to host.",
        "programme:",
        "  # A short identifier: lowercase letters, digits and dashes, 2-63 characters, e.g. e-health-records.",
        f"  slug: {_scalar(PLACEHOLDER)}",
        "  # Its full name.",
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
        "# Classification of the data: public, internal, confidential or secret.",
        f"classification: {_scalar(PLACEHOLDER)}",
        "",
        "# production or staging.",
        f"environment: {_scalar('production')}",
        "",
        "# Does the programme hold personal data (names, ID numbers, health records...)?",
        "# true or false. true needs the security sign-off described above.",
        f"personal_data: {_scalar(True)}",
        "",
        "# Why the ministry needs this service, and for whom. Several lines are fine:",
        "# keep the | and indent every line by two spaces.",
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
        "# Optional: only if the programme must run at a given site, e.g. vte-dc1.",
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
    tiers = _tier_labels(data)
    offerings = []
    for offering in data["offerings"]:
        plans = []
        for plan in offering["plans"]:
            resources = plan["resources"]
            plans.append(
                {
                    **plan,
                    "title": plan.get("display_name") or plan["name"],
                    "per_instance": format_resources(resources),
                    "instances": resources.get("instances", 1),
                    "total": format_resources(plan.get("totals") or {}),
                    "tiers": [
                        {
                            "tier": t,
                            "name": tiers.get(t, {}).get("name", ""),
                            "target": tiers.get(t, {}).get("sla_target_percent"),
                        }
                        for t in sorted(set(plan["sla_tiers"]))
                    ],
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
                "from_cost": min(costs) if costs else None,
                "monitoring": _monitoring(offering),
            }
        )
    ministries = [
        {**ministry, "programme_count": len(ministry["programmes"])} for ministry in data.get("ministries", [])
    ]
    programme_count = sum(m["programme_count"] for m in ministries)
    return {
        "tiers": list(data.get("tiers", [])),
        "offerings": offerings,
        "ministries": ministries,
        "ministry_count": len(ministries),
        "programme_count": programme_count,
        "plan_count": sum(o["plan_count"] for o in offerings),
    }


def _write(path: Path, text: str, written: list[Path]) -> None:
    # Like every file dcops writes: whole or not at all, never over a device, FIFO or folder.
    write_atomically(path, text, make_parents=True)
    written.append(path)


def publish(
    data: dict, out_dir: Path, *, generated_at: datetime, templates_dir: Path | None = None
) -> list[Path]:
    """Render the catalogue site into `out_dir` (created if missing); return the files written."""
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
                _write(out_dir / "requests" / f"{plan['id']}.yaml", request_template(data, offering, plan), written)
        _write(out_dir / "catalog.json", json.dumps(osb_catalog(data), indent=2, ensure_ascii=False) + "\n",
               written)
        target = out_dir / STYLESHEET
        shutil.copyfile(stylesheet, target)
        written.append(target)
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
