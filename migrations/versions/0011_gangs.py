"""gangs of workers that train one multi-worker job together, their members, and the
workers a job trains on

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("workers", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "gangs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("formed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('forming', 'running', 'ended')", name="ck_gangs_state"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_gangs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gangs"),
    )
    op.create_index("ix_gangs_job_id", "gangs", ["job_id"])
    op.create_table(
        "gang_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gang_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gang_id"],
            ["gangs.id"],
            name="fk_gang_members_gang_id_gangs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gang_members"),
    )
    op.create_index("ix_gang_members_gang_id", "gang_members", ["gang_id"])
    op.create_index("ix_gang_members_gang_rank", "gang_members", ["gang_id", "rank"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_gang_members_gang_rank", table_name="gang_members")
    op.drop_index("ix_gang_members_gang_id", table_name="gang_members")
    op.drop_table("gang_members")
    op.drop_index("ix_gangs_job_id", table_name="gangs")
    op.drop_table("gangs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("workers")
