"""Provisioning jobs (Ansible runs).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("playbook", sa.String(), nullable=False),
        sa.Column("programmes", sa.JSON(), nullable=False),
        sa.Column("check_mode", sa.Boolean(), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("rc", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("hostname", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_start", sa.String(), nullable=False),
        sa.Column("private_data_dir", sa.String(), nullable=False),
        sa.Column("host_stats", sa.JSON(), nullable=False),
        sa.Column("failed_host", sa.String(), nullable=True),
        sa.Column("failed_task", sa.String(), nullable=True),
        sa.Column("failure_message", sa.String(), nullable=True),
    )
    op.create_index("ix_job_status", "job", ["status"])


def downgrade() -> None:
    op.drop_table("job")
