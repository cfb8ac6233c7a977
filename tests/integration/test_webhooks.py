"""Webhooks on SQLite and PostgreSQL: the outbox is filled once per (hook, event), and a
receiver on loopback that is down for the first 20 s, while the delivery loop is killed
and restarted, still gets every event once with a valid signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from service.store.jobs import JobStore
from service.store.tables import utcnow
from service.store.webhooks import WebhookStore
from testbed.services import free_port


def story(url: str, project: str = "p") -> tuple[str, int]:
    """A job queued, started, preempted, resumed with three checkpoints (the second the
    best), and succeeded; returns (job id, the number of events hooks for every kind get).
    """
    jobs = leases = JobStore(url)
    job = jobs.create(
        {"name": "hooked", "model": {}}, epochs=1, summary=None, max_attempts=3, project=project
    )["id"]
    first = jobs.claim(job, "w1", 60)
    leases.release(job, first.attempt_id, "the worker was asked to stop")
    second = jobs.claim(job, "w2", 60)
    leases.note(job, second.attempt_id, "restored", {"step": 4})
    for step, val_loss in ((6, 0.5), (8, 0.4), (10, 0.45)):
        record = {
            "step": step,
            "epoch": 0,
            "batch": step,
            "uri": f"file:///c/{step}",
            "files": {},
            "bytes": 1,
            "sha256": "0" * 64,
            "logs": {"val_loss": val_loss},
        }
        leases.commit_checkpoint(job, second.attempt_id, record)
    leases.finish(job, second.attempt_id, "succeeded")
    # state: submitted, claimed, requeued, claimed, finished; preempted; resumed; best x2
    return job, 5 + 1 + 1 + 2


def test_outbox_holds_each_matching_event_once_per_hook(db_url):
    hooks = WebhookStore(db_url)
    every = hooks.create(
        "p", "https://example.com/a", ["state", "preempted", "resumed", "best_checkpoint"]
    )
    states = hooks.create("p", "https://example.com/b", ["state"])
    other = hooks.create("q", "https://example.com/c", ["state"])
    assert len(every["secret"]) == 64 and "secret" not in hooks.list()[0]
    job, expected = story(db_url)
    story(db_url, project="r")  # no hook for project r
    for _ in range(2):  # a second pass, and a second store (another loop), add nothing
        WebhookStore(db_url).fill()
    kinds = [d["type"] for d in reversed(hooks.deliveries(every["id"]))]
    assert kinds == [
        "state",
        "state",
        "preempted",
        "state",
        "state",
        "resumed",
        "best_checkpoint",
        "best_checkpoint",
        "state",
    ]
    assert len(kinds) == expected
    best = [d for d in hooks.deliveries(every["id"]) if d["type"] == "best_checkpoint"]
    assert {d["job_id"] for d in best} == {job}
    assert len(hooks.deliveries(states["id"])) == 5
    assert hooks.deliveries(other["id"]) == []
    hooks.fill(now=utcnow() + timedelta(minutes=5))  # events settled: the cursor moves on
    assert hooks.get(every["id"]).cursor > 0
    assert len(hooks.deliveries(every["id"])) == expected

    taken = hooks.take(utcnow(), hold_seconds=60)
    assert len({t["id"] for t in taken}) == len(taken) == expected + 5
    assert hooks.take(utcnow(), hold_seconds=60) == []  # held: no second sender
    first = taken[0]
    assert first["payload"]["state"] == "queued" and first["payload"]["event"] == "submitted"
    hooks.settle(
        first["id"], ok=False, status=500, error="the receiver answered 500", retry_at=utcnow()
    )
    again = hooks.take(utcnow() + timedelta(seconds=1), hold_seconds=60)
    assert [t["id"] for t in again] == [first["id"]] and again[0]["attempts"] == 2
    hooks.settle(first["id"], ok=True, status=204, error=None, retry_at=None)
    log = {d["id"]: d for d in hooks.deliveries(every["id"])}
    assert log[first["id"]]["state"] == "delivered" and log[first["id"]]["attempts"] == 2
    hooks.delete(every["id"])
    assert [h["id"] for h in hooks.list()] == [states["id"], other["id"]]


class Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((dict(self.headers), body, time.monotonic()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_receiver_down_for_20_s_gets_every_event_once_signed(stack, pg_clean):
    port = free_port()
    stack.env.update(
        FITFLEET_WEBHOOK_PRIVATE="on",  # the receiver is on loopback
        FITFLEET_WEBHOOK_BACKOFF_SECONDS="1",
        FITFLEET_WEBHOOK_BACKOFF_MAX_SECONDS="4",
        FITFLEET_WEBHOOK_TIMEOUT_SECONDS="2",
        FITFLEET_WEBHOOK_INTERVAL="0.2",
    )
    stack.start_api()
    status, hook = stack.http(
        "POST",
        "/api/v1/webhooks",
        {
            "project": "p",
            "url": f"http://127.0.0.1:{port}/hook",
            "events": ["state", "preempted", "resumed", "best_checkpoint"],
        },
    )
    assert status == 201, hook
    stack.start_reaper()
    t0 = time.monotonic()
    job, expected = story(pg_clean)
    time.sleep(8)
    stack.kill("reaper")  # SIGKILL mid-retries: the outbox is in the database
    stack.procs["reaper"].wait(10)
    stack.spawn("reaper2", "reaper")
    time.sleep(max(0.0, 20 - (time.monotonic() - t0)))
    Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    up = time.monotonic()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while len(Receiver.got) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # no late duplicate
    finally:
        server.shutdown()
    ids = [h["Fitfleet-Event-Id"] for h, _, _ in Receiver.got]
    assert len(ids) == len(set(ids)) == expected, ids
    for headers, body, _ in Receiver.got:
        ts = headers["Fitfleet-Timestamp"]
        mac = hmac.new(hook["secret"].encode(), f"{ts}.".encode() + body, hashlib.sha256)
        assert hmac.compare_digest(headers["Fitfleet-Signature"], "sha256=" + mac.hexdigest())
        assert abs(time.time() - int(ts)) < 60
        payload = json.loads(body)
        assert payload["id"] == headers["Fitfleet-Event-Id"] and payload["job_id"] == job
    kinds = [json.loads(b)["type"] for _, b, _ in Receiver.got]
    assert sorted(kinds) == sorted(
        ["state"] * 5 + ["preempted", "resumed", "best_checkpoint", "best_checkpoint"]
    )
    assert max(at for _, _, at in Receiver.got) - up < 10  # backoff capped at 4 s
    status, log = stack.http("GET", f"/api/v1/webhooks/{hook['id']}/deliveries")
    assert status == 200
    assert {d["state"] for d in log["deliveries"]} == {"delivered"}
    assert min(d["attempts"] for d in log["deliveries"]) >= 3  # it was retried while down
