"""The bodies the v1 API answers with, as pydantic models: the source of the OpenAPI
document's schemas (:mod:`service.web.openapi`), so the document and the answers cannot
drift apart. A test validates every route's JSON answer against the served document. The
request body's schema is the job spec model that admission validates with
(:class:`service.admission.specmodel.JobSpec`).

Answer models allow fields beyond those named (a newer server may add some); every field
named here is in every answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.admission.specmodel import JobSpec
from service.store.tables import JobState
from service.sweeps.spec import SweepSpec

Step = Field(ge=0, description="a 0-based global step")


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(Answer):
    code: str = Field(description="a stable machine-readable code, e.g. invalid_spec")
    message: str = Field(description="what went wrong and what to do, for a person")
    details: Any = Field(description="the field path or limit concerned, or null")


class Error(Answer):
    """Every non-2xx answer."""

    error: ErrorBody


class Failure(Answer):
    code: str
    message: str | None


class Progress(Answer):
    epoch: int = Field(description="0-based epoch of the latest step (Keras shows epoch + 1)")
    epochs: int
    batch: int = Field(description="0-based batch within that epoch")
    steps_per_epoch: int | None
    step: int = Field(description="0-based global step")
    total_steps: int | None
    percent: float


class Checkpoint(Answer):
    step: int
    epoch: int
    batch: int
    uri: str
    bytes: int
    sha256: str
    files: dict | None
    created_at: datetime | None
    logs: dict | None
    attempt_id: int | None = Field(description="the attempt that wrote it")


class Stopped(Answer):
    """Where and why a callback (EarlyStopping) ended training; epochs counted from 1."""

    by: str
    epoch: int
    monitor: str | None = None
    best: float | None = None
    best_epoch: int | None = None
    restored_best_weights: bool | None = None
    reason: str


class RefusedRows(Answer):
    rows_rejected: int = Field(
        description="metric rows the database refused, set aside so the others were stored"
    )
    rejected_reason: str | None = Field(description="the latest reason")


class Job(Answer):
    id: str
    name: str
    project: str
    state: JobState
    queue: str
    priority: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    worker: str | None
    cancel_requested: bool
    progress: Progress
    latest_checkpoint: Checkpoint | None
    metrics: RefusedRows
    model_available: bool
    error: Failure | None
    stopped: Stopped | None = Field(
        None, description="set when a callback ended training before its last epoch"
    )
    spec: dict
    waiting: str | None = Field(
        None,
        description="why a queued job waits, in words (a quota, jobs of higher priority "
        "ahead, no worker serving its queue, ...); null unless queued",
    )
    preemptions: int = Field(
        0, description="times the job checkpointed and gave its worker to a job of higher priority"
    )
    preempt_requested: bool = Field(
        False, description="the scheduler asked the running job to give way; it checkpoints now"
    )


class JobList(Answer):
    jobs: list[Job]
    next: str | None = Field(description="the cursor of the next page, or null")


class Attempt(Answer):
    id: int
    number: int = Field(description="1-based")
    worker: str
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    heartbeat_at: datetime | None
    resumed_from_step: int | None
    last_step: int | None
    error: Failure | None
    steps_redone: int = Field(
        description="steps the attempt before had done past this attempt's checkpoint"
    )


class AttemptList(Answer):
    attempts: list[Attempt]


class CheckpointList(Answer):
    checkpoints: list[Checkpoint]


class Summary(Answer):
    layers: list[dict]
    total_params: int


NonFinite = Literal["NaN", "Infinity", "-Infinity"]


class MetricRow(Answer):
    step: int
    epoch: int
    batch: int | None
    logs: dict[str, float | NonFinite] = Field(
        description="the Keras logs of that step: metric name to value; NaN, inf and -inf, "
        'which JSON cannot hold, are the strings "NaN", "Infinity" and '
        '"-Infinity"'
    )


class MetricsPage(Answer):
    kind: Literal["batch", "epoch", "system"]
    rows: list[MetricRow]
    next: int = Field(description="the `after` of the next poll")
    downsampled: bool | None = Field(
        None, description="with max_points: whether the rows were downsampled"
    )
    metric: str | None = Field(None, description="with max_points: the metric downsampled by")
    buckets: list[list[int]] | None = Field(
        None,
        description="when downsampled: per bucket of steps, in order, [step of its minimum, "
        "step of its maximum] of `metric`, both among the rows (a chart's min-max band)",
    )


class DetailProgress(Progress):
    steps_per_second: float | None
    eta_seconds: float | None


class GoodputSeconds(Answer):
    queued: float = Field(description="waiting for a worker (submission and every requeue)")
    starting: float = Field(
        description="from a claim to the end of the first batch: model build, data load, "
        "restore (all of an attempt that trained no batch)"
    )
    training: float = Field(description="productive training")
    redoing: float = Field(description="training again steps a lost attempt had done")
    checkpoint_blocked: float = Field(description="the training thread taking snapshots")
    validation: float = Field(description="validation passes")
    lost: float = Field(description="a dead attempt holding the job until it was found lost")


class GoodputAttempt(Answer):
    number: int
    seconds: GoodputSeconds
    steps_redone: int


class Goodput(Answer):
    """Where a job's wall time went; the parts add up to ``wall_seconds``."""

    wall_seconds: float = Field(description="submitted to finished (or to now)")
    seconds: GoodputSeconds
    goodput: float | None = Field(description="training's share of the wall time")
    steps_redone: int = Field(description="the attempts' steps_redone, summed")
    attempts: list[GoodputAttempt]


class Detail(Answer):
    job: Job
    progress: DetailProgress
    attempts: list[Attempt]
    resume_steps: list[int]
    checkpoints: list[Checkpoint]
    summary: dict | None
    goodput: Goodput


class Event(Answer):
    id: int = Field(description="increasing; the `after` cursor")
    type: str = Field(
        description="submitted, queued, claimed, restored, checkpoint_skipped, first_batch, "
        "checkpoint, validated, lease_lost, preempted, released, requeued, cancelled, finished"
    )
    at: datetime
    attempt: int | None = Field(description="the attempt's number, when it is one's")
    data: dict = Field(description="the event's details, by type (see list_job_events)")


class EventsPage(Answer):
    events: list[Event]
    next: int = Field(description="the `after` of the next poll")


class LogLine(Answer):
    id: int = Field(description="increasing; the `after` cursor")
    attempt: int
    at: datetime
    level: str
    logger: str
    message: str = Field(description="scrubbed of secrets and server paths")


class LogsPage(Answer):
    lines: list[LogLine]
    next: int = Field(description="the `after` of the next poll")


class Worker(Answer):
    name: str
    hostname: str
    pid: int
    queues: list[str]
    state: str
    job_id: str | None
    job_state: str | None
    gpus: int
    started_at: datetime
    heartbeat_at: datetime
    lease_renewed_at: datetime | None


class Queue(Answer):
    name: str
    depth: int | None = Field(description="messages waiting in the broker, null if unknown")
    queued_jobs: int
    running_jobs: int
    workers: int


class Project(Answer):
    name: str
    configured: bool = Field(description="false: no settings stored, the defaults apply")
    weight: float = Field(description="fair-share weight (default 1)")
    max_running: int | None = Field(description="quota of running jobs; null: no limit")
    max_gpus: int | None = Field(description="quota of GPUs in use; null: no limit")
    running: int
    queued: int
    gpus: int = Field(description="GPUs of the workers running the project's jobs")
    share: float = Field(description="the project's part of the fleet's running jobs (0-1)")
    weight_share: float = Field(
        description="its weight's part of the weights of the projects that want to run (0-1)"
    )
    oldest_wait_seconds: float | None = Field(description="age of its oldest queued job")


class ProjectList(Answer):
    projects: list[Project]


class ProjectSettings(BaseModel):
    """The body of ``PUT /projects/{name}``: the fields to change (the others keep theirs)."""

    model_config = ConfigDict(extra="forbid")

    weight: float | None = Field(None, gt=0, le=1e6, description="fair-share weight")
    max_running: int | None = Field(
        None, ge=0, le=1_000_000, description="quota of running jobs; null: no limit"
    )
    max_gpus: int | None = Field(
        None, ge=0, le=1_000_000, description="quota of GPUs in use; null: no limit"
    )


class Fleet(Answer):
    workers: list[Worker]
    queues: list[Queue]
    stale_after_seconds: float
    projects: list[Project] = Field(
        default_factory=list, description="each project's running share against its weight"
    )


class Upload(Answer):
    url: str
    bytes: int
    sha256: str
    arrays: Any


class Health(Answer):
    status: str
    checks: dict[str, str] | None = None


class WebhookRequest(BaseModel):
    """The body of POST /webhooks."""

    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(None, description="whose jobs' events; default: the token's")
    url: str = Field(description="http(s) URL the events are POSTed to")
    events: list[Literal["state", "preempted", "resumed", "best_checkpoint"]] = Field(
        description="state: queued, running or ended (succeeded, failed, cancelled); "
        "preempted; resumed: an attempt restored a checkpoint; best_checkpoint: a committed "
        "checkpoint beat every earlier one on the job's keep_best metric (default val_loss, "
        "else loss, lower wins)"
    )


class Webhook(Answer):
    id: int
    project: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(
        description="the HMAC-SHA256 key of the Fitfleet-Signature header; shown only here"
    )


class WebhookList(Answer):
    webhooks: list[Webhook]


class WebhookDelivery(Answer):
    id: int
    event_id: int = Field(description="the Fitfleet-Event-Id header: the same on every retry")
    type: str
    event: str = Field(description="the job event it comes from")
    job_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None = Field(description="the receiver's last HTTP status, if any")
    last_error: str | None
    next_at: datetime | None = Field(description="when a pending delivery is tried next")
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveryList(Answer):
    deliveries: list[WebhookDelivery]


class Trial(Answer):
    number: int = Field(ge=0, description="0-based, in the order trials were asked for")
    job_id: str | None = Field(description="the job that trains it (null: refused at admission)")
    params: dict[str, Any] = Field(description="the sampled value of each space path")
    state: Literal["running", "succeeded", "pruned", "failed", "cancelled"]
    objective: float | None = Field(description="the objective at the trial's last epoch")
    pruned_epoch: int | None = Field(description="the epoch (from 1) after which it was pruned")
    error: str | None
    steps: int | None = Field(description="the global steps its job trained")
    created_at: datetime | None
    finished_at: datetime | None


class TrialCounts(Answer):
    running: int
    succeeded: int
    pruned: int
    failed: int
    cancelled: int


class SweepSummary(Answer):
    id: str
    name: str
    project: str
    state: Literal["running", "finished", "cancelled"]
    objective: dict
    sampler: dict
    pruner: dict
    max_trials: int
    max_parallel: int
    seed: int
    space: dict
    trial_counts: TrialCounts
    steps: int = Field(description="the global steps all its trials trained, together")
    best: Trial | None = Field(description="the succeeded trial with the best objective so far")
    created_at: datetime | None
    finished_at: datetime | None


class Verdict(Answer):
    epoch: int = Field(ge=0, description="0-based: the verdict at this epoch's end")
    value: float | None = Field(description="the objective reported (null: NaN)")
    prune: bool
    decided_at: datetime | None


class SweepTrial(Trial):
    verdicts: list[Verdict] = Field(description="the pruner's verdicts, each recorded once")


class Sweep(SweepSummary):
    trials: list[SweepTrial]


class SweepList(Answer):
    sweeps: list[SweepSummary]
    next: str | None = Field(description="the cursor of the next page, or null")


ANSWERS = (
    Error,
    Job,
    JobList,
    Attempt,
    AttemptList,
    Checkpoint,
    CheckpointList,
    Summary,
    MetricsPage,
    Detail,
    EventsPage,
    LogsPage,
    Fleet,
    Project,
    ProjectList,
    ProjectSettings,
    Upload,
    Health,
    Webhook,
    WebhookCreated,
    WebhookList,
    WebhookDeliveryList,
    JobSpec,
    WebhookRequest,
    Sweep,
    SweepList,
    SweepSpec,
)
REQUESTS = (JobSpec, ProjectSettings, SweepSpec, WebhookRequest)


def components() -> dict[str, dict]:
    """The JSON schemas of every model, keyed by name, referring to each other by $ref."""
    from pydantic.json_schema import models_json_schema

    modes = [(m, "validation" if m in REQUESTS else "serialization") for m in ANSWERS]
    _, top = models_json_schema(modes, ref_template="#/components/schemas/{model}")
    return dict(sorted(top["$defs"].items()))
