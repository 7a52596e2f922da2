"""Rebuilding a recorded layer's function from its config, to apply it and to check it.

Two kinds of layers are rebuilt here:

- **functional ops** recorded from the graph (``add``, ``cat``, ``mean``, ``F.relu``,
  ``F.gelu(approximate="tanh")``, ...): their config holds the op, its constant arguments
  and, for each tensor argument, the recorded layer it came from (``operands``) with
  the per-example shape and batch axis it had. :func:`replay` calls the op again on
  recorded activations. Only ops in :data:`REPLAYABLE` are ever called (a run is data: a
  name read from it never selects an arbitrary function).
- **coordinate-wise modules** (``nn.GELU`` with its ``approximate``, batch norm in eval
  mode from its recorded running statistics, layer norm from its recorded weights, ELU
  with its ``alpha``, ...): :func:`coordinatewise_fn`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from grandtour.align.maps import _torch, _Unsupported
from grandtour.store import LayerInfo

#: Ops linear in each tensor argument (the others held fixed): aligned by the SVD of the
#: map from one argument, the others set to zero.
LINEAR_OPS = frozenset({
    "add", "sub", "cat", "stack", "mean", "sum", "permute", "transpose", "getitem", "neg", "mul",
    "truediv", "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "movedim",
    "clone", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "pos",
})
#: Linear ops of several tensors: the transition from one of them is a merge.
MERGES = frozenset({"add", "sub", "cat", "stack"})
#: Ops interpolated in the standard basis (as the modules of the same kind).
FUNCTIONAL_COORDINATEWISE = frozenset({
    "relu", "gelu", "silu", "sigmoid", "tanh", "softmax", "log_softmax", "leaky_relu", "elu", "selu",
    "celu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "softplus", "mish", "logsigmoid",
    "softsign", "tanhshrink",
})
REPLAYABLE = LINEAR_OPS | FUNCTIONAL_COORDINATEWISE
_NAMESPACES = ("operator", "torch", "torch.nn.functional", "Tensor")


def is_functional(layer: LayerInfo) -> bool:
    """Whether ``layer`` is a functional op of the graph (not a module, not imported)."""
    return "op" in layer.config and "target" in layer.config


def _resolve(target: str) -> Callable:
    ns, _, name = str(target).rpartition(".")
    plain = name.rstrip("_")  # x.add_(y) replays as x.add(y): inputs here may require grad
    if ns == "operator" and plain.startswith("i") and plain[1:] in ("add", "sub", "mul", "truediv"):
        plain = plain[1:]
    canonical = {"div": "truediv", "concat": "cat", "concatenate": "cat", "swapaxes": "transpose"}
    if ns not in _NAMESPACES or canonical.get(plain, plain) not in REPLAYABLE:
        raise _Unsupported(f"the op {target!r} is not one grandtour replays")
    torch = _torch()
    if ns == "Tensor":
        return lambda x, *args, **kwargs: getattr(x, plain)(*args, **kwargs)
    module = {"operator": operator, "torch": torch, "torch.nn.functional": torch.nn.functional}[ns]
    fn = getattr(module, plain, None)
    if fn is None:
        raise _Unsupported(f"the op {target!r} does not exist in this torch")
    return fn


def _decode(value, operands: Sequence[Any]):
    if isinstance(value, list):
        return [_decode(v, operands) for v in value]
    if isinstance(value, dict):
        if "operand" in value:
            return operands[int(value["operand"])]
        if "tuple" in value:
            return tuple(_decode(v, operands) for v in value["tuple"])
        if "slice" in value:
            return slice(*(_decode(v, operands) for v in value["slice"]))
        if "ellipsis" in value:
            return Ellipsis
        if "dtype" in value:
            return getattr(_torch(), str(value["dtype"]))
    return value


def replay(layer: LayerInfo, operands: Sequence[Any]):
    """The op of a functional ``layer`` on flattened operands ``(N, dim_i)`` (Tensors).

    Returns a Tensor of shape ``(N, layer.dim)``: the op's output, each example's values
    flattened as the Recorder stores them.
    """
    cfg = layer.config
    if not cfg.get("replay"):
        raise _Unsupported(str(cfg.get("not_replayable") or "its arguments were not recorded"))
    shapes, axes = cfg.get("operand_shapes", []), cfg.get("operand_batch_axes", [])
    if len(operands) != len(shapes):
        raise _Unsupported(f"it takes {len(shapes)} tensors, {len(operands)} given")
    full = []
    for x, shape, axis in zip(operands, shapes, axes, strict=True):
        if x.shape[1] != math.prod(shape):
            raise _Unsupported(f"an operand of {x.shape[1]} coordinates where the op read "
                               f"{math.prod(shape)} ({tuple(shape)})")
        full.append(x.reshape((x.shape[0], *shape)).movedim(0, int(axis)))
    fn = _resolve(cfg["target"])
    kwargs = {k: _decode(v, full) for k, v in (cfg.get("kwargs") or {}).items()}
    if "inplace" in kwargs:
        kwargs["inplace"] = False
    out = fn(*_decode(cfg["args"], full), **kwargs)
    return out.movedim(int(cfg.get("batch_axis", 0)), 0).reshape(out.shape[cfg.get("batch_axis", 0)], -1)


def operand_names(layer: LayerInfo) -> list[str | None]:
    """The recorded layer behind each tensor argument of a functional op (None: unknown)."""
    return list(layer.config.get("operands") or [])


def source_map(prev: LayerInfo, layer: LayerInfo, params=None):
    """The map from ``prev`` (one operand) to a linear functional ``layer``, others at zero."""
    from grandtour.align.maps import LayerMap

    torch = _torch()
    kind = str(layer.config.get("op"))
    names = operand_names(layer)
    where = [i for i, n in enumerate(names) if n == prev.name]
    if kind not in LINEAR_OPS:
        raise _Unsupported(f"{kind} is not linear")
    if not where:
        raise _Unsupported(f"{prev.name!r} is not an argument of this {kind}")
    if kind in ("mul", "truediv") and len(names) > 1:
        raise _Unsupported(f"a {kind} of two tensors is not linear in either")
    shapes = layer.config.get("operand_shapes", [])

    def forward(x):
        ops = [x if i in where else torch.zeros((x.shape[0], math.prod(shapes[i])), dtype=x.dtype)
               for i in range(len(names))]
        return replay(layer, ops)

    sample = forward(torch.zeros((1, prev.dim), dtype=torch.float64))
    if sample.shape[1] != layer.dim:
        raise _Unsupported(f"it gives {sample.shape[1]} coordinates, but {layer.name!r} has {layer.dim}")
    others = [n for n in names if n != prev.name]
    return LayerMap(prev.dim, layer.dim, forward, np.zeros(layer.dim), static=True,
                    description=f"{kind} of {prev.name!r}" + (f" and {', '.join(map(repr, others))}"
                                                             if others else ""))


# ------------------------------------------------------------------ coordinate-wise modules


def _per_example_dim(layer: LayerInfo, dim: int) -> int | None:
    """A dimension of the full tensor as an axis of one example's values (None: the batch)."""
    ndim = len(layer.shape) + 1
    axis = int(layer.config.get("batch_axis", 0))
    d = dim + ndim if dim < 0 else dim
    if d == axis or not 0 <= d < ndim:
        return None
    return d if d < axis else d - 1


def coordinatewise_fn(layer: LayerInfo, params: Mapping | None = None) -> Callable | None:
    """The torch function (flattened rows -> rows) of a coordinate-wise module; None if unknown.

    ``params``: the layer's recorded parameters (batch and layer norm, PReLU need them).
    """
    torch = _torch()
    F = torch.nn.functional
    kind = layer.kind.lower()
    cfg = layer.config
    shape = tuple(layer.shape)

    def shaped(fn):
        return lambda x: fn(x.reshape((x.shape[0], *shape))).reshape(x.shape[0], -1)

    def param(name):
        value = (params or {}).get(name)
        return None if value is None else torch.as_tensor(np.asarray(value, dtype=np.float64))

    simple = {"relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
              "silu": F.silu, "softsign": F.softsign, "logsigmoid": F.logsigmoid, "selu": F.selu,
              "mish": F.mish, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid,
              "tanhshrink": F.tanhshrink}
    if kind in simple:
        return simple[kind]
    if kind == "leakyrelu":
        return lambda x: F.leaky_relu(x, float(cfg.get("negative_slope", 0.01)))
    if kind == "gelu":
        return lambda x: F.gelu(x, approximate=str(cfg.get("approximate", "none")))
    if kind in ("elu", "celu"):
        fn = F.elu if kind == "elu" else F.celu
        return lambda x: fn(x, float(cfg.get("alpha", 1.0)))
    if kind == "softplus":
        return lambda x: F.softplus(x, float(cfg.get("beta", 1.0)), float(cfg.get("threshold", 20.0)))
    if kind == "hardtanh":
        return lambda x: F.hardtanh(x, float(cfg.get("min_val", -1.0)), float(cfg.get("max_val", 1.0)))
    if kind in ("softshrink", "hardshrink"):
        fn = F.softshrink if kind == "softshrink" else F.hardshrink
        return lambda x: fn(x, float(cfg.get("lambd", 0.5)))
    if kind == "threshold" and "threshold" in cfg and "value" in cfg:
        return lambda x: F.threshold(x, float(cfg["threshold"]), float(cfg["value"]))
    if kind == "rrelu":  # eval mode: a leaky ReLU of the mean slope
        slope = (float(cfg.get("lower", 1 / 8)) + float(cfg.get("upper", 1 / 3))) / 2
        return lambda x: F.leaky_relu(x, slope)
    if kind == "prelu" and param("weight") is not None and shape:
        w = param("weight")
        return shaped(lambda x: F.prelu(x, w))
    if kind in ("softmax", "logsoftmax"):
        d = _per_example_dim(layer, int(cfg.get("dim", 1) if cfg.get("dim") is not None else -1))
        if d is None:
            return None
        fn = torch.softmax if kind == "softmax" else torch.log_softmax
        return shaped(lambda x: fn(x, dim=d + 1))
    if kind.startswith("batchnorm"):
        mean, var = param("running_mean"), param("running_var")
        if mean is None or var is None or not shape or int(cfg.get("batch_axis", 0)) != 0:
            return None  # no running statistics recorded: eval mode cannot be rebuilt
        w, b = param("weight"), param("bias")
        eps = float(cfg.get("eps", 1e-5))
        c = shape[0]

        def bn(x):
            y = x.reshape(x.shape[0], c, -1)
            y = (y - mean[:, None]) / torch.sqrt(var[:, None] + eps)
            if w is not None:
                y = y * w[:, None]
            if b is not None:
                y = y + b[:, None]
            return y.reshape(x.shape[0], -1)

        return bn
    if kind == "layernorm":
        norm_shape = tuple(int(s) for s in (cfg.get("normalized_shape") or ()))
        if not norm_shape or shape[len(shape) - len(norm_shape):] != norm_shape:
            return None
        w, b = param("weight"), param("bias")
        eps = float(cfg.get("eps", 1e-5))
        return shaped(lambda x: F.layer_norm(x, norm_shape, w, b, eps))
    return None
