"""The SVD that aligns a layer: ``C = U S V^T`` with square, deterministic ``U`` and ``V``.

:func:`_svd_alignment` is the full SVD a transition uses (degenerate cases, such as
pooling or a permutation, keep the standard output basis; signs are fixed so the result
is reproducible), :func:`_complete` extends orthonormal columns to a square basis, and
:func:`operator_svd` gives the leading singular triplets of a layer from its operator
alone, for layers too large to materialise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from grandtour.align.maps import LayerMap


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


def _block_svd_alignment(tokens: int, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_svd_alignment` of ``M = I_T (x) A`` from the SVD of ``A`` alone.

    ``A = u s v^T`` gives ``M = (I (x) u)(I (x) s)(I (x) v)^T``; the columns are ordered
    singular value first, token second (``k = i T + t``), so the singular values come out
    decreasing, each repeated T times. O(a^3) instead of O((T a)^3).
    """
    u, s, v = _svd_alignment(a)
    d_a, d_b = a.shape
    big_u = np.zeros((tokens * d_a, tokens * d_a))
    big_v = np.zeros((tokens * d_b, tokens * d_b))
    for t in range(tokens):
        big_u[t * d_a:(t + 1) * d_a, t::tokens] = u
        big_v[t * d_b:(t + 1) * d_b, t::tokens] = v
    return big_u, np.repeat(s, tokens), big_v
