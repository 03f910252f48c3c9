"""Migration 0009: a stored 'canceled' job becomes 'cancelled' (the project's one spelling); downgrade restores it."""

from __future__ import annotations

import sqlalchemy as sa

from dcops import db as dcops_db

from test_db import _migrate


def _statuses(url: str) -> dict[int, str]:
    engine = dcops_db.make_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT id, status FROM job ORDER BY id")).all())
    finally:
        engine.dispose()


def test_0009_rewrites_canceled_jobs_and_downgrades(any_url):
    _migrate(any_url, "0008")
    engine = dcops_db.make_engine(any_url)
    with engine.begin() as conn:
        for status in ("canceled", "successful", "interrupted", "canceled"):
            conn.execute(sa.text(
                "INSERT INTO job (kind, playbook, programmes, check_mode, sandbox, status, actor, started_at,"
                " hostname, pid, pid_start, private_data_dir, host_stats) VALUES ('verify', 'verify.yml', '[]',"
                " false, true, :status, 'ops', '2026-11-01 08:00:00', 'h', 1, '', '', '{}')"), {"status": status})
    engine.dispose()

    _migrate(any_url, "0009")
    assert _statuses(any_url) == {1: "cancelled", 2: "successful", 3: "interrupted", 4: "cancelled"}
    _migrate(any_url, "0008", down=True)
    assert _statuses(any_url) == {1: "canceled", 2: "successful", 3: "interrupted", 4: "canceled"}
