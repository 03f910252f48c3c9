"""No overcommit: many approvals in separate processes at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing

import sqlalchemy as sa

from dcops.catalogue.requests import approve, submit
from dcops.db import open_database
from dcops.errors import Conflict
from dcops.inventory.queries import cluster_usage
from dcops.inventory.service import load_directory
from dcops.settings import Settings

import inventories
import requests_fixtures

REQUESTS = 16


def _approve(url: str, home: str, request_id: int, barrier) -> str:
    database = open_database(Settings.from_env({"DCOPS_DATABASE_URL": url, "DCOPS_HOME": home}))
    barrier.wait()
    try:
        approve(database, request_id, actor="ops")
        return "approved"
    except Conflict as refusal:
        return "refused" if "does not fit" in str(refusal) else f"conflict: {refusal}"
    except Exception as error:  # reported by the test
        return f"{type(error).__name__}: {error}"
    finally:
        database.dispose()


def test_concurrent_approvals_never_overcommit(any_settings, tmp_path):
    database = open_database(any_settings)
    load_directory(database, inventories.write(tmp_path / "inv", requests_fixtures.inventory()))
    ids = [submit(database, requests_fixtures.request(f"prog-{i:02d}")) for i in range(REQUESTS)]
    # gen-a is free for 96 vCPU, 384 GiB RAM, 9500 GiB storage; each plan takes 8 / 32 / 200:
    # exactly 12 of the 16 fit.
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(REQUESTS)
    with context.Pool(REQUESTS) as pool:
        outcomes = pool.starmap(_approve, [(any_settings.database_url, str(any_settings.home), i, barrier) for i in ids])
    assert sorted(set(outcomes)) == ["approved", "refused"], outcomes
    assert outcomes.count("approved") == 12
    with database.transaction() as conn:
        usage = cluster_usage(conn)
        approved = conn.execute(sa.text("SELECT count(*) FROM hosting_request WHERE state = 'approved'")).scalar()
        programmes = conn.execute(sa.text("SELECT count(*) FROM programme WHERE slug LIKE 'prog-%'")).scalar()
    database.dispose()
    assert approved == programmes == 12
    for row in usage:
        assert row.allocated <= row.capacity, row
    vcpu = next(row for row in usage if row.resource == "vcpu")
    assert vcpu.allocated == 24 + 12 * 8
