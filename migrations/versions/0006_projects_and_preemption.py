"""projects (fair-share weight, quotas) and the jobs' preemption columns

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("max_gpus", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("weight > 0", name=op.f("ck_projects_weight")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("preempt_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("preemptions", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("last_preempted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("gpus", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("gpus")
        batch.drop_column("last_preempted_at")
        batch.drop_column("preemptions")
        batch.drop_column("preempt_requested")
    op.drop_table("projects")
