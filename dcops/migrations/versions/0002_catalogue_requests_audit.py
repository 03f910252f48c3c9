"""Catalogue (offerings, plans), hosting requests and the hash-chained audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offering",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
        sa.Column("long_description", sa.String(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
    )
    op.create_table(
        "plan",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("offering_id", sa.String(), sa.ForeignKey("offering.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
        sa.Column("bullets", sa.JSON(), nullable=False),
        sa.Column("monthly_cost_lak", sa.Integer(), nullable=False),
        sa.Column("vcpu", sa.Integer(), nullable=False),
        sa.Column("ram_gib", sa.Integer(), nullable=False),
        sa.Column("storage_gib", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("sla_tiers", sa.JSON(), nullable=False),
        sa.CheckConstraint("instances >= 1", name="ck_plan_instances"),
        sa.CheckConstraint("monthly_cost_lak >= 0", name="ck_plan_cost"),
    )
    op.create_index("ix_plan_offering_id", "plan", ["offering_id"])
    op.create_table(
        "hosting_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("ministry_id", sa.Integer(), sa.ForeignKey("ministry.id"), nullable=False),
        sa.Column("programme_slug", sa.String(), nullable=False),
        sa.Column("programme_name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("plan_id", sa.String(), sa.ForeignKey("plan.id"), nullable=False),
        sa.Column("tier", sa.Integer(), sa.ForeignKey("sla_tier.tier"), nullable=False),
        sa.Column("classification", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("justification", sa.String(), nullable=False),
        sa.Column("owner_contact", sa.String(), nullable=False),
        sa.Column("security_contact", sa.String(), nullable=False),
        sa.Column("wanted_by", sa.Date(), nullable=True),
        sa.Column("site", sa.String(), nullable=True),
        sa.Column("submitted_by", sa.String(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("security_signoff_by", sa.String(), nullable=True),
        sa.Column("security_signoff_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("cluster.id"), nullable=True),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_hosting_request_state", "hosting_request", ["state"])
    op.create_index("ix_hosting_request_ministry_id", "hosting_request", ["ministry_id"])
    op.create_index("ix_hosting_request_programme_slug", "hosting_request", ["programme_slug"])
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(), nullable=False),
        sa.Column("object_key", sa.String(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
    )
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"])
    op.create_index("ix_audit_entry_object_key", "audit_entry", ["object_key"])
    op.create_index("ix_audit_entry_hash", "audit_entry", ["hash"], unique=True)


def downgrade() -> None:
    for table in ("audit_entry", "hosting_request", "plan", "offering"):
        op.drop_table(table)
