"""Writing a run: created once, then one epoch at a time, each committed atomically."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from grandtour.errors import StoreError
from grandtour.store import faults
from grandtour.store.codec import (
    ARRAY_CONFIG,
    compressors,
    disk_errors,
    encode_float16,
    jsonable,
    now,
    parallel,
    rows_per_chunk,
    with_checksum,
)
from grandtour.store.creation import lock_new_directory, undo_creation, write_new_run
from grandtour.store.integrity import read_array_meta
from grandtour.store.layout import (
    Layout,
    check_directory,
    clear_directory,
    missing_run_message,
    remove_leftovers,
)
from grandtour.store.location import as_path, rmtree
from grandtour.store.lock import RunLock
from grandtour.store.schema import (
    ADV_ACTIVATIONS,
    ADV_EXAMPLE_INDEX,
    ADV_IMAGES,
    ADV_PREDICTIONS,
    ADV_TARGET_LOSS,
    ADVERSARIAL,
    CHECKSUM_KEY,
    CONFIG_ATTR,
    DIM,
    EXAMPLE,
    MAX_CLASSES,
    MAX_EPOCH,
    METRIC_NAMES,
    PARAMS,
    STEP,
    AdversarialEntry,
    AdversarialMeta,
    CommitRecord,
    EpochEntry,
    LayerInfo,
    ProbeSet,
    RootMeta,
    StaticEntry,
    activations_array,
    adversarial_group,
    generation_of,
    is_per_class,
    metrics_array,
    params_array,
    predictions_array,
    probe_doc,
)
from grandtour.store.validate import (
    StoreKeyError,
    activation_matrix,
    as_array,
    as_int,
    check_name,
    check_unique,
    describe_epochs,
    int_array,
)


class RunWriter:
    """Writes a run: created once, then one :meth:`write_epoch` per recorded epoch.

    A writer holds the run's single-writer lock (:class:`~grandtour.store.lock.RunLock`)
    from :meth:`create` or :meth:`open` until :meth:`close` (or the end of a ``with``
    block, or its garbage collection): a second process's writer is refused with a
    :class:`~grandtour.store.lock.RunLockedError` naming the holder. Writers in the same
    process share the lock. Readers (:class:`Run`) never need it and may be open meanwhile.

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

    #: Testing aid: called with a stage name (``grandtour.store.faults.STAGES``: "resized",
    #: "activations", "before_commit", ...) inside every write, so a test can kill the
    #: process at that point.
    _test_hook: ClassVar[Callable[[str], None] | None] = None

    def __init__(self, layout: Layout, lock: RunLock) -> None:
        self._layout = layout
        self.lock = lock
        self._release = weakref.finalize(self, lock.release)
        self.path = layout.path
        self.dataset = layout.dataset
        self.class_names = list(layout.class_names)
        self.layers = list(layout.layers)
        self.splits = list(layout.splits)
        self.config = dict(layout.config)
        # The per-epoch arrays this writer opened, kept from one epoch to the next: opening
        # one reads its metadata (a GET on object storage), and while this writer holds the
        # lock only it changes them. Valid for the commit record it last read or wrote
        # (``_arrays_of``): one that differs (another writer of this process committed
        # meanwhile) drops them.
        self._arrays: dict[str, Any] = {}
        self._arrays_of: dict | None = None

    def __repr__(self) -> str:
        return f"RunWriter({str(self.path)!r}, epochs={describe_epochs(self.epochs)})"

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the writer lock (every write is complete when it returns). Idempotent."""
        self._release()

    @property
    def closed(self) -> bool:
        return not self._release.alive

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(f"this writer of {self.path} is closed; open the run again "
                             "(RunWriter.open) to write to it")

    @property
    def epochs(self) -> list[int]:
        return sorted(e.epoch for e in self._layout.commit.epochs)

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
        path = as_path(path)
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise StoreError("class_names is empty: a run needs at least one class")
        if len(class_names) > MAX_CLASSES:
            raise StoreError(f"{len(class_names)} classes: predictions are stored as int16, "
                             f"so at most {MAX_CLASSES} classes are supported")
        layers = list(layers)
        if not layers:
            raise StoreError("no layers: give at least one LayerInfo")
        layer_docs = []
        for layer in layers:
            if not isinstance(layer, LayerInfo):
                raise StoreError(f"layers must be LayerInfo objects, got {type(layer).__name__}")
            check_name(layer.name, "layer")
            shape = tuple(layer.shape)
            if not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
                raise StoreError(f"layer {layer.name!r} has shape {layer.shape!r}; expected a "
                                 "tuple of positive integers")
            layer_docs.append(layer.to_json(jsonable(dict(layer.config),
                                                     f"config of layer {layer.name!r}")))
        check_unique([lay.name for lay in layers], "layer")
        if not probes:
            raise StoreError("no probe sets: give at least one split, e.g. {'train': ProbeSet(...)}")
        splits = [check_name(s, "split") for s in probes]
        check_unique(splits, "split")
        probe_arrays: dict[str, dict[str, np.ndarray]] = {}
        probe_docs: dict[str, dict] = {}
        for split, probe in probes.items():
            if not isinstance(probe, ProbeSet):
                raise StoreError(f"probes[{split!r}] must be a ProbeSet, got {type(probe).__name__}")
            labels = int_array(probe.labels, f"labels of split {split!r}", low=0, high=len(class_names))
            if labels.ndim != 1 or labels.size == 0:
                raise StoreError(f"labels of split {split!r} must be a non-empty 1-D array, "
                                 f"got shape {labels.shape}")
            n = labels.shape[0]
            arrays = {"labels": labels}
            image_shape = None
            if probe.indices is not None:
                arrays["indices"] = int_array(probe.indices, f"indices of split {split!r}", (n,), low=0)
            if probe.images is not None:
                images = as_array(probe.images, f"images of split {split!r}")
                if images.ndim == 3:
                    images = images[:, None]
                if images.ndim != 4 or images.shape[0] != n:
                    raise StoreError(f"images of split {split!r} have shape {images.shape}; "
                                     f"expected ({n}, C, H, W)")
                if images.dtype != np.uint8:
                    raise StoreError(f"images of split {split!r} are {images.dtype}; store uint8 "
                                     "thumbnails (0..255), e.g. (x * 255).round().astype(np.uint8)")
                arrays["images"] = images
                image_shape = list(images.shape[1:])
            probe_arrays[split] = arrays
            probe_docs[split] = probe_doc(n, indices="indices" in arrays, images=image_shape)
        config_doc = jsonable(dict(config or {}), "config")
        attributes = with_checksum(RootMeta.attributes(
            dataset=dataset, class_names=class_names, layer_docs=layer_docs, splits=splits,
            probe_docs=probe_docs, config=config_doc, created=now(), uid=uuid.uuid4().hex))

        check_directory(path, overwrite, locked=False)  # no lock file in a directory that is no run
        lock, made = lock_new_directory(path)
        try:
            check_directory(path, overwrite)  # again under the lock: another creator may have won
        except BaseException:
            lock.release()  # refused: the directory is left exactly as it was
            raise
        try:
            with disk_errors(path, "creating the run"):
                clear_directory(path)  # everything but the lock file: never a run under a live writer
                faults.point("create_locked")
                write_new_run(path, attributes, probe_arrays, probe_docs, layers, splits,
                               len(class_names))
            writer = cls(Layout(path, read_only=False), lock)
        except Exception:
            # Nothing half-written stays behind: a directory we made goes, one that existed
            # is left empty (a simulated kill, a BaseException, leaves what a kill would).
            undo_creation(path, made)
            lock.release()
            raise
        except BaseException:
            lock.release()
            raise
        return writer

    @classmethod
    def open(cls, path) -> RunWriter:
        """Open an existing run to append epochs (resume) or adversarial records.

        Leftovers of a write that was killed (temporary files) are removed; the slot of
        an epoch that was being written is reused by the next :meth:`write_epoch`.
        """
        path = as_path(path)
        msg = missing_run_message(path)  # before the lock: no lock file in a directory that is no run
        if msg:
            raise StoreError(msg)
        lock = RunLock(path).acquire()
        try:
            layout = Layout(path, read_only=False)
            with disk_errors(path, "removing what an interrupted write left"):
                remove_leftovers(path, layout.commit)
        except BaseException:
            lock.release()
            raise
        return cls(layout, lock)

    def update_config(self, changes: Mapping) -> None:
        """Merge ``changes`` into the stored training config (e.g. on resume)."""
        self._check_open()
        merged = jsonable({**self.config, **dict(changes)}, "config")
        attrs = with_checksum({**self._layout.attrs, CONFIG_ATTR: merged})
        with disk_errors(self.path, "updating the run's config"):
            self._layout.root.attrs.update({CONFIG_ATTR: merged, CHECKSUM_KEY: attrs[CHECKSUM_KEY]})
        self._layout.attrs = attrs
        self.config = merged

    # -- epochs --------------------------------------------------------------------

    def _commit(self, change: Callable[[CommitRecord], None]) -> None:
        # Re-read first, so another RunWriter on the same run (used one after the other,
        # e.g. the trainer's and the adversarial command's) does not lose its entries.
        record = self._layout.read_commit()
        change(record)
        epochs = [e.epoch for e in record.epochs]
        if len(set(epochs)) != len(epochs):  # the lock prevents it; never write it anyway
            raise StoreError(f"refusing to commit a duplicate epoch to {self.path}: another "
                             "writer committed the same epoch meanwhile")
        self.lock.confirm()  # on object storage: renew the lease now, or refuse if it was lost
        with disk_errors(self.path, "committing"):
            self._layout.write_commit(record)
        self._arrays_of = record.to_json()

    def _hook(self, stage: str) -> None:
        faults.point(stage)

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
        epoch = self._new_epoch(epoch)
        layout = self._layout
        static_done = layout.commit.static

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
                acts[split, layer.name] = activation_matrix(
                    given[layer.name], layer, (n,), f"activations[{split!r}][{layer.name!r}]")
        preds, mets, pars = self._extras(predictions, metrics, params)

        with disk_errors(self.path, f"writing epoch {epoch}"):
            try:
                self._write_slot(epoch, acts, preds, mets, pars)
            except OSError:
                remove_leftovers(self.path)  # nothing committed: the run reads as before
                raise
        self._hook("committed")

    def _new_epoch(self, epoch: int) -> int:
        """``epoch`` as an int, if it may be written now (re-reads the commit record)."""
        self._check_open()
        layout = self._layout
        layout.commit = layout.read_commit()
        known = layout.commit.to_json()
        if known != self._arrays_of:  # not the record this writer last saw: reopen its arrays
            self._arrays.clear()
            self._arrays_of = known
        epoch = as_int(epoch, "epoch")
        if epoch < 0:
            raise StoreError(f"epoch must be >= 0, got {epoch}")
        if epoch > MAX_EPOCH:
            raise StoreError(f"epoch {epoch} is too large: epochs are at most {MAX_EPOCH} (2^31 - 1: "
                             "the server and the viewer hold them as 32-bit integers); number them from 0")
        if epoch in self.epochs:
            raise StoreError(f"epoch {epoch} is already in run {self.path}: epochs are append-only. "
                             f"Completed epochs: {describe_epochs(self.epochs)}")
        return epoch

    def _extras(self, predictions, metrics, params) -> tuple[dict, dict, dict]:
        """The predictions, metrics and parameters of an epoch, validated (see :meth:`write_epoch`)."""
        layout = self._layout
        n_classes = len(self.class_names)
        preds: dict[str, np.ndarray] = {}
        for split, value in (predictions or {}).items():
            layout.check_split(split)
            preds[split] = int_array(value, f"predictions[{split!r}]", (layout.sizes[split],),
                                     low=0, high=n_classes)
        mets: dict[tuple[str, str], np.ndarray] = {}
        for split, values in (metrics or {}).items():
            layout.check_split(split)
            self._check_known(values, METRIC_NAMES, "metric", f"metrics[{split!r}]")
            for name, value in values.items():
                shape = (n_classes,) if is_per_class(name) else ()
                arr = as_array(value, f"metrics[{split!r}][{name!r}]").astype(np.float64)
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
                check_name(pname, "parameter")
                arr = as_array(value, f"params[{lname!r}][{pname!r}]").astype(np.float32)
                existing = self._stored_shape(params_array(lname, pname))
                if existing is not None and existing[1:] != arr.shape:
                    raise StoreError(f"params[{lname!r}][{pname!r}] has shape {arr.shape}, but "
                                     f"earlier epochs stored {existing[1:]}")
                pars[lname, pname] = arr
        return preds, mets, pars

    def _write_slot(self, epoch: int, acts: dict, preds: dict, mets: dict, pars: dict) -> None:
        """Write a validated epoch into a fresh slot and commit it (see :meth:`write_epoch`)."""
        slot = self._next_slot()
        arrays = self._grow(slot, pars)
        self._hook("resized")
        written = parallel(lambda item: _write_activation(self._layout, arrays, slot, *item[0], item[1]),
                           list(acts.items()))
        self._hook("activations")
        self._finish_slot(epoch, slot, arrays, written, preds, mets, pars)

    def _stored_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of the stored array ``name`` (None if there is none), from the array
        this writer holds open, else from its metadata file (not zarr's Group.get: a
        KeyError raised through zarr's sync() would pin this frame, and the writer and its
        lock, in a cycle)."""
        if name in self._arrays:
            return tuple(self._arrays[name].shape)
        meta = read_array_meta(self.path, name)
        return None if meta is None else tuple(meta["shape"])

    def _next_slot(self) -> int:
        """The fresh slot of the next epoch: one past the last committed one."""
        committed_slots = [e.slot for e in self._layout.commit.epochs]
        return max(committed_slots) + 1 if committed_slots else 0

    def _grow(self, slot: int, pars: dict) -> dict:
        """Every per-epoch array (parameter arrays created on first use), grown to hold ``slot``."""
        layout = self._layout
        root = layout.root
        comp = compressors()

        def grown(name: str):
            arr = self._arrays.get(name)
            if arr is None:
                arr = layout.array(name)
            if arr.shape[0] <= slot:  # never shrink: a partial slot beyond ours may exist
                arr.resize((slot + 1,) + tuple(arr.shape[1:]))
            return arr

        names = [activations_array(split, layer.name) for split in self.splits for layer in self.layers
                 if not layer.static]
        names += [predictions_array(split) for split in self.splits]
        names += [metrics_array(split, name) for split in self.splits for name in METRIC_NAMES]
        for (lname, pname), arr in pars.items():
            if self._stored_shape(params_array(lname, pname)) is None:
                group = root.require_group(PARAMS).require_group(lname)
                row = int(np.prod(arr.shape[1:], dtype=np.int64)) * 4
                chunks = (1,) + ((rows_per_chunk(arr.shape[0], row),) + arr.shape[1:] if arr.ndim else ())
                group.create_array(pname, shape=(slot + 1,) + arr.shape, chunks=chunks,
                                   dtype="float32", fill_value=np.nan, compressors=comp,
                                   config=ARRAY_CONFIG)
            names.append(params_array(lname, pname))
        arrays = dict(zip(names, parallel(grown, names), strict=True))
        self._arrays.update(arrays)
        return arrays

    def _finish_slot(self, epoch: int, slot: int, arrays: dict, written: Sequence[tuple],
                     preds: dict, mets: dict, pars: dict) -> None:
        """The small arrays of the slot, then the commit of the epoch. ``written``: one
        ``(split, layer, scale, non-finite rows)`` per activation array written to the slot."""
        layout = self._layout
        n_classes = len(self.class_names)
        scales: dict[str, dict[str, float]] = {}
        bad: dict[str, dict[str, int]] = {}
        static_info: dict[str, StaticEntry] = {}
        for split, lname, scale, n_bad in written:
            if layout.by_name[lname].static:
                info = static_info.setdefault(lname, StaticEntry())
                scale_to, bad_to = info.scale, info.nonfinite
                key = split
            else:
                scale_to, bad_to = scales.setdefault(split, {}), bad.setdefault(split, {})
                key = lname
            if scale != 1.0:
                scale_to[key] = scale
            if n_bad:
                bad_to[key] = n_bad

        small: list[tuple[str, np.ndarray]] = []
        for split in self.splits:
            # Written even when absent, so a partial slot left by a killed write is reset.
            small.append((predictions_array(split),
                          preds.get(split, np.full(layout.sizes[split], -1)).astype(np.int16)))
            for name in METRIC_NAMES:
                shape = (n_classes,) if is_per_class(name) else ()
                small.append((metrics_array(split, name), mets.get((split, name), np.full(shape, np.nan))))
        param_names: dict[str, list[str]] = {}
        for (lname, pname), arr in pars.items():
            small.append((params_array(lname, pname), arr))
            param_names.setdefault(lname, []).append(pname)

        def write_small(item: tuple[str, np.ndarray]) -> None:
            arrays[item[0]][slot] = item[1]

        parallel(write_small, small)
        self._hook("before_commit")

        entry = EpochEntry(epoch=epoch, slot=slot, written=now(),
                           scale={s: v for s, v in scales.items() if v},
                           nonfinite={s: v for s, v in bad.items() if v}, params=param_names)

        def change(record: CommitRecord) -> None:
            record.epochs.append(entry)
            record.static.update(static_info)

        self._commit(change)

    # -- epochs written by several processes (torch.distributed) ---------------------

    def reserve_epoch(self, epoch: int, *, params: Mapping[str, Mapping[str, np.ndarray]] | None = None
                      ) -> int:
        """The first step of an epoch written by several processes: check ``epoch``, grow
        every per-epoch array to hold its fresh slot, and return the slot.

        Then each process writes its activation arrays with :class:`ShardWriter` (into that
        slot), and this writer, once all have finished, calls :meth:`commit_epoch`. Nothing
        is visible to readers before that commit; a process that dies in between leaves
        the run with the epochs it had (the next writer reuses the slot).
        ``params`` are the epoch's parameters (their arrays are created here if new).
        """
        epoch = self._new_epoch(epoch)
        _, _, pars = self._extras(None, None, params)
        slot = self._next_slot()
        with disk_errors(self.path, f"writing epoch {epoch}"):
            self._grow(slot, pars)
        self._hook("resized")
        return slot

    def static_layers(self) -> list[str]:
        """Static layers whose data is committed already: they are not written again."""
        return sorted(self._layout.read_commit().static)

    def commit_epoch(self, epoch: int, slot: int, written: Sequence[tuple], *,
                     predictions: Mapping[str, np.ndarray] | None = None,
                     metrics: Mapping[str, Mapping[str, float | np.ndarray]] | None = None,
                     params: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> None:
        """The last step of an epoch written by several processes (see :meth:`reserve_epoch`):
        write the small arrays and commit. ``written`` gathers what every
        :meth:`ShardWriter.write` returned; every activation array of the slot must be in it."""
        epoch = self._new_epoch(epoch)
        if slot != self._next_slot():
            raise StoreError(f"slot {slot} of epoch {epoch} is not the fresh slot of run {self.path} "
                             f"({self._next_slot()}): another epoch was committed meanwhile")
        static_done = self._layout.commit.static
        expected = {(s, lay.name) for s in self.splits for lay in self.layers
                    if not (lay.static and lay.name in static_done)}
        got = [(w[0], w[1]) for w in written]
        if sorted(got) != sorted(expected):
            missing = sorted(expected - set(got))
            raise StoreError(f"epoch {epoch} of run {self.path} cannot be committed: the activations of "
                             f"{', '.join(f'{s}/{n}' for s, n in missing) or 'some layers'} were not written "
                             "exactly once by the processes; nothing was committed")
        preds, mets, pars = self._extras(predictions, metrics, params)
        with disk_errors(self.path, f"writing epoch {epoch}"):
            arrays = self._grow(slot, pars)
            self._finish_slot(epoch, slot, arrays, list(written), preds, mets, pars)
        self._hook("committed")

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
        self._check_open()
        layout = self._layout
        layout.commit = layout.read_commit()
        check_name(name, "adversarial record")
        epoch = as_int(epoch, "epoch")
        if epoch not in self.epochs:
            raise StoreKeyError(f"epoch {epoch} is not a completed epoch of run {self.path}; "
                                f"completed: {describe_epochs(self.epochs)}")
        n_classes = len(self.class_names)
        source = as_int(source, "source")
        target = as_int(target, "target")
        for what, c in (("source", source), ("target", target)):
            if not 0 <= c < n_classes:
                raise StoreError(f"{what} class {c} is out of range 0..{n_classes - 1}")
        eps = float(eps)
        layout.check_split(split)
        index = int_array(example_index, "example_index", low=0, high=layout.sizes[split])
        if index.ndim != 1 or index.size == 0:
            raise StoreError(f"example_index must be a non-empty 1-D array, got shape {index.shape}")
        m = index.shape[0]
        preds = as_array(predictions, "predictions")
        if preds.ndim != 2 or preds.shape[1] != m or preds.shape[0] < 1:
            raise StoreError(f"predictions has shape {preds.shape}, expected (S+1, {m})")
        n_steps = preds.shape[0]
        preds = int_array(preds, "predictions", low=0, high=n_classes)
        loss = as_array(target_loss, "target_loss").astype(np.float64)
        if loss.shape != (n_steps,):
            raise StoreError(f"target_loss has shape {loss.shape}, expected ({n_steps},)")
        imgs = as_array(images, "images")
        if imgs.ndim == 4:
            imgs = imgs[:, :, None]
        if imgs.ndim != 5 or imgs.shape[:2] != (n_steps, m):
            raise StoreError(f"images has shape {imgs.shape}, expected ({n_steps}, {m}, C, H, W)")
        if imgs.dtype != np.uint8:
            raise StoreError(f"images are {imgs.dtype}; store uint8 (the perturbed images, rounded)")
        if not activations:
            raise StoreError("activations is empty: give at least one layer")
        self._check_known(activations, [lay.name for lay in self.layers], "layer", "activations")
        acts = {lname: activation_matrix(value, layout.by_name[lname], (n_steps, m),
                                         f"activations[{lname!r}]")
                for lname, value in activations.items()}

        previous_entry = layout.commit.adversarial.get(name)
        previous = previous_entry.path if previous_entry is not None else None
        generation = generation_of(previous) + 1 if previous else 0
        gpath = adversarial_group(name, generation)
        meta = AdversarialMeta(epoch=epoch, source=source, target=target, eps=eps, split=split,
                               steps=n_steps - 1, layers=list(acts))
        encoded = {lname: encode_float16(x) for lname, x in acts.items()}  # may refuse a value
        with disk_errors(self.path, f"writing adversarial record {name!r}"):
            try:
                self._write_generation(name, generation, meta, index, preds, loss, imgs, encoded)
            except OSError:
                rmtree(self.path / gpath, ignore_errors=True)  # never committed
                remove_leftovers(self.path)
                raise
        self._hook("adversarial_arrays")

        def change(record: CommitRecord) -> None:
            record.adversarial[name] = AdversarialEntry(path=gpath, written=now())

        self._commit(change)
        self._hook("adversarial_committed")
        if previous:
            rmtree(self.path / previous, ignore_errors=True)

    def _write_generation(self, name: str, generation: int, meta: AdversarialMeta, index: np.ndarray,
                          preds: np.ndarray, loss: np.ndarray, imgs: np.ndarray,
                          encoded: dict[str, tuple[np.ndarray, float, np.ndarray]]) -> None:
        """The arrays and attributes of one adversarial generation group (not yet committed)."""
        comp = compressors()
        m = index.shape[0]
        # overwrite=True: a generation left half-written by a killed process is replaced.
        group = self._layout.root.require_group(ADVERSARIAL).require_group(name).create_group(
            str(generation), overwrite=True, attributes=meta.attributes())
        group.create_array(ADV_EXAMPLE_INDEX, data=index, compressors=comp, config=ARRAY_CONFIG)
        group.create_array(ADV_PREDICTIONS, data=preds.astype(np.int16), chunks=(1, m), compressors=comp,
                           config=ARRAY_CONFIG)
        group.create_array(ADV_TARGET_LOSS, data=loss, compressors=compressors(False),
                           config=ARRAY_CONFIG)
        row = int(np.prod(imgs.shape[2:], dtype=np.int64))
        group.create_array(ADV_IMAGES, data=imgs, chunks=(1, rows_per_chunk(m, row)) + imgs.shape[2:],
                           compressors=comp, config=ARRAY_CONFIG)
        ag = group.require_group(ADV_ACTIVATIONS)
        for lname, (y, scale, bad_rows) in encoded.items():
            dim = y.shape[-1]
            ag.create_array(lname, data=y, chunks=(1, rows_per_chunk(m, 2 * dim), dim),
                            compressors=comp, dimension_names=(STEP, EXAMPLE, DIM), config=ARRAY_CONFIG)
            if scale != 1.0:
                meta.scale[lname] = scale
            if bad_rows.any():
                meta.nonfinite[lname] = [int(c) for c in bad_rows.sum(axis=1)]
        group.attrs.update(meta.counts())



def _write_activation(layout: Layout, arrays: dict | None, slot: int, split: str, lname: str,
                      x: np.ndarray) -> tuple[str, str, float, int]:
    """Encode one (split, layer) matrix and write it to ``slot`` (a static layer to slot 0).

    Returns ``(split, layer, scale, non-finite rows)`` for the commit record.
    """
    y, scale, bad_rows = encode_float16(x)
    name = activations_array(split, lname)
    if layout.by_name[lname].static:
        layout.array(name)[0] = y
    else:
        (arrays[name] if arrays is not None else layout.array(name))[slot] = y
    return split, lname, scale, int(bad_rows.sum())


class ShardWriter:
    """Writes activation arrays into a slot reserved by the run's writer, without the lock.

    For epochs written by several processes (:meth:`RunWriter.reserve_epoch`): each
    process writes whole (split, layer) arrays, so no two processes write one chunk, on
    behalf of the process that holds the writer lock and commits. It never commits and
    never changes metadata; what it writes is invisible until that commit.
    """

    def __init__(self, path) -> None:
        self.path = as_path(path)
        self._layout = Layout(self.path, read_only=False, verify_arrays=False)
        self._arrays: dict[str, Any] = {}  # opened once (a GET remotely), reopened once grown

    def write(self, slot: int, split: str, layer: str, x: np.ndarray) -> tuple[str, str, float, int]:
        """Write the activations ``x`` (N, dim) of ``layer`` in ``split`` to ``slot``.

        Returns ``(split, layer, scale, non-finite rows)``, for :meth:`RunWriter.commit_epoch`.
        """
        layout = self._layout
        layout.check_split(split)
        info = layout.layer(layer)
        x = activation_matrix(x, info, (layout.sizes[split],), f"activations[{split!r}][{layer!r}]")
        name = activations_array(split, layer)
        with disk_errors(self.path, f"writing {split}/{layer} to slot {slot}"):
            if info.static:  # written once, to slot 0
                return _write_activation(layout, None, int(slot), split, layer, x)
            arr = self._arrays.get(name)
            if arr is None or arr.shape[0] <= int(slot):  # the run's writer grew it since
                arr = self._arrays[name] = layout.array(name)
            return _write_activation(layout, {name: arr}, int(slot), split, layer, x)
