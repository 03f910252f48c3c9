"""Approved programmes with hosts, ready for provisioning tests."""

from __future__ import annotations

from pathlib import Path

from dcops.catalogue.requests import approve, submit
from dcops.inventory.service import load_directory

import inventories
import requests_fixtures

TEST_PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


def approved(database, tmp_path: Path, *slugs: str, description: str = "A portal") -> dict[str, int]:
    """Load the small inventory and approve one request per slug; returns slug -> request id."""
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    ids = {}
    for slug in slugs:
        document = requests_fixtures.request(slug, plan="vm-medium")
        document["programme"]["description"] = description
        ids[slug] = submit(database, document, actor="desk")
        approve(database, ids[slug], actor="ops")
    return ids
