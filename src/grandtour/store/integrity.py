"""What makes a run's metadata and chunks trustworthy: cross-checks and chunk checks.

Three kinds of checks, each returning what is wrong (a list of messages, empty if all
is well), so a reader raises on the first and ``grandtour check`` lists them all:

* :func:`commit_problems`: the commit record is consistent with itself and the root
  metadata (epochs and slots unique, integers, in range; scales powers of two; counts
  within the probe sizes; adversarial paths where the format puts them);
* :func:`array_problems`: each array's own metadata (its ``schema.ZARR_META``, read as JSON:
  cheap) agrees with the root record: shape, dtype, chunks along the epoch axis, enough
  slots for the committed epochs, and (runs with ``schema.INTEGRITY_KEY``) the crc32c
  codec;
* :func:`chunk_coords` / :func:`missing_chunks`: which chunk files a read needs, and
  which of them are absent (a missing chunk reads as fill values in Zarr).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.store.location import read_many
from grandtour.store.schema import (
    ADVERSARIAL,
    CRC32C_CODEC,
    MAX_EPOCH,
    METRIC_NAMES,
    ZARR_META,
    activations_array,
    adversarial_group,
    is_per_class,
    metrics_array,
    params_array,
    predictions_array,
    probe_has,
    probes_array,
)
from grandtour.store.validate import is_int


@dataclass(frozen=True)
class ArraySpec:
    """What the root record says an array must look like.

    ``tail`` is the shape after the leading axis (or the whole shape if ``slots`` is
    None); ``slots`` the least length of the epoch axis the commit record needs
    (None: not an array with an epoch axis); ``exact_slots``: the epoch axis must be
    exactly that long (a static layer's single slot).
    """

    name: str
    dtype: str
    tail: tuple[int, ...]
    slots: int | None = None
    exact_slots: bool = False


def read_array_meta(run_path: Path, name: str) -> dict | None:
    """An array's metadata file (``schema.ZARR_META``) as JSON; None if absent or not JSON."""
    try:
        doc = json.loads((run_path / name / ZARR_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def has_crc32c(doc: dict) -> bool:
    """Whether an array's metadata lists the crc32c codec."""
    return any(isinstance(c, dict) and c.get("name") == CRC32C_CODEC for c in doc.get("codecs") or [])


def chunk_shape_of(doc: dict) -> list | None:
    try:
        return list(doc["chunk_grid"]["configuration"]["chunk_shape"])
    except (KeyError, TypeError):
        return None


def check_array_meta(run_path: Path, spec: ArraySpec, *, integrity: bool,
                     fetched: dict[str, bytes] | None = None) -> list[str]:
    """What is wrong with array ``spec.name``'s metadata (empty if nothing). ``fetched``:
    metadata files read beforehand (:func:`~grandtour.store.location.read_many`), by path."""
    if fetched is None:
        doc = read_array_meta(run_path, spec.name)
    else:
        try:
            doc = json.loads(fetched[str(run_path / spec.name / ZARR_META)])
        except (KeyError, ValueError):
            doc = None
        doc = doc if isinstance(doc, dict) else None
    where = f"array {spec.name!r}"
    if doc is None:
        return [f"{where}: its metadata {spec.name}/{ZARR_META} is missing or not JSON"]
    if doc.get("node_type") != "array":
        return [f"{where}: {spec.name}/{ZARR_META} is not an array's metadata"]
    shape = doc.get("shape")
    if not isinstance(shape, list) or not all(is_int(s) and s >= 0 for s in shape):
        return [f"{where}: its shape {shape!r} is not a list of sizes"]
    problems = []
    if doc.get("data_type") != spec.dtype:
        problems.append(f"{where}: its data type is {doc.get('data_type')!r}, expected {spec.dtype!r}")
    if spec.slots is None:
        if tuple(shape) != spec.tail:
            problems.append(f"{where}: its shape is {tuple(shape)}, the run's metadata says {spec.tail}")
    else:
        if tuple(shape[1:]) != spec.tail:
            problems.append(f"{where}: its shape is {tuple(shape)}, the run's metadata says "
                            f"(slots, {', '.join(map(str, spec.tail))})")
        if not shape:
            pass
        elif spec.exact_slots and shape[0] != spec.slots:
            problems.append(f"{where}: {shape[0]} slots on the epoch axis, expected {spec.slots}")
        elif shape[0] < spec.slots:
            problems.append(f"{where}: {shape[0]} slots on the epoch axis, but the commit record "
                            f"uses slot {spec.slots - 1}")
        chunks = chunk_shape_of(doc)
        if chunks and chunks[0] != 1:
            problems.append(f"{where}: chunks {chunks} span several epochs (expected 1 on the epoch axis)")
    if integrity and not has_crc32c(doc):
        problems.append(f"{where}: its chunks carry no crc32c checksum, which this run's arrays all "
                        "have (its metadata was replaced)")
    return problems


def run_arrays(layout: Any) -> list[ArraySpec]:
    """Every array the root record and the commit record say the run has, with its spec."""
    record = layout.commit
    n_classes = len(layout.class_names)
    epochs = record.epochs
    need = max((e.slot for e in epochs), default=-1) + 1
    specs = []
    for split in layout.splits:
        n = layout.sizes[split]
        info = layout.probe_info[split]
        specs.append(ArraySpec(probes_array(split, "labels"), "int64", (n,)))
        if probe_has(info, "indices"):
            specs.append(ArraySpec(probes_array(split, "indices"), "int64", (n,)))
        if probe_has(info, "images"):
            specs.append(ArraySpec(probes_array(split, "images"), "uint8",
                                   (n, *[int(s) for s in info["images"]])))
        for layer in layout.layers:
            if layer.static:
                specs.append(ArraySpec(activations_array(split, layer.name), "float16",
                                       (n, layer.dim), slots=1, exact_slots=True))
            else:
                specs.append(ArraySpec(activations_array(split, layer.name), "float16",
                                       (n, layer.dim), slots=need))
        specs.append(ArraySpec(predictions_array(split), "int16", (n,), slots=need))
        for metric in METRIC_NAMES:
            specs.append(ArraySpec(metrics_array(split, metric), "float64",
                                   (n_classes,) if is_per_class(metric) else (), slots=need))
    param_slots: dict[str, int] = {}
    for entry in epochs:
        for lname, names in entry.params.items():
            for pname in names:
                key = params_array(lname, pname)
                param_slots[key] = max(param_slots.get(key, 0), entry.slot + 1)
    return specs + [_param_spec(layout.path, key, slots) for key, slots in param_slots.items()]


def _param_spec(run_path: Path, name: str, slots: int) -> ArraySpec:
    # A parameter's shape is not in the root record: its own metadata is the reference.
    doc = read_array_meta(run_path, name) or {}
    shape = doc.get("shape") if isinstance(doc.get("shape"), list) else [0]
    return ArraySpec(name, "float32", tuple(shape[1:]), slots=slots)


def array_problems(layout: Any) -> list[str]:
    """What is wrong with the metadata of any of the run's arrays (see :func:`run_arrays`)."""
    problems = []
    specs = run_arrays(layout)
    # On object storage every metadata file in one batch of concurrent requests.
    fetched = read_many([layout.path / spec.name / ZARR_META for spec in specs])
    for spec in specs:
        problems += check_array_meta(layout.path, spec, integrity=bool(layout.integrity), fetched=fetched)
    return problems


# ----------------------------------------------------------------------------- commit record


def _power_of_two(x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return False
    mantissa, _ = math.frexp(x)
    return mantissa == 0.5


def commit_problems(doc: dict, *, splits: Sequence[str], sizes: dict[str, int],
                    layers: Sequence[Any]) -> list[str]:
    """What is wrong with a parsed commit record (a JSON object), as a list of messages."""
    problems: list[str] = []
    names = {layer.name for layer in layers}
    static = {layer.name for layer in layers if layer.static}
    entries = doc.get("epochs")
    if not isinstance(entries, list):
        return ["'epochs' is not a list"]
    seen_epochs: dict[int, int] = {}
    seen_slots: dict[int, int] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            problems.append(f"epochs[{i}] is not an object")
            continue
        epoch, slot = e.get("epoch"), e.get("slot")
        if not is_int(epoch) or not 0 <= epoch <= MAX_EPOCH:
            problems.append(f"epochs[{i}]: epoch {epoch!r} is not an integer in 0..{MAX_EPOCH}")
        elif epoch in seen_epochs:
            problems.append(f"epoch {epoch} is listed twice (epochs[{seen_epochs[epoch]}] and "
                            f"epochs[{i}]): two writers appended to the run at once")
        else:
            seen_epochs[epoch] = i
        if not is_int(slot) or slot < 0:
            problems.append(f"epochs[{i}]: slot {slot!r} is not a non-negative integer")
        elif slot in seen_slots:
            problems.append(f"slot {slot} is used by two epochs (epochs[{seen_slots[slot]}] and "
                            f"epochs[{i}]): one of them would be served as the other")
        else:
            seen_slots[slot] = i
        for field, check in (("scale", _power_of_two), ("nonfinite", None)):
            sub = e.get(field) or {}
            if not isinstance(sub, dict):
                problems.append(f"epochs[{i}].{field} is not an object")
                continue
            for split, per_layer in sub.items():
                if split not in splits or not isinstance(per_layer, dict):
                    problems.append(f"epochs[{i}].{field} names unknown split {split!r}")
                    continue
                for lname, value in per_layer.items():
                    if lname not in names:
                        problems.append(f"epochs[{i}].{field}[{split!r}] names unknown layer {lname!r}")
                    elif check is not None and not check(value):
                        problems.append(f"epochs[{i}].{field}[{split!r}][{lname!r}] = {value!r} is not "
                                        "a power of two")
                    elif check is None and not (is_int(value) and 0 <= value <= sizes[split]):
                        problems.append(f"epochs[{i}].{field}[{split!r}][{lname!r}] = {value!r} is not "
                                        f"a row count in 0..{sizes[split]}")
        params = e.get("params") or {}
        if not isinstance(params, dict) or any(
                k not in names or not isinstance(v, list) for k, v in params.items()):
            problems.append(f"epochs[{i}].params names unknown layers or is not lists of names")
    for lname, entry in (doc.get("static") or {}).items():
        if lname not in static:
            problems.append(f"static names {lname!r}, which is not a static layer of the run")
        elif not isinstance(entry, dict):
            problems.append(f"static[{lname!r}] is not an object")
    adversarial = doc.get("adversarial") or {}
    if not isinstance(adversarial, dict):
        problems.append("'adversarial' is not an object")
        adversarial = {}
    for name, entry in adversarial.items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not _is_generation_path(name, path):
            problems.append(f"adversarial record {name!r} points to {path!r}, not to "
                            f"{ADVERSARIAL}/{name}/<generation>")
    return problems


def _is_generation_path(name: str, path: str) -> bool:
    generation = path.rsplit("/", 1)[-1]
    return generation.isdigit() and path == adversarial_group(name, int(generation))


# ----------------------------------------------------------------------------- chunks


def chunk_coords(shape: Sequence[int], chunks: Sequence[int],
                 leading: Iterable[int] | None = None) -> list[tuple[int, ...]]:
    """The chunk grid coordinates of a read of the whole array, or of the leading-axis
    indices ``leading`` (each within one chunk: the epoch and step axes are chunked by 1)."""
    grid = [range(math.ceil(s / c)) if c else range(0) for s, c in zip(shape, chunks, strict=True)]
    if leading is not None and grid:
        grid[0] = sorted({int(i) // int(chunks[0]) for i in leading})
    return list(itertools.product(*grid))


def chunk_region(coords: tuple[int, ...], shape: Sequence[int], chunks: Sequence[int]) -> tuple:
    """The index of chunk ``coords``, for reading it alone."""
    return tuple(slice(c * k, min((c + 1) * k, s)) for c, k, s in zip(coords, chunks, shape, strict=True))


def missing_chunks(array_dir: Path, arr: Any, coords: Iterable[tuple[int, ...]]) -> list[str]:
    """Keys (``c/3/0/0``) of the chunks in ``coords`` whose files are absent."""
    return [key for key in (arr.metadata.encode_chunk_key(c) for c in coords)
            if not (array_dir / key).is_file()]


def nonfinite_rows(y: np.ndarray) -> int:
    """Rows (last axis = coordinates) holding a NaN or an infinity."""
    return int((~np.isfinite(y).all(axis=-1)).sum())


# ----------------------------------------------------------------------------- adversarial


def adversarial_problems(layout: Any, gpath: str, meta: Any, example_index: np.ndarray,
                         predictions: np.ndarray, target_loss: np.ndarray) -> list[str]:
    """What is inconsistent in an adversarial generation: its attributes against its
    arrays and against the run (split, layers, classes, probe rows)."""
    from grandtour.store.schema import ADV_ACTIVATIONS, ADV_IMAGES

    problems = []
    steps = meta.steps
    if meta.split not in layout.splits:
        return [f"split {meta.split!r} is not a split of the run"]
    n, c = layout.sizes[meta.split], len(layout.class_names)
    unknown = [name for name in meta.layers if name not in layout.by_name]
    if unknown or not meta.layers:
        problems.append(f"layers {meta.layers} are empty or not the run's")
    if not (0 <= meta.source < c and 0 <= meta.target < c):
        problems.append(f"classes {meta.source} -> {meta.target} are outside 0..{c - 1}")
    if steps < 0 or example_index.ndim != 1 or example_index.size == 0:
        return problems + [f"{steps} steps and example_index of shape {example_index.shape}"]
    m = example_index.shape[0]
    if example_index.min() < 0 or example_index.max() >= n:
        problems.append(f"example_index holds rows outside 0..{n - 1} of split {meta.split!r}")
    if predictions.shape != (steps + 1, m):
        problems.append(f"predictions have shape {predictions.shape}, expected ({steps + 1}, {m})")
    elif predictions.size and (predictions.min() < 0 or predictions.max() >= c):
        problems.append(f"predictions hold classes outside 0..{c - 1}")
    if target_loss.shape != (steps + 1,):
        problems.append(f"target_loss has shape {target_loss.shape}, expected ({steps + 1},)")
    images = read_array_meta(layout.path, f"{gpath}/{ADV_IMAGES}") or {}
    if list(images.get("shape") or [])[:2] != [steps + 1, m]:
        problems.append(f"images have shape {images.get('shape')}, expected ({steps + 1}, {m}, ...)")
    for name in meta.layers:
        if name not in layout.by_name:
            continue
        doc = read_array_meta(layout.path, f"{gpath}/{ADV_ACTIVATIONS}/{name}") or {}
        want = [steps + 1, m, layout.by_name[name].dim]
        if doc.get("shape") != want:
            problems.append(f"activations/{name} have shape {doc.get('shape')}, expected {tuple(want)}")
        counts = meta.nonfinite.get(name)
        if counts is not None and (len(counts) != steps + 1
                                   or any(not is_int(k) or not 0 <= k <= m for k in counts)):
            problems.append(f"nonfinite counts of {name} are not {steps + 1} counts in 0..{m}")
        if name in meta.scale and not _power_of_two(meta.scale[name]):
            problems.append(f"scale of {name} ({meta.scale[name]!r}) is not a power of two")
    return problems
