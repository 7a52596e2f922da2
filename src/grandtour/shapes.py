r"""Data for the article's warm-up figures: hypercubes and a softmax-like point cloud.

The Distill article opens with the Grand Tour of a square, a cube and a tesseract
(vertices and edges), then of a trained network's softmax layer: 10-D points on the
probability simplex, most near the vertex of their class, some on the edge between
two classes the network confuses. Everything here needs numpy only.

Examples
--------
>>> V, E = tesseract()
>>> V.shape, E.shape
((16, 4), (32, 2))
>>> P, y = softmax_simplex(n_classes=3, n_points=5, seed=0)
>>> bool(np.allclose(P.sum(axis=1), 1.0))
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["cube", "ncube", "softmax_simplex", "square", "tesseract"]


def ncube(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and edges of the ``n``-cube :math:`\\{-1, 1\\}^n`.

    Vertex ``k`` has coordinate ``j`` equal to ``+1`` if bit ``j`` of ``k`` is set and
    ``-1`` otherwise, so two vertices are joined by an edge exactly when their indices
    differ in one bit.

    Parameters
    ----------
    n : int
        Dimension, ``n >= 1``.

    Returns
    -------
    vertices : ndarray of shape (2**n, n), float64
        Entries in ``{-1, 1}``.
    edges : ndarray of shape (n * 2**(n-1), 2), int64
        Pairs ``(i, j)``, ``i < j``, of vertex indices differing in one coordinate.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if n > 20:
        raise ValueError(f"n = {n} would make 2**{n} vertices; use n <= 20")
    idx = np.arange(2**n)
    bits = (idx[:, None] >> np.arange(n)) & 1
    vertices = (2.0 * bits - 1.0).astype(np.float64)
    # For each coordinate j, join every vertex with bit j clear to its partner with it set.
    edges = [np.stack([idx[bits[:, j] == 0], idx[bits[:, j] == 0] | (1 << j)], axis=1)
             for j in range(n)]
    return vertices, np.concatenate(edges).astype(np.int64)


def square() -> tuple[np.ndarray, np.ndarray]:
    """The 2-cube: 4 vertices, 4 edges (see :func:`ncube`)."""
    return ncube(2)


def cube() -> tuple[np.ndarray, np.ndarray]:
    """The 3-cube: 8 vertices, 12 edges (see :func:`ncube`)."""
    return ncube(3)


def tesseract() -> tuple[np.ndarray, np.ndarray]:
    """The 4-cube: 16 vertices, 32 edges (see :func:`ncube`)."""
    return ncube(4)


def softmax_simplex(n_classes: int = 10, n_points: int = 1000, seed=0, *,
                    scale: float = 6.0, noise: float = 1.0,
                    confused: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    r"""Points that look like a trained classifier's softmax outputs.

    Each point gets a class :math:`y` (balanced, then shuffled) and logits
    :math:`z = \text{scale}\;e_y + \text{noise}\;\varepsilon`,
    :math:`\varepsilon \sim N(0, I)`; a fraction ``confused`` of the points instead get
    :math:`z = \text{scale}\,(w\,e_y + (1-w)\,e_{y'})  + \text{noise}\;\varepsilon` with a
    second class :math:`y' \ne y` and :math:`w \sim U(0.3, 0.7)`, so they lie near the
    edge of the simplex between the two classes (as the article's confused 3s and 5s).
    The point is :math:`\mathrm{softmax}(z)`.

    Parameters
    ----------
    n_classes : int
        ``C >= 2``, the dimension of each point.
    n_points : int
        ``N >= 0``.
    seed : int or numpy.random.Generator
        Same seed, same points.
    scale : float
        Logit margin of the true class: larger puts points closer to their vertex.
    noise : float
        Standard deviation of the Gaussian logit noise.
    confused : float in [0, 1]
        Fraction of points between two classes.

    Returns
    -------
    points : ndarray of shape (N, C), float64
        Non-negative rows summing to 1.
    labels : ndarray of shape (N,), int64
        The class of each point (the nearer vertex for confused points is not
        guaranteed: that is what confusion looks like).
    """
    C, N = int(n_classes), int(n_points)
    if C < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if N < 0:
        raise ValueError(f"n_points must be >= 0, got {n_points}")
    if not 0.0 <= confused <= 1.0:
        raise ValueError(f"confused must be a fraction in [0, 1], got {confused}")
    if not (np.isfinite(scale) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"scale must be finite and noise finite and >= 0, got {scale}, {noise}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(N) % C).astype(np.int64)
    weight = np.ones(N)
    is_confused = rng.random(N) < confused
    weight[is_confused] = rng.uniform(0.3, 0.7, int(is_confused.sum()))
    # The second class: any class but the point's own.
    other = (labels + rng.integers(1, C, N)) % C
    logits = noise * rng.standard_normal((N, C))
    rows = np.arange(N)
    logits[rows, labels] += scale * weight
    logits[rows, other] += scale * (1.0 - weight)
    logits -= logits.max(axis=1, keepdims=True)  # stable softmax
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True), labels
