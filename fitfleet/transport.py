"""The client's HTTP side: the API's errors as exceptions, and one request over urllib."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class FitfleetAPIError(Exception):
    """An error answer of the API, with the fields of its error envelope."""

    def __init__(self, status: int | None, code: str, message: str, details: object = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class FitfleetConnectionError(FitfleetAPIError):
    """The API could not be reached (refused, timed out, name not resolved)."""

    def __init__(self, url: str, reason: object):
        super().__init__(
            None,
            "connection_error",
            f"cannot reach the fitfleet API at {url} ({reason}); "
            "is `fitfleet api` running and FITFLEET_API_URL right?",
        )
        self.url = url


def open_url(
    base: str,
    method: str,
    path: str,
    token: str | None,
    timeout: float,
    body: object = None,
    query: dict | None = None,
    raw: tuple | None = None,
):
    """An HTTP answer; ``raw`` is ``(binary file, length)`` sent as the body as it is."""
    url = base + path
    if query:
        params = {k: v for k, v in query.items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data if raw is None else raw[0], method=method)
    req.add_header("Accept", "application/json")
    if raw is not None:
        req.add_header("Content-Type", "application/octet-stream")
        req.add_header("Content-Length", str(raw[1]))
    elif data is not None:
        req.add_header("Content-Type", "application/json")
    if token:  # not carried to a redirect target such as a presigned URL
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _api_error(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise FitfleetConnectionError(base, getattr(exc, "reason", exc)) from None


def read_json(resp, base: str) -> dict:
    """The JSON body of an answer; a connection lost while reading it is a connection error."""
    try:
        raw = resp.read()
    except OSError as exc:
        raise FitfleetConnectionError(base, exc) from None
    return decode(raw)


def quote_id(job_id: str) -> str:
    """A job id made safe as one segment of a URL path."""
    return urllib.parse.quote(str(job_id), safe="")


def decode(raw: bytes) -> dict:
    """An answer body as JSON (an empty body is ``{}``)."""
    return json.loads(raw.decode("utf-8")) if raw else {}


def _api_error(exc: urllib.error.HTTPError) -> FitfleetAPIError:
    try:
        raw = exc.read()
    except Exception:  # noqa: BLE001 - the body is only a better message
        raw = b""
    try:
        err = json.loads(raw.decode("utf-8"))["error"]
        return FitfleetAPIError(
            exc.code,
            err.get("code") or "error",
            err.get("message") or str(exc.reason),
            err.get("details"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        text = raw.decode("utf-8", "replace").strip()[:200] or str(exc.reason)
        return FitfleetAPIError(exc.code, f"http_{exc.code}", text)
