"""Compact probe history: raw results and latency rollups keyed by integer epoch microseconds.

Raw results lose their surrogate id and their two indexes: one key (at, endpoint_id) serves
both the age-based delete and uniqueness. On SQLite both tables are WITHOUT ROWID, so the
key is the table. A year of 1-minute probes for 200 programmes shrinks from 134 MB to the
figure in the health benchmark.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLLUP_COLUMNS = ("period", "count", "failures", "sum_seconds", "min_seconds", "max_seconds",
                  "le_0_1", "le_0_5", "le_1", "le_5")


def _epoch_us(column: str) -> str:
    """SQL turning a UTCDateTime column (as 0004 stored it) into Unix microseconds."""
    if op.get_bind().dialect.name == "sqlite":
        # SQLite keeps 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC.
        return (f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
                f" + CAST(substr({column} || '000000', 21, 6) AS INTEGER))")
    return f"CAST(round(extract(epoch FROM {column}) * 1000000) AS BIGINT)"


def _time_from_us(column: str) -> str:
    """SQL turning Unix microseconds back into what 0004's UTCDateTime column holds."""
    if op.get_bind().dialect.name == "sqlite":
        return (f"strftime('%Y-%m-%d %H:%M:%S', {column} / 1000000, 'unixepoch')"
                f" || printf('.%06d', {column} % 1000000)")
    return f"to_timestamp({column} / 1000000.0)"


def _rollup_columns() -> list[sa.Column]:
    return [
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("sum_seconds", sa.Float(), nullable=False),
        sa.Column("min_seconds", sa.Float(), nullable=True),
        sa.Column("max_seconds", sa.Float(), nullable=True),
        sa.Column("le_0_1", sa.Integer(), nullable=False),
        sa.Column("le_0_5", sa.Integer(), nullable=False),
        sa.Column("le_1", sa.Integer(), nullable=False),
        sa.Column("le_5", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "probe_result_new",
        sa.Column("at", sa.BigInteger(), primary_key=True),
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), primary_key=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sqlite_with_rowid=False,
    )
    # Two results of one check in the same microsecond are one result: keep the first.
    op.execute(
        f"INSERT INTO probe_result_new (at, endpoint_id, success, duration_seconds, reason) "
        f"SELECT {_epoch_us('at')}, endpoint_id, success, duration_seconds, reason FROM probe_result "
        f"WHERE id IN (SELECT min(id) FROM probe_result GROUP BY endpoint_id, at)"
    )
    op.drop_table("probe_result")
    op.rename_table("probe_result_new", "probe_result")

    op.create_table(
        "latency_rollup_new",
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), primary_key=True),
        sa.Column("period_start", sa.BigInteger(), primary_key=True),
        *_rollup_columns(),
        sqlite_with_rowid=False,
    )
    columns = ", ".join(ROLLUP_COLUMNS)
    op.execute(f"INSERT INTO latency_rollup_new (endpoint_id, period_start, {columns}) "
               f"SELECT endpoint_id, {_epoch_us('period_start')}, {columns} FROM latency_rollup")
    op.drop_table("latency_rollup")
    op.rename_table("latency_rollup_new", "latency_rollup")


def downgrade() -> None:
    from dcops.db import UTCDateTime

    op.create_table(
        "probe_result_old",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
    )
    op.execute(f"INSERT INTO probe_result_old (endpoint_id, at, success, duration_seconds, reason) "
               f"SELECT endpoint_id, {_time_from_us('at')}, success, duration_seconds, reason FROM probe_result "
               f"ORDER BY at, endpoint_id")
    op.drop_table("probe_result")
    op.rename_table("probe_result_old", "probe_result")
    op.create_index("ix_probe_result_endpoint_id", "probe_result", ["endpoint_id"])
    op.create_index("ix_probe_result_at", "probe_result", ["at"])

    op.create_table(
        "latency_rollup_old",
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), primary_key=True),
        sa.Column("period_start", UTCDateTime(), primary_key=True),
        *_rollup_columns(),
    )
    columns = ", ".join(ROLLUP_COLUMNS)
    op.execute(f"INSERT INTO latency_rollup_old (endpoint_id, period_start, {columns}) "
               f"SELECT endpoint_id, {_time_from_us('period_start')}, {columns} FROM latency_rollup")
    op.drop_table("latency_rollup")
    op.rename_table("latency_rollup_old", "latency_rollup")
