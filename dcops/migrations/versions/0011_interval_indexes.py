"""State intervals: a period's spans read from one index, and each open span found at once.

A ministry's home page reads its programmes' state now and this month's spans on every view;
without these, both walk a year of every programme's intervals.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-13
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_state_interval_programme_span", "state_interval",
                    ["programme_id", "started_at", "endpoint_id", "ended_at"])
    op.drop_index("ix_state_interval_programme_started", table_name="state_interval")
    op.create_index("ix_state_interval_open", "state_interval", ["programme_id", "endpoint_id"],
                    sqlite_where=sa.text("ended_at IS NULL"), postgresql_where=sa.text("ended_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_state_interval_open", table_name="state_interval")
    op.create_index("ix_state_interval_programme_started", "state_interval", ["programme_id", "started_at"])
    op.drop_index("ix_state_interval_programme_span", table_name="state_interval")
