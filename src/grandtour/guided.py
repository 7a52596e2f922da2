r"""A guided tour: projection pursuit toward views that separate chosen classes.

A :class:`~grandtour.tour.GeodesicTour` whose next target plane is not drawn at
random but found by a search that raises a *projection-pursuit index*, as in tourr's
``guided_tour(lda_pp(cl))`` with ``search_geodesic``'s simpler cousin
``search_better``. Python counterpart of ``web/js/tour/guided.js``.

The index is tourr's LDA index of a frame :math:`A` (n x 2, orthonormal):

.. math::

    I(A) = 1 - \frac{\det(A^\top W A)}{\det(A^\top (W + B) A)} \in [0, 1],

with :math:`W` the within-class and :math:`B` the between-class scatter matrices of
the points of the chosen classes: 0 when the view shows no difference of the class
means, 1 when each class collapses to a point and the points differ.

The search (tourr's ``search_better``): from the current frame :math:`F`, draw
``tries`` frames :math:`\mathrm{orth}(F + \alpha G)`, :math:`G` standard normal; the
best of them becomes the next target if it raises the index, else :math:`\alpha`
shrinks by ``cooling`` and the search goes on; when :math:`\alpha` falls below
``min_alpha`` the tour has found its view and stands still there. The tour moves
between targets along geodesics at ``speed`` radians per second, like the other tours,
and each target it reaches has a higher index than the one before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grandtour.tour import GeodesicTour

__all__ = ["GuidedTour", "lda_index", "scatter_matrices"]


def scatter_matrices(X, labels, classes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Within-class ``W`` and between-class ``B`` scatter (n x n) of the points of ``classes``.

    Parameters
    ----------
    X : ndarray of shape (N, n)
    labels : ndarray of shape (N,), int
    classes : sequence of int, optional
        The classes to separate (at least 2 present); default all.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    chosen = np.unique(labels) if classes is None else np.asarray(list(classes))
    keep = np.isin(labels, chosen)
    Xs, ls = X[keep], labels[keep]
    present = np.unique(ls)
    if present.size < 2:
        raise ValueError(f"a guided tour separates at least 2 classes; got points of {present.tolist()}")
    mean = Xs.mean(axis=0)
    n = X.shape[1]
    W, B = np.zeros((n, n)), np.zeros((n, n))
    for c in present:
        Xc = Xs[ls == c]
        mc = Xc.mean(axis=0)
        R = Xc - mc
        W += R.T @ R
        B += len(Xc) * np.outer(mc - mean, mc - mean)
    # A ridge of 1e-9 of the mean variance keeps det(A^T W A) > 0 for rank-deficient layers.
    W += np.eye(n) * (1e-9 * max(np.trace(W) + np.trace(B), 1e-300) / n)
    return W, B


def lda_index(A, W: np.ndarray, B: np.ndarray) -> float:
    """tourr's LDA index ``1 - det(A^T W A) / det(A^T (W + B) A)`` of frame ``A`` (n x 2)."""
    A = np.asarray(A, dtype=np.float64)
    within = np.linalg.det(A.T @ W @ A)
    total = np.linalg.det(A.T @ (W + B) @ A)
    return float(1.0 - within / total) if total > 0 else 0.0


def _orth(F: np.ndarray) -> np.ndarray:
    Q, R = np.linalg.qr(F)
    return Q * np.sign(np.diag(R))


class GuidedTour(GeodesicTour):
    """A geodesic tour whose targets raise the LDA index of the chosen classes.

    Parameters
    ----------
    X : ndarray of shape (N, n)
        The points the views are judged on (e.g. a layer's activations at one epoch).
    labels : ndarray of shape (N,), int
    classes : sequence of int, optional
        The classes to separate; default all.
    seed, speed, start
        As :class:`~grandtour.tour.GeodesicTour`.
    alpha : float
        Initial search radius (the scale of the random step from the current frame).
    tries : int
        Frames drawn per search round.
    cooling : float
        Factor ``alpha`` shrinks by after a round that found nothing better.
    min_alpha : float
        Below it the search stops: the tour stands still on its best view.
    """

    def __init__(self, X, labels, classes: Sequence[int] | None = None, seed=None, speed: float = 0.5, *,
                 alpha: float = 0.5, tries: int = 25, cooling: float = 0.9, min_alpha: float = 1e-3,
                 start=None):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be (N, n), got shape {X.shape}")
        self.W, self.B = scatter_matrices(X, labels, classes)
        self.alpha, self.tries = float(alpha), int(tries)
        self.cooling, self.min_alpha = float(cooling), float(min_alpha)
        self._rng = np.random.default_rng(seed)
        self._best: np.ndarray | None = None
        super().__init__(X.shape[1], seed=seed, speed=speed, targets=self._search, start=start)

    def index(self, A=None) -> float:
        """The LDA index of frame ``A`` (default: the current view)."""
        return lda_index(self.frame() if A is None else A, self.W, self.B)

    def _search(self) -> np.ndarray:
        # Search from the plane the tour is heading for (its start at the first call).
        current = self._start[:, :2] if self._best is None else self._best
        best_index = lda_index(current, self.W, self.B)
        while self.alpha >= self.min_alpha:
            candidates = [_orth(current + self.alpha * self._rng.standard_normal(current.shape))
                          for _ in range(self.tries)]
            scores = [lda_index(F, self.W, self.B) for F in candidates]
            k = int(np.argmax(scores))
            if scores[k] > best_index + 1e-12:
                self._best = candidates[k]
                return self._best
            self.alpha *= self.cooling
        self._best = current
        return current  # converged: a target on the current plane, the tour stands still
