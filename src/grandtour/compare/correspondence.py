r"""The data-visual correspondence of a picture between two epochs (``docs/compare.md``).

Between epochs :math:`a` and :math:`b`, point :math:`i` moves by

.. math::

    d_i = \lVert (x_i^b - \bar x^b) - s\,(x_i^a - \bar x^a) \rVert

in the data, after removing a global translation and uniform scale :math:`s` (a zoom
is no change of meaning), and by

.. math::

    p_i = \lVert (y_i^b - \bar y^b) - \sigma\,(y_i^a - \bar y^a)\,R \rVert

in the picture, after removing a similarity transform (translation, rotation or
reflection :math:`R`, scale :math:`\sigma`; orthogonal Procrustes): t-SNE and UMAP
pictures are defined only up to those, so they are not held against them. Both are
fitted to the *anchors*, the half of the points that moved least in the data (the
data's fit is first made on all points, then redone on its anchors), so that a
class moving far does not make the unchanged points look moved. The correspondence
is the overlap of the two distributions of motion over the points,

.. math::

    C = \sum_i \min\Big(\frac{d_i}{\sum_j d_j},\ \frac{p_i}{\sum_j p_j}\Big)
      = 1 - \tfrac12 \sum_i \Big|\frac{d_i}{\sum_j d_j} - \frac{p_i}{\sum_j p_j}\Big|
      \in [0, 1],

1 when the picture's motion falls on the points in proportion to their motion in the
data, and the share of it that does otherwise: motion of points whose data did not
change (the article's t-SNE between MNIST epochs 13 and 14, where only the 1s change
and every point moves) counts against it in full. It is scale-free (the picture's
units are arbitrary). A rank correlation of :math:`d` and :math:`p` was tried first and
dropped: it rewards a picture in which the changed points move *most*, however much
the unchanged ones move too. NaN when the data or the picture did not move at all.
"""

from __future__ import annotations

import numpy as np


def _anchors(d: np.ndarray) -> np.ndarray:
    """The points that moved least in the data (at most the median): they fix the picture's gauge."""
    return d <= np.median(d)


def data_motion(Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
    """``d``: each point's motion in the data, global translation and scale removed, ``(N,)``.

    The translation and scale are fitted to all points, then again to the half that moved
    least, so that a few points moving far do not make the rest look moved.
    """
    A = np.asarray(Xa, dtype=np.float64)
    B = np.asarray(Xb, dtype=np.float64)
    keep = np.ones(len(A), dtype=bool)
    for _ in range(2):
        ca, cb = A[keep].mean(axis=0), B[keep].mean(axis=0)
        A0, B0 = A[keep] - ca, B[keep] - cb
        norm = float(np.sum(A0 * A0))
        s = float(np.sum(A0 * B0)) / norm if norm > 0 else 0.0
        d = np.linalg.norm((B - cb) - s * (A - ca), axis=1)
        keep = _anchors(d)
    return d


def picture_motion(Ya: np.ndarray, Yb: np.ndarray, anchors: np.ndarray | None = None) -> np.ndarray:
    """``p``: each point's motion in the picture after the similarity transform that best maps
    the ``anchors`` (default: all points; orthogonal Procrustes with scale), ``(N,)``."""
    from scipy.linalg import orthogonal_procrustes

    A = np.asarray(Ya, dtype=np.float64)
    B = np.asarray(Yb, dtype=np.float64)
    keep = np.ones(len(A), dtype=bool) if anchors is None else np.asarray(anchors, dtype=bool)
    ca, cb = A[keep].mean(axis=0), B[keep].mean(axis=0)
    A0, B0 = A[keep] - ca, B[keep] - cb
    norm = float(np.sum(A0 * A0))
    if norm == 0.0:
        return np.linalg.norm(B - cb, axis=1)
    R, trace = orthogonal_procrustes(A0, B0)  # R minimises ||A0 R - B0||; trace: sum of singular values
    return np.linalg.norm((B - cb) - (trace / norm) * ((A - ca) @ R), axis=1)


def motion_overlap(d: np.ndarray, p: np.ndarray) -> float:
    """``sum_i min(d_i / sum d, p_i / sum p)``: how much of the picture's motion is where the
    data's is; NaN if either did not move at all."""
    d, p = np.asarray(d, dtype=np.float64), np.asarray(p, dtype=np.float64)
    sd, sp = float(d.sum()), float(p.sum())
    if not (sd > 0 and sp > 0):
        return float("nan")
    return float(np.minimum(d / sd, p / sp).sum())


def correspondence_of(Xa, Xb, Ya, Yb) -> float:
    """The correspondence of pictures ``Ya -> Yb`` (N x 2) of data ``Xa -> Xb`` (N x D)."""
    d = data_motion(Xa, Xb)
    return motion_overlap(d, picture_motion(Ya, Yb, _anchors(d)))


def correspondence(run, layer: str, epoch_a: int, epoch_b: int, method: str, split: str = "test",
                   **embed_options) -> float:
    """How faithfully ``method``'s pictures of ``layer`` show the change from ``epoch_a`` to ``epoch_b``.

    Higher is more faithful (at most 1): see the module's formula. The pictures are the
    stored ones (a joint ``dtsne`` embedding holding both epochs included), or are
    computed for the two epochs and stored (:func:`grandtour.compare.embed`).

    Returns
    -------
    float
        The overlap :math:`C` of data motion and picture motion, in [0, 1]; NaN if nothing moved.
    """
    from grandtour.compare.embed import embed, open_run, stored

    run = open_run(run)
    a, b = run.check_epoch(epoch_a), run.check_epoch(epoch_b)
    have = stored(run, layer, method, split)
    if a in have and b in have:
        Ya, Yb = have[a], have[b]
    else:
        Ya, Yb = embed(run, layer, method, [a, b], split, **embed_options)[[0, 1] if a <= b else [1, 0]]
    return correspondence_of(run.activations(layer, a, split), run.activations(layer, b, split), Ya, Yb)
