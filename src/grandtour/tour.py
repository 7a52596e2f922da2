r"""Tours: smooth paths through the linear 2-D views of n-dimensional data.

Conventions (Li, Zhao, Scheidegger, "Visualizing Neural Networks with the Grand Tour",
Distill 2020): data points are **row vectors**; the state of a tour is an
:math:`n \times n` orthogonal matrix :math:`GT`; the screen position of a point
:math:`x` is the first two entries of :math:`x\,GT`; the handle of axis :math:`i` is
row :math:`i` of :math:`GT`, first two entries. Time is in **seconds of elapsed
time** and speeds in radians per second, so the picture moves at the same rate on a
60 Hz and on a 144 Hz screen.

Two tours share one interface (:class:`Tour`): ``.matrix``, ``.frame()``,
``.step(dt)``, ``.project(X)``, ``.handles()``, ``.rebase(P)``.

:class:`GrandTour`
    Asimov's torus method, made uniform: :math:`GT(t) = L\,T(\phi + \omega t)\,W`
    where :math:`T` is a product of :math:`n(n-1)/2` plane rotations (Givens) with
    random, rationally independent angular velocities :math:`\omega`, and :math:`L, W`
    are random orthogonal matrices drawn once. The rotations are ordered in
    :math:`2n-3` *stages* of disjoint adjacent planes (the Sameh-Kuck order of a
    parallel Givens QR). Because Givens QR in that order reduces any rotation to the
    identity, every element of SO(n) is some :math:`T(\theta)`; the line
    :math:`\phi + \omega t` is dense in the torus of angles, so the tour comes
    arbitrarily close to **every** view.

    Why :math:`L` and :math:`W`: a product of Givens rotations in any fixed order is
    *local*. Applied to the screen axes :math:`e_0, e_1` it spreads them over a few
    neighbouring coordinates only (measured at n = 50: 15 of the 50 data axes carry
    all of the view's weight over a long run, the other 35 almost never show). With a
    random :math:`W` in front and :math:`L` behind, every data axis carries its share
    (time-averaged weight within 15 % of uniform at n = 50), and the angular speed of
    the view is ``speed`` for every n. (The article instead multiplies the current
    matrix by a fixed product of Givens rotations each frame: a one-parameter
    subgroup, whose closure is a torus of dimension at most n/2, so it misses most
    views; for n = 3 an axis close to the rotation axis never leaves a small circle;
    and it costs :math:`O(n^3)` per frame.)

    Cost: a step only advances the angles, :math:`O(n^2)`; the projection frame
    :math:`GT[:, :2] = L\,(T\,W[:, :2])` costs :math:`O(n^2)` (each stage rotates rows
    of an :math:`n \times 2` array); only the full ``.matrix`` costs :math:`O(n^3)`, and
    it is needed only for direct manipulation. The matrix is recomputed from the
    angles, never accumulated, so orthogonality cannot drift however long the tour
    runs. :math:`L` also absorbs direct manipulation and re-basing.

:class:`GeodesicTour`
    As in tourr: from the current plane to a random target plane (uniform on the
    Grassmannian) along the geodesic that rotates each principal vector towards its
    partner, at a constant **arc length** per second measured as the principal-angle
    distance :math:`\sqrt{\theta_1^2 + \theta_2^2}`; then on to the next target.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np

__all__ = [
    "GeodesicTour",
    "GrandTour",
    "Tour",
    "check_orthogonal",
    "givens_stages",
    "principal_angles",
    "random_frame",
    "random_rotation",
    "svd2",
]

TAU = 2.0 * math.pi


# --------------------------------------------------------------------------- helpers


def _as_matrix(GT, name: str = "GT") -> np.ndarray:
    M = np.array(GT, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be a square n x n matrix, got shape {M.shape}")
    if M.shape[0] < 2:
        raise ValueError(f"{name} must be at least 2 x 2 (a 2-D view needs n >= 2), got {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return M


def check_orthogonal(GT, tol: float = 1e-6, name: str = "GT") -> np.ndarray:
    """Return ``GT`` as a float64 array after checking it is square, finite and orthogonal.

    Raises
    ------
    ValueError
        If ``GT`` is not square, has n < 2, has non-finite entries, or
        ``max |GT^T GT - I| > tol``.
    """
    M = _as_matrix(GT, name)
    err = float(np.max(np.abs(M.T @ M - np.eye(M.shape[0]))))
    if err > tol:
        raise ValueError(
            f"{name} must be orthogonal: max |{name}^T {name} - I| = {err:.3g} > {tol:g}. "
            "Re-orthonormalise it (e.g. grandtour.manipulate.gram_schmidt_rows) first."
        )
    return M


def _check_dt(dt) -> float:
    dt = float(dt)
    if not math.isfinite(dt):
        raise ValueError(f"dt must be a finite number of seconds, got {dt}")
    return dt


def givens_stages(n: int) -> list[np.ndarray]:
    """The plane rotations of the torus method, grouped in stages of disjoint planes.

    Stage ``s`` holds the adjacent planes ``(a, a+1)`` that a parallel Givens QR
    (Sameh and Kuck, 1978) uses at step ``s`` to zero entry ``(a+1, j)`` with
    ``s = (n-1-(a+1)) + 2j``. There are ``2n-3`` stages and ``n(n-1)/2`` rotations;
    rotations within a stage commute.

    Returns
    -------
    list of int arrays
        ``stages[s]`` is the sorted array of the first indices ``a`` of its planes.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    stages: list[list[int]] = [[] for _ in range(2 * n - 3)]
    for j in range(n - 1):
        for i in range(n - 1, j, -1):
            stages[(n - 1 - i) + 2 * j].append(i - 1)
    return [np.array(sorted(s), dtype=np.intp) for s in stages]


def _stage_slices(stages: list[np.ndarray]) -> list[tuple[slice, slice]]:
    """Each stage's planes ``(a, a+1)`` as two strided slices (its ``a`` step by 2)."""
    out = []
    for a in stages:
        if len(a) > 1 and not np.all(np.diff(a) == 2):  # pragma: no cover - by construction
            raise AssertionError("stage planes are not evenly spaced")
        out.append((slice(a[0], a[-1] + 1, 2), slice(a[0] + 1, a[-1] + 2, 2)))
    return out


def _rotate_rows(Y: np.ndarray, rows: tuple[slice, slice], c: np.ndarray, s: np.ndarray) -> None:
    """In place, ``Y <- R Y`` for the rotations of one stage (planes ``(a, a+1)``).

    ``R`` is the identity except ``R[a,a] = R[b,b] = c``, ``R[a,b] = -s``, ``R[b,a] = s``.
    """
    Ya = Y[rows[0]].copy()
    Yb = Y[rows[1]]
    c = c[:, None]
    s = s[:, None]
    Y[rows[0]] = c * Ya - s * Yb
    Y[rows[1]] = s * Ya + c * Yb


def random_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n x n`` rotation (det +1), uniform (Haar) on SO(n)."""
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    Q = Q * np.sign(np.diag(R))
    if np.linalg.det(Q) < 0:
        Q[:, 0] = -Q[:, 0]
    return Q


def random_frame(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthonormal ``n x 2`` frame, uniform (Haar) on the Stiefel manifold."""
    Q, R = np.linalg.qr(rng.standard_normal((n, 2)))
    return Q * np.sign(np.diag(R))


def svd2(M) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form SVD of a 2 x 2 matrix: ``M = U @ diag(s) @ V.T``, ``s[0] >= s[1] >= 0``.

    Closed form (not LAPACK) so that the JavaScript mirror computes the same
    principal vectors, signs included.
    """
    (m00, m01), (m10, m11) = np.asarray(M, dtype=np.float64)
    e = (m00 + m11) / 2
    f = (m00 - m11) / 2
    g = (m10 + m01) / 2
    h = (m10 - m01) / 2
    q = math.hypot(e, h)
    r = math.hypot(f, g)
    a1 = math.atan2(g, f)
    a2 = math.atan2(h, e)
    theta = (a2 - a1) / 2  # M = Rot(phi) diag(s0, s1) Rot(theta)
    phi = (a2 + a1) / 2
    s0, s1 = q + r, q - r
    cu, su = math.cos(phi), math.sin(phi)
    cv, sv = math.cos(theta), math.sin(theta)
    U = np.array([[cu, -su], [su, cu]])
    V = np.array([[cv, sv], [-sv, cv]])  # V^T = Rot(theta)
    if s1 < 0:  # make both singular values non-negative
        s1 = -s1
        V[:, 1] = -V[:, 1]
    return U, np.array([s0, s1]), V


def principal_angles(A, B) -> np.ndarray:
    """Principal angles ``(theta_1, theta_2)`` between the planes spanned by two ``n x 2`` frames.

    Accurate for small and large angles alike: each angle is
    ``atan2(sin, cos)`` of its principal pair, not ``arccos`` of a cosine.
    The principal-angle (geodesic) distance of the planes is ``hypot(*principal_angles(A, B))``.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    U, c, V = svd2(A.T @ B)
    Res = B @ V - (A @ U) * c  # each partner's component orthogonal to span A
    return np.arctan2(np.sqrt(np.sum(Res * Res, axis=0)), c)


def _principal_pairs(F: np.ndarray, T: np.ndarray):
    """Principal vectors of ``span F`` and ``span T`` (orthonormal frames ``n x 2``).

    Returns ``(P, G, theta, U)``: ``P = F U`` the principal vectors of ``span F``;
    ``G`` unit vectors orthogonal to ``span F`` such that the partners in ``span T`` are
    ``P cos(theta) + G sin(theta)``; ``theta`` the principal angles (ascending);
    columns of ``G`` are zero where ``theta == 0``.
    """
    U, c, V = svd2(F.T @ T)
    # Orthonormalise P: if rounding left it slightly off, the rotation R built on it
    # would be slightly non-orthogonal, and the error would double at every segment.
    P = F @ U
    P[:, 0] /= np.linalg.norm(P[:, 0])
    for _ in range(2):
        P[:, 1] -= P[:, 0] * (P[:, 0] @ P[:, 1])
    P[:, 1] /= np.linalg.norm(P[:, 1])
    Res = T @ V - P * c  # component of each partner orthogonal to span F
    sines = np.sqrt(np.sum(Res * Res, axis=0))
    theta = np.arctan2(sines, c)
    G = np.zeros_like(P)
    for k in np.argsort(-sines, kind="stable"):
        # Re-orthogonalise against span F and the other G, largest angle first: when a
        # sine is tiny its Res is rounding noise (often along the other G), and an
        # unorthogonalised G would let the frame drift.
        g = Res[:, k] - P @ (P.T @ Res[:, k]) - G @ (G.T @ Res[:, k])
        norm = float(np.linalg.norm(g))
        if sines[k] > 1e-12 and norm > 0.5 * sines[k]:
            G[:, k] = g / norm
        else:
            theta[k] = 0.0
    return P, G, theta, U


# --------------------------------------------------------------------------- interface


class Tour(ABC):
    """A path through the linear 2-D views of ``ndim``-dimensional data."""

    ndim: int
    speed: float
    time: float

    @property
    @abstractmethod
    def matrix(self) -> np.ndarray:
        """The current ``n x n`` orthogonal matrix ``GT`` (a fresh copy)."""

    @matrix.setter
    @abstractmethod
    def matrix(self, GT) -> None:
        """Jump to ``GT`` (after direct manipulation); the tour goes on from there."""

    @abstractmethod
    def frame(self) -> np.ndarray:
        """The projection frame ``GT[:, :2]``, ``n x 2``, without forming ``GT``."""

    @abstractmethod
    def step(self, dt: float) -> Tour:
        """Advance by ``dt`` seconds of elapsed time; returns ``self``."""

    @abstractmethod
    def rebase(self, P) -> Tour:
        """Change the data basis: ``GT <- P GT`` (``P`` orthogonal, ``n x n``); returns ``self``."""

    def project(self, X) -> np.ndarray:
        """Screen coordinates of the rows of ``X`` (``N x n``): the first two entries of ``X GT``.

        Returns
        -------
        ndarray of shape (N, 2)
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.ndim:
            raise ValueError(f"X must have shape (N, {self.ndim}), got {X.shape}")
        return X @ self.frame()

    def handles(self) -> np.ndarray:
        """Axis handle positions: row ``i`` is where axis ``i`` is drawn, ``n x 2``."""
        return self.frame()

    def path(self, dt: float, steps: int) -> Iterator[np.ndarray]:
        """Yield the frame after each of ``steps`` steps of ``dt`` seconds."""
        for _ in range(steps):
            yield self.step(dt).frame()


# --------------------------------------------------------------------------- torus method


class GrandTour(Tour):
    r"""The Grand Tour by the torus method: :math:`GT(t) = L\,T(\phi + \omega t)\,W`.

    Parameters
    ----------
    ndim : int
        Dimension ``n >= 2`` of the data.
    seed : int or numpy.random.Generator, optional
        Seeds the angular velocities and the starting angles: the same seed gives the
        same tour.
    speed : float
        Radians per second. The angular velocities are scaled so that
        :math:`\|\omega\|_2 = \text{speed}\,\sqrt{n/2}`: an axis of the data then
        sweeps through the view at about ``speed`` radians per second on average, for
        any ``n`` (and exactly ``speed`` for ``n = 2``, a plain rotation).
    angular_velocity, phase : array of shape (n(n-1)/2,), optional
        Explicit angular velocities (radians per second) and starting angles, in
        stage order (:func:`givens_stages`); override ``seed``/``speed``.
    base, right : arrays of shape (n, n), optional
        The left and right factors ``L`` and ``W`` (orthogonal); random (Haar, from
        ``seed``) by default.

    Examples
    --------
    >>> tour = GrandTour(4, seed=0, speed=0.5)
    >>> xy = tour.step(1 / 60).project(np.eye(4))   # the four axis handles
    >>> xy.shape
    (4, 2)
    """

    def __init__(self, ndim: int, seed=None, speed: float = 0.5, *,
                 angular_velocity=None, phase=None, base=None, right=None):
        n = int(ndim)
        if n < 2:
            raise ValueError(f"a Grand Tour needs ndim >= 2 (a 2-D view of n-D data), got {ndim}")
        speed = float(speed)
        if not math.isfinite(speed):
            raise ValueError(f"speed must be finite, got {speed}")
        self.ndim = n
        self.speed = speed
        self.time = 0.0
        self.stages = givens_stages(n)
        m = n * (n - 1) // 2
        rng = np.random.default_rng(seed)
        if angular_velocity is None:
            u = rng.standard_normal(m)
            omega = u * (speed * math.sqrt(n / 2) / np.linalg.norm(u))
        else:
            omega = np.array(angular_velocity, dtype=np.float64).reshape(-1)
        if phase is None:
            theta = rng.uniform(0.0, TAU, m)
        else:
            theta = np.array(phase, dtype=np.float64).reshape(-1)
        for name, arr in (("angular_velocity", omega), ("phase", theta)):
            if arr.shape != (m,):
                raise ValueError(f"{name} must have n(n-1)/2 = {m} entries, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinite entries")
        self.angular_velocity = omega
        self.angles = np.mod(theta, TAU)
        self._scratch = np.empty(m)
        # Slices of the angle vector belonging to each stage.
        bounds = np.cumsum([0] + [len(s) for s in self.stages])
        self._slices = [slice(bounds[k], bounds[k + 1]) for k in range(len(self.stages))]
        self._rows = _stage_slices(self.stages)
        self._base = random_rotation(n, rng) if base is None else check_orthogonal(base, name="base")
        self._right = random_rotation(n, rng) if right is None else check_orthogonal(right, name="right")
        for name, M in (("base", self._base), ("right", self._right)):
            if M.shape != (n, n):
                raise ValueError(f"{name} must be {n} x {n}, got {M.shape}")

    # -- the rotation T(theta), applied to a block of columns
    def _apply_T(self, Y: np.ndarray) -> np.ndarray:
        """``T(theta) @ Y`` for an ``n x k`` array ``Y`` (modified in place and returned)."""
        c = np.cos(self.angles)
        s = np.sin(self.angles)
        # T = S_0 S_1 ... S_last: the last stage acts first.
        for rows, sl in zip(reversed(self._rows), reversed(self._slices)):
            _rotate_rows(Y, rows, c[sl], s[sl])
        return Y

    @property
    def base(self) -> np.ndarray:
        """The left factor ``L`` (a copy)."""
        return self._base.copy()

    @property
    def right(self) -> np.ndarray:
        """The right factor ``W`` (a copy)."""
        return self._right.copy()

    def frame(self) -> np.ndarray:
        return self._base @ self._apply_T(self._right[:, :2].copy())

    @property
    def matrix(self) -> np.ndarray:
        return self._base @ self._apply_T(self._right.copy())

    @matrix.setter
    def matrix(self, GT) -> None:
        GT = check_orthogonal(GT)
        if GT.shape[0] != self.ndim:
            raise ValueError(f"GT must be {self.ndim} x {self.ndim}, got {GT.shape}")
        # L = GT W^T T^T, so that L T W = GT.
        self._base = self._apply_T(self._right @ GT.T).T

    def rebase(self, P) -> GrandTour:
        P = check_orthogonal(P, name="P")
        if P.shape[0] != self.ndim:
            raise ValueError(f"P must be {self.ndim} x {self.ndim}, got {P.shape}")
        self._base = P @ self._base
        return self

    def step(self, dt: float) -> GrandTour:
        dt = _check_dt(dt)
        # Angles are kept in [0, 2 pi): cos/sin stay exact however long the tour runs.
        angles = self.angles
        np.multiply(self.angular_velocity, dt, out=self._scratch)
        np.add(angles, self._scratch, out=angles)
        np.mod(angles, TAU, out=angles)
        self.time += dt
        return self


# --------------------------------------------------------------------------- geodesic


class GeodesicTour(Tour):
    r"""Geodesic interpolation between random target planes (tourr's grand tour).

    From the current plane :math:`F` to the target :math:`T`: with principal vectors
    :math:`P_k` of :math:`F`, unit :math:`G_k \perp F` and principal angles
    :math:`\theta_k`, the path rotates each plane :math:`(P_k, G_k)` by
    :math:`\tau \theta_k`, :math:`\tau \in [0, 1]`, and acts as the identity on the
    rest of the space:
    :math:`GT(\tau) = R(\tau)\,GT_0`. Its principal-angle length is
    :math:`\tau\sqrt{\theta_1^2+\theta_2^2}`; each step of ``dt`` seconds advances it by
    ``speed * dt`` (a step that reaches the target carries the rest of its length on
    towards the next one).

    Parameters
    ----------
    ndim : int
    seed : int or numpy.random.Generator, optional
    speed : float
        Principal-angle distance travelled per second (radians per second).
    targets : callable, optional
        ``targets() -> ndarray (n, 2)``: the next target frame (any basis of the
        plane). Default: planes uniform on the Grassmannian. This is where a guided
        tour would plug in.
    start : array (n, n), optional
        Starting orthogonal matrix; default identity.

    For ``n = 2`` there is a single plane and the geodesic tour stands still (use
    :class:`GrandTour`, which turns it).
    """

    def __init__(self, ndim: int, seed=None, speed: float = 0.5, *,
                 targets: Callable[[], np.ndarray] | None = None, start=None):
        n = int(ndim)
        if n < 2:
            raise ValueError(f"a tour needs ndim >= 2, got {ndim}")
        speed = float(speed)
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"speed must be finite and >= 0, got {speed}")
        self.ndim = n
        self.speed = speed
        self.time = 0.0
        rng = np.random.default_rng(seed)
        self._targets = targets if targets is not None else (lambda: random_frame(n, rng))
        self._start = np.eye(n) if start is None else check_orthogonal(start, name="start")
        if self._start.shape[0] != n:
            raise ValueError(f"start must be {n} x {n}, got {self._start.shape}")
        self.targets_reached = 0
        self._new_segment(self._next_target())

    def _next_target(self) -> np.ndarray:
        T = np.asarray(self._targets(), dtype=np.float64)
        if T.shape != (self.ndim, 2) or not np.all(np.isfinite(T)):
            raise ValueError(f"a target must be a finite ({self.ndim}, 2) frame, got {T.shape}")
        Q, R = np.linalg.qr(T)  # any basis of the plane will do
        scale = float(np.linalg.norm(T))
        if scale == 0.0 or min(abs(R[0, 0]), abs(R[1, 1])) <= 1e-12 * scale:
            raise ValueError("a target frame's two columns must be linearly independent")
        return Q

    def _new_segment(self, target: np.ndarray) -> None:
        self.target = target
        self._P, self._G, self._theta, self._U = _principal_pairs(self._start[:, :2], target)
        self.segment_length = float(math.hypot(*self._theta))
        self._tau = 0.0

    def _rotation_terms(self, tau: float):
        ang = tau * self._theta
        return np.cos(ang), np.sin(ang)

    def frame(self) -> np.ndarray:
        c, s = self._rotation_terms(self._tau)
        # F(tau) = R(tau) F0 = (P cos + G sin) U^T, since F0 = P U^T.
        return (self._P * c + self._G * s) @ self._U.T

    def _matrix_at(self, tau: float) -> np.ndarray:
        c, s = self._rotation_terms(tau)
        P, G = self._P, self._G
        # R - I = P diag(c-1) P^T + G diag(c-1) G^T + G diag(s) P^T - P diag(s) G^T
        Pt = P.T @ self._start
        Gt = G.T @ self._start
        return (self._start + P @ ((c - 1)[:, None] * Pt - s[:, None] * Gt)
                + G @ ((c - 1)[:, None] * Gt + s[:, None] * Pt))

    @property
    def matrix(self) -> np.ndarray:
        return self._matrix_at(self._tau)

    @matrix.setter
    def matrix(self, GT) -> None:
        GT = check_orthogonal(GT)
        if GT.shape[0] != self.ndim:
            raise ValueError(f"GT must be {self.ndim} x {self.ndim}, got {GT.shape}")
        self._start = GT
        self._new_segment(self.target)  # keep heading for the same plane

    def rebase(self, P) -> GeodesicTour:
        P = check_orthogonal(P, name="P")
        if P.shape[0] != self.ndim:
            raise ValueError(f"P must be {self.ndim} x {self.ndim}, got {P.shape}")
        self._start = P @ self.matrix
        self._new_segment(P @ self.target)
        return self

    @property
    def progress(self) -> float:
        """Fraction ``tau`` of the current segment travelled."""
        return self._tau

    def step(self, dt: float) -> GeodesicTour:
        dt = _check_dt(dt)
        if dt < 0:
            raise ValueError("a geodesic tour only moves forward: dt must be >= 0")
        self.time += dt
        if self.ndim == 2:  # R^2 is the only plane: there is nowhere to go
            return self
        arc = self.speed * dt
        for _ in range(10_000):  # a step longer than 10k segments is not a display step
            remaining = (1.0 - self._tau) * self.segment_length
            if arc < remaining:
                self._tau += arc / self.segment_length
                return self
            arc -= remaining
            self._start = self._matrix_at(1.0)
            self.targets_reached += 1
            self._new_segment(self._next_target())
            # A target on the current plane (a guided tour that has converged): stand still.
            if self.segment_length == 0.0:
                return self
        raise ValueError(f"dt = {dt} s at speed {self.speed} crosses too many target planes")
