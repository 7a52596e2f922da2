"""One layer's transition from the previous recorded layer, by the rule of its kind.

:func:`_align` picks the rule (SVD of the affine map, max-pooling's replacement,
interpolation in the standard basis for coordinate-wise maps, the identity, or the
least-squares fallback with an :class:`AlignmentWarning`), checks the recorded previous
layer against the layer's map, and returns the epoch-level :class:`_Alignment`;
:func:`_make_transition` applies it to one split's points to give a :class:`Transition`.
:func:`transition_from_arrays` does both for arrays, without a run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grandtour import defaults
from grandtour.align.maps import (
    COORDINATEWISE,
    IDENTITIES,
    _builder,
    _coordinatewise_fn,
    _known_kinds,
    _maxpool_map,
    _torch,
    _Unsupported,
)
from grandtour.align.reduction import Reduction, _finite_rows, _project, _variance_kept, sample_rows
from grandtour.align.replay import (
    FUNCTIONAL_COORDINATEWISE,
    LINEAR_OPS,
    MERGES,
    is_functional,
    operand_names,
    replay,
    source_map,
)
from grandtour.align.svd import _block_svd_alignment, _svd_alignment
from grandtour.store import LayerInfo

#: A recorded layer and the layer's map applied to the recorded previous layer may differ
#: by this much (relative Frobenius norm) before we decide the previous recorded layer is
#: not the layer's input. Float16 storage alone gives ~1e-3.
VERIFY_RTOL = 2e-2
#: The check uses at most this many probe points (all splits together): a fixed, seeded
#: sample (:func:`check_rows`), the same rows for every layer, input and epoch. The check
#: is a relative Frobenius norm, a mean over the points: a sample of a few hundred gives
#: it to a few per cent of its value, far inside the gap between float16 rounding (~1e-3)
#: and a wrong input (~0.1 and above). None: every point.
CHECK_POINTS = defaults.ALIGN_CHECK_POINTS
#: Seed of that sample.
CHECK_SEED = 0


class AlignmentWarning(UserWarning):
    """A layer could not be aligned by its own rule; the message names it and the fallback."""


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
        This layer and the input it is shown from (one of ``run.inputs(layer)``).
    epoch : int
    split : str
    kind : str
        The layer's kind as recorded.
    method : str
        ``"svd"`` (affine map aligned by its SVD), ``"maxpool"`` (average-pooling
        replacement aligned by its SVD), ``"merge"`` (one input of an ``add`` or a
        ``cat``: the SVD of the map from that input, the identity for an add and the
        embedding of its coordinates for a concatenation, while the other inputs enter
        along the way), ``"coordinatewise"``, ``"identity"`` or ``"lstsq"`` (the
        fallback: least-squares affine fit).
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
        True only when the layer's own rule was applied *and* checked against the
        recorded data: the layer rebuilt from the recorded input (and, for a merge, its
        other inputs) gives the recorded output within ``VERIFY_RTOL`` (``residual``).
        False for the fallback and for any rule that could not be checked.
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
    checked : (int, int) or None
        ``(used, of)``: the check above (``residual``) used a fixed, seeded sample of ``used``
        of the ``of`` probe points (the note says so too); None when it used every point
        (or there was no check).
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
    checked: tuple[int, int] | None = None

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
    checked: tuple[int, int] | None = None  # (points the check used, points); None: not sampled

    def bases(self) -> tuple[np.ndarray, np.ndarray]:
        bi = np.eye(self.d_in) if self.basis_in is None else self.basis_in
        bo = np.eye(self.d_out) if self.basis_out is None else self.basis_out
        return bi, bo


def check_rows(sizes: Sequence[int], most: int | None = None,
               block_rows: Sequence[int] | None = None) -> list[np.ndarray] | None:
    """The probe points a layer's check uses: sorted row indices per split, or None for all.

    At most ``most`` (default :data:`CHECK_POINTS`) points in all, shared out over the splits
    in proportion to their sizes (:func:`~grandtour.align.reduction.sample_rows`, seeded
    with :data:`CHECK_SEED`): the same rows for a given run every time. ``block_rows``
    (per split, the store's :meth:`~grandtour.store.Run.chunk_rows`): a split stored in
    several chunks has its points drawn from a few runs of consecutive rows, so a check
    reads a few chunks of each layer instead of all of them.
    """
    most = CHECK_POINTS if most is None else most
    return None if most is None else sample_rows(sizes, most, CHECK_SEED, block_rows)


def _checked_note(checked: tuple[int, int] | None) -> str:
    if checked is None or checked[0] >= checked[1]:
        return ""
    return f"checked on a fixed sample of {checked[0]} of {checked[1]} points"


def _relative_residual(actual: np.ndarray, predicted: np.ndarray) -> float:
    ok = _finite_rows(actual, predicted)
    if not ok.all():  # copies: only when some rows must be left out
        actual, predicted = actual[ok], predicted[ok]
    diff = float(np.linalg.norm(actual - predicted))
    base = float(np.linalg.norm(actual))
    if base == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / base


def _affine_residual(op, xs_prev: Sequence[np.ndarray], xs_layer: Sequence[np.ndarray]) -> float:
    """The check of an affine layer: the layer applied to the recorded input, against the
    recorded output, computed in float32 (both went through float16, and the bound is 2e-2;
    float32 convolutions are several times faster). A registered map whose forward does not
    take float32 is applied in float64."""
    x = np.concatenate(xs_prev)
    try:
        predicted = op.apply_layer(x, np.float32)
    except (RuntimeError, TypeError):
        predicted = op.apply_layer(x)
    return _relative_residual(np.concatenate(xs_layer), predicted)


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
           static_cache: dict | None = None,
           operands: Mapping[str, Sequence[np.ndarray]] | None = None, *,
           checked: tuple[int, int] | None = None,
           full: Callable[[], tuple[Sequence[np.ndarray], Sequence[np.ndarray]]] | None = None
           ) -> _Alignment:
    """Align one (layer, epoch) from ``prev``, one of its inputs, on every split's activations.

    ``xs_prev`` / ``xs_layer``: one ``(N_split, dim)`` float64 array per split, used to
    check the layer's rule against the recorded data, and for the fallback. ``operands``:
    the activations (per split) of a functional op's other inputs, for its check (the
    sum of an ``add``, the parts of a ``cat``). Every alignment returned with
    ``exact=True`` has passed that check: ``residual <= VERIFY_RTOL``.

    The arrays may be a sample of the points (the same rows in each): ``checked = (rows
    given, all rows)`` then says so in the note, and ``full()`` returns ``(xs_prev,
    xs_layer)`` with every point, for the least-squares fallback.
    """
    kind = layer.kind.lower()
    d_in = prev.dim if red_p is None else red_p.rank
    d_out = layer.dim if red_l is None else red_l.rank
    red_note = _reduction_note(red_p, red_l)
    sample_note = _checked_note(checked)
    checked = checked if sample_note else None
    functional = is_functional(layer)
    key = (layer.name, prev.name)

    def fallback(reason: str) -> _Alignment:
        fit_prev, fit_layer = (xs_prev, xs_layer) if full is None else full()
        return _lstsq_alignment(prev, layer, [_project(x, red_p) for x in fit_prev],
                                [_project(x, red_l) for x in fit_layer], reason)

    def on_sample(residual: float) -> str:
        return f"relative residual {residual:.3g}" + (f", {sample_note}" if sample_note else "")

    def check(fn: Callable[[np.ndarray], np.ndarray]) -> float:
        actual = np.concatenate(xs_layer)
        return _relative_residual(actual, fn(np.concatenate(xs_prev)))

    def check_replay() -> tuple[float | None, str]:
        """A functional op replayed on every recorded operand, against the recorded output."""
        torch = _torch()
        names = operand_names(layer)
        known = {prev.name: xs_prev, **(operands or {})}
        missing = [n for n in names if n not in known]
        if missing or not names:
            return None, (f"its argument(s) {', '.join(map(repr, missing))} are not recorded layers, "
                          "so the recorded data cannot check it" if missing else
                          "its arguments were not recorded")
        try:
            with torch.no_grad():
                pred = replay(layer, [torch.as_tensor(np.concatenate(known[n])) for n in names]).numpy()
        except _Unsupported as err:
            return None, str(err)
        return _relative_residual(np.concatenate(xs_layer), pred), ""

    cached = (static_cache or {}).get(key)

    if kind in COORDINATEWISE or kind in IDENTITIES or (
            functional and kind in FUNCTIONAL_COORDINATEWISE and kind not in LINEAR_OPS):
        method = "identity" if kind in IDENTITIES else "coordinatewise"
        if prev.dim != layer.dim:
            return fallback(f"a {kind} layer keeps the number of coordinates, but {prev.name!r} has "
                            f"{prev.dim} and {layer.name!r} {layer.dim}, so {prev.name!r} is not its input")
        residual, why = None, ""
        if functional:
            residual, why = check_replay()
        else:
            fn = _coordinatewise_fn(layer, params)
            if fn is None:
                why = (f"grandtour cannot rebuild this {layer.kind} layer from what was recorded "
                       "(its kind, settings or parameters) to check it")
            else:
                torch = _torch()
                with torch.no_grad():
                    residual = check(lambda x: fn(torch.as_tensor(x)).numpy())
        exact, note = True, "; ".join(filter(None, [red_note, sample_note if residual is not None else ""]))
        if residual is None or residual > VERIFY_RTOL:
            exact = False
            what = (why if residual is None else f"the recorded {prev.name!r} is not this layer's input "
                    f"({on_sample(residual)})")
            note = "; ".join(filter(None, [f"not checked: {what}" if residual is None else what,
                                           "interpolated in the standard basis anyway, labelled "
                                           "exact=False", red_note]))
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
                static_cache[key] = base
        return _replace(base, exact=exact, note=note, residual=residual,
                        checked=checked if residual is not None else None)

    if functional:
        if kind not in LINEAR_OPS:
            return fallback(f"the op {kind!r} is not linear, nor one grandtour interpolates "
                            "coordinate-wise")
        builder = source_map
    else:
        builder = _builder(kind)
    if builder is None:
        return fallback(f"layer kind {layer.kind!r} is not one grandtour knows how to align (it knows "
                        f"{', '.join(_known_kinds())}, coordinate-wise activations, reshapes and the "
                        "graph's linear ops; grandtour.align.register_layer_map teaches it an affine one)")
    try:
        op = builder(prev, layer, params)
    except _Unsupported as err:
        return fallback(str(err))
    if functional:
        residual, why = check_replay()
        if residual is None:
            return fallback(f"not checked: {why}")
    else:
        residual = _affine_residual(op, xs_prev, xs_layer)
    if not residual <= VERIFY_RTOL:
        return fallback(f"the recorded {prev.name!r} is not this layer's input: applying the "
                        f"layer to it misses the recorded output ({on_sample(residual)})")
    merge = functional and kind in MERGES and len(operand_names(layer)) > 1
    method = "maxpool" if kind == "maxpool2d" else "merge" if merge else "svd"
    if merge:
        others = sorted({n for n in operand_names(layer) if n != prev.name})
        red_note = "; ".join(filter(None, [f"{kind} of {prev.name!r} with {', '.join(map(repr, others))}: "
                                           "the other input(s) enter along the way", red_note]))
    red_note = "; ".join(filter(None, [red_note, sample_note]))
    if cached is not None and op.static:
        return _replace(cached, residual=residual, note=red_note, checked=checked)
    rp = None if red_p is None else red_p.basis.astype(np.float64)
    rl = None if red_l is None else red_l.basis.astype(np.float64)
    if op.block is not None and rp is None and rl is None:
        u, s, v = _block_svd_alignment(*op.block)
    else:
        u, s, v = _svd_alignment(op.compress(rp, rl))
    # b_eff: the bias seen in the reduced coordinates, plus the constant that the part of
    # the previous layer's mean outside its reduction sends into the kept coordinates.
    b_eff = op.bias if rl is None else op.bias @ rl
    if red_p is not None:
        mu_out = red_p.mean - (red_p.mean @ rp) @ rp.T
        pushed = op.apply(mu_out[None, :])[0] - op.bias
        b_eff = b_eff + (pushed if rl is None else pushed @ rl)
    al = _Alignment(layer.name, prev.name, layer.kind, method, u, v, d_in, d_out, s,
                    None if merge else b_eff @ v, True, red_note, residual, static=op.static,
                    checked=checked)
    if op.static and static_cache is not None:
        static_cache[key] = al
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
        variance_kept=(float(variance_kept[0]), float(variance_kept[1])), reduced=reduced,
        checked=al.checked)


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


def transition_from_arrays(previous: LayerInfo, layer: LayerInfo, x_prev: np.ndarray,
                           x: np.ndarray, params: Mapping[str, np.ndarray] | None = None, *,
                           reduction_in: Reduction | None = None,
                           reduction_out: Reduction | None = None, epoch: int = 0,
                           split: str = "",
                           operands: Mapping[str, np.ndarray] | None = None) -> Transition:
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
    operands : mapping name -> ndarray of shape (N, dim), optional
        A functional op's other inputs (the rest of an ``add`` or a ``cat``), to check it.

    Returns
    -------
    Transition
    """
    x_prev = np.asarray(x_prev, dtype=np.float64).reshape(len(x_prev), -1)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if x_prev.shape != (x.shape[0], previous.dim) or x.shape[1] != layer.dim:
        raise ValueError(f"x_prev has shape {x_prev.shape} and x {x.shape}; expected (N, "
                         f"{previous.dim}) and (N, {layer.dim})")
    others = {name: [np.asarray(a, dtype=np.float64).reshape(len(a), -1)]
              for name, a in (operands or {}).items()}
    al = _align(previous, layer, params, [x_prev], [x], reduction_in, reduction_out, None, others)
    zp, zl = _project(x_prev, reduction_in), _project(x, reduction_out)
    scale = _maxpool_scale(previous, layer, x_prev, x) if al.method == "maxpool" else None
    vk = (1.0 if reduction_in is None else _variance_kept(x_prev, zp),
          1.0 if reduction_out is None else _variance_kept(x, zl))
    return _make_transition(al, zp, zl, epoch, split, scale=scale, variance_kept=vk,
                            reduced=(reduction_in is not None, reduction_out is not None))
