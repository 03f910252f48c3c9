"""Reports: maintenance windows, daily capacity snapshots, frozen reports; programme plan, N+1 host size.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("programme") as batch:
        batch.add_column(sa.Column("plan_id", sa.String(), nullable=True))
        batch.create_foreign_key("fk_programme_plan_id_plan", "plan", ["plan_id"], ["id"])
    with op.batch_alter_table("cluster_capacity") as batch:
        batch.add_column(sa.Column("largest_host", sa.Integer(), nullable=True))
    # Programmes approved from requests before this revision: their request names the plan.
    op.execute("UPDATE programme SET plan_id = (SELECT r.plan_id FROM hosting_request r "
               "WHERE r.programme_id = programme.id ORDER BY r.id DESC LIMIT 1)")
    op.create_table(
        "maintenance_window",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=True),
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("cluster.id"), nullable=True),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("change_ref", sa.String(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(), nullable=True),
        sa.CheckConstraint("(programme_id IS NULL) <> (cluster_id IS NULL)", name="ck_maintenance_target"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_maintenance_order"),
    )
    op.create_index("ix_maintenance_window_programme_id", "maintenance_window", ["programme_id"])
    op.create_index("ix_maintenance_window_cluster_id", "maintenance_window", ["cluster_id"])
    op.create_index("ix_maintenance_window_starts_at", "maintenance_window", ["starts_at"])
    op.create_table(
        "capacity_snapshot",
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("cluster.id"), primary_key=True),
        sa.Column("resource", sa.String(), primary_key=True),
        sa.Column("taken_on", sa.Date(), primary_key=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("allocation_ratio", sa.Float(), nullable=False),
        sa.Column("allocated", sa.Integer(), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "frozen_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("frozen_at", UTCDateTime(), nullable=False),
        sa.Column("frozen_by", sa.String(), nullable=False),
        sa.Column("inputs_digest", sa.String(), nullable=False),
        sa.Column("document", sa.String(), nullable=False),
    )
    op.create_index("ix_frozen_report_period", "frozen_report", ["period"])


def downgrade() -> None:
    for table in ("frozen_report", "capacity_snapshot", "maintenance_window"):
        op.drop_table(table)
    with op.batch_alter_table("cluster_capacity") as batch:
        batch.drop_column("largest_host")
    with op.batch_alter_table("programme") as batch:
        batch.drop_constraint("fk_programme_plan_id_plan", type_="foreignkey")
        batch.drop_column("plan_id")
