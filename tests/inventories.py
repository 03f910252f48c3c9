"""Small inventories written into temporary folders for tests."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

BASE = {
    "ministries.yaml": {
        "ministries": [
            {"code": "moh", "name": "Ministry of Health", "contact": "it@moh.example.la"},
            {"code": "mtc", "name": "Ministry of Technology and Communications", "contact": "dc@mtc.example.la"},
        ]
    },
    "sites.yaml": {
        "sites": [
            {
                "code": "dc1",
                "name": "Primary",
                "role": "primary",
                "clusters": [
                    {
                        "name": "gen-a",
                        "capacity": {
                            "vcpu": {"total": 64, "reserved": 4, "allocation_ratio": 2.0},
                            "ram_gib": {"total": 512, "reserved": 32},
                            "storage_gib": {"total": 10000},
                        },
                    }
                ],
            }
        ]
    },
    "programmes/moh.yaml": {
        "programmes": [
            {
                "slug": "dhis2",
                "name": "Health information system",
                "ministry": "moh",
                "tier": 1,
                "classification": "confidential",
                "personal_data": True,
                "contacts": {"owner": "hmis@moh.example.la", "security": "sec@moh.example.la"},
                "recovery": {"rto_minutes": 240, "rpo_minutes": 15, "backup_tier": "hourly"},
                "review_date": "2027-06-30",
                "depends_on": ["digital-id"],
                "endpoints": [{"name": "web", "kind": "http", "target": "http://127.0.0.1:18001/healthz"}],
                "allocations": [{"cluster": "gen-a", "vcpu": 16, "ram_gib": 64, "storage_gib": 500}],
                "hosts": [{"name": "dhis2-app-01", "address": "127.0.1.1", "cluster": "gen-a"}],
            }
        ]
    },
    "programmes/mtc.yaml": {
        "programmes": [
            {
                "slug": "digital-id",
                "name": "Digital identity",
                "ministry": "mtc",
                "tier": 1,
                "classification": "secret",
                "contacts": {"owner": "id@mtc.example.la", "security": "sec@mtc.example.la"},
                "endpoints": [{"name": "api", "kind": "tcp", "target": "127.0.0.1:18002"}],
                "allocations": [{"cluster": "gen-a", "vcpu": 8, "ram_gib": 32}],
            },
            {
                "slug": "e-gov-portal",
                "name": "E-government portal",
                "ministry": "mtc",
                "tier": 2,
                "classification": "public",
                "contacts": {"owner": "portal@mtc.example.la", "security": "sec@mtc.example.la"},
            },
        ]
    },
}


def base() -> dict[str, dict]:
    """A deep copy of the small valid inventory, to change in a test."""
    return copy.deepcopy(BASE)


def write(directory: Path, files: dict[str, object]) -> Path:
    """Write documents (dicts, or raw text) as YAML files under `directory`."""
    for name, document in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
        path.write_text(text, encoding="utf-8")
    return directory
