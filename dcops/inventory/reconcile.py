"""Reconciling desired inventory state with the database: read, check, plan, apply in one transaction."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from dcops import audit
from dcops.access import Actor, as_actor, authorize
from dcops.db import Database, utcnow
from dcops.errors import ValidationError
from dcops.inventory.capacity import capacity, fits
from dcops.health.store import forget_check
from dcops.inventory.documents import Desired
from dcops.inventory.lifecycle import service_span_values
from dcops.lifecycle import move_programme
from dcops.models import (
    Allocation,
    Cluster,
    ClusterCapacity,
    Endpoint,
    Host,
    HostingRequest,
    Ministry,
    Offering,
    Plan as PlanRow,
    Programme,
    ProgrammeDependency,
    Site,
    SlaTier,
    external_component_table,
    external_outage_table,
    programme_external_dependency_table,
)

T_TIER = SlaTier.__table__
T_MINISTRY = Ministry.__table__
T_SITE = Site.__table__
T_CLUSTER = Cluster.__table__
T_CAPACITY = ClusterCapacity.__table__
T_PROGRAMME = Programme.__table__
T_DEPENDENCY = ProgrammeDependency.__table__
T_ENDPOINT = Endpoint.__table__
T_ALLOCATION = Allocation.__table__
T_HOST = Host.__table__
T_REQUEST = HostingRequest.__table__
T_OFFERING = Offering.__table__
T_PLAN = PlanRow.__table__
T_COMPONENT = external_component_table
T_COMPONENT_DEPENDENCY = programme_external_dependency_table
T_OUTAGE = external_outage_table
TIER_FIELDS = ("name", "sla_target_percent", "excludes_external")
COMPONENT_FIELDS = ("name", "description", "run_by", "contact")
# An inventory plan's change, as the audit log's action names it (a component is removed, not retired).
AUDIT_ACTIONS = {**audit.INVENTORY_ACTIONS, "remove": "removed"}
PLAN_ACTIONS = ("create", "update", "retire", "remove", "unchanged")
OFFERING_FIELDS = ("name", "description", "display_name", "long_description", "tags", "checks",
                   "public_domain")
PLAN_FIELDS = ("offering_id", "name", "description", "display_name", "bullets", "monthly_cost_lak",
               "vcpu", "ram_gib", "storage_gib", "instances", "sla_tiers")

PROGRAMME_FIELDS = (
    "name",
    "short_name",
    "ministry",
    "description",
    "tier",
    "status",
    "classification",
    "environment",
    "owner_contact",
    "security_contact",
    "personal_data",
    "plan_id",
    "rto_minutes",
    "rpo_minutes",
    "backup_tier",
    "review_date",
    "excludes_external",
)
NESTED_FIELDS = ("depends_on", "endpoints", "allocations", "hosts")
ENDPOINT_FIELDS = ("kind", "target", "expect_status", "body_contains", "timeout_seconds", "interval_seconds")


@dataclass
class Current:
    """The database's inventory in the same plain shape as `Desired`, plus row ids."""

    sla_tiers: dict[int, dict] = field(default_factory=dict)
    ministries: dict[str, dict] = field(default_factory=dict)
    sites: dict[str, dict] = field(default_factory=dict)
    clusters: dict[str, dict] = field(default_factory=dict)
    programmes: dict[str, dict] = field(default_factory=dict)
    offerings: dict[str, dict] = field(default_factory=dict)
    plans: dict[str, dict] = field(default_factory=dict)
    external_components: dict[str, dict] = field(default_factory=dict)
    ids: dict[tuple, int] = field(default_factory=dict)
    host_owner: dict[str, str] = field(default_factory=dict)
    outage_counts: dict[str, int] = field(default_factory=dict)  # per component, its recorded outages


def read_current(conn: Connection) -> Current:
    """Read the whole inventory from the database into plain state (a few queries)."""
    current = Current()
    for row in conn.execute(select(T_TIER)):
        current.sla_tiers[row.tier] = {name: getattr(row, name) for name in TIER_FIELDS}
    ministry_code = {}
    for row in conn.execute(select(T_MINISTRY)):
        current.ministries[row.code] = {"name": row.name, "contact": row.contact}
        current.ids[("ministry", row.code)] = row.id
        ministry_code[row.id] = row.code
    site_code = {}
    for row in conn.execute(select(T_SITE)):
        current.sites[row.code] = {"name": row.name, "role": row.role, "location": row.location}
        current.ids[("site", row.code)] = row.id
        site_code[row.id] = row.code
    cluster_name = {}
    for row in conn.execute(select(T_CLUSTER)):
        current.clusters[row.name] = {"site": site_code[row.site_id], "description": row.description, "capacity": {}}
        current.ids[("cluster", row.name)] = row.id
        cluster_name[row.id] = row.name
    for row in conn.execute(select(T_CAPACITY).order_by(T_CAPACITY.c.resource)):
        current.clusters[cluster_name[row.cluster_id]]["capacity"][row.resource] = {
            "total": row.total,
            "reserved": row.reserved,
            "allocation_ratio": row.allocation_ratio,
            "largest_host": row.largest_host,
        }
    component_slug = {}
    for row in conn.execute(select(T_COMPONENT)):
        current.external_components[row.slug] = {name: getattr(row, name) for name in COMPONENT_FIELDS}
        current.ids[("external_component", row.slug)] = row.id
        component_slug[row.id] = row.slug
    for component_id, count in conn.execute(select(T_OUTAGE.c.component_id, func.count())
                                            .group_by(T_OUTAGE.c.component_id)):
        current.outage_counts[component_slug[component_id]] = count
    slug_of = {}
    for row in conn.execute(select(T_PROGRAMME)):
        state = {name: getattr(row, name) for name in PROGRAMME_FIELDS if name != "ministry"}
        state["ministry"] = ministry_code[row.ministry_id]
        state.update(depends_on=[], endpoints={}, allocations={}, hosts={})
        current.programmes[row.slug] = state
        current.ids[("programme", row.slug)] = row.id
        slug_of[row.id] = row.slug
    for row in conn.execute(select(T_DEPENDENCY)):
        current.programmes[slug_of[row.programme_id]]["depends_on"].append(slug_of[row.depends_on_id])
    for row in conn.execute(select(T_COMPONENT_DEPENDENCY)):
        current.programmes[slug_of[row.programme_id]]["depends_on"].append(component_slug[row.component_id])
    for state in current.programmes.values():
        state["depends_on"].sort()
    for row in conn.execute(select(T_ENDPOINT).order_by(T_ENDPOINT.c.id)):
        slug = slug_of[row.programme_id]
        current.programmes[slug]["endpoints"][row.name] = {name: getattr(row, name) for name in ENDPOINT_FIELDS}
        current.ids[("endpoint", slug, row.name)] = row.id
    for row in conn.execute(select(T_ALLOCATION).order_by(T_ALLOCATION.c.cluster_id, T_ALLOCATION.c.resource)):
        allocations = current.programmes[slug_of[row.programme_id]]["allocations"]
        allocations.setdefault(cluster_name[row.cluster_id], {})[row.resource] = row.amount
    for row in conn.execute(select(T_HOST).order_by(T_HOST.c.id)):
        slug = slug_of[row.programme_id]
        current.programmes[slug]["hosts"][row.name] = {
            "address": row.address,
            "cluster": cluster_name[row.cluster_id],
            "role": row.role,
        }
        current.ids[("host", row.name)] = row.id
        current.host_owner[row.name] = slug
    for row in conn.execute(select(T_OFFERING)):
        current.offerings[row.id] = {name: getattr(row, name) for name in OFFERING_FIELDS}
    for row in conn.execute(select(T_PLAN)):
        current.plans[row.id] = {name: getattr(row, name) for name in PLAN_FIELDS}
    return current


@dataclass(frozen=True)
class FieldChange:
    """One field of one record: its value before and after."""

    field: str
    old: Any
    new: Any


@dataclass
class Change:
    """What the plan does to one record: create, update, unchanged or retire."""

    kind: str
    key: str
    action: str
    fields: list[FieldChange] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "fields": [{"field": f.field, "old": _jsonable(f.old), "new": _jsonable(f.new)} for f in self.fields],
        }


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@dataclass
class Plan:
    """Every change a reconcile makes (or would make, on a dry run)."""

    changes: list[Change] = field(default_factory=list)
    applied: bool = False
    # Active programmes the result leaves with no check: nothing will monitor them.
    unmonitored: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    @property
    def has_changes(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)

    def as_dict(self) -> dict:
        return {
            "applied": self.applied,
            "summary": {a: self.count(a) for a in PLAN_ACTIONS},
            "changes": [c.as_dict() for c in self.changes if c.action != "unchanged"],
            "unmonitored": list(self.unmonitored),
        }


def _effective_programmes(desired: Desired, current: Current, retiring: set[str]) -> dict[str, dict]:
    effective = {slug: dict(state) for slug, state in current.programmes.items()}
    for slug, state in desired.programmes.items():
        merged = dict(state)
        if merged["status"] is None:
            merged["status"] = current.programmes.get(slug, {}).get("status", "active")
        effective[slug] = merged
    for slug in retiring:
        effective[slug] = {**effective[slug], "status": "retired", "allocations": {}}
    return effective


def unmonitored(desired: Desired, current: Current, retiring: set[str], *, everywhere: bool = False) -> list[str]:
    """Slugs of the active programmes with no endpoint once `desired` is applied: those in
    `desired`, or (everywhere) every programme of the database too."""
    effective = _effective_programmes(desired, current, retiring)
    slugs = effective if everywhere else desired.programmes
    return sorted(slug for slug in slugs if effective[slug]["status"] == "active" and not effective[slug]["endpoints"])


def check(desired: Desired, current: Current, retiring: set[str], removing: set[str] = frozenset()) -> list[str]:
    """Every cross-reference and capacity problem of `desired` against `current`.

    `removing`: the external components a prune removes (see `components_to_remove`).
    """
    problems: list[str] = []
    unchecked = desired.unchecked  # records with schema problems, told already: taken as present
    ministries = set(current.ministries) | set(desired.ministries) | {k for kind, k in unchecked if kind == "ministry"}
    plans = set(current.plans) | set(desired.plans) | {k for kind, k in unchecked if kind == "plan"}
    clusters = {**current.clusters, **desired.clusters}
    known_clusters = set(clusters) | {k for kind, k in unchecked if kind == "cluster"}
    effective = _effective_programmes(desired, current, retiring)
    known_programmes = set(effective) | {k for kind, k in unchecked if kind == "programme"}
    known_components = ((set(current.external_components) - removing) | set(desired.external_components)
                        | {k for kind, k in unchecked if kind == "external_component"})
    dependable = known_programmes | known_components | removing  # a component being removed: told apart below

    for slug, state in desired.programmes.items():
        at = _at(desired, ("programme", slug))
        status = effective[slug]["status"]
        if state["ministry"] not in ministries:
            problems.append(f"{at}programme {slug}: unknown ministry {state['ministry']!r}")
        if state["plan_id"] is not None and state["plan_id"] not in plans:
            problems.append(f"{at}programme {slug}: unknown catalogue plan {state['plan_id']!r}")
        for dependency in state["depends_on"]:
            if dependency == slug:
                problems.append(f"{at}programme {slug}: depends on itself")
            elif dependency not in dependable:
                problems.append(f"{at}programme {slug}: depends on unknown programme {dependency!r} "
                                "(no programme or external component has that slug)")
        if status == "retired" and state["allocations"]:
            problems.append(f"{at}programme {slug}: a retired programme holds no allocations")
        for cluster in state["allocations"]:
            if cluster not in known_clusters:
                problems.append(f"{at}programme {slug}: allocation on unknown cluster {cluster!r}")
        for host, host_state in state["hosts"].items():
            if host_state["cluster"] not in known_clusters:
                problems.append(f"{at}host {host}: unknown cluster {host_state['cluster']!r}")
            owner = current.host_owner.get(host)
            if owner is not None and owner != slug and owner not in desired.programmes:
                problems.append(f"{at}host {host}: already belongs to programme {owner}")

    for plan_id, plan in desired.plans.items():
        old = current.plans.get(plan_id)
        if old is not None and old["offering_id"] != plan["offering_id"]:
            problems.append(
                f"{_at(desired, ('plan', plan_id))}plan {plan_id} belongs to offering {old['offering_id']}; "
                "a plan cannot move to another offering (give it a new id)"
            )

    problems.extend(_component_problems(desired, current, effective, known_programmes, known_components, removing))
    problems.extend(_dependency_cycles(desired, effective))
    problems.extend(_capacity_problems(desired, clusters, effective))
    return problems


def _component_problems(desired: Desired, current: Current, effective: dict[str, dict], known_programmes: set[str],
                        known_components: set[str], removing: set[str]) -> list[str]:
    """One namespace for programmes and components; no component removed from under a dependant or its outages."""
    problems = []
    for slug in sorted(known_programmes & known_components):
        if ("external_component", slug) in desired.origins or slug not in desired.programmes:
            at = _at(desired, ("external_component", slug))
        else:
            at = _at(desired, ("programme", slug))
        problems.append(f"{at}external component {slug}: a programme has the same slug; depends_on names a "
                        "programme or a component, so each slug may name only one (rename the component)")
    for slug in sorted(removing):
        dependants = sorted(p for p, state in effective.items() if slug in state["depends_on"])
        if dependants:
            problems.append(f"external component {slug} is no longer in the files, but {', '.join(dependants)} "
                            f"{'depends' if len(dependants) == 1 else 'depend'} on it: drop it from their depends_on "
                            "first")
        if current.outage_counts.get(slug):
            count = current.outage_counts[slug]
            problems.append(f"external component {slug} is no longer in the files, but has {count} recorded "
                            f"outage{'s' if count != 1 else ''}, which are the SLA record: keep it in the files "
                            "(a component no programme depends on counts for nothing)")
    return problems


def components_to_remove(desired: Desired, current: Current) -> set[str]:
    """External components in the database but not in the files (for --prune); removed, not retired."""
    unchecked = {key for kind, key in desired.unchecked if kind == "external_component"}
    return set(current.external_components) - set(desired.external_components) - unchecked


def _at(desired: Desired, key: tuple) -> str:
    """'file:line: ' where the record was defined, or '' for one from the command line."""
    origin = desired.origins.get(key)
    return f"{origin}: " if origin else ""


def _dependency_cycles(desired: Desired, effective: dict[str, dict]) -> list[str]:
    graph = {slug: [d for d in state["depends_on"] if d in effective and d != slug] for slug, state in effective.items()}
    colour: dict[str, int] = {}
    problems = []
    for start in sorted(desired.programmes):
        if colour.get(start):
            continue
        stack = [(start, iter(graph[start]))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                problems.append(f"{_at(desired, ('programme', start))}dependency cycle: {' -> '.join(cycle)}")
            elif not colour.get(child):
                colour[child] = 1
                stack.append((child, iter(graph[child])))
                path.append(child)
    return problems


def _capacity_problems(desired: Desired, clusters: dict[str, dict], effective: dict[str, dict]) -> list[str]:
    allocated: dict[tuple[str, str], int] = defaultdict(int)
    for state in effective.values():
        if state["status"] == "retired":
            continue
        for cluster, amounts in state["allocations"].items():
            for resource, amount in amounts.items():
                allocated[(cluster, resource)] += amount
    problems = []
    for (cluster, resource), amount in sorted(allocated.items()):
        if cluster not in clusters:
            continue  # reported as an unknown cluster above
        row = clusters[cluster]["capacity"].get(resource)
        if row is None:
            # Also catches a capacity row removed from a cluster that programmes
            # outside the loaded files still use.
            holders = sorted(s for s, st in effective.items()
                             if st["status"] != "retired" and st["allocations"].get(cluster, {}).get(resource))
            at = _at(desired, ("cluster", cluster)) or _at(desired, ("programme", holders[0]))
            problems.append(
                f"{at}cluster {cluster} offers no {resource}, but {', '.join(holders)} "
                f"{'holds' if len(holders) == 1 else 'hold'} {amount} of it"
            )
            continue
        if not fits(row["total"], row["reserved"], row["allocation_ratio"], amount):
            limit = capacity(row["total"], row["reserved"], row["allocation_ratio"])
            problems.append(
                f"{_at(desired, ('cluster', cluster))}cluster {cluster}: {resource} allocations total {amount}, "
                f"more than its capacity {limit:g} (short by {amount - limit:g})"
            )
    return problems


def _diff(old: dict, new: dict, names) -> list[FieldChange]:
    return [FieldChange(name, old.get(name), new[name]) for name in names if name in new and old.get(name) != new[name]]


def make_plan(desired: Desired, current: Current, retiring: set[str], removing: set[str] = frozenset()) -> Plan:
    """The changes that turn `current` into `desired` (plus retiring programmes and removing components)."""
    plan = Plan()

    def add(kind, key, old, new, names):
        if old is None:
            plan.changes.append(Change(kind, str(key), "create", [FieldChange(n, None, new[n]) for n in names if n in new]))
            return
        fields = _diff(old, new, names)
        plan.changes.append(Change(kind, str(key), "update" if fields else "unchanged", fields))

    for tier, state in sorted(desired.sla_tiers.items()):
        add("sla_tier", tier, current.sla_tiers.get(tier), state, TIER_FIELDS)
    for code, state in sorted(desired.ministries.items()):
        add("ministry", code, current.ministries.get(code), state, ("name", "contact"))
    for code, state in sorted(desired.sites.items()):
        add("site", code, current.sites.get(code), state, ("name", "role", "location"))
    for name, state in sorted(desired.clusters.items()):
        add("cluster", name, current.clusters.get(name), state, ("site", "description", "capacity"))
    for offering_id, state in sorted(desired.offerings.items()):
        add("offering", offering_id, current.offerings.get(offering_id), state, OFFERING_FIELDS)
    for plan_id, state in sorted(desired.plans.items()):
        add("plan", plan_id, current.plans.get(plan_id), state, PLAN_FIELDS)
    for slug, state in sorted(desired.external_components.items()):
        add("external_component", slug, current.external_components.get(slug), state, COMPONENT_FIELDS)
    for slug, state in sorted(desired.programmes.items()):
        old = current.programmes.get(slug)
        wanted = dict(state)
        if wanted["status"] is None:
            wanted["status"] = old["status"] if old else "active"
        add("programme", slug, old, wanted, PROGRAMME_FIELDS + NESTED_FIELDS)
    for slug in sorted(retiring):
        plan.changes.append(
            Change("programme", slug, "retire", [FieldChange("status", current.programmes[slug]["status"], "retired")])
        )
    for slug in sorted(removing):
        old = current.external_components[slug]
        plan.changes.append(Change("external_component", slug, "remove",
                                   [FieldChange(name, old[name], None) for name in COMPONENT_FIELDS]))
    return plan


def programmes_to_retire(desired: Desired, current: Current, request_managed: set[str]) -> set[str]:
    """Programmes in the database but not in the files, not yet retired (for --prune).

    Programmes that a hosting request created are left to the request's lifecycle
    (decommissioning), so a prune never retires what an approval just placed.
    """
    return {
        slug
        for slug, state in current.programmes.items()
        if slug not in desired.programmes and state["status"] != "retired" and slug not in request_managed
    }


def apply(conn: Connection, plan: Plan, desired: Desired, current: Current) -> None:
    """Write the plan's changes; the caller's transaction makes them all-or-nothing."""
    now = utcnow()
    changes = {(c.kind, c.key): c for c in plan.changes if c.action != "unchanged"}
    ids = dict(current.ids)

    def changed(kind, key):
        return (kind, str(key)) in changes

    for tier, state in desired.sla_tiers.items():
        if not changed("sla_tier", tier):
            continue
        if tier in current.sla_tiers:
            conn.execute(update(T_TIER).where(T_TIER.c.tier == tier).values(**state))
        else:
            conn.execute(insert(T_TIER).values(tier=tier, **state))

    _upsert_by_key(conn, T_MINISTRY, "code", "ministry", desired.ministries, current.ministries, ids, changed)
    _upsert_by_key(conn, T_SITE, "code", "site", desired.sites, current.sites, ids, changed)

    cluster_rows = {
        name: {"site_id": ids[("site", state["site"])], "description": state["description"]}
        for name, state in desired.clusters.items()
    }
    _upsert_by_key(conn, T_CLUSTER, "name", "cluster", cluster_rows, current.clusters, ids, changed)
    for name, state in desired.clusters.items():
        if not changed("cluster", name):
            continue
        cluster_id = ids[("cluster", name)]
        old_capacity = current.clusters.get(name, {}).get("capacity", {})
        for resource in old_capacity.keys() - state["capacity"].keys():
            conn.execute(
                delete(T_CAPACITY).where(T_CAPACITY.c.cluster_id == cluster_id, T_CAPACITY.c.resource == resource)
            )
        for resource, row in state["capacity"].items():
            if resource not in old_capacity:
                conn.execute(insert(T_CAPACITY).values(cluster_id=cluster_id, resource=resource, **row))
            elif old_capacity[resource] != row:
                conn.execute(
                    update(T_CAPACITY)
                    .where(T_CAPACITY.c.cluster_id == cluster_id, T_CAPACITY.c.resource == resource)
                    .values(**row)
                )

    for kind, table, rows, old_rows in (("offering", T_OFFERING, desired.offerings, current.offerings),
                                        ("plan", T_PLAN, desired.plans, current.plans)):
        for key, row in rows.items():
            if not changed(kind, key):
                continue
            if key in old_rows:
                conn.execute(update(table).where(table.c.id == key).values(**row))
            else:
                conn.execute(insert(table).values(id=key, **row))

    _upsert_by_key(conn, T_COMPONENT, "slug", "external_component", desired.external_components,
                   current.external_components, ids, changed)
    _apply_programmes(conn, plan, desired, current, ids, now)
    # After the programmes: their dependency rows on a removed component went with their depends_on.
    for change in plan.changes:
        if change.kind == "external_component" and change.action == "remove":
            conn.execute(delete(T_COMPONENT).where(T_COMPONENT.c.id == ids[("external_component", change.key)]))


def _upsert_by_key(conn, table, key_column, kind, desired_rows, current_rows, ids, changed) -> None:
    new_rows = []
    for key, row in desired_rows.items():
        if not changed(kind, key):
            continue
        if key in current_rows:
            conn.execute(update(table).where(table.c.id == ids[(kind, key)]).values(**row))
        else:
            new_rows.append({key_column: key, **row})
    if new_rows:
        conn.execute(insert(table), new_rows)
        for row in conn.execute(select(table.c.id, table.c[key_column])):
            ids[(kind, row[1])] = row[0]


def _programme_row(state: dict, ids: dict) -> dict:
    row = {name: state[name] for name in PROGRAMME_FIELDS if name != "ministry"}
    row["ministry_id"] = ids[("ministry", state["ministry"])]
    return row


def _declare_status(conn, programme_id: int, status: str, now) -> None:
    """The status the inventory declares, moved through the lifecycle as an inventory move:
    any status is allowed (the operator's truth), and the load's own entry audits it."""
    move_programme(conn, programme_id, status, actor="inventory", now=now, inventory=True)


def _apply_programmes(conn, plan: Plan, desired: Desired, current: Current, ids: dict, now) -> None:
    touched = [c for c in plan.changes if c.kind == "programme" and c.action != "unchanged"]
    if not touched:
        return
    new_rows = []
    for change in touched:
        slug = change.key
        if change.action == "create":
            state = {**desired.programmes[slug]}
            state["status"] = state["status"] or "active"
            new_rows.append({"slug": slug, **_programme_row(state, ids), "created_at": now,
                             **service_span_values(state["status"], now=now, created=True)})
        elif change.action == "update":
            scalar = {f.field: f.new for f in change.fields if f.field in PROGRAMME_FIELDS}
            if "ministry" in scalar:
                scalar["ministry_id"] = ids[("ministry", scalar.pop("ministry"))]
            scalar["updated_at"] = now
            status = scalar.pop("status", None)
            conn.execute(update(T_PROGRAMME).where(T_PROGRAMME.c.id == ids[("programme", slug)]).values(**scalar))
            if status is not None:
                _declare_status(conn, ids[("programme", slug)], status, now)
        elif change.action == "retire":
            _declare_status(conn, ids[("programme", slug)], "retired", now)
    if new_rows:
        conn.execute(insert(T_PROGRAMME), new_rows)
        for row in conn.execute(select(T_PROGRAMME.c.id, T_PROGRAMME.c.slug)):
            ids[("programme", row.slug)] = row.id

    nested = {
        c.key: {f.field for f in c.fields}
        for c in touched
        if c.action == "create" or (c.action == "update" and any(f.field in NESTED_FIELDS for f in c.fields))
    }
    dependency_rows, component_rows, endpoint_rows, allocation_rows = [], [], [], []
    host_deletes, host_updates, host_inserts = [], [], []
    for slug, fields in nested.items():
        state = desired.programmes[slug]
        old = current.programmes.get(slug, {"depends_on": [], "endpoints": {}, "allocations": {}, "hosts": {}})
        programme_id = ids[("programme", slug)]
        if "depends_on" in fields:
            conn.execute(delete(T_DEPENDENCY).where(T_DEPENDENCY.c.programme_id == programme_id))
            conn.execute(delete(T_COMPONENT_DEPENDENCY).where(T_COMPONENT_DEPENDENCY.c.programme_id == programme_id))
            # One namespace (check() refuses a slug that names both): a programme, else a component.
            dependency_rows += [
                {"programme_id": programme_id, "depends_on_id": ids[("programme", d)]}
                for d in state["depends_on"] if ("programme", d) in ids
            ]
            component_rows += [
                {"programme_id": programme_id, "component_id": ids[("external_component", d)]}
                for d in state["depends_on"] if ("programme", d) not in ids
            ]
        if "endpoints" in fields:
            # Keyed by name and updated in place, so an endpoint keeps its id (and its history).
            for name in old["endpoints"].keys() - state["endpoints"].keys():
                forget_check(conn, ids[("endpoint", slug, name)])
                conn.execute(delete(T_ENDPOINT).where(T_ENDPOINT.c.id == ids[("endpoint", slug, name)]))
            for name, endpoint in state["endpoints"].items():
                if name not in old["endpoints"]:
                    endpoint_rows.append({"programme_id": programme_id, "name": name, **endpoint})
                elif old["endpoints"][name] != endpoint:
                    conn.execute(
                        update(T_ENDPOINT).where(T_ENDPOINT.c.id == ids[("endpoint", slug, name)]).values(**endpoint)
                    )
        if "allocations" in fields:
            conn.execute(delete(T_ALLOCATION).where(T_ALLOCATION.c.programme_id == programme_id))
            allocation_rows += [
                {"programme_id": programme_id, "cluster_id": ids[("cluster", cluster)], "resource": r, "amount": amount}
                for cluster, amounts in state["allocations"].items()
                for r, amount in amounts.items()
            ]
        if "hosts" in fields:
            host_deletes += [name for name in old["hosts"].keys() - state["hosts"].keys()]
            for name, host in state["hosts"].items():
                row = {"programme_id": programme_id, "cluster_id": ids[("cluster", host["cluster"])],
                       "address": host["address"], "role": host["role"]}
                if ("host", name) in ids:
                    host_updates.append((name, row))
                else:
                    host_inserts.append({"name": name, **row})
    # A host may move between programmes in one load: removals first, then the rest.
    moved = {name for name, _row in host_updates}
    for name in host_deletes:
        if name not in moved:
            conn.execute(delete(T_HOST).where(T_HOST.c.id == ids[("host", name)]))
    for name, row in host_updates:
        conn.execute(update(T_HOST).where(T_HOST.c.id == ids[("host", name)]).values(**row))
    for table, rows in ((T_DEPENDENCY, dependency_rows), (T_COMPONENT_DEPENDENCY, component_rows),
                        (T_ENDPOINT, endpoint_rows),
                        (T_ALLOCATION, allocation_rows), (T_HOST, host_inserts)):
        if rows:
            conn.execute(insert(table), rows)


def cross_check(database: Database, desired: Desired, *, prune: bool = False) -> list[str]:
    """The cross-reference and capacity problems of `desired` against the database; writes nothing."""
    with database.transaction() as conn:
        current = read_current(conn)
        retiring = programmes_to_retire(desired, current, _request_managed(conn)) if prune else set()
        removing = components_to_remove(desired, current) if prune else set()
        return check(desired, current, retiring, removing)


def reconcile(
    database: Database,
    desired: Desired | Callable[[Current], Desired],
    *,
    actor: "Actor | str | None" = None,
    prune: bool = False,
    dry_run: bool = False,
    unmonitored_everywhere: bool = False,
) -> Plan:
    """Check `desired` against the database, plan, and (unless dry_run) apply, all in one transaction.

    `desired` may be a function of the current state (an update of one field), so that
    reading and writing happen under the same lock. Raises ValidationError with every
    problem found; then nothing is written. The plan lists the active programmes left
    without a check: of `desired`, or of the whole database (`unmonitored_everywhere`).
    Every inventory change (load, programme and endpoint commands) comes here: the operator's.
    """
    operator = as_actor(actor)
    authorize(operator, "inventory.write")
    with database.transaction(immediate=True) as conn:
        current = read_current(conn)
        if callable(desired):
            desired = desired(current)
        retiring = programmes_to_retire(desired, current, _request_managed(conn)) if prune else set()
        removing = components_to_remove(desired, current) if prune else set()
        problems = check(desired, current, retiring, removing)
        if problems:
            raise ValidationError(problems)
        plan = make_plan(desired, current, retiring, removing)
        plan.unmonitored = unmonitored(desired, current, retiring, everywhere=unmonitored_everywhere)
        if not dry_run and plan.has_changes:
            apply(conn, plan, desired, current)
            audit.append(conn, audit_events(plan, operator.name))
            plan.applied = True
    return plan


def audit_events(plan: Plan, actor: str) -> list[audit.Event]:
    """One audit event per record the plan changes, with the changed fields before and after."""
    return [
        audit.Event(
            actor=actor,
            action=f"inventory.{change.kind}.{AUDIT_ACTIONS[change.action]}",
            object_type=change.kind,
            object_key=change.key,
            before=None if change.action == "create" else {f.field: f.old for f in change.fields},
            after={f.field: f.new for f in change.fields},
        )
        for change in plan.changes
        if change.action != "unchanged"
    ]


def _request_managed(conn: Connection) -> set[str]:
    """Slugs of programmes that a hosting request created and still drives."""
    rows = conn.execute(
        select(T_PROGRAMME.c.slug)
        .join(T_REQUEST, T_REQUEST.c.programme_id == T_PROGRAMME.c.id)
        .where(T_REQUEST.c.state.not_in(("rejected", "withdrawn", "retired")))
    )
    return {row[0] for row in rows}
