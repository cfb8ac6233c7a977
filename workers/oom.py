"""Out-of-memory kills and the memory limit of the worker's cgroup, read from its files.

cgroup v2 keeps them in ``memory.events`` (``oom_kill N``) and ``memory.max``; cgroup v1 in
``memory/memory.oom_control`` (``oom_kill N``) and ``memory/memory.limit_in_bytes``. The
root is ``FITFLEET_CGROUP_ROOT`` (``/sys/fs/cgroup``); the process's own cgroup under it
is tried first. A file that cannot be read gives None: nothing is guessed.
"""

from __future__ import annotations

from pathlib import Path

UNLIMITED_V1 = 1 << 62  # cgroup v1 writes "no limit" as a number near 2**63


def oom_kills(root: str) -> int | None:
    """How many processes of the cgroup the OOM killer has killed; None if unreadable."""
    for folder, events in _candidates(root, "memory.events", "memory.oom_control"):
        try:
            text = (folder / events).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def memory_limit(root: str) -> int | None:
    """The cgroup's memory limit in bytes; None when unlimited or unreadable."""
    for folder, limit in _candidates(root, "memory.max", "memory.limit_in_bytes"):
        try:
            text = (folder / limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < UNLIMITED_V1:
            return int(text)
        return None
    return None


def describe(limit: int | None) -> str:
    """``memory limit 512 MiB``, or a sentence saying no limit could be read."""
    if limit is None:
        return "no cgroup memory limit could be read: the machine itself ran out of memory"
    size, unit = float(limit), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    shown = f"{size:.0f}" if unit == "bytes" or size >= 100 else f"{size:.3g}"
    return f"memory limit {shown} {unit}"


def _candidates(root: str, v2_name: str, v1_name: str) -> list[tuple[Path, str]]:
    base = Path(root)
    own_v2, own_v1 = _own_paths()
    found = []
    for folder in dict.fromkeys([base / own_v2, base]):
        if (folder / v2_name).exists():
            found.append((folder, v2_name))
    for folder in dict.fromkeys([base / "memory" / own_v1, base / "memory"]):
        if (folder / v1_name).exists():
            found.append((folder, v1_name))
    return found


def _own_paths() -> tuple[str, str]:
    """This process's cgroup path (v2, v1 memory controller), relative; "" if unknown."""
    v2 = v1 = ""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            v2 = path.strip("/")
        elif "memory" in controllers.split(","):
            v1 = path.strip("/")
    return v2, v1
