"""Runs made from activations recorded elsewhere: arrays, ``.npz`` files, ``grandtour import``.

:meth:`Run.from_arrays` and :meth:`Run.from_npz` are the public entry points; this
module validates and writes, they open the result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import CorruptFileError, GrandTourError, StoreError
from grandtour.store.schema import MAX_CLASSES, MAX_EPOCH, LayerInfo, ProbeSet
from grandtour.store.validate import StoreKeyError, as_array, as_int, check_magnitude, int_array
from grandtour.store.writer import RunWriter

#: Keys of an importable ``.npz`` besides the per-layer, per-split ones below (docs/store.md lists them).
NPZ_KEYS = frozenset({"labels", "class_names", "epochs", "layers", "layer_kinds", "images",
                      "indices", "split", "dataset", "splits", "predictions", "layer_shapes",
                      "layer_inputs", "layer_configs"})
#: Prefix of the activation keys of an importable ``.npz``: ``act/<layer>`` (one split) or
#: ``act/<split>/<layer>`` (with ``splits``).
NPZ_ACT_PREFIX = "act/"
#: Prefixes of the other per-split keys (``labels/<split>``, ...) and of ``params/<layer>/<name>``.
NPZ_SPLIT_PREFIXES = ("labels/", "predictions/", "images/", "indices/")
NPZ_PARAMS_PREFIX = "params/"


def _by_split(value, splits: list[str], what: str, multi: bool) -> dict:
    """``value`` as ``{split: ...}``: a mapping when there are several splits, else the value."""
    if value is None:
        return {}
    if not multi:
        return {splits[0]: value}
    if not isinstance(value, Mapping):
        raise StoreError(f"{what} must be a mapping split -> array when labels is one "
                         f"(splits {', '.join(splits)}), got {type(value).__name__}")
    unknown = [k for k in value if k not in splits]
    if unknown:
        raise StoreKeyError(f"{what} names unknown split(s) {', '.join(map(str, unknown))}; splits: "
                            f"{', '.join(splits)}")
    return dict(value)


def _per_layer(value: Mapping | None, names: list[str], what: str) -> dict:
    value = dict(value or {})
    unknown = [k for k in value if k not in names]
    if unknown:
        raise StoreKeyError(f"{what} names unknown layer(s) {', '.join(map(str, unknown))}; layers: "
                            f"{', '.join(names)}")
    return value


def write_arrays(path, activations: Mapping, labels, *, class_names=None,
                 split: str = "train", epochs=None, layer_kinds: Mapping[str, str] | None = None,
                 overwrite: bool = False, images=None, indices=None, dataset: str = "custom",
                 predictions=None, params: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                 layer_inputs: Mapping[str, Any] | None = None,
                 layer_shapes: Mapping[str, Any] | None = None,
                 layer_configs: Mapping[str, Mapping] | None = None) -> Path:
    """Write a run from arrays (see :meth:`grandtour.store.Run.from_arrays`); returns its path.

    One split: ``activations`` maps layer -> array, ``labels`` is ``(N,)``. Several:
    ``labels`` maps split -> ``(N_s,)`` and ``activations`` split -> layer -> array (the
    same layers in each); ``images``, ``indices`` and ``predictions`` then map split ->
    array too. A layer's array is ``(E, N, *shape)`` (one per epoch) or ``(N, *shape)``
    (static), ``shape`` from ``layer_shapes`` (default: ``(dim,)``, the last axis); it is
    stored flattened, its shape kept. ``predictions``: ``(E, N)`` class indices.
    ``params``: layer -> {name: ``(E, ...)``}, one per epoch (what ``grandtour align``
    reads: ``weight``, ``bias``, running statistics). ``layer_inputs``: layer -> the
    layers it reads (the graph's edges, main path first; a layer not listed reads the one
    before it). ``layer_configs``: layer -> its kind's settings (JSON-able), as the
    Recorder writes them.

    Everything is validated before the run directory is touched: labels (class indices
    ``0..C-1``, at most ``MAX_CLASSES`` classes), epochs (distinct, ``0..MAX_EPOCH``),
    shapes and magnitudes (finite values up to about float32's largest), predictions,
    parameters and edges.
    """
    multi = isinstance(labels, Mapping)
    splits = [str(k) for k in labels] if multi else [str(split)]
    if multi and not splits:
        raise StoreError("labels is an empty mapping: give {split: labels (N,)} for at least one split")
    if not activations:
        raise StoreError("activations is empty: give at least one layer {name: array}")
    acts_by = _by_split(activations, splits, "activations", multi)
    labels_by = _by_split(labels, splits, "labels", multi)
    missing = [sp for sp in splits if sp not in acts_by]
    if missing:
        raise StoreError(f"activations has no split {', '.join(missing)}: give every split of labels "
                         f"({', '.join(splits)}) its layers")
    names = list(acts_by[splits[0]])
    if not names:
        raise StoreError("activations is empty: give at least one layer {name: array}")
    for sp in splits:
        if list(acts_by[sp]) != names:
            raise StoreError(f"activations[{sp!r}] has layers {list(acts_by[sp])}, activations"
                             f"[{splits[0]!r}] {names}: every split needs the same layers, in the same order")
    checked: dict[str, np.ndarray] = {}
    for sp in splits:
        lab = as_array(labels_by[sp], f"labels[{sp!r}]" if multi else "labels")
        if lab.ndim != 1 or lab.size == 0:
            raise StoreError(f"labels{f'[{sp!r}]' if multi else ''} must be a non-empty 1-D array, "
                             f"got shape {lab.shape}")
        if lab.dtype.kind == "u" and lab.max() > np.iinfo(np.int64).max:
            raise StoreError(f"labels hold {int(lab.max())}: labels are class indices 0..C-1")
        checked[sp] = int_array(lab, "labels", low=0,
                                high=len(class_names) if class_names is not None else None)
    labels_by = checked
    if class_names is None:
        top = max(int(v.max()) for v in labels_by.values())
        if top >= MAX_CLASSES:
            raise StoreError(f"labels hold {top}, but a run has at most {MAX_CLASSES} "
                             "classes (predictions are stored as int16); labels must be class "
                             "indices 0..C-1: map them to 0..C-1 and give class_names")
        class_names = [str(c) for c in range(top + 1)]
    layer_kinds = _per_layer(layer_kinds, names, "layer_kinds")
    shapes = {k: tuple(as_int(d, f"layer_shapes[{k!r}] entry") for d in np.atleast_1d(np.asarray(v)).tolist())
              for k, v in _per_layer(layer_shapes, names, "layer_shapes").items()}
    configs = _per_layer(layer_configs, names, "layer_configs")
    for k, c in configs.items():
        if not isinstance(c, Mapping):
            raise StoreError(f"layer_configs[{k!r}] must be a mapping of settings, got {type(c).__name__}")
    arrays: dict[str, dict[str, np.ndarray]] = {sp: {} for sp in splits}
    n_epochs, static, shape_of = None, {}, {}
    for sp in splits:
        n = labels_by[sp].shape[0]
        for name in names:
            what = f"activations[{sp!r}][{name!r}]" if multi else f"activations[{name!r}]"
            arr = as_array(acts_by[sp][name], what)
            shape = shapes.get(name)
            if shape is None:
                if arr.ndim not in (2, 3) or arr.shape[-2] != n:
                    raise StoreError(f"{what} has shape {arr.shape}; expected (E, {n}, dim) or ({n}, dim), "
                                     f"with N = len(labels) = {n} (give layer_shapes for other shapes)")
                shape = (int(arr.shape[-1]),)
            k = len(shape)
            if arr.ndim not in (k + 1, k + 2) or tuple(arr.shape[-k:]) != shape or arr.shape[-k - 1] != n:
                raise StoreError(f"{what} has shape {arr.shape}; expected (E, {n}, {', '.join(map(str, shape))}) "
                                 f"or ({n}, {', '.join(map(str, shape))}): N = len(labels) = {n}, the layer's "
                                 f"shape {shape}")
            is_static = arr.ndim == k + 1
            if static.setdefault(name, is_static) != is_static or shape_of.setdefault(name, shape) != shape:
                raise StoreError(f"{what} has shape {arr.shape}, unlike the layer's array in split "
                                 f"{splits[0]!r}: every split needs the same layer shapes")
            if not is_static:
                if n_epochs is not None and arr.shape[0] != n_epochs:
                    raise StoreError(f"{what} has {arr.shape[0]} epochs, other layers "
                                     f"{n_epochs}; all (E, N, ...) arrays need the same E")
                n_epochs = arr.shape[0]
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise StoreError(f"{what} must be a real-valued array, got dtype {arr.dtype}")
            check_magnitude(arr, what)
            lead = arr.shape[:-k]
            arrays[sp][name] = arr.reshape(*lead, math.prod(shape))  # flattened, the shape kept
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

    preds: dict[str, np.ndarray] = {}
    for sp, value in _by_split(predictions, splits, "predictions", multi).items():
        what = f"predictions[{sp!r}]" if multi else "predictions"
        arr = as_array(value, what)
        if arr.shape != (n_epochs, labels_by[sp].shape[0]):
            raise StoreError(f"{what} has shape {arr.shape}; expected (E, N) = ({n_epochs}, "
                             f"{labels_by[sp].shape[0]}): one class index per example and epoch")
        preds[sp] = int_array(arr, what, low=0, high=len(class_names))
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer, named in _per_layer(params, names, "params").items():
        if not isinstance(named, Mapping):
            raise StoreError(f"params[{layer!r}] must be a mapping name -> (E, ...) array, got "
                             f"{type(named).__name__}")
        for pname, value in named.items():
            arr = as_array(value, f"params[{layer!r}][{pname!r}]")
            if arr.ndim < 1 or arr.shape[0] != n_epochs:
                raise StoreError(f"params[{layer!r}][{pname!r}] has shape {arr.shape}; expected "
                                 f"({n_epochs}, ...): one value per epoch, epochs first")
            check_magnitude(arr, f"params[{layer!r}][{pname!r}]")
            weights.setdefault(layer, {})[str(pname)] = arr
    inputs: dict[str, tuple[str, ...]] = {}
    given = _per_layer(layer_inputs, names, "layer_inputs")
    for i, name in enumerate(names):
        if name not in given:
            inputs[name] = () if i == 0 else (names[i - 1],)
            continue
        value = given[name]
        ins = (value,) if isinstance(value, str) else tuple(str(v) for v in np.asarray(value).reshape(-1).tolist())
        earlier = [n for n in ins if n not in names[:i]]
        if earlier:
            raise StoreError(f"layer_inputs[{name!r}] lists {', '.join(map(repr, earlier))}, not a layer "
                             f"before {name!r}: a layer reads layers earlier in the order ({', '.join(names)})")
        inputs[name] = tuple(dict.fromkeys(ins))

    def default_kind(name: str) -> str:
        return name if name in ("input", "softmax") else "unknown"

    layers = [LayerInfo(name=name, kind=str(layer_kinds.get(name, default_kind(name))),
                        shape=shape_of[name], static=static[name], config=dict(configs.get(name, {})),
                        inputs=inputs[name] if given else ())
              for name in names]
    probes = {sp: ProbeSet(labels=labels_by[sp], indices=_by_split(indices, splits, "indices", multi).get(sp),
                           images=_by_split(images, splits, "images", multi).get(sp)) for sp in splits}
    with RunWriter.create(path, dataset=dataset, class_names=class_names, layers=layers, probes=probes,
                          config={"imported": True}, overwrite=overwrite) as writer:
        for i, epoch in enumerate(epochs):
            writer.write_epoch(epoch, activations={sp: {
                name: (arr[i] if not static[name] else arr) for name, arr in arrays[sp].items()} for sp in splits},
                predictions={sp: p[i] for sp, p in preds.items()} or None,
                params={layer: {k: v[i] for k, v in named.items()} for layer, named in weights.items()} or None)
    return writer.path


def _json(data: dict, key: str, npz_path: Path) -> Any:
    if key not in data:
        return None
    try:
        return json.loads(str(data[key].reshape(-1)[0]))
    except (ValueError, IndexError) as err:
        raise CorruptFileError(f"'{key}' in {npz_path} is not a JSON text ({err}): write it as "
                               f"np.array(json.dumps(...)) (see docs/store.md)") from None


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
    prefixes = (NPZ_ACT_PREFIX, NPZ_PARAMS_PREFIX, *NPZ_SPLIT_PREFIXES)
    unknown = [k for k in data if k not in NPZ_KEYS and not k.startswith(prefixes)]
    if unknown:
        raise CorruptFileError(f"{npz_path} has unexpected key(s) {', '.join(unknown)}; expected "
                               f"{NPZ_ACT_PREFIX}<layer> and {', '.join(sorted(NPZ_KEYS))} "
                               "(see docs/store.md)")

    def text(key: str, default: str) -> str:
        return str(data[key].reshape(-1)[0]) if key in data else default

    def strings(key: str) -> list[str]:
        return [str(s) for s in data[key].reshape(-1)]

    multi = "splits" in data
    splits = strings("splits") if multi else [text("split", "train")]
    acts: dict[str, dict[str, np.ndarray]] = {sp: {} for sp in splits}
    for k, v in data.items():
        if not k.startswith(NPZ_ACT_PREFIX):
            continue
        rest = k[len(NPZ_ACT_PREFIX):]
        sp, _, layer = rest.partition("/") if multi else (splits[0], "", rest)
        if sp not in acts or not layer:
            raise CorruptFileError(f"{npz_path}: key {k!r} is not {NPZ_ACT_PREFIX}<split>/<layer> for one of "
                                   f"the splits {', '.join(splits)}")
        acts[sp][layer] = v
    per_split = {p: {k[len(p):]: v for k, v in data.items() if k.startswith(p)} for p in NPZ_SPLIT_PREFIXES}
    if not multi and any(per_split.values()):
        raise CorruptFileError(f"{npz_path} has per-split keys ({', '.join(k for p in per_split.values() for k in p)}) "
                               "but no 'splits': list the splits in 'splits' (see docs/store.md)")
    labels = per_split["labels/"] if multi else data.get("labels")
    if labels is None or not len(labels) or not any(acts.values()):
        raise CorruptFileError(f"{npz_path} needs 'labels' (N,) and at least one '{NPZ_ACT_PREFIX}<layer>' "
                               f"array (with 'splits': 'labels/<split>' and '{NPZ_ACT_PREFIX}<split>/<layer>'; "
                               "see docs/store.md)")
    if multi and sorted(labels) != sorted(splits):
        raise CorruptFileError(f"{npz_path} lists splits {splits} but has labels for {sorted(labels)}; give "
                               "'labels/<split>' for each")
    order = list(acts[splits[0]])
    if "layers" in data:
        order = strings("layers")
        for sp in splits:
            if sorted(order) != sorted(acts[sp]):
                raise CorruptFileError(f"'layers' in {npz_path} lists {order}, but the {NPZ_ACT_PREFIX} keys "
                                       f"{'of ' + repr(sp) + ' ' if multi else ''}are {sorted(acts[sp])}; they "
                                       "must name the same layers")
    kinds = None
    if "layer_kinds" in data:
        kinds_list = strings("layer_kinds")
        if len(kinds_list) != len(order):
            raise CorruptFileError(f"'layer_kinds' in {npz_path} has {len(kinds_list)} entries "
                                   f"for {len(order)} layers")
        kinds = dict(zip(order, kinds_list, strict=True))
    params: dict[str, dict[str, np.ndarray]] = {}
    for k, v in data.items():
        if k.startswith(NPZ_PARAMS_PREFIX):
            layer, _, pname = k[len(NPZ_PARAMS_PREFIX):].rpartition("/")
            if not layer or not pname:
                raise CorruptFileError(f"{npz_path}: key {k!r} is not {NPZ_PARAMS_PREFIX}<layer>/<name>")
            params.setdefault(layer, {})[pname] = v
    class_names = strings("class_names") if "class_names" in data else None
    act_arg = {sp: {name: acts[sp][name] for name in order} for sp in splits}
    pick = (lambda key: per_split[key + "/"] or None) if multi else data.get
    return dict(activations=act_arg if multi else act_arg[splits[0]], labels=labels,
                class_names=class_names, split=splits[0], epochs=data.get("epochs"),
                layer_kinds=kinds, images=pick("images"), indices=pick("indices"),
                dataset=text("dataset", "custom"), predictions=pick("predictions"), params=params or None,
                layer_inputs=_json(data, "layer_inputs", npz_path), layer_shapes=_json(data, "layer_shapes", npz_path),
                layer_configs=_json(data, "layer_configs", npz_path))


def import_command(args) -> int:
    """``grandtour import FILE.npz --out RUN [--overwrite]``."""
    from grandtour.store.reader import Run  # the reader builds on this module

    run = Run.from_npz(args.npz, args.out, overwrite=bool(getattr(args, "overwrite", False)))
    print(f"wrote {run.path}: {len(run.layers)} layers, {len(run.epochs)} epochs, "
          + ", ".join(f"{s} N={run.size(s)}" for s in run.splits))
    return 0
