"""Webhook delivery: the address rules for hook URLs, signing, and the loop that drains
the outbox (:mod:`service.store.webhooks`) beside the reaper.

Each delivery is a POST of the event's JSON with three headers:

- ``Fitfleet-Event-Id``: the job event's id, the same on every retry (de-duplicate by it);
- ``Fitfleet-Timestamp``: Unix seconds when this try was signed (refuse old ones);
- ``Fitfleet-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed by the hook's secret,
  of ``"<timestamp>.<body>"``.

A 2xx answer delivers it; anything else (or no answer) is retried after
``FITFLEET_WEBHOOK_BACKOFF_SECONDS``, doubling up to ``..._BACKOFF_MAX_SECONDS``, until
``FITFLEET_WEBHOOK_MAX_ATTEMPTS`` tries; redirects are not followed. Hook URLs obey the rules
of data locations: never the cloud metadata service, and no private, loopback or
link-local address (checked at registration and again, after name resolution, before each
send) unless ``FITFLEET_WEBHOOK_PRIVATE=on``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlparse

from service.admission.policy import METADATA_HOSTS, _address, check_host
from service.core.config import Settings
from service.core.errors import InvalidSpec
from service.store.tables import utcnow
from service.store.webhooks import WebhookStore

log = logging.getLogger("fitfleet.webhooks")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``Fitfleet-Signature`` header of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_url(url: object, settings: Settings, resolve: bool = True) -> str:
    """The hook URL if the rules allow it; InvalidSpec (422, ``details.rule``) otherwise."""
    field = "url"
    if not isinstance(url, str) or len(url) > 2000:
        raise InvalidSpec("url: must be an http(s) URL string", details={"field": field})
    try:
        parsed = urlparse(url)
        host, _ = parsed.hostname, parsed.port
    except ValueError:
        raise InvalidSpec("url: cannot be parsed", details={"field": field}) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidSpec(
            "url: a webhook needs an http:// or https:// URL with a host",
            details={"field": field, "rule": "scheme"},
        )
    if "@" in parsed.netloc:
        raise InvalidSpec(
            "url: must not carry credentials (user:password@); the signature proves the sender",
            details={"field": field, "rule": "credentials"},
        )
    _check_address(host, settings)  # the name as written first, then what it resolves to
    for address in _resolved(host) if resolve else ():
        _check_address(address, settings)
    return url


def _resolved(host: str) -> list[str]:
    """The addresses ``host`` resolves to now (none if it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({info[4][0] for info in infos})


def _check_address(name: str, settings: Settings) -> None:
    if settings.webhook_private.lower() != "on":
        check_host(name, "url")
        return
    address = _address(name.strip("[]").lower().rstrip("."))
    if name.lower().rstrip(".") in METADATA_HOSTS or str(address) in METADATA_HOSTS:
        raise InvalidSpec(
            "url: the cloud metadata service cannot be called",
            details={"field": "url", "rule": "metadata_address"},
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx is an answer like any other non-2xx: retried, logged


OPENER = urllib.request.build_opener(_NoRedirects)


def send(item: dict, settings: Settings) -> tuple[bool, int | None, str | None]:
    """POST one delivery; returns (delivered, HTTP status, error)."""
    try:
        check_url(item["url"], settings)
    except InvalidSpec as exc:
        return False, None, exc.message
    body = json.dumps(item["payload"], separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    req = urllib.request.Request(item["url"], data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", "fitfleet-webhooks/1")
    req.add_header("Fitfleet-Event-Id", str(item["event_id"]))
    req.add_header("Fitfleet-Timestamp", timestamp)
    req.add_header("Fitfleet-Signature", sign(item["secret"], timestamp, body))
    try:
        with OPENER.open(req, timeout=settings.webhook_timeout_seconds) as resp:
            return 200 <= resp.status < 300, resp.status, None
    except urllib.error.HTTPError as exc:
        return False, exc.code, f"the receiver answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, None, f"no answer: {getattr(exc, 'reason', exc)}"


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try."""
    first, most = settings.webhook_backoff_seconds, settings.webhook_backoff_max_seconds
    return min(most, first * 2 ** max(0, attempts - 1))


def deliver_once(settings: Settings, store: WebhookStore | None = None) -> int:
    """One pass: fill the outbox from new events, send what is due; returns tries made."""
    store = store or WebhookStore(settings.database_url)
    store.fill()
    now = utcnow()
    # held past two timeouts: a process that dies mid-send leaves it due again soon after
    items = store.take(now, hold_seconds=2 * settings.webhook_timeout_seconds + 5)
    for item in items:
        ok, status, error = send(item, settings)
        retry_at = None
        if not ok and item["attempts"] < settings.webhook_max_attempts:
            retry_at = utcnow() + timedelta(seconds=backoff(settings, item["attempts"]))
        store.settle(item["id"], ok=ok, status=status, error=error, retry_at=retry_at)
        if not ok:
            log.warning(
                "webhook delivery %d (event %d) try %d failed: %s%s",
                item["id"],
                item["event_id"],
                item["attempts"],
                error,
                "" if retry_at else "; giving up",
            )
    return len(items)


def run(settings: Settings, stop: threading.Event) -> None:
    """Deliver every ``webhook_interval`` seconds until ``stop`` is set."""
    store = WebhookStore(settings.database_url)
    while not stop.is_set():
        try:
            deliver_once(settings, store)
        except Exception:
            log.exception("webhook delivery pass failed; retrying")
        stop.wait(settings.webhook_interval)


def start(settings: Settings, stop: threading.Event) -> threading.Thread:
    """The delivery loop in a daemon thread of its own (so a slow receiver never delays
    the reaper's sweeps)."""
    thread = threading.Thread(target=run, args=(settings, stop), name="webhooks", daemon=True)
    thread.start()
    return thread
