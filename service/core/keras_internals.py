"""Every private Keras call fitfleet makes, in one room, each checked by :func:`check`.

Exact resume and weightless validation need a few things Keras does not export: the
layers of a model in a stable order, each layer's seed generators (Dropout and friends),
a layer's inbound nodes, building a compiled model's metrics and optimizer from one
batch, Keras's safe-mode scope as a context manager, the global list of variables a
stateless scope leaves uninitialized, and the walk over a model's saveable state that
``model.save`` makes (so a checkpoint's ``.keras`` file is written from a snapshot). Keras is imported lazily, so importing this module
costs nothing. When an upgrade of Keras removes one of them, :func:`check` (and a unit
test that calls it) fails with a message naming the Keras version; nothing falls back
silently.
"""

from __future__ import annotations

import contextlib


class KerasInternalsMissing(RuntimeError):
    """A private Keras attribute fitfleet relies on is gone from the installed Keras."""


def check() -> None:
    """Raise :class:`KerasInternalsMissing` naming each private Keras attribute not found."""
    import keras
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib, serialization_lib

    layer = keras.layers.Dropout(0.5)
    wanted = {
        "keras.Model._symbolic_build": hasattr(keras.Model, "_symbolic_build"),
        "keras.layers.Layer._flatten_layers": hasattr(keras.layers.Layer, "_flatten_layers"),
        "Layer._seed_generators": isinstance(getattr(layer, "_seed_generators", None), list),
        "Layer._inbound_nodes": isinstance(getattr(layer, "_inbound_nodes", None), list),
        "keras.src.saving.serialization_lib.SafeModeScope": hasattr(
            serialization_lib, "SafeModeScope"
        ),
        "keras.src.backend.common.global_state.get_global_attribute": hasattr(
            global_state, "get_global_attribute"
        ),
        **{
            f"keras.src.saving.saving_lib.{name}": hasattr(saving_lib, name)
            for name in _SAVING_LIB_NAMES
        },
    }
    missing = [name for name, found in wanted.items() if not found]
    if missing:
        raise KerasInternalsMissing(
            f"Keras {keras.__version__} lacks {', '.join(missing)}, which fitfleet uses for "
            "exact resume and spec validation; install a Keras version that pyproject.toml "
            "allows"
        )


_SAVING_LIB_NAMES = (
    "_save_state",
    "get_attr_skipset",
    "_serialize_model_as_json",
    "H5IOStore",
    "DiskIOStore",
    "_CONFIG_FILENAME",
    "_METADATA_FILENAME",
    "_VARS_FNAME_H5",
    "_ASSETS_DIRNAME",
)


def layers_of(model) -> list:
    """Every layer inside ``model`` (nested models included), in Keras's own order."""
    return list(model._flatten_layers(include_self=False))


def seed_generators_of(layer) -> list:
    """The seed generators a layer owns (Dropout's and friends'), in creation order."""
    return list(layer._seed_generators)


def inbound_nodes(layer) -> list:
    """The nodes through which ``layer`` was called in a functional graph."""
    return list(layer._inbound_nodes)


def symbolic_build(model, data_batch) -> None:
    """Build a compiled model's compile metrics and optimizer variables from one batch,
    without training (no random draw, no moving BatchNorm statistic)."""
    model._symbolic_build(data_batch=data_batch)


@contextlib.contextmanager
def safe_mode():
    """Keras safe mode for this thread, whatever was enabled before."""
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(True):
        yield


def uninitialized_variables() -> list:
    """The global list of variables created in a stateless scope and not initialized yet."""
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)


def multi_worker_fit(model) -> None:
    """Make ``model.fit`` work under MultiWorkerMirroredStrategy in this process.

    Keras 3 reduces a batch's logs across workers with ``strategy.reduce("MEAN", v,
    axis=0)``, which fails for scalar logs; this process reduces them over the workers
    instead (``axis=None``). Keras's per-``fit`` symbolic build averages the first input
    batch across workers, which fails for a tuple batch; the model is built before
    ``fit`` (:func:`symbolic_build`), so it is skipped.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if not getattr(trainer.reduce_per_replica, "fitfleet", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(
                strategy
            ):
                return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
            return original(values, strategy, reduction)

        reduce_per_replica.fitfleet = True
        trainer.reduce_per_replica = reduce_per_replica
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def saving_lib():
    """Keras's ``saving_lib``: the walk ``model.save`` makes over a model's saveables
    (``_save_state``), its stores (``H5IOStore``, ``DiskIOStore``), the model's JSON
    (``_serialize_model_as_json``) and the names of the members of a ``.keras`` file."""
    from keras.src.saving import saving_lib as lib

    return lib


_SKIPSET_TYPES = (
    "Operation",
    "Layer",
    "Functional",
    "Sequential",
    "Metric",
    "Optimizer",
    "Loss",
    "Cross",
    "Feature",
)


def prime_saving_skipsets() -> None:
    """Make Keras's per-type cache of attributes its saving walk skips hit, in this thread.

    ``saving_lib.get_attr_skipset`` stores its answer under ``saving_attr_skipset_<type>``
    but looks it up under ``saving_attr_skiplist_<type>``, so every ``model.save`` builds
    throw-away reference objects (an optimizer with its variables among them): ~20 ms a
    save. Keras's global state is thread-local, so this runs once per thread.
    """
    from keras.src.backend.common import global_state

    lib = saving_lib()
    if global_state.get_global_attribute("fitfleet_saving_skipsets_primed"):
        return
    for name in _SKIPSET_TYPES:
        key = f"saving_attr_skiplist_{name}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, lib.get_attr_skipset(name))
    global_state.set_global_attribute("fitfleet_saving_skipsets_primed", True)
