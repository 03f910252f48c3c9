"""Read-only inventory queries for the CLI and scripts: programmes, ministries, cluster usage.

Plain SQL over SQLAlchemy Core on purpose: `programme list` must answer in well under
half a second, and importing the ORM models (SQLModel, pydantic) alone costs more.
A test checks every column named here against the models.
"""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from dcops.access import Actor, Owned, as_actor, authorize
from dcops.db import iso_utc
from dcops.errors import NotFound, UserError
from dcops.inventory.capacity import ResourceUsage
from dcops.vocabulary import PROGRAMME_STATUSES

# The keys of `programme list --output json`, in order; part of the documented interface.
PROGRAMME_LIST_KEYS = (
    "slug",
    "name",
    "ministry",
    "tier",
    "sla_target_percent",
    "status",
    "classification",
    "environment",
    "personal_data",
    "owner_contact",
    "security_contact",
    "review_date",
    "updated_at",
)

_PROGRAMME_SELECT = """
SELECT p.slug, p.name, m.code AS ministry, p.tier, t.sla_target_percent, p.status,
       p.classification, p.environment, p.personal_data, p.owner_contact,
       p.security_contact, p.review_date, p.updated_at
FROM programme p
JOIN ministry m ON m.id = p.ministry_id
JOIN sla_tier t ON t.tier = p.tier
"""


def _programme_dict(row) -> dict:
    record = dict(zip(PROGRAMME_LIST_KEYS, row))
    record["personal_data"] = bool(record["personal_data"])
    review = record["review_date"]
    record["review_date"] = review if review is None or isinstance(review, str) else review.isoformat()
    record["updated_at"] = iso_utc(record["updated_at"])
    return record


def list_programmes(
    conn: Connection,
    *,
    ministry: str | None = None,
    status: str | None = None,
    tier: int | None = None,
    include_retired: bool = True,
    actor: Actor | str | None = None,
) -> list[dict]:
    """The programmes the actor may read, as plain dicts (keys: PROGRAMME_LIST_KEYS), ordered by slug, filtered."""
    if status is not None and status not in PROGRAMME_STATUSES:
        raise UserError(f"unknown status {status!r}; one of: {', '.join(PROGRAMME_STATUSES)}")
    if tier is not None and tier not in (1, 2, 3):
        raise UserError(f"tier must be 1, 2 or 3, not {tier}")
    clauses, params = [], {}
    if ministry is not None:
        require(conn, "ministry", ministry)
        clauses.append("m.code = :ministry")
        params["ministry"] = ministry
    if status is not None:
        clauses.append("p.status = :status")
        params["status"] = status
    elif not include_retired:
        clauses.append("p.status <> 'retired'")
    if tier is not None:
        clauses.append("p.tier = :tier")
        params["tier"] = tier
    scope = as_actor(actor).ministries("programme.read")
    if scope is not None:  # the scope is in the query: a ministry's list never holds another's rows
        clauses.append("m.code IN :scope")
        params["scope"] = sorted(scope) or [""]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = text(f"{_PROGRAMME_SELECT} {where} ORDER BY p.slug")
    if scope is not None:
        query = query.bindparams(bindparam("scope", expanding=True))
    rows = conn.execute(query, params)
    return [_programme_dict(row) for row in rows]


def show_programme(conn: Connection, slug: str, *, actor: Actor | str | None = None) -> dict:
    """One programme with everything about it: recovery, dependencies, endpoints, allocations, hosts.

    `depends_on` holds the hosted programmes it needs (as it always has); `dependencies` each
    thing it needs, programme or external component, as {slug, name, kind: programme|external,
    run_by (external: third-party|data-centre; null for a programme)}. `excludes_external`:
    whether third-party dependency time is left out of its SLA, and `excludes_external_from`
    who says so (programme: its own word; tier: its tier's). A programme the actor may not
    read is NotFound, worded as a missing one.
    """
    row = conn.execute(text(f"{_PROGRAMME_SELECT} WHERE p.slug = :slug"), {"slug": slug}).first()
    if row is None:
        raise NotFound(f"no programme {slug!r} (see `dcops programme list`)")
    record = _programme_dict(row)
    authorize(as_actor(actor), "programme.read", Owned("programme", repr(slug), record["ministry"]))
    extra = conn.execute(
        text(
            "SELECT p.id, p.description, m.name, p.rto_minutes, p.rpo_minutes, p.backup_tier, p.created_at, p.plan_id, "
            "p.short_name, p.excludes_external, t.excludes_external "
            "FROM programme p JOIN ministry m ON m.id = p.ministry_id JOIN sla_tier t ON t.tier = p.tier "
            "WHERE p.slug = :slug"
        ),
        {"slug": slug},
    ).one()
    programme_id = extra[0]
    record.update(
        description=extra[1],
        ministry_name=extra[2],
        recovery={"rto_minutes": extra[3], "rpo_minutes": extra[4], "backup_tier": extra[5]},
        created_at=iso_utc(extra[6]),
        plan=extra[7],
        short_name=extra[8],
        excludes_external=bool(extra[9] if extra[9] is not None else extra[10]),
        excludes_external_from="programme" if extra[9] is not None else "tier",
    )
    params = {"id": programme_id}
    record["depends_on"] = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT d.slug FROM programme_dependency x JOIN programme d ON d.id = x.depends_on_id "
                "WHERE x.programme_id = :id ORDER BY d.slug"
            ),
            params,
        )
    ]
    dependencies = [
        {"slug": r[0], "name": r[1], "kind": "programme", "run_by": None}
        for r in conn.execute(
            text("SELECT d.slug, d.name FROM programme_dependency x JOIN programme d ON d.id = x.depends_on_id "
                 "WHERE x.programme_id = :id"),
            params,
        )
    ]
    dependencies += [
        {"slug": r[0], "name": r[1], "kind": "external", "run_by": r[2]}
        for r in conn.execute(
            text("SELECT c.slug, c.name, c.run_by FROM programme_external_dependency x "
                 "JOIN external_component c ON c.id = x.component_id WHERE x.programme_id = :id"),
            params,
        )
    ]
    record["dependencies"] = sorted(dependencies, key=lambda d: d["slug"])
    record["depended_on_by"] = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT p.slug FROM programme_dependency x JOIN programme p ON p.id = x.programme_id "
                "WHERE x.depends_on_id = :id ORDER BY p.slug"
            ),
            params,
        )
    ]
    record["endpoints"] = [
        {"name": r[0], "kind": r[1], "target": r[2]}
        for r in conn.execute(
            text("SELECT name, kind, target FROM endpoint WHERE programme_id = :id ORDER BY name"), params
        )
    ]
    allocations: dict[str, dict] = {}
    for cluster, resource, amount in conn.execute(
        text(
            "SELECT c.name, a.resource, a.amount FROM allocation a JOIN cluster c ON c.id = a.cluster_id "
            "WHERE a.programme_id = :id ORDER BY c.name, a.resource"
        ),
        params,
    ):
        allocations.setdefault(cluster, {"cluster": cluster})[resource] = amount
    record["allocations"] = list(allocations.values())
    record["hosts"] = [
        {"name": r[0], "address": r[1], "cluster": r[2], "role": r[3]}
        for r in conn.execute(
            text(
                "SELECT h.name, h.address, c.name, h.role FROM host h JOIN cluster c ON c.id = h.cluster_id "
                "WHERE h.programme_id = :id ORDER BY h.name"
            ),
            params,
        )
    ]
    return record


ENDPOINT_KEYS = ("name", "kind", "target", "expect_status", "body_contains", "timeout_seconds", "interval_seconds")


def list_endpoints(conn: Connection, slug: str) -> list[dict]:
    """A programme's endpoints (its checks), by name, with every probe setting."""
    require(conn, "programme", slug)
    rows = conn.execute(
        text(f"SELECT {', '.join('e.' + key for key in ENDPOINT_KEYS)} FROM endpoint e "
             "JOIN programme p ON p.id = e.programme_id WHERE p.slug = :slug ORDER BY e.name"),
        {"slug": slug},
    )
    return [dict(zip(ENDPOINT_KEYS, row)) for row in rows]


def list_ministries(conn: Connection) -> list[dict]:
    """Ministries with how many programmes each has (retired ones counted apart)."""
    rows = conn.execute(
        text(
            "SELECT m.code, m.name, m.contact, "
            "SUM(CASE WHEN p.id IS NOT NULL AND p.status <> 'retired' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN p.status = 'retired' THEN 1 ELSE 0 END) "
            "FROM ministry m LEFT JOIN programme p ON p.ministry_id = m.id "
            "GROUP BY m.id, m.code, m.name, m.contact ORDER BY m.code"
        )
    )
    return [
        {"code": r[0], "name": r[1], "contact": r[2], "programmes": int(r[3] or 0), "retired": int(r[4] or 0)}
        for r in rows
    ]


def require(conn: Connection, kind: str, key: str) -> None:
    """NotFound, pointing at the listing, unless a ministry (code), programme (slug) or site (code) exists."""
    table, column, listing = {"ministry": ("ministry", "code", "ministry list"),
                              "programme": ("programme", "slug", "programme list"),
                              "site": ("site", "code", "cluster list")}[kind]
    if conn.execute(text(f"SELECT 1 FROM {table} WHERE {column} = :key"), {"key": key}).first() is None:
        raise NotFound(f"no {kind} {key!r} (see `dcops {listing}`)")


def cluster_usage(conn: Connection, *, site: str | None = None) -> list[ResourceUsage]:
    """Every cluster resource with its capacity and the sum of its allocations."""
    params = {}
    where = ""
    if site is not None:
        require(conn, "site", site)
        where = "WHERE s.code = :site"
        params["site"] = site
    rows = conn.execute(
        text(
            "SELECT c.name, s.code, k.resource, k.total, k.reserved, k.allocation_ratio, "
            "COALESCE((SELECT SUM(a.amount) FROM allocation a "
            "          WHERE a.cluster_id = k.cluster_id AND a.resource = k.resource), 0) "
            "FROM cluster_capacity k JOIN cluster c ON c.id = k.cluster_id JOIN site s ON s.id = c.site_id "
            f"{where} ORDER BY c.name, k.resource"
        ),
        params,
    )
    return [
        ResourceUsage(
            cluster=r[0], site=r[1], resource=r[2], total=r[3], reserved=r[4],
            allocation_ratio=r[5], allocated=int(r[6]),
        )
        for r in rows
    ]



def list_sites(conn: Connection) -> list[dict]:
    """The data centre's sites, by code."""
    return [{"code": r[0], "name": r[1], "role": r[2]}
            for r in conn.execute(text("SELECT code, name, role FROM site ORDER BY code"))]
