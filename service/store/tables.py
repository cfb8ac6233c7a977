"""ORM rows (tables are plural): jobs, attempts, metrics and their rollups, checkpoints, tokens,
workers, gangs, projects, job events and the worker log lines of each attempt, webhooks, and
sweeps with their trials and pruning decisions."""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JobState(str, enum.Enum):
    """A job's state: ``queued -> running -> succeeded | failed | cancelled``, with
    ``running -> queued`` when an attempt is lost or preempted. The one list of them; the
    ``jobs.state`` column holds the values, guarded by a CHECK constraint."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATES = tuple(s.value for s in JobState)
ENDED = (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value)
ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class LogsJSON(TypeDecorator):
    """A JSON dict of Keras logs: NaN and +/-inf stored as strings (PostgreSQL's JSON type
    refuses Python's ``NaN``), read back as floats."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        from service.store.nonfinite import encode_logs

        return encode_logs(value) if isinstance(value, dict) else value

    def process_result_value(self, value, dialect):
        from service.store.nonfinite import NAMES

        if not isinstance(value, dict):
            return value
        return {k: NAMES.get(v, v) if isinstance(v, str) else v for k, v in value.items()}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(100), default="default", index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict] = mapped_column(JSON)
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    queue: Mapped[str] = mapped_column(String(100), default="default")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # the workers it trains on: > 1 for a multi-worker job, which gangs claim, not the scheduler
    workers: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lost_attempts: Mapped[int] = mapped_column(Integer, default=0)
    current_attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Preemption (service.store.scheduler): asked of the running attempt like a cancel;
    # ``preemptions`` counts the times the job gave way, the last one at ``last_preempted_at``.
    preempt_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    preemptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_preempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # while running
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=1)
    batch: Mapped[int] = mapped_column(Integer, default=0)
    steps_per_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    latest_checkpoint_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
        CheckConstraint(_one_of("state", STATES), name="state"),
    )


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resumed_from_step: Mapped[int] = mapped_column(BigInteger, default=0)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class Metric(Base):
    __tablename__ = "metrics"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    batch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer)
    logs: Mapped[dict] = mapped_column(JSON)
    wall_time: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt_id: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(BigInteger)
    epoch: Mapped[int] = mapped_column(Integer)
    batch: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    files: Mapped[dict] = mapped_column(JSON)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    logs: Mapped[dict] = mapped_column(LogsJSON)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_checkpoints_job_step", "job_id", "step", unique=True),)


class Token(Base):
    """An API token: only its SHA-256 is stored; ``prefix`` identifies it in listings."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Worker(Base):
    """A worker process of the fleet, as it last reported itself."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # idle, busy, stopped
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetricSeries(Base):
    """One job's series of one kind: a version bumped by every write (the pollers' ETag),
    and the rows a writer had to set aside because the database refused them."""

    __tablename__ = "metric_series"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    rejected_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class MetricRollup(Base):
    """Per-metric extremes of an aligned block of steps, so downsampling reads few rows.

    Level ``L`` blocks hold ``32 ** (L + 1)`` steps starting at ``start``; ``stats`` maps
    each metric to ``[min, step of min, max, step of max]``.
    """

    __tablename__ = "metric_rollups"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    stats: Mapped[dict] = mapped_column(JSON)


class Project(Base):
    """A project's share of the fleet: a fair-share weight and optional quotas.

    A project with no row has weight 1 and no limits (``service.store.projects``).
    """

    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    max_running: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_gpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("weight > 0", name="weight"),)


# An autoincrementing 64-bit key: BIGSERIAL on PostgreSQL; SQLite numbers only an INTEGER key.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class JobEvent(Base):
    """One thing that happened to a job (submitted, claimed, checkpoint committed, ...),
    appended in the transaction of the change it describes; never updated. ``attempt`` is
    the attempt's number, ``data`` the event's details (see :mod:`service.store.events`)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_job_events_job_id_id", "job_id", "id"),
        Index("ix_job_events_project_at", "project", "at"),
    )


class WorkerLog(Base):
    """A log line (warning or worse) a worker wrote while one attempt held the job,
    scrubbed of secrets and server paths (see :mod:`service.store.worklogs`)."""

    __tablename__ = "worker_logs"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(16))
    logger: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_worker_logs_job_id_id", "job_id", "id"),)


class Webhook(Base):
    """A project's webhook: a URL, the event kinds it wants, the secret its deliveries are
    signed with, and ``cursor``, the last job event id its outbox was filled up to."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(64))
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one row per (hook, job event), made once (first write wins), sent until
    the receiver answers 2xx or the attempts run out; the delivery log."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    hook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("job_events.id", ondelete="CASCADE"),
    )
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_webhook_deliveries_hook_event", "hook_id", "event_id", unique=True),
        Index("ix_webhook_deliveries_state_next", "state", "next_at"),
    )


class Sweep(Base):
    """A hyperparameter search: a base job spec, a space over paths into it, an objective.

    ``spec`` is the normalized sweep spec; the trials are jobs (:class:`Trial`).
    """

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(100), default="default", index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # running, finished, cancelled
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Trial(Base):
    """One trial of a sweep: its sampled parameters and the job that trains them.

    ``state``: running, succeeded, pruned, failed or cancelled; ``objective`` is the
    objective's value at the trial's last epoch.
    """

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    params: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    pruned_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_trials_sweep_number", "sweep_id", "number", unique=True),)


class PruningDecision(Base):
    """The pruner's verdict for a trial's job at the end of one epoch (0-based); the first
    one written wins, so a resumed attempt replays it. ``attrs`` holds what the pruner
    recorded on the trial while deciding (Optuna's system attributes)."""

    __tablename__ = "pruning_decisions"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    prune: Mapped[bool] = mapped_column(Boolean)
    attrs: Mapped[dict] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Gang(Base):
    """The workers that train one attempt of a multi-worker job together.

    ``forming`` while members join (all N, or none: a gang that does not fill in time gives
    its members back), ``running`` once full (each member then holds an attempt row),
    ``ended`` once any member stopped.
    """

    __tablename__ = "gangs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    formed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(_one_of("state", ("forming", "running", "ended")), name="state"),
    )


class GangMember(Base):
    """One worker of a gang: its rank (0 is the chief), its address and its attempt."""

    __tablename__ = "gang_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gang_id: Mapped[int] = mapped_column(ForeignKey("gangs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_gang_members_gang_rank", "gang_id", "rank", unique=True),)
