"""Keras models from job specs: build (safe mode), compile, callbacks and summary.

Shared by the API, which validates a spec at submit time, and the workers, which build
the model they train. Keras is imported inside the functions only, so importing this
module stays cheap and the API starts without TensorFlow.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import threading

from service.admission.allowed import CALLBACKS, MODEL_CLASSES
from service.admission.spec_safety import check_keras_json
from service.core import keras_internals
from service.core.errors import InvalidSpec

SPECIAL_METRICS = ("accuracy", "acc", "crossentropy", "ce")
_validate_lock = threading.Lock()


def build_model(model_cfg: dict, *, materialize: bool = True):
    """A ``keras.Model`` from the JSON of ``model.to_json()``, deserialized in safe mode.

    With ``materialize=False`` the weights are not allocated (shapes only), which is
    enough for a summary and a compile check of a model of any size.
    """
    import keras

    if not isinstance(model_cfg, dict) or model_cfg.get("class_name") not in MODEL_CLASSES:
        raise InvalidSpec(
            "model must be a Sequential or Functional model config", details={"field": "model"}
        )
    check_keras_json(model_cfg, "model")
    cfg = copy.deepcopy(model_cfg)
    cfg.pop("compile_config", None)  # the spec's compile section is the one that counts
    try:
        with keras_internals.safe_mode(), _weightless(not materialize):
            model = keras.saving.deserialize_keras_object(cfg, safe_mode=True)
    except InvalidSpec:
        raise
    except Exception as exc:  # Keras raises ValueError, TypeError, KeyError, ...
        raise InvalidSpec(_model_error(exc, cfg), details={"field": "model"}) from exc
    if not isinstance(model, keras.Model):
        raise InvalidSpec(
            "model must be a Sequential or Functional model config", details={"field": "model"}
        )
    return model


def compile_model(model, compile_spec: dict) -> None:
    """Compile ``model`` with the spec's optimizer, loss(es), metrics and loss weights.

    Keras's deserializers replace nested configs (a learning-rate schedule inside an
    optimizer) with objects in place, so they get a copy: the spec stays plain JSON.
    """
    import keras

    compile_spec = copy.deepcopy(compile_spec)
    optimizer = _get(_optimizer, compile_spec.get("optimizer", "adam"), "compile.optimizer")
    loss = _resolve(compile_spec["loss"], keras.losses.get, "compile.loss")
    metrics = _resolve(compile_spec.get("metrics") or [], keras.metrics.get, "compile.metrics")
    try:
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            loss_weights=compile_spec.get("loss_weights"),
        )
    except Exception as exc:
        raise InvalidSpec(f"compile: {keras_message(exc)}", details={"field": "compile"}) from exc


def make_callbacks(callback_specs: list[dict]) -> list:
    """Instances of the allowed Keras callbacks from ``{"class_name", "config"}`` specs."""
    import keras

    out = []
    for i, item in enumerate(callback_specs or []):
        path = f"fit.callbacks[{i}]"
        name = item.get("class_name")
        if name not in CALLBACKS:
            raise InvalidSpec(
                f"{path}.class_name must be one of {', '.join(CALLBACKS)}",
                details={"field": f"{path}.class_name"},
            )
        try:
            config = copy.deepcopy(item.get("config") or {})
            out.append(getattr(keras.callbacks, name)(**config))
        except Exception as exc:
            raise InvalidSpec(
                f"{path}: {keras_message(exc)}", details={"field": f"{path}.config"}
            ) from exc
    return out


def summarize(model) -> dict:
    """Layers with class, output shape (batch as null) and parameter count, and the totals.

    The numbers are those ``model.summary()`` prints (top-level layers, optimizer apart).
    """
    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    return {
        "name": model.name,
        "class_name": model.__class__.__name__,
        "layers": [
            {
                "name": layer.name,
                "class_name": layer.__class__.__name__,
                "output_shape": _output_shape(layer),
                "params": layer.count_params() if getattr(layer, "built", False) else 0,
            }
            for layer in model.layers
        ],
        "total_params": trainable + non_trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "input_shapes": _io_shapes(model, "inputs"),
        "output_shapes": _io_shapes(model, "outputs"),
        "output_names": _output_names(model),
    }


def _output_names(model) -> list[str] | None:
    """The names Keras matches a dict of targets by (a functional model's output layers)."""
    names = getattr(model, "output_names", None)
    return list(names) if names else None


def _io_shapes(model, which: str) -> list | None:
    """The shapes of the model's inputs or outputs (batch as null); None if not built."""
    try:
        return [list(t.shape) for t in getattr(model, which)]
    except (AttributeError, ValueError, TypeError):
        return None


def validate(spec: dict) -> dict:
    """Build (without allocating weights), compile and make callbacks; return the summary."""
    with _validate_lock:
        model = build_model(spec["model"], materialize=False)
        compile_model(model, spec["compile"])
        make_callbacks(spec.get("fit", {}).get("callbacks", []))
        return summarize(model)


def keras_message(exc: BaseException, limit: int = 400) -> str:
    """Keras's message for ``exc``: one paragraph, no file paths, at most ``limit`` chars."""
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, KeyError):
        text = f"missing key {text}"
    text = text.split("\n\n")[0]
    text = re.sub(r"(?:[A-Za-z]:)?(?:/[\w.\-]+){2,}/?", "<path>", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_error(exc: BaseException, cfg: dict) -> str:
    """The cause of a failed deserialization: the layer at fault and Keras's own reason."""
    chain = _chain(exc)
    text = "\n".join(str(e) for e in chain)
    m = re.search(r"Could not (?:locate class|deserialize) '([\w.]+)'", text) or re.search(
        r"Unknown (?:layer|object)[^']*'([\w.]+)'", text
    )
    if m:
        class_name = m.group(1).rsplit(".", 1)[-1]
        names = _layers_of_class(cfg, class_name)
        where = f" (layer {', '.join(repr(n) for n in names)})" if names else ""
        return f"model: unknown layer class {class_name!r}{where}"
    at = re.findall(r"deserializing class '(\w+)' using config=\{'name': '([^']{1,100})'", text)
    where = f"{at[-1][0]} layer {at[-1][1]!r}: " if at else ""
    return f"model: {where}{keras_message(chain[-1])}"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 20:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _layers_of_class(node: object, class_name: str) -> list[str]:
    found, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == class_name and isinstance(item.get("config"), dict):
                found.append(str(item["config"].get("name", "?")))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(set(found))


def _optimizer(identifier):
    """A Keras optimizer from a name or a (serialized) config, with or without ``module``.

    Every public optimizer class counts (``keras.optimizers.get`` misses some, e.g. Lamb),
    names are case-insensitive as in Keras, and a learning-rate schedule given as a dict
    is deserialized by its class name whether or not it carries ``module``.
    """
    import keras

    if isinstance(identifier, str):
        identifier = {"class_name": identifier, "config": {}}
    classes = {
        name.lower(): obj
        for name, obj in vars(keras.optimizers).items()
        if isinstance(obj, type)
        and issubclass(obj, keras.optimizers.Optimizer)
        and obj is not keras.optimizers.Optimizer
    }
    cls = classes.get(str(identifier.get("class_name", "")).lower())
    if cls is None:
        raise ValueError(
            f"unknown optimizer {identifier.get('class_name')!r} "
            f"(known: {', '.join(sorted(classes))})"
        )
    config = dict(identifier.get("config") or {})
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = keras.optimizers.schedules.deserialize(config["learning_rate"])
    with keras_internals.safe_mode():
        return cls.from_config(config)


def _get(getter, identifier, path: str):
    try:
        return getter(identifier)
    except Exception as exc:
        raise InvalidSpec(f"{path}: {keras_message(exc)}", details={"field": path}) from exc


def _resolve(value, getter, path: str):
    """Check every Keras identifier in a loss/metric structure; objects from their dicts."""
    if isinstance(value, list):
        return [_resolve(v, getter, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _resolve(v, getter, f"{path}.{k}") for k, v in value.items()}
    if value is None or (isinstance(value, str) and value.lower() in SPECIAL_METRICS):
        return value
    resolved = _get(getter, value, path)
    return value if isinstance(value, str) else resolved


def _count(weights) -> int:
    return int(sum(math.prod(w.shape) for w in weights))


def _output_shape(layer):
    import keras

    nodes = keras_internals.inbound_nodes(layer)
    try:
        outputs = nodes[-1].output_tensors if nodes else layer.output
    except (AttributeError, ValueError, IndexError):  # an unbuilt layer has no output yet
        return None
    shapes = [list(t.shape) for t in keras.tree.flatten(outputs)]
    return shapes[0] if len(shapes) == 1 else shapes


@contextlib.contextmanager
def _weightless(enabled: bool):
    """Create variables as shapes only (Keras's stateless scope), then forget them."""
    if not enabled:
        yield
        return
    import keras

    pending = keras_internals.uninitialized_variables()
    before = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        del pending[before:]
