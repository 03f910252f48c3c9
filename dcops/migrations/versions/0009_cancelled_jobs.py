"""Jobs spell their status 'cancelled', as maintenance windows do: stored 'canceled' jobs are rewritten.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE job SET status = 'cancelled' WHERE status = 'canceled'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE job SET status = 'canceled' WHERE status = 'cancelled'"))
