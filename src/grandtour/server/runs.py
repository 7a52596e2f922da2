"""The served runs: each open :class:`~grandtour.store.Run`, what the server caches for it,
and the checks of every URL part (run id, layer, split, epoch) before the store is read.

Clients give run ids, never paths: :func:`open_runs` gives each run directory an id (the
slug of its name) once, at start-up.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import GrandTourError, NotAlignedError, StoreError
from grandtour.server.atlas import sprite_atlas
from grandtour.server.guard import HttpError, not_found
from grandtour.store.schema import MAX_EPOCH as STORE_MAX_EPOCH

#: Largest epoch number accepted in a URL (a larger one is malformed, not unknown): the
#: store's own limit, so every epoch a run can hold can be served (issue 13).
MAX_EPOCH = STORE_MAX_EPOCH
#: A run counts as live while its commit record changed less than this many seconds ago.
LIVE_WINDOW_S = 120.0
#: ... or this many, while the training config plans more epochs than are committed.
LIVE_PLANNED_S = 3600.0
#: Transitions kept per run (each is asked for twice: its data, then its basis).
TRANSITION_CACHE = 8
#: A layer's extent (``/meta``): the largest, over its epochs and splits, of this quantile
#: of its rows' norms, as sent (float16 times scale): the page's viewmap.js EXTENT_QUANTILE.
EXTENT_QUANTILE = 0.99
#: Layers with up to this many float16 bytes of activations in all (cheapest first) get
#: their extent in the run's first ``/meta``; the others are computed in the background
#: (``/meta`` gives each layer's once known, and until then the page measures it itself).
EXTENT_SYNC_BYTES = 64 * 2**20

_EPOCH = re.compile(r"^[0-9]{1,12}$")


def align_module() -> tuple[Any, str]:
    """``(grandtour.align, "")``, or ``(None, why)`` if it cannot be imported."""
    try:
        from grandtour import align
    except ImportError as err:
        if getattr(err, "name", None) == "grandtour.align":
            return None, "this installation has no grandtour.align; update grandtour"
        return None, f"grandtour.align needs the Python package {err.name!r}: {err}"
    return align, ""


def norm_quantile(y: np.ndarray, scale: float, q: float = EXTENT_QUANTILE) -> float:
    """The ``q`` quantile of the norms of the finite rows of float16 ``y`` (N, dim) times
    ``scale``, the way the page takes it (viewmap.js ``normQuantile``): the sorted squared
    norms' entry ``floor(q (n - 1))``; 0 when no row is finite."""
    y = np.asarray(y).reshape(len(y), -1)
    x = y[np.isfinite(y).all(axis=1)].astype(np.float64)
    if not len(x):
        return 0.0
    sq = np.einsum("ij,ij->i", x, x)
    k = int(np.floor(q * (len(sq) - 1)))
    return float(np.sqrt(np.partition(sq, k)[k]) * scale)  # the sorted entry k, without the sort


def _tag(*parts: Any, n: int = 20) -> str:
    """A short strong ETag made of ``parts``."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:n]


@dataclass
class ServedRun:
    """One served run: the open :class:`~grandtour.store.Run` and what the server caches."""

    id: str
    path: Path
    run: Any
    #: The clock :meth:`live` compares the last commit with (pinned by the wire fixture).
    clock: Callable[[], float] = time.time
    lock: threading.Lock = field(default_factory=threading.Lock)
    atlas_lock: threading.Lock = field(default_factory=threading.Lock)
    atlases: dict = field(default_factory=dict)
    align_lock: threading.Lock = field(default_factory=threading.Lock)
    _align_stamp: tuple | None = None
    _aligner: Any = None
    _reductions: dict = field(default_factory=dict)
    #: Why the stored alignment could not be read ("" while it can).
    alignment_error: str = ""
    _transitions: OrderedDict = field(default_factory=OrderedDict)
    #: Why the run is no longer served (a link out of it appeared), or None.
    refused: str | None = None
    #: (layer, epoch, split) -> the EXTENT_QUANTILE of the row norms (committed epochs do not change).
    _norms: dict = field(default_factory=dict)
    _extent_thread: Any = None
    #: A run the server derived from another (server/derived.py: a hybrid), what it is; else None.
    derived: dict | None = None
    #: The name listed, when not the directory's.
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.path.name or str(self.path)

    @property
    def created(self) -> str:
        return self.run.created

    @property
    def probes(self) -> dict:
        return self.run.probe_info

    def refresh(self) -> None:
        """Re-read the committed epochs (the run may still be training); files that came
        with new epochs are checked for links out of the run (:func:`links_out`).

        Raises
        ------
        HttpError
            500 if the run is refused (:attr:`refused`), so that no handler reads on.
        """
        with self.lock:
            before = list(self.run.epochs)
            self.run.refresh()
            if list(self.run.epochs) != before:
                self.check_links()
        if self.refused is not None:
            raise HttpError(500, self.refused)

    def check_links(self) -> None:
        """Refuse to serve this run from now on if a symbolic link in it leads outside it:
        :attr:`refused` says why, and :meth:`ServedRuns.get` answers every later request
        for the run with that message (500)."""
        if self.refused is None and (out := links_out(self.path)):
            self.refused = refusal(self.path, out)

    def live(self) -> bool:
        """True while the run is probably still being written (training, adversarial).

        That is: its commit record changed within :data:`LIVE_WINDOW_S`, or within
        :data:`LIVE_PLANNED_S` while the training config (``epochs``) plans more epochs
        than are committed. The page polls live runs for new epochs.
        """
        written = self.run.last_commit_time()
        if written is None or self.derived is not None:  # a derived run is written once, whole
            return False
        planned = self.run.config.get("epochs")
        epochs = self.run.epochs
        unfinished = isinstance(planned, int) and (not epochs or max(epochs) < planned)
        return self.clock() - written < (LIVE_PLANNED_S if unfinished else LIVE_WINDOW_S)

    def summary(self) -> dict:
        """``{"id", "name", "dataset", "epochs", "live"}``, as listed by ``/api/runs``."""
        return {"id": self.id, "name": self.name, "dataset": self.run.dataset,
                "epochs": list(self.run.epochs), "live": self.live()}

    # -- the fixed scale of each layer (viewmap.js)

    def _norm_quantile(self, layer: str, epoch: int, split: str) -> float:
        key = (layer, epoch, split)
        if key not in self._norms:
            if self.reduction(layer) is None:
                y, scale = self.run.activations_float16(layer, epoch, split)
            else:
                from grandtour.server.wire import to_float16

                y, scale, _ = to_float16(self.coordinates(layer, epoch, split))
            self._norms[key] = norm_quantile(y, scale)
        return self._norms[key]

    def _layer_extent(self, info: Any) -> float | None:
        epochs = list(self.run.epochs)
        if not epochs:
            return None
        r = max(self._norm_quantile(info.name, e, split)
                for e in (epochs[:1] if info.static else epochs) for split in self.run.splits)
        return r if r > 0 else None

    def _extents_known(self) -> dict[str, float]:
        epochs = list(self.run.epochs)
        out = {}
        for info in self.run.layers:
            use = epochs[:1] if info.static else epochs
            keys = [(info.name, e, s) for e in use for s in self.run.splits]
            if use and all(k in self._norms for k in keys):
                r = max(self._norms[k] for k in keys)
                if r > 0:
                    out[info.name] = r
        return out

    def extents(self) -> dict[str, float]:
        """Each layer's extent (the scale the page draws it at), by name.

        The layers are taken cheapest first (float16 bytes over their epochs and splits):
        those that fit :data:`EXTENT_SYNC_BYTES` together are computed now, so a small run
        gets all of them and a large one its narrow layers (the softmax the page opens on)
        in its first ``/meta``; a background thread goes on with the others in the same
        order, and each is given once known.
        """
        run = self.run
        n = sum(run.size(s) for s in run.splits)
        cost = {i.name: n * i.dim * 2 * (1 if i.static else len(run.epochs)) for i in run.layers}
        order = sorted(run.layers, key=lambda i: cost[i.name])
        now, spent = [], 0
        for info in order:
            if spent + cost[info.name] > EXTENT_SYNC_BYTES:
                break
            now.append(info)
            spent += cost[info.name]
        try:
            for info in now:
                self._layer_extent(info)
        except (GrandTourError, OSError, ValueError):
            return {}  # the page measures the layers itself (and reports what it cannot read)
        later = order[len(now):]
        if later and (self._extent_thread is None or not self._extent_thread.is_alive()):
            def work() -> None:
                try:
                    for info in later:
                        self._layer_extent(info)
                except (GrandTourError, OSError, ValueError):
                    pass
            self._extent_thread = threading.Thread(target=work, name=f"extents-{self.id}", daemon=True)
            self._extent_thread.start()
        return self._extents_known()

    # -- URL parts, checked against the run before the store is read

    def layer_info(self, layer: str) -> Any:
        """The :class:`~grandtour.store.LayerInfo` of ``layer``, or a 404 naming the layers."""
        for info in self.run.layers:
            if info.name == layer:
                return info
        raise not_found(f"no layer {layer!r} in run {self.id!r}; layers: {', '.join(self.run.layer_names)}")

    def check_split(self, split: str) -> str:
        if split not in self.run.splits:
            raise not_found(f"no split {split!r} in run {self.id!r}; splits: {', '.join(self.run.splits)}")
        return split

    def check_epoch(self, epoch: str) -> int:
        """The committed epoch named by the URL part ``epoch``: 400 if malformed, else 404."""
        if not _EPOCH.match(epoch) or int(epoch) > MAX_EPOCH:
            raise HttpError(400, f"malformed epoch {epoch[:40]!r}: give a whole number from 0 to {MAX_EPOCH}")
        e = int(epoch)
        if e not in self.run.epochs:
            self.refresh()  # it may have been committed since we last looked
            if e not in self.run.epochs:
                have = self.run.epochs
                listed = f"{have[0]}..{have[-1]}" if have else "none yet"
                raise not_found(f"no epoch {e} in run {self.id!r}; committed epochs: {listed}")
        return e

    def adversarial_record(self, name: str) -> Any:
        """The adversarial record ``name``, or a 404 naming the records."""
        self.refresh()
        names = self.run.adversarial_names()
        if name not in names:
            have = ", ".join(names) or "none (run `grandtour adversarial RUN`)"
            raise not_found(f"no adversarial record {name!r} in run {self.id!r}; records: {have}")
        return self.run.adversarial(name)

    # -- cache tags

    def epoch_tag(self, epoch: int) -> str:
        """A strong ETag for the data of ``epoch``; it changes only if the run is re-created.

        It is the store's epoch token (the run's identity and the epoch's commit, fixed once
        the epoch exists: epochs are append-only), already a short hash. "" if unknown.
        """
        return self.run.epoch_token(epoch)

    def activations_tag(self, info: Any, epoch: int, split: str, reduced: bool) -> str:
        """The ETag of one activation slice ("" if unknown)."""
        # A static layer is the same array at every epoch: one tag for all of them.
        base = f"{self.created}|static" if info.static else self.epoch_tag(epoch)
        if reduced:
            base += f"|{self.alignment()[1]}"  # a new `grandtour align --force`, new coordinates
        return _tag(base, info.name, split, n=24) if base else ""

    def images_tag(self, split: str) -> str:
        return "i-" + _tag(self.created, split)

    def adversarial_tag(self, name: str) -> str:
        """Identifies the current generation of adversarial record ``name``."""
        return self.run.adversarial_token(name)

    # -- sprite atlases, made on first request

    def atlas(self, key: tuple, make: Callable[[], np.ndarray | None], what: str) -> tuple[bytes, dict]:
        """The cached ``(png, layout)`` of ``key``; ``make()`` gives its thumbnails (or None)."""
        with self.atlas_lock:
            if key not in self.atlases:
                images = make()
                if images is None:
                    raise not_found(f"run {self.id!r} has no thumbnails for {what}")
                self.atlases[key] = sprite_atlas(images)
            return self.atlases[key]

    # -- alignment (grandtour.align): read-only, cached until `grandtour align` rewrites it

    def alignment(self) -> tuple[Any, tuple | None]:
        """``(grandtour.align, stamp)``; stamp None while the run is not aligned."""
        align, _ = align_module()
        if align is None:
            return None, None
        stamp = self.run.group_stamp(align.ALIGNMENT_GROUP) or None
        if stamp is None:
            return align, None
        with self.align_lock:
            if stamp != self._align_stamp:  # (re)aligned since we looked: drop what we cached
                self._aligner, self._reductions, self.alignment_error = None, {}, ""
                self._transitions.clear()
                self._align_stamp = stamp
        return align, stamp

    def _get_aligner(self, align: Any) -> Any:
        with self.align_lock:
            if self._aligner is None:
                self._aligner = align.Aligner(self.run)
            return self._aligner

    def reduction(self, layer: str) -> Any:
        """The stored fixed reduction of a wide ``layer`` (``align.Reduction``), or None."""
        align, stamp = self.alignment()
        if stamp is None:
            return None
        with self.align_lock:
            if layer not in self._reductions:
                try:
                    self._reductions[layer] = align.load_reduction(self.run, layer)
                except StoreError as err:
                    # A damaged alignment disables only what needs it: the layer is served
                    # in its own coordinates, and /meta says why (alignment_error).
                    self.alignment_error = str(err)
                    self._reductions[layer] = None
            return self._reductions[layer]

    def coordinates(self, layer: str, epoch: int, split: str) -> np.ndarray:
        """A reduced layer's coordinates ``(N, r)``, as stored by ``grandtour align``."""
        align, _ = self.alignment()
        return self._get_aligner(align).coordinates(layer, epoch, split)

    def transition(self, layer: str, epoch: int, split: str, source: str | None = None) -> Any:
        """``align.Transition`` into ``layer`` from ``source`` (None: its main input); the
        last few are kept (data, then basis)."""
        align, stamp = self.alignment()
        if align is None:
            raise HttpError(503, f"layer transitions are not available: {align_module()[1]}")
        if stamp is None:
            raise not_found(f"run {self.id!r} has not been aligned, so it has no layer transitions; "
                            f"run `grandtour align {self.path}`")
        key = (layer, epoch, split, source)
        with self.align_lock:
            if key in self._transitions:
                self._transitions.move_to_end(key)
                return self._transitions[key]
        try:
            t = align.load_transition(self.run, layer, epoch, split, source=source)
        except NotAlignedError:
            # An epoch `grandtour align` did not cover (e.g. committed after it, or
            # `train --no-align`): compute it now, in the run's stored reductions.
            t = self._get_aligner(align).transition(layer, epoch, split, source)
        with self.align_lock:
            self._transitions[key] = t
            while len(self._transitions) > TRANSITION_CACHE:
                self._transitions.popitem(last=False)
        return t


class ServedRuns:
    """The runs of one app, by id, in the order they were given."""

    def __init__(self, handles: Sequence[ServedRun]) -> None:
        self.handles = list(handles)
        self._by_id = {h.id: h for h in self.handles}

    def __iter__(self) -> Iterator[ServedRun]:
        return iter(self.handles)

    def get(self, run_id: str) -> ServedRun:
        """The run ``run_id``, or a 404 naming the runs."""
        handle = self._by_id.get(run_id)
        if handle is None:
            raise not_found(f"no run {run_id!r}; runs: {', '.join(self._by_id)}")
        if handle.refused is not None:
            raise HttpError(500, handle.refused)
        return handle


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_").lower()
    return slug[:64] or "run"


def run_ids(paths: Sequence[Path]) -> list[str]:
    """A URL-safe id per run: the slug of its directory name, ``-2``, ``-3``... if taken."""
    ids: list[str] = []
    for path in paths:
        base = _slug(path.name or path.resolve().name)
        rid, k = base, 2
        while rid in ids:
            rid, k = f"{base}-{k}", k + 1
        ids.append(rid)
    return ids


def links_out(root: Path, limit: int = 5) -> list[Path]:
    """Symbolic links under ``root`` whose targets lie outside it (or nowhere), at most ``limit``.

    The store follows links when it reads, so a link planted in a run (``labels/.../c/0``
    to ``~/.ssh/id_rsa``) would send the file it names to whoever can reach the server.
    Links that stay inside the run are harmless and allowed. The walk does not follow links.
    """
    from grandtour.store.location import is_remote

    if is_remote(root):
        return []  # object stores have no links
    base = Path(root).resolve()
    found: list[Path] = []
    for top, dirs, files in os.walk(base, followlinks=False):
        for name in dirs + files:
            path = Path(top) / name
            if not path.is_symlink():
                continue
            try:
                inside = path.resolve(strict=True).is_relative_to(base)
            except (OSError, RuntimeError):  # dangling or a loop
                inside = False
            if not inside:
                found.append(path)
                if len(found) >= limit:
                    return found
    return found


def refusal(root: Path, links: Sequence[Path]) -> str:
    """The message refusing run ``root`` for its ``links`` out of it."""
    named = ", ".join(str(p.relative_to(Path(root).resolve())) for p in links)
    return (f"the run {root} holds symbolic links that lead outside it ({named}): the server does not "
            "follow them; replace each link with a copy of the file it names, or remove it")


def open_runs(run_paths: Sequence[str | os.PathLike]) -> list[ServedRun]:
    """Open each run (a :class:`~grandtour.errors.StoreError` says what is wrong if one is
    not a run); each run may be given once, and none may link to files outside itself
    (:func:`links_out`)."""
    from grandtour.store import Run

    if not run_paths:
        raise GrandTourError("no run given: `grandtour serve RUN [RUN ...]` needs at least one run "
                             "directory (written by `grandtour train`, `demo` or `import`)")
    from grandtour.store.location import as_path

    paths = [as_path(p) for p in run_paths]  # a local path, or a URL (s3://...): read in place
    seen: dict[Path, Path] = {}
    for p in paths:
        real = p.resolve()
        if real in seen:
            raise GrandTourError(f"the run {p} is given twice (also as {seen[real]}); give each run once")
        seen[real] = p
        if real.is_dir() and (out := links_out(real)):
            raise GrandTourError(refusal(real, out))
    return [ServedRun(id=rid, path=path, run=Run.open(path))
            for path, rid in zip(paths, run_ids(paths), strict=True)]
