"""The run side: transitions of a recorded run, read from ``RUN/alignment/`` or computed.

:class:`Aligner` serves the transitions and displayed coordinates of one run (reading
what :func:`align_run` stored, computing the rest); :func:`align_run` precomputes and
stores them all, an epoch at a time, so a viewer only reads.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.align._run import _as_run
from grandtour.align.reduction import DEFAULT_THRESHOLD, Reduction, fit_reduction, reduced_coordinates
from grandtour.align.storage import _alignment_arrays, _AlignmentStore, map_prefix
from grandtour.align.transitions import (
    AlignmentWarning,
    Transition,
    _align,
    _Alignment,
    _make_transition,
    _maxpool_scale,
    check_rows,
)
from grandtour.errors import GrandTourError, NotAlignedError, StoreError
from grandtour.store import LayerInfo, Run, StoreKeyError, decode_float16


class Aligner:
    """Transitions of one run: reads what ``align_run`` stored, computes the rest.

    Parameters
    ----------
    run : Run, str or Path
    threshold : int, optional
        Layers wider than this are reduced. Default: the threshold the run was aligned
        with, else ``DEFAULT_THRESHOLD`` (256). Stored alignment data is used only when
        its threshold matches.

    Notes
    -----
    Without stored alignment data, the first use of a wide layer fits its reduction over
    the run (seconds to minutes); ``grandtour align RUN`` does that once and stores it.
    """

    def __init__(self, run: Run | str | Path, *, threshold: int | None = None):
        self.run = _as_run(run)
        self.store = _AlignmentStore.read(self.run)
        stored = self.store.threshold if self.store is not None else None
        self.threshold = int(threshold if threshold is not None else (stored or DEFAULT_THRESHOLD))
        if self.threshold < 1:
            raise GrandTourError(f"threshold must be >= 1, got {self.threshold}")
        if self.store is not None and stored != self.threshold:
            self.store = None  # aligned for another threshold: do not mix
        self._reductions: dict[str, Reduction | None] = {}
        self._static: dict[tuple[str, str], _Alignment] = {}  # (layer, source) -> map
        self._names = [layer.name for layer in self.run.layers]
        self._check_rows: list[np.ndarray] | bool | None = False  # False: not drawn yet
        # (layer, epoch, split) -> (Z, variance kept) of a reduced layer: the last few, since
        # a transition reads two layers and the next one shares one of them.
        self._coords: OrderedDict[tuple[str, int, str], tuple[np.ndarray, float]] = OrderedDict()
        self._coords_lock = threading.Lock()  # the server shares one Aligner between threads

    def previous(self, layer: str, source: str | None = None) -> LayerInfo:
        """The input of ``layer`` a transition starts from: ``source``, or its main input.

        ``source`` must be one of ``run.inputs(layer)``; the default is the first (the
        main path). A layer without inputs (``input``) has no transition: StoreKeyError.
        """
        self.run.layer(layer)
        inputs = self.run.inputs(layer)
        if not inputs:
            with_one = [n for n in self._names if self.run.inputs(n)]
            first = "the first recorded layer" if layer == self._names[0] else "a layer reading no recorded layer"
            raise StoreKeyError(f"{layer!r} is {first} of {self.run.path}; it has no "
                                f"transition. Layers with one: {', '.join(with_one)}")
        if source is None:
            return self.run.layer(inputs[0])
        if source not in inputs:
            raise StoreKeyError(f"{source!r} is not an input of {layer!r} in {self.run.path}; its "
                                f"inputs are {', '.join(map(repr, inputs))}")
        return self.run.layer(source)

    def _branch(self, layer: str, source: str | None) -> str | None:
        """None for the main input (stored as the layer's transition), else the source."""
        if source is None or source == self.run.inputs(layer)[0]:
            return None
        return source

    def check_rows(self) -> list[np.ndarray] | None:
        """The probe points each check uses (``transitions.check_rows``): per split, or None."""
        if self._check_rows is False:
            splits = self.run.splits
            self._check_rows = check_rows([self.run.size(s) for s in splits],
                                          block_rows=[self.run.chunk_rows(s) for s in splits])
        return self._check_rows

    def checked(self) -> tuple[int, int]:
        """``(points the checks use, points)``."""
        rows = self.check_rows()
        total = sum(self.run.size(s) for s in self.run.splits)
        return (total if rows is None else sum(len(r) for r in rows)), total

    def check_data(self, layer: str, epoch: int) -> list[np.ndarray]:
        """A layer's activations at the points of the check, per split, float64."""
        rows = self.check_rows()
        out = []
        for k, split in enumerate(self.run.splits):
            y, scale = self.run.activations_float16(layer, epoch, split, None if rows is None else rows[k])
            out.append(decode_float16(y, scale).astype(np.float64))  # what activations() decodes
        return out

    def operands(self, layer: str, epoch: int, skip: str = "") -> dict[str, list[np.ndarray]]:
        """A functional op's recorded inputs (per split, at the points of the check)."""
        info = self.run.layer(layer)
        names = {n for n in (info.config.get("operands") or []) if n and n != skip}
        return {n: self.check_data(n, epoch) for n in sorted(names) if n in self._names}

    def reduction(self, layer: str) -> Reduction | None:
        """The reduction of ``layer``, or None if it is not wider than the threshold."""
        if layer not in self._reductions:
            info = self.run.layer(layer)
            red = None
            if info.dim > self.threshold:
                red = self.store.reduction(layer) if self.store is not None else None
                if red is None:
                    red = fit_reduction(self.run, layer, self.threshold)
            self._reductions[layer] = red
        return self._reductions[layer]

    def reduced(self, layer: str) -> bool:
        """Whether ``layer`` is shown in a reduction (it is wider than the threshold)."""
        return self.run.layer(layer).dim > self.threshold

    def coordinates(self, layer: str, epoch: int, split: str) -> np.ndarray:
        """What the viewer shows for ``layer``: ``(N, d)`` float64, ``X`` or ``X @ R``.

        ``X @ R`` is :func:`~grandtour.align.reduction.reduced_coordinates` of the stored
        activations (float16-rounded, as stored); an alignment of layout version 1 that
        stored them is read as stored (the same numbers).
        """
        if not self.reduced(layer):
            return self.run.activations(layer, epoch, split).astype(np.float64)
        return self._reduced(layer, epoch, split)[0]

    def _reduced(self, layer: str, epoch: int, split: str) -> tuple[np.ndarray, float]:
        info = self.run.layer(layer)
        self.run.check_epoch(epoch)  # an unknown epoch is an error, stored or not
        self.run.check_split(split)
        key = (layer, epoch if not info.static else -1, split)
        with self._coords_lock:
            if key in self._coords:
                self._coords.move_to_end(key)
                return self._coords[key]
        found = None
        if self.store is not None:
            entry = self.store.coords_entry(layer, epoch, info.static)
            z = None if entry is None else self.store.coords(layer, epoch, split, info.static)
            if z is not None and split in entry.get("variance_kept", {}):  # version 1: as stored
                found = (z, float(entry["variance_kept"][split]))
        if found is None:
            found = reduced_coordinates(self.run.activations(layer, epoch, split), self.reduction(layer).basis)
        with self._coords_lock:
            self._coords[key] = found
            while len(self._coords) > 4:
                self._coords.popitem(last=False)
        return found

    def _variance_kept(self, layer: str, epoch: int, split: str) -> float:
        return self._reduced(layer, epoch, split)[1] if self.reduced(layer) else 1.0

    def alignment(self, layer: str, epoch: int, source: str | None = None) -> _Alignment:
        """The bases of (layer, epoch) from ``source`` (default: the main input): stored, or
        computed from every split's activations."""
        prev = self.previous(layer, source)
        if self.store is not None:
            al = self.store.alignment(layer, epoch, self._branch(layer, prev.name))
            if al is not None:
                return al
        info = self.run.layer(layer)

        def full() -> tuple[list[np.ndarray], list[np.ndarray]]:
            return tuple([self.run.activations(n, epoch, s).astype(np.float64) for s in self.run.splits]
                         for n in (prev.name, layer))

        return _align(prev, info, self.run.params(layer, epoch), self.check_data(prev.name, epoch),
                      self.check_data(layer, epoch), self.reduction(prev.name), self.reduction(layer),
                      self._static, self.operands(layer, epoch, skip=prev.name),
                      checked=self.checked(), full=full)

    def transition(self, layer: str, epoch: int, split: str, source: str | None = None) -> Transition:
        """The :class:`Transition` of ``layer`` from ``source`` (default: its main input)."""
        prev = self.previous(layer, source)
        self.run.check_split(split)
        al = self.alignment(layer, epoch, prev.name)
        zp = self.coordinates(prev.name, epoch, split)
        zl = self.coordinates(layer, epoch, split)
        scale = None
        if al.method == "maxpool":
            scale = _maxpool_scale(prev, self.run.layer(layer),
                                   self.run.activations(prev.name, epoch, split).astype(np.float64),
                                   self.run.activations(layer, epoch, split).astype(np.float64))
        vk = (self._variance_kept(prev.name, epoch, split), self._variance_kept(layer, epoch, split))
        return _make_transition(al, zp, zl, epoch, split, scale=scale, variance_kept=vk,
                                reduced=(self.reduced(prev.name), self.reduced(layer)))


def transition(run: Run | str | Path, layer: str, epoch: int, split: str,
               source: str | None = None) -> Transition:
    """The transition of ``layer`` from one of its inputs at ``epoch``, ``split``.

    ``source`` is one of ``run.inputs(layer)`` (default: the first, the main path): a
    merge (an ``add``, a ``cat``) has one transition per input. Uses the alignment stored
    by :func:`align_run` when there is one, and computes the rest (for many calls, keep
    one :class:`Aligner`). See :class:`Transition`.
    """
    return Aligner(run).transition(layer, epoch, split, source)


def load_transition(run: Run | str | Path, layer: str, epoch: int, split: str,
                    source: str | None = None) -> Transition:
    """Like :func:`transition`, but only from stored alignment data (what a viewer does).

    Raises
    ------
    NotAlignedError
        If the run, or that (layer, epoch), has not been aligned: run ``grandtour align RUN``.
    StoreError
        If the stored alignment is damaged (the message says to realign with ``--force``).
    """
    aligner = Aligner(run)
    if aligner.store is None:
        raise NotAlignedError(f"run {aligner.run.path} has not been aligned; run `grandtour align "
                         f"{aligner.run.path}`")
    prev = aligner.previous(layer, source)
    aligner.run.check_epoch(epoch)  # unknown epoch: StoreKeyError listing them
    if aligner.store.alignment(layer, epoch, aligner._branch(layer, prev.name)) is None:  # noqa: SLF001
        raise NotAlignedError(f"epoch {epoch} of run {aligner.run.path} has not been aligned; run "
                         f"`grandtour align {aligner.run.path}`")
    for name in (prev.name, layer):
        if aligner.reduced(name) and name not in aligner.store.commit["reductions"]:
            raise StoreError(f"the reduction of layer {name!r} is missing from {aligner.store.path}; "
                             f"realign with `grandtour align {aligner.run.path} --force`")
    return aligner.transition(layer, epoch, split, prev.name)


def load_reduction(run: Run | str | Path, layer: str) -> Reduction | None:
    """The stored reduction of ``layer`` (None if the layer is not reduced or not aligned)."""
    run = _as_run(run)
    run.layer(layer)
    store = _AlignmentStore.read(run)
    return None if store is None else store.reduction(layer)


def layer_coordinates(run: Run | str | Path, layer: str, epoch: int, split: str) -> np.ndarray:
    """What the viewer shows for a layer: its activations, or their reduction ``X @ R``."""
    return Aligner(run).coordinates(layer, epoch, split)


# ============================================================================ align_run

def _progress(total: int, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc="align", unit="step", disable=None, dynamic_ncols=True)
        except ImportError:
            pass

    class _Quiet:
        def update(self, n=1):
            pass

        def set_postfix_str(self, s):
            pass

        def close(self):
            pass

    return _Quiet()


def align_run(run_path: Run | str | Path, epochs: Iterable[int] | None = None,
              threshold: int = DEFAULT_THRESHOLD, force: bool = False, progress: bool = True
              ) -> dict:
    """Precompute and store every transition of a run, so that the viewer only reads.

    Stores, under ``RUN/alignment/`` (layout in ``docs/align.md``): the reduction of
    every layer wider than ``threshold`` and the bases of every (layer, epoch) transition
    (once for maps that do not change with training, such as pooling); the reduced
    coordinates are computed when read. Each transition is checked on a fixed sample of
    at most ``CHECK_POINTS`` probe points (``transitions.check_rows``). Idempotent: what is
    already stored is skipped, unless ``force``; each epoch is committed atomically, so
    an interrupted run resumes where it stopped.

    Parameters
    ----------
    run_path : Run, str or Path
    epochs : iterable of int, optional
        Epochs to align (default: every completed epoch).
    threshold : int, default ``DEFAULT_THRESHOLD`` (256)
    force : bool
        Delete the stored alignment first and recompute everything.
    progress : bool
        Show a progress bar (when stderr is a terminal).

    Returns
    -------
    dict
        ``{"threshold", "epochs_aligned": [...], "epochs_skipped": [...],
        "reductions": {layer: {"rank", "dim", "variance_kept"}},
        "methods": {layer: method}, "fallbacks": {layer: note}}``.
    """
    run = Run.open(run_path.path if isinstance(run_path, Run) else run_path)  # fresh epochs
    threshold = int(threshold)
    if threshold < 1:
        raise GrandTourError(f"threshold must be >= 1, got {threshold}")
    store = None if force else _AlignmentStore.read(run, writable=True)
    if store is not None and store.threshold != threshold:
        raise GrandTourError(f"run {run.path} was aligned with threshold {store.threshold}; pass "
                             f"--force (force=True) to realign it with threshold {threshold}")
    if store is None:
        store = _AlignmentStore.create(run, threshold)  # replaces a previous one
    if epochs is None:
        todo = list(run.epochs)
    else:
        todo = sorted({int(e) for e in epochs})
        for e in todo:
            run.check_epoch(e)  # StoreKeyError listing the completed epochs
    skipped = [e for e in todo if str(e) in store.commit["epochs"]]
    todo = [e for e in todo if str(e) not in store.commit["epochs"]]
    if todo:
        store.upgrade()  # the epochs added are of this version's layout

    aligner = Aligner(run, threshold=threshold)
    aligner.store = store
    wide = [layer for layer in run.layers if layer.dim > threshold]
    bar = _progress(len([w for w in wide if w.name not in store.commit["reductions"]])
                    + len(todo), progress)
    summary: dict[str, Any] = {"threshold": threshold, "epochs_aligned": [], "epochs_skipped": skipped,
                               "reductions": {}, "methods": {}, "fallbacks": {}}
    try:
        for layer in wide:
            if layer.name not in store.commit["reductions"] and todo:
                bar.set_postfix_str(f"reduction of {layer.name}")
                red = fit_reduction(run, layer.name, threshold)
                store.write(f"reductions/{layer.name}/basis", red.basis)
                store.write(f"reductions/{layer.name}/mean", red.mean)
                store.commit["reductions"][layer.name] = {
                    "dim": red.dim, "rank": red.rank, "variance_kept": red.variance_kept,
                    "total_variance": red.total_variance, "fit_epochs": red.fit_epochs,
                    "points": red.points, "method": red.method}
                store.save()
                bar.update()
            aligner._reductions.pop(layer.name, None)  # noqa: SLF001 - read back the stored one
        if todo:
            _seed_static_maps(aligner, store)
        for epoch in todo:
            bar.set_postfix_str(f"epoch {epoch}")
            _align_epoch(run, aligner, store, epoch, summary)
            summary["epochs_aligned"].append(epoch)
            bar.update()
    finally:
        bar.close()
    for name, doc in store.commit["reductions"].items():
        summary["reductions"][name] = {"rank": doc["rank"], "dim": doc["dim"],
                                       "variance_kept": doc["variance_kept"], "points": doc["points"]}
    for note in summary["fallbacks"].values():  # once per layer, not once per epoch
        warnings.warn(note, AlignmentWarning, stacklevel=2)
    return summary


def _seed_static_maps(aligner: Aligner, store: _AlignmentStore) -> None:
    """Put the maps that do not change with training, as stored by an earlier ``align``, in
    the aligner's cache, so that a later ``align`` of new epochs does not decompose them again
    (pooling between two reductions, the identity between two reductions: full SVDs)."""
    for epoch, doc in store.commit["epochs"].items():
        entries = [(layer, None, e) for layer, e in doc.get("layers", {}).items()]
        entries += [(layer, src, e) for layer, by in doc.get("branches", {}).items() for src, e in by.items()]
        for layer, branch, entry in entries:
            key = (layer, entry["previous"])
            if entry.get("source") == "static" and key not in aligner._static:  # noqa: SLF001
                al = store.alignment(layer, int(epoch), branch)
                if al is not None:
                    aligner._static[key] = al  # noqa: SLF001


def _align_epoch(run: Run, aligner: Aligner, store: _AlignmentStore, epoch: int, summary: dict) -> None:
    """Every transition of one epoch: each layer from each of its inputs, then one commit."""
    layers_doc: dict[str, dict] = {}
    branches_doc: dict[str, dict] = {}
    names = [info.name for info in run.layers]
    # Keep a layer's activations only until its last reader is aligned (a wide network
    # would not fit in memory otherwise).
    last_use = {n: i for i, n in enumerate(names)}
    for i, info in enumerate(run.layers):
        for name in (*run.inputs(info.name), *(info.config.get("operands") or [])):
            if name in last_use:
                last_use[name] = max(last_use[name], i)
    # Only the points of the check are kept (a fixed sample, see transitions.check_rows);
    # the least-squares fallback, which fits every point, reads them again.
    cache: dict[str, list[np.ndarray]] = {}

    def acts(name: str) -> list[np.ndarray]:
        if name not in cache:
            cache[name] = aligner.check_data(name, epoch)
        return cache[name]

    checked = aligner.checked()
    for i, info in enumerate(run.layers):
        xs = acts(info.name)
        red = aligner.reduction(info.name)
        inputs = run.inputs(info.name)
        for k, source in enumerate(inputs):
            prev_info = run.layer(source)
            operands = {n: acts(n) for n in (info.config.get("operands") or [])
                        if n and n != source and n in last_use}

            def full(pair: tuple[str, str] = (source, info.name)) -> tuple[list[np.ndarray], list[np.ndarray]]:
                return tuple([run.activations(n, epoch, s).astype(np.float64) for s in run.splits]
                             for n in pair)

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AlignmentWarning)
                al = _align(prev_info, info, run.params(info.name, epoch), acts(source), xs,
                            aligner.reduction(source), red, aligner._static, operands,  # noqa: SLF001
                            checked=checked, full=full)
            label = info.name if k == 0 else f"{info.name} (from {source})"
            for w in caught:
                summary["fallbacks"].setdefault(label, str(w.message))
            branch = None if k == 0 else source
            static_key = info.name if branch is None else f"{info.name}/from/{source}"
            prefix = map_prefix(info.name, branch)
            source_kind = "static" if al.static else "epoch"
            arrays = _alignment_arrays(al)
            if al.static and static_key not in store.commit["static_maps"] and arrays:
                for name, arr in arrays.items():
                    store.write(f"{prefix}/static/{name}", arr)
                store.commit["static_maps"][static_key] = sorted(arrays)
            elif not al.static:
                for name, arr in arrays.items():
                    store.write(f"{prefix}/{epoch}/{name}", arr)
            doc = {"previous": source, "kind": info.kind, "method": al.method,
                   "source": source_kind, "arrays": sorted(arrays), "d_in": al.d_in, "d_out": al.d_out,
                   "exact": al.exact, "note": al.note, "residual": al.residual}
            if al.checked is not None:
                doc["checked"] = list(al.checked)
            if branch is None:
                layers_doc[info.name] = doc
                summary["methods"][info.name] = al.method
            else:
                branches_doc.setdefault(info.name, {})[source] = doc
        for name in [n for n in cache if last_use.get(n, -1) <= i]:
            del cache[name]
    entry = {"layers": layers_doc}
    if branches_doc:
        entry["branches"] = branches_doc
    store.commit["epochs"][str(epoch)] = entry
    store.save()
