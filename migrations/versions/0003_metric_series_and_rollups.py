"""metric series versions and rollups for polling dashboards

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_series",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_metric_series_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "kind", name=op.f("pk_metric_series")),
    )
    op.create_table(
        "metric_rollups",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_metric_rollups_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "kind", "level", "start", name=op.f("pk_metric_rollups")),
    )
    _backfill_rollups()


def _backfill_rollups() -> None:
    """Rollups for the metric rows written before this revision (downsampling reads them)."""
    bind = op.get_bind()
    series = bind.execute(sa.text("SELECT DISTINCT job_id, kind FROM metrics")).all()
    if not series:
        return
    from sqlalchemy.orm import Session

    from service.store import rollups

    session = Session(bind=bind)  # joins the migration's transaction
    for job_id, kind in series:
        rollups.rebuild(session, job_id, kind)
    session.close()


def downgrade() -> None:
    op.drop_table("metric_rollups")
    op.drop_table("metric_series")
