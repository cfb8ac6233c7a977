"""The job spec: checks a submitted spec and fills every default (pure JSON, no Keras).

``normalize(raw)`` returns the spec in the one shape the workers read, or raises
``InvalidSpec`` (422) or ``BadRequest`` (400) with a message naming the field at fault.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

from service.admission.allowed import CALLBACKS, DATA_FORMATS, MODEL_CLASSES, quoted_formats
from service.admission.spec_fields import (
    keras_object,
    names_by_output,
    number,
    optional,
    pick_bool,
    pick_int,
    sample_weight_names,
    section,
    show,
    str_or_names,
)
from service.admission.spec_safety import check_depth, check_keras_json, operator_allowlist
from service.core.config import Settings, get_settings
from service.core.errors import BadRequest, InvalidSpec

TOP_KEYS = ("name", "model", "compile", "data", "fit", "checkpoint", "seed", "deterministic",
            "queue", "priority", "max_attempts", "distribute")
STRATEGIES = (None, "mirrored")
QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def normalize(raw: object, settings: Settings | None = None) -> dict:
    """The spec with every default filled; raises InvalidSpec or BadRequest."""
    settings = settings or get_settings()
    if not isinstance(raw, dict):
        raise BadRequest("the job spec must be a JSON object", code="bad_spec")
    check_depth(raw)
    top = section(raw, "", TOP_KEYS)
    model = _model(top.get("model"), operator_allowlist(settings.keras_allow))
    spec = {
        "name": _name(top.get("name"), model),
        "model": model,
        "compile": _compile(top.get("compile")),
        "data": _data(top.get("data")),
        "fit": _fit(top.get("fit"), settings),
        "checkpoint": _checkpoint(top.get("checkpoint")),
        "seed": pick_int(top, "seed", "seed", 0, lo=0, hi=2**32 - 1),
        "deterministic": pick_bool(top, "deterministic", "deterministic", True),
        "queue": _queue(top.get("queue", "default")),
        "priority": pick_int(top, "priority", "priority", 0, lo=0, hi=9),
        "max_attempts": pick_int(top, "max_attempts", "max_attempts", settings.max_attempts,
                                 lo=1, hi=100),
        "distribute": _distribute(top.get("distribute")),
    }
    if spec["data"].get("sample_weight") is not None and spec["fit"]["class_weight"]:
        raise InvalidSpec("data.sample_weight and fit.class_weight cannot both be set (Keras "
                          "refuses both at once); fold the class weights into the sample "
                          "weights", details={"field": "data.sample_weight"})
    if spec["data"]["validation"] and spec["fit"]["validation_split"] > 0:
        raise InvalidSpec("data.validation and fit.validation_split cannot both be set",
                          details={"field": "fit.validation_split"})
    return spec


def _distribute(value: object) -> str | None:
    """``"mirrored"``: train on every GPU of the worker (MirroredStrategy); null: one device."""
    if value not in STRATEGIES:
        raise InvalidSpec(f"distribute must be null or \"mirrored\", got {show(value)}",
                          details={"field": "distribute"})
    return value


def _model(value: object, allow: frozenset[str] = frozenset()) -> dict:
    if value is None:
        raise InvalidSpec("model is required (the JSON of a Keras model's to_json())",
                          details={"field": "model"})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidSpec(f"model is a string but not valid JSON: {exc.msg}",
                              details={"field": "model"}) from exc
        check_depth(value)
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        raise InvalidSpec("model must be a Keras model config object with class_name and config",
                          details={"field": "model"})
    if value.get("class_name") not in MODEL_CLASSES:
        raise InvalidSpec(
            f"model.class_name must be one of {', '.join(MODEL_CLASSES)}, "
            f"got {show(value.get('class_name'))}", details={"field": "model.class_name"})
    check_keras_json(value, "model", allow)
    return value


def _name(value: object, model: dict) -> str:
    if value is None:
        value = model["config"].get("name")
        return value[:200] if isinstance(value, str) and value.strip() else "job"
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or not value.isprintable():
        raise InvalidSpec(f"name must be a printable string of 1 to 200 characters, got {show(value)}",
                          details={"field": "name"})
    return value


def _compile(value: object) -> dict:
    sec = section(value, "compile", ("optimizer", "loss", "metrics", "loss_weights"))
    if sec.get("loss") is None:
        raise InvalidSpec("compile.loss is required", details={"field": "compile.loss"})
    check_keras_json(sec, "compile", frozenset())
    return {
        "optimizer": keras_object(sec.get("optimizer", "adam"), "compile.optimizer"),
        "loss": _per_output(sec["loss"], "compile.loss", allow_list=True),
        "metrics": _metrics(sec.get("metrics")),
        "loss_weights": _loss_weights(sec.get("loss_weights")),
    }


def _per_output(value: object, path: str, allow_list: bool) -> object:
    """A Keras loss or metric form, a list of them, or a dict of output name to one."""
    if isinstance(value, list) and allow_list:
        return [_per_output(v, f"{path}[{i}]", allow_list=False) for i, v in enumerate(value)]
    if isinstance(value, dict) and "class_name" not in value:
        return {str(k): _per_output(v, f"{path}.{k}", allow_list=True) for k, v in value.items()}
    return keras_object(value, path)


def _metrics(value: object) -> list | dict:
    if value is None:
        return []
    if not isinstance(value, (list, dict)):
        raise InvalidSpec(f"compile.metrics must be a list, got {show(value)}",
                          details={"field": "compile.metrics"})
    return _per_output(value, "compile.metrics", allow_list=True)


def _loss_weights(value: object) -> list | dict | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [number(v, f"compile.loss_weights[{i}]", lo=0.0) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): number(v, f"compile.loss_weights.{k}", lo=0.0) for k, v in value.items()}
    raise InvalidSpec(f"compile.loss_weights must be null, a list or an object, got {show(value)}",
                      details={"field": "compile.loss_weights"})


def _data(value: object) -> dict:
    sec = section(value, "data", ("train", "validation", "x", "y", "format", "sample_weight"))
    if sec.get("train") is None:
        raise InvalidSpec("data.train is required (an s3:// or file:// URL)",
                          details={"field": "data.train"})
    fmt = sec.get("format")
    if fmt is not None and fmt not in DATA_FORMATS:
        raise InvalidSpec(f"data.format must be null, {quoted_formats()}, got {show(fmt)}",
                          details={"field": "data.format"})
    out = {
        "train": data_url(sec["train"], "data.train"),
        "validation": optional(sec.get("validation"), lambda v: data_url(v, "data.validation")),
        "x": str_or_names(sec.get("x", "x"), "data.x"),
        "y": names_by_output(sec.get("y", "y"), "data.y"),
        "format": fmt,
    }
    if sec.get("sample_weight") is not None:  # present only when given
        out["sample_weight"] = sample_weight_names(sec["sample_weight"], "data.sample_weight")
    return out


def data_url(value: object, path: str) -> str:
    """A data location: ``s3://bucket/key`` or ``file:///absolute/path``; ``/`` at the end
    names a prefix (a folder) of shards."""
    ok = False
    if isinstance(value, str) and not any(c.isspace() for c in value):
        u = urlparse(value)
        plain = not (u.query or u.fragment or u.params)
        if u.scheme == "s3":
            ok = plain and bool(u.netloc) and bool(u.path.lstrip("/")) and "@" not in u.netloc
        elif u.scheme == "file":
            ok = plain and u.netloc == "" and u.path.startswith("/") and u.path != "/"
    if not ok:
        raise InvalidSpec(f"{path} must be an s3://bucket/key or file:///absolute/path URL, "
                          f"got {show(value)}", details={"field": path})
    return value


def _fit(value: object, settings: Settings) -> dict:
    keys = ("epochs", "batch_size", "validation_split", "shuffle", "callbacks", "class_weight")
    sec = section(value, "fit", keys)
    split = number(sec.get("validation_split", 0.0), "fit.validation_split", lo=0.0)
    if split >= 1.0:
        raise InvalidSpec(f"fit.validation_split must be in [0, 1), got {show(split)}",
                          details={"field": "fit.validation_split"})
    return {
        "epochs": pick_int(sec, "epochs", "fit.epochs", 1, lo=1, hi=settings.max_epochs),
        "batch_size": pick_int(sec, "batch_size", "fit.batch_size", 32, lo=1, hi=2**31 - 1),
        "validation_split": split,
        "shuffle": pick_bool(sec, "shuffle", "fit.shuffle", True),
        "callbacks": _callbacks(sec.get("callbacks")),
        "class_weight": optional(sec.get("class_weight"), _class_weight),
    }


def _callbacks(value: object) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidSpec(f"fit.callbacks must be a list, got {show(value)}",
                          details={"field": "fit.callbacks"})
    out = []
    for i, item in enumerate(value):
        path = f"fit.callbacks[{i}]"
        cb = section(item, path, ("class_name", "config"))
        if cb.get("class_name") not in CALLBACKS:
            raise InvalidSpec(f"{path}.class_name must be one of {', '.join(CALLBACKS)}, "
                              f"got {show(cb.get('class_name'))}",
                              details={"field": f"{path}.class_name"})
        config = cb.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidSpec(f"{path}.config must be an object", details={"field": f"{path}.config"})
        check_keras_json(config, f"{path}.config", frozenset())
        out.append({"class_name": cb["class_name"], "config": config})
    return out


def _class_weight(value: object) -> dict:
    if not isinstance(value, dict) or not value:
        raise InvalidSpec(f"fit.class_weight must be null or an object of class index to weight, "
                          f"got {show(value)}", details={"field": "fit.class_weight"})
    out = {}
    for key, weight in value.items():
        if not re.fullmatch(r"\d{1,9}", str(key)):
            raise InvalidSpec(f"fit.class_weight keys must be class indices (0, 1, ...), "
                              f"got {show(key)}", details={"field": "fit.class_weight"})
        out[str(int(key))] = number(weight, f"fit.class_weight.{key}", lo=0.0)
    return out


def _checkpoint(value: object) -> dict:
    keys = ("every_epoch", "every_n_batches", "every_seconds", "keep_last", "keep_best")
    sec = section(value, "checkpoint", keys)
    return {
        "every_epoch": pick_bool(sec, "every_epoch", "checkpoint.every_epoch", True),
        "every_n_batches": pick_int(sec, "every_n_batches", "checkpoint.every_n_batches", None,
                                    lo=1, hi=2**31 - 1),
        "every_seconds": optional(sec.get("every_seconds"),
                                  lambda v: number(v, "checkpoint.every_seconds", lo=0.001)),
        "keep_last": pick_int(sec, "keep_last", "checkpoint.keep_last", 3, lo=1, hi=10_000),
        "keep_best": optional(sec.get("keep_best"), _keep_best),
    }


def _keep_best(value: object) -> dict:
    sec = section(value, "checkpoint.keep_best", ("monitor", "mode"))
    monitor, mode = sec.get("monitor"), sec.get("mode", "min")
    if not isinstance(monitor, str) or not monitor:
        raise InvalidSpec("checkpoint.keep_best.monitor must be a metric name such as \"val_loss\", "
                          f"got {show(monitor)}", details={"field": "checkpoint.keep_best.monitor"})
    if mode not in ("min", "max"):
        raise InvalidSpec(f"checkpoint.keep_best.mode must be \"min\" or \"max\", got {show(mode)}",
                          details={"field": "checkpoint.keep_best.mode"})
    return {"monitor": monitor, "mode": mode}


def _queue(value: object) -> str:
    if not isinstance(value, str) or not QUEUE_RE.fullmatch(value):
        raise InvalidSpec(f"queue must match [A-Za-z0-9_.-]{{1,100}}, got {show(value)}",
                          details={"field": "queue"})
    return value
