r"""Direct manipulation of a Grand Tour view (the article's Technical Details).

Data points are row vectors, ``GT`` is the ``n x n`` orthogonal tour matrix, the
screen position of ``x`` is the first two entries of ``x GT`` and the handle of axis
``i`` is row ``i`` of ``GT``, first two entries.

Axis mode (:func:`axis_drag`)
    Dragging handle ``i`` by :math:`D = (dx, dy)` adds ``dx, dy`` to
    ``GT[i, 0], GT[i, 1]`` and re-orthonormalises the rows by Gram-Schmidt **with row
    i first**. The handle lands at ``normalize(e_i GT + D)`` (first two entries),
    within :math:`\|D\|` of the requested spot.

Data-point mode (:func:`point_drag`)
    Dragging the centroid :math:`c` of a selection by :math:`D` applies the simple
    rotation :math:`\rho` in the plane :math:`\mathrm{span}(\tilde c, \tilde c_{new})`,
    :math:`\tilde c = c\,GT`,
    :math:`\tilde c_{new} = (\tilde c + D)\,\|\tilde c\| / \|\tilde c + D\|`, by the
    angle between them: ``GT <- GT rho``. Vectors orthogonal to that plane do not
    move; the centroid lands exactly at :math:`\tilde c_{new}`.

Every drag returns a new orthogonal matrix and never NaN: degenerate input has
a defined result (documented per function) or raises ``ValueError``.
"""

from __future__ import annotations

import math

import numpy as np

from grandtour.tour import _as_matrix, check_orthogonal

__all__ = ["axis_drag", "centroid", "gram_schmidt_rows", "point_drag", "simple_rotation"]

#: Below this, ``1 + <h_i, D>`` means the drag would carry handle ``i`` through the
#: origin in one step (and Gram-Schmidt would mirror the view): such a drag is split.
FLIP_MARGIN = 0.25
#: Each piece of a split drag is at most this long (so ``1 + <h, D_k> >= 1 - 0.5``).
SUBSTEP = 0.5


def _check_finite_scalar(name: str, v) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    return v


def gram_schmidt_rows(M, first: int = 0) -> np.ndarray:
    """Orthonormalise the rows of a square matrix, row ``first`` first, then the others in order.

    Classical Gram-Schmidt applied twice per row ("twice is enough", CGS2), so the
    result is orthogonal to machine precision even when rows are nearly dependent. A
    row that is (numerically) in the span of the rows before it is replaced by a unit
    vector orthogonal to them (the projection of the standard basis vector that keeps
    most of its length), and the last such row gets the sign that makes ``det = +1``
    (a rotation, not a mirror image): the result is always orthogonal, never NaN.

    Parameters
    ----------
    M : array of shape (n, n)
    first : int
        Index of the row processed first (it is only normalised).

    Returns
    -------
    ndarray of shape (n, n)
        Row ``k`` of the result is the orthonormalised row ``k`` of ``M``.
    """
    M = _as_matrix(M, "M")
    n = M.shape[0]
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or not 0 <= first < n:
        raise ValueError(f"first must be a row index in [0, {n}), got {first!r}")
    order = np.array([first] + [k for k in range(n) if k != first])
    Mp = M[order]  # rows in processing order, so the finished ones are Q[:k]
    Q = np.empty_like(Mp)
    scale = float(np.max(np.abs(M))) or 1.0
    completed = -1
    for k in range(n):
        v = Mp[k].copy()
        B = Q[:k]
        for _ in range(2):
            v -= (B @ v) @ B
        norm = float(np.linalg.norm(v))
        if norm <= 1e-10 * scale:
            v, norm, completed = _complement_vector(B, n), 1.0, k
        Q[k] = v / norm
    out = np.empty_like(Q)
    out[order] = Q
    if completed >= 0 and np.linalg.det(out) < 0:
        out[order[completed]] *= -1.0
    return out


def _complement_vector(B: np.ndarray, n: int) -> np.ndarray:
    """A unit vector orthogonal to the orthonormal rows of ``B``: the projection of the
    standard basis vector that keeps most of its length (deterministic)."""
    if B.shape[0] == 0:
        e = np.zeros(n)
        e[0] = 1.0
        return e
    P = np.eye(n) - B.T @ B
    k = int(np.argmax(np.einsum("ij,ij->j", P, P)))
    v = P[:, k].copy()
    for _ in range(2):
        v -= (B @ v) @ B
    return v / np.linalg.norm(v)


def axis_drag(GT, i: int, dx: float, dy: float) -> np.ndarray:
    """Drag the handle of axis ``i`` by ``(dx, dy)`` screen units (axis mode).

    ``GT[i, :2] += (dx, dy)``, then :func:`gram_schmidt_rows` with row ``i`` first.
    The handle lands at ``normalize(e_i GT + D)[:2]`` (for a drag that is not split, below).

    A drag that would carry the handle through the origin in one step
    (``1 + <h_i, D> < FLIP_MARGIN``, with ``h_i`` the handle) would make Gram-Schmidt
    mirror the whole view (the determinant changes sign); such a drag is applied as
    a sequence of equal shorter drags of length at most ``SUBSTEP``, so the view
    rotates continuously and stays a rotation.

    Parameters
    ----------
    GT : array of shape (n, n), orthogonal
    i : int
        The axis (row) being dragged.
    dx, dy : float
        The drag, in the units of the projection (the handle of a unit axis lies
        within the unit disc).

    Returns
    -------
    ndarray of shape (n, n), orthogonal, with the same determinant as ``GT``.
    """
    GT = check_orthogonal(GT)
    n = GT.shape[0]
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
        raise ValueError(f"i must be an axis index in [0, {n}), got {i!r}")
    D = np.array([_check_finite_scalar("dx", dx), _check_finite_scalar("dy", dy)])
    length = math.hypot(*D)
    if length == 0.0:
        return GT.copy()
    if 1.0 + GT[i, :2] @ D >= FLIP_MARGIN:
        pieces = [D]
    else:
        k = max(2, math.ceil(length / SUBSTEP))
        pieces = [D / k] * k
    for piece in pieces:
        M = GT.copy()
        M[i, :2] += piece
        GT = gram_schmidt_rows(M, first=i)
    return GT


def simple_rotation(u, w) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The plane and angle of the simple rotation taking direction ``u`` to direction ``w``.

    Returns ``(a, b, angle)`` with ``a = u/|u|``, ``b`` the unit vector orthogonal to
    ``a`` in ``span(u, w)``, and ``angle`` in ``[0, pi]`` (computed as an ``atan2``,
    accurate for small angles), so that ``a cos(angle) + b sin(angle) = w/|w|``. Returns
    ``None`` if ``u`` and ``w`` are parallel (no rotation), or for opposite vectors
    whose plane is ambiguous.
    """
    u = np.asarray(u, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nu, nw = np.linalg.norm(u), np.linalg.norm(w)
    if not (nu > 0 and nw > 0 and math.isfinite(nu) and math.isfinite(nw)):
        raise ValueError("simple_rotation needs two finite, non-zero vectors")
    a = u / nu
    wn = w / nw
    cos = float(a @ wn)
    r = wn - cos * a
    sin = float(np.linalg.norm(r))
    if sin <= 1e-15:
        return None
    return a, r / sin, math.atan2(sin, cos)


def point_drag(GT, centroid, dx: float, dy: float) -> np.ndarray:
    r"""Drag the screen position of ``centroid`` by ``(dx, dy)`` (data-point mode).

    Parameters
    ----------
    GT : array of shape (n, n), orthogonal
    centroid : array of shape (n,)
        The point (in data coordinates) being dragged, usually :func:`centroid` of a
        selection.
    dx, dy : float

    Returns
    -------
    ndarray of shape (n, n)
        ``GT rho``: ``centroid @ result == c_new`` (to rounding), and every vector
        orthogonal (in view coordinates) to ``span(c~, c~_new)`` keeps its image.

    Notes
    -----
    Defined results for degenerate input: a zero centroid (it projects to the origin
    whatever the rotation) or a zero drag return ``GT`` unchanged; so does a drag
    whose target ``c~ + D`` is the origin (no direction to rotate to). If ``c~_new``
    is opposite to ``c~`` (``c~`` in the screen plane, dragged straight through the
    origin), the rotation is the half-turn in the screen plane.
    """
    GT = check_orthogonal(GT)
    n = GT.shape[0]
    c = np.asarray(centroid, dtype=np.float64)
    if c.shape != (n,):
        raise ValueError(f"centroid must have shape ({n},), got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("centroid contains NaN or infinite entries")
    D = np.zeros(n)
    D[0] = _check_finite_scalar("dx", dx)
    D[1] = _check_finite_scalar("dy", dy)
    ct = c @ GT
    norm = np.linalg.norm(ct)
    moved = ct + D
    norm_moved = np.linalg.norm(moved)
    # A target (numerically) at the origin has no direction to rotate to.
    if norm == 0.0 or norm_moved <= 1e-9 * norm or (D[0] == 0.0 and D[1] == 0.0):
        return GT.copy()
    ct_new = moved * (norm / norm_moved)
    rot = simple_rotation(ct, ct_new)
    if rot is None:
        if float(ct @ ct_new) >= 0:  # parallel: already there
            return GT.copy()
        # Opposite: rotate by pi in the screen plane (ct lies in it).
        a = ct / norm
        b = np.zeros(n)
        b[0], b[1] = -a[1], a[0]
        if np.linalg.norm(b) < 1e-12:  # pragma: no cover - ct off the screen plane
            return GT.copy()
        b /= np.linalg.norm(b)
        rot = (a, b, math.pi)
    a, b, angle = rot
    # In view coordinates rho acts on the right of c~ = c GT; in data coordinates
    # GT_new = GT rho, i.e. rotate the columns of GT.
    return _rotate_right_view(GT, a, b, angle)


def _rotate_right_view(GT: np.ndarray, a: np.ndarray, b: np.ndarray, angle: float) -> np.ndarray:
    """``GT rho`` where ``rho = I + (c-1)(a^T a + b^T b) + s(a^T b - b^T a)`` acts on view
    coordinates (row vectors): ``O(n^2)``."""
    c, s = math.cos(angle), math.sin(angle)
    Ga = GT @ a
    Gb = GT @ b
    return GT + np.outer(Ga, (c - 1) * a + s * b) + np.outer(Gb, (c - 1) * b - s * a)


def centroid(X, selection=None) -> np.ndarray:
    """The centroid of the selected rows of ``X``.

    Parameters
    ----------
    X : array of shape (N, n)
    selection : boolean mask of shape (N,), or integer indices, optional
        Default: all rows. Non-finite rows are left out (they are not drawn either).

    Raises
    ------
    ValueError
        If the selection is empty or has no finite row.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (N, n), got shape {X.shape}")
    if selection is not None:
        sel = np.asarray(selection)
        if sel.dtype == bool:
            if sel.shape != (X.shape[0],):
                raise ValueError(f"a boolean selection must have shape ({X.shape[0]},), got {sel.shape}")
        elif sel.size == 0:
            sel = np.zeros(0, dtype=np.intp)  # [] is a float array to numpy
        elif not np.issubdtype(sel.dtype, np.integer):
            raise ValueError("selection must be a boolean mask or integer indices")
        X = X[sel]
    X = X[np.all(np.isfinite(X), axis=1)]
    if X.shape[0] == 0:
        raise ValueError("the selection is empty (or has no finite point): select some points first")
    return X.mean(axis=0)
