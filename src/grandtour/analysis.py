r"""What to look at: classes learned late, and the classes a network confuses.

The article's authors found these by watching; here they are computed, from the
per-class metrics the trainer recorded or, for a run that has only a softmax layer and
labels (an import), from the softmax itself.

**Classes learned late** (:func:`late_classes`). For each class :math:`c` with accuracy
:math:`a_c(e)` over the epochs, from :math:`a_c^0` at the first epoch to
:math:`a_c^\ast` at the last:

* its *learning epoch* :math:`L_c` is the first epoch from which on :math:`a_c` stays at
  least half-way, :math:`a_c(e') \ge \tfrac12 (a_c^0 + a_c^\ast)` for every later
  :math:`e'` (a flicker back below does not count as learned);
* a class whose gain :math:`a_c^\ast - a_c^0` is under half the median gain of the
  classes was not learned at all, and is left out;
* with :math:`M` the median and :math:`S = 1.4826\,\mathrm{MAD}` the robust spread of the
  learning epochs, class :math:`c` is *late* if
  :math:`L_c - M > \max(3S,\ 0.1\,(e_\mathrm{last} - e_\mathrm{first}))`:
  an outlier by the usual robust rule, and by at least a tenth of the run.

Nothing in the rule knows the dataset: it reads only accuracies and epoch numbers.

**Confusions** (:func:`confusions`). With :math:`P` the softmax (N x C) at one epoch,
the soft confusion :math:`M_{cc'}` is the mean probability given to class :math:`c'` by
the points of class :math:`c`. A set :math:`S` of k = 2 or 3 classes scores
:math:`\sum_{c \ne c' \in S} M_{cc'}`. Its projection puts the softmax axes of
:math:`S` at the corners of a regular triangle (k = 3; a right angle for k = 2) and
every other axis at the centre; its rows are scaled so the two columns are
orthonormal: a frame the tour can take. A point of the set's classes then lands at
:math:`\sum_{c\in S} P_c\,h_c`. Its ``interior`` is the share of those of its points
(with at least half their mass on :math:`S`) that are not at a corner (largest share
of the mass on S under 0.9) that lie *inside* (every share at least 0.1) rather
than along an edge: high for a three-way confusion, low for two two-way ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from grandtour.errors import GrandTourError
from grandtour.store import Run

#: A point is at a corner when this much of its mass on the set is on one class ...
CORNER = 0.9
#: ... and inside the triangle when every class of the set has at least this share.
INSIDE = 0.1


def _open(run) -> Run:
    if isinstance(run, Run):
        run.refresh()
        return run
    return Run.open(run)


def softmax_layer(run: Run) -> str:
    """The run's softmax layer (kind ``softmax``; the last such); GrandTourError if none."""
    names = [layer.name for layer in run.layers if layer.kind == "softmax"]
    if not names:
        raise GrandTourError(f"run {run.path} has no softmax layer (layer kinds: "
                             f"{', '.join(f'{la.name} {la.kind}' for la in run.layers)}); the class "
                             "analyses read the network's class probabilities")
    return names[-1]


def softmax(run: Run, epoch: int, split: str) -> np.ndarray:
    """The softmax at ``epoch``, ``(N, C)``, clipped at 0 and renormalised (float16 storage)."""
    P = np.clip(run.activations(softmax_layer(run), epoch, split).astype(np.float64), 0.0, None)
    total = P.sum(axis=1, keepdims=True)
    return np.divide(P, total, out=np.full_like(P, 1.0 / P.shape[1]), where=total > 0)


def class_curves(run, split: str = "test") -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per-class accuracy and loss at every epoch: ``(epochs, accuracy (E, C), loss (E, C))``.

    The recorded metrics where there are any; otherwise (an import) computed from the
    softmax layer and the labels: accuracy = share of the class's points whose largest
    probability is their label's, loss = their mean :math:`-\\log P_{label}`.
    """
    run = _open(run)
    split = run.check_split(split)
    epochs = list(run.epochs)
    C = len(run.class_names)
    recorded = recorded_curves(run, split)
    if recorded is not None:
        return epochs, *recorded
    labels = run.labels(split)
    acc, loss = np.full((len(epochs), C), np.nan), np.full((len(epochs), C), np.nan)
    for i, epoch in enumerate(epochs):
        P = softmax(run, epoch, split)
        right = P.argmax(axis=1) == labels
        nll = -np.log(np.maximum(P[np.arange(len(labels)), labels], 1e-12))
        for c in range(C):
            members = labels == c
            if members.any():
                acc[i, c] = right[members].mean()
                loss[i, c] = nll[members].mean()
    return epochs, acc, loss


def recorded_curves(run, split: str = "test") -> tuple[np.ndarray, np.ndarray] | None:
    """The recorded per-class ``(accuracy (E, C), loss (E, C))`` when every epoch has them,
    else None (then :func:`class_curves` computes them from the softmax)."""
    run = _open(run)
    m = run.metrics(run.check_split(split))
    acc, loss = m["class_accuracy"], m["class_loss"]
    if acc.shape == (len(run.epochs), len(run.class_names)) and np.isfinite(acc).all():
        return acc.astype(np.float64), loss.astype(np.float64)
    return None


def learning_epochs(epochs: list[int], accuracy: np.ndarray) -> list[int | None]:
    """Each class's learning epoch :math:`L_c` (None where it was not learned); see the module."""
    A = np.asarray(accuracy, dtype=np.float64)
    gains = A[-1] - A[0]
    finite = np.isfinite(gains)
    typical = float(np.median(gains[finite])) if finite.any() else 0.0
    out: list[int | None] = []
    for c in range(A.shape[1]):
        if not finite[c] or gains[c] <= 0 or gains[c] < 0.5 * typical:
            out.append(None)
            continue
        half = 0.5 * (A[0, c] + A[-1, c])
        below = np.nonzero(~(A[:, c] >= half))[0]  # NaN counts as below
        out.append(epochs[int(below[-1]) + 1] if below.size else epochs[0])
    return out


def late_classes(run, split: str = "test") -> list[tuple[str, int]]:
    """The classes the network learned markedly later than the rest, with their learning epoch.

    Returns
    -------
    list of (class_name, epoch)
        Sorted by epoch; empty if no class is late (or the run has fewer than 3 epochs).
    """
    run = _open(run)
    epochs, acc, _ = class_curves(run, split)
    if len(epochs) < 3:
        return []
    learned = learning_epochs(epochs, acc)
    known = np.array([e for e in learned if e is not None], dtype=np.float64)
    if known.size < 2:
        return []
    median = float(np.median(known))
    spread = 1.4826 * float(np.median(np.abs(known - median)))
    margin = max(3.0 * spread, 0.1 * (epochs[-1] - epochs[0]))
    late = [(run.class_names[c], int(e)) for c, e in enumerate(learned)
            if e is not None and e - median > margin]
    return sorted(late, key=lambda item: (item[1], item[0]))


@dataclass(frozen=True)
class Confusion:
    """Classes the network confuses at one epoch, and the view that shows it.

    Attributes
    ----------
    classes : tuple of str
    indices : tuple of int
        The classes' indices (softmax axes).
    score : float
        Sum of the soft confusions among the classes (see the module).
    projection : ndarray of shape (C, 2)
        Orthonormal frame of the softmax layer: the classes' axes at the corners, the
        others at the centre.
    interior : float
        Share of the confused points inside the triangle rather than on its edges.
    layer : str
    epoch : int
    """

    classes: tuple[str, ...]
    indices: tuple[int, ...]
    score: float
    projection: np.ndarray
    interior: float
    layer: str
    epoch: int

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "indices": list(self.indices), "score": self.score,
                "projection": self.projection.tolist(), "interior": self.interior,
                "layer": self.layer, "epoch": self.epoch}


def corners(k: int) -> np.ndarray:
    """Handle positions ``(k, 2)`` of a confusion's classes, with orthonormal columns.

    k = 3: a regular triangle (apex up) of radius sqrt(2/3); k = 2: two orthogonal unit
    vectors at +-45 degrees from the vertical.
    """
    if k == 3:
        angles = np.radians([90.0, 210.0, 330.0])
        return math.sqrt(2.0 / 3.0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if k == 2:
        return np.array([[-1.0, 1.0], [1.0, 1.0]]) / math.sqrt(2.0)
    raise GrandTourError(f"confusions are of k = 2 or 3 classes, got k = {k}")


def confusion_projection(n_classes: int, indices) -> np.ndarray:
    """The ``(C, 2)`` frame of a confusion of ``indices`` (see :func:`corners`)."""
    P = np.zeros((n_classes, 2))
    P[list(indices)] = corners(len(indices))
    return P


def interior_share(P: np.ndarray, labels: np.ndarray, indices) -> float:
    """``interior`` of a set of classes (see the module); 0 when none of its points is confused."""
    idx = list(indices)
    members = np.isin(labels, idx)
    mass = P[members][:, idx]
    total = mass.sum(axis=1)
    keep = total >= 0.5
    share = mass[keep] / total[keep, None]
    confused = share.max(axis=1) < CORNER
    if not confused.any():
        return 0.0
    return float((share[confused].min(axis=1) >= INSIDE).mean())


def confusions(run, epoch: int, split: str = "test", k: int = 3, limit: int = 10) -> list[Confusion]:
    """The ``limit`` most confused pairs (k = 2) or triples (k = 3) of classes at ``epoch``.

    Ranked by score, highest first (see the module for the score, the projection and
    ``interior``).
    """
    run = _open(run)
    epoch = run.check_epoch(epoch)
    split = run.check_split(split)
    corners(k)  # checks k
    layer = softmax_layer(run)
    P = softmax(run, epoch, split)
    labels = run.labels(split)
    C = P.shape[1]
    if k > C:
        raise GrandTourError(f"run {run.path} has {C} classes: no sets of {k}")
    M = np.zeros((C, C))
    for c in range(C):
        members = labels == c
        if members.any():
            M[c] = P[members].mean(axis=0)
    pair = M + M.T
    np.fill_diagonal(pair, 0.0)
    sets = list(combinations(range(C), k))
    scores = np.array([sum(pair[a, b] for a, b in combinations(s, 2)) for s in sets])
    order = np.argsort(-scores, kind="stable")[:max(0, int(limit))]
    return [Confusion(classes=tuple(run.class_names[c] for c in sets[i]), indices=tuple(sets[i]),
                      score=float(scores[i]), projection=confusion_projection(C, sets[i]),
                      interior=interior_share(P, labels, sets[i]), layer=layer, epoch=epoch)
            for i in order]
