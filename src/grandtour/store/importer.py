"""Runs made from activations recorded elsewhere: arrays, ``.npz`` files, ``grandtour import``.

:meth:`Run.from_arrays` and :meth:`Run.from_npz` are the public entry points; this
module validates and writes, they open the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import CorruptFileError, GrandTourError, StoreError
from grandtour.store.schema import MAX_CLASSES, MAX_EPOCH, LayerInfo, ProbeSet
from grandtour.store.validate import StoreKeyError, as_array, as_int, check_magnitude, int_array
from grandtour.store.writer import RunWriter

#: Keys of an importable ``.npz`` besides ``act/<layer>`` (docs/store.md lists them).
NPZ_KEYS = frozenset({"labels", "class_names", "epochs", "layers", "layer_kinds", "images",
                      "indices", "split", "dataset"})
#: Prefix of the activation keys of an importable ``.npz``.
NPZ_ACT_PREFIX = "act/"


def write_arrays(path, activations: Mapping[str, np.ndarray], labels, *, class_names=None,
                 split: str = "train", epochs=None, layer_kinds: Mapping[str, str] | None = None,
                 overwrite: bool = False, images=None, indices=None, dataset: str = "custom") -> Path:
    """Write a run from arrays (see :meth:`grandtour.store.Run.from_arrays`); returns its path.

    Everything is validated before the run directory is touched: labels (class indices
    ``0..C-1``, at most ``MAX_CLASSES`` classes), epochs (distinct, ``0..MAX_EPOCH``),
    shapes and magnitudes (finite values up to about float32's largest).
    """
    if not activations:
        raise StoreError("activations is empty: give at least one layer {name: array}")
    labels = as_array(labels, "labels")
    if labels.ndim != 1 or labels.size == 0:
        raise StoreError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.dtype.kind == "u" and labels.max() > np.iinfo(np.int64).max:
        raise StoreError(f"labels hold {int(labels.max())}: labels are class indices 0..C-1")
    labels = int_array(labels, "labels", low=0,
                       high=len(class_names) if class_names is not None else None)
    n = labels.shape[0]
    if class_names is None:
        if int(labels.max()) >= MAX_CLASSES:
            raise StoreError(f"labels hold {int(labels.max())}, but a run has at most {MAX_CLASSES} "
                             "classes (predictions are stored as int16); labels must be class "
                             "indices 0..C-1: map them to 0..C-1 and give class_names")
        class_names = [str(c) for c in range(int(labels.max()) + 1)]
    layer_kinds = dict(layer_kinds or {})
    unknown = [k for k in layer_kinds if k not in activations]
    if unknown:
        raise StoreKeyError(f"layer_kinds names unknown layer(s) {', '.join(unknown)}; layers: "
                            f"{', '.join(activations)}")
    arrays: dict[str, np.ndarray] = {}
    n_epochs = None
    for name, value in activations.items():
        arr = as_array(value, f"activations[{name!r}]")
        if arr.ndim not in (2, 3) or arr.shape[-2] != n:
            raise StoreError(f"activations[{name!r}] has shape {arr.shape}; expected (E, {n}, dim) "
                             f"or ({n}, dim), with N = len(labels) = {n}")
        if arr.ndim == 3:
            if n_epochs is not None and arr.shape[0] != n_epochs:
                raise StoreError(f"activations[{name!r}] has {arr.shape[0]} epochs, other layers "
                                 f"{n_epochs}; all (E, N, dim) arrays need the same E")
            n_epochs = arr.shape[0]
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise StoreError(f"activations[{name!r}] must be a real-valued array, got dtype {arr.dtype}")
        check_magnitude(arr, f"activations[{name!r}]")
        arrays[name] = arr
    n_epochs = 1 if n_epochs is None else n_epochs
    if epochs is None:
        epochs = list(range(n_epochs))
    if isinstance(epochs, np.ndarray):
        epochs = epochs.reshape(-1).tolist()
    epochs = [as_int(e, "epochs entry") for e in epochs]
    bad = [e for e in epochs if not 0 <= e <= MAX_EPOCH]
    if bad:
        raise StoreError(f"epoch {bad[0]} is outside 0..{MAX_EPOCH} (2^31 - 1: the server and the "
                         "viewer hold epochs as 32-bit integers); number the epochs from 0")
    if len(epochs) != n_epochs or len(set(epochs)) != len(epochs):
        raise StoreError(f"epochs has {len(epochs)} entries ({len(set(epochs))} distinct); expected "
                         f"{n_epochs} distinct epoch numbers, one per epoch of the activations")

    def default_kind(name: str) -> str:
        return name if name in ("input", "softmax") else "unknown"

    layers = [LayerInfo(name=name, kind=str(layer_kinds.get(name, default_kind(name))),
                        shape=(int(arr.shape[-1]),), static=arr.ndim == 2)
              for name, arr in arrays.items()]
    with RunWriter.create(path, dataset=dataset, class_names=class_names, layers=layers,
                          probes={split: ProbeSet(labels=labels, indices=indices, images=images)},
                          config={"imported": True}, overwrite=overwrite) as writer:
        for i, epoch in enumerate(epochs):
            writer.write_epoch(epoch, activations={split: {
                name: (arr[i] if arr.ndim == 3 else arr) for name, arr in arrays.items()}})
    return writer.path


def read_npz(npz_path) -> dict[str, Any]:
    """The keyword arguments of :func:`write_arrays` stored in a ``.npz`` file (all but path)."""
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise GrandTourError(f"no file {npz_path}: give the .npz of activations to import")
    try:
        with np.load(npz_path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as err:  # noqa: BLE001 - any reader failure means a bad file
        raise CorruptFileError(f"cannot read {npz_path} as a .npz file ({type(err).__name__}: "
                               f"{err}); write it with numpy.savez") from None
    unknown = [k for k in data if k not in NPZ_KEYS and not k.startswith(NPZ_ACT_PREFIX)]
    if unknown:
        raise CorruptFileError(f"{npz_path} has unexpected key(s) {', '.join(unknown)}; expected "
                               f"{NPZ_ACT_PREFIX}<layer> and {', '.join(sorted(NPZ_KEYS))} "
                               "(see docs/store.md)")
    acts = {k[len(NPZ_ACT_PREFIX):]: v for k, v in data.items() if k.startswith(NPZ_ACT_PREFIX)}
    if "labels" not in data or not acts:
        raise CorruptFileError(f"{npz_path} needs 'labels' (N,) and at least one '{NPZ_ACT_PREFIX}<layer>' "
                               "array (see docs/store.md)")

    def text(key: str, default: str) -> str:
        return str(data[key].reshape(-1)[0]) if key in data else default

    order = list(acts)
    if "layers" in data:
        order = [str(s) for s in data["layers"].reshape(-1)]
        if sorted(order) != sorted(acts):
            raise CorruptFileError(f"'layers' in {npz_path} lists {order}, but the {NPZ_ACT_PREFIX} keys "
                                   f"are {sorted(acts)}; they must name the same layers")
    kinds = None
    if "layer_kinds" in data:
        kinds_list = [str(s) for s in data["layer_kinds"].reshape(-1)]
        if len(kinds_list) != len(order):
            raise CorruptFileError(f"'layer_kinds' in {npz_path} has {len(kinds_list)} entries "
                                   f"for {len(order)} layers")
        kinds = dict(zip(order, kinds_list, strict=True))
    class_names = [str(s) for s in data["class_names"].reshape(-1)] if "class_names" in data else None
    return dict(activations={name: acts[name] for name in order}, labels=data["labels"],
                class_names=class_names, split=text("split", "train"), epochs=data.get("epochs"),
                layer_kinds=kinds, images=data.get("images"), indices=data.get("indices"),
                dataset=text("dataset", "custom"))


def import_command(args) -> int:
    """``grandtour import FILE.npz --out RUN [--overwrite]``."""
    from grandtour.store.reader import Run  # the reader builds on this module

    run = Run.from_npz(args.npz, args.out, overwrite=bool(getattr(args, "overwrite", False)))
    print(f"wrote {run.path}: {len(run.layers)} layers, {len(run.epochs)} epochs, "
          + ", ".join(f"{s} N={run.size(s)}" for s in run.splits))
    return 0
