"""Recorder: every layer's output on fixed probe sets, at every epoch, into a run.

A :class:`Recorder` works with any ``torch.nn.Module`` that maps a batch to logits
``(N, C)``. It hooks the chosen modules (by default every leaf module that is not an
eval-time identity), runs the probe sets through the model in eval mode, and writes to
the run store, per epoch:

- ``activations[split][layer]``: each layer's output flattened to ``(N, dim)``,
  plus the ``input`` (written once: it never changes) and ``softmax`` (the softmax of
  the model's output, a pseudo-layer);
- ``predictions[split]``: the argmax of the logits, ``(N,)``;
- ``metrics[split]``: cross-entropy of the logits and accuracy, overall and per class;
- ``params[layer]``: the recorded modules' own parameters and floating-point buffers
  (``weight``, ``bias``, ``running_mean``, ...), as float32.

Use it inside your own training loop::

    probes = {"train": (x_train[idx], y_train[idx]), "test": (x_test[jdx], y_test[jdx])}
    recorder = Recorder(model, "runs/mine", probes=probes, class_names=names)
    recorder.record(0)                      # epoch 0: the untrained network
    for epoch in range(1, epochs + 1):
        train_one_epoch(model, ...)
        recorder.record(epoch)              # commits the epoch; training is unaffected

The layers and their outputs come from :class:`grandtour.capture.Capture`, the capture
that the adversarial steps use too. Recording never changes training: capture runs under
``torch.no_grad()`` with every module in eval mode (so batch-norm running statistics are
not updated and dropout draws nothing), restores each module's own train/eval flag, and
saves and restores the global torch (CPU and CUDA), numpy and Python random states, so
training with and without a Recorder gives bit-identical weights.

Under ``torch.distributed`` (every rank builds a Recorder with the same probes and calls
``record`` together) each rank computes a contiguous shard of every probe set, each
(split, layer) array is gathered to one rank (round robin) which writes it straight into
the shared store, rank 0 (the writer lock's holder) commits the epoch after every rank has
reported, and ``record`` returns on every rank only once the epoch is committed
(``docs/distributed.md``). The run may be a directory or an fsspec URL (``s3://...``).

Layer names are the modules' qualified names from ``named_modules()`` (``conv1``,
``features.0``, ...). A module called more than once in one forward pass (a shared
``nn.ReLU``) is one layer per call, in call order: ``relu``, ``relu-2``, ``relu-3``
(see :mod:`grandtour.capture`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grandtour.capture import Capture, layer_infos
from grandtour.defaults import FORWARD_BATCH, PROBE_SIZE, SEED
from grandtour.errors import GrandTourError, StoreError
from grandtour.store import ProbeSet, RunWriter
from grandtour.store.location import as_path
from grandtour.store.writer import ShardWriter

__all__ = ["RecordError", "Recorder", "layer_infos", "select_probes"]


class RecordError(GrandTourError, ValueError):
    """Probes, labels, class names or an epoch number the Recorder cannot use."""


# ----------------------------------------------------------------------------- probes


def select_probes(labels: np.ndarray, size: int = PROBE_SIZE, seed: int = SEED) -> np.ndarray:
    """Choose a class-balanced probe set.

    Every class gets ``size // n_classes`` examples (one more for some, so the total is
    ``size``); a class with fewer examples gives all it has, and the shortfall is spread
    evenly over the classes that have more (smallest classes first, ties by label). The
    examples within a class are a seeded random choice; no global random state is used.

    Parameters
    ----------
    labels : ndarray of shape (N,), int
        Class of each example of the split.
    size : int, default 1000
        Number of probes. ``size >= N`` selects every example.
    seed : int, default 0
        Seed of the choice within each class.

    Returns
    -------
    ndarray of shape (min(size, N),), int64
        Sorted indices into ``labels``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise RecordError(f"labels must be one-dimensional, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise RecordError(f"labels must be integers, got dtype {labels.dtype}")
    size = int(size)
    if size < 0:
        raise RecordError(f"probe size must be >= 0, got {size}")
    n = labels.shape[0]
    if size >= n:
        return np.arange(n, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    rng = np.random.default_rng(seed)
    # Draw every class's order first, so the choice within a class does not depend on
    # how the quotas came out.
    order = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = {}
    remaining = size
    # Water-filling: the smallest classes first take min(count, fair share); what they
    # cannot give is shared among the larger ones.
    by_count = sorted(zip(counts.tolist(), classes.tolist()))
    for i, (count, c) in enumerate(by_count):
        share = remaining // (len(by_count) - i)
        quota[c] = min(count, share)
        remaining -= quota[c]
    chosen = np.concatenate([order[c][: quota[c]] for c in classes.tolist()])
    return np.sort(chosen).astype(np.int64)


# ---------------------------------------------------------------------------- Recorder


def _check_probes(probes) -> Mapping:
    """``probes`` as ``{split: (inputs, labels)}``; a message with the fix for the usual slips."""
    example = "probes={'test': (x_test, y_test)}"
    if probes is None or (isinstance(probes, Mapping) and not probes):
        raise RecordError(f"probes are required: {{split: (inputs (N, ...), labels (N,))}}, e.g. {example}")
    if isinstance(probes, (np.ndarray, torch.Tensor)):
        raise RecordError(f"probes is a bare array of shape {tuple(probes.shape)}: give each split's "
                          f"inputs with their labels, {example}")
    if isinstance(probes, tuple) and len(probes) == 2 and all(
            isinstance(p, (np.ndarray, torch.Tensor)) for p in probes):
        raise RecordError(f"probes is an (inputs, labels) pair without a split name: {example}")
    if not isinstance(probes, Mapping):
        raise RecordError(f"probes must be a mapping of split name -> (inputs, labels), got a "
                          f"{type(probes).__name__}: {example}")
    for split, value in probes.items():
        if isinstance(value, (np.ndarray, torch.Tensor)):
            raise RecordError(f"probes[{split!r}] is a bare array of shape {tuple(value.shape)}: give "
                              f"(inputs, labels), e.g. probes={{{split!r}: (x, y)}}")
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise RecordError(f"probes[{split!r}] must be a pair (inputs, labels), got "
                              f"{type(value).__name__}" + (f" of length {len(value)}" if
                                                          isinstance(value, (tuple, list)) else ""))
    return probes


def _check_dtype(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> None:
    """Float inputs of another precision than the model's weights: say how to convert them."""
    params = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not params:
        return
    want = params[0].dtype
    for split, x in inputs.items():
        if x.is_floating_point() and x.dtype != want:
            numpy = {torch.float32: "np.float32", torch.float16: "np.float16",
                     torch.bfloat16: "torch.bfloat16", torch.float64: "np.float64"}.get(want, str(want))
            raise RecordError(f"probes[{split!r}] are {str(x.dtype).removeprefix('torch.')}, but the "
                              f"model's weights are {str(want).removeprefix('torch.')}: convert them, "
                              f"e.g. x.astype({numpy}) for an ndarray or x.to({want}) for a tensor")


def _skipped_summary(skipped: list[tuple[str, str]]) -> str:
    """One line per reason, naming what it left out."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped:
        by_reason.setdefault(reason, []).append(name)
    lines = [f"grandtour: {len(skipped)} output(s) of the model are not recorded (Recorder.skipped):"]
    for reason, names in by_reason.items():
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        lines.append(f"  {shown}: {reason}")
    return "\n".join(lines)



def _dist():
    """(rank, world size), or (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _class_means(values: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.bincount(labels, weights=values, minlength=n_classes)
    # NaN for a class without probes: "no data", not zero.
    return np.divide(sums, counts, out=np.full(n_classes, np.nan), where=counts > 0)


def _metrics(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    per_example = F.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), reduction="none"
    ).numpy().astype(np.float64)
    correct = (logits.argmax(axis=1) == labels).astype(np.float64)
    return {
        "loss": float(per_example.mean()) if labels.size else float("nan"),
        "accuracy": float(correct.mean()) if labels.size else float("nan"),
        "class_loss": _class_means(per_example, labels, n_classes),
        "class_accuracy": _class_means(correct, labels, n_classes),
    }


class Recorder:
    """Record every layer's output on fixed probe sets into a run, once per epoch.

    Parameters
    ----------
    model : nn.Module
        Maps a batch of model-ready inputs to logits ``(batch, classes)``. DDP,
        DataParallel and torch.compile wrappers are looked through.
    run : RunWriter, str or Path
        An open :class:`~grandtour.store.RunWriter`, or the run directory (or fsspec URL,
        ``s3://bucket/runs/x``) to create (or to append to, with ``resume=True``). Under
        torch.distributed rank 0 opens and commits it; the other ranks write their shares
        into the same run (give them its path or URL).
    probes : mapping of split -> (inputs, labels)
        ``inputs``: Tensor or ndarray of shape (N, ...), model-ready (normalised);
        ``labels``: ndarray of shape (N,), int in [0, classes). The same on every rank.
    layers : sequence of str, optional
        Layer names to record (see :func:`layer_infos`); default: ``input``, every
        leaf module except eval-time identities, and ``softmax``.
    class_names : sequence of str, optional
        One per output of the model; default ``"0"``, ``"1"``, ...
    dataset : str
        Dataset name stored in the run.
    images : mapping of split -> ndarray of shape (N, C, H, W), uint8, optional
        Thumbnails of the probes, for the viewer.
    probe_indices : mapping of split -> ndarray of shape (N,), optional
        Index of each probe in its dataset split.
    config : mapping, optional
        Stored with the run (training hyperparameters, seed, ...).
    batch_size : int, default :data:`grandtour.defaults.FORWARD_BATCH`
        Probes per forward pass.
    device : torch.device or str, optional
        Where probe batches go; default the model's device. The model is never moved.
    overwrite, resume : bool
        Replace an existing run directory; or append to it (a missing one is created).
    output : callable, optional
        Maps the model's output to its logits ``(batch, classes)``: needed when the
        model returns a tuple, list or dict, e.g. ``output=lambda out: out["logits"]``.

    Attributes
    ----------
    layers : list of LayerInfo
        The recorded layers in network order, each with its ``inputs`` (the graph).
    skipped : list of (str, str)
        Every output of the model that is not recorded, and why (printed once, to
        stderr, when the Recorder is built).
    writer : RunWriter or None
        The store being written (None on ranks other than 0).
    """

    def __init__(
        self,
        model: nn.Module,
        run: RunWriter | str | Path,
        *,
        probes: Mapping[str, tuple[torch.Tensor | np.ndarray, np.ndarray]] | None = None,
        layers: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        dataset: str = "custom",
        images: Mapping[str, np.ndarray] | None = None,
        probe_indices: Mapping[str, np.ndarray] | None = None,
        config: Mapping | None = None,
        batch_size: int = FORWARD_BATCH,
        device: torch.device | str | None = None,
        overwrite: bool = False,
        resume: bool = False,
        output: Callable | None = None,
    ):
        probes = _check_probes(probes)
        if int(batch_size) < 1:
            raise RecordError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self._inputs: dict[str, torch.Tensor] = {}
        self._labels: dict[str, np.ndarray] = {}
        for split, (inputs, labels) in probes.items():
            if not isinstance(inputs, (np.ndarray, torch.Tensor)):
                raise RecordError(f"probes[{split!r}]: inputs must be a Tensor or an ndarray, got "
                                  f"{type(inputs).__name__}")
            x = torch.from_numpy(np.ascontiguousarray(inputs)) if isinstance(
                inputs, np.ndarray
            ) else inputs.detach()
            y = np.asarray(labels)
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise RecordError(
                    f"probes[{split!r}]: {x.shape[0]} inputs but labels of shape {y.shape}"
                )
            if y.size and not np.issubdtype(y.dtype, np.integer):
                raise RecordError(f"probes[{split!r}]: labels must be integers, got {y.dtype}")
            self._inputs[split] = x
            self._labels[split] = y.astype(np.int64)
        shapes = {tuple(x.shape[1:]) for x in self._inputs.values()}
        if len(shapes) != 1:
            raise RecordError(f"every probe split must have the same input shape, got {shapes}")
        self.splits = list(self._inputs)

        nonempty = [x for x in self._inputs.values() if len(x)]
        if not nonempty:
            raise RecordError("every probe set is empty")
        _check_dtype(model, self._inputs)
        self._capture = Capture(model, nonempty[0], layers, device=device, output=output)
        self.model, self.device = self._capture.model, self._capture.device
        self.n_classes = self._capture.n_classes
        self.layers = self._capture.infos
        self.skipped = list(self._capture.skipped)

        if class_names is None:
            class_names = [str(c) for c in range(self.n_classes)]
        if len(class_names) != self.n_classes:
            raise RecordError(
                f"{len(class_names)} class names for a model with {self.n_classes} outputs"
            )
        self.class_names = list(class_names)
        for split, y in self._labels.items():
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise RecordError(
                    f"probes[{split!r}]: labels must lie in [0, {self.n_classes}), "
                    f"got {y.min()}..{y.max()}"
                )

        self._rank, self._world = _dist()
        self.writer: RunWriter | None = None
        self._shards: ShardWriter | None = None  # under torch.distributed: this rank's writes
        self._run_path = run.path if isinstance(run, RunWriter) else str(run)
        error = None
        if self._rank == 0:
            try:
                self.writer = self._open_writer(
                    run, dataset, images, probe_indices, config, overwrite, resume
                )
            except Exception as err:  # noqa: BLE001 - re-raised below, after telling the other ranks
                error = err
        # Whether the static input is in the store already (resume): rank 0 knows.
        static_done = self.writer is not None and bool(self.writer.epochs)
        status = self._broadcast([None if error is None else repr(error), static_done])
        if error is not None:
            raise error
        if status[0] is not None:
            raise RuntimeError(f"rank 0 could not open the run: {status[0]}")
        self._static_done = bool(status[1])
        if self._rank == 0 and self.skipped:
            print(_skipped_summary(self.skipped), file=sys.stderr)

    # -- setup

    def _open_writer(self, run, dataset, images, probe_indices, config, overwrite, resume):
        if isinstance(run, RunWriter):
            return self._check_writer(run)
        path = as_path(run)
        if resume and path.exists():
            return self._check_writer(RunWriter.open(path))
        probe_sets = {
            split: ProbeSet(
                labels=self._labels[split],
                indices=None if probe_indices is None else probe_indices.get(split),
                images=None if images is None else images.get(split),
            )
            for split in self.splits
        }
        return RunWriter.create(
            path,
            dataset=dataset,
            class_names=self.class_names,
            layers=self.layers,
            probes=probe_sets,
            config=dict(config or {}),
            overwrite=overwrite,
        )

    def _check_writer(self, writer: RunWriter) -> RunWriter:
        """An existing run must have been recorded from the same layers, splits and classes."""
        ours = [(i.name, tuple(i.shape)) for i in self.layers]
        theirs = [(i.name, tuple(i.shape)) for i in writer.layers]
        problems = []
        if ours != theirs:
            problems.append(
                f"it records layers {', '.join(f'{n}{s}' for n, s in theirs)}, but this model "
                f"and layer choice give {', '.join(f'{n}{s}' for n, s in ours)}"
            )
        if sorted(writer.splits) != sorted(self.splits):
            problems.append(f"its probe splits are {writer.splits}, not {self.splits}")
        if len(writer.class_names) != self.n_classes:
            problems.append(
                f"it has {len(writer.class_names)} classes, the model {self.n_classes} outputs"
            )
        if problems:
            raise StoreError(
                f"cannot append to the run at {writer.path}: {'; '.join(problems)}. "
                "Record into a new run directory, or pass the same model and layers."
            )
        return writer

    # -- distributed plumbing

    def _comm_device(self) -> torch.device:
        # NCCL moves CUDA tensors only; gloo (and mpi) CPU tensors.
        if torch.distributed.get_backend() == "nccl":
            return self.device
        return torch.device("cpu")

    def _broadcast(self, objects: list) -> list:
        if self._world == 1:
            return objects
        torch.distributed.broadcast_object_list(objects, src=0, device=self._comm_device())
        return objects

    def _shard(self, n: int) -> list[tuple[int, int]]:
        """Contiguous [lo, hi) rows of each rank; the first n % world ranks get one more."""
        base, extra = divmod(n, self._world)
        bounds, lo = [], 0
        for r in range(self._world):
            hi = lo + base + (r < extra)
            bounds.append((lo, hi))
            lo = hi
        return bounds

    def _gather(self, local: np.ndarray, bounds: list[tuple[int, int]], dst: int = 0) -> np.ndarray | None:
        """Rank ``dst`` gets the rows of every rank, in order; the other ranks get None."""
        rows = max(hi - lo for lo, hi in bounds)
        device = self._comm_device()
        # Collectives need the same shape on every rank: pad the shorter shards.
        padded = torch.zeros((rows, *local.shape[1:]), dtype=torch.float32, device=device)
        padded[: local.shape[0]] = torch.from_numpy(local).to(device)
        if self._rank != dst:
            torch.distributed.gather(padded, None, dst=dst)
            return None
        parts = [torch.empty_like(padded) for _ in range(self._world)]
        torch.distributed.gather(padded, parts, dst=dst)
        full = np.empty((bounds[-1][1], *local.shape[1:]), dtype=np.float32)
        for (lo, hi), part in zip(bounds, parts):
            full[lo:hi] = part[: hi - lo].cpu().numpy()
        return full

    # -- recording

    def record(self, epoch: int) -> dict[str, dict]:
        """Record and commit one epoch.

        Call ``record(0)`` before training (the untrained network), then once after
        each epoch. Every rank must call it under torch.distributed.

        Parameters
        ----------
        epoch : int
            The epoch number, >= 0.

        Returns
        -------
        dict
            ``{split: {"loss", "accuracy", "class_loss" (C,), "class_accuracy" (C,)}}``,
            on every rank.
        """
        if int(epoch) != epoch or epoch < 0:
            raise RecordError(f"epoch must be an integer >= 0, got {epoch!r}")
        epoch = int(epoch)
        if self._world > 1:
            return self._record_sharded(epoch)
        activations: dict[str, dict[str, np.ndarray]] = {}
        logits_of: dict[str, np.ndarray] = {}
        # The input is static: once stored, it is neither computed nor gathered again.
        layers = [n for n in self._capture.names if n != "input" or not self._static_done]
        for split in self.splits:
            bounds = self._shard(len(self._inputs[split]))
            lo, hi = bounds[self._rank]
            acts, logits = self._capture.run(
                self._inputs[split][lo:hi], self.batch_size, layers=layers
            )
            if self._world > 1:
                # One layer at a time, so rank 0 holds at most one extra copy of a layer.
                for name in list(acts):
                    acts[name] = self._gather(acts.pop(name), bounds)
                logits = self._gather(logits, bounds)
            if self._rank == 0:
                activations[split] = acts
                logits_of[split] = logits

        error, metrics = None, None
        if self._rank == 0:
            try:
                metrics = self._write(epoch, activations, logits_of)
            except Exception as err:  # noqa: BLE001 - re-raised below, after releasing the other ranks
                error = err
        return self._finish_epoch(epoch, error, metrics)

    def _record_sharded(self, epoch: int) -> dict[str, dict]:
        """:meth:`record` under torch.distributed: every rank writes its share of the store.

        Rank 0 reserves the epoch's slot (it holds the writer lock), every rank computes
        its contiguous shard of every probe set, and each (split, layer) array is gathered
        to one owning rank (round robin), which encodes and writes it straight into the
        shared store (:class:`~grandtour.store.ShardWriter`): no two ranks write one chunk,
        and the float16 scale of an array is chosen from all of its rows, as in one process.
        After the gather of every rank's result (a barrier), rank 0 writes predictions,
        metrics and parameters and commits. A rank that fails or dies before then leaves
        the epoch uncommitted: the run reads as before and resumes (the slot is reused).
        """
        import torch.distributed as dist

        layers = [n for n in self._capture.names if n != "input" or not self._static_done]
        error, slot, params = None, None, None
        if self._rank == 0:
            try:
                params = self._params()
                slot = self.writer.reserve_epoch(epoch, params=params)
            except Exception as err:  # noqa: BLE001 - re-raised below, after telling the other ranks
                error = err
        status = self._broadcast([None if error is None else repr(error), slot])
        if error is not None:
            raise error
        if status[0] is not None:
            raise RuntimeError(f"rank 0 could not write epoch {epoch}: {status[0]}")
        slot = status[1]
        if self._shards is None:
            self._shards = ShardWriter(self.writer.path if self.writer is not None else self._run_path)
        written, failed, logits_of, unit = [], None, {}, 0
        for split in self.splits:
            bounds = self._shard(len(self._inputs[split]))
            lo, hi = bounds[self._rank]
            acts, logits = self._capture.run(self._inputs[split][lo:hi], self.batch_size, layers=layers)
            for name in list(acts):
                owner = unit % self._world
                unit += 1
                full = self._gather(acts.pop(name), bounds, dst=owner)
                if full is not None and failed is None:
                    try:
                        written.append(self._shards.write(slot, split, name, full))
                    except Exception as err:  # noqa: BLE001 - reported to rank 0, which does not commit
                        failed = f"rank {self._rank}: {err!r}"
            full = self._gather(logits, bounds, dst=0)
            if full is not None:
                logits_of[split] = full
        results = [None] * self._world if self._rank == 0 else None
        dist.gather_object((written, failed), results, dst=0)

        error, metrics = None, None
        if self._rank == 0:
            try:
                problems = [f for _, f in results if f]
                if problems:
                    raise StoreError(f"epoch {epoch} was not committed: {'; '.join(problems)}")
                predictions, metrics = {}, {}
                for split, logits in logits_of.items():
                    predictions[split] = logits.argmax(axis=1).astype(np.int64)
                    metrics[split] = _metrics(logits, self._labels[split], self.n_classes)
                self.writer.commit_epoch(epoch, slot, [w for part, _ in results for w in part],
                                         predictions=predictions, metrics=metrics, params=params)
            except Exception as err:  # noqa: BLE001 - re-raised below, after releasing the other ranks
                error = err
        return self._finish_epoch(epoch, error, metrics)

    def _finish_epoch(self, epoch: int, error: BaseException | None, metrics):
        """Rank 0's outcome to every rank, sent only after the commit, so that every rank returns
        with the epoch on disk, or raises with rank 0's error."""
        status = self._broadcast([None if error is None else repr(error), metrics])
        if error is not None:
            raise error
        if status[0] is not None:
            raise RuntimeError(f"rank 0 could not write epoch {epoch}: {status[0]}")
        self._static_done = True
        return status[1]

    def _write(self, epoch, activations, logits_of) -> dict:
        predictions, metrics = {}, {}
        for split, logits in logits_of.items():
            labels = self._labels[split]
            predictions[split] = logits.argmax(axis=1).astype(np.int64)
            metrics[split] = _metrics(logits, labels, self.n_classes)
        self.writer.write_epoch(
            epoch,
            activations=activations,
            predictions=predictions,
            metrics=metrics,
            params=self._params(),
        )
        return metrics

    def _params(self) -> dict[str, dict[str, np.ndarray]]:
        params = {}
        for site in self._capture.sites:
            if site.module is None or site.call != 0:
                continue
            state = {
                # A copy: on the CPU .numpy() would share memory with the live weights.
                name: tensor.detach().to("cpu", torch.float32, copy=True).numpy()
                for name, tensor in (
                    *site.module.named_parameters(recurse=False),
                    *site.module.named_buffers(recurse=False),
                )
                # Integer buffers (num_batches_tracked) are counters, not state to draw.
                if tensor is not None and tensor.is_floating_point()
            }
            if state:
                params[site.info.name] = state
        return params
