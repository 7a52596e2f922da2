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

Recording never changes training: it runs under ``torch.no_grad()`` with every module in
eval mode (so batch-norm running statistics are not updated and dropout draws nothing),
restores each module's own train/eval flag, and saves and restores the global torch
(CPU and CUDA), numpy and Python random states, so training with and without a Recorder
gives bit-identical weights.

Under ``torch.distributed`` (every rank builds a Recorder with the same probes and calls
``record`` together) each rank computes a contiguous shard of every probe set, rank 0
gathers the shards and alone writes the store, and ``record`` returns on every rank only
once the epoch is committed.

Layer names are the modules' qualified names from ``named_modules()`` (``conv1``,
``features.0``, ...). A module called more than once in one forward pass (a shared
``nn.ReLU``) is one layer per call, in call order: ``relu``, ``relu-2``, ``relu-3``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grandtour.errors import StoreError
from grandtour.store import LayerInfo, ProbeSet, RunWriter

__all__ = ["Recorder", "layer_infos", "select_probes"]

#: Modules that are the identity (or a mere reshape) in eval mode: left out by default,
#: since their output repeats the previous layer's.
EVAL_IDENTITIES: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)

# Module attributes worth keeping in LayerInfo.config: what the layer-transition code
# needs to rebuild a convolution or pooling as a linear map, and what a viewer shows.
_CONFIG_KEYS = (
    "in_channels",
    "out_channels",
    "in_features",
    "out_features",
    "num_features",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "output_padding",
    "padding_mode",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
    "output_size",
    "eps",
    "affine",
    "start_dim",
    "end_dim",
    "negative_slope",
    "dim",
    "p",
)


# ----------------------------------------------------------------------------- probes


def select_probes(labels: np.ndarray, size: int = 1000, seed: int = 0) -> np.ndarray:
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
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    size = int(size)
    if size < 0:
        raise ValueError(f"probe size must be >= 0, got {size}")
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


# ------------------------------------------------------------------------ layer tracing


@dataclass(frozen=True)
class _Site:
    """One recordable output: a module's ``call``-th call in a forward pass."""

    info: LayerInfo
    module: nn.Module | None  # None for the input and softmax pseudo-layers
    call: int = 0


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP / DataParallel / torch.compile wrappers.

    Hooks and names belong to the inner module, and calling a DDP wrapper's forward
    would start collectives of its own.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _output_tensor(output) -> torch.Tensor | None:
    # Leaf modules return a tensor; a few (nn.LSTM, nn.MultiheadAttention) return a
    # tuple whose first item is the output proper.
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _jsonable(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list) and all(
        isinstance(v, bool | int | float | str) or v is None for v in value
    ):
        return list(value)
    return _SKIP


_SKIP = object()


def _module_config(module: nn.Module) -> dict:
    config = {}
    for key in _CONFIG_KEYS:
        if hasattr(module, key):
            value = _jsonable(getattr(module, key))
            if value is not _SKIP:
                config[key] = value
    if "weight" in module._parameters:
        config["bias"] = module._parameters.get("bias") is not None
    return config


class _ModeGuard:
    """Eval mode, no grad, and untouched random states for the duration of a forward."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = (
            torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() and torch.cuda.is_initialized()
            else None
        )
        self.numpy_rng = np.random.get_state()
        self.python_rng = random.getstate()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.model.eval()
        return self

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        # Each module's own flag: a user may keep parts of the model frozen in eval mode.
        for module, training in self.modes:
            module.training = training
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)
        return False


def _trace(model: nn.Module, example: torch.Tensor) -> tuple[list[_Site], int]:
    """Every recordable output of ``model`` on ``example``, in execution order.

    Returns the sites of ``input``, of every call of every leaf module whose output is a
    tensor with the batch first, and of ``softmax``; and the number of classes.
    """
    batch = example.shape[0]
    names = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            # A model that is itself a single module has the empty name.
            names[module] = name or type(module).__name__.lower()
    for reserved in ("input", "softmax"):
        if reserved in names.values():
            raise ValueError(
                f"the model has a module named {reserved!r}, which clashes with the "
                "Recorder's pseudo-layer of that name: rename the module"
            )
    calls: dict[nn.Module, int] = {}
    sites: list[_Site] = []

    def hook(module, inputs, output):
        k = calls.get(module, 0)
        calls[module] = k + 1
        out = _output_tensor(output)
        if out is None or out.ndim == 0 or out.shape[0] != batch:
            return  # no per-example output to record
        name = names[module] if k == 0 else f"{names[module]}-{k + 1}"
        info = LayerInfo(
            name=name,
            kind=type(module).__name__.lower(),
            shape=tuple(int(s) for s in out.shape[1:]),
            module=repr(module),
            config=_module_config(module),
        )
        sites.append(_Site(info, module, k))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with _ModeGuard(model):
            output = _output_tensor(model(example))
    finally:
        for h in handles:
            h.remove()
    if output is None or output.ndim != 2 or output.shape[0] != batch:
        shape = None if output is None else tuple(output.shape)
        raise ValueError(
            "the Recorder needs a model whose output is a tensor of logits of shape "
            f"(batch, classes); this model returned {shape}"
        )
    n_classes = int(output.shape[1])
    first = LayerInfo(
        name="input", kind="input", shape=tuple(int(s) for s in example.shape[1:]), static=True
    )
    last = LayerInfo(name="softmax", kind="softmax", shape=(n_classes,), config={"dim": 1})
    return [_Site(first, None), *sites, _Site(last, None)], n_classes


def _choose(sites: list[_Site], layers: Sequence[str] | str | None) -> list[_Site]:
    if layers is None:
        return [s for s in sites if not isinstance(s.module, EVAL_IDENTITIES)]
    if isinstance(layers, str):
        if layers == "all":
            return list(sites)
        layers = [layers]
    known = {s.info.name for s in sites}
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(
            f"no recordable layer named {', '.join(map(repr, unknown))}; "
            f"the model's layers are: {', '.join(s.info.name for s in sites)}"
        )
    wanted = set(layers)
    return [s for s in sites if s.info.name in wanted]  # network order, not the caller's


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def layer_infos(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    example: torch.Tensor | None = None,
    layers: Sequence[str] | str | None = None,
) -> list[LayerInfo]:
    """Describe the layers a Recorder would record, from one forward pass.

    Parameters
    ----------
    model : nn.Module
        Maps a batch to logits of shape (batch, classes).
    input_shape : sequence of int, optional
        Per-example input shape, e.g. ``(1, 28, 28)``; a zero float32 batch of two is
        run through the model (on its device). Give ``example`` instead for inputs that
        are not float (token ids, ...).
    example : Tensor of shape (B, ...), optional
        A batch of model-ready inputs.
    layers : sequence of str, "all" or None
        None: ``input``, every leaf module except eval-time identities (Flatten,
        Identity, Dropout*), and ``softmax``. ``"all"``: every leaf module too. A list of
        names: those layers, in network order.

    Returns
    -------
    list of LayerInfo
        In network (execution) order; ``shape`` is the per-example output shape,
        ``kind`` the module's class name lowercased, ``module`` its repr and ``config``
        its hyperparameters (kernel_size, stride, padding, in/out features, ...).
    """
    model = _unwrap(model)
    if example is None:
        if input_shape is None:
            raise ValueError("give input_shape or example")
        example = torch.zeros((2, *input_shape), device=_model_device(model))
    sites, _ = _trace(model, example)
    return [s.info for s in _choose(sites, layers)]


# ---------------------------------------------------------------------------- Recorder


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
        An open :class:`~grandtour.store.RunWriter`, or the run directory to create
        (or to append to, with ``resume=True``). Under torch.distributed only rank 0
        uses it.
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
    batch_size : int, default 512
        Probes per forward pass.
    device : torch.device or str, optional
        Where probe batches go; default the model's device. The model is never moved.
    overwrite, resume : bool
        Replace an existing run directory; or append to it (a missing one is created).

    Attributes
    ----------
    layers : list of LayerInfo
        The recorded layers in network order.
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
        batch_size: int = 512,
        device: torch.device | str | None = None,
        overwrite: bool = False,
        resume: bool = False,
    ):
        self.model = _unwrap(model)
        if not probes:
            raise ValueError("probes are required: {split: (inputs (N, ...), labels (N,))}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = torch.device(device) if device is not None else _model_device(self.model)
        self._inputs: dict[str, torch.Tensor] = {}
        self._labels: dict[str, np.ndarray] = {}
        for split, (inputs, labels) in probes.items():
            x = torch.from_numpy(np.ascontiguousarray(inputs)) if isinstance(
                inputs, np.ndarray
            ) else inputs.detach()
            y = np.asarray(labels)
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"probes[{split!r}]: {x.shape[0]} inputs but labels of shape {y.shape}"
                )
            if y.size and not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"probes[{split!r}]: labels must be integers, got {y.dtype}")
            self._inputs[split] = x
            self._labels[split] = y.astype(np.int64)
        shapes = {tuple(x.shape[1:]) for x in self._inputs.values()}
        if len(shapes) != 1:
            raise ValueError(f"every probe split must have the same input shape, got {shapes}")
        self.splits = list(self._inputs)

        nonempty = [x for x in self._inputs.values() if len(x)]
        if not nonempty:
            raise ValueError("every probe set is empty")
        first = nonempty[0]
        # Two examples, so a module whose output does not keep the batch first is caught.
        sites, self.n_classes = _trace(self.model, first[:2].to(self.device, copy=True))
        self._sites = _choose(sites, layers)
        self.layers = [s.info for s in self._sites]

        if class_names is None:
            class_names = [str(c) for c in range(self.n_classes)]
        if len(class_names) != self.n_classes:
            raise ValueError(
                f"{len(class_names)} class names for a model with {self.n_classes} outputs"
            )
        self.class_names = list(class_names)
        for split, y in self._labels.items():
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(
                    f"probes[{split!r}]: labels must lie in [0, {self.n_classes}), "
                    f"got {y.min()}..{y.max()}"
                )

        self._rank, self._world = _dist()
        self.writer: RunWriter | None = None
        error = None
        if self._rank == 0:
            try:
                self.writer = self._open_writer(
                    run, dataset, images, probe_indices, config, overwrite, resume
                )
            except Exception as err:  # re-raised below, after telling the other ranks
                error = err
        # Whether the static input is in the store already (resume): rank 0 knows.
        static_done = self.writer is not None and bool(self.writer.epochs)
        status = self._broadcast([None if error is None else repr(error), static_done])
        if error is not None:
            raise error
        if status[0] is not None:
            raise RuntimeError(f"rank 0 could not open the run: {status[0]}")
        self._static_done = bool(status[1])

    # -- setup

    def _open_writer(self, run, dataset, images, probe_indices, config, overwrite, resume):
        if isinstance(run, RunWriter):
            return self._check_writer(run)
        path = Path(run)
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

    def _gather(self, local: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray | None:
        """Rank 0 gets the rows of every rank, in order; the other ranks get None."""
        rows = max(hi - lo for lo, hi in bounds)
        device = self._comm_device()
        # Collectives need the same shape on every rank: pad the shorter shards.
        padded = torch.zeros((rows, *local.shape[1:]), dtype=torch.float32, device=device)
        padded[: local.shape[0]] = torch.from_numpy(local).to(device)
        if self._rank != 0:
            torch.distributed.gather(padded, None, dst=0)
            return None
        parts = [torch.empty_like(padded) for _ in range(self._world)]
        torch.distributed.gather(padded, parts, dst=0)
        full = np.empty((bounds[-1][1], *local.shape[1:]), dtype=np.float32)
        for (lo, hi), part in zip(bounds, parts):
            full[lo:hi] = part[: hi - lo].cpu().numpy()
        return full

    # -- recording

    def _forward_split(self, split: str, lo: int, hi: int):
        """Rows [lo, hi) of one probe set: activations of the hooked layers and logits."""
        inputs = self._inputs[split]
        n = hi - lo
        acts = {
            s.info.name: np.empty((n, s.info.dim), dtype=np.float32)
            for s in self._sites
            if s.module is not None
        }
        logits = np.empty((n, self.n_classes), dtype=np.float32)
        input_site = next((s for s in self._sites if s.info.name == "input"), None)
        # The input is static: once stored, it is neither copied nor gathered again.
        want_input = input_site is not None and not self._static_done
        if want_input:
            acts["input"] = np.empty((n, input_site.info.dim), dtype=np.float32)
        by_call = {(s.module, s.call): s.info.name for s in self._sites if s.module is not None}
        calls: dict[nn.Module, int] = {}
        window = [0, 0]

        def hook(module, inputs_, output):
            k = calls.get(module, 0)
            calls[module] = k + 1
            name = by_call.get((module, k))
            if name is not None:
                a, b = window
                # Copy now: a later in-place module (ReLU(inplace=True)) would overwrite it.
                acts[name][a:b] = _output_tensor(output).detach().reshape(b - a, -1).float().cpu()

        handles = [m.register_forward_hook(hook) for m in {m for m, _ in by_call}]
        try:
            for start in range(lo, hi, self.batch_size):
                stop = min(start + self.batch_size, hi)
                window[:] = [start - lo, stop - lo]
                calls.clear()
                # A copy, so an in-place first module cannot alter the caller's probes.
                x = inputs[start:stop].to(self.device, copy=True)
                if want_input:
                    flat = x.reshape(stop - start, -1).float().cpu()
                    acts["input"][start - lo : stop - lo] = flat
                out = _output_tensor(self.model(x))
                logits[start - lo : stop - lo] = out.detach().float().cpu()
        finally:
            for h in handles:
                h.remove()
        return acts, logits

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
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        epoch = int(epoch)
        activations: dict[str, dict[str, np.ndarray]] = {}
        logits_of: dict[str, np.ndarray] = {}
        with _ModeGuard(self.model):
            for split in self.splits:
                n = len(self._inputs[split])
                bounds = self._shard(n)
                acts, logits = self._forward_split(split, *bounds[self._rank])
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
            except Exception as err:  # re-raised below, after releasing the other ranks
                error = err
        # Rank 0 sends only after the commit: every rank returns with the epoch on disk.
        status = self._broadcast([None if error is None else repr(error), metrics])
        if error is not None:
            raise error
        if status[0] is not None:
            raise RuntimeError(f"rank 0 could not write epoch {epoch}: {status[0]}")
        self._static_done = True
        return status[1]

    def _write(self, epoch, activations, logits_of) -> dict:
        want_softmax = any(s.info.name == "softmax" for s in self._sites)
        predictions, metrics = {}, {}
        for split, logits in logits_of.items():
            labels = self._labels[split]
            predictions[split] = logits.argmax(axis=1).astype(np.int64)
            metrics[split] = _metrics(logits, labels, self.n_classes)
            if want_softmax:
                activations[split]["softmax"] = torch.softmax(
                    torch.from_numpy(logits), dim=1
                ).numpy()
            # Network order, as the store lists its layers.
            activations[split] = {
                s.info.name: activations[split][s.info.name]
                for s in self._sites
                if s.info.name in activations[split]
            }
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
        for site in self._sites:
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
