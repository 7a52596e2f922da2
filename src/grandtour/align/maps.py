"""The linear map of each layer kind, as an operator ``X -> X M`` (never a dense ``M``).

A layer ``X_l = X_{l-1} M + b`` is described by a :class:`LayerMap`: ``forward`` is the
layer without its bias on flattened rows, its adjoint ``Y -> Y M^T`` comes from automatic
differentiation, so a convolution is used as the operator it is. One builder per affine
kind (linear, convolutions, average pooling, max-pooling's average-pooling replacement)
lives in a registry that :func:`register_layer_map` extends; coordinate-wise activations
and reshapes need no map (``COORDINATEWISE``, ``IDENTITIES``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from grandtour.store import LayerInfo

# Coordinate-wise maps (the picture interpolates each coordinate on its own). Softmax is
# not strictly coordinate-wise (it normalises), but the article interpolates it in the
# standard basis, and so do we. Batch norm in eval mode is a per-coordinate affine map.
COORDINATEWISE = frozenset({
    "relu", "relu6", "leakyrelu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "silu",
    "mish", "tanh", "sigmoid", "hardtanh", "hardsigmoid", "hardswish", "softplus", "softsign",
    "tanhshrink", "softshrink", "hardshrink", "threshold", "logsigmoid", "softmax",
    "logsoftmax", "batchnorm1d", "batchnorm2d", "batchnorm3d",
    # Layer norm normalises each token, like softmax: shown in the standard basis too.
    "layernorm",
    # Functional spellings recorded from the graph (F.leaky_relu, F.log_softmax, ...).
    "leaky_relu", "log_softmax",
})
# Reshapes and eval-time identities: the same vector, the same coordinates.
IDENTITIES = frozenset({
    "flatten", "unflatten", "identity", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alphadropout", "featurealphadropout",
})


class _Unsupported(Exception):
    """A layer's own rule cannot be applied; the message says why (for the fallback note)."""


def _torch():
    import torch  # lazily: the reader side (load_transition) needs numpy and zarr only

    return torch


@dataclass(frozen=True)
class LayerMap:
    """An affine layer ``X -> X M + bias`` in the row-vector convention, as an operator.

    ``M`` has shape ``(n_in, n_out)`` (``W^T`` for ``nn.Linear``); it is applied, never
    stored: ``forward`` is the layer without its bias (a torch function on a batch of
    flattened rows), and :meth:`adjoint` (``Y -> Y M^T``) is its vector-Jacobian product.

    Attributes
    ----------
    n_in, n_out : int
    forward : callable, Tensor (B, n_in) float64 -> Tensor (B, n_out)
        ``X -> X M``.
    bias : ndarray of shape (n_out,)
    static : bool
        True when the map has no parameters (pooling, reshapes): the same at every epoch.
    description : str
    layer_fn : callable or None
        The true layer when it is not this affine map (max-pooling: the map is its
        average-pooling replacement), for checking the recorded data.
    block : (T, ndarray of shape (a, b)) or None
        ``M = I_T (x) A``: the same ``A`` on each of T tokens (a per-token linear layer on a
        sequence), whose SVD is ``A``'s repeated; never formed as a dense ``M`` to decompose.
    """

    n_in: int
    n_out: int
    forward: Callable[[Any], Any]
    bias: np.ndarray
    static: bool = False
    description: str = ""
    layer_fn: Callable[[Any], Any] | None = None
    block: tuple[int, np.ndarray] | None = None

    def adjoint(self, y):
        """``Y -> Y M^T``: Tensor (B, n_out) -> Tensor (B, n_in), by automatic differentiation.

        Exact for a linear ``forward`` (it is the transposed convolution for a
        convolution, whatever the stride, padding, dilation, groups or padding mode).
        """
        torch = _torch()
        x = torch.zeros((y.shape[0], self.n_in), dtype=y.dtype, requires_grad=True)
        with torch.enable_grad():
            out = self.forward(x)
            (grad,) = torch.autograd.grad(out, x, grad_outputs=y)
        return grad

    def apply(self, x: np.ndarray, dtype=np.float64) -> np.ndarray:
        """``x M + bias`` for an array of rows ``(N, n_in)``; returns ``(N, n_out)``, computed
        in ``dtype`` (the builders here follow the dtype of their input), bias added in float64."""
        torch = _torch()
        with torch.no_grad():
            y = self.forward(torch.as_tensor(np.ascontiguousarray(x, dtype=dtype)))
        return y.numpy() + self.bias

    def apply_layer(self, x: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The true layer on rows ``(N, n_in)`` (``layer_fn`` if set, else :meth:`apply`)."""
        if self.layer_fn is None:
            return self.apply(x, dtype)
        torch = _torch()
        with torch.no_grad():
            return self.layer_fn(torch.as_tensor(np.ascontiguousarray(x, dtype=dtype))).numpy()

    def _chunk(self) -> int:
        # Rows per operator call: about 64 MB of float64 in the widest intermediate.
        return int(max(1, min(256, 8_000_000 // max(self.n_in, self.n_out, 1))))

    def matrix(self) -> np.ndarray:
        """The dense ``M`` of shape (n_in, n_out). Only for small layers (tests, benchmarks)."""
        return self.compress(None, None)

    def compress(self, r_in: np.ndarray | None, r_out: np.ndarray | None) -> np.ndarray:
        """``C = R_in^T M R_out`` of shape (d_in, d_out), without materialising ``M``.

        ``R_in`` (n_in, d_in) and ``R_out`` (n_out, d_out) have orthonormal columns;
        ``None`` is the identity. ``C`` is built from ``min(d_in, d_out)`` operator calls:
        rows of ``R_in^T`` pushed forward, or columns of ``R_out`` pulled back by the
        adjoint, a chunk at a time, so at most a chunk of ``n``-wide rows is held.
        """
        torch = _torch()
        d_in = self.n_in if r_in is None else r_in.shape[1]
        d_out = self.n_out if r_out is None else r_out.shape[1]
        c = np.empty((d_in, d_out))
        step = self._chunk()
        if d_in <= d_out:
            for i in range(0, d_in, step):
                j = min(d_in, i + step)
                if r_in is None:
                    rows = torch.zeros((j - i, self.n_in), dtype=torch.float64)
                    rows[torch.arange(j - i), torch.arange(i, j)] = 1.0
                else:
                    rows = torch.as_tensor(np.ascontiguousarray(r_in[:, i:j].T, dtype=np.float64))
                with torch.no_grad():
                    y = self.forward(rows).numpy()
                c[i:j] = y if r_out is None else y @ r_out
        else:
            for i in range(0, d_out, step):
                j = min(d_out, i + step)
                if r_out is None:
                    cols = torch.zeros((j - i, self.n_out), dtype=torch.float64)
                    cols[torch.arange(j - i), torch.arange(i, j)] = 1.0
                else:
                    cols = torch.as_tensor(np.ascontiguousarray(r_out[:, i:j].T, dtype=np.float64))
                g = self.adjoint(cols).numpy()
                c[:, i:j] = (g if r_in is None else g @ r_in).T
        return c

    def linear_operator(self):
        """``M`` as a ``scipy.sparse.linalg.LinearOperator`` of shape (n_in, n_out).

        ``M @ v`` (column vectors, length n_out) is the adjoint; ``M.T @ u`` the forward.
        """
        from scipy.sparse.linalg import LinearOperator

        torch = _torch()

        def matmat(v):  # (n_out, K) -> (n_in, K)
            t = torch.as_tensor(np.ascontiguousarray(np.asarray(v, dtype=np.float64).T))
            return self.adjoint(t).numpy().T

        def rmatmat(u):  # (n_in, K) -> (n_out, K)
            with torch.no_grad():
                y = self.forward(torch.as_tensor(np.ascontiguousarray(np.asarray(u, dtype=np.float64).T)))
            return y.numpy().T

        return LinearOperator((self.n_in, self.n_out), dtype=np.float64,
                              matvec=lambda v: matmat(np.reshape(v, (-1, 1)))[:, 0],
                              rmatvec=lambda u: rmatmat(np.reshape(u, (-1, 1)))[:, 0],
                              matmat=matmat, rmatmat=rmatmat)


def _ints(value, n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    if isinstance(value, (list, tuple)) and len(value) == n and all(isinstance(v, (int, np.integer))
                                                                    for v in value):
        return tuple(int(v) for v in value)
    raise _Unsupported(f"cannot read {name}={value!r} from the layer's config")


def _spatial_input(prev: LayerInfo, channels: int, nd: int, name: str) -> tuple[int, ...]:
    """The (C, *spatial) shape the layer reads, from the previous recorded layer."""
    shape = tuple(prev.shape)
    if len(shape) == nd + 1 and shape[0] == channels:
        return shape
    side = round((prev.dim / channels) ** (1.0 / nd)) if channels else 0
    if channels and channels * side**nd == prev.dim:
        return (channels,) + (side,) * nd  # a flattened (imported) layer: assume a square input
    raise _Unsupported(f"the previous recorded layer {prev.name!r} has shape {shape}, which is not "
                       f"the ({channels}, ...) input {name} expects")


def _check_output(op: LayerMap, layer: LayerInfo, sample_out) -> LayerMap:
    got = tuple(int(s) for s in sample_out.shape[1:])
    if math.prod(got) != layer.dim or (len(layer.shape) == len(got) and tuple(layer.shape) != got):
        raise _Unsupported(f"applying it to the previous recorded layer gives shape {got}, but "
                           f"{layer.name!r} was recorded with shape {tuple(layer.shape)}")
    return op


def _params(params: Mapping[str, np.ndarray] | None, name: str, layer: LayerInfo) -> np.ndarray:
    if not params or name not in params:
        raise _Unsupported(f"no {name!r} parameter of {layer.name!r} was recorded for this epoch "
                           "(record with a Recorder, which stores the parameters)")
    return np.asarray(params[name], dtype=np.float64)


def _bias(params, layer: LayerInfo, n_out: int, per_channel: int | None = None) -> np.ndarray:
    b = params.get("bias") if params else None
    if b is None:
        return np.zeros(n_out)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if per_channel is not None:  # one bias per output channel, broadcast over positions
        return np.repeat(b, n_out // max(1, b.size))
    return b


def _linear_map(prev: LayerInfo, layer: LayerInfo, params) -> LayerMap:
    torch = _torch()
    w = _params(params, "weight", layer)
    if w.ndim == 2 and w.shape[1] == prev.dim and w.shape[0] == layer.dim:
        wt = torch.as_tensor(w)
        return LayerMap(prev.dim, layer.dim, lambda x: x @ wt.to(x.dtype).T, _bias(params, layer, layer.dim),
                        description=f"linear {prev.dim} -> {layer.dim}")
    # Per token: (..., a) -> (..., b) on a sequence, the same W on every position: the
    # block-diagonal I_T (x) W^T, applied token by token.
    tokens = prev.dim // w.shape[1] if w.ndim == 2 and w.shape[1] else 0
    if w.ndim != 2 or tokens * w.shape[1] != prev.dim or tokens * w.shape[0] != layer.dim:
        raise _Unsupported(f"its weight has shape {w.shape}, but the previous recorded layer "
                           f"{prev.name!r} has {prev.dim} coordinates and this one {layer.dim}")
    wt = torch.as_tensor(w)
    n_in = w.shape[1]
    bias = np.tile(_bias(params, layer, w.shape[0]), tokens)
    return LayerMap(prev.dim, layer.dim,
                    lambda x: (x.reshape(x.shape[0], tokens, n_in) @ wt.to(x.dtype).T).reshape(x.shape[0], -1),
                    bias, description=f"linear {n_in} -> {w.shape[0]} on each of {tokens} tokens",
                    block=(tokens, np.ascontiguousarray(w.T)))


def _conv_map(prev: LayerInfo, layer: LayerInfo, params) -> LayerMap:
    torch = _torch()
    F = torch.nn.functional
    w = _params(params, "weight", layer)
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise _Unsupported(f"its weight has shape {w.shape}; expected a 1-, 2- or 3-d convolution")
    cfg = layer.config
    groups = int(cfg.get("groups", 1))
    in_shape = _spatial_input(prev, w.shape[1] * groups, nd, layer.kind)
    stride = _ints(cfg.get("stride", 1), nd, "stride")
    dilation = _ints(cfg.get("dilation", 1), nd, "dilation")
    padding = cfg.get("padding", 0)
    mode = cfg.get("padding_mode", "zeros")
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    wt = torch.as_tensor(w)
    if isinstance(padding, str):
        if mode != "zeros":
            raise _Unsupported(f"padding={padding!r} with padding_mode={mode!r} is not supported")
        pad_arg: Any = padding
        pre = None
    else:
        pads = _ints(padding, nd, "padding")
        pad_arg = 0 if mode != "zeros" else pads
        # torch pads the last dimension first: (left, right) pairs in reverse order
        pre = None if mode == "zeros" else [p for q in reversed(pads) for p in (q, q)]

    def forward(x):
        x = x.reshape((x.shape[0],) + in_shape)
        if pre is not None:
            x = F.pad(x, pre, mode=mode)
        y = conv(x, wt.to(x.dtype), None, stride, pad_arg, dilation, groups)
        return y.reshape(y.shape[0], -1)

    with torch.no_grad():
        sample = conv(torch.zeros((1,) + in_shape, dtype=torch.float64) if pre is None else
                      F.pad(torch.zeros((1,) + in_shape, dtype=torch.float64), pre, mode=mode),
                      wt, None, stride, pad_arg, dilation, groups)
    op = LayerMap(prev.dim, layer.dim, forward, _bias(params, layer, layer.dim, per_channel=w.shape[0]),
                  description=f"{layer.kind} {tuple(in_shape)} -> {tuple(sample.shape[1:])}")
    return _check_output(op, layer, sample)


def _pool_config(layer: LayerInfo) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    cfg = layer.config
    kernel = _ints(cfg.get("kernel_size"), 2, "kernel_size")
    stride_cfg = cfg.get("stride")
    stride = kernel if stride_cfg in (None, [], ()) else _ints(stride_cfg, 2, "stride")
    padding = _ints(cfg.get("padding", 0), 2, "padding")
    return kernel, stride, padding


def _pooled_input(prev: LayerInfo, layer: LayerInfo) -> tuple[int, int, int]:
    channels = int(layer.shape[0]) if len(layer.shape) == 3 else 0
    if not channels and len(prev.shape) == 3:
        channels = int(prev.shape[0])
    if not channels:
        raise _Unsupported("cannot tell the number of channels of the pooled input")
    return _spatial_input(prev, channels, 2, layer.kind)  # type: ignore[return-value]


def _avgpool_map(prev: LayerInfo, layer: LayerInfo, params) -> LayerMap:
    torch = _torch()
    F = torch.nn.functional
    in_shape = _pooled_input(prev, layer)
    kernel, stride, padding = _pool_config(layer)
    cfg = layer.config
    kw = dict(kernel_size=kernel, stride=stride, padding=padding,
              ceil_mode=bool(cfg.get("ceil_mode", False)),
              count_include_pad=bool(cfg.get("count_include_pad", True)),
              divisor_override=cfg.get("divisor_override"))

    def forward(x):
        y = F.avg_pool2d(x.reshape((x.shape[0],) + in_shape), **kw)
        return y.reshape(y.shape[0], -1)

    sample = F.avg_pool2d(torch.zeros((1,) + in_shape, dtype=torch.float64), **kw)
    op = LayerMap(prev.dim, layer.dim, forward, np.zeros(layer.dim), static=True,
                  description=f"average pooling {kernel} stride {stride}")
    return _check_output(op, layer, sample)


def _adaptive_avgpool_map(prev: LayerInfo, layer: LayerInfo, params) -> LayerMap:
    torch = _torch()
    F = torch.nn.functional
    in_shape = _pooled_input(prev, layer)
    size = layer.config.get("output_size")
    size = tuple(size) if isinstance(size, list) else size

    def forward(x):
        y = F.adaptive_avg_pool2d(x.reshape((x.shape[0],) + in_shape), size)
        return y.reshape(y.shape[0], -1)

    sample = F.adaptive_avg_pool2d(torch.zeros((1,) + in_shape, dtype=torch.float64), size)
    op = LayerMap(prev.dim, layer.dim, forward, np.zeros(layer.dim), static=True,
                  description=f"adaptive average pooling to {size}")
    return _check_output(op, layer, sample)


def _maxpool_map(prev: LayerInfo, layer: LayerInfo, params) -> LayerMap:
    """The article's replacement of max-pooling: average pooling over the same windows.

    The transition aligns this linear map by its SVD; the true output is reached through
    the per-point, per-coordinate scaling ``max / average`` (``Transition.scale``).
    """
    torch = _torch()
    F = torch.nn.functional
    in_shape = _pooled_input(prev, layer)
    kernel, stride, padding = _pool_config(layer)
    cfg = layer.config
    dilation = _ints(cfg.get("dilation", 1), 2, "dilation")
    ceil_mode = bool(cfg.get("ceil_mode", False))
    channels = in_shape[0]
    if dilation == (1, 1):
        # count_include_pad=False: max-pooling pads with -inf, so padding never wins a window;
        # its average is over the real entries of the window.
        def avg(x4):
            return F.avg_pool2d(x4, kernel, stride, padding, ceil_mode, count_include_pad=False)
    elif padding == (0, 0) and not ceil_mode:
        ones = torch.full((channels, 1) + kernel, 1.0 / (kernel[0] * kernel[1]), dtype=torch.float64)

        def avg(x4):  # a dilated window: a depthwise convolution with a constant kernel
            return F.conv2d(x4, ones.to(x4.dtype), None, stride, 0, dilation, channels)
    else:
        raise _Unsupported("max-pooling with dilation and padding (or ceil_mode) has no "
                           "average-pooling replacement here")

    def forward(x):
        y = avg(x.reshape((x.shape[0],) + in_shape))
        return y.reshape(y.shape[0], -1)

    def true_layer(x):
        y = F.max_pool2d(x.reshape((x.shape[0],) + in_shape), kernel, stride, padding, dilation,
                         ceil_mode)
        return y.reshape(y.shape[0], -1)

    sample = avg(torch.zeros((1,) + in_shape, dtype=torch.float64))
    op = LayerMap(prev.dim, layer.dim, forward, np.zeros(layer.dim), static=True,
                  description=f"max pooling {kernel} stride {stride}, replaced by average pooling",
                  layer_fn=true_layer)
    return _check_output(op, layer, sample)


#: Layer kind -> builder ``(previous LayerInfo, LayerInfo, params) -> LayerMap``.
_MAP_BUILDERS: dict[str, Callable[[LayerInfo, LayerInfo, Mapping | None], LayerMap]] = {
    "linear": _linear_map,
    "conv1d": _conv_map,
    "conv2d": _conv_map,
    "conv3d": _conv_map,
    "avgpool2d": _avgpool_map,
    "adaptiveavgpool2d": _adaptive_avgpool_map,
    "maxpool2d": _maxpool_map,
}


def register_layer_map(kind: str, builder: Callable[[LayerInfo, LayerInfo, Mapping | None], LayerMap]
                       ) -> None:
    """Teach the alignment an affine layer kind (e.g. a custom module).

    ``builder(previous, layer, params)`` returns a :class:`LayerMap` whose ``forward``
    is the layer without its bias on flattened rows; raise ``ValueError`` if it does not
    apply. ``kind`` is the recorded kind (the lowercased class name).
    """
    def checked(prev, layer, params):
        try:
            return builder(prev, layer, params)
        except ValueError as err:
            raise _Unsupported(str(err)) from None

    _MAP_BUILDERS[str(kind).lower()] = checked


def layer_map(previous: LayerInfo, layer: LayerInfo, params: Mapping[str, np.ndarray] | None = None
              ) -> LayerMap:
    """The affine map of ``layer`` applied to the flattened output of ``previous``.

    Raises
    ------
    ValueError
        If the kind is not an affine one this module knows, or the shapes, config or
        parameters do not fit; the message says which.
    """
    builder = _MAP_BUILDERS.get(layer.kind.lower())
    if builder is None:
        raise ValueError(f"layer kind {layer.kind!r} has no affine map here; known: "
                         f"{', '.join(sorted(_MAP_BUILDERS))}")
    try:
        return builder(previous, layer, params)
    except _Unsupported as err:
        raise ValueError(f"{layer.name}: {err}") from None


def _coordinatewise_fn(layer: LayerInfo, params: Mapping | None = None) -> Callable[[Any], Any] | None:
    """The torch function of a coordinate-wise or identity layer, when we can rebuild it."""
    from grandtour.align.replay import coordinatewise_fn

    if layer.kind.lower() in IDENTITIES:
        return lambda x: x
    return coordinatewise_fn(layer, params)


def _builder(kind: str) -> Callable[[LayerInfo, LayerInfo, Mapping | None], LayerMap] | None:
    """The builder registered for the lowercased ``kind``, or None.

    Looked up in the registry at call time, so a kind registered after import is seen.
    """
    return _MAP_BUILDERS.get(kind)


def _known_kinds() -> list[str]:
    """The affine kinds with a builder, sorted (for messages)."""
    return sorted(_MAP_BUILDERS)
