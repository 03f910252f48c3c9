"""Alertmanager: the silence of each maintenance window, and the alerts its webhook delivered.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alertmanager_silence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("window_id", sa.Integer(), sa.ForeignKey("maintenance_window.id"), nullable=False),
        sa.Column("state", sa.String(), nullable=False, server_default="pending"),
        sa.Column("silence_id", sa.String(), nullable=True),
        sa.Column("matchers", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_alertmanager_silence_window_id", "alertmanager_silence", ["window_id"], unique=True)
    op.create_index("ix_alertmanager_silence_state", "alertmanager_silence", ["state"])
    op.create_table(
        "alertmanager_alert",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=False),
        sa.Column("alertname", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("receiver", sa.String(), nullable=False, server_default=""),
        sa.Column("severity", sa.String(), nullable=False, server_default=""),
        sa.Column("fired_notified_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_notified_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alertmanager_alert_fingerprint_start"),
    )
    op.create_index("ix_alertmanager_alert_programme_starts", "alertmanager_alert", ["programme_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_alertmanager_alert_programme_starts", table_name="alertmanager_alert")
    op.drop_table("alertmanager_alert")
    op.drop_index("ix_alertmanager_silence_state", table_name="alertmanager_silence")
    op.drop_index("ix_alertmanager_silence_window_id", table_name="alertmanager_silence")
    op.drop_table("alertmanager_silence")
