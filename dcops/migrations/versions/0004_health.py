"""Health: probe settings on endpoints, check states, state intervals, latency rollups, raw results.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoint") as batch:
        batch.add_column(sa.Column("expect_status", sa.String(), nullable=False, server_default="200-399"))
        batch.add_column(sa.Column("body_contains", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("timeout_seconds", sa.Float(), nullable=False, server_default="5.0"))
        batch.add_column(sa.Column("interval_seconds", sa.Integer(), nullable=False, server_default="60"))
    op.create_table(
        "check_state",
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), primary_key=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("fail_streak", sa.Integer(), nullable=False),
        sa.Column("ok_streak", sa.Integer(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=True),
        sa.Column("last_success", sa.Boolean(), nullable=True),
        sa.Column("last_duration_seconds", sa.Float(), nullable=True),
        sa.Column("last_reason", sa.String(), nullable=False),
        sa.Column("tls_expires_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "state_interval",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
    )
    op.create_index("ix_state_interval_programme_started", "state_interval", ["programme_id", "started_at"])
    op.create_index("ix_state_interval_endpoint_id", "state_interval", ["endpoint_id"])
    op.create_table(
        "latency_rollup",
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), primary_key=True),
        sa.Column("period_start", UTCDateTime(), primary_key=True),
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
    )
    op.create_table(
        "probe_result",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("endpoint_id", sa.Integer(), sa.ForeignKey("endpoint.id"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
    )
    op.create_index("ix_probe_result_endpoint_id", "probe_result", ["endpoint_id"])
    op.create_index("ix_probe_result_at", "probe_result", ["at"])


def downgrade() -> None:
    for table in ("probe_result", "latency_rollup", "state_interval", "check_state"):
        op.drop_table(table)
    with op.batch_alter_table("endpoint") as batch:
        for column in ("interval_seconds", "timeout_seconds", "body_contains", "expect_status"):
            batch.drop_column(column)
