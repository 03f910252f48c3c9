"""Incidents and their updates; external components, what depends on them, their outages; short names;
whether a tier (or a programme) leaves external dependency time out of its SLA.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-14
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sla_tier") as batch:
        batch.add_column(sa.Column("excludes_external", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("programme") as batch:
        batch.add_column(sa.Column("short_name", sa.String(), nullable=True))
        batch.add_column(sa.Column("excludes_external", sa.Boolean(), nullable=True))
    op.create_table(
        "external_component",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False, server_default=""),
        sa.Column("run_by", sa.String(), nullable=False, server_default="third-party"),
        sa.Column("contact", sa.String(), nullable=False, server_default=""),
    )
    op.create_index("ix_external_component_slug", "external_component", ["slug"], unique=True)
    op.create_table(
        "programme_external_dependency",
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), primary_key=True),
        sa.Column("component_id", sa.Integer(), sa.ForeignKey("external_component.id"), primary_key=True),
    )
    op.create_table(
        "external_outage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("component_id", sa.Integer(), sa.ForeignKey("external_component.id"), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.String(), nullable=False, server_default=""),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="ck_external_outage_order"),
    )
    op.create_index("ix_external_outage_component_started", "external_outage", ["component_id", "started_at"])
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("programme_id", sa.Integer(), sa.ForeignKey("programme.id"), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(), nullable=False, server_default="new"),
        sa.Column("reason", sa.String(), nullable=False, server_default=""),
        sa.Column("title", sa.String(), nullable=False, server_default=""),
        sa.Column("cause", sa.String(), nullable=False, server_default=""),
        sa.Column("action", sa.String(), nullable=False, server_default=""),
        sa.Column("attributed_to", sa.String(), nullable=True),
        sa.Column("postmortem_url", sa.String(), nullable=True),
        sa.Column("released", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("merged_into", sa.Integer(), sa.ForeignKey("incident.id"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("programme_id", "started_at", name="uq_incident_programme_start"),
    )
    op.create_index("ix_incident_started_at", "incident", ["started_at"])
    op.create_table(
        "incident_update",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False, server_default=""),
    )
    op.create_index("ix_incident_update_incident_id", "incident_update", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_update_incident_id", table_name="incident_update")
    op.drop_table("incident_update")
    op.drop_index("ix_incident_started_at", table_name="incident")
    op.drop_table("incident")
    op.drop_index("ix_external_outage_component_started", table_name="external_outage")
    op.drop_table("external_outage")
    op.drop_table("programme_external_dependency")
    op.drop_index("ix_external_component_slug", table_name="external_component")
    op.drop_table("external_component")
    with op.batch_alter_table("programme") as batch:
        batch.drop_column("excludes_external")
        batch.drop_column("short_name")
    with op.batch_alter_table("sla_tier") as batch:
        batch.drop_column("excludes_external")
