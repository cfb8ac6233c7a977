"""The spec's ``distribute`` field: one device, every GPU of a worker, or several workers.

``"mirrored"`` trains under MirroredStrategy on one worker's devices; ``{"strategy":
"multi_worker_mirrored", "workers": N}`` on N workers together (at most
``FITFLEET_MAX_JOB_WORKERS``), each training an equal share of every batch.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationInfo

from service.admission import spec_fields as f
from service.admission.spec_fields import Section, check

STRATEGIES = (None, "mirrored")


class MultiWorker(Section):
    """Training on several workers at once under TensorFlow's MultiWorkerMirroredStrategy."""

    REQUIRED: ClassVar[dict[str, str]] = {
        "strategy": '{where} needs "strategy": "multi_worker_mirrored"',
        "workers": "{where} needs workers: how many worker processes train the job together",
    }

    strategy: Literal["multi_worker_mirrored"] = Field(
        description="the job's data-parallel engine across worker processes"
    )
    workers: Annotated[int, Field(ge=1), check(f.integer(1))] = Field(
        description="worker processes that train the job together (at most "
        "FITFLEET_MAX_JOB_WORKERS); each reads its share of every global batch"
    )


def check_distribute(value: object, info: ValidationInfo) -> object:
    if not isinstance(value, dict):
        return f.one_of(STRATEGIES, 'null, "mirrored" or a multi-worker object')(value)
    extra = sorted(set(value) - {"strategy", "workers"})
    if extra:
        raise f.problem(f"{{path}} takes strategy and workers only, not {', '.join(extra)}")
    if value.get("strategy") != "multi_worker_mirrored":
        raise f.problem(
            '{path}.strategy must be "multi_worker_mirrored", got '
            f"{f.show(value.get('strategy'))}"
        )
    workers, limit = value.get("workers"), info.context["settings"].max_job_workers
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise f.problem(
            "{path}.workers must be how many workers train the job together (an integer "
            f"from 1), got {f.show(workers)}"
        )
    if workers > limit:
        raise f.problem(
            f"{{path}}.workers: {workers} workers is over the limit of {limit} "
            "(FITFLEET_MAX_JOB_WORKERS); ask for fewer"
        )
    return MultiWorker(strategy="multi_worker_mirrored", workers=workers)


def check_multi_worker(workers: int, batch_size: int, checkpoint) -> None:
    """What a multi-worker job asks of the rest of the spec."""
    if batch_size % workers:
        raise f.problem(
            f"fit.batch_size {batch_size} must be a multiple of distribute.workers "
            f"({workers}): each worker trains an equal share of every batch",
            sub="fit.batch_size",
        )
    if checkpoint.every_seconds:
        raise f.problem(
            "checkpoint.every_seconds cannot be used with distribute.workers: the "
            "workers of a job checkpoint at the same steps; use every_n_batches",
            sub="checkpoint.every_seconds",
        )
