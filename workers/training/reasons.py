"""The reason of a training-time error, in Keras's or TensorFlow's own words, made safe to show.

Keras wraps a layer's error in "Exception encountered when calling X.call()." and prints
the real message in bold; TensorFlow's graph errors start with the stack of the node that
failed. :func:`reason` finds the sentence that says what is wrong, :func:`scrub` removes
server paths and secrets from it; :func:`classify` gives a failed job its error code and
message.
"""

from __future__ import annotations

import re

import tensorflow as tf

from service.core.errors import FitfleetError

_PATH = re.compile(r"(?<![:/\w])(/[\w.\-]+){2,}")
_SECRET = re.compile(
    r"(?i)\b(\w*(?:secret|password|passwd|token|api_key|access_key)\w*)"
    r"(\s*[=:]\s*)(['\"]?)[^\s'\",;)]+"
)
_USERINFO = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")
_AWS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOLD = re.compile(r"\x1b\[1m(.*?)\x1b\[0m", re.DOTALL)
_KERAS_WRAPPER = "Exception encountered when calling"
_TF_NOISE = re.compile(
    r"^(Graph execution error:|Detected at node|File \"|\[\[|\{\{|"
    r"Traceback \(most recent call last\):|<stack traces unavailable>)"
)
RAISED = re.compile(r"^(?:\w+\.)*(\w+): (.*)$")  # "service.core.errors.InvalidSpec: ..."
_TF_TAIL = re.compile(r"\s*(\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\])")


def scrub(text: str) -> str:
    """``text`` without server paths, credentials in URLs, or secret-looking values."""
    text = _USERINFO.sub(r"\1<redacted>@", text)
    text = _SECRET.sub(r"\1\2\3<redacted>", text)
    text = _AWS_KEY.sub("<redacted>", text)
    return _PATH.sub("<path>", text)


def reason(exc: BaseException) -> str:
    """The sentence that says what went wrong, as Keras or TensorFlow wrote it.

    Keras wraps a layer's error in "Exception encountered when calling X.call()." with
    the real message in bold (and as the exception's context); TensorFlow's graph errors
    put it after the stack of the node that failed.
    """
    text = exc.message if isinstance(exc, tf.errors.OpError) else str(exc)
    if _KERAS_WRAPPER in text:
        bold = _BOLD.search(text)
        inner = exc.__cause__ or exc.__context__
        if bold:
            text = bold.group(1)
        elif inner is not None and inner is not exc:
            return reason(inner)
    lines = [_ANSI.sub("", line) for line in text.splitlines()]
    kept = [
        _TF_TAIL.sub("", line).strip()
        for line in lines
        if line.strip() and not line[:1].isspace() and not _TF_NOISE.match(line.strip())
    ]
    out: list[str] = []
    for line in kept:  # a Python error inside tf.data is quoted twice: keep it once
        raised = RAISED.match(line)
        short = f"{raised.group(1)}: {raised.group(2)}" if raised else line
        if line and not line.startswith(_KERAS_WRAPPER) and short not in out:
            out.append(short)
    return " ".join(out) or type(exc).__name__


_OWN_ERRORS = {
    "InvalidSpec": "invalid_spec",
    "NotFound": "data_not_found",
    "StorageError": "storage_error",
}


def classify(exc: BaseException) -> tuple[str, str]:
    """An error code and a message safe to show the job's owner (no server paths, no secrets)."""
    if isinstance(exc, FitfleetError):
        code = {"invalid_spec": "invalid_spec", "not_found": "data_not_found"}.get(
            exc.code, exc.code
        )
        return code, exc.message
    if isinstance(exc, (tf.errors.ResourceExhaustedError, MemoryError)):
        return "resource_exhausted", "the worker ran out of memory training this job"
    text = scrub(reason(exc))
    inner = RAISED.match(text)
    if isinstance(exc, tf.errors.OpError) and inner and inner.group(1) in _OWN_ERRORS:
        # one of fitfleet's own errors, raised while tf.data read the data
        return _OWN_ERRORS[inner.group(1)], inner.group(2)[:1000]
    message = f"{type(exc).__name__}: {text}"[:1000]
    if isinstance(exc, (ValueError, TypeError, tf.errors.InvalidArgumentError)):
        return "training_error", message
    return "internal_error", message
