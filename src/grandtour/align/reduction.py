"""The fixed linear reduction of a wide layer: ``Z = X R``, the same at every epoch.

A layer wider than the threshold is shown in its leading principal directions, fitted
once on its activations pooled over (up to ``REDUCTION_EPOCHS``) epochs and every split,
streamed a block at a time: the exact covariance up to ``EXACT_COVARIANCE_DIM``
coordinates, a randomized range finder above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grandtour import defaults
from grandtour.align._run import _as_run
from grandtour.align.svd import _fix_signs
from grandtour.errors import GrandTourError, StoreError
from grandtour.store import LayerInfo, Run, decode_float16, encode_float16

#: Layers wider than this many coordinates are shown in a fixed reduction.
DEFAULT_THRESHOLD = defaults.ALIGN_THRESHOLD
#: At most this many epochs (spread over the run, first and last included) feed the
#: principal directions of a wide layer; every epoch is then shown in that basis.
REDUCTION_EPOCHS = 16
#: At most this many rows (a seeded sample, each epoch and split its share by size) feed
#: the principal directions: 16 epochs of the default 1000 + 1000 probes fit on every row;
#: a run of 70,000 probes fits in seconds instead of minutes (BENCHMARKS.md). The variance
#: each epoch keeps is still computed on all of its rows when read.
REDUCTION_FIT_POINTS = 32_768
#: Seed of that sample and of the randomized range finder's start.
FIT_SEED = 0
#: A sample drawn from runs of consecutive rows (:func:`sample_rows` with ``block_rows``)
#: picks its rows at random among runs holding this many times as many.
BLOCK_SPARE = 4
#: Up to this width the reduction diagonalises the exact covariance (one pass over the
#: data); wider layers use a streamed randomized range finder (three passes).
EXACT_COVARIANCE_DIM = 4096
#: Variances below this fraction of the largest are float16 rounding noise, not directions.
RANK_RTOL = 1e-6


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
        Number of (finite) activation rows the fit saw: all of them, or a seeded sample of
        at most ``REDUCTION_FIT_POINTS`` (then ``variance_kept`` is the sample's).
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


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a).all(axis=1)
    return ok


def _project(x: np.ndarray, red: Reduction | None) -> np.ndarray:
    return x if red is None else x @ red.basis.astype(np.float64)


def reduced_coordinates(x: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, float]:
    """What a reduced layer shows, ``Z = X R``, and the fraction of the variance of ``X``'s rows
    that it keeps; the one definition for every reader (the viewer, ``transition``, the server).

    ``X R`` is computed in float32 (the data went through float16 and ``R`` is float32) and
    rounded to float16 as the run stores activations (values divided by a power of two when
    they would overflow): exactly the coordinates an alignment of layout version 1 stored,
    which are now computed when read instead (``docs/align.md``, "Precomputing"). The variance is
    that of the product before the rounding, as version 1 recorded it.
    """
    product = np.asarray(x, dtype=np.float32) @ np.asarray(basis, dtype=np.float32)
    y, scale, _ = encode_float16(product)
    z = y.astype(np.float64) * float(scale)
    return z, _variance_kept(np.asarray(x, dtype=np.float64), product.astype(np.float64))


def _variance_kept(x: np.ndarray, z: np.ndarray) -> float:
    """Fraction of the centred variance of the rows of ``x`` kept in ``z = x R``."""
    ok = _finite_rows(x)
    if not ok.any():
        return 1.0
    if not ok.all():
        x, z = x[ok], z[ok]
    total, kept = _centred_square_sum(x), _centred_square_sum(z)
    return 1.0 if total == 0.0 else min(1.0, kept / total)


def _centred_square_sum(x: np.ndarray) -> float:
    """``||x - mean(x)||^2`` without the centred copy: ``||x||^2 - n ||mean||^2``, unless
    that cancels (a mean large next to the spread), then from the centred rows."""
    mean = x.mean(axis=0, dtype=np.float64)
    square = float(np.einsum("ij,ij->", x, x, dtype=np.float64))
    total = square - x.shape[0] * float(mean @ mean)
    if total > 1e-6 * square:
        return total
    return float(((x - mean) ** 2).sum())


def _spread(epochs: Sequence[int], most: int) -> list[int]:
    """At most ``most`` epochs, evenly spread, the first and last included."""
    epochs = sorted(epochs)
    if len(epochs) <= most:
        return list(epochs)
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, most)).astype(int))
    return [epochs[i] for i in idx]


def _fit_pca(blocks: Callable[[], Iterator[np.ndarray]], dim: int, r_max: int, *,
             seed: int = FIT_SEED, power_iterations: int = 1
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
        # Second moments about a fixed shift (the first block's mean), so that the float32
        # products (twice as fast as float64; the data went through float16) do not cancel.
        n, s, cov, shift = 0, np.zeros(dim), np.zeros((dim, dim)), None
        for x in blocks():
            if shift is None and x.shape[0]:
                shift = x.mean(axis=0)
            if shift is None:
                continue
            xc = (x - shift).astype(np.float32)
            n += x.shape[0]
            s += xc.sum(axis=0, dtype=np.float64)
            cov += xc.T @ xc
        if n == 0:
            raise GrandTourError("no finite activations to fit the reduction on")
        centre = s / n
        mean = shift + centre
        cov = cov / n - np.outer(centre, centre)
        total = float(np.trace(cov))
        # Only the leading r_max eigenpairs are kept: ask LAPACK for those alone.
        subset = None if r_max >= dim else [dim - r_max, dim - 1]
        evals, evecs = scipy.linalg.eigh(cov, subset_by_index=subset, check_finite=False)
        evals, evecs = evals[::-1], evecs[:, ::-1]
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


def sample_rows(sizes: Sequence[int], most: int, seed: int,
                block_rows: Sequence[int] | None = None) -> list[np.ndarray] | None:
    """A seeded sample of at most ``most`` rows of blocks of ``sizes`` rows: sorted row
    indices per block, or None if there are no more than ``most`` rows in all.

    Each block gets its share in proportion to its size (largest remainders, so the counts
    add up to ``most``), drawn without replacement by one generator seeded with ``seed``.

    ``block_rows``: per block, the rows a read costs at least (the store's chunks,
    :meth:`~grandtour.store.Run.chunk_rows`). Where a block is longer than that, its share
    is drawn from runs of ``block_rows`` consecutive rows (starting at multiples of it),
    taken in a seeded random order until they hold :data:`BLOCK_SPARE` times the share:
    reading the sample then decodes those runs' chunks, not the whole block.
    """
    sizes = [int(n) for n in sizes]
    total = sum(sizes)
    if total <= most:
        return None
    share = np.array(sizes, dtype=np.float64) * most / total
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: most - int(counts.sum())]:
        counts[i] += 1
    rng = np.random.default_rng(seed)
    out = []
    for k, (n, c) in enumerate(zip(sizes, counts, strict=True)):
        b = n if block_rows is None else max(1, int(block_rows[k]))
        if b >= n:
            out.append(np.sort(rng.choice(n, size=int(c), replace=False)))
            continue
        runs, held = [], 0
        for j in rng.permutation(-(-n // b)):
            runs.append(int(j))
            held += min(b, n - int(j) * b)
            if held >= BLOCK_SPARE * c:
                break
        pool = np.concatenate([np.arange(j * b, min(n, (j + 1) * b)) for j in sorted(runs)])
        out.append(np.sort(rng.choice(pool, size=int(c), replace=False)))
    return out


def _activation_blocks(run: Run, layer: LayerInfo, epochs: Sequence[int],
                       most: int = REDUCTION_FIT_POINTS) -> Callable[[], Iterator[np.ndarray]]:
    """The finite rows of every (epoch, split) block, streamed on every pass; or, if they
    come to more than ``most`` in all, a seeded sample of ``most`` (:func:`sample_rows`,
    every block's share in proportion to its size), read from the run once (only those
    rows: :meth:`~grandtour.store.Run.activations_float16` with ``rows``) and kept in memory
    as stored, float16 with its scale, for every pass."""
    blocks = [(epoch, split) for epoch in epochs for split in run.splits]
    picks = sample_rows([run.size(split) for _, split in blocks], most, FIT_SEED)

    def finite(x: np.ndarray) -> np.ndarray:
        return x[_finite_rows(x)]

    if picks is None:
        def gen() -> Iterator[np.ndarray]:
            for epoch, split in blocks:
                yield finite(run.activations(layer.name, epoch, split).astype(np.float64))

        return gen
    sample = [(finite(y), scale) for (epoch, split), rows in zip(blocks, picks, strict=True)
              for y, scale in [run.activations_float16(layer.name, epoch, split, rows)]]
    return lambda: (decode_float16(y, scale).astype(np.float64) for y, scale in sample)


def fit_reduction(run: Run | str | Path, layer: str, threshold: int = DEFAULT_THRESHOLD, *,
                  max_epochs: int = REDUCTION_EPOCHS, max_points: int = REDUCTION_FIT_POINTS) -> Reduction:
    """The fixed reduction of a wide layer: leading principal directions over the run.

    The activations of ``max_epochs`` epochs spread over the run (all of them if fewer;
    a static layer's single copy) and every split are pooled, and the ``r`` directions
    of largest variance kept, ``r = min(threshold, rank)``; above ``max_points`` rows in
    all, on a seeded sample of that many (``Reduction.points`` says how many fed
    it, and its ``variance_kept`` is that sample's). The data is streamed one
    (epoch, split) block at a time: exact covariance up to 4096 coordinates, a
    randomized range finder with one power iteration and a Rayleigh-Ritz step above.
    """
    run = _as_run(run)
    info = run.layer(layer)
    if not run.epochs:
        raise StoreError(f"run {run.path} has no completed epoch to fit a reduction on")
    epochs = [run.epochs[0]] if info.static else _spread(run.epochs, max_epochs)
    basis, mean, kept, total, points, method = _fit_pca(
        _activation_blocks(run, info, epochs, int(max_points)), info.dim, int(threshold))
    # The stored float32 basis is the definition of the reduction, in memory as on disk.
    return Reduction(layer, basis.astype(np.float32), mean, kept, total, list(epochs), points, method)
