"""Webhooks and their durable outbox: hooks per project, deliveries made from job events.

A hook asks for kinds of news: ``state`` (the job was queued, started running, or ended),
``preempted``, ``resumed`` (an attempt restored a checkpoint) and ``best_checkpoint`` (a
committed checkpoint whose monitored metric beats every earlier one of the job). Filling
the outbox turns each matching ``job_events`` row into one ``webhook_deliveries`` row;
the unique (hook, event) index makes the first write win, so however many delivery loops
run, or however often one restarts, an event is queued once per hook. A delivery is taken
(its ``next_at`` moved past the send's timeout) before it is sent, so a process that dies
mid-send leaves it to be sent again: at least once on the wire, with the event id for the
receiver to drop a duplicate.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from service.core.errors import BadRequest, NotFound
from service.store import events as ev
from service.store.db import get_engine, session_scope
from service.store.rollups import insert_for
from service.store.tables import Checkpoint, Job, JobEvent, Webhook, WebhookDelivery, utcnow
from service.store.views import iso

KINDS = ("state", "preempted", "resumed", "best_checkpoint")
SOURCES = {  # job event type -> the kind of news it is
    ev.SUBMITTED: "state",
    ev.CLAIMED: "state",
    ev.REQUEUED: "state",
    ev.FINISHED: "state",
    ev.PREEMPTED: "preempted",
    ev.RESTORED: "resumed",
    ev.CHECKPOINT: "best_checkpoint",
}
STATE_AFTER = {ev.SUBMITTED: "queued", ev.CLAIMED: "running", ev.REQUEUED: "queued"}
SETTLE_SECONDS = 30.0  # an event older than this has committed: the cursor may pass it
SCAN = 500  # events looked at per hook and pass


def check_kinds(kinds: object) -> list[str]:
    """The hook's kinds, validated; BadRequest naming the allowed ones otherwise."""
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise BadRequest(
            f"events must be a non-empty list of: {', '.join(KINDS)}",
            details={"field": "events"},
        )
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise BadRequest(
            f"unknown webhook event {unknown[0]!r}; allowed: {', '.join(KINDS)}",
            details={"field": "events"},
        )
    return [k for k in KINDS if k in kinds]


class WebhookStore:
    """Hooks (admin side), the outbox (filled and drained by the delivery loop), the log."""

    def __init__(self, database_url: str):
        self.url = database_url

    # -- hooks -----------------------------------------------------------------------

    def create(self, project: str, url: str, kinds: list[str]) -> dict:
        """A new hook for events from now on; its view includes the signing secret (once)."""
        with session_scope(self.url) as s:
            cursor = s.scalar(select(func.max(JobEvent.id))) or 0
            hook = Webhook(
                project=project,
                url=url,
                events=check_kinds(kinds),
                secret=secrets.token_hex(32),
                cursor=cursor,
                created_at=utcnow(),
            )
            s.add(hook)
            s.flush()
            return {**hook_view(hook), "secret": hook.secret}

    def list(self, project: str | None = None) -> list[dict]:
        with session_scope(self.url) as s:
            q = select(Webhook).order_by(Webhook.id)
            if project is not None:
                q = q.where(Webhook.project == project)
            return [hook_view(h) for h in s.scalars(q).all()]

    def get(self, hook_id: int, project: str | None = None) -> Webhook:
        if not 0 < hook_id < 2**31:  # ids are INTEGER: a larger one names no hook
            raise NotFound(f"no webhook with id {hook_id}")
        with session_scope(self.url) as s:
            hook = s.get(Webhook, hook_id)
            if hook is None or (project is not None and hook.project != project):
                raise NotFound(f"no webhook with id {hook_id}")
            s.expunge(hook)
            return hook

    def delete(self, hook_id: int, project: str | None = None) -> None:
        """Remove a hook and its delivery log."""
        self.get(hook_id, project)
        with session_scope(self.url) as s:
            s.execute(delete(WebhookDelivery).where(WebhookDelivery.hook_id == hook_id))
            s.execute(delete(Webhook).where(Webhook.id == hook_id))

    def deliveries(self, hook_id: int, project: str | None = None, limit: int = 100) -> list:
        """The hook's delivery log, newest first."""
        self.get(hook_id, project)
        with session_scope(self.url) as s:
            rows = s.execute(
                select(WebhookDelivery, JobEvent.job_id, JobEvent.type)
                .join(JobEvent, JobEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.hook_id == hook_id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            ).all()
            return [delivery_view(d, job_id, type) for d, job_id, type in rows]

    # -- the outbox ------------------------------------------------------------------

    def fill(self, now: datetime | None = None) -> int:
        """Queue a delivery for each new matching event of every hook; returns how many
        rows were looked at (a delivery already there is left as it is)."""
        now = now or utcnow()
        with session_scope(self.url) as s:
            hooks = s.scalars(select(Webhook).order_by(Webhook.id)).all()
            return sum(self._fill_hook(s, hook, now) for hook in hooks)

    def _fill_hook(self, s, hook: Webhook, now: datetime) -> int:
        types = [t for t, kind in SOURCES.items() if kind in hook.events]
        rows = s.execute(
            select(JobEvent.id, JobEvent.job_id, JobEvent.type, JobEvent.at, JobEvent.data)
            .where(
                JobEvent.project == hook.project,
                JobEvent.id > hook.cursor,
                JobEvent.type.in_(types),
            )
            .order_by(JobEvent.id)
            .limit(SCAN)
        ).all()
        wanted = [r for r in rows if r.type != ev.CHECKPOINT or _is_best(s, r.job_id, r.data)]
        if wanted:
            insert = insert_for(get_engine(self.url).dialect.name)
            values = [
                {
                    "hook_id": hook.id,
                    "event_id": r.id,
                    "kind": SOURCES[r.type],
                    "state": "pending",
                    "attempts": 0,
                    "next_at": now,
                    "created_at": now,
                }
                for r in wanted
            ]
            s.execute(insert(WebhookDelivery).on_conflict_do_nothing(), values)
        settled = now - timedelta(seconds=SETTLE_SECONDS)
        cursor = hook.cursor
        for r in rows:  # past the events surely committed, in id order
            if r.at > settled:
                break
            cursor = r.id
        if cursor != hook.cursor:
            s.execute(update(Webhook).where(Webhook.id == hook.id).values(cursor=cursor))
        return len(rows)

    def take(self, now: datetime, hold_seconds: float, limit: int = 20) -> list[dict]:
        """Due deliveries, each taken by moving its ``next_at`` ``hold_seconds`` ahead and
        counting the attempt (one guarded UPDATE each, so two loops never take the same)."""
        out = []
        with session_scope(self.url) as s:
            due = s.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_at <= now)
                .order_by(WebhookDelivery.next_at, WebhookDelivery.id)
                .limit(limit)
            ).all()
        for delivery_id, attempts in due:
            with session_scope(self.url) as s:
                taken = s.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.state == "pending",
                        WebhookDelivery.attempts == attempts,
                        WebhookDelivery.next_at <= now,
                    )
                    .values(
                        next_at=now + timedelta(seconds=hold_seconds),
                        attempts=WebhookDelivery.attempts + 1,
                    )
                ).rowcount
                if taken:
                    out.append(_outgoing(s, delivery_id))
        return out

    def settle(
        self,
        delivery_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str | None,
        retry_at: datetime | None,
        now: datetime | None = None,
    ) -> None:
        """Record a try: delivered, failed for good (``retry_at`` None) or due again."""
        now = now or utcnow()
        values: dict = {"last_status": status, "last_error": (error or None) and error[:500]}
        if ok:
            values.update(state="delivered", delivered_at=now, last_error=None)
        elif retry_at is None:
            values.update(state="failed")
        else:
            values.update(next_at=retry_at)
        with session_scope(self.url) as s:
            s.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(values)
            )


def _is_best(s, job_id: str, data: dict) -> bool:
    """Whether the checkpoint at ``data["step"]`` beats every earlier one of the job on the
    job's ``keep_best`` metric (default: val_loss where logged, else loss; lower wins)."""
    spec = s.scalar(select(Job.spec).where(Job.id == job_id)) or {}
    keep = (spec.get("checkpoint") or {}).get("keep_best") or {}
    rows = s.execute(
        select(Checkpoint.step, Checkpoint.logs)
        .where(Checkpoint.job_id == job_id, Checkpoint.step <= data.get("step", -1))
        .order_by(Checkpoint.step)
    ).all()
    if not rows or rows[-1].step != data.get("step"):
        return False
    monitor = keep.get("monitor") or ("val_loss" if "val_loss" in rows[-1].logs else "loss")
    sign = -1.0 if keep.get("mode") == "max" else 1.0
    values = [_number(r.logs.get(monitor)) for r in rows]
    if values[-1] is None:
        return False
    earlier = [sign * v for v in values[:-1] if v is not None]
    return not earlier or sign * values[-1] < min(earlier)


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _outgoing(s, delivery_id: int) -> dict:
    """What the loop needs to send one delivery: where, the secret and the JSON payload."""
    d, hook, e = s.execute(
        select(WebhookDelivery, Webhook, JobEvent)
        .join(Webhook, Webhook.id == WebhookDelivery.hook_id)
        .join(JobEvent, JobEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    payload = {
        "id": str(e.id),
        "type": d.kind,
        "event": e.type,
        "at": iso(e.at),
        "project": e.project,
        "job_id": e.job_id,
        "attempt": e.attempt,
        "data": e.data or {},
    }
    if d.kind == "state":
        payload["state"] = STATE_AFTER.get(e.type) or (e.data or {}).get("state")
    return {
        "id": d.id,
        "attempts": d.attempts,
        "url": hook.url,
        "secret": hook.secret,
        "event_id": e.id,
        "payload": payload,
    }


def hook_view(h: Webhook) -> dict:
    return {
        "id": h.id,
        "project": h.project,
        "url": h.url,
        "events": list(h.events),
        "created_at": iso(h.created_at),
    }


def delivery_view(d: WebhookDelivery, job_id: str, type: str) -> dict:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "type": d.kind,
        "event": type,
        "job_id": job_id,
        "state": d.state,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "next_at": iso(d.next_at) if d.state == "pending" else None,
        "created_at": iso(d.created_at),
        "delivered_at": iso(d.delivered_at),
    }
