"""Read-only catalogue queries: offerings with their plans, and the data of the published site."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.access import Actor, as_actor, authorize
from dcops.errors import NotFound
from dcops.vocabulary import RESOURCES


def _json(value):
    # SQLite hands JSON columns back as text through a plain text() query.
    return json.loads(value) if isinstance(value, str) else value


def plan_dict(row) -> dict:
    """A plan row as plain data, with its per-instance resources and the totals it reserves."""
    resources = {r: row.__getattribute__(r) for r in RESOURCES}
    return {
        "id": row.id,
        "offering_id": row.offering_id,
        "name": row.name,
        "description": row.description,
        "display_name": row.display_name or row.name,
        "bullets": _json(row.bullets),
        "monthly_cost_lak": row.monthly_cost_lak,
        "resources": {**resources, "instances": row.instances},
        "totals": {r: amount * row.instances for r, amount in resources.items()},
        "sla_tiers": _json(row.sla_tiers),
    }


def list_offerings(conn: Connection, *, actor: Actor | str | None = None) -> list[dict]:
    """Every offering, ordered by id, each with its plans ordered by monthly cost."""
    authorize(as_actor(actor), "catalogue.read")
    plans: dict[str, list] = {}
    for row in conn.execute(text("SELECT * FROM plan ORDER BY monthly_cost_lak, id")):
        plans.setdefault(row.offering_id, []).append(plan_dict(row))
    return [
        {
            "id": row.id,
            "name": row.name,
            "description": row.description,
            "display_name": row.display_name or row.name,
            "long_description": row.long_description,
            "tags": _json(row.tags),
            "checks": _json(row.checks),
            "public_domain": row.public_domain or None,
            "plans": plans.get(row.id, []),
        }
        for row in conn.execute(text("SELECT * FROM offering ORDER BY id"))
    ]


def show_offering(conn: Connection, offering_id: str, *, actor: Actor | str | None = None) -> dict:
    """One offering with its plans."""
    for offering in list_offerings(conn, actor=actor):
        if offering["id"] == offering_id:
            return offering
    raise NotFound(f"no offering {offering_id!r} in the catalogue (see `dcops catalogue list`)")


def site_data(conn: Connection) -> dict:
    """Everything the published catalogue site shows: tiers (with whether each leaves third parties'
    outages out of its SLA), offerings, the data centre's sites, ministries and their programmes."""
    tiers = [
        {"tier": r[0], "name": r[1], "sla_target_percent": r[2], "excludes_external": bool(r[3])}
        for r in conn.execute(text("SELECT tier, name, sla_target_percent, excludes_external FROM sla_tier "
                                   "ORDER BY tier"))
    ]
    # The sites as the public site explains their codes; primary sites first.
    sites = [{"code": r[0], "name": r[1], "role": r[2], "location": r[3] or ""}
             for r in conn.execute(text("SELECT code, name, role, location FROM site "
                                        "ORDER BY CASE role WHEN 'primary' THEN 0 ELSE 1 END, code"))]
    ministries: dict[str, dict] = {}
    for r in conn.execute(text("SELECT code, name, contact FROM ministry ORDER BY code")):
        ministries[r[0]] = {"code": r[0], "name": r[1], "contact": r[2], "programmes": []}
    # The site is public: a secret programme's existence is itself secret, and no
    # programme's classification is published.
    for r in conn.execute(
        text(
            "SELECT m.code, p.slug, p.name, p.tier, p.status, p.environment "
            "FROM programme p JOIN ministry m ON m.id = p.ministry_id "
            "WHERE p.status <> 'retired' AND p.classification <> 'secret' ORDER BY m.code, p.slug"
        )
    ):
        ministries[r[0]]["programmes"].append(
            {"slug": r[1], "name": r[2], "tier": r[3], "status": r[4], "environment": r[5]}
        )
    return {"tiers": tiers, "offerings": list_offerings(conn), "sites": sites,
            "ministries": list(ministries.values())}
