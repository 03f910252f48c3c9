"""Programmes' service span: when each first went into service (active) and when it was retired.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from dcops.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("programme") as batch:
        batch.add_column(sa.Column("activated_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("retired_at", UTCDateTime(), nullable=True))
    # Before this revision neither moment was kept: a programme that has run is taken to have
    # run since it was created, and a retired one to have retired at its last change.
    op.execute("UPDATE programme SET activated_at = created_at "
               "WHERE status IN ('active', 'decommissioning', 'retired')")
    op.execute("UPDATE programme SET retired_at = updated_at WHERE status = 'retired'")


def downgrade() -> None:
    with op.batch_alter_table("programme") as batch:
        batch.drop_column("retired_at")
        batch.drop_column("activated_at")
