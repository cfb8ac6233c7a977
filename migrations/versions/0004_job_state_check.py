"""a CHECK constraint on jobs.state: one of the states of service.store.tables.JobState

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_jobs_state"), f"state IN ({', '.join(repr(s) for s in STATES)})"
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_jobs_state"), type_="check")
