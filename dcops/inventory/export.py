"""Writing the database back as inventory YAML, in the layout `inventory load` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcops.db import Database
from dcops.errors import UserError
from dcops.inventory.documents import inventory_files
from dcops.inventory.reconcile import Current, read_current
from dcops.inventory.yamlfile import dump_yaml
from dcops.vocabulary import RESOURCES

HEADER = "# dcops inventory: {what}. Exported by `dcops inventory export`; load with `dcops inventory load`.\n"


@dataclass(frozen=True)
class ExportResult:
    """The files written and how many records they hold."""

    directory: Path
    files: list[Path]
    programmes: int


def programme_document(slug: str, state: dict) -> dict:
    """A programme's state in the document shape of the inventory files (optional fields unset left out)."""
    return {
        "slug": slug,
        "name": state["name"],
        **({"short_name": state["short_name"]} if state.get("short_name") is not None else {}),
        "ministry": state["ministry"],
        "description": state["description"],
        "tier": state["tier"],
        "status": state["status"],
        "classification": state["classification"],
        "environment": state["environment"],
        "contacts": {"owner": state["owner_contact"], "security": state["security_contact"]},
        "personal_data": state["personal_data"],
        "plan": state["plan_id"],
        "recovery": {
            "rto_minutes": state["rto_minutes"],
            "rpo_minutes": state["rpo_minutes"],
            "backup_tier": state["backup_tier"],
        },
        "review_date": state["review_date"],
        **({"excludes_external": state["excludes_external"]} if state.get("excludes_external") is not None else {}),
        "depends_on": list(state["depends_on"]),
        "endpoints": [{"name": n, **e} for n, e in sorted(state["endpoints"].items())],
        "allocations": [
            {"cluster": c, **{r: amounts[r] for r in RESOURCES if r in amounts}}
            for c, amounts in sorted(state["allocations"].items())
        ],
        "hosts": [{"name": n, **h} for n, h in sorted(state["hosts"].items())],
    }


def documents(current: Current) -> dict[str, dict]:
    """File name (relative) -> document, for the whole inventory."""
    files: dict[str, dict] = {
        "tiers.yaml": {
            "sla_tiers": [{"tier": t, **s} for t, s in sorted(current.sla_tiers.items())],
        },
        "ministries.yaml": {
            "ministries": [{"code": c, **m} for c, m in sorted(current.ministries.items())],
        },
        "sites.yaml": {
            "sites": [
                {
                    "code": code,
                    **site,
                    "clusters": [
                        {"name": name, "description": cluster["description"], "capacity": dict(cluster["capacity"])}
                        for name, cluster in sorted(current.clusters.items())
                        if cluster["site"] == code
                    ],
                }
                for code, site in sorted(current.sites.items())
            ],
        },
    }
    by_ministry: dict[str, list] = {}
    for slug, state in sorted(current.programmes.items()):
        by_ministry.setdefault(state["ministry"], []).append(programme_document(slug, state))
    for ministry, programmes in sorted(by_ministry.items()):
        files[f"programmes/{ministry}.yaml"] = {"programmes": programmes}
    if current.external_components:
        files["external.yaml"] = {"external_components": [
            {"slug": slug, **component} for slug, component in sorted(current.external_components.items())
        ]}
    if current.offerings:
        files["catalogue.yaml"] = {"offerings": [
            offering_document(offering_id, offering, current.plans)
            for offering_id, offering in sorted(current.offerings.items())
        ]}
    return files


def offering_document(offering_id: str, offering: dict, plans: dict[str, dict]) -> dict:
    """An offering and its plans in the document shape of catalogue.yaml (Open Service Broker)."""
    metadata = {"longDescription": offering["long_description"]}
    if offering["display_name"]:
        metadata = {"displayName": offering["display_name"], **metadata}
    return {
        "id": offering_id,
        "name": offering["name"],
        "description": offering["description"],
        "tags": list(offering["tags"]),
        "metadata": metadata,
        **({"public_domain": offering["public_domain"]} if offering["public_domain"] else {}),
        "checks": [dict(check) for check in offering["checks"]],
        "plans": [
            {
                "id": plan_id,
                "name": plan["name"],
                "description": plan["description"],
                "resources": {r: plan[r] for r in (*RESOURCES, "instances")},
                "sla_tiers": list(plan["sla_tiers"]),
                "metadata": {
                    **({"displayName": plan["display_name"]} if plan["display_name"] else {}),
                    "bullets": list(plan["bullets"]),
                    "costs": [{"amount": {"lak": plan["monthly_cost_lak"]}, "unit": "MONTHLY"}],
                },
            }
            for plan_id, plan in sorted(plans.items())
            if plan["offering_id"] == offering_id
        ],
    }


def export_inventory(database: Database, directory: Path) -> ExportResult:
    """Write the database's inventory into `directory` (new or without YAML files)."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    if directory.exists() and inventory_files(directory):
        raise UserError(f"{directory} already holds inventory files: export into a new or empty directory")
    with database.transaction() as conn:
        current = read_current(conn)
    written = []
    try:
        for relative, document in documents(current).items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            what = relative.removesuffix(".yaml").replace("programmes/", "programmes of ")
            path.write_text(dump_yaml(document, HEADER.format(what=what)), encoding="utf-8")
            written.append(path)
    except OSError as error:
        raise UserError(f"cannot write to {directory}: {error.strerror}") from None
    return ExportResult(directory=directory, files=written, programmes=len(current.programmes))
