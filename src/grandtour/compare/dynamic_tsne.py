r"""Dynamic t-SNE (Rauber, Falcão, Telea, EuroVis 2016) on openTSNE's machinery.

The E epochs' pictures :math:`Y^1, \dots, Y^E` (each N x 2) minimise

.. math::

    C = \sum_t \mathrm{KL}(P^t \,\|\, Q^t)
        + \frac{\lambda}{2N} \sum_{t=1}^{E-1} \sum_i \lVert y_i^t - y_i^{t+1} \rVert^2,

t-SNE's cost of each epoch plus a temporal-coherence term that ties a point's
position at one epoch to the next. :math:`P^t` are openTSNE's perplexity affinities
(:class:`openTSNE.affinity.PerplexityBasedNN`) of epoch t; the gradient of each KL term
is openTSNE's Barnes-Hut gradient (:func:`openTSNE.tsne.kl_divergence_bh`) of that
epoch's picture alone (repulsion never crosses epochs); and the optimiser is openTSNE's
own (:class:`openTSNE.tsne.gradient_descent`: gains, momentum, step clipping, the early
exaggeration phase) run on the E pictures stacked into one (E N) x 2 array. All
epochs start from one PCA initialisation (of the first epoch), so the coherence
holds from the first iteration. :math:`\lambda` is in openTSNE's gradient units
(openTSNE leaves out t-SNE's factor 4): ``lam = 0`` is t-SNE of each epoch from a
common start.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence

import numpy as np

from grandtour import defaults
from grandtour.compare.methods import perplexity_for, reduce_dims

#: openTSNE's optimisation schedule: (iterations, exaggeration, momentum) per phase.
SCHEDULE = ((250, 12.0, 0.5), (500, 1.0, 0.8))


class _CoherentObjective:
    """openTSNE's objective-function interface over E stacked pictures, plus coherence."""

    def __init__(self, P, n: int, epochs: int, lam: float, progress: Callable[[], None] | None):
        self.n, self.epochs, self.lam, self.progress = n, epochs, float(lam), progress
        # Each epoch's rows of the block-diagonal P, as views into P.data: openTSNE scales
        # P.data in place for the exaggeration phase, and the views see it.
        self.blocks = []
        for t in range(epochs):
            lo, hi = P.indptr[t * n], P.indptr[(t + 1) * n]
            self.blocks.append(types.SimpleNamespace(
                data=P.data[lo:hi], indices=np.ascontiguousarray(P.indices[lo:hi] - t * n),
                indptr=np.ascontiguousarray(P.indptr[t * n:(t + 1) * n + 1] - lo)))

    def __call__(self, embedding, P, dof, bh_params, n_jobs=1, should_eval_error=False, **_):
        from openTSNE.tsne import kl_divergence_bh

        n = self.n
        error = 0.0
        gradient = np.empty_like(embedding, dtype=np.float64)
        for t, block in enumerate(self.blocks):
            rows = slice(t * n, (t + 1) * n)
            e, g = kl_divergence_bh(np.ascontiguousarray(embedding[rows]), block, dof, bh_params,
                                    should_eval_error=should_eval_error, n_jobs=n_jobs)
            gradient[rows] = g
            error += float(e or 0.0)
        Y = np.asarray(embedding).reshape(self.epochs, n, -1)
        step = Y[1:] - Y[:-1]  # y^{t+1} - y^t
        coherence = np.zeros_like(Y)
        coherence[:-1] -= step
        coherence[1:] += step
        gradient += (self.lam / n) * coherence.reshape(gradient.shape)
        if should_eval_error:
            error += self.lam / (2 * n) * float(np.sum(step * step))
        if self.progress is not None:
            self.progress()
        return error, gradient


def dynamic_tsne(Xs: Sequence[np.ndarray], *, seed: int = defaults.SEED, lam: float = defaults.DTSNE_LAMBDA,
                 perplexity: float = defaults.TSNE_PERPLEXITY, schedule=SCHEDULE,
                 progress: Callable[[], None] | None = None) -> np.ndarray:
    """Dynamic t-SNE of one point set seen at E epochs.

    Parameters
    ----------
    Xs : sequence of E ndarrays of shape (N, D)
        The points at each epoch (the same N points, in the same order).
    seed : int
    lam : float
        Weight :math:`\\lambda` of the temporal-coherence term (0: no coherence).
    perplexity : float
    schedule : sequence of (n_iter, exaggeration, momentum)
        openTSNE's phases (default: its own, 250 early-exaggeration and 500 normal iterations).
    progress : callable, optional
        Called once per iteration (sum of ``n_iter``).

    Returns
    -------
    ndarray of shape (E, N, 2), float32
    """
    import scipy.sparse
    from openTSNE import initialization
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.tsne import gradient_descent

    Zs = [reduce_dims(np.asarray(X, dtype=np.float64), seed) for X in Xs]
    E, n = len(Zs), Zs[0].shape[0]
    perp = perplexity_for(n, perplexity)
    Ps = [PerplexityBasedNN(Z, perplexity=perp, random_state=seed, n_jobs=1).P for Z in Zs]
    P = scipy.sparse.block_diag(Ps, format="csr")
    P.sort_indices()
    start = initialization.pca(Zs[0], random_state=seed)
    embedding = np.ascontiguousarray(np.tile(start, (E, 1)), dtype=np.float64)
    objective = _CoherentObjective(P, n, E, lam, progress)
    optimizer = gradient_descent()
    for n_iter, exaggeration, momentum in schedule:
        # openTSNE's learning rate rule, N / exaggeration, for each epoch's picture of N points.
        optimizer(embedding, P, n_iter=int(n_iter), objective_function=objective,
                  learning_rate=n / exaggeration, momentum=momentum, exaggeration=exaggeration,
                  n_jobs=1)
    return embedding.reshape(E, n, 2).astype(np.float32)
