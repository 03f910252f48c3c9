"""The Ansible view of the inventory: groups and host variables, every text value marked unsafe."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from dcops.errors import NotFound


class Unsafe(str):
    """Text Ansible must never template: it came from a ministry's request or an operator's file."""


def unsafe_strings(value: Any) -> Any:
    """The same data with every string wrapped in Unsafe."""
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, dict):
        return {key: unsafe_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsafe_strings(item) for item in value]
    return value


def group_name(kind: str, value: Any) -> str:
    """An Ansible group name: letters, digits and underscores only (dcops names use dashes)."""
    return f"{kind}_{str(value).replace('-', '_')}"


_HOSTS = """
SELECT h.name, h.address, h.role, c.name AS cluster, s.code AS site,
       p.id AS programme_id, p.slug, p.name AS programme_name, p.description, m.code AS ministry,
       m.name AS ministry_name, p.tier, t.sla_target_percent, p.environment, p.classification,
       p.personal_data, p.owner_contact, p.security_contact, p.backup_tier, p.rto_minutes, p.rpo_minutes
FROM host h
JOIN programme p ON p.id = h.programme_id
JOIN ministry m ON m.id = p.ministry_id
JOIN sla_tier t ON t.tier = p.tier
JOIN cluster c ON c.id = h.cluster_id
JOIN site s ON s.id = c.site_id
WHERE p.status <> 'retired'
ORDER BY p.slug, h.name
"""


def build_inventory(conn: Connection, *, programmes: Iterable[str] | None = None) -> dict:
    """The dynamic-inventory document: groups per programme, ministry, cluster, site, tier and
    environment, and `_meta.hostvars` (ansible_host, dcops_host, dcops_programme).

    Strings in dcops_* variables are Unsafe; the encoders below mark them for Ansible.
    """
    wanted = set(programmes) if programmes is not None else None
    endpoints: dict[int, list] = defaultdict(list)
    for row in conn.execute(text("SELECT programme_id, name, kind, target FROM endpoint ORDER BY programme_id, name")):
        endpoints[row[0]].append({"name": row[1], "kind": row[2], "target": row[3]})
    groups: dict[str, list[str]] = defaultdict(list)
    hostvars: dict[str, dict] = {}
    for row in conn.execute(text(_HOSTS)):
        if wanted is not None and row.slug not in wanted:
            continue
        for kind, value in (("programme", row.slug), ("ministry", row.ministry), ("cluster", row.cluster),
                            ("site", row.site), ("tier", row.tier), ("env", row.environment)):
            groups[group_name(kind, value)].append(row.name)
        hostvars[row.name] = {
            "ansible_host": row.address,
            "dcops_host": unsafe_strings({"name": row.name, "role": row.role, "cluster": row.cluster,
                                          "site": row.site}),
            "dcops_programme": unsafe_strings({
                "slug": row.slug,
                "name": row.programme_name,
                "description": row.description,
                "ministry": row.ministry,
                "ministry_name": row.ministry_name,
                "tier": row.tier,
                "sla_target_percent": row.sla_target_percent,
                "environment": row.environment,
                "classification": row.classification,
                "personal_data": bool(row.personal_data),
                "owner_contact": row.owner_contact,
                "security_contact": row.security_contact,
                "backup_tier": row.backup_tier,
                "rto_minutes": row.rto_minutes,
                "rpo_minutes": row.rpo_minutes,
                "endpoints": endpoints.get(row.programme_id, []),
            }),
        }
    if wanted is not None and (missing := wanted - {v["dcops_programme"]["slug"] for v in hostvars.values()}):
        raise NotFound(f"no hosts for programme(s) {', '.join(sorted(missing))}: add hosts in the inventory first")
    document: dict[str, Any] = {name: {"hosts": sorted(hosts)} for name, hosts in sorted(groups.items())}
    document["all"] = {"children": sorted(groups)}
    document["_meta"] = {"hostvars": hostvars}
    return document


def _script_form(value: Any) -> Any:
    if isinstance(value, Unsafe):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, dict):
        return {key: _script_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_script_form(item) for item in value]
    return value


def script_json(value: Any) -> str:
    """JSON for Ansible's inventory-script protocol, with unsafe text as {"__ansible_unsafe": ...}."""
    return json.dumps(_script_form(value), indent=2, ensure_ascii=False, sort_keys=True)


def host_vars(document: dict, host: str) -> dict:
    """The variables of one host (for `--host HOST`)."""
    try:
        return document["_meta"]["hostvars"][host]
    except KeyError:
        raise NotFound(f"no host {host!r} in the inventory") from None


def static_yaml(document: dict, extra_vars: dict | None = None) -> str:
    """The same inventory as a static YAML inventory file, unsafe text tagged `!unsafe`."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Unsafe, lambda dumper, data: dumper.represent_scalar("!unsafe", str(data), style='"'))
    hostvars = document["_meta"]["hostvars"]
    children = {}
    for group in document["all"]["children"]:
        children[group] = {"hosts": {host: None for host in document[group]["hosts"]}}
    inventory = {"all": {"hosts": {name: hostvars[name] for name in sorted(hostvars)}, "children": children}}
    if extra_vars:
        inventory["all"]["vars"] = extra_vars
    return yaml.dump(inventory, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
