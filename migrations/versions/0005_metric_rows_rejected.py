"""metric rows a writer set aside, counted on their series

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metric_series") as batch:
        batch.add_column(
            sa.Column("rows_rejected", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("rejected_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_series") as batch:
        batch.drop_column("rejected_reason")
        batch.drop_column("rows_rejected")
