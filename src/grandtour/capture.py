"""Capture: which layers of a model can be recorded, and their outputs on any inputs.

The one implementation of layer-activation capture. The :class:`~grandtour.record.Recorder`
(every epoch's probes, under ``torch.distributed`` each rank its shard) and
:mod:`grandtour.adversarial` (every FGSM step) both call it, so an example's activations
mean the same thing in both, layer by layer::

    capture = Capture(model, x[:2])             # traces one forward pass
    [info.name for info in capture.infos]       # ['input', 'conv1', ..., 'softmax']
    acts, logits = capture.run(x)               # {name: (N, dim) float32}, (N, C) float32

What a layer is
---------------
A *site* is one node of the model's dataflow graph (:mod:`grandtour.graph`, traced with
``torch.fx``): a module call or a functional op (``F.relu``, ``x + f(x)``, ``torch.cat``)
whose value has one axis per example, wherever that axis is (a ``(T, B, D)`` sequence
is recorded as each example's ``(T, D)``); plus two pseudo-layers: ``input`` (the model's
input, written once by the Recorder: it never changes) and ``softmax`` (the softmax of
the logits). Module layers are named by their qualified names from ``named_modules()``
(``conv1``, ``layer1.0.conv1``), functional ops by their module scope and op
(``layer1.0.add``, ``cat``, ``relu_1``). Each layer's ``inputs`` are the recorded layers
it reads. A model fx cannot trace is recorded by module hooks, as a chain (said so in
:attr:`Capture.skipped` and by a :class:`CaptureWarning`).

A module called more than once in one forward pass (the same ``nn.ReLU`` after two
layers) is **one layer per call**, in call order: ``relu``, ``relu-2``, ``relu-3``. Each
call's output is a different point cloud, so each is its own layer; the calls are counted
afresh in every forward pass. (This is what the Recorder has always done;
``adversarial.layer_activations`` used to keep only the last call under the module's
name, which disagreed with the recorded epochs.) A module's parameters belong to its first
call's layer.

How a forward pass is run
-------------------------
Every pass, the discovering one included, runs under :func:`evaluating`: eval mode (batch
norm uses its running statistics, dropout draws nothing), ``torch.no_grad()``, and on exit
every module's own train/eval flag and the global torch (CPU and CUDA), numpy and Python
random states are restored. So capturing never changes training: a model trained with and
without a Recorder ends bit-identical.

Each output is copied to float32 on the CPU as soon as its module returns, so a later
in-place module (``nn.ReLU(inplace=True)``) cannot overwrite it, and each batch of inputs
is copied to the model's device first, so an in-place first module cannot alter the
caller's tensor.

Batches and bits
----------------
Inputs go through the model ``batch_size`` at a time; the rows of every layer come back
in input order whatever the batch size. The values are each row's own, but the last bits
can depend on the batch: a BLAS may compute a batch of one, or the even and odd rows of a
small matrix product, with other kernels (MKL does, on this project's CPUs). Compare
captures of differently batched inputs with a float32 tolerance, unless the model's
arithmetic is exact. So an attack's step 0, whose examples sit in other batches than in
the recorded epoch, equals that epoch to the last float32 bit or so, and bit for bit
where the arithmetic is exact (``tests/test_capture.py`` checks it so).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from grandtour.defaults import FORWARD_BATCH
from grandtour.errors import GrandTourError
from grandtour.graph import (
    GraphLayer,
    assign_inputs,
    describe_output,
    find_node,
    suggest_output,
    trace,
)
from grandtour.store import LayerInfo

__all__ = [
    "EVAL_IDENTITIES",
    "Capture",
    "CaptureError",
    "CaptureWarning",
    "Site",
    "UnknownLayerError",
    "evaluating",
    "layer_infos",
    "model_device",
    "unwrap",
]

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

#: The pseudo-layers every capture has; no module may take their names.
PSEUDO_LAYERS = ("input", "softmax")

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
    "approximate",
    "alpha",
    "beta",
    "threshold",
    "value",
    "lambd",
    "min_val",
    "max_val",
    "lower",
    "upper",
    "normalized_shape",
    "elementwise_affine",
    "track_running_stats",
    "embed_dim",
    "num_heads",
    "batch_first",
    "num_parameters",
)


class CaptureError(GrandTourError, ValueError):
    """A model, an input or a layer choice that capture cannot work with; the message says why."""


class CaptureWarning(UserWarning):
    """Capture recorded less than the model's graph (fx could not trace it); the message says what."""


class UnknownLayerError(CaptureError):
    """A layer name that the model has not; the message lists the layers it has."""


# ----------------------------------------------------------------------------- helpers


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP / DataParallel / torch.compile wrappers.

    Hooks and names belong to the inner module, and calling a DDP wrapper's forward
    would start collectives of its own.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # noqa: SLF001 - torch.compile's only handle on the module
        else:
            return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; the CPU if it has none."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _output_tensor(output) -> torch.Tensor | None:
    # Leaf modules return a tensor; a few (nn.LSTM, nn.MultiheadAttention) return a
    # tuple whose first item is the output proper.
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


_SKIP = object()


def _jsonable(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list) and all(
        isinstance(v, bool | int | float | str) or v is None for v in value
    ):
        return list(value)
    return _SKIP


def _module_config(module: nn.Module) -> dict:
    config = {}
    for key in _CONFIG_KEYS:
        if hasattr(module, key):
            value = _jsonable(getattr(module, key))
            if value is not _SKIP:
                config[key] = value
    # The registry itself: a parameter registered as None (affine=False) is still listed.
    own = module._parameters  # noqa: SLF001 - named_parameters() leaves out the None ones
    if "weight" in own:
        config["bias"] = own.get("bias") is not None
    return config


@contextmanager
def evaluating(model: nn.Module, *, grad: bool = False) -> Iterator[nn.Module]:
    """Eval mode and untouched random states for the duration of a forward pass.

    On exit, every module gets back its own train/eval flag (a user may keep parts of a
    training model frozen in eval mode), and the global torch (CPU, and CUDA once
    initialised), numpy and Python random states are restored, so a model that draws
    random numbers in eval mode does not shift training's stream.

    Parameters
    ----------
    model : nn.Module
    grad : bool, default False
        False: under ``torch.no_grad()`` (capture). True: with gradients enabled, for
        the FGSM steps, which differentiate with respect to the inputs.
    """
    modes = [(m, m.training) for m in model.modules()]
    torch_rng = torch.get_rng_state()
    cuda_rng = (
        torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else None
    )
    numpy_rng = np.random.get_state()
    python_rng = random.getstate()
    try:
        with torch.set_grad_enabled(grad):
            model.eval()
            yield model
    finally:
        for module, training in modes:
            module.training = training
        torch.set_rng_state(torch_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        np.random.set_state(numpy_rng)
        random.setstate(python_rng)


# ------------------------------------------------------------------------------ tracing


@dataclass(frozen=True)
class Site:
    """One recordable output: a graph node, or a module's ``call``-th call (from 0).

    ``module`` is None for the ``input`` and ``softmax`` pseudo-layers and for functional
    ops; ``node`` is the fx node's name ("" when recorded by hooks); ``batch_axis`` the
    axis of the node's value that runs over the examples.
    """

    info: LayerInfo
    module: nn.Module | None
    call: int = 0
    node: str = ""
    batch_axis: int = 0


def _hook_sites(model: nn.Module, example: torch.Tensor, logits_of) -> tuple[list[Site], int]:
    """Without a graph: every leaf-module call whose output keeps the batch first, by hooks."""
    batch = example.shape[0]
    names = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            # A model that is itself a single module has the empty name.
            names[module] = name or type(module).__name__.lower()
    calls: dict[nn.Module, int] = {}
    sites: list[Site] = []

    def hook(module, inputs, output):
        k = calls.get(module, 0)
        calls[module] = k + 1  # every call counts, recordable or not, as in Capture.run
        out = _output_tensor(output)
        if out is None or out.ndim == 0 or out.shape[0] != batch:
            return  # no per-example output to record
        name = names[module] if k == 0 else f"{names[module]}-{k + 1}"
        info = LayerInfo(name=name, kind=type(module).__name__.lower(),
                         shape=tuple(int(s) for s in out.shape[1:]), module=repr(module),
                         config=_module_config(module))
        sites.append(Site(info, module, k))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with evaluating(model):
            output = model(example)
    finally:
        for h in handles:
            h.remove()
    n_classes = int(logits_of(output, batch).shape[1])
    return sites, n_classes


def _reserved_names(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if next(module.children(), None) is None and name in PSEUDO_LAYERS:
            raise CaptureError(
                f"the model has a module named {name!r}, which clashes with the "
                "Recorder's pseudo-layer of that name: rename the module")


def _choose(layers_: list[GraphLayer], layers: Sequence[str] | str | None
            ) -> tuple[list[GraphLayer], list[tuple[str, str]]]:
    """The layers asked for, in network order, and why each other one is left out."""
    if layers is None:
        chosen = [g for g in layers_ if not g.identity]
    elif isinstance(layers, str) and layers == "all":
        chosen = list(layers_)
    else:
        layers = [layers] if isinstance(layers, str) else list(layers)
        known = {g.info.name for g in layers_}
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise UnknownLayerError(
                f"no recordable layer named {', '.join(map(repr, unknown))}; "
                f"the model's layers are: {', '.join(g.info.name for g in layers_)}")
        wanted = set(layers)
        chosen = [g for g in layers_ if g.info.name in wanted]  # network order, not the caller's
    names = {g.info.name for g in chosen}
    left = [(g.info.name, f"an eval-time identity or reshape ({g.info.kind}): the same values as "
             "its input (layers='all' records it)" if g.identity else "not among the layers asked for")
            for g in layers_ if g.info.name not in names]
    return chosen, left


# ------------------------------------------------------------------------------ Capture


class _Grab(fx.Interpreter):
    """Runs the traced graph on the model's modules; copies each watched node's value out."""

    def __init__(self, model, graph, watch: dict[str, Callable]):
        super().__init__(model, garbage_collect_values=True, graph=graph)
        self.watch = watch

    def run_node(self, n):
        value = super().run_node(n)
        grab = self.watch.get(n.name)
        if grab is not None:
            grab(value)  # now: a later in-place op (ReLU(inplace=True), +=) would overwrite it
        return value


class Capture:
    """The chosen layers of a model, their graph, and their flattened outputs on any inputs.

    Parameters
    ----------
    model : nn.Module
        Maps a batch of model-ready inputs to logits ``(batch, classes)``, or to a
        structure holding them (then give ``output``). DDP, DataParallel and
        torch.compile wrappers are looked through. Never moved.
    example : Tensor or ndarray of shape (B, ...), B >= 1
        Model-ready inputs; a few rows are run to discover the layers and the batch axis
        of each (:mod:`grandtour.graph`).
    layers : sequence of str, "all" or None
        None: ``input``, every layer except eval-time identities and reshapes (Flatten,
        Identity, Dropout*, ``x.view``), and ``softmax``. ``"all"``: those too. A list of
        names: those layers, in network order (the caller's order is ignored).
    device : torch.device or str, optional
        Where input batches go; default the model's device.
    output : callable, optional
        Maps the model's output to the logits ``(batch, classes)``; needed when the
        model returns a tuple, list or dict (e.g. ``output=lambda out: out[1]``).

    Attributes
    ----------
    model : nn.Module
        The unwrapped model.
    graph : torch.fx.Graph or None
        The traced graph; None when capture fell back to module hooks.
    sites : list of Site
        The chosen layers, in network (execution) order.
    infos : list of LayerInfo
        Their descriptions: ``shape`` is the per-example output shape, ``kind`` the
        module's class name or the op lowercased, ``config`` its settings, ``inputs``
        the recorded layers it reads (see :func:`grandtour.graph.assign_inputs`).
    skipped : list of (str, str)
        Every output that is not recorded, and why.
    n_classes : int
        Number of logits C.
    input_shape : tuple of int
        Per-example input shape.

    Raises
    ------
    CaptureError
        The model does not output logits ``(batch, classes)`` (the message shows the
        structure it returned and the ``output=`` to give), or a module is named
        ``input`` or ``softmax``.
    UnknownLayerError
        A name in ``layers`` that is not one of the model's layers.
    """

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor | np.ndarray,
        layers: Sequence[str] | str | None = None,
        *,
        device: torch.device | str | None = None,
        output: Callable | None = None,
    ):
        self.model = unwrap(model)
        self.device = torch.device(device) if device is not None else model_device(self.model)
        if output is not None and not callable(output):
            raise CaptureError(f"output must be a function of the model's output, got {output!r}")
        self.output = output
        example = _as_tensor(example)
        if example.ndim == 0 or example.shape[0] < 1:
            raise CaptureError(
                "capture needs an example batch of at least one model-ready input, "
                f"got shape {tuple(example.shape)}")
        self.input_shape = tuple(int(s) for s in example.shape[1:])
        _reserved_names(self.model)
        ex = example[:3].to(self.device, copy=True)

        def evaluated(fn):
            with evaluating(self.model):
                return fn()

        traced, notes = trace(self.model, ex, evaluated)
        logits_node = None
        if traced is None:
            if notes:
                warnings.warn(f"{type(self.model).__name__}: {notes[-1][1]}", CaptureWarning,
                              stacklevel=2)
            sites, self.n_classes = _hook_sites(self.model, ex[:2], self._logits)
            candidates = [GraphLayer("", s.info, s.module, s.call,
                                     identity=isinstance(s.module, EVAL_IDENTITIES)) for s in sites]
            first = LayerInfo(name="input", kind="input", shape=self.input_shape, static=True)
            candidates.insert(0, GraphLayer("", first))
        else:
            logits = self._logits(traced.output, 3)  # the discovering batch: 3 rows
            self.n_classes = int(logits.shape[1])
            logits_node = find_node(traced.values, logits)
            traced.values = {}  # the discovering batch's activations: no longer needed
            candidates = traced.layers
        softmax = LayerInfo(name="softmax", kind="softmax", shape=(self.n_classes,), config={"dim": 1})
        candidates = [*candidates, GraphLayer("", softmax)]
        chosen, left = _choose(candidates, layers)
        self.graph = None if traced is None else traced.graph
        self.skipped = [*(notes if traced is None else traced.skipped), *left]
        infos = assign_inputs(traced, chosen, logits_node)
        self.sites = [Site(info, g.module, g.call, g.node, g.batch_axis)
                      for info, g in zip(infos, chosen, strict=True)]
        self.infos = infos

    @property
    def names(self) -> list[str]:
        """The chosen layers' names, in network order."""
        return [info.name for info in self.infos]

    def _logits(self, out, batch: int) -> torch.Tensor:
        """The logits in the model's output; a clear error if they are not (batch, classes)."""
        raw = out
        if self.output is not None:
            out = self.output(out)
        elif isinstance(out, (tuple, list, dict)):
            raise CaptureError(
                f"the model returned a {type(out).__name__}, {describe_output(out)}: tell the Recorder "
                f"which is the logits (batch, classes) with output=, e.g. {suggest_output(out)}")
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != batch:
            what = describe_output(out)
            via = f" (output= gave it from {describe_output(raw)})" if self.output is not None else ""
            raise CaptureError(
                "the Recorder needs the model's logits as a tensor of shape (batch, classes); "
                f"on a batch of {batch} it got {what}{via}")
        return out

    def run(
        self,
        inputs: torch.Tensor | np.ndarray,
        batch_size: int = FORWARD_BATCH,
        *,
        layers: Sequence[str] | None = None,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every chosen layer's output on ``inputs``, flattened, and the logits.

        Parameters
        ----------
        inputs : Tensor or ndarray of shape (N, ...)
            Model-ready inputs of the example's per-example shape; N may be 0.
        batch_size : int, default :data:`grandtour.defaults.FORWARD_BATCH`
            Inputs per forward pass.
        layers : sequence of str, optional
            Only these of the chosen layers (the Recorder leaves out the stored
            ``input``); default all of them.

        Returns
        -------
        activations : dict of str -> ndarray of shape (N, dim), float32
            In network order; ``input`` is the inputs themselves and ``softmax`` the
            softmax of the logits. A layer whose batch axis is not the first (a
            ``(T, B, D)`` sequence) is each example's own ``(T, D)``, flattened.
        logits : ndarray of shape (N, C), float32
        """
        batch_size = int(batch_size)
        if batch_size < 1:
            raise CaptureError(f"batch_size must be >= 1, got {batch_size}")
        sites = self.sites
        if layers is not None:
            wanted = set(layers)
            unknown = sorted(wanted - set(self.names))
            if unknown:
                raise UnknownLayerError(
                    f"{', '.join(map(repr, unknown))} not among the captured layers "
                    f"({', '.join(self.names)}): choose them when building the Capture")
            sites = [s for s in sites if s.info.name in wanted]
        inputs = _as_tensor(inputs)
        if tuple(inputs.shape[1:]) != self.input_shape:
            raise CaptureError(
                f"inputs of shape {tuple(inputs.shape)}: the layers were traced on inputs of "
                f"per-example shape {self.input_shape}")
        n = int(inputs.shape[0])
        acts = {s.info.name: np.empty((n, s.info.dim), dtype=np.float32) for s in sites}
        logits = np.empty((n, self.n_classes), dtype=np.float32)
        window = [0, 0]

        def store(site: Site, output) -> None:
            a, b = window
            out = _output_tensor(output)
            if out is not None and out.ndim > site.batch_axis:
                out = out.movedim(site.batch_axis, 0)
            if out is None or out.shape[0] != b - a or out[0].numel() != site.info.dim:
                shape = None if out is None else tuple(out.shape)
                raise CaptureError(
                    f"layer {site.info.name!r} returned {shape} on a batch of {b - a}, but "
                    f"(batch, *{site.info.shape}) when traced: capture needs a forward pass "
                    "whose layers keep their shapes")
            acts[site.info.name][a:b] = out.detach().reshape(b - a, -1).float().cpu()

        if self.graph is not None:
            watch = {s.node: (lambda v, s=s: store(s, v)) for s in sites
                     if s.node and s.info.name != "input"}
            grab = _Grab(self.model, self.graph, watch)

            def forward(x):
                return grab.run(x)
        else:
            forward = self.model
        with self._module_hooks(sites if self.graph is None else [], store) as seen, evaluating(self.model):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                window[:] = [start, stop]
                seen.clear()
                # A copy, so an in-place first module cannot alter the caller's inputs.
                x = inputs[start:stop].to(self.device, copy=True)
                if "input" in acts:
                    acts["input"][start:stop] = x.reshape(stop - start, -1).float().cpu()
                out = self._logits(forward(x), stop - start)
                if tuple(out.shape) != (stop - start, self.n_classes):
                    raise CaptureError(
                        f"the model returned logits {tuple(out.shape)} on a batch of "
                        f"{stop - start}, not ({stop - start}, {self.n_classes}) as when traced")
                logits[start:stop] = out.detach().float().cpu()
                self._check_called(seen, start, stop, sites if self.graph is None else [])
        if self.graph is not None and n:
            self._guard(inputs[: min(2, n)], logits[: min(2, n)])
        if "softmax" in acts:
            acts["softmax"][:] = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        return acts, logits

    @contextmanager
    def _module_hooks(self, sites: list[Site], store: Callable | None):
        """Forward hooks on the sites' modules; yields the set of layer names seen."""
        by_call = {(s.module, s.call): s for s in sites if s.module is not None}
        calls: dict[nn.Module, int] = {}
        seen: set[str] = _Seen(calls)

        def hook(module, inputs_, output):
            k = calls.get(module, 0)
            calls[module] = k + 1
            site = by_call.get((module, k))
            if site is not None:
                if store is not None:
                    store(site, output)
                seen.add(site.info.name)

        handles = [m.register_forward_hook(hook) for m in {m for m, _ in by_call}]
        try:
            yield seen
        finally:
            for h in handles:
                h.remove()

    @staticmethod
    def _check_called(seen: set[str], start: int, stop: int, sites: list[Site]) -> None:
        missing = [s.info.name for s in sites if s.module is not None and s.info.name not in seen]
        if missing:
            raise CaptureError(
                f"layer(s) {', '.join(map(repr, missing))} were not called on inputs "
                f"{start}..{stop - 1}: the forward pass took another path than when the layers "
                "were traced")

    def _guard(self, x: torch.Tensor, logits: np.ndarray) -> None:
        """The model itself, on a row or two: still the graph that was traced?

        The graph runs in place of ``model.forward``; a model whose forward changed since
        (a Python flag, a swapped submodule) would be recorded from a stale graph. So the
        real forward runs on the first rows, its module calls counted and its logits
        compared with the graph's.
        """
        module_sites = [s for s in self.sites if s.module is not None]
        with self._module_hooks(module_sites, None) as seen, evaluating(self.model):
            ref = self._logits(self.model(x.to(self.device, copy=True)), x.shape[0])
        self._check_called(seen, 0, x.shape[0] - 1, module_sites)
        ref = ref.detach().float().cpu().numpy()
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        if ref.shape != logits.shape or not np.allclose(ref, logits, rtol=1e-3, atol=1e-4 * scale):
            raise CaptureError(
                "the model's forward no longer computes what was traced when the Capture (or "
                "Recorder) was built (its logits differ from the traced graph's): build a new "
                "one after changing the model")


class _Seen(set):
    """The layer names seen in one forward pass; clearing it restarts the call counts."""

    def __init__(self, calls: dict):
        super().__init__()
        self._calls = calls

    def clear(self):
        super().clear()
        self._calls.clear()  # call numbers count within one forward pass


def _as_tensor(inputs) -> torch.Tensor:
    if isinstance(inputs, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, torch.Tensor):
        return inputs.detach()
    raise CaptureError(f"inputs must be a Tensor or an ndarray, got {type(inputs).__name__}")


def layer_infos(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    example: torch.Tensor | None = None,
    layers: Sequence[str] | str | None = None,
    output: Callable | None = None,
) -> list[LayerInfo]:
    """Describe the layers a Recorder would record, from a forward pass or two.

    Parameters
    ----------
    model : nn.Module
        Maps a batch to logits of shape (batch, classes) (or see ``output``).
    input_shape : sequence of int, optional
        Per-example input shape, e.g. ``(1, 28, 28)``; a zero float32 batch is run
        through the model (on its device). Give ``example`` instead for inputs that
        are not float (token ids, ...).
    example : Tensor of shape (B, ...), optional
        A batch of model-ready inputs.
    layers : sequence of str, "all" or None
        As for :class:`Capture`.
    output : callable, optional
        As for :class:`Capture`.

    Returns
    -------
    list of LayerInfo
        :attr:`Capture.infos`: in network (execution) order, with their inputs.
    """
    if example is None:
        if input_shape is None:
            raise CaptureError("give input_shape or example")
        example = torch.zeros((3, *input_shape), device=model_device(unwrap(model)))
    return Capture(model, example, layers, output=output).infos
