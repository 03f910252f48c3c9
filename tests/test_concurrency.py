"""Writers at the same time, in separate processes: all serialised, nothing half-written or lost."""

from __future__ import annotations

import multiprocessing

import sqlalchemy as sa

from dcops.db import open_database
from dcops.errors import Conflict
from dcops.inventory.service import add_programme, load_directory
from dcops.settings import Settings

import inventories


def _add(url: str, home: str, slug: str, barrier) -> str:
    database = open_database(Settings.from_env({"DCOPS_DATABASE_URL": url, "DCOPS_HOME": home}))
    document = {
        "slug": slug, "name": slug, "ministry": "mtc", "tier": 3, "classification": "public",
        "contacts": {"owner": "o@mtc.example.la", "security": "s@mtc.example.la"},
        "allocations": [{"cluster": "gen-a", "vcpu": 10}],
    }
    barrier.wait()
    try:
        add_programme(database, document)
        return "added"
    except Conflict:
        return "conflict"
    except Exception as error:  # the test reports any other outcome
        return f"{type(error).__name__}: {error}"
    finally:
        database.dispose()


def test_concurrent_adds_are_serialised_and_capacity_holds(any_settings, tmp_path):
    database = open_database(any_settings)
    load_directory(database, inventories.write(tmp_path / "inv", inventories.base()))
    # gen-a has 120 vCPU, 24 allocated: room for 9 more programmes of 10 vCPU.
    slugs = [f"p{i:02d}" for i in range(12)] + ["p00", "p01"]
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(len(slugs))
    with context.Pool(len(slugs)) as pool:
        outcomes = pool.starmap(
            _add, [(any_settings.database_url, str(any_settings.home), slug, barrier) for slug in slugs]
        )
    with database.transaction() as conn:
        added = conn.execute(sa.text("SELECT count(*) FROM programme WHERE slug LIKE 'p%'")).scalar()
        vcpu = conn.execute(sa.text("SELECT sum(amount) FROM allocation WHERE resource = 'vcpu'")).scalar()
    database.dispose()
    assert all(o in ("added", "conflict") or "more than its capacity" in o for o in outcomes), outcomes
    assert outcomes.count("added") == added == 9
    assert vcpu == 24 + 90 <= 120
