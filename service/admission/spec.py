"""The job spec: checks a submitted spec and fills every default (pure JSON, no Keras).

``normalize(raw)`` validates ``raw`` with :class:`service.admission.specmodel.JobSpec`
and returns the spec in the one shape the workers read, or raises ``InvalidSpec`` (422)
or ``BadRequest`` (400) whose message names the field at fault; with several problems,
``details.problems`` lists each one with its field path.
"""

from __future__ import annotations

from pydantic import ValidationError

from service.admission.allowed import CALLBACKS, DATA_FORMATS, MODEL_CLASSES
from service.admission.spec_fields import show
from service.admission.spec_safety import check_depth, operator_allowlist
from service.admission.specmodel import JobSpec, plain
from service.core.config import Settings, get_settings
from service.core.errors import BadRequest, InvalidSpec

__all__ = ["CALLBACKS", "DATA_FORMATS", "MODEL_CLASSES", "normalize"]


def normalize(raw: object, settings: Settings | None = None) -> dict:
    """The spec with every default filled; raises InvalidSpec or BadRequest."""
    settings = settings or get_settings()
    if not isinstance(raw, dict):
        raise BadRequest("the job spec must be a JSON object", code="bad_spec")
    check_depth(raw)
    context = {"settings": settings, "allow": operator_allowlist(settings.keras_allow)}
    try:
        spec = JobSpec.model_validate(raw, context=context)
    except ValidationError as exc:
        raise refusal(exc) from None
    return plain(spec)


def refusal(exc: ValidationError) -> InvalidSpec:
    """The 422 for a spec's validation errors: the first one's message, each one's path."""
    problems = sorted((_problem(err) for err in exc.errors()), key=_model_first)
    first = problems[0]
    message = first["message"]
    details = {k: v for k, v in first.items() if k != "message"}
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more, listed in details.problems)"
        details["problems"] = [{"field": p["field"], "message": p["message"]} for p in problems]
    return InvalidSpec(message, details=details)


def _model_first(problem: dict) -> bool:
    """Problems of the model come first: the other fields are read in its light."""
    return not (problem["field"] == "model" or problem["field"].startswith("model."))


def _problem(err: dict) -> dict:
    path = _path(err["loc"])
    ctx = err.get("ctx") or {}
    field = (path + ctx.get("sub", "")).lstrip(".") or "spec"
    if "unknown" in ctx:
        unknown, where = ctx["unknown"], path or "the job spec"
        names = ", ".join((f"{path}." if path else "") + k for k in unknown)
        text = (
            f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: {names}; "
            f"allowed: {', '.join(ctx['allowed'])}"
        )
        return {"field": path or "spec", "message": text, "unknown": unknown}
    if err["type"] == "invalid_spec":
        text = ctx["text"].replace("{where}", path or "the job spec").replace("{path}", path)
    elif err["type"] == "missing":
        text = f"{field} is required"
    else:
        text = f"{field}: {err['msg']}, got {show(err.get('input'))}"
    return {"field": field, "message": text}


def _path(loc: tuple) -> str:
    """``("fit", "callbacks", 0, "config")`` as ``fit.callbacks[0].config``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
