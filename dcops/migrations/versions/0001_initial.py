"""Initial schema: tiers, ministries, sites, clusters, capacity, programmes, endpoints, allocations, hosts.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    sla_tier = op.create_table(
        "sla_tier",
        sa.Column("tier", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("sla_target_percent", sa.Float(), nullable=False),
    )
    op.bulk_insert(
        sla_tier,
        [
            {"tier": 1, "name": "critical", "sla_target_percent": 99.9},
            {"tier": 2, "name": "important", "sla_target_percent": 99.5},
            {"tier": 3, "name": "standard", "sla_target_percent": 99.0},
        ],
    )
    op.create_table(
        "ministry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("contact", sa.String(), nullable=False),
    )
    op.create_index("ix_ministry_code", "ministry", ["code"], unique=True)
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
    )
    op.create_index("ix_site_code", "site", ["code"], unique=True)
    op.create_table(
        "cluster",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("site.id"), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
    )
    op.create_index("ix_cluster_name", "cluster", ["name"], unique=True)
    op.create_table(
        "cluster_capacity",
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("cluster.id"), primary_key=True),
        sa.Column("resource", sa.String(), primary_key=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("allocation_ratio", sa.Float(), nullable=False),
        sa.CheckConstraint("total >= 0", name="ck_capacity_total"),
        sa.CheckConstraint("reserved >= 0 AND reserved <= total", name="ck_capacity_reserved"),
        sa.CheckConstraint("allocation_ratio > 0", name="ck_capacity_ratio"),
    )
    op.create_table(
        "programme",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("ministry_id", sa.Integer(), sa.ForeignKey("ministry.id"), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("tier", sa.Integer(), sa.ForeignKey("sla_tier.tier"), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("classification", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("owner_contact", sa.String(), nullable=False),
        sa.Column("security_contact", sa.String(), nullable=False),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("rto_minutes", sa.Integer(), nullable=True),
        sa.Column("rpo_minutes", sa.Integer(), nullable=True),
        sa.Column("backup_tier", sa.String(), nullable=False),
        sa.Column("review_date", sa.Date(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_programme_slug", "programme", ["slug"], unique=True)
    op.create_index("ix_programme_ministry_id", "programme", ["ministry_id"])
    op.create_table(
        "programme_dependency",
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), primary_key=True),
        sa.Column("depends_on_id", sa.Integer(), sa.ForeignKey("programme.id"), primary_key=True),
        sa.CheckConstraint("programme_id <> depends_on_id", name="ck_dependency_self"),
    )
    op.create_table(
        "endpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.UniqueConstraint("programme_id", "name", name="uq_endpoint_programme_name"),
    )
    op.create_index("ix_endpoint_programme_id", "endpoint", ["programme_id"])
    op.create_table(
        "allocation",
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), primary_key=True),
        sa.Column("cluster_id", sa.Integer(), primary_key=True),
        sa.Column("resource", sa.String(), primary_key=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id", "resource"],
            ["cluster_capacity.cluster_id", "cluster_capacity.resource"],
            name="fk_allocation_capacity",
        ),
        sa.CheckConstraint("amount >= 0", name="ck_allocation_amount"),
    )
    op.create_index("ix_allocation_cluster_id", "allocation", ["cluster_id"])
    op.create_table(
        "host",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("cluster.id"), nullable=False),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
    )
    op.create_index("ix_host_name", "host", ["name"], unique=True)
    op.create_index("ix_host_programme_id", "host", ["programme_id"])


def downgrade() -> None:
    for table in (
        "host",
        "allocation",
        "endpoint",
        "programme_dependency",
        "programme",
        "cluster_capacity",
        "cluster",
        "site",
        "ministry",
        "sla_tier",
    ):
        op.drop_table(table)
