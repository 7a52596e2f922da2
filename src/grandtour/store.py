"""The run store: every layer's activations of fixed probe sets, epoch by epoch (Zarr v3).

The store is the one contract between the Python side (training, recording, the
adversarial steps) and everything that reads a run (alignment, baselines, the
server and the viewer). One run is one directory; its layout is documented in
``docs/store.md`` and summarised here:

``zarr.json``
    the root group; its attributes hold the metadata (dataset, class names, layers
    in network order, splits, training config, ``grandtour_store_version``).
``commit.json``
    the commit record: the completed epochs and the slot each one lives in. It is
    written last, to a temporary file that is then ``os.replace``-d, so it changes
    atomically. Readers trust it and nothing else: an epoch whose arrays are on disk
    but which is not in the commit record does not exist.
``activations/<split>/<layer>``
    float16 ``(slot, N, dim)``, one epoch per chunk; static layers (the input) have
    a single slot.
``predictions/<split>``, ``metrics/<split>/<name>``, ``params/<layer>/<name>``
    per-epoch arrays, one slot per chunk;
``probes/<split>/...``, ``adversarial/<name>/<generation>/...``
    labels, indices and images of the probe sets; adversarial records.

Writing is append-only: an epoch goes to a fresh slot at the end of the epoch axis,
and writing it touches no chunk of another epoch.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from grandtour.errors import CorruptFileError, GrandTourError, StoreError

__all__ = [
    "STORE_VERSION",
    "AdversarialRecord",
    "LayerInfo",
    "ProbeSet",
    "Run",
    "RunWriter",
    "StoreKeyError",
    "format_info",
    "import_command",
    "info_command",
]

#: Version of the on-disk layout; a reader refuses a run written with a newer one.
STORE_VERSION = 1
COMMIT_FILE = "commit.json"
#: Largest finite float16. Larger activations are stored divided by a power of two.
FLOAT16_MAX = 65504.0
#: Largest chunk we aim for; only the example axis is split to stay under it.
CHUNK_BYTES = 64 * 2**20
#: Top-level entries a run directory may hold; `create(overwrite=True)` deletes only such a directory.
# What a run directory may hold: the store's own entries, the trainer's resume state and
# the precomputed layer alignment (grandtour.align).
_RUN_ENTRIES = {"zarr.json", COMMIT_FILE, "probes", "activations", "predictions", "metrics",
                "params", "adversarial", "train_state.pt", "alignment"}
_METRICS = ("loss", "accuracy", "class_loss", "class_accuracy")
# Names become directory names: no separators, no leading dot, nothing Zarr reserves ("__").
_NAME = re.compile(r"^(?!__)[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class StoreKeyError(StoreError, KeyError):
    """An unknown split, layer, epoch or record; the message lists what exists."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class LayerInfo:
    """One recorded layer.

    Parameters
    ----------
    name : str
        ``"input"``, ``"conv1"``, ..., ``"softmax"``; also a directory name in the store.
    kind : str
        ``"input"``, ``"conv2d"``, ``"maxpool2d"``, ``"relu"``, ``"linear"``, ``"softmax"``,
        ... (the lowercased module class name otherwise; ``"unknown"`` for imported runs).
    shape : tuple of int
        Per-example output shape, e.g. ``(10, 24, 24)``; ``dim = prod(shape)``.
    module : str
        ``repr`` of the torch module (``""`` for input and softmax).
    config : dict
        Kind-specific settings (kernel_size, stride, padding, ...). Stored as JSON, so
        tuples come back as lists.
    static : bool
        Same activations at every epoch (the input): stored once.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    module: str = ""
    config: dict = field(default_factory=dict)
    static: bool = False

    @property
    def dim(self) -> int:
        """Number of coordinates of one example's activation, ``prod(shape)``."""
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class ProbeSet:
    """The fixed examples of one split whose activations are recorded at every epoch.

    Parameters
    ----------
    labels : ndarray of shape (N,), int
    indices : ndarray of shape (N,), int, optional
        Index of each probe example in its dataset split.
    images : ndarray of shape (N, C, H, W), uint8, optional
        Thumbnails for the viewer (``(N, H, W)`` is taken as one channel).
    """

    labels: np.ndarray
    indices: np.ndarray | None = None
    images: np.ndarray | None = None


# ----------------------------------------------------------------------------- helpers


def _zarr():
    import zarr  # imported lazily: `grandtour --help` must work without the store extra

    return zarr


def _compressors():
    from zarr.codecs import ZstdCodec

    # Level 1: ~0.6 of the raw float16 size on ReLU activations, at ~3x the speed of level 3.
    return [ZstdCodec(level=1)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name == "zarr.json":
        raise StoreError(
            f"invalid {what} name {name!r}: names become directory names in the run, so use "
            "letters, digits, '_', '.', '-' (not starting with '.', '-' or '__')"
        )
    return name


def _check_unique(names: Sequence[str], what: str) -> None:
    seen: dict[str, str] = {}
    for n in names:
        # Case-insensitive file systems (macOS, Windows) would merge "FC" and "fc".
        if n.lower() in seen:
            raise StoreError(f"two {what}s named {seen[n.lower()]!r} and {n!r}: {what} names "
                             "must differ (also ignoring case)")
        seen[n.lower()] = n


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, type)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _jsonable(obj: Any, what: str) -> Any:
    """Round-trip through JSON so what is held in memory is exactly what a reader gets."""
    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as err:
        raise StoreError(f"{what} must be JSON-serialisable (str, numbers, lists, dicts): {err}") from None


def _rows_per_chunk(n: int, row_bytes: int) -> int:
    return max(1, min(n, CHUNK_BYTES // max(1, row_bytes)))


def _describe_epochs(epochs: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    if not epochs:
        return "none"
    parts, start, prev = [], epochs[0], epochs[0]
    for e in list(epochs[1:]) + [None]:
        if e is not None and e == prev + 1:
            prev = e
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if e is not None:
            start = prev = e
    return ", ".join(parts)


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise StoreError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _as_array(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: no torch import needed
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise StoreError(f"{what} must be a numeric array, got dtype object")
    return arr


def _int_array(value: Any, what: str, shape: tuple[int, ...] | None = None,
               low: int | None = None, high: int | None = None) -> np.ndarray:
    arr = _as_array(value, what)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise StoreError(f"{what} must hold integers, got dtype {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise StoreError(f"{what} has shape {arr.shape}, expected {shape}")
    arr = arr.astype(np.int64)
    if arr.size and low is not None and int(arr.min()) < low:
        raise StoreError(f"{what} holds {int(arr.min())}, below the smallest allowed value {low}")
    if arr.size and high is not None and int(arr.max()) >= high:
        raise StoreError(f"{what} holds {int(arr.max())}, but must be below {high}")
    return arr


def _activation_matrix(value: Any, layer: LayerInfo, lead: tuple[int, ...], what: str) -> np.ndarray:
    """Validate one layer's activations, shaped ``lead + (dim,)`` or ``lead + layer.shape``."""
    arr = _as_array(value, what)
    if arr.shape[: len(lead)] != lead or (arr.shape[len(lead):] != (layer.dim,)
                                          and arr.shape[len(lead):] != tuple(layer.shape)):
        expected = lead + (layer.dim,)
        raise StoreError(f"{what} has shape {arr.shape}, expected {expected} (dim {layer.dim} = "
                         f"prod{tuple(layer.shape)} of layer {layer.name!r})")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise StoreError(f"{what} must be a real-valued array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr.reshape(lead + (layer.dim,))


def encode_float16(x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Float16 copy of ``x`` (..., dim), a power-of-two scale, and per-row non-finite flags.

    Values are stored as ``x / scale``; ``scale`` is the smallest power of two that brings
    the largest finite ``|x|`` under the float16 maximum (65504), so finite values never
    become ``inf``. Non-finite values from the model are kept as they are.

    Returns
    -------
    y : ndarray of float16, same shape as x
    scale : float, a power of two (1.0 unless some ``|x| > 65504``)
    bad_rows : ndarray of bool, shape ``x.shape[:-1]``: rows with a NaN or infinite entry
    """
    finite = np.isfinite(x)
    bad_rows = ~finite.all(axis=-1)
    if x.size == 0:
        peak = 0.0
    elif bad_rows.any():
        peak = float(np.abs(x[finite]).max()) if finite.any() else 0.0
    else:
        peak = float(np.abs(x).max())
    scale = 1.0
    if peak > FLOAT16_MAX:
        k = math.ceil(math.log2(peak / FLOAT16_MAX))
        while peak / 2.0**k > FLOAT16_MAX:  # guard against log2 rounding
            k += 1
        scale = 2.0**k
        x = x / scale  # exact: dividing by a power of two
    with np.errstate(over="ignore", under="ignore"):
        y = x.astype(np.float16)
    return y, scale, bad_rows


def _decode(y: np.ndarray, scale: float) -> np.ndarray:
    out = y.astype(np.float32)
    if scale != 1.0:
        with np.errstate(over="ignore"):
            out *= np.float32(scale)
    return out


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on a few threads: each item is a different array, and
    zarr's I/O and zstd release the GIL, so an epoch's arrays are written side by side."""
    items = list(items)
    workers = min(8, os.cpu_count() or 1, len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a reader sees either the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic on POSIX and Windows


def _is_run_dir(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and "grandtour_store_version" in (doc.get("attributes") or {})


def _missing_run_message(path: Path) -> str | None:
    if not path.exists():
        return (f"no run at {path}: the directory does not exist. Make one with "
                "`grandtour train --out DIR` or `grandtour import FILE.npz --out DIR`")
    if not path.is_dir():
        return f"{path} is a file, not a run directory; give the directory a run was written to"
    if not _is_run_dir(path):
        return (f"{path} is not a grandtour run (no zarr.json with a 'grandtour_store_version' "
                "attribute); give a directory written by `grandtour train` or `grandtour import`")
    if not (path / COMMIT_FILE).is_file():
        return (f"{path} is an incomplete run: its commit record {COMMIT_FILE} is missing (it was "
                "interrupted while being created). Create it again with --overwrite")
    return None


class _Layout:
    """Metadata and commit record of a run, shared by :class:`Run` and :class:`RunWriter`."""

    def __init__(self, path: Path, *, read_only: bool) -> None:
        msg = _missing_run_message(path)
        if msg:
            raise StoreError(msg)
        zarr = _zarr()
        self.path = path
        try:
            self.root = zarr.open_group(
                zarr.storage.LocalStore(path, read_only=read_only), mode="r" if read_only else "r+",
                zarr_format=3)
            attrs = dict(self.root.attrs)
        except Exception as err:  # noqa: BLE001 - any zarr failure here is a corrupt root
            raise StoreError(f"cannot read the root metadata {path / 'zarr.json'}: {err}. "
                             "The run is corrupt; re-create it") from None
        version = attrs.get("grandtour_store_version")
        if not isinstance(version, int) or version > STORE_VERSION:
            raise StoreError(f"{path} was written with store version {version!r}; this grandtour "
                             f"reads versions up to {STORE_VERSION}. Upgrade grandtour")
        try:
            self.dataset: str = attrs["dataset"]
            self.class_names: list[str] = [str(c) for c in attrs["class_names"]]
            self.layers: list[LayerInfo] = [
                LayerInfo(name=d["name"], kind=d["kind"], shape=tuple(int(s) for s in d["shape"]),
                          module=d.get("module", ""), config=dict(d.get("config") or {}),
                          static=bool(d.get("static", False)))
                for d in attrs["layers"]]
            self.splits: list[str] = list(attrs["splits"])
            self.probe_info: dict[str, dict] = dict(attrs["probes"])
            self.config: dict = dict(attrs.get("config") or {})
            self.sizes = {s: int(self.probe_info[s]["size"]) for s in self.splits}
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"the root metadata {path / 'zarr.json'} lacks or garbles the field "
                             f"{err}; the run is corrupt, re-create it") from None
        self.by_name = {layer.name: layer for layer in self.layers}
        self.commit = self.read_commit()

    def read_commit(self) -> dict:
        cpath = self.path / COMMIT_FILE
        try:
            doc = json.loads(cpath.read_text(encoding="utf-8"))
            epochs = doc["epochs"]
            for entry in epochs:
                int(entry["epoch"]), int(entry["slot"])
            doc.setdefault("static", {})
            doc.setdefault("adversarial", {})
        except FileNotFoundError:
            raise StoreError(f"the commit record {cpath} is missing; the run is incomplete. "
                             "Re-create it with --overwrite") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StoreError(f"the commit record {cpath} is corrupt ({err}); it lists the completed "
                             "epochs, so the run cannot be read. Re-create it") from None
        return doc

    def layer(self, name: str) -> LayerInfo:
        try:
            return self.by_name[name]
        except (KeyError, TypeError):
            raise StoreKeyError(f"no layer {name!r} in run {self.path}; layers: "
                                f"{', '.join(self.by_name)}") from None

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise StoreKeyError(f"no split {split!r} in run {self.path}; splits: "
                                f"{', '.join(self.splits)}")
        return split

    def array(self, name: str):
        try:
            node = self.root[name]
        except Exception:  # noqa: BLE001 - missing or unreadable metadata
            raise StoreError(f"array {name!r} of run {self.path} is missing or its metadata is "
                             "corrupt; the run is damaged, re-create it") from None
        if not hasattr(node, "shape"):
            raise StoreError(f"{name!r} in run {self.path} is a group, expected an array")
        return node

    def read(self, name: str, index: Any = slice(None)) -> np.ndarray:
        arr = self.array(name)
        try:
            return np.asarray(arr[index])
        except Exception as err:  # noqa: BLE001 - a chunk that does not decode
            raise StoreError(f"array {name!r} of run {self.path} is corrupt (reading {index!r} "
                             f"failed: {type(err).__name__}: {err}); re-create the run") from None


# ----------------------------------------------------------------------------- writer


class RunWriter:
    """Writes a run: created once, then one :meth:`write_epoch` per recorded epoch.

    Only one writer should append to a run at a time (several processes writing the
    same run is not supported). Readers (:class:`Run`) may be open meanwhile.

    Attributes
    ----------
    path : Path
    dataset : str
    class_names : list of str
    layers : list of LayerInfo, network order
    splits : list of str
    epochs : list of int
        Completed (committed) epochs, sorted.
    config : dict
        The training config as stored; change it with :meth:`update_config`.
    """

    #: Testing aid: called with a stage name ("resized", "activations", "before_commit")
    #: inside :meth:`write_epoch`, so a test can kill the process at that point.
    _test_hook: ClassVar[Callable[[str], None] | None] = None

    def __init__(self, layout: _Layout) -> None:
        self._layout = layout
        self.path = layout.path
        self.dataset = layout.dataset
        self.class_names = list(layout.class_names)
        self.layers = list(layout.layers)
        self.splits = list(layout.splits)
        self.config = dict(layout.config)

    def __repr__(self) -> str:
        return f"RunWriter({str(self.path)!r}, epochs={_describe_epochs(self.epochs)})"

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to flush (every write is complete when it returns); kept for `with`."""

    @property
    def epochs(self) -> list[int]:
        return sorted(int(e["epoch"]) for e in self._layout.commit["epochs"])

    # -- creation ------------------------------------------------------------------

    @classmethod
    def create(cls, path, *, dataset: str, class_names, layers: Sequence[LayerInfo],
               probes: Mapping[str, ProbeSet], config: Mapping | None = None,
               overwrite: bool = False) -> RunWriter:
        """Create an empty run (no epochs yet) at ``path``.

        Parameters
        ----------
        path : str or Path
            The run directory. It must not exist, be empty, or (with ``overwrite``) be a
            grandtour run, which is then deleted. A directory that is not a run is never
            deleted.
        dataset : str
        class_names : sequence of str, length C
        layers : sequence of LayerInfo, network order
        probes : mapping split -> ProbeSet, e.g. ``{"train": ..., "test": ...}``
        config : mapping, optional
            Training config, any JSON-able dict.
        overwrite : bool
        """
        path = Path(path)
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise StoreError("class_names is empty: a run needs at least one class")
        if len(class_names) > 32767:
            raise StoreError(f"{len(class_names)} classes: predictions are stored as int16, "
                             "so at most 32767 classes are supported")
        layers = list(layers)
        if not layers:
            raise StoreError("no layers: give at least one LayerInfo")
        layer_docs = []
        for layer in layers:
            if not isinstance(layer, LayerInfo):
                raise StoreError(f"layers must be LayerInfo objects, got {type(layer).__name__}")
            _check_name(layer.name, "layer")
            shape = tuple(layer.shape)
            if not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
                raise StoreError(f"layer {layer.name!r} has shape {layer.shape!r}; expected a "
                                 "tuple of positive integers")
            layer_docs.append({
                "name": layer.name, "kind": str(layer.kind), "shape": [int(s) for s in shape],
                "module": str(layer.module), "static": bool(layer.static),
                "config": _jsonable(dict(layer.config), f"config of layer {layer.name!r}")})
        _check_unique([d["name"] for d in layer_docs], "layer")
        if not probes:
            raise StoreError("no probe sets: give at least one split, e.g. {'train': ProbeSet(...)}")
        splits = [_check_name(s, "split") for s in probes]
        _check_unique(splits, "split")
        probe_arrays: dict[str, dict[str, np.ndarray]] = {}
        probe_docs: dict[str, dict] = {}
        for split, probe in probes.items():
            if not isinstance(probe, ProbeSet):
                raise StoreError(f"probes[{split!r}] must be a ProbeSet, got {type(probe).__name__}")
            labels = _int_array(probe.labels, f"labels of split {split!r}", low=0, high=len(class_names))
            if labels.ndim != 1 or labels.size == 0:
                raise StoreError(f"labels of split {split!r} must be a non-empty 1-D array, "
                                 f"got shape {labels.shape}")
            n = labels.shape[0]
            arrays = {"labels": labels}
            doc: dict[str, Any] = {"size": n, "indices": False, "images": None}
            if probe.indices is not None:
                arrays["indices"] = _int_array(probe.indices, f"indices of split {split!r}", (n,), low=0)
                doc["indices"] = True
            if probe.images is not None:
                images = _as_array(probe.images, f"images of split {split!r}")
                if images.ndim == 3:
                    images = images[:, None]
                if images.ndim != 4 or images.shape[0] != n:
                    raise StoreError(f"images of split {split!r} have shape {images.shape}; "
                                     f"expected ({n}, C, H, W)")
                if images.dtype != np.uint8:
                    raise StoreError(f"images of split {split!r} are {images.dtype}; store uint8 "
                                     "thumbnails (0..255), e.g. (x * 255).round().astype(np.uint8)")
                arrays["images"] = images
                doc["images"] = list(images.shape[1:])
            probe_arrays[split] = arrays
            probe_docs[split] = doc
        config_doc = _jsonable(dict(config or {}), "config")

        _prepare_directory(path, overwrite)
        zarr = _zarr()
        root = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=3, attributes={
            "grandtour_store_version": STORE_VERSION, "dataset": str(dataset),
            "class_names": class_names, "layers": layer_docs, "splits": splits,
            "probes": probe_docs, "config": config_doc, "created": _now()})
        n_classes = len(class_names)
        comp = _compressors()
        for split in splits:
            g = root.require_group("probes").require_group(split)
            for name, arr in probe_arrays[split].items():
                row = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.itemsize
                g.create_array(name, data=arr, chunks=(_rows_per_chunk(arr.shape[0], row),) + arr.shape[1:],
                               compressors=comp)
            n = probe_docs[split]["size"]
            acts = root.require_group("activations").require_group(split)
            for layer in layer_docs:
                dim = int(math.prod(layer["shape"]))
                acts.create_array(layer["name"], shape=(1 if layer["static"] else 0, n, dim),
                                  chunks=(1, _rows_per_chunk(n, 2 * dim), dim), dtype="float16",
                                  fill_value=np.nan, compressors=comp,
                                  dimension_names=("slot", "example", "dim"))
            root.require_group("predictions").create_array(
                split, shape=(0, n), chunks=(1, n), dtype="int16", fill_value=-1,
                compressors=comp, dimension_names=("slot", "example"))
            mg = root.require_group("metrics").require_group(split)
            for name in _METRICS:
                per_class = name.startswith("class_")
                mg.create_array(name, shape=(0, n_classes) if per_class else (0,),
                                chunks=(1, n_classes) if per_class else (1,), dtype="float64",
                                fill_value=np.nan, compressors=None,
                                dimension_names=("slot", "class") if per_class else ("slot",))
        root.require_group("params")
        root.require_group("adversarial")
        # Last: until the commit record exists, the directory is not a readable run.
        write_json_atomic(path / COMMIT_FILE, {"grandtour_store_version": STORE_VERSION,
                                                "epochs": [], "static": {}, "adversarial": {}})
        return cls(_Layout(path, read_only=False))

    @classmethod
    def open(cls, path) -> RunWriter:
        """Open an existing run to append epochs (resume) or adversarial records.

        Leftovers of a write that was killed (temporary files) are removed; the slot of
        an epoch that was being written is reused by the next :meth:`write_epoch`.
        """
        path = Path(path)
        layout = _Layout(path, read_only=False)
        _remove_leftovers(path)
        return cls(layout)

    def update_config(self, changes: Mapping) -> None:
        """Merge ``changes`` into the stored training config (e.g. on resume)."""
        merged = _jsonable({**self.config, **dict(changes)}, "config")
        self._layout.root.attrs.update({"config": merged})
        self.config = merged

    # -- epochs --------------------------------------------------------------------

    def _commit(self, change: Callable[[dict], None]) -> None:
        # Re-read first, so another RunWriter on the same run (used one after the other,
        # e.g. the trainer's and the adversarial command's) does not lose its entries.
        doc = self._layout.read_commit()
        change(doc)
        write_json_atomic(self.path / COMMIT_FILE, doc)
        self._layout.commit = doc

    def _hook(self, stage: str) -> None:
        hook = type(self)._test_hook
        if hook is not None:
            hook(stage)

    def write_epoch(self, epoch: int, *,
                    activations: Mapping[str, Mapping[str, np.ndarray]],
                    predictions: Mapping[str, np.ndarray] | None = None,
                    metrics: Mapping[str, Mapping[str, float | np.ndarray]] | None = None,
                    params: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> None:
        """Write one epoch and commit it atomically.

        Parameters
        ----------
        epoch : int >= 0
            Not already in the run. Epochs need not be contiguous nor increasing.
        activations : mapping split -> layer -> ndarray of shape (N, dim) or (N, *layer.shape)
            Every split and every layer. A static layer is needed only until its data
            has been committed once; afterwards it may be omitted and is ignored if given.
        predictions : mapping split -> ndarray of shape (N,), int in [0, C), optional
            A split left out reads back as -1.
        metrics : mapping split -> {"loss": float, "accuracy": float, "class_loss": (C,),
            "class_accuracy": (C,)}, optional
            Any of them left out reads back as NaN.
        params : mapping layer -> {name: ndarray}, optional
            E.g. ``{"fc1": {"weight": (50, 80), "bias": (50,)}}``, stored as float32.

        Notes
        -----
        Everything is validated before anything is written. The epoch's arrays go to a
        fresh slot; the commit record is replaced last, so a process killed inside this
        call leaves the run with the epochs completed before, and writing the same
        epoch again reuses (overwrites) the partial slot.
        """
        layout = self._layout
        layout.commit = layout.read_commit()
        epoch = _as_int(epoch, "epoch")
        if epoch < 0:
            raise StoreError(f"epoch must be >= 0, got {epoch}")
        if epoch in self.epochs:
            raise StoreError(f"epoch {epoch} is already in run {self.path}: epochs are append-only. "
                             f"Completed epochs: {_describe_epochs(self.epochs)}")
        static_done = layout.commit["static"]
        n_classes = len(self.class_names)

        # ---- validate everything before touching the disk
        if not isinstance(activations, Mapping):
            raise StoreError("activations must be a mapping split -> layer -> array")
        self._check_keys(activations, self.splits, "split", "activations")
        acts: dict[tuple[str, str], np.ndarray] = {}
        for split in self.splits:
            given = activations[split]
            self._check_known(given, [lay.name for lay in self.layers], "layer",
                              f"activations[{split!r}]")
            n = layout.sizes[split]
            for layer in self.layers:
                if layer.static and layer.name in static_done:
                    continue  # written once already; the stored copy is the one readers get
                if layer.name not in given:
                    hint = " (a static layer must be given until its first epoch is committed)" \
                        if layer.static else ""
                    every = ", ".join(lay.name for lay in self.layers)
                    raise StoreError(f"activations[{split!r}] lacks layer {layer.name!r}{hint}; "
                                     f"every epoch needs all layers: {every}")
                acts[split, layer.name] = _activation_matrix(
                    given[layer.name], layer, (n,), f"activations[{split!r}][{layer.name!r}]")
        preds: dict[str, np.ndarray] = {}
        for split, value in (predictions or {}).items():
            layout.check_split(split)
            preds[split] = _int_array(value, f"predictions[{split!r}]", (layout.sizes[split],),
                                      low=0, high=n_classes)
        mets: dict[tuple[str, str], np.ndarray] = {}
        for split, values in (metrics or {}).items():
            layout.check_split(split)
            self._check_known(values, _METRICS, "metric", f"metrics[{split!r}]")
            for name, value in values.items():
                shape = (n_classes,) if name.startswith("class_") else ()
                arr = _as_array(value, f"metrics[{split!r}][{name!r}]").astype(np.float64)
                if arr.shape != shape:
                    raise StoreError(f"metrics[{split!r}][{name!r}] has shape {arr.shape}, expected "
                                     f"{shape} ({'one per class' if shape else 'a scalar'})")
                mets[split, name] = arr
        pars: dict[tuple[str, str], np.ndarray] = {}
        for lname, named in (params or {}).items():
            layout.layer(lname)
            if not isinstance(named, Mapping):
                raise StoreError(f"params[{lname!r}] must be a mapping name -> array, e.g. "
                                 f"{{'weight': ..., 'bias': ...}}, got {type(named).__name__}")
            for pname, value in named.items():
                _check_name(pname, "parameter")
                arr = _as_array(value, f"params[{lname!r}][{pname!r}]").astype(np.float32)
                existing = layout.root.get(f"params/{lname}/{pname}")
                if existing is not None and tuple(existing.shape[1:]) != arr.shape:
                    raise StoreError(f"params[{lname!r}][{pname!r}] has shape {arr.shape}, but "
                                     f"earlier epochs stored {tuple(existing.shape[1:])}")
                pars[lname, pname] = arr

        # ---- write into a fresh slot (one past the last committed one)
        committed_slots = [int(e["slot"]) for e in layout.commit["epochs"]]
        slot = max(committed_slots) + 1 if committed_slots else 0
        root = layout.root
        comp = _compressors()

        def grown(name: str):
            arr = layout.array(name)
            if arr.shape[0] <= slot:  # never shrink: a partial slot beyond ours may exist
                arr.resize((slot + 1,) + tuple(arr.shape[1:]))
            return arr

        names = [f"activations/{split}/{lname}" for split, lname in acts
                 if not layout.by_name[lname].static]
        names += [f"predictions/{split}" for split in self.splits]
        names += [f"metrics/{split}/{name}" for split in self.splits for name in _METRICS]
        for (lname, pname), arr in pars.items():
            if root.get(f"params/{lname}/{pname}") is None:
                group = root.require_group("params").require_group(lname)
                row = int(np.prod(arr.shape[1:], dtype=np.int64)) * 4
                chunks = (1,) + ((_rows_per_chunk(arr.shape[0], row),) + arr.shape[1:] if arr.ndim else ())
                group.create_array(pname, shape=(slot + 1,) + arr.shape, chunks=chunks,
                                   dtype="float32", fill_value=np.nan, compressors=comp)
            names.append(f"params/{lname}/{pname}")
        arrays = dict(zip(names, _parallel(grown, names), strict=True))
        self._hook("resized")

        def write_activations(item: tuple[tuple[str, str], np.ndarray]):
            (split, lname), x = item
            y, scale, bad_rows = encode_float16(x)
            if layout.by_name[lname].static:
                layout.array(f"activations/{split}/{lname}")[0] = y
            else:
                arrays[f"activations/{split}/{lname}"][slot] = y
            return split, lname, scale, int(bad_rows.sum())

        scales: dict[str, dict[str, float]] = {}
        bad: dict[str, dict[str, int]] = {}
        static_info: dict[str, dict] = {}
        for split, lname, scale, n_bad in _parallel(write_activations, list(acts.items())):
            if layout.by_name[lname].static:
                info = static_info.setdefault(lname, {"scale": {}, "nonfinite": {}})
                scale_to, bad_to = info["scale"], info["nonfinite"]
                key = split
            else:
                scale_to, bad_to = scales.setdefault(split, {}), bad.setdefault(split, {})
                key = lname
            if scale != 1.0:
                scale_to[key] = scale
            if n_bad:
                bad_to[key] = n_bad
        self._hook("activations")

        small: list[tuple[str, np.ndarray]] = []
        for split in self.splits:
            # Written even when absent, so a partial slot left by a killed write is reset.
            small.append((f"predictions/{split}",
                          preds.get(split, np.full(layout.sizes[split], -1)).astype(np.int16)))
            for name in _METRICS:
                shape = (n_classes,) if name.startswith("class_") else ()
                small.append((f"metrics/{split}/{name}", mets.get((split, name), np.full(shape, np.nan))))
        param_names: dict[str, list[str]] = {}
        for (lname, pname), arr in pars.items():
            small.append((f"params/{lname}/{pname}", arr))
            param_names.setdefault(lname, []).append(pname)

        def write_small(item: tuple[str, np.ndarray]) -> None:
            arrays[item[0]][slot] = item[1]

        _parallel(write_small, small)
        self._hook("before_commit")

        entry = {"epoch": epoch, "slot": slot, "written": _now()}
        scales = {s: v for s, v in scales.items() if v}
        bad = {s: v for s, v in bad.items() if v}
        if scales:
            entry["scale"] = scales
        if bad:
            entry["nonfinite"] = bad
        if param_names:
            entry["params"] = param_names

        def change(doc: dict) -> None:
            doc["epochs"].append(entry)
            doc["static"].update(static_info)

        self._commit(change)

    @staticmethod
    def _check_keys(given: Mapping, expected: Sequence[str], what: str, where: str) -> None:
        missing = [k for k in expected if k not in given]
        if missing:
            raise StoreError(f"{where} lacks {what}(s) {', '.join(map(repr, missing))}; every epoch "
                             f"needs all of: {', '.join(expected)}")
        RunWriter._check_known(given, expected, what, where)

    @staticmethod
    def _check_known(given: Mapping, known: Sequence[str], what: str, where: str) -> None:
        if not isinstance(given, Mapping):
            raise StoreError(f"{where} must be a mapping, got {type(given).__name__}")
        unknown = [k for k in given if k not in known]
        if unknown:
            raise StoreKeyError(f"{where} has unknown {what}(s) {', '.join(map(repr, unknown))}; "
                                f"known: {', '.join(known)}")

    # -- adversarial ---------------------------------------------------------------

    def write_adversarial(self, name: str, *, epoch: int, source: int, target: int, eps: float,
                          split: str, example_index: np.ndarray,
                          activations: Mapping[str, np.ndarray], images: np.ndarray,
                          predictions: np.ndarray, target_loss: np.ndarray) -> None:
        """Write (or replace) the adversarial record ``name``: every FGSM step of every layer.

        Parameters
        ----------
        name : str
        epoch : int
            A completed epoch: the weights attacked.
        source, target : int in [0, C)
        eps : float
            L-infinity step per iteration.
        split : str
            The probe split the examples come from.
        example_index : ndarray of shape (M,), int
            Rows of that split's probe set.
        activations : mapping layer -> ndarray of shape (S+1, M, dim) or (S+1, M, *layer.shape)
            Step 0 is the genuine example. Any non-empty subset of the run's layers.
        images : ndarray of shape (S+1, M, C, H, W), uint8
        predictions : ndarray of shape (S+1, M), int
        target_loss : ndarray of shape (S+1,)
            Mean loss toward the target.

        Notes
        -----
        The record is written to a new generation group and then committed, so a reader
        never sees a half-written record; the previous generation is deleted afterwards.
        """
        layout = self._layout
        layout.commit = layout.read_commit()
        _check_name(name, "adversarial record")
        epoch = _as_int(epoch, "epoch")
        if epoch not in self.epochs:
            raise StoreKeyError(f"epoch {epoch} is not a completed epoch of run {self.path}; "
                                f"completed: {_describe_epochs(self.epochs)}")
        n_classes = len(self.class_names)
        source = _as_int(source, "source")
        target = _as_int(target, "target")
        for what, c in (("source", source), ("target", target)):
            if not 0 <= c < n_classes:
                raise StoreError(f"{what} class {c} is out of range 0..{n_classes - 1}")
        eps = float(eps)
        layout.check_split(split)
        index = _int_array(example_index, "example_index", low=0, high=layout.sizes[split])
        if index.ndim != 1 or index.size == 0:
            raise StoreError(f"example_index must be a non-empty 1-D array, got shape {index.shape}")
        m = index.shape[0]
        preds = _as_array(predictions, "predictions")
        if preds.ndim != 2 or preds.shape[1] != m or preds.shape[0] < 1:
            raise StoreError(f"predictions has shape {preds.shape}, expected (S+1, {m})")
        n_steps = preds.shape[0]
        preds = _int_array(preds, "predictions", low=0, high=n_classes)
        loss = _as_array(target_loss, "target_loss").astype(np.float64)
        if loss.shape != (n_steps,):
            raise StoreError(f"target_loss has shape {loss.shape}, expected ({n_steps},)")
        imgs = _as_array(images, "images")
        if imgs.ndim == 4:
            imgs = imgs[:, :, None]
        if imgs.ndim != 5 or imgs.shape[:2] != (n_steps, m):
            raise StoreError(f"images has shape {imgs.shape}, expected ({n_steps}, {m}, C, H, W)")
        if imgs.dtype != np.uint8:
            raise StoreError(f"images are {imgs.dtype}; store uint8 (the perturbed images, rounded)")
        if not activations:
            raise StoreError("activations is empty: give at least one layer")
        self._check_known(activations, [lay.name for lay in self.layers], "layer", "activations")
        acts = {lname: _activation_matrix(value, layout.by_name[lname], (n_steps, m),
                                          f"activations[{lname!r}]")
                for lname, value in activations.items()}

        previous = layout.commit["adversarial"].get(name, {}).get("path")
        generation = int(previous.rsplit("/", 1)[1]) + 1 if previous else 0
        gpath = f"adversarial/{name}/{generation}"
        comp = _compressors()
        scales: dict[str, float] = {}
        nonfinite: dict[str, list[int]] = {}
        attrs = {"epoch": epoch, "source": source, "target": target, "eps": eps, "split": split,
                 "steps": n_steps - 1, "layers": list(acts)}
        # overwrite=True: a generation left half-written by a killed process is replaced.
        group = layout.root.require_group("adversarial").require_group(name).create_group(
            str(generation), overwrite=True, attributes=attrs)
        group.create_array("example_index", data=index, compressors=comp)
        group.create_array("predictions", data=preds.astype(np.int16), chunks=(1, m), compressors=comp)
        group.create_array("target_loss", data=loss, compressors=None)
        row = int(np.prod(imgs.shape[2:], dtype=np.int64))
        group.create_array("images", data=imgs, chunks=(1, _rows_per_chunk(m, row)) + imgs.shape[2:],
                           compressors=comp)
        ag = group.require_group("activations")
        for lname, x in acts.items():
            y, scale, bad_rows = encode_float16(x)
            dim = x.shape[-1]
            ag.create_array(lname, data=y, chunks=(1, _rows_per_chunk(m, 2 * dim), dim),
                            compressors=comp, dimension_names=("step", "example", "dim"))
            if scale != 1.0:
                scales[lname] = scale
            if bad_rows.any():
                nonfinite[lname] = [int(c) for c in bad_rows.sum(axis=1)]
        group.attrs.update({"scale": scales, "nonfinite": nonfinite})

        def change(doc: dict) -> None:
            doc["adversarial"][name] = {"path": gpath, "written": _now()}

        self._commit(change)
        if previous:
            shutil.rmtree(self.path / previous, ignore_errors=True)


def _prepare_directory(path: Path, overwrite: bool) -> None:
    """Make ``path`` an empty directory, deleting it first only if it is a grandtour run."""
    if path.is_symlink():
        raise StoreError(f"{path} is a symbolic link; give the real directory for the run")
    if path.exists():
        if not path.is_dir():
            raise StoreError(f"{path} exists and is a file; choose another path for the run")
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            if not _is_run_dir(path):
                raise StoreError(
                    f"{path} exists and is not a grandtour run (it holds {', '.join(entries[:5])}"
                    f"{', ...' if len(entries) > 5 else ''}); refusing to write into it or delete "
                    "it, even with overwrite. Choose another path")
            foreign = [e for e in entries if e not in _RUN_ENTRIES and not e.endswith(".tmp")]
            if foreign:
                raise StoreError(f"{path} is a grandtour run but also holds {', '.join(foreign)}; "
                                 "refusing to delete it. Move those files or choose another path")
            if not overwrite:
                raise StoreError(f"a run already exists at {path}; pass overwrite=True (--overwrite) "
                                 "to replace it, or resume it (--resume)")
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _remove_leftovers(path: Path) -> None:
    """Delete temporary files a killed writer left (zarr's ``*.partial``, our ``.*.tmp``)."""
    for dirpath, _, files in os.walk(path):
        for f in files:
            if f.endswith(".partial") or (f.startswith(f".{COMMIT_FILE}.") and f.endswith(".tmp")):
                try:
                    os.unlink(os.path.join(dirpath, f))
                except OSError:
                    pass


# ----------------------------------------------------------------------------- reader


class AdversarialRecord:
    """One adversarial run: iterative FGSM steps of examples of one split, seen in every layer.

    Attributes
    ----------
    name : str
    epoch : int
        Epoch of the weights attacked.
    source, target : int
        Class perturbed and class pushed toward.
    eps : float
    split : str
    example_index : ndarray of shape (M,)
        Rows of the split's probe set.
    steps : int
        Number of FGSM steps S; step indices run 0..S (0 is the genuine example).
    layers : list of str
        Layers recorded.
    predictions : ndarray of shape (S+1, M), int
    target_loss : ndarray of shape (S+1,)
    """

    def __init__(self, layout: _Layout, name: str, gpath: str) -> None:
        self._layout = layout
        self._path = gpath
        try:
            attrs = dict(layout.root[gpath].attrs)
            self.epoch = int(attrs["epoch"])
            self.source = int(attrs["source"])
            self.target = int(attrs["target"])
            self.eps = float(attrs["eps"])
            self.split = str(attrs["split"])
            self.steps = int(attrs["steps"])
            self.layers = list(attrs["layers"])
            self._scale = dict(attrs.get("scale") or {})
            self._nonfinite = dict(attrs.get("nonfinite") or {})
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001
            raise StoreError(f"adversarial record {name!r} ({gpath}) of run {layout.path} is corrupt "
                             f"({type(err).__name__}: {err}); write it again") from None
        self.name = name
        self.example_index = layout.read(f"{gpath}/example_index").astype(np.int64)
        self.predictions = layout.read(f"{gpath}/predictions").astype(np.int64)
        self.target_loss = layout.read(f"{gpath}/target_loss")

    def __repr__(self) -> str:
        return (f"AdversarialRecord({self.name!r}, epoch={self.epoch}, {self.source}->{self.target}, "
                f"eps={self.eps}, steps={self.steps}, M={self.example_index.shape[0]})")

    def _step(self, step: int) -> int:
        step = _as_int(step, "step")
        if not 0 <= step <= self.steps:
            raise StoreKeyError(f"no step {step} in adversarial record {self.name!r}; steps 0..{self.steps}")
        return step

    def activations(self, layer: str, step: int | None = None) -> np.ndarray:
        """Activations at one step, ``(M, dim)`` float32, or all steps ``(S+1, M, dim)`` if None."""
        if layer not in self.layers:
            raise StoreKeyError(f"adversarial record {self.name!r} has no layer {layer!r}; "
                                f"layers: {', '.join(self.layers)}")
        index = slice(None) if step is None else self._step(step)
        name = f"{self._path}/activations/{layer}"
        out = _decode(self._layout.read(name, index), float(self._scale.get(layer, 1.0)))
        counts = self._nonfinite.get(layer, [0] * (self.steps + 1))
        expected = sum(counts) if step is None else counts[index]
        found = int((~np.isfinite(out).all(axis=-1)).sum())
        if found != expected:
            raise StoreError(f"array {name!r} of run {self._layout.path} is corrupt: {found} rows are "
                             f"not finite where {expected} were written (a chunk may be missing)")
        return out

    def images(self, step: int | None = None) -> np.ndarray:
        """Perturbed images at one step ``(M, C, H, W)`` uint8, or all ``(S+1, M, C, H, W)``."""
        index = slice(None) if step is None else self._step(step)
        return self._layout.read(f"{self._path}/images", index)


class Run:
    """A recorded run, opened for reading (also while it is being written).

    Attributes
    ----------
    path : Path
    dataset : str
    class_names : list of str
    config : dict
        Training config.
    layers : list of LayerInfo, network order
    splits : list of str
    epochs : list of int
        Completed epochs, sorted; :meth:`refresh` re-reads them.
    """

    def __init__(self, layout: _Layout) -> None:
        self._layout = layout
        self.path = layout.path
        self.dataset = layout.dataset
        self.class_names = list(layout.class_names)
        self.config = dict(layout.config)
        self.layers = list(layout.layers)
        self.splits = list(layout.splits)
        self._apply_commit(layout.commit)

    def __repr__(self) -> str:
        return (f"Run({str(self.path)!r}, dataset={self.dataset!r}, layers={len(self.layers)}, "
                f"splits={self.splits}, epochs={_describe_epochs(self.epochs)})")

    @classmethod
    def open(cls, path) -> Run:
        """Open the run at ``path``; :class:`StoreError` saying what to do if it is not one."""
        return cls(_Layout(Path(path), read_only=True))

    def _apply_commit(self, doc: dict) -> None:
        self._entries = {int(e["epoch"]): e for e in doc["epochs"]}
        self._static = dict(doc["static"])
        self._adversarial = dict(doc["adversarial"])
        self.epochs = sorted(self._entries)

    def refresh(self) -> None:
        """Re-read the commit record: pick up epochs committed since the run was opened."""
        self._layout.commit = self._layout.read_commit()
        self._apply_commit(self._layout.commit)

    # -- lookups -------------------------------------------------------------------

    def layer(self, name: str) -> LayerInfo:
        """The :class:`LayerInfo` named ``name``; :class:`StoreKeyError` listing the layers if none."""
        return self._layout.layer(name)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def size(self, split: str) -> int:
        """Number of probe examples N of ``split``."""
        return self._layout.sizes[self._layout.check_split(split)]

    def _entry(self, epoch: int) -> dict:
        try:
            return self._entries[int(epoch)]
        except (KeyError, TypeError, ValueError):
            raise StoreKeyError(f"epoch {epoch!r} is not in run {self.path}; completed epochs: "
                                f"{_describe_epochs(self.epochs)}") from None

    # -- probes --------------------------------------------------------------------

    def labels(self, split: str) -> np.ndarray:
        """Labels of the probe examples, ``(N,)`` int64."""
        self._layout.check_split(split)
        return self._layout.read(f"probes/{split}/labels").astype(np.int64)

    def indices(self, split: str) -> np.ndarray | None:
        """Index of each probe example in its dataset split, ``(N,)``, or None if not stored."""
        self._layout.check_split(split)
        if not self._layout.probe_info[split].get("indices"):
            return None
        return self._layout.read(f"probes/{split}/indices").astype(np.int64)

    def images(self, split: str) -> np.ndarray | None:
        """Probe thumbnails ``(N, C, H, W)`` uint8, or None if not stored."""
        self._layout.check_split(split)
        if not self._layout.probe_info[split].get("images"):
            return None
        return self._layout.read(f"probes/{split}/images")

    # -- per epoch -----------------------------------------------------------------

    def _activation_location(self, layer: str, epoch: int, split: str) -> tuple[str, int, float, int]:
        info = self.layer(layer)
        self._layout.check_split(split)
        entry = self._entry(epoch)
        name = f"activations/{split}/{layer}"
        if info.static:
            static = self._static.get(layer)
            if static is None:
                raise StoreError(f"static layer {layer!r} has no committed data in run {self.path}; "
                                 "the run is damaged, re-create it")
            return (name, 0, float(static.get("scale", {}).get(split, 1.0)),
                    int(static.get("nonfinite", {}).get(split, 0)))
        return (name, int(entry["slot"]), float(entry.get("scale", {}).get(split, {}).get(layer, 1.0)),
                int(entry.get("nonfinite", {}).get(split, {}).get(layer, 0)))

    def activations_float16(self, layer: str, epoch: int, split: str) -> tuple[np.ndarray, float]:
        """The stored float16 activations ``(N, dim)`` and their scale (value = stored * scale).

        For sending compact binary to the viewer without a float32 round trip.
        """
        name, slot, scale, expected = self._activation_location(layer, epoch, split)
        y = self._layout.read(name, slot)
        found = int((~np.isfinite(y).all(axis=1)).sum())
        if found != expected:
            # The commit record counts the non-finite rows written; a missing chunk reads as NaN.
            raise StoreError(f"array {name!r} of run {self.path} is corrupt at epoch {epoch} (slot "
                             f"{slot}): {found} rows are not finite where {expected} were written "
                             "(a chunk file may be missing); re-create the run")
        return y, scale

    def activations(self, layer: str, epoch: int, split: str) -> np.ndarray:
        """Activations of the probe examples of ``split`` at ``epoch``, ``(N, dim)`` float32.

        Reads only that (layer, epoch, split) chunk. A static layer returns the same
        array for every epoch. Non-finite values the model produced are returned as they
        are; :meth:`nonfinite` counts them.
        """
        y, scale = self.activations_float16(layer, epoch, split)
        return _decode(y, scale)

    def nonfinite(self, epoch: int) -> dict[str, dict[str, int]]:
        """Rows (examples) with a NaN or infinite activation: ``[split][layer] -> count``."""
        entry = self._entry(epoch)
        out = {}
        for split in self.splits:
            counts = {}
            for layer in self.layers:
                if layer.static:
                    counts[layer.name] = int(self._static.get(layer.name, {}).get("nonfinite", {})
                                             .get(split, 0))
                else:
                    counts[layer.name] = int(entry.get("nonfinite", {}).get(split, {}).get(layer.name, 0))
            out[split] = counts
        return out

    def predictions(self, epoch: int, split: str) -> np.ndarray:
        """Predicted class of each probe example, ``(N,)`` int64; -1 where none was recorded."""
        self._layout.check_split(split)
        slot = int(self._entry(epoch)["slot"])
        return self._layout.read(f"predictions/{split}", slot).astype(np.int64)

    def metrics(self, split: str) -> dict[str, np.ndarray]:
        """Metrics aligned with :attr:`epochs`: loss (E,), accuracy (E,), class_loss (E, C),
        class_accuracy (E, C); NaN where none was recorded."""
        self._layout.check_split(split)
        slots = [int(self._entries[e]["slot"]) for e in self.epochs]
        out = {}
        for name in _METRICS:
            full = self._layout.read(f"metrics/{split}/{name}")
            if slots and full.shape[0] <= max(slots):
                raise StoreError(f"array 'metrics/{split}/{name}' of run {self.path} is shorter "
                                 f"({full.shape[0]}) than the committed epochs need; re-create the run")
            out[name] = full[slots] if slots else full[:0]
        return out

    def params(self, layer: str, epoch: int) -> dict[str, np.ndarray]:
        """Parameters of ``layer`` at ``epoch``, e.g. ``{"weight": ..., "bias": ...}`` float32.

        An empty dict if the layer has no parameters recorded at that epoch.
        """
        self.layer(layer)
        entry = self._entry(epoch)
        names = entry.get("params", {}).get(layer, [])
        return {p: self._layout.read(f"params/{layer}/{p}", int(entry["slot"])) for p in names}

    # -- adversarial ---------------------------------------------------------------

    def adversarial_names(self) -> list[str]:
        """Names of the committed adversarial records, sorted."""
        return sorted(self._adversarial)

    def adversarial(self, name: str = "default") -> AdversarialRecord:
        """The adversarial record ``name``; :class:`StoreKeyError` listing the records if none."""
        if name not in self._adversarial:
            have = ", ".join(self.adversarial_names()) or "none (run `grandtour adversarial RUN`)"
            raise StoreKeyError(f"no adversarial record {name!r} in run {self.path}; records: {have}")
        return AdversarialRecord(self._layout, name, self._adversarial[name]["path"])

    # -- import --------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, path, activations: Mapping[str, np.ndarray], labels, *, class_names=None,
                    split: str = "train", epochs=None, layer_kinds: Mapping[str, str] | None = None,
                    overwrite: bool = False, images=None, indices=None,
                    dataset: str = "custom") -> Run:
        """Make a run from activations recorded elsewhere.

        Parameters
        ----------
        path : str or Path
            Run directory to write.
        activations : mapping layer -> ndarray of shape (E, N, dim) or (N, dim)
            In network order. A 2-D array is a static layer (the same at every epoch).
        labels : ndarray of shape (N,), int
        class_names : sequence of str, optional
            Default ``"0"``, ..., ``"C-1"`` with ``C = labels.max() + 1``.
        split : str
        epochs : sequence of int of length E, optional
            Default ``0..E-1``.
        layer_kinds : mapping layer -> kind, optional
            Default ``"input"`` for a layer named input, ``"softmax"`` for softmax, else
            ``"unknown"``.
        images : ndarray of shape (N, C, H, W) uint8, optional
        indices : ndarray of shape (N,), optional
        dataset : str
        """
        if not activations:
            raise StoreError("activations is empty: give at least one layer {name: array}")
        labels = _as_array(labels, "labels")
        if labels.ndim != 1 or labels.size == 0:
            raise StoreError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
        labels = _int_array(labels, "labels", low=0)
        n = labels.shape[0]
        if class_names is None:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]
        layer_kinds = dict(layer_kinds or {})
        unknown = [k for k in layer_kinds if k not in activations]
        if unknown:
            raise StoreKeyError(f"layer_kinds names unknown layer(s) {', '.join(unknown)}; layers: "
                                f"{', '.join(activations)}")
        arrays: dict[str, np.ndarray] = {}
        n_epochs = None
        for name, value in activations.items():
            arr = _as_array(value, f"activations[{name!r}]")
            if arr.ndim not in (2, 3) or arr.shape[-2] != n:
                raise StoreError(f"activations[{name!r}] has shape {arr.shape}; expected (E, {n}, dim) "
                                 f"or ({n}, dim), with N = len(labels) = {n}")
            if arr.ndim == 3:
                if n_epochs is not None and arr.shape[0] != n_epochs:
                    raise StoreError(f"activations[{name!r}] has {arr.shape[0]} epochs, other layers "
                                     f"{n_epochs}; all (E, N, dim) arrays need the same E")
                n_epochs = arr.shape[0]
            arrays[name] = arr
        n_epochs = 1 if n_epochs is None else n_epochs
        if epochs is None:
            epochs = list(range(n_epochs))
        if isinstance(epochs, np.ndarray):
            epochs = epochs.reshape(-1).tolist()
        epochs = [_as_int(e, "epochs entry") for e in epochs]
        if len(epochs) != n_epochs or len(set(epochs)) != len(epochs):
            raise StoreError(f"epochs has {len(epochs)} entries ({len(set(epochs))} distinct); expected "
                             f"{n_epochs} distinct epoch numbers, one per epoch of the activations")

        def default_kind(name: str) -> str:
            return name if name in ("input", "softmax") else "unknown"

        layers = [LayerInfo(name=name, kind=str(layer_kinds.get(name, default_kind(name))),
                            shape=(int(arr.shape[-1]),), static=arr.ndim == 2)
                  for name, arr in arrays.items()]
        writer = RunWriter.create(path, dataset=dataset, class_names=class_names, layers=layers,
                                  probes={split: ProbeSet(labels=labels, indices=indices, images=images)},
                                  config={"imported": True}, overwrite=overwrite)
        for i, epoch in enumerate(epochs):
            writer.write_epoch(epoch, activations={split: {
                name: (arr[i] if arr.ndim == 3 else arr) for name, arr in arrays.items()}})
        return cls.open(path)

    @classmethod
    def from_npz(cls, npz_path, path, *, overwrite: bool = False) -> Run:
        """Make a run from a ``.npz`` file; its keys are documented in ``docs/store.md``.

        ``labels`` (N,) and ``act/<layer>`` ((E, N, dim) or (N, dim)) are required;
        ``class_names``, ``epochs``, ``layers``, ``layer_kinds``, ``images``, ``indices``,
        ``split``, ``dataset`` are optional.
        """
        npz_path = Path(npz_path)
        if not npz_path.is_file():
            raise GrandTourError(f"no file {npz_path}: give the .npz of activations to import")
        try:
            with np.load(npz_path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except Exception as err:  # noqa: BLE001 - any reader failure means a bad file
            raise CorruptFileError(f"cannot read {npz_path} as a .npz file ({type(err).__name__}: "
                                   f"{err}); write it with numpy.savez") from None
        known = {"labels", "class_names", "epochs", "layers", "layer_kinds", "images", "indices",
                 "split", "dataset"}
        unknown = [k for k in data if k not in known and not k.startswith("act/")]
        if unknown:
            raise CorruptFileError(f"{npz_path} has unexpected key(s) {', '.join(unknown)}; expected "
                                   f"act/<layer> and {', '.join(sorted(known))} (see docs/store.md)")
        acts = {k[len("act/"):]: v for k, v in data.items() if k.startswith("act/")}
        if "labels" not in data or not acts:
            raise CorruptFileError(f"{npz_path} needs 'labels' (N,) and at least one 'act/<layer>' "
                                   "array (see docs/store.md)")

        def text(key: str, default: str) -> str:
            return str(data[key].reshape(-1)[0]) if key in data else default

        order = list(acts)
        if "layers" in data:
            order = [str(s) for s in data["layers"].reshape(-1)]
            if sorted(order) != sorted(acts):
                raise CorruptFileError(f"'layers' in {npz_path} lists {order}, but the act/ keys are "
                                       f"{sorted(acts)}; they must name the same layers")
        kinds = None
        if "layer_kinds" in data:
            kinds_list = [str(s) for s in data["layer_kinds"].reshape(-1)]
            if len(kinds_list) != len(order):
                raise CorruptFileError(f"'layer_kinds' in {npz_path} has {len(kinds_list)} entries "
                                       f"for {len(order)} layers")
            kinds = dict(zip(order, kinds_list, strict=True))
        class_names = [str(s) for s in data["class_names"].reshape(-1)] if "class_names" in data else None
        return cls.from_arrays(
            path, {name: acts[name] for name in order}, data["labels"], class_names=class_names,
            split=text("split", "train"), epochs=data.get("epochs"), layer_kinds=kinds,
            overwrite=overwrite, images=data.get("images"), indices=data.get("indices"),
            dataset=text("dataset", "custom"))


# ----------------------------------------------------------------------------- CLI


def _disk_size(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # pragma: no cover


def format_info(run: Run) -> str:
    """A readable summary of a run: layers, epochs, splits, sizes, final accuracy, records."""
    lines = [f"run       {run.path}  ({_human(_disk_size(run.path))} on disk)",
             f"dataset   {run.dataset}, {len(run.class_names)} classes: "
             f"{', '.join(run.class_names[:12])}{', ...' if len(run.class_names) > 12 else ''}",
             f"splits    {', '.join(f'{s} (N={run.size(s)})' for s in run.splits)}",
             f"epochs    {len(run.epochs)} completed: {_describe_epochs(run.epochs)}",
             "layers"]
    width = max(len(layer.name) for layer in run.layers)
    kind_width = max(len(layer.kind) for layer in run.layers)
    for layer in run.layers:
        shape = "x".join(map(str, layer.shape))
        lines.append(f"  {layer.name:<{width}}  {layer.kind:<{kind_width}}  {shape:<12} "
                     f"dim {layer.dim:<6}{'  static' if layer.static else ''}".rstrip())
    if run.epochs:
        last = run.epochs[-1]
        parts = []
        for split in run.splits:
            m = run.metrics(split)
            acc, loss = m["accuracy"][-1], m["loss"][-1]
            parts.append(f"{split} " + ("n/a" if np.isnan(acc) else f"{acc:.4f}")
                         + ("" if np.isnan(loss) else f" (loss {loss:.4f})"))
        lines.append(f"accuracy  at epoch {last}: {', '.join(parts)}")
        bad = {(s, layer): c for s, counts in run.nonfinite(last).items()
               for layer, c in counts.items() if c}
        if bad:
            lines.append("non-finite rows at epoch {}: {}".format(
                last, ", ".join(f"{s}/{layer} {c}" for (s, layer), c in bad.items())))
    names = run.adversarial_names()
    if names:
        lines.append("adversarial")
        for name in names:
            rec = run.adversarial(name)
            lines.append(f"  {name}: epoch {rec.epoch}, {run.class_names[rec.source]} -> "
                         f"{run.class_names[rec.target]}, eps {rec.eps:g}, {rec.steps} steps, "
                         f"{rec.example_index.shape[0]} examples of {rec.split}")
    else:
        lines.append("adversarial  none")
    if run.config:
        text = json.dumps(run.config, sort_keys=True)
        lines.append(f"config    {text if len(text) <= 300 else text[:297] + '...'}")
    return "\n".join(lines)


def import_command(args) -> int:
    """``grandtour import FILE.npz --out RUN [--overwrite]``."""
    run = Run.from_npz(args.npz, args.out, overwrite=bool(getattr(args, "overwrite", False)))
    print(f"wrote {run.path}: {len(run.layers)} layers, {len(run.epochs)} epochs, "
          + ", ".join(f"{s} N={run.size(s)}" for s in run.splits))
    return 0


def info_command(args) -> int:
    """``grandtour info RUN``."""
    print(format_info(Run.open(args.run)))
    return 0
