"""A snapshot's ``.keras`` file, written without a second model in memory.

:func:`capture` runs the walk that ``model.save`` makes over the model's saveables (layers,
optimizer, their variables and assets), in the training thread, and keeps each value as a
host NumPy array: one copy of the weights and optimizer state, nothing else. :func:`write`
turns that later, in the background, into the file ``model.save`` would have written: the
same ``config.json``, ``metadata.json``, HDF5 groups, datasets and attributes, and assets,
in a zip of stored (uncompressed) members, hashed while it is written. The weights go to
an HDF5 file on disk first and are streamed into the zip, never held whole in memory a
second time; ``keras.models.load_model`` and ``model.load_weights`` open the result.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.core import keras_internals

CHUNK = 1 << 20


@dataclass
class ModelState:
    """What ``model.save`` writes, as host arrays: ``events`` are ("group", path, attrs) and
    ("data", path, key, array, bfloat16) in Keras's order."""

    config: str
    metadata: str
    events: list[tuple] = field(default_factory=list)
    assets: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(e[3].nbytes for e in self.events if e[0] == "data")


def _recorder_class():
    lib = keras_internals.saving_lib()

    class Recorder(lib.H5IOStore):
        """Keras's HDF5 store in write mode, recording instead of writing (same groups)."""

        def __init__(self, fresh_paths=()):
            self.fresh_paths = set(fresh_paths)  # where Keras hands over copies of its own
            self.mode = "w"
            self.archive = None
            self.io_file = None
            self.h5_file = None
            self.events: list[tuple] = []
            self._groups: dict[str, list[str]] = {}
            self._path = None
            self._ready = False

        def __bool__(self):
            return True

        def _group(self, path, metadata=None):
            self.events.append(("group", path, dict(metadata or {})))
            self._groups[path] = []
            self._ready = True

        def make(self, path, metadata=None):
            self._path = path
            self._ready = False
            if metadata:
                self._group(path, metadata)
            return self

        def __setitem__(self, key, value):
            if not self._ready:
                self._group(self._path)
            import keras

            tf = keras.backend.backend() == "tensorflow"
            if tf and hasattr(value, "numpy"):
                array = np.asarray(value.numpy())  # TensorFlow's .numpy() is a copy
            elif isinstance(value, np.ndarray) and self._path in self.fresh_paths:
                array = value
            else:
                array = np.array(value)  # a copy: training goes on while this is written
            bf16 = keras.backend.standardize_dtype(array.dtype) == "bfloat16"
            self.events.append(("data", self._path, key, array, bf16))
            self._groups[self._path].append(key)

        def keys(self):
            return list(self._groups.get(self._path, [])) if self._ready else []

        def __len__(self):
            return len(self.keys())

        def __contains__(self, item):
            return item in self.keys()

        def has_path(self, path):
            return any(p == path or p.startswith(f"{path}/") for p in self._groups)

        def close(self):
            pass

    return Recorder


def _fresh_paths(model) -> tuple[str, ...]:
    """The optimizer's path when it hands over ``variable.numpy()``: TensorFlow's copies."""
    import keras

    save = getattr(type(getattr(model, "optimizer", None)), "save_own_variables", None)
    if (
        keras.backend.backend() == "tensorflow"
        and getattr(save, "__qualname__", "") == "BaseOptimizer.save_own_variables"
    ):
        return ("optimizer",)
    return ()


def _assets_class():
    lib = keras_internals.saving_lib()

    class Assets(lib.DiskIOStore):
        """Keras's asset store in write mode, its folder made only when a layer asks."""

        def __init__(self):
            self.mode, self.root_path, self.archive = "w", lib._ASSETS_DIRNAME, None
            self.tmp_dir = None

        @property
        def working_dir(self):
            if self.tmp_dir is None:
                self.tmp_dir = lib.get_temp_dir()
                os.makedirs(os.path.join(self.tmp_dir, self.root_path))
            return os.path.join(self.tmp_dir, self.root_path)

    return Assets


def capture(model) -> ModelState:
    """Everything ``model.save`` would write, copied to host memory (no file written)."""
    lib = keras_internals.saving_lib()
    keras_internals.prime_saving_skipsets()
    config, metadata = lib._serialize_model_as_json(model)
    weights = _recorder_class()(_fresh_paths(model))
    assets = _assets_class()()
    try:
        lib._save_state(
            model,
            weights_store=weights,
            assets_store=assets,
            inner_path="",
            visited_saveables=set(),
        )
        files = []
        if assets.tmp_dir:
            root = Path(assets.working_dir)
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = path.relative_to(root).as_posix()
                files.append((f"{lib._ASSETS_DIRNAME}/{rel}", path.read_bytes()))
    finally:
        if assets.tmp_dir:
            shutil.rmtree(assets.tmp_dir, ignore_errors=True)
    return ModelState(config=config, metadata=metadata, events=weights.events, assets=files)


class _HashingWriter(io.RawIOBase):
    """A write-only, unseekable file that hashes what passes through it."""

    def __init__(self, raw):
        self.raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, data):
        self.sha256.update(data)
        self.raw.write(data)
        self.size += len(data)
        return len(data)

    def tell(self):
        return self.size

    def flush(self):
        self.raw.flush()


def _write_h5(state: ModelState, path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        groups = {}
        for event in state.events:
            if event[0] == "group":
                _, name, attrs = event
                group = (
                    f.create_group(name).create_group("vars") if name else f.create_group("vars")
                )
                for k, v in attrs.items():
                    group.attrs[k] = v
                groups[name] = group
            else:
                _, name, key, array, bf16 = event
                ds = groups[name].create_dataset(key, data=array)
                if bf16:
                    ds.attrs["dtype"] = "bfloat16"


def _member(zf: zipfile.ZipFile, name: str, size: int):
    info = zipfile.ZipInfo(name, date_time=time.localtime(time.time())[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o600 << 16
    info.file_size = size
    return zf.open(info, "w")  # zip64 when ``size`` needs it


def write(state: ModelState, path: Path) -> dict:
    """Write ``state`` as a ``.keras`` file at ``path``; returns its sha256 and bytes."""
    lib = keras_internals.saving_lib()
    h5 = path.with_name(path.name + ".weights.h5")
    try:
        _write_h5(state, h5)
        with open(path, "wb") as raw:
            out = _HashingWriter(raw)
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr(lib._METADATA_FILENAME, state.metadata)
                zf.writestr(lib._CONFIG_FILENAME, state.config)
                with (
                    open(h5, "rb") as src,
                    _member(zf, lib._VARS_FNAME_H5, h5.stat().st_size) as dst,
                ):
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                for name, data in state.assets:
                    zf.writestr(name, data)
            out.flush()
    finally:
        if h5.exists():
            os.unlink(h5)
    return {"sha256": out.sha256.hexdigest(), "bytes": out.size}
