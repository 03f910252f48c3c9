"""Catalogue offerings declare the checks each programme of theirs gets, and the domain of public names.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offering") as batch:
        batch.add_column(sa.Column("checks", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("public_domain", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("offering") as batch:
        batch.drop_column("public_domain")
        batch.drop_column("checks")
