"""Paths into a job spec (``compile.optimizer.config.learning_rate``,
``model.config.layers[2].config.rate``): parsing, reading and setting values at them."""

from __future__ import annotations

import copy
import re

from service.core.errors import InvalidSpec

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


def parse(path: str) -> list[str | int]:
    """``"a.b[2].c"`` as ``["a", "b", 2, "c"]``; InvalidSpec if it is not a path."""
    parts: list[str | int] = []
    for piece in path.split(".") if path else [""]:
        m = _PART.fullmatch(piece)
        if m is None:
            raise InvalidSpec(
                f"space path {path!r} is not a path: use keys separated by dots, with [i] for "
                "a list index, such as model.config.layers[2].config.rate",
                details={"field": f"space.{path}", "path": path},
            )
        parts.append(m.group(1))
        parts += [int(i) for i in _INDEX.findall(m.group(2))]
    return parts


def get(spec: dict, path: str):
    """The value at ``path`` in ``spec``; InvalidSpec naming the path if it does not exist."""
    node = spec
    seen = ""
    for part in parse(path):
        here = f"{seen}[{part}]" if isinstance(part, int) else (f"{seen}.{part}" if seen else part)
        if isinstance(part, int):
            ok = isinstance(node, list) and part < len(node)
        else:
            ok = isinstance(node, dict) and part in node
        if not ok:
            raise InvalidSpec(
                f"space path {path} does not exist in the base job spec: it has no {here}"
                + _keys_hint(node),
                details={"field": f"space.{path}", "path": path, "missing": here},
            )
        node = node[part]
        seen = here
    return node


def with_values(spec: dict, values: dict) -> dict:
    """A copy of ``spec`` with each path of ``values`` set to its value."""
    out = copy.deepcopy(spec)
    for path, value in values.items():
        *head, last = parse(path)
        node = out
        for part in head:
            node = node[part]
        node[last] = value
    return out


def _keys_hint(node) -> str:
    if isinstance(node, dict) and node:
        return f" (there: {', '.join(sorted(map(str, node))[:12])})"
    if isinstance(node, list):
        return f" (there: a list of {len(node)})"
    return ""
