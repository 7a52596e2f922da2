"""Reading a run (also while it is being written): trust the commit record and nothing else."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from grandtour.errors import StoreError
from grandtour.store.codec import decode_float16, file_stamp
from grandtour.store.groups import DerivedGroup, record_path
from grandtour.store.importer import read_npz, write_arrays
from grandtour.store.integrity import adversarial_problems, nonfinite_rows
from grandtour.store.layout import Layout
from grandtour.store.location import as_path
from grandtour.store.schema import (
    ADV_ACTIVATIONS,
    ADV_EXAMPLE_INDEX,
    ADV_IMAGES,
    ADV_PREDICTIONS,
    ADV_TARGET_LOSS,
    METRIC_NAMES,
    AdversarialMeta,
    CommitRecord,
    EpochEntry,
    LayerInfo,
    activations_array,
    metrics_array,
    params_array,
    predictions_array,
    probe_has,
    probes_array,
)
from grandtour.store.validate import StoreKeyError, as_int, describe_epochs, is_int


def _token(*parts: Any) -> str:
    """A short stable identity (sha1, 20 hex digits) of ``parts``."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:20]


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

    def __init__(self, layout: Layout, name: str, gpath: str) -> None:
        self._layout = layout
        self._path = gpath
        try:
            meta = AdversarialMeta.from_attributes(dict(layout.root[gpath].attrs))
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001
            raise StoreError(f"adversarial record {name!r} ({gpath}) of run {layout.path} is corrupt "
                             f"({type(err).__name__}: {err}); write it again") from None
        self.epoch, self.source, self.target = meta.epoch, meta.source, meta.target
        self.eps, self.split, self.steps, self.layers = meta.eps, meta.split, meta.steps, meta.layers
        self._scale, self._nonfinite = meta.scale, meta.nonfinite
        self.name = name
        self.example_index = layout.read(f"{gpath}/{ADV_EXAMPLE_INDEX}").astype(np.int64)
        self.predictions = layout.read(f"{gpath}/{ADV_PREDICTIONS}").astype(np.int64)
        self.target_loss = layout.read(f"{gpath}/{ADV_TARGET_LOSS}")
        problems = adversarial_problems(layout, gpath, meta, self.example_index, self.predictions,
                                        self.target_loss)
        if problems:
            raise StoreError(f"adversarial record {name!r} ({gpath}) of run {layout.path} is "
                             f"damaged: {'; '.join(problems[:3])}; write it again "
                             "(`grandtour adversarial RUN`)")

    def __repr__(self) -> str:
        return (f"AdversarialRecord({self.name!r}, epoch={self.epoch}, {self.source}->{self.target}, "
                f"eps={self.eps}, steps={self.steps}, M={self.example_index.shape[0]})")

    def _step(self, step: int) -> int:
        step = as_int(step, "step")
        if not 0 <= step <= self.steps:
            raise StoreKeyError(f"no step {step} in adversarial record {self.name!r}; steps 0..{self.steps}")
        return step

    def activations(self, layer: str, step: int | None = None) -> np.ndarray:
        """Activations at one step, ``(M, dim)`` float32, or all steps ``(S+1, M, dim)`` if None."""
        if layer not in self.layers:
            raise StoreKeyError(f"adversarial record {self.name!r} has no layer {layer!r}; "
                                f"layers: {', '.join(self.layers)}")
        index = slice(None) if step is None else self._step(step)
        name = f"{self._path}/{ADV_ACTIVATIONS}/{layer}"
        context = "" if step is None else f"step {step}"
        out = decode_float16(self._layout.read(name, index, context=context),
                             float(self._scale.get(layer, 1.0)))
        counts = self._nonfinite.get(layer, [0] * (self.steps + 1))
        expected = sum(counts) if step is None else counts[index]
        found = nonfinite_rows(out)
        if found != expected:
            raise StoreError(f"array {name!r} of run {self._layout.path} is corrupt: {found} rows are "
                             f"not finite where {expected} were written (a chunk may be missing)")
        return out

    def images(self, step: int | None = None) -> np.ndarray:
        """Perturbed images at one step ``(M, C, H, W)`` uint8, or all ``(S+1, M, C, H, W)``."""
        index = slice(None) if step is None else self._step(step)
        return self._layout.read(f"{self._path}/{ADV_IMAGES}", index)


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

    def __init__(self, layout: Layout) -> None:
        self._apply_layout(layout)

    def _apply_layout(self, layout: Layout) -> None:
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
                f"splits={self.splits}, epochs={describe_epochs(self.epochs)})")

    @classmethod
    def open(cls, path) -> Run:
        """Open the run at ``path``; :class:`StoreError` saying what to do if it is not one."""
        return cls(Layout(as_path(path), read_only=True))

    def _apply_commit(self, record: CommitRecord) -> None:
        self._entries: dict[int, EpochEntry] = {e.epoch: e for e in record.epochs}
        self._static = dict(record.static)
        self._adversarial = dict(record.adversarial)
        self.epochs = sorted(self._entries)

    def refresh(self) -> None:
        """Re-read the commit record: pick up epochs committed since the run was opened.

        If the run was re-created in place meanwhile (``--overwrite``), its metadata is
        read again too: layers, splits, class names, config and :attr:`created` may change.
        """
        if self._layout.recreated():
            self._apply_layout(Layout(self.path, read_only=True))
            return
        self._layout.commit = self._layout.read_commit()
        self._apply_commit(self._layout.commit)

    # -- metadata and identity -----------------------------------------------------

    @property
    def created(self) -> str:
        """When the run was created (ISO time, UTC); a re-created run has a new one."""
        return self._layout.created

    @property
    def probe_info(self) -> dict[str, dict]:
        """Per split ``{"size": N, "indices": bool, "images": [C, H, W] or None}`` (a copy)."""
        return copy.deepcopy(self._layout.probe_info)

    def commit_stamp(self) -> tuple:
        """A cheap (stat-based) token that changes whenever the commit record is replaced.

        Compare two stamps to learn, without reading anything, whether to :meth:`refresh`.
        ``()`` if the record cannot be found.
        """
        return self._layout.commit_stamp()

    def last_commit_time(self) -> float | None:
        """POSIX time of the last commit (the record's modification time); None if unreadable."""
        try:
            return self._layout.commit_path.stat().st_mtime
        except OSError:
            return None

    def epoch_token(self, epoch: int) -> str:
        """A stable identity of the committed data of ``epoch`` ("" if it is not committed).

        Made of the run's identity (creation time and uid) and the time and slot of the
        epoch's commit, which are fixed once the epoch exists (epochs are append-only), so
        it changes only if the run is re-created. Read from the commit record as of the
        last :meth:`refresh`.
        """
        entry = self._entries.get(int(epoch)) if is_int(epoch) else None
        if entry is None:
            return ""
        return _token(self.created, self._layout.uid, entry.epoch, entry.written, entry.slot)

    def adversarial_token(self, name: str) -> str:
        """Identity of the current generation of adversarial record ``name`` ("" if none)."""
        entry = self._adversarial.get(name)
        if entry is None:
            return ""
        return _token(self.created, self._layout.uid, entry.path, entry.written)

    # -- lookups -------------------------------------------------------------------

    def layer(self, name: str) -> LayerInfo:
        """The :class:`LayerInfo` named ``name``; :class:`StoreKeyError` listing the layers if none."""
        return self._layout.layer(name)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def inputs(self, layer: str) -> tuple[str, ...]:
        """The recorded layers ``layer`` reads directly (the graph's edges), main path first.

        ``()`` for the input layer. A run in which no layer lists its inputs (written
        before the graph was recorded, or imported without edges) is the chain: each
        layer's input is the layer before it.
        """
        info = self.layer(layer)
        if any(lay.inputs for lay in self.layers):
            return tuple(info.inputs)
        i = self.layer_names.index(layer)
        return () if i == 0 else (self.layers[i - 1].name,)

    def size(self, split: str) -> int:
        """Number of probe examples N of ``split``."""
        return self._layout.sizes[self._layout.check_split(split)]

    def check_split(self, split: str) -> str:
        """``split`` if the run has it, else :class:`StoreKeyError` listing the splits."""
        return self._layout.check_split(split)

    def check_epoch(self, epoch: int) -> int:
        """``epoch`` as an int if it is committed, else :class:`StoreKeyError` listing the epochs.

        Accepts ints and numpy integers; refuses bools, floats and strings (as unknown epochs).
        As of the last :meth:`refresh`.
        """
        if not is_int(epoch) or int(epoch) not in self._entries:
            raise StoreKeyError(f"epoch {epoch!r} is not in run {self.path}"
                                f"{'' if is_int(epoch) else ' (epochs are integers)'}; completed "
                                f"epochs: {describe_epochs(self.epochs)}")
        return int(epoch)

    def _entry(self, epoch: int) -> EpochEntry:
        try:
            return self._entries[int(epoch)]
        except (KeyError, TypeError, ValueError):
            raise StoreKeyError(f"epoch {epoch!r} is not in run {self.path}; completed epochs: "
                                f"{describe_epochs(self.epochs)}") from None

    # -- derived groups ------------------------------------------------------------

    def group(self, name: str, *, version_key: str, version: int) -> DerivedGroup | None:
        """The derived group ``name`` (e.g. ``"alignment"``) for reading; None if never written.

        Raises
        ------
        ValueError
            If ``name`` is not one of ``DERIVED_GROUPS``.
        StoreError
            If its record is unreadable or not a JSON object, or ``record[version_key]`` is
            not an integer ``<= version``; the message says to rerun with --force.
        """
        return DerivedGroup.load(self.path, name, version_key=version_key, version=version,
                                 writable=False)

    def open_group(self, name: str, *, version_key: str, version: int) -> DerivedGroup | None:
        """Like :meth:`group`, but writable: add arrays, change the record, :meth:`~DerivedGroup.commit`."""
        return DerivedGroup.load(self.path, name, version_key=version_key, version=version,
                                 writable=True)

    def create_group(self, name: str, record: dict) -> DerivedGroup:
        """A new derived group ``name`` with ``record`` committed, writable.

        A previous group of that name is deleted first (only its directory ``RUN/<name>``).
        """
        return DerivedGroup.create(self.path, name, record)

    def group_stamp(self, name: str) -> tuple:
        """Stat-based token of the record of group ``name`` now; ``()`` if it has none.

        Equal to :attr:`DerivedGroup.stamp` of a group opened since its last commit.
        """
        return file_stamp(record_path(self.path, name))

    # -- probes --------------------------------------------------------------------

    def labels(self, split: str) -> np.ndarray:
        """Labels of the probe examples, ``(N,)`` int64."""
        self._layout.check_split(split)
        return self._layout.read(probes_array(split, "labels")).astype(np.int64)

    def indices(self, split: str) -> np.ndarray | None:
        """Index of each probe example in its dataset split, ``(N,)``, or None if not stored."""
        self._layout.check_split(split)
        if not probe_has(self._layout.probe_info[split], "indices"):
            return None
        return self._layout.read(probes_array(split, "indices")).astype(np.int64)

    def images(self, split: str) -> np.ndarray | None:
        """Probe thumbnails ``(N, C, H, W)`` uint8, or None if not stored."""
        self._layout.check_split(split)
        if not probe_has(self._layout.probe_info[split], "images"):
            return None
        return self._layout.read(probes_array(split, "images"))

    # -- per epoch -----------------------------------------------------------------

    def _activation_location(self, layer: str, epoch: int, split: str) -> tuple[str, int, float, int]:
        info = self.layer(layer)
        self._layout.check_split(split)
        entry = self._entry(epoch)
        name = activations_array(split, layer)
        if info.static:
            static = self._static.get(layer)
            if static is None:
                raise StoreError(f"static layer {layer!r} has no committed data in run {self.path}; "
                                 "the run is damaged, re-create it")
            return (name, 0, float(static.scale.get(split, 1.0)), int(static.nonfinite.get(split, 0)))
        return name, entry.slot, entry.scale_of(split, layer), entry.nonfinite_of(split, layer)

    def activations_float16(self, layer: str, epoch: int, split: str,
                            rows: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The stored float16 activations ``(N, dim)`` and their scale (value = stored * scale).

        For sending compact binary to the viewer without a float32 round trip. ``rows``
        (sorted indices): only those examples, ``(len(rows), dim)``, read from only the
        chunks that hold them (:meth:`chunk_rows`); those chunks are checked as a whole
        read's are, and the rows can hold at most the non-finite rows the epoch recorded.
        """
        name, slot, scale, expected = self._activation_location(layer, epoch, split)
        y = self._layout.read(name, slot, rows=rows, context=f"epoch {epoch} (slot {slot})")
        found = nonfinite_rows(y)
        if found > expected or (rows is None and found != expected):
            # The commit record counts the non-finite rows written; a missing chunk reads as NaN.
            raise StoreError(f"array {name!r} of run {self.path} is corrupt at epoch {epoch} (slot "
                             f"{slot}): {found} rows{'' if rows is None else ' of those read'} are "
                             f"not finite where {expected} were written (a chunk file may be "
                             "missing); re-create the run")
        return y, scale

    def chunk_rows(self, split: str) -> int:
        """Examples per stored chunk of ``split``'s activations, the fewest over the layers.

        A read of a few examples costs the chunks that hold them: any ``chunk_rows``
        consecutive examples starting at a multiple of it lie in one chunk of the widest
        layer and in at most two of any other.
        """
        self._layout.check_split(split)
        chunks = [self._layout.array(activations_array(split, info.name)).chunks[1]
                  for info in self.layers]
        return int(min(chunks, default=self.size(split)))

    def activations(self, layer: str, epoch: int, split: str) -> np.ndarray:
        """Activations of the probe examples of ``split`` at ``epoch``, ``(N, dim)`` float32.

        Reads only that (layer, epoch, split) chunk. A static layer returns the same
        array for every epoch. Non-finite values the model produced are returned as they
        are; :meth:`nonfinite` counts them.
        """
        y, scale = self.activations_float16(layer, epoch, split)
        return decode_float16(y, scale)

    def nonfinite(self, epoch: int) -> dict[str, dict[str, int]]:
        """Rows (examples) with a NaN or infinite activation: ``[split][layer] -> count``."""
        entry = self._entry(epoch)
        out = {}
        for split in self.splits:
            counts = {}
            for layer in self.layers:
                if layer.static:
                    static = self._static.get(layer.name)
                    counts[layer.name] = int(static.nonfinite.get(split, 0)) if static else 0
                else:
                    counts[layer.name] = entry.nonfinite_of(split, layer.name)
            out[split] = counts
        return out

    def predictions(self, epoch: int, split: str) -> np.ndarray:
        """Predicted class of each probe example, ``(N,)`` int64; -1 where none was recorded."""
        self._layout.check_split(split)
        slot = self._entry(epoch).slot
        return self._layout.read(predictions_array(split), slot,
                                 context=f"epoch {epoch} (slot {slot})").astype(np.int64)

    def metrics(self, split: str) -> dict[str, np.ndarray]:
        """Metrics aligned with :attr:`epochs`: loss (E,), accuracy (E,), class_loss (E, C),
        class_accuracy (E, C); NaN where none was recorded."""
        self._layout.check_split(split)
        slots = [self._entries[e].slot for e in self.epochs]
        out = {}
        for name in METRIC_NAMES:
            array = metrics_array(split, name)
            full = self._layout.read(array, slots=slots)
            if slots and full.shape[0] <= max(slots):
                raise StoreError(f"array '{array}' of run {self.path} is shorter "
                                 f"({full.shape[0]}) than the committed epochs need; re-create the run")
            out[name] = full[slots] if slots else full[:0]
        return out

    def params(self, layer: str, epoch: int) -> dict[str, np.ndarray]:
        """Parameters of ``layer`` at ``epoch``, e.g. ``{"weight": ..., "bias": ...}`` float32.

        An empty dict if the layer has no parameters recorded at that epoch.
        """
        self.layer(layer)
        entry = self._entry(epoch)
        names = entry.params.get(layer, [])
        return {p: self._layout.read(params_array(layer, p), entry.slot,
                                     context=f"epoch {epoch} (slot {entry.slot})") for p in names}

    # -- adversarial ---------------------------------------------------------------

    def adversarial_names(self) -> list[str]:
        """Names of the committed adversarial records, sorted."""
        return sorted(self._adversarial)

    def adversarial(self, name: str = "default") -> AdversarialRecord:
        """The adversarial record ``name``; :class:`StoreKeyError` listing the records if none."""
        if name not in self._adversarial:
            have = ", ".join(self.adversarial_names()) or "none (run `grandtour adversarial RUN`)"
            raise StoreKeyError(f"no adversarial record {name!r} in run {self.path}; records: {have}")
        return AdversarialRecord(self._layout, name, self._adversarial[name].path)

    # -- import --------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, path, activations: Mapping[str, np.ndarray], labels, *, class_names=None,
                    split: str = "train", epochs=None, layer_kinds: Mapping[str, str] | None = None,
                    overwrite: bool = False, images=None, indices=None,
                    dataset: str = "custom", **more) -> Run:
        """Make a run from activations recorded elsewhere.

        Several splits, predictions, per-layer parameters, the graph's edges and layers of
        any shape: ``more`` holds ``predictions``, ``params``, ``layer_inputs``,
        ``layer_shapes``, ``layer_configs`` (and ``labels``/``activations`` may map split ->
        ...), as :func:`grandtour.store.importer.write_arrays` documents.

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
        write_arrays(path, activations, labels, class_names=class_names, split=split, epochs=epochs,
                     layer_kinds=layer_kinds, overwrite=overwrite, images=images, indices=indices,
                     dataset=dataset, **more)
        return cls.open(path)

    @classmethod
    def from_npz(cls, npz_path, path, *, overwrite: bool = False) -> Run:
        """Make a run from a ``.npz`` file; its keys are documented in ``docs/store.md``.

        ``labels`` (N,) and ``act/<layer>`` ((E, N, dim) or (N, dim)) are required;
        ``class_names``, ``epochs``, ``layers``, ``layer_kinds``, ``images``, ``indices``,
        ``split``, ``dataset`` are optional.
        """
        return cls.from_arrays(path=path, overwrite=overwrite, **read_npz(npz_path))
