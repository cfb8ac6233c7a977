"""Refuses Keras JSON that could run code when deserialized (pure JSON walk, no Keras).

Keras's safe mode already refuses Python lambdas; this walk refuses more and earlier: any
``Lambda``-like class, any object from a module outside ``keras``, any custom registered
package, any attempt to switch safe mode off, and anything nested absurdly deep.
"""

from __future__ import annotations

from service.errors import InvalidSpec

MAX_DEPTH = 100
CODE_CLASSES = ("Lambda", "TFOpLambda", "__lambda__")
FORBIDDEN_KEYS = ("enable_unsafe_deserialization", "safe_mode")


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


def check_keras_json(value: object, path: str) -> None:
    """Raise InvalidSpec naming the first unsafe construct found under ``path``."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
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
        _refuse(f"{where}.class_name",
                f"{class_name} objects are not allowed: they carry Python code")
    if "module" in node:
        module = node["module"]
        if not isinstance(module, str) or not (module == "keras" or module.startswith("keras.")):
            _refuse(f"{where}.module", f"module {module!r} is not allowed; only Keras's own "
                                       "classes can be used")
    registered = node.get("registered_name")
    if isinstance(registered, str) and ("/" in registered or ">" in registered):
        package = registered.replace("/", ">").split(">", 1)[0]
        if package != "keras":
            _refuse(f"{where}.registered_name",
                    f"custom object {registered!r} is not allowed; only Keras's own classes "
                    "can be used")
    elif registered is not None and not isinstance(registered, str):
        _refuse(f"{where}.registered_name", "registered_name must be a string or null")


def _refuse(field: str, message: str) -> None:
    raise InvalidSpec(f"{field}: {message}", details={"field": field})
