"""One member of a multi-worker job: MultiWorkerMirroredStrategy over the gang's workers.

TensorFlow configures its collective runtime once per process, before its eager context
starts (``Collective ops must be configured at program startup`` otherwise), and a worker
process has started it long before a gang forms. So each member trains in a fresh child
process (:mod:`workers.training.member`) whose ``TF_CONFIG`` lists the gang's addresses
by rank, worker 0 being the chief.

Every member runs the same attempt in step: the same model from the same checkpoint, the
same callbacks at the same steps (a snapshot reads metric sums across the workers, a
collective), each reading its own share of every global batch, so the data order stays
a pure function of (seed, epoch, step). Only the chief (rank 0) writes: the metric rows,
the checkpoints and the job's end; the others renew their own attempt's lease. A
collective that waits longer than ``FITFLEET_COLLECTIVE_TIMEOUT_SECONDS`` for a peer
fails, so a member that dies stops every other member within seconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading

import keras
import tensorflow as tf

from service.core import keras_internals
from service.core.config import Settings
from service.core.dispatch import enqueue
from service.core.errors import LeaseLost
from service.store.gangs import GangStore
from service.store.jobs import Claim
from workers.training.attempt import Attempt
from workers.training.data import formats
from workers.training.lease import Heartbeat

log = logging.getLogger("fitfleet.worker")

PEER_ERRORS = (
    tf.errors.DeadlineExceededError,
    tf.errors.UnavailableError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
)


def tf_config(addresses: list[str], rank: int) -> str:
    """``TF_CONFIG`` for member ``rank`` of a gang whose members listen at ``addresses``."""
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}})


def strategy(timeout_seconds: float):
    """MultiWorkerMirroredStrategy from ``TF_CONFIG``; call before any TensorFlow op."""
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    made = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    log.info(
        "training under MultiWorkerMirroredStrategy: %d workers, this one %s",
        made.num_replicas_in_sync,
        json.loads(os.environ["TF_CONFIG"])["task"],
    )
    return made


class Share:
    """Datasets of this member's share of every global batch: rows ``[r*n/N, (r+1)*n/N)``
    of each batch of ``n`` rows, for rank ``r`` of ``N``."""

    def __init__(self, strategy, rank: int, size: int):
        self.strategy, self.rank, self.size = strategy, rank, size

    def _cut(self, *batch):
        n = tf.shape(tf.nest.flatten(batch)[0])[0]
        lo, hi = n * self.rank // self.size, n * (self.rank + 1) // self.size
        return tf.nest.map_structure(lambda a: a[lo:hi], batch)

    def _distribute(self, make):
        return self.strategy.distribute_datasets_from_function(lambda ctx: make().map(self._cut))

    def dataset(self, train, plan, first: int, stop: int, outputs=None):
        return self._distribute(lambda: formats.dataset(train, plan, first, stop, outputs))

    def validation_data(self, val, batch_size: int, outputs=None):
        if val is None:
            return None
        data = formats.validation_data(val, batch_size, outputs)
        if isinstance(data, tuple):
            return self._distribute(
                lambda: tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
            )
        return self._distribute(lambda: data)


class AgreedHeartbeat(Heartbeat):
    """A member's lease renewal. What it hears (a cancel, a lost lease) is only a request
    until the members agree on it (:class:`Agreement`), so all of them stop alike."""

    def __init__(self, *args):
        super().__init__(*args)
        self.heard_cancel, self.heard_lost = threading.Event(), threading.Event()

    def beat(self) -> None:
        progress = self.pos.progress() if self.pos else None
        try:
            if self.jobs.renew(self.job_id, self.attempt_id, self.lease_seconds, progress):
                self.heard_cancel.set()
        except LeaseLost:
            if not self.heard_lost.is_set():
                log.warning("job %s: lease lost; the gang stops", self.job_id)
            self.heard_lost.set()
        except Exception as exc:  # noqa: BLE001 - database briefly away: keep training, retry
            log.warning("job %s: lease renewal failed (%s); retrying", self.job_id, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and not self.heard_lost.is_set():
            self.beat()


class Agreement(keras.callbacks.Callback):
    """Members agree after every batch on a stop one of them was asked for: a SIGTERM, a
    cancel or a lost lease.

    One all-reduce of three flags a batch, so every member learns the request at the same
    step: they then take the same checkpoint there (a snapshot is a collective) and stop
    together, as a single worker does. Placed before the lease guard, which acts on it.
    """

    def __init__(self, strategy, asked: threading.Event, agreed: threading.Event):
        super().__init__()
        self.strategy, self.asked, self.agreed = strategy, asked, agreed
        self.heartbeat: AgreedHeartbeat | None = None  # set once the attempt has made it

    def _sync(self) -> None:
        hb = self.heartbeat
        flags = [self.asked.is_set(), hb.heard_cancel.is_set(), hb.heard_lost.is_set()]
        total = self.strategy.reduce("SUM", tf.constant(flags, tf.float32), axis=None)
        preempt, cancel, lost = (float(v) > 0 for v in total.numpy())
        if lost:
            hb.lost.set()
        if cancel:
            hb.cancelled.set()
        if preempt:
            self.agreed.set()

    def on_train_batch_end(self, batch, logs=None):
        self._sync()

    def on_test_batch_end(self, batch, logs=None):
        self._sync()


class Silent(keras.callbacks.Callback):
    """A member's stand-in for the metrics recorder: the chief records the rows."""

    def flush(self) -> bool:
        return True

    def record_system(self, values: dict) -> None:
        """The chief's samples stand for the job; a member's are not stored."""

    def close(self, timeout: float = 0) -> bool:
        return True


class Discard:
    """A member's stand-in for the checkpoint saver: the chief commits checkpoints."""

    def __init__(self):
        self.lost = threading.Event()

    def submit(self, take) -> None:
        # Every member takes the snapshot the chief takes: reading the metric variables
        # (sync-on-read) is an all-reduce across the gang, so all must join it.
        take()

    def drain(self, timeout=None) -> bool:
        return True

    def close(self, timeout=None) -> bool:
        return True


class MemberAttempt(Attempt):
    """One member's share of a gang's attempt (rank 0, the chief, writes for the job)."""

    def __init__(self, claim: Claim, settings: Settings, asked, *, gang_id, rank, size, made):
        """``asked`` is set when this member is asked to stop (SIGTERM)."""
        agreed = threading.Event()
        agreement = Agreement(made, asked, agreed)
        super().__init__(claim, settings, agreed, [agreement])
        self.gang_id, self.rank, self.size = gang_id, rank, size
        self.strategy = made
        self.feed = Share(made, rank, size)
        self.gangs = GangStore(settings.database_url)
        self.heartbeat = agreement.heartbeat = AgreedHeartbeat(
            self.jobs if rank == 0 else self.gangs,
            claim.job_id,
            claim.attempt_id,
            None,
            settings.lease_seconds,
            settings.heartbeat_seconds,
        )

    def run(self) -> str:
        outcome = super().run()
        if outcome == "peer_lost":
            self._break("a member of the gang stopped answering (collective timed out)")
            return "lost"
        if self.rank and outcome in ("succeeded", "cancelled", "failed"):
            self.gangs.end_member(self.claim.attempt_id, outcome)
        return outcome

    def _run(self) -> str:
        try:
            return super()._run()
        except PEER_ERRORS as exc:
            log.warning("job %s rank %d: peer lost: %s", self.claim.job_id, self.rank, exc)
            return "peer_lost"

    def _recorder(self, pos):
        return super()._recorder(pos) if self.rank == 0 else Silent()

    def _saver(self, **kw):
        return super()._saver(**kw) if self.rank == 0 else Discard()

    def _before_fit(self, model) -> None:
        keras_internals.multi_worker_fit(model)

    def _conclude(self, outcome: str, model) -> str:
        if self.rank == 0:
            return super()._conclude(outcome, model)
        log.info("job %s rank %d: training ended (%s)", self.claim.job_id, self.rank, outcome)
        self.heartbeat.stop()
        if outcome == "preempted":  # the chief committed the checkpoint and hands it back
            self.gangs.end_member(self.claim.attempt_id, "preempted", "preempted", "stopped")
        elif outcome == "lost":
            self._break(f"member {self.rank} lost the job")
        log.info("job %s rank %d: %s", self.claim.job_id, self.rank, outcome)
        return outcome

    def _finish(self, state_name: str, **kw) -> None:
        if self.rank == 0:
            super()._finish(state_name, **kw)
        else:
            self.gangs.end_member(
                self.claim.attempt_id, state_name, kw.get("error_code"), kw.get("error_message")
            )

    def _break(self, why: str) -> None:
        """End the gang; send the job again when it went back to the queue."""
        try:
            job = self.gangs.break_gang(self.gang_id, "gang_member_lost", why)
        except LeaseLost:
            job = None
        if job is not None:
            enqueue(
                self.settings.broker_url,
                self.settings.home,
                job["id"],
                job["queue"],
                int(job["priority"]),
            )
            log.info("job %s: gang broken (%s); requeued", job["id"], why)
