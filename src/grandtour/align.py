"""Layer dynamics: each layer's transition from the previous one, aligned by the SVD.

The article's second use case shows the same points flowing from one layer to the next.
For a linear layer ``X_l = X_{l-1} M + b`` with ``M = U S V^T``, it draws

    (1 - t) (X_{l-1} U) + t (X_l V),        t in [0, 1],

so the rotational part of the layer (``U``, ``V``) is invisible and only the scaling
``S`` (and the shift ``b V``) moves the points: ``X_l V = (X_{l-1} U) S + b V``
coordinate-wise. This module computes such a :class:`Transition` for every recorded
layer and its previous recorded layer, for every layer kind:

=====================  ======================================================================
kind                   transition
=====================  ======================================================================
linear, conv1d/2d/3d,  the affine map ``X M + b``, aligned by the SVD of ``M``; convolutions
avgpool2d,             are used as operators (torch forward + its adjoint), never as a dense
adaptiveavgpool2d      matrix of the full layer
maxpool2d              the article's replacement: average pooling (linear, SVD-aligned) times
                       a per-point, per-coordinate scaling ``max / average`` (see ``scale``)
relu, softmax, tanh,   interpolation in the standard basis (``basis_in = basis_out = I``)
... (coordinate-wise)
flatten, dropout, ...  the identity
anything else          a least-squares affine fit ``X_{l-1} -> X_l``, labelled ``exact=False``,
                       with an :class:`AlignmentWarning` naming the layer and its module
=====================  ======================================================================

A layer wider than ``threshold`` (default 1024) coordinates is shown in a fixed linear
*reduction*: the leading principal directions of its activations pooled over epochs
and splits, ``Z = X R`` with ``R`` of shape ``(dim, r)``, orthonormal columns,
``r <= threshold``, the same at every epoch. Transitions touching a reduced layer are
aligned by the SVD of the map *between the reduced coordinates*,
``C = R_{l-1}^T M R_l``, formed through the operator (``R = I`` on a side that is not
reduced). ``docs/align.md`` states the maths, the storage layout and the choices.

``align_run`` (``grandtour align RUN``) precomputes the reductions, the reduced
coordinates and the bases of every (layer, epoch) once and stores them under
``RUN/alignment/``, so that :func:`load_transition` and a viewer only read.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grandtour.errors import GrandTourError, StoreError
from grandtour.store import LayerInfo, Run, StoreKeyError, encode_float16, write_json_atomic

__all__ = [
    "DEFAULT_THRESHOLD",
    "AlignmentWarning",
    "Aligner",
    "LayerMap",
    "Reduction",
    "Transition",
    "align_command",
    "align_run",
    "fit_reduction",
    "layer_coordinates",
    "layer_map",
    "load_reduction",
    "load_transition",
    "operator_svd",
    "register_layer_map",
    "transition",
    "transition_from_arrays",
]

#: Layers wider than this many coordinates are shown in a fixed reduction.
DEFAULT_THRESHOLD = 1024
#: Version of the ``RUN/alignment`` layout; a reader refuses a newer one.
ALIGNMENT_VERSION = 1
ALIGNMENT_DIR = "alignment"
COMMIT_FILE = "commit.json"
#: A recorded layer and the layer's map applied to the recorded previous layer may differ
#: by this much (relative Frobenius norm) before we decide the previous recorded layer is
#: not the layer's input. Float16 storage alone gives ~1e-3.
VERIFY_RTOL = 2e-2
#: At most this many epochs (spread over the run, first and last included) feed the
#: principal directions of a wide layer; every epoch is then shown in that basis.
REDUCTION_EPOCHS = 16
#: Up to this width the reduction diagonalises the exact covariance (one pass over the
#: data); wider layers use a streamed randomized range finder (three passes).
EXACT_COVARIANCE_DIM = 4096
#: Variances below this fraction of the largest are float16 rounding noise, not directions.
RANK_RTOL = 1e-6

# Coordinate-wise maps (the picture interpolates each coordinate on its own). Softmax is
# not strictly coordinate-wise (it normalises), but the article interpolates it in the
# standard basis, and so do we. Batch norm in eval mode is a per-coordinate affine map.
COORDINATEWISE = frozenset({
    "relu", "relu6", "leakyrelu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "silu",
    "mish", "tanh", "sigmoid", "hardtanh", "hardsigmoid", "hardswish", "softplus", "softsign",
    "tanhshrink", "softshrink", "hardshrink", "threshold", "logsigmoid", "softmax",
    "logsoftmax", "batchnorm1d", "batchnorm2d", "batchnorm3d",
})
# Reshapes and eval-time identities: the same vector, the same coordinates.
IDENTITIES = frozenset({
    "flatten", "unflatten", "identity", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alphadropout", "featurealphadropout",
})


class AlignmentWarning(UserWarning):
    """A layer could not be aligned by its own rule; the message names it and the fallback."""


# ============================================================================ results


@dataclass(frozen=True)
class Reduction:
    """The fixed linear reduction of a wide layer: ``Z = X @ basis``.

    Attributes
    ----------
    layer : str
    basis : ndarray of shape (dim, r), float32
        Orthonormal columns: the leading principal directions of the layer's
        activations pooled over ``fit_epochs`` and every split, in decreasing order of
        variance. The same for every epoch of the run.
    mean : ndarray of shape (dim,), float64
        The pooled mean (for the bookkeeping of what the reduction drops; ``Z`` is not
        centred).
    variance_kept : float
        Fraction of the pooled (centred) variance that the basis keeps, in [0, 1].
    total_variance : float
        The pooled variance, ``trace(cov)``.
    fit_epochs : list of int
    points : int
        Number of (finite) activation rows the fit saw.
    method : str
        ``"covariance"`` (exact eigendecomposition) or ``"randomized"``.
    """

    layer: str
    basis: np.ndarray
    mean: np.ndarray
    variance_kept: float
    total_variance: float
    fit_epochs: list[int] = field(default_factory=list)
    points: int = 0
    method: str = "covariance"

    @property
    def dim(self) -> int:
        return int(self.basis.shape[0])

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])


@dataclass(frozen=True)
class Transition:
    """One layer's transition from the previous recorded layer, for one epoch and split.

    The viewer draws ``(1 - t) * start + t * end`` for ``t`` from 0 to 1. Both are in one
    common ``k``-dimensional basis, ``k = max(d_prev, d)``, where ``d_prev`` and ``d`` are
    the displayed widths of the two layers (their dimension, or the rank of their
    reduction); the narrower side is padded with zero columns.

    Attributes
    ----------
    layer, previous : str
        This layer and the previous recorded layer.
    epoch : int
    split : str
    kind : str
        The layer's kind as recorded.
    method : str
        ``"svd"`` (affine map aligned by its SVD), ``"maxpool"`` (average-pooling
        replacement aligned by its SVD), ``"coordinatewise"``, ``"identity"`` or
        ``"lstsq"`` (the fallback: least-squares affine fit).
    start : ndarray of shape (N, k)
        ``pad(Z_prev @ basis_in)``: the previous layer's points.
    end : ndarray of shape (N, k)
        ``pad(Z @ basis_out)``: this layer's points.
    basis_in : ndarray of shape (d_prev, d_prev)
        Orthogonal. ``Z_prev = start[:, :d_prev] @ basis_in.T``.
    basis_out : ndarray of shape (d, d)
        Orthogonal. ``Z = end[:, :d] @ basis_out.T``.
    singular_values : ndarray of shape (min(d_prev, d),) or None
        Of the aligned linear part (``svd``, ``maxpool``, ``lstsq``), decreasing.
    gain, offset : ndarray of shape (k,) or None
        ``end ~= start * gain + offset`` coordinate-wise: ``gain`` is the singular values
        padded with zeros, ``offset = b_eff @ basis_out`` padded. Equality holds to
        rounding for an exact, unreduced affine layer.
    scale : ndarray of shape (N, dim) or None
        Max-pooling only: ``max / average`` for every point and output coordinate (in
        the output's standard basis); NaN where the average is 0.
    exact : bool
        True when the layer's own rule was applied and the recorded previous layer was
        checked to be its input (where a check exists). False for the fallback.
    note : str
        What is approximate and why (fallback reason, reduction), or ``""``.
    residual : float or None
        Relative Frobenius residual of the check ``X_l ~ f(X_{l-1})`` (about 1e-3 from
        float16 storage), or of the least-squares fit.
    variance_kept : tuple of float
        ``(previous, this)``: fraction of this epoch and split's variance that each
        layer's reduction keeps (1.0 for a layer that is not reduced).
    reduced : tuple of bool
        ``(previous, this)``: whether each side is shown in a reduction.
    """

    layer: str
    previous: str
    epoch: int
    split: str
    kind: str
    method: str
    start: np.ndarray
    end: np.ndarray
    basis_in: np.ndarray
    basis_out: np.ndarray
    singular_values: np.ndarray | None
    gain: np.ndarray | None
    offset: np.ndarray | None
    scale: np.ndarray | None
    exact: bool
    note: str
    residual: float | None
    variance_kept: tuple[float, float]
    reduced: tuple[bool, bool]

    @property
    def k(self) -> int:
        """Width of ``start`` and ``end``."""
        return int(self.start.shape[1])

    def at(self, t: float) -> np.ndarray:
        """The points at time ``t``: ``(1 - t) * start + t * end``, shape (N, k)."""
        return (1.0 - t) * self.start + t * self.end


@dataclass(frozen=True)
class _Alignment:
    """The epoch-level part of a transition: what is stored per (layer, epoch)."""

    layer: str
    previous: str
    kind: str
    method: str
    basis_in: np.ndarray | None      # None: identity (saves storing I)
    basis_out: np.ndarray | None
    d_in: int
    d_out: int
    singular_values: np.ndarray | None
    offset: np.ndarray | None        # (d_out,): b_eff @ basis_out
    exact: bool
    note: str
    residual: float | None
    static: bool = False              # the same for every epoch

    def bases(self) -> tuple[np.ndarray, np.ndarray]:
        bi = np.eye(self.d_in) if self.basis_in is None else self.basis_in
        bo = np.eye(self.d_out) if self.basis_out is None else self.basis_out
        return bi, bo


# ============================================================================ layer maps


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
    """

    n_in: int
    n_out: int
    forward: Callable[[Any], Any]
    bias: np.ndarray
    static: bool = False
    description: str = ""
    layer_fn: Callable[[Any], Any] | None = None

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

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x M + bias`` for an array of rows ``(N, n_in)``; returns ``(N, n_out)`` float64."""
        torch = _torch()
        with torch.no_grad():
            y = self.forward(torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64)))
        return y.numpy() + self.bias

    def apply_layer(self, x: np.ndarray) -> np.ndarray:
        """The true layer on rows ``(N, n_in)`` (``layer_fn`` if set, else :meth:`apply`)."""
        if self.layer_fn is None:
            return self.apply(x)
        torch = _torch()
        with torch.no_grad():
            return self.layer_fn(torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64))).numpy()

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


def operator_svd(op: LayerMap, k: int, *, tol: float = 0.0, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading ``k`` singular triplets of a layer's ``M`` from the operator alone.

    ARPACK (``scipy.sparse.linalg.svds``) on the :meth:`LayerMap.linear_operator`: each
    iteration is one forward and one adjoint call of the layer, so a convolution is
    never materialised (its dense matrix has ``n_in * n_out`` entries: 32 GiB for 64
    channels at 32x32).

    Parameters
    ----------
    op : LayerMap
    k : int
        ``1 <= k < min(n_in, n_out)``.
    tol : float, default 0 (machine precision)
    seed : int
        Seed of the starting vector (for reproducible output).

    Returns
    -------
    u : ndarray of shape (n_in, k)
    s : ndarray of shape (k,), decreasing
    v : ndarray of shape (n_out, k)
        ``M v_i = s_i u_i``: ``u`` spans the input directions, ``v`` the output ones.
    """
    from scipy.sparse.linalg import svds

    if not 1 <= k < min(op.n_in, op.n_out):
        raise ValueError(f"k must be in [1, {min(op.n_in, op.n_out) - 1}], got {k}")
    v0 = np.random.default_rng(seed).standard_normal(min(op.n_in, op.n_out))
    u, s, vt = svds(op.linear_operator(), k=k, tol=tol, v0=v0)
    order = np.argsort(s)[::-1]
    return u[:, order], s[order], vt[order].T


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
    if w.ndim != 2 or w.shape[1] != prev.dim or w.shape[0] != layer.dim:
        raise _Unsupported(f"its weight has shape {w.shape}, but the previous recorded layer "
                           f"{prev.name!r} has {prev.dim} coordinates and this one {layer.dim}")
    wt = torch.as_tensor(w)
    return LayerMap(prev.dim, layer.dim, lambda x: x @ wt.T, _bias(params, layer, layer.dim),
                    description=f"linear {prev.dim} -> {layer.dim}")


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
        y = conv(x, wt, None, stride, pad_arg, dilation, groups)
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
            return F.conv2d(x4, ones, None, stride, 0, dilation, channels)
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


def _coordinatewise_fn(layer: LayerInfo) -> Callable[[Any], Any] | None:
    """The torch function of a coordinate-wise or identity layer, when we can rebuild it."""
    torch = _torch()
    F = torch.nn.functional
    kind = layer.kind.lower()
    if kind in IDENTITIES:
        return lambda x: x
    simple = {"relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
              "silu": F.silu, "softsign": F.softsign, "logsigmoid": F.logsigmoid}
    if kind in simple:
        return simple[kind]
    if kind == "leakyrelu":
        slope = float(layer.config.get("negative_slope", 0.01))
        return lambda x: F.leaky_relu(x, slope)
    if kind in ("softmax", "logsoftmax") and len(layer.shape) == 1 and layer.config.get("dim", 1) in (1, -1):
        return (lambda x: torch.softmax(x, dim=1)) if kind == "softmax" else (lambda x: torch.log_softmax(x, dim=1))
    return None


# ============================================================================ alignment maths


def _complete(u: np.ndarray, n: int) -> np.ndarray:
    """Orthonormal ``(n, n)`` whose first columns are the orthonormal columns of ``u``."""
    from scipy.linalg import null_space

    if u.shape[1] >= n:
        return u
    if u.shape[1] == 0:
        return np.eye(n)
    return np.hstack([u, null_space(u.T)])


def _fix_signs(u: np.ndarray, v: np.ndarray, m: int) -> None:
    """Make the SVD deterministic: the largest entry of each column of ``u`` positive
    (the paired column of ``v`` flips with it); unpaired columns on their own."""
    for mat, start in ((u, 0), (v, m)):
        cols = mat[:, start:] if start else mat
        if cols.size == 0:
            continue
        idx = np.abs(cols).argmax(axis=0)
        signs = np.sign(cols[idx, np.arange(cols.shape[1])])
        signs[signs == 0] = 1.0
        if start:
            mat[:, start:] *= signs
        else:
            mat *= signs
            v[:, :m] *= signs[:m]


def _svd_alignment(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full SVD ``C = U S V^T`` with square orthogonal ``U`` (d_in) and ``V`` (d_out).

    When the columns of ``C`` are orthogonal (non-overlapping pooling, the identity, a
    permutation, a rotation), the SVD is degenerate and LAPACK would pick an arbitrary
    basis inside each group of equal singular values; we choose ``V`` = the standard
    output basis (columns sorted by decreasing norm, ties in their natural order), so a
    coordinate-wise effect of the layer (max-pooling's scaling) stays coordinate-wise.

    Returns
    -------
    u : (d_in, d_in), s : (min(d_in, d_out),), v : (d_out, d_out)
    """
    import scipy.linalg

    d_in, d_out = c.shape
    m = min(d_in, d_out)
    norms2 = np.einsum("ij,ij->j", c, c)
    top = float(norms2.max()) if norms2.size else 0.0
    if top == 0.0:
        return np.eye(d_in), np.zeros(m), np.eye(d_out)
    gram = c.T @ c
    np.fill_diagonal(gram, 0.0)
    order = np.argsort(-norms2, kind="stable")
    norms = np.sqrt(norms2[order])
    nonzero = int((norms > 1e-12 * math.sqrt(top)).sum())
    if float(np.abs(gram).max(initial=0.0)) <= 1e-12 * top and nonzero <= m:
        u = _complete(c[:, order[:nonzero]] / norms[:nonzero], d_in)
        v = np.eye(d_out)[:, order]
        return u, np.concatenate([norms[:nonzero], np.zeros(m - nonzero)]), v
    try:
        u, s, vt = scipy.linalg.svd(c, full_matrices=True, lapack_driver="gesdd", check_finite=False)
    except np.linalg.LinAlgError:  # gesdd rarely fails to converge; gesvd is slower but robust
        u, s, vt = scipy.linalg.svd(c, full_matrices=True, lapack_driver="gesvd", check_finite=False)
    v = np.ascontiguousarray(vt.T)
    _fix_signs(u, v, m)
    return u, s, v


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a).all(axis=1)
    return ok


def _relative_residual(actual: np.ndarray, predicted: np.ndarray) -> float:
    ok = _finite_rows(actual, predicted)
    diff = float(np.linalg.norm(actual[ok] - predicted[ok]))
    base = float(np.linalg.norm(actual[ok]))
    if base == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / base


def _project(x: np.ndarray, red: Reduction | None) -> np.ndarray:
    return x if red is None else x @ red.basis.astype(np.float64)


def _module_name(layer: LayerInfo) -> str:
    return layer.module or layer.kind


def _lstsq_alignment(prev: LayerInfo, layer: LayerInfo, zs_prev: Sequence[np.ndarray],
                     zs_layer: Sequence[np.ndarray], reason: str) -> _Alignment:
    """The fallback: the least-squares affine map between the displayed coordinates."""
    import scipy.linalg

    warnings.warn(f"layer {layer.name!r} ({_module_name(layer)}): {reason}; its transition from "
                  f"{prev.name!r} is a least-squares affine fit, labelled exact=False",
                  AlignmentWarning, stacklevel=3)
    zp = np.concatenate(zs_prev)
    zl = np.concatenate(zs_layer)
    ok = _finite_rows(zp, zl)
    zp, zl = zp[ok], zl[ok]
    d_in, d_out = zp.shape[1], zl.shape[1]
    if zp.shape[0] == 0:
        a, mp, ml = np.zeros((d_in, d_out)), np.zeros(d_in), np.zeros(d_out)
    else:
        mp, ml = zp.mean(axis=0), zl.mean(axis=0)
        a = scipy.linalg.lstsq(zp - mp, zl - ml, check_finite=False)[0]  # minimum-norm if N < d
    u, s, v = _svd_alignment(a)
    offset = (ml - mp @ a) @ v
    residual = _relative_residual(zl - ml, (zp - mp) @ a) if zp.shape[0] else None
    note = (f"least-squares linear fit from {prev.name!r} (relative residual "
            f"{residual if residual is not None else float('nan'):.3g}): {reason}")
    return _Alignment(layer.name, prev.name, layer.kind, "lstsq", u, v, d_in, d_out, s, offset,
                      False, note, residual)


def _reduction_note(red_p: Reduction | None, red_l: Reduction | None) -> str:
    parts = [f"{r.layer!r} shown in {r.rank} of {r.dim} dims ({100 * r.variance_kept:.1f} % of the "
             "pooled variance)" for r in (red_p, red_l) if r is not None]
    return "; ".join(parts)


def _align(prev: LayerInfo, layer: LayerInfo, params: Mapping | None,
           xs_prev: Sequence[np.ndarray], xs_layer: Sequence[np.ndarray],
           red_p: Reduction | None, red_l: Reduction | None,
           static_cache: dict[str, _Alignment] | None = None) -> _Alignment:
    """Align one (layer, epoch) from the full activations of every split.

    ``xs_prev`` / ``xs_layer``: one ``(N_split, dim)`` float64 array per split, used to
    check that the recorded previous layer is the layer's input, and for the fallback.
    """
    kind = layer.kind.lower()
    d_in = prev.dim if red_p is None else red_p.rank
    d_out = layer.dim if red_l is None else red_l.rank
    red_note = _reduction_note(red_p, red_l)

    def fallback(reason: str) -> _Alignment:
        return _lstsq_alignment(prev, layer, [_project(x, red_p) for x in xs_prev],
                                [_project(x, red_l) for x in xs_layer], reason)

    def check(fn: Callable[[np.ndarray], np.ndarray]) -> float:
        actual = np.concatenate(xs_layer)
        return _relative_residual(actual, fn(np.concatenate(xs_prev)))

    cached = (static_cache or {}).get(layer.name)

    if kind in COORDINATEWISE or kind in IDENTITIES:
        method = "identity" if kind in IDENTITIES else "coordinatewise"
        if prev.dim != layer.dim:
            return fallback(f"a {kind} layer keeps the number of coordinates, but {prev.name!r} has "
                            f"{prev.dim} and {layer.name!r} {layer.dim}, so {prev.name!r} is not its input")
        fn = _coordinatewise_fn(layer)
        residual = None
        exact, note = True, red_note
        if fn is not None:
            torch = _torch()
            residual = check(lambda x: fn(torch.as_tensor(x)).numpy())
            if residual > VERIFY_RTOL:
                exact = False
                note = "; ".join(filter(None, [
                    f"the recorded {prev.name!r} is not this layer's input (relative residual "
                    f"{residual:.3g}); interpolated in the standard basis anyway", red_note]))
                warnings.warn(f"layer {layer.name!r} ({_module_name(layer)}): {note}",
                              AlignmentWarning, stacklevel=2)
        if cached is not None:
            base = cached
        elif red_p is None and red_l is None:
            base = _Alignment(layer.name, prev.name, layer.kind, method, None, None, d_in, d_out,
                              None, None, True, "", None, static=True)
        else:
            # The identity seen between two reductions: the principal vectors of the two
            # subspaces, paired by the SVD of R_p^T R_l (the standard basis when R_p = R_l).
            if red_p is not None and red_l is not None:
                c = red_p.basis.astype(np.float64).T @ red_l.basis.astype(np.float64)
            elif red_p is None:
                c = red_l.basis.astype(np.float64)
            else:
                c = red_p.basis.astype(np.float64).T
            u, s, v = _svd_alignment(c)
            base = _Alignment(layer.name, prev.name, layer.kind, method, u, v, d_in, d_out, s,
                              None, True, "", None, static=True)
            if static_cache is not None:
                static_cache[layer.name] = base
        return _replace(base, exact=exact, note=note, residual=residual)

    if kind not in _MAP_BUILDERS:
        return fallback(f"layer kind {layer.kind!r} is not one grandtour knows how to align (it knows "
                        f"{', '.join(sorted(_MAP_BUILDERS))}, coordinate-wise activations and "
                        "reshapes; grandtour.align.register_layer_map teaches it an affine one)")
    try:
        op = _MAP_BUILDERS[kind](prev, layer, params)
    except _Unsupported as err:
        return fallback(str(err))
    residual = check(op.apply_layer)
    if not residual <= VERIFY_RTOL:
        return fallback(f"the recorded {prev.name!r} is not this layer's input: applying the "
                        f"layer to it misses the recorded output by {residual:.3g} (relative)")
    method = "maxpool" if kind == "maxpool2d" else "svd"
    if cached is not None and op.static:
        return _replace(cached, residual=residual, note=red_note)
    rp = None if red_p is None else red_p.basis.astype(np.float64)
    rl = None if red_l is None else red_l.basis.astype(np.float64)
    u, s, v = _svd_alignment(op.compress(rp, rl))
    # b_eff: the bias seen in the reduced coordinates, plus the constant that the part of
    # the previous layer's mean outside its reduction sends into the kept coordinates.
    b_eff = op.bias if rl is None else op.bias @ rl
    if red_p is not None:
        mu_out = red_p.mean - (red_p.mean @ rp) @ rp.T
        pushed = op.apply(mu_out[None, :])[0] - op.bias
        b_eff = b_eff + (pushed if rl is None else pushed @ rl)
    al = _Alignment(layer.name, prev.name, layer.kind, method, u, v, d_in, d_out, s, b_eff @ v,
                    True, red_note, residual, static=op.static)
    if op.static and static_cache is not None:
        static_cache[layer.name] = al
    return al


def _replace(al: _Alignment, **changes) -> _Alignment:
    from dataclasses import replace

    return replace(al, **changes)


def _pad(x: np.ndarray, k: int) -> np.ndarray:
    if x.shape[-1] == k:
        return x
    out = np.zeros(x.shape[:-1] + (k,), dtype=x.dtype)
    out[..., : x.shape[-1]] = x
    return out


def _make_transition(al: _Alignment, z_prev: np.ndarray, z_layer: np.ndarray, epoch: int,
                     split: str, *, scale: np.ndarray | None = None,
                     variance_kept: tuple[float, float] = (1.0, 1.0),
                     reduced: tuple[bool, bool] = (False, False)) -> Transition:
    k = max(al.d_in, al.d_out)
    bi, bo = al.bases()
    start = z_prev if al.basis_in is None else z_prev @ bi
    end = z_layer if al.basis_out is None else z_layer @ bo
    s = al.singular_values
    return Transition(
        layer=al.layer, previous=al.previous, epoch=int(epoch), split=split, kind=al.kind,
        method=al.method, start=_pad(np.asarray(start, dtype=np.float64), k),
        end=_pad(np.asarray(end, dtype=np.float64), k), basis_in=bi, basis_out=bo,
        singular_values=s, gain=None if s is None or al.method not in ("svd", "maxpool", "lstsq")
        else _pad(s, k), offset=None if al.offset is None else _pad(al.offset, k), scale=scale,
        exact=al.exact, note=al.note, residual=al.residual,
        variance_kept=(float(variance_kept[0]), float(variance_kept[1])), reduced=reduced)


def _maxpool_scale(prev: LayerInfo, layer: LayerInfo, x_prev: np.ndarray, x_layer: np.ndarray
                   ) -> np.ndarray | None:
    """``max / average`` per point and output coordinate (NaN where the average is ~0)."""
    try:
        op = _maxpool_map(prev, layer, None)
    except _Unsupported:
        return None
    avg = op.apply(x_prev)
    with np.errstate(divide="ignore", invalid="ignore"):
        tiny = 1e-12 * max(1.0, float(np.nanmax(np.abs(x_layer), initial=0.0)))
        return np.where(np.abs(avg) > tiny, x_layer / avg, np.nan)


def _variance_kept(x: np.ndarray, z: np.ndarray) -> float:
    """Fraction of the centred variance of the rows of ``x`` kept in ``z = x R``."""
    ok = _finite_rows(x)
    if not ok.any():
        return 1.0
    total = float(((x[ok] - x[ok].mean(axis=0)) ** 2).sum())
    kept = float(((z[ok] - z[ok].mean(axis=0)) ** 2).sum())
    return 1.0 if total == 0.0 else min(1.0, kept / total)


def transition_from_arrays(previous: LayerInfo, layer: LayerInfo, x_prev: np.ndarray,
                           x: np.ndarray, params: Mapping[str, np.ndarray] | None = None, *,
                           reduction_in: Reduction | None = None,
                           reduction_out: Reduction | None = None, epoch: int = 0,
                           split: str = "") -> Transition:
    """The transition of ``layer`` from ``previous`` for given activations (no run needed).

    Parameters
    ----------
    previous, layer : LayerInfo
        Kinds, shapes and configs as a Recorder writes them.
    x_prev : ndarray of shape (N, previous.dim)
    x : ndarray of shape (N, layer.dim)
    params : mapping name -> ndarray, optional
        The layer's parameters (``weight``, ``bias``) for linear and convolution layers.
    reduction_in, reduction_out : Reduction, optional
        Show a side in that reduction (as :func:`align_run` does for wide layers).

    Returns
    -------
    Transition
    """
    x_prev = np.asarray(x_prev, dtype=np.float64).reshape(len(x_prev), -1)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if x_prev.shape != (x.shape[0], previous.dim) or x.shape[1] != layer.dim:
        raise ValueError(f"x_prev has shape {x_prev.shape} and x {x.shape}; expected (N, "
                         f"{previous.dim}) and (N, {layer.dim})")
    al = _align(previous, layer, params, [x_prev], [x], reduction_in, reduction_out)
    zp, zl = _project(x_prev, reduction_in), _project(x, reduction_out)
    scale = _maxpool_scale(previous, layer, x_prev, x) if al.method == "maxpool" else None
    vk = (1.0 if reduction_in is None else _variance_kept(x_prev, zp),
          1.0 if reduction_out is None else _variance_kept(x, zl))
    return _make_transition(al, zp, zl, epoch, split, scale=scale, variance_kept=vk,
                            reduced=(reduction_in is not None, reduction_out is not None))


# ============================================================================ reductions


def _spread(epochs: Sequence[int], most: int) -> list[int]:
    """At most ``most`` epochs, evenly spread, the first and last included."""
    epochs = sorted(epochs)
    if len(epochs) <= most:
        return list(epochs)
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, most)).astype(int))
    return [epochs[i] for i in idx]


def _fit_pca(blocks: Callable[[], Iterator[np.ndarray]], dim: int, r_max: int, *,
             seed: int = 0, power_iterations: int = 1
             ) -> tuple[np.ndarray, np.ndarray, float, float, int, str]:
    """Leading principal directions of rows streamed in blocks (never all in memory).

    Returns (basis (dim, r), mean (dim,), variance kept, total variance, points, method).
    ``r = min(r_max, numerical rank)``, at least 1.
    """
    import scipy.linalg

    def moments() -> tuple[int, np.ndarray, float]:
        n, s, sq = 0, np.zeros(dim), 0.0
        for x in blocks():
            n += x.shape[0]
            s += x.sum(axis=0)
            sq += float(np.einsum("ij,ij->", x, x))
        return n, s, sq

    if dim <= EXACT_COVARIANCE_DIM:
        method = "covariance"
        n, s, cov = 0, np.zeros(dim), np.zeros((dim, dim))
        for x in blocks():
            n += x.shape[0]
            s += x.sum(axis=0)
            cov += x.T @ x
        if n == 0:
            raise GrandTourError("no finite activations to fit the reduction on")
        mean = s / n
        cov = cov / n - np.outer(mean, mean)
        evals, evecs = scipy.linalg.eigh(cov, check_finite=False)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        total = float(np.trace(cov))
    else:
        method = "randomized"
        n, s, sq = moments()
        if n == 0:
            raise GrandTourError("no finite activations to fit the reduction on")
        mean = s / n
        total = sq / n - float(mean @ mean)
        width = min(dim, r_max + 16)  # oversampling: the leading r directions come out accurate

        def cov_times(q: np.ndarray) -> np.ndarray:  # cov @ q, one pass over the data
            acc = np.zeros_like(q)
            for x in blocks():
                acc += x.T @ (x @ q)
            return acc / n - np.outer(mean, mean @ q)

        q = np.random.default_rng(seed).standard_normal((dim, width))
        for _ in range(1 + power_iterations):
            q = scipy.linalg.qr(cov_times(q), mode="economic", check_finite=False)[0]
        # Rayleigh-Ritz on span(q): the exact variances of the returned directions.
        evals, w = scipy.linalg.eigh(q.T @ cov_times(q), check_finite=False)
        evals, evecs = evals[::-1], q @ w[:, ::-1]
    evals = np.maximum(evals, 0.0)
    # Directions with less than 1e-6 of the largest variance are below the resolution of
    # float16 storage (a relative error of 2**-11 per value): treated as zero, not kept.
    rank = int((evals > RANK_RTOL * max(float(evals[0]), 1e-300)).sum()) if evals.size else 0
    r = max(1, min(r_max, rank))
    kept = 1.0 if total <= 0.0 else min(1.0, float(evals[:r].sum()) / total)
    basis = np.ascontiguousarray(evecs[:, :r])
    _fix_signs(basis, np.zeros((0, 0)), 0)
    return basis, mean, kept, max(total, 0.0), n, method


def _activation_blocks(run: Run, layer: LayerInfo, epochs: Sequence[int]
                       ) -> Callable[[], Iterator[np.ndarray]]:
    def gen() -> Iterator[np.ndarray]:
        for epoch in epochs:
            for split in run.splits:
                x = run.activations(layer.name, epoch, split).astype(np.float64)
                yield x[_finite_rows(x)]

    return gen


def fit_reduction(run: Run | str | Path, layer: str, threshold: int = DEFAULT_THRESHOLD, *,
                  max_epochs: int = REDUCTION_EPOCHS) -> Reduction:
    """The fixed reduction of a wide layer: leading principal directions over the run.

    The activations of ``max_epochs`` epochs spread over the run (all of them if fewer;
    a static layer's single copy) and every split are pooled, and the ``r`` directions
    of largest variance kept, ``r = min(threshold, rank)``. The data is streamed one
    (epoch, split) block at a time: exact covariance up to 4096 coordinates, a
    randomized range finder with one power iteration and a Rayleigh-Ritz step above.
    """
    run = _as_run(run)
    info = run.layer(layer)
    if not run.epochs:
        raise StoreError(f"run {run.path} has no completed epoch to fit a reduction on")
    epochs = [run.epochs[0]] if info.static else _spread(run.epochs, max_epochs)
    basis, mean, kept, total, points, method = _fit_pca(
        _activation_blocks(run, info, epochs), info.dim, int(threshold))
    # The stored float32 basis is the definition of the reduction, in memory as on disk.
    return Reduction(layer, basis.astype(np.float32), mean, kept, total, list(epochs), points, method)


# ============================================================================ storage


def _zarr():
    import zarr

    return zarr


class _AlignmentStore:
    """``RUN/alignment``: a Zarr v3 group plus ``commit.json``, written like the run itself.

    Arrays are written first and the commit record is replaced atomically last; readers
    trust only what the commit record lists.
    """

    def __init__(self, run_path: Path, commit: dict):
        self.path = Path(run_path) / ALIGNMENT_DIR
        self.commit = commit
        self._groups: dict[str, Any] = {}

    @classmethod
    def read(cls, run_path: Path) -> _AlignmentStore | None:
        cpath = Path(run_path) / ALIGNMENT_DIR / COMMIT_FILE
        if not cpath.is_file():
            return None
        try:
            doc = json.loads(cpath.read_text(encoding="utf-8"))
            version = doc["grandtour_alignment_version"]
            int(doc["threshold"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StoreError(f"the alignment record {cpath} is corrupt ({err}); realign with "
                             "`grandtour align RUN --force`") from None
        if not isinstance(version, int) or version > ALIGNMENT_VERSION:
            raise StoreError(f"{cpath} was written by a newer grandtour (alignment version "
                             f"{version!r}); upgrade grandtour, or realign with --force")
        for key in ("reductions", "static_maps", "static_coords", "epochs"):
            doc.setdefault(key, {})
        return cls(run_path, doc)

    @classmethod
    def create(cls, run_path: Path, threshold: int) -> _AlignmentStore:
        store = cls(run_path, {"grandtour_alignment_version": ALIGNMENT_VERSION,
                               "threshold": int(threshold), "reductions": {}, "static_maps": {},
                               "static_coords": {}, "epochs": {}})
        store.path.mkdir(parents=True, exist_ok=True)
        store.save()
        return store

    @property
    def threshold(self) -> int:
        return int(self.commit["threshold"])

    def save(self) -> None:
        write_json_atomic(self.path / COMMIT_FILE, self.commit)

    def group(self, writable: bool = False):
        key = "w" if writable else "r"
        if key not in self._groups:
            zarr = _zarr()
            self._groups[key] = zarr.open_group(
                zarr.storage.LocalStore(self.path, read_only=not writable),
                mode="a" if writable else "r", zarr_format=3)
        return self._groups[key]

    def write(self, name: str, data: np.ndarray) -> None:
        from zarr.codecs import ZstdCodec

        data = np.ascontiguousarray(data)
        row = int(np.prod(data.shape[1:], dtype=np.int64)) * data.itemsize if data.ndim else 1
        rows = max(1, min(data.shape[0], (64 << 20) // max(1, row))) if data.ndim else 1
        chunks = (rows,) + data.shape[1:] if data.ndim else ()
        self.group(writable=True).create_array(name, data=data, chunks=chunks, overwrite=True,
                                               compressors=[ZstdCodec(level=1)])

    def read_array(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self.group()[name][...])
        except Exception as err:  # noqa: BLE001 - missing chunk or metadata: a damaged alignment
            raise StoreError(f"alignment array {name!r} in {self.path} is missing or corrupt "
                             f"({type(err).__name__}); realign with `grandtour align RUN --force`") from None

    # -- typed reads --------------------------------------------------------------

    def reduction(self, layer: str) -> Reduction | None:
        doc = self.commit["reductions"].get(layer)
        if doc is None:
            return None
        return Reduction(layer, self.read_array(f"reductions/{layer}/basis"),
                         self.read_array(f"reductions/{layer}/mean"), float(doc["variance_kept"]),
                         float(doc["total_variance"]), list(doc["fit_epochs"]), int(doc["points"]),
                         str(doc["method"]))

    def alignment(self, layer: str, epoch: int) -> _Alignment | None:
        entry = self.commit["epochs"].get(str(epoch), {}).get("layers", {}).get(layer)
        if entry is None:
            return None
        source = entry["source"]
        prefix = f"maps/{layer}/{'static' if source == 'static' else epoch}"
        arrays: dict[str, np.ndarray | None] = dict.fromkeys(
            ("basis_in", "basis_out", "singular_values", "offset"))
        for name in entry.get("arrays", []):
            arrays[name] = self.read_array(f"{prefix}/{name}").astype(np.float64)
        return _Alignment(layer, entry["previous"], entry["kind"], entry["method"],
                          arrays["basis_in"], arrays["basis_out"], int(entry["d_in"]),
                          int(entry["d_out"]), arrays["singular_values"], arrays["offset"],
                          bool(entry["exact"]), str(entry["note"]),
                          None if entry.get("residual") is None else float(entry["residual"]),
                          static=source == "static")

    def coords_entry(self, layer: str, epoch: int, static: bool) -> dict | None:
        if static:
            return self.commit["static_coords"].get(layer)
        return self.commit["epochs"].get(str(epoch), {}).get("coords", {}).get(layer)

    def coords(self, layer: str, epoch: int, split: str, static: bool) -> np.ndarray | None:
        entry = self.coords_entry(layer, epoch, static)
        if entry is None:
            return None
        y = self.read_array(f"coords/{split}/{layer}/{'static' if static else epoch}")
        return y.astype(np.float64) * float(entry["scale"].get(split, 1.0))


def _alignment_arrays(al: _Alignment) -> dict[str, np.ndarray]:
    """The arrays of an alignment to store, as float32: orthonormal to ~1e-7, which no
    picture shows, at half the size (two 1024 x 1024 bases per layer and epoch)."""
    out = {}
    if al.basis_in is not None:
        out["basis_in"] = al.basis_in
    if al.basis_out is not None:
        out["basis_out"] = al.basis_out
    if al.singular_values is not None:
        out["singular_values"] = al.singular_values
    if al.offset is not None:
        out["offset"] = al.offset
    return {name: np.asarray(arr, dtype=np.float32) for name, arr in out.items()}


# ============================================================================ the run side


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else Run.open(run)


class Aligner:
    """Transitions of one run: reads what ``align_run`` stored, computes the rest.

    Parameters
    ----------
    run : Run, str or Path
    threshold : int, optional
        Layers wider than this are reduced. Default: the threshold the run was aligned
        with, else 1024. Stored alignment data is used only when its threshold matches.

    Notes
    -----
    Without stored alignment data, the first use of a wide layer fits its reduction over
    the run (seconds to minutes); ``grandtour align RUN`` does that once and stores it.
    """

    def __init__(self, run: Run | str | Path, *, threshold: int | None = None):
        self.run = _as_run(run)
        self.store = _AlignmentStore.read(self.run.path)
        stored = self.store.threshold if self.store is not None else None
        self.threshold = int(threshold if threshold is not None else (stored or DEFAULT_THRESHOLD))
        if self.threshold < 1:
            raise GrandTourError(f"threshold must be >= 1, got {self.threshold}")
        if self.store is not None and stored != self.threshold:
            self.store = None  # aligned for another threshold: do not mix
        self._reductions: dict[str, Reduction | None] = {}
        self._static: dict[str, _Alignment] = {}
        self._names = [layer.name for layer in self.run.layers]

    def previous(self, layer: str) -> LayerInfo:
        """The recorded layer before ``layer`` (the first layer has none: StoreKeyError)."""
        self.run.layer(layer)
        i = self._names.index(layer)
        if i == 0:
            raise StoreKeyError(f"{layer!r} is the first recorded layer of {self.run.path}; it has no "
                                f"transition. Layers with one: {', '.join(self._names[1:])}")
        return self.run.layers[i - 1]

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
        """What the viewer shows for ``layer``: ``(N, d)`` float64, ``X`` or ``X @ R``."""
        info = self.run.layer(layer)
        if not self.reduced(layer):
            return self.run.activations(layer, epoch, split).astype(np.float64)
        if self.store is not None:
            self.run._entry(epoch)  # noqa: SLF001 - an unknown epoch is an error, stored or not
            self.run._layout.check_split(split)  # noqa: SLF001
            z = self.store.coords(layer, epoch, split, info.static)
            if z is not None:  # read as stored: the basis itself is not needed
                return z
        basis = self.reduction(layer).basis.astype(np.float64)
        return self.run.activations(layer, epoch, split).astype(np.float64) @ basis

    def _variance_kept(self, layer: str, epoch: int, split: str, z: np.ndarray) -> float:
        info = self.run.layer(layer)
        if not self.reduced(layer):
            return 1.0
        if self.store is not None:
            entry = self.store.coords_entry(layer, epoch, info.static)
            if entry is not None and split in entry.get("variance_kept", {}):
                return float(entry["variance_kept"][split])
        return _variance_kept(self.run.activations(layer, epoch, split).astype(np.float64), z)

    def alignment(self, layer: str, epoch: int) -> _Alignment:
        """The bases of (layer, epoch): stored, or computed from every split's activations."""
        prev = self.previous(layer)
        if self.store is not None:
            al = self.store.alignment(layer, epoch)
            if al is not None:
                return al
        info = self.run.layer(layer)
        xs_prev = [self.run.activations(prev.name, epoch, s).astype(np.float64) for s in self.run.splits]
        xs = [self.run.activations(layer, epoch, s).astype(np.float64) for s in self.run.splits]
        return _align(prev, info, self.run.params(layer, epoch), xs_prev, xs,
                      self.reduction(prev.name), self.reduction(layer), self._static)

    def transition(self, layer: str, epoch: int, split: str) -> Transition:
        """The :class:`Transition` of ``layer`` from the previous recorded layer."""
        prev = self.previous(layer)
        self.run._layout.check_split(split)  # noqa: SLF001
        al = self.alignment(layer, epoch)
        zp = self.coordinates(prev.name, epoch, split)
        zl = self.coordinates(layer, epoch, split)
        scale = None
        if al.method == "maxpool":
            scale = _maxpool_scale(prev, self.run.layer(layer),
                                   self.run.activations(prev.name, epoch, split).astype(np.float64),
                                   self.run.activations(layer, epoch, split).astype(np.float64))
        vk = (self._variance_kept(prev.name, epoch, split, zp),
              self._variance_kept(layer, epoch, split, zl))
        return _make_transition(al, zp, zl, epoch, split, scale=scale, variance_kept=vk,
                                reduced=(self.reduced(prev.name), self.reduced(layer)))


def transition(run: Run | str | Path, layer: str, epoch: int, split: str) -> Transition:
    """The transition of ``layer`` from the previous recorded layer at ``epoch``, ``split``.

    Uses the alignment stored by :func:`align_run` when there is one, and computes the
    rest (for many calls, keep one :class:`Aligner`). See :class:`Transition`.
    """
    return Aligner(run).transition(layer, epoch, split)


def load_transition(run: Run | str | Path, layer: str, epoch: int, split: str) -> Transition:
    """Like :func:`transition`, but only from stored alignment data (what a viewer does).

    Raises
    ------
    StoreError
        If the run, or that (layer, epoch), has not been aligned: run ``grandtour align RUN``.
    """
    aligner = Aligner(run)
    if aligner.store is None:
        raise StoreError(f"run {aligner.run.path} has not been aligned; run `grandtour align "
                         f"{aligner.run.path}`")
    aligner.previous(layer)
    aligner.run._entry(epoch)  # noqa: SLF001 - unknown epoch: StoreKeyError listing them
    if aligner.store.alignment(layer, epoch) is None:
        raise StoreError(f"epoch {epoch} of run {aligner.run.path} has not been aligned; run "
                         f"`grandtour align {aligner.run.path}`")
    for name in (aligner.previous(layer).name, layer):
        info = aligner.run.layer(name)
        if aligner.reduced(name) and aligner.store.coords_entry(name, epoch, info.static) is None:
            raise StoreError(f"the reduced coordinates of layer {name!r} at epoch {epoch} are missing "
                             f"from {aligner.store.path}; realign with `grandtour align RUN --force`")
    return aligner.transition(layer, epoch, split)


def load_reduction(run: Run | str | Path, layer: str) -> Reduction | None:
    """The stored reduction of ``layer`` (None if the layer is not reduced or not aligned)."""
    run = _as_run(run)
    run.layer(layer)
    store = _AlignmentStore.read(run.path)
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
    every layer wider than ``threshold``, the reduced coordinates of those layers at
    every epoch and split, and the bases of every (layer, epoch) transition (once for
    maps that do not change with training, such as pooling). Idempotent: what is
    already stored is skipped, unless ``force``; each epoch is committed atomically, so
    an interrupted run resumes where it stopped.

    Parameters
    ----------
    run_path : Run, str or Path
    epochs : iterable of int, optional
        Epochs to align (default: every completed epoch).
    threshold : int, default 1024
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
    adir = run.path / ALIGNMENT_DIR
    if force and adir.exists():
        shutil.rmtree(adir)
    store = _AlignmentStore.read(run.path)
    if store is not None and store.threshold != threshold:
        raise GrandTourError(f"run {run.path} was aligned with threshold {store.threshold}; pass "
                             f"--force (force=True) to realign it with threshold {threshold}")
    if store is None:
        store = _AlignmentStore.create(run.path, threshold)
    if epochs is None:
        todo = list(run.epochs)
    else:
        todo = sorted({int(e) for e in epochs})
        for e in todo:
            run._entry(e)  # noqa: SLF001 - StoreKeyError listing the completed epochs
    skipped = [e for e in todo if str(e) in store.commit["epochs"]]
    todo = [e for e in todo if str(e) not in store.commit["epochs"]]

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
        for epoch in todo:
            bar.set_postfix_str(f"epoch {epoch}")
            _align_epoch(run, aligner, store, epoch, summary)
            summary["epochs_aligned"].append(epoch)
            bar.update()
    finally:
        bar.close()
    for name, doc in store.commit["reductions"].items():
        summary["reductions"][name] = {"rank": doc["rank"], "dim": doc["dim"],
                                       "variance_kept": doc["variance_kept"]}
    for note in summary["fallbacks"].values():  # once per layer, not once per epoch
        warnings.warn(note, AlignmentWarning, stacklevel=2)
    return summary


def _align_epoch(run: Run, aligner: Aligner, store: _AlignmentStore, epoch: int, summary: dict) -> None:
    layers_doc: dict[str, dict] = {}
    coords_doc: dict[str, dict] = {}
    prev_info: LayerInfo | None = None
    xs_prev: list[np.ndarray] = []
    for info in run.layers:
        xs = [run.activations(info.name, epoch, s).astype(np.float64) for s in run.splits]
        red = aligner.reduction(info.name)
        if red is not None and store.coords_entry(info.name, epoch, info.static) is None:
            basis = red.basis.astype(np.float64)
            doc = {"scale": {}, "variance_kept": {}}
            for split, x in zip(run.splits, xs, strict=True):
                z = x @ basis
                y, sc, _ = encode_float16(z)
                store.write(f"coords/{split}/{info.name}/{'static' if info.static else epoch}", y)
                doc["scale"][split] = sc
                doc["variance_kept"][split] = _variance_kept(x, z)
            if info.static:
                store.commit["static_coords"][info.name] = doc  # committed with this epoch
            else:
                coords_doc[info.name] = doc
        if prev_info is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AlignmentWarning)
                al = _align(prev_info, info, run.params(info.name, epoch), xs_prev, xs,
                            aligner.reduction(prev_info.name), red, aligner._static)  # noqa: SLF001
            for w in caught:
                summary["fallbacks"].setdefault(info.name, str(w.message))
            static_done = info.name in store.commit["static_maps"]
            source = "static" if al.static else "epoch"
            arrays = _alignment_arrays(al)
            if al.static and not static_done and arrays:
                for name, arr in arrays.items():
                    store.write(f"maps/{info.name}/static/{name}", arr)
                store.commit["static_maps"][info.name] = sorted(arrays)
            elif not al.static:
                for name, arr in arrays.items():
                    store.write(f"maps/{info.name}/{epoch}/{name}", arr)
            layers_doc[info.name] = {
                "previous": prev_info.name, "kind": info.kind, "method": al.method,
                "source": source, "arrays": sorted(arrays), "d_in": al.d_in, "d_out": al.d_out,
                "exact": al.exact, "note": al.note, "residual": al.residual}
            summary["methods"][info.name] = al.method
        prev_info, xs_prev = info, xs
    store.commit["epochs"][str(epoch)] = {"layers": layers_doc, "coords": coords_doc}
    store.save()


def align_command(args) -> int:
    """``grandtour align RUN [--epochs E ...] [--threshold T] [--force]``."""
    epochs = getattr(args, "epochs", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # printed below, one line per layer
        summary = align_run(args.run, epochs=epochs if epochs else None,
                            threshold=getattr(args, "threshold", DEFAULT_THRESHOLD) or DEFAULT_THRESHOLD,
                            force=bool(getattr(args, "force", False)))
    aligned, skipped = summary["epochs_aligned"], summary["epochs_skipped"]
    print(f"aligned {len(aligned)} epoch(s) of {args.run}"
          + (f", {len(skipped)} already stored (--force recomputes them)" if skipped else "")
          + f"; threshold {summary['threshold']}")
    for name, red in summary["reductions"].items():
        print(f"  {name}: shown in {red['rank']} of {red['dim']} dims, "
              f"{100 * red['variance_kept']:.1f} % of the pooled variance kept")
    for name, note in summary["fallbacks"].items():
        print(f"  warning: {note}", file=sys.stderr)
    return 0
