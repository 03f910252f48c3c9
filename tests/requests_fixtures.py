"""A small catalogue and request documents for request tests."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import inventories

CATALOGUE = {
    "offerings": [
        {
            "id": "vm",
            "name": "vm",
            "description": "Virtual machines",
            "plans": [
                {
                    "id": "vm-medium",
                    "name": "medium",
                    "resources": {"vcpu": 4, "ram_gib": 16, "storage_gib": 100, "instances": 2},
                    "sla_tiers": [2, 3],
                    "metadata": {"bullets": ["2 x 4 vCPU"], "costs": [{"amount": {"lak": 4000000}, "unit": "MONTHLY"}]},
                },
                {
                    "id": "vm-huge",
                    "name": "huge",
                    "resources": {"vcpu": 200, "ram_gib": 64, "storage_gib": 100},
                    "sla_tiers": [1, 2, 3],
                    "metadata": {"costs": [{"amount": {"lak": 90000000}, "unit": "MONTHLY"}]},
                },
            ],
        }
    ]
}


def inventory() -> dict:
    """The small inventory of `inventories` plus this catalogue."""
    files = inventories.base()
    files["catalogue.yaml"] = copy.deepcopy(CATALOGUE)
    return files


def request(slug: str = "new-portal", **changes) -> dict:
    """A valid request document for the small catalogue; `changes` replace top-level fields."""
    document = {
        "ministry": "mtc",
        "programme": {"slug": slug, "name": "New portal", "description": "A portal"},
        "offering": "vm",
        "plan": "vm-medium",
        "tier": 2,
        "classification": "internal",
        "environment": "production",
        "personal_data": False,
        "justification": "Citizens need a new portal for services.",
        "contacts": {"owner": "owner@mtc.example.la", "security": "sec@mtc.example.la"},
        "wanted_by": (date.today() + timedelta(days=30)).isoformat(),
    }
    document.update(changes)
    return document
