"""The on-disk format of a run: every file and directory name, field name and version.

This module is the one place that spells the format (``docs/store.md`` describes it).
Everything else, in the store and outside it, uses these names, the path builders and
the typed records below, so a change of the format is a change of this file.

A run directory::

    RUN/
      zarr.json                       root group; attributes: see RootMeta
      commit.json                     the commit record: see CommitRecord
      probes/<split>/<labels|indices|images>
      activations/<split>/<layer>     (slot, example, dim) float16
      predictions/<split>             (slot, example) int16
      metrics/<split>/<metric>        (slot,) or (slot, class) float64
      params/<layer>/<name>           (slot, *shape) float32
      adversarial/<name>/<generation>/...
      alignment/, comparisons/        derived groups: a Zarr group plus its own commit.json
      train_state.pt                  the trainer's resume state (grandtour.train)
      writer.lock                     the single-writer lock (store.lock): pid, host, command
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- versions

#: Version of the on-disk layout; a reader refuses a run written with a newer one.
STORE_VERSION = 1
#: The oldest layout version this grandtour reads (a smaller or non-integer one is refused).
MIN_STORE_VERSION = 1
#: The attribute (in ``zarr.json``) and field (in ``commit.json``) holding that version.
VERSION_KEY = "grandtour_store_version"

# ----------------------------------------------------------------------------- files

#: Zarr v3's metadata file of a group or array (the run's root metadata is the root's).
ZARR_META = "zarr.json"
#: The commit record of a run, and of each derived group.
COMMIT_FILE = "commit.json"
#: The trainer's resume state (written by grandtour.train, kept by the store's overwrite).
TRAIN_STATE = "train_state.pt"
#: The single-writer lock of a run (store.lock): held with an OS advisory lock by the one
#: process writing the run; its content (JSON: pid, host, command, since) names that process.
LOCK_FILE = "writer.lock"

# ----------------------------------------------------------------------------- integrity

#: Root attribute of runs whose every chunk carries a crc32c checksum and is written even
#: when it holds only fill values, and whose JSON records carry a checksum. Runs without
#: it (written before) stay readable: their arrays are read as they are.
INTEGRITY_KEY = "grandtour_integrity"
INTEGRITY_VERSION = 1
#: Field of a JSON record (root attributes, commit records, group records) holding the
#: checksum of the rest of the record (``codec.json_checksum``).
CHECKSUM_KEY = "grandtour_checksum"
#: Name of Zarr v3's checksum codec in an array's metadata.
CRC32C_CODEC = "crc32c"

# ----------------------------------------------------------------------------- limits

#: Epoch numbers are at most this (the server and the viewer hold them as 32-bit ints).
MAX_EPOCH = 2**31 - 1
#: Classes per run: predictions are stored as int16.
MAX_CLASSES = 32767

PROBES = "probes"
ACTIVATIONS = "activations"
PREDICTIONS = "predictions"
METRICS = "metrics"
PARAMS = "params"
ADVERSARIAL = "adversarial"
#: Groups derived from a run (by grandtour.align, by the comparisons), each under
#: ``RUN/<name>/``: a Zarr v3 group plus its own commit record (see store.groups).
#: The comparisons' group (grandtour.compare): embeddings, correspondences, hybrid layers.
COMPARISONS_GROUP = "comparisons"
DERIVED_GROUPS = ("alignment", COMPARISONS_GROUP)
#: What a run directory may hold; ``RunWriter.create(overwrite=True)`` deletes only such a directory.
RUN_ENTRIES = frozenset({ZARR_META, COMMIT_FILE, PROBES, ACTIVATIONS, PREDICTIONS, METRICS,
                         PARAMS, ADVERSARIAL, TRAIN_STATE, LOCK_FILE, *DERIVED_GROUPS})

#: Per-epoch metrics of each split; a ``class_`` one holds a value per class.
METRIC_NAMES = ("loss", "accuracy", "class_loss", "class_accuracy")
#: Arrays of a split's probe set (``indices`` and ``images`` are optional).
PROBE_ARRAYS = ("labels", "indices", "images")
#: Stored dimension names.
SLOT, EXAMPLE, DIM, CLASS, STEP = "slot", "example", "dim", "class", "step"

# Names become directory names: no separators, no leading dot, nothing Zarr reserves ("__").
NAME = re.compile(r"^(?!__)[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: Names that match NAME but that a directory must not take.
RESERVED_NAMES = frozenset({ZARR_META})
#: zarr-python's temporary files while it writes a chunk or a metadata file.
ZARR_PARTIAL_SUFFIX = ".partial"


def is_per_class(metric: str) -> bool:
    """Whether ``metric`` holds one value per class (``class_loss``, ``class_accuracy``)."""
    return metric.startswith("class_")


def temp_name(filename: str, pid: int, token: str) -> str:
    """The temporary file a file is written to before it replaces ``filename``.

    Unique per process (``pid``) and per write (``token``, random hex), so two writers,
    or two threads, never share one.
    """
    return f".{filename}.{pid}.{token}.tmp"


# What temp_name makes (and the older ".<name>.<pid>.tmp" and "<name>.tmp").
_TEMP = re.compile(r"^\..+\.[0-9]+(\.[0-9a-f]+)?\.tmp$")


def is_temp_leftover(filename: str) -> bool:
    """A temporary file a killed writer may have left (ours, or zarr's ``*.partial``)."""
    return (filename.endswith(ZARR_PARTIAL_SUFFIX) or bool(_TEMP.match(filename))
            or filename == f"{TRAIN_STATE}.tmp")


def is_temp_entry(filename: str) -> bool:
    """A top-level entry ``RunWriter.create(overwrite=True)`` may delete along with the run."""
    return filename.endswith(".tmp")


# ----------------------------------------------------------------------------- array paths


def probes_array(split: str, what: str) -> str:
    """``probes/<split>/<what>``, ``what`` one of :data:`PROBE_ARRAYS`."""
    return f"{PROBES}/{split}/{what}"


def activations_array(split: str, layer: str) -> str:
    return f"{ACTIVATIONS}/{split}/{layer}"


def predictions_array(split: str) -> str:
    return f"{PREDICTIONS}/{split}"


def metrics_array(split: str, metric: str) -> str:
    return f"{METRICS}/{split}/{metric}"


def params_array(layer: str, name: str) -> str:
    return f"{PARAMS}/{layer}/{name}"


def adversarial_group(name: str, generation: int) -> str:
    """``adversarial/<name>/<generation>``: one generation of an adversarial record."""
    return f"{ADVERSARIAL}/{name}/{generation}"


def generation_of(group_path: str) -> int:
    """The generation number of an :func:`adversarial_group` path."""
    return int(group_path.rsplit("/", 1)[1])


#: Arrays of an adversarial generation (activations are ``activations/<layer>`` in it).
ADV_EXAMPLE_INDEX, ADV_PREDICTIONS, ADV_TARGET_LOSS, ADV_IMAGES, ADV_ACTIVATIONS = (
    "example_index", "predictions", "target_loss", "images", "activations")


# ----------------------------------------------------------------------------- root metadata


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
    inputs : tuple of str
        The recorded layers this layer reads directly (the graph's edges; ``input`` has
        none). A run in which no layer lists any is read as the chain of its layers
        (runs written before the graph was recorded): see ``Run.inputs``.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    module: str = ""
    config: dict = field(default_factory=dict)
    static: bool = False
    inputs: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        """Number of coordinates of one example's activation, ``prod(shape)``."""
        return int(math.prod(self.shape))

    def to_json(self, config: dict) -> dict:
        """The entry of ``layers`` in the root attributes (``config`` already JSON-able)."""
        return {"name": self.name, "kind": str(self.kind), "shape": [int(s) for s in self.shape],
                "module": str(self.module), "static": bool(self.static), "config": config,
                "inputs": [str(i) for i in self.inputs]}

    @classmethod
    def from_json(cls, doc: dict) -> LayerInfo:
        return cls(name=doc["name"], kind=doc["kind"], shape=tuple(int(s) for s in doc["shape"]),
                   module=doc.get("module", ""), config=dict(doc.get("config") or {}),
                   static=bool(doc.get("static", False)),
                   inputs=tuple(str(i) for i in doc.get("inputs") or ()))


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


def probe_doc(size: int, *, indices: bool, images: list[int] | None) -> dict:
    """The entry of a split in the root's ``probes`` attribute."""
    return {"size": int(size), "indices": bool(indices), "images": images}


def probe_size(doc: dict) -> int:
    return int(doc["size"])


def probe_has(doc: dict, what: str) -> bool:
    """Whether a split's probe set stores the optional array ``what`` (indices, images)."""
    return bool(doc.get(what))


@dataclass
class RootMeta:
    """The run's metadata: the attributes of the root group (``zarr.json``).

    ``probes`` maps split -> :func:`probe_doc`; ``created`` is an ISO time (UTC), to
    the second; ``uid`` a random hex string drawn at creation, so two creations of a run
    in the same second still differ ("" in runs written before it existed).
    """

    version: Any
    dataset: str
    class_names: list[str]
    layers: list[LayerInfo]
    splits: list[str]
    probes: dict[str, dict]
    config: dict
    created: str
    uid: str = ""
    integrity: int = 0

    @staticmethod
    def attributes(*, dataset: str, class_names: list[str], layer_docs: list[dict],
                   splits: list[str], probe_docs: dict[str, dict], config: dict,
                   created: str, uid: str) -> dict:
        """The root attributes of a new run (without their checksum: ``codec.with_checksum``)."""
        return {VERSION_KEY: STORE_VERSION, INTEGRITY_KEY: INTEGRITY_VERSION, "dataset": str(dataset),
                "class_names": class_names, "layers": layer_docs, "splits": splits,
                "probes": probe_docs, "config": config, "created": created, "uid": uid}

    @staticmethod
    def identity_of(attrs: dict) -> tuple[str, str]:
        """``(created, uid)``: what tells two creations of a run in one directory apart."""
        return str(attrs.get("created", "")), str(attrs.get("uid", ""))

    @staticmethod
    def version_of(attrs: dict) -> Any:
        return attrs.get(VERSION_KEY)

    @classmethod
    def from_attributes(cls, attrs: dict) -> RootMeta:
        """Parse the root attributes; KeyError, TypeError or ValueError if they are garbled."""
        return cls(version=attrs.get(VERSION_KEY), dataset=attrs["dataset"],
                   class_names=[str(c) for c in attrs["class_names"]],
                   layers=[LayerInfo.from_json(d) for d in attrs["layers"]],
                   splits=list(attrs["splits"]), probes=dict(attrs["probes"]),
                   config=dict(attrs.get("config") or {}), created=str(attrs.get("created", "")),
                   uid=str(attrs.get("uid", "")), integrity=int(attrs.get(INTEGRITY_KEY, 0)))


#: The root attribute :meth:`RunWriter.update_config` changes.
CONFIG_ATTR = "config"


def is_run_metadata(doc: Any) -> bool:
    """Whether a parsed ``zarr.json`` is a grandtour run's root (it carries the version)."""
    return isinstance(doc, dict) and VERSION_KEY in (doc.get("attributes") or {})


# ----------------------------------------------------------------------------- commit record


@dataclass
class EpochEntry:
    """One committed epoch: its slot on the epoch axis and what was written there.

    ``scale`` (split -> layer -> power of two) and ``nonfinite`` (split -> layer -> rows)
    are sparse: a (split, layer) not listed has scale 1 and no non-finite rows.
    ``params`` lists the parameter arrays written at that epoch (layer -> names).
    """

    epoch: int
    slot: int
    written: str = ""
    scale: dict[str, dict[str, float]] = field(default_factory=dict)
    nonfinite: dict[str, dict[str, int]] = field(default_factory=dict)
    params: dict[str, list[str]] = field(default_factory=dict)

    def scale_of(self, split: str, layer: str) -> float:
        return float(self.scale.get(split, {}).get(layer, 1.0))

    def nonfinite_of(self, split: str, layer: str) -> int:
        return int(self.nonfinite.get(split, {}).get(layer, 0))

    def to_json(self) -> dict:
        doc: dict[str, Any] = {"epoch": self.epoch, "slot": self.slot, "written": self.written}
        if self.scale:
            doc["scale"] = self.scale
        if self.nonfinite:
            doc["nonfinite"] = self.nonfinite
        if self.params:
            doc["params"] = self.params
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> EpochEntry:
        return cls(epoch=int(doc["epoch"]), slot=int(doc["slot"]), written=str(doc.get("written", "")),
                   scale=dict(doc.get("scale") or {}), nonfinite=dict(doc.get("nonfinite") or {}),
                   params=dict(doc.get("params") or {}))


@dataclass
class StaticEntry:
    """A static layer whose single slot is committed: scale and non-finite rows per split."""

    scale: dict[str, float] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"scale": self.scale, "nonfinite": self.nonfinite}

    @classmethod
    def from_json(cls, doc: dict) -> StaticEntry:
        return cls(scale=dict(doc.get("scale") or {}), nonfinite=dict(doc.get("nonfinite") or {}))


@dataclass
class AdversarialEntry:
    """A committed adversarial record: the generation group holding it and when."""

    path: str
    written: str = ""

    def to_json(self) -> dict:
        return {"path": self.path, "written": self.written}

    @classmethod
    def from_json(cls, doc: dict) -> AdversarialEntry:
        return cls(path=str(doc["path"]), written=str(doc.get("written", "")))


@dataclass
class CommitRecord:
    """``commit.json``: the completed epochs (in append order), static layers, adversarial records.

    Readers trust it and nothing else: an epoch whose arrays are on disk but which is not
    listed here does not exist.
    """

    epochs: list[EpochEntry] = field(default_factory=list)
    static: dict[str, StaticEntry] = field(default_factory=dict)
    adversarial: dict[str, AdversarialEntry] = field(default_factory=dict)
    version: Any = STORE_VERSION

    def to_json(self) -> dict:
        return {VERSION_KEY: self.version, "epochs": [e.to_json() for e in self.epochs],
                "static": {k: v.to_json() for k, v in self.static.items()},
                "adversarial": {k: v.to_json() for k, v in self.adversarial.items()}}

    @classmethod
    def from_json(cls, doc: Any) -> CommitRecord:
        """Parse a commit record; KeyError, TypeError or ValueError if it is garbled."""
        if not isinstance(doc, dict):
            raise TypeError(f"expected an object, got {type(doc).__name__}")
        return cls(epochs=[EpochEntry.from_json(e) for e in doc["epochs"]],
                   static={str(k): StaticEntry.from_json(v) for k, v in (doc.get("static") or {}).items()},
                   adversarial={str(k): AdversarialEntry.from_json(v)
                                for k, v in (doc.get("adversarial") or {}).items()},
                   version=doc.get(VERSION_KEY, STORE_VERSION))


# ----------------------------------------------------------------------------- adversarial


@dataclass
class AdversarialMeta:
    """Attributes of an adversarial generation group.

    ``scale`` maps layer -> power of two; ``nonfinite`` layer -> S+1 row counts.
    """

    epoch: int
    source: int
    target: int
    eps: float
    split: str
    steps: int
    layers: list[str]
    scale: dict[str, float] = field(default_factory=dict)
    nonfinite: dict[str, list[int]] = field(default_factory=dict)

    def attributes(self) -> dict:
        """Everything but scale and nonfinite, which are known only once written."""
        return {"epoch": self.epoch, "source": self.source, "target": self.target, "eps": self.eps,
                "split": self.split, "steps": self.steps, "layers": list(self.layers)}

    def counts(self) -> dict:
        """The attributes added after the activations are written."""
        return {"scale": self.scale, "nonfinite": self.nonfinite}

    @classmethod
    def from_attributes(cls, attrs: dict) -> AdversarialMeta:
        return cls(epoch=int(attrs["epoch"]), source=int(attrs["source"]), target=int(attrs["target"]),
                   eps=float(attrs["eps"]), split=str(attrs["split"]), steps=int(attrs["steps"]),
                   layers=list(attrs["layers"]), scale=dict(attrs.get("scale") or {}),
                   nonfinite=dict(attrs.get("nonfinite") or {}))
