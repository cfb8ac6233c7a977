"""Refuses Keras JSON that could run code when deserialized (pure JSON walk, no Keras).

Keras's safe mode already refuses Python lambdas; this walk refuses more and earlier: any
``Lambda``-like class, any object from a module outside ``keras``, any custom registered
package, any attempt to switch safe mode off, and anything nested absurdly deep.
"""

from __future__ import annotations

from service.core.errors import InvalidSpec

MAX_DEPTH = 100
# Classes that carry Python code, or load and run a saved graph from a path.
CODE_CLASSES = (
    "Lambda",
    "TFOpLambda",
    "__lambda__",
    "TFSMLayer",
    "TorchModuleWrapper",
    "JaxLayer",
    "FlaxLayer",
)
FORBIDDEN_KEYS = ("enable_unsafe_deserialization", "safe_mode")
# The public Keras modules a serialized object may name (those ``to_json()`` writes).
KERAS_MODULES = frozenset(
    {
        "keras",
        "keras.layers",
        "keras.initializers",
        "keras.regularizers",
        "keras.constraints",
        "keras.optimizers",
        "keras.optimizers.schedules",
        "keras.losses",
        "keras.metrics",
        "keras.callbacks",
        "keras.activations",
        "keras.models",
        "keras.dtype_policies",
        "keras.ops",
        "keras.quantizers",
        "keras.src.models.functional",
        "keras.src.models.sequential",
        "keras.src.models.model",
    }
)
# Keras's own implementation packages of those kinds (older Keras 3 releases wrote these),
# and its ops, which a functional model built with ``keras.ops`` holds as layers.
KERAS_SRC_PACKAGES = tuple(
    f"keras.src.{kind}."
    for kind in (
        "layers",
        "models",
        "initializers",
        "regularizers",
        "constraints",
        "optimizers",
        "losses",
        "metrics",
        "activations",
        "dtype_policies",
        "callbacks",
        "ops",
    )
)


def check_depth(value: object, limit: int = MAX_DEPTH) -> None:
    """Raise InvalidSpec if ``value`` nests objects or arrays deeper than ``limit``."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            raise InvalidSpec(f"the job spec is nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def check_keras_json(value: object, path: str, allow: frozenset[str] | None = None) -> None:
    """Raise InvalidSpec naming the first unsafe construct found under ``path``.

    ``allow`` holds the operator's extra classes (``module.ClassName`` or a registered
    ``package>ClassName``); None reads them from the settings (FITFLEET_KERAS_ALLOW).
    """
    if allow is None:
        allow = operator_allowlist()
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            if _allowed_extra(node, allow):
                stack.extend((v, f"{where}.{k}") for k, v in node.items() if k == "config")
                continue
            _check_object(node, where)
            stack.extend((v, f"{where}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))


def _check_object(node: dict, where: str) -> None:
    for key in FORBIDDEN_KEYS:
        if key in node:
            _refuse(f"{where}.{key}", f"{key!r} is not allowed in a job spec")
    class_name = node.get("class_name")
    if class_name in CODE_CLASSES:
        _refuse(
            f"{where}.class_name", f"{class_name} objects are not allowed: they carry Python code"
        )
    if "module" in node:
        module = node["module"]
        if not isinstance(module, str) or not (
            module in KERAS_MODULES or module.startswith(KERAS_SRC_PACKAGES)
        ):
            _refuse(
                f"{where}.module",
                f"module {module!r} is not allowed; only Keras's own classes can be used",
            )
    registered = node.get("registered_name")
    if isinstance(registered, str) and ("/" in registered or ">" in registered):
        package = registered.replace("/", ">").split(">", 1)[0]
        if package != "keras":
            _refuse(
                f"{where}.registered_name",
                f"custom object {registered!r} is not allowed; only Keras's own classes "
                "can be used",
            )
    elif registered is not None and not isinstance(registered, str):
        _refuse(f"{where}.registered_name", "registered_name must be a string or null")


def operator_allowlist(text: str | None = None) -> frozenset[str]:
    """The extra classes of FITFLEET_KERAS_ALLOW (or of ``text``) as a set."""
    if text is None:
        from service.core.config import get_settings

        text = get_settings().keras_allow
    return frozenset(p.strip() for p in text.split(",") if p.strip())


def _allowed_extra(node: dict, allow: frozenset[str]) -> bool:
    """True for an object the operator allowed by module.ClassName or registered name."""
    if not allow or not isinstance(node.get("class_name"), str):
        return False
    module, registered = node.get("module"), node.get("registered_name")
    named = f"{module}.{node['class_name']}" if isinstance(module, str) else None
    return named in allow or (isinstance(registered, str) and registered in allow)


def _refuse(field: str, message: str) -> None:
    raise InvalidSpec(f"{field}: {message}", details={"field": field})
