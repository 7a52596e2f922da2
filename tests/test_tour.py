"""Properties that make a tour a tour: orthogonal, deterministic, timed in seconds,
visiting every view, and (geodesic) moving at a constant principal-angle speed."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grandtour.tour import (
    GeodesicTour,
    GrandTour,
    _principal_pairs,
    givens_stages,
    principal_angles,
    random_frame,
    random_rotation,
    svd2,
)


def orth_error(M):
    return float(np.max(np.abs(M.T @ M - np.eye(M.shape[0]))))


# ----------------------------------------------------------------- torus method


def test_orthogonality_does_not_drift_over_a_million_steps():
    tour = GrandTour(50, seed=1, speed=0.7)
    for _ in range(1_000_000):
        tour.step(1 / 60)
    G = tour.matrix
    assert orth_error(G) < 1e-9
    assert np.linalg.norm(G.T @ G - np.eye(50)) < 1e-9
    # and the state is where a single jump to the same time puts it
    jump = GrandTour(50, seed=1, speed=0.7).step(1_000_000 / 60)
    assert np.max(np.abs(jump.matrix - G)) < 1e-6


def test_same_seed_same_tour_and_different_seed_different_tour():
    a, b, c = GrandTour(8, seed=3), GrandTour(8, seed=3), GrandTour(8, seed=4)
    for _ in range(50):
        a.step(0.02), b.step(0.02), c.step(0.02)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert np.max(np.abs(a.matrix - c.matrix)) > 1e-3


def test_speed_is_per_second_not_per_frame():
    at60, at144 = GrandTour(12, seed=5), GrandTour(12, seed=5)
    for _ in range(60):
        at60.step(1 / 60)
    for _ in range(144):
        at144.step(1 / 144)
    assert at60.time == pytest.approx(1.0) and at144.time == pytest.approx(1.0)
    assert np.max(np.abs(at60.matrix - at144.matrix)) < 1e-12
    # ... and time has actually moved the view
    assert np.max(np.abs(at60.matrix - GrandTour(12, seed=5).matrix)) > 1e-2


def test_two_dimensional_tour_rotates_at_exactly_speed_radians_per_second():
    tour = GrandTour(2, seed=0, speed=0.8)
    f0 = tour.frame()[:, 0]
    f1 = tour.step(0.5).frame()[:, 0]
    angle = math.atan2(f0[0] * f1[1] - f0[1] * f1[0], f0 @ f1)
    assert abs(angle) == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize("n", [3, 10, 50])
def test_view_moves_at_about_speed_for_any_dimension(n):
    """The calibration ||omega|| = speed sqrt(n/2) makes the frame's columns move at
    ~speed rad/s on average (measured over a long run), independently of n."""
    tour = GrandTour(n, seed=11, speed=0.5)
    dt, speeds = 1e-3, []
    for _ in range(600):
        F0 = tour.frame()
        F1 = tour.step(dt).frame()
        speeds.append(np.linalg.norm(F1 - F0) / math.sqrt(2) / dt)
        tour.step(0.5)
    rms = math.sqrt(np.mean(np.square(speeds)))
    assert 0.35 < rms < 0.7, rms


@pytest.mark.parametrize("n", range(3, 21))
def test_every_axis_handle_sweeps_the_whole_circle(n):
    tour = GrandTour(n, seed=n, speed=0.5)
    covered = np.zeros((n, 24), dtype=bool)
    for _ in range(30_000):
        H = tour.step(0.1).handles()
        bins = ((np.arctan2(H[:, 1], H[:, 0]) + np.pi) / (2 * np.pi) * 24).astype(int) % 24
        covered[np.arange(n), bins] = True
        if covered.all():
            break
    stuck = np.flatnonzero(~covered.all(axis=1))
    assert stuck.size == 0, f"axes {stuck} never pointed in some directions"


def test_every_data_axis_gets_its_share_of_the_view():
    """Time-averaged weight of each data axis in the view is close to uniform (2/n)."""
    n = 40
    tour = GrandTour(n, seed=2)
    acc = np.zeros(n)
    for _ in range(2000):
        acc += np.sum(tour.step(0.37).frame() ** 2, axis=1)
    share = acc / 2000 * n / 2
    assert share.min() > 0.6 and share.max() < 1.4, share


def test_every_rotation_is_reached_by_the_torus():
    """Givens QR in stage order reduces any rotation to I: every Q in SO(n) is T(theta)."""
    rng = np.random.default_rng(0)
    for n in range(2, 9):
        Q = random_rotation(n, rng)
        M = Q.copy()
        angles = []
        for stage_index, stage in enumerate(givens_stages(n)):
            for a in stage:  # zero M[a+1, j] with rows (a, a+1): S^T from the left
                j = (stage_index - (n - 2 - a)) // 2
                th = math.atan2(M[a + 1, j], M[a, j])
                c, s = math.cos(th), math.sin(th)
                ra, rb = M[a].copy(), M[a + 1].copy()
                M[a], M[a + 1] = c * ra + s * rb, -s * ra + c * rb
                angles.append(th)
        np.testing.assert_allclose(M, np.eye(n), atol=1e-12)
        m = n * (n - 1) // 2
        tour = GrandTour(n, angular_velocity=np.zeros(m), phase=angles,
                         base=np.eye(n), right=np.eye(n))
        np.testing.assert_allclose(tour.matrix, Q, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 12])
def test_givens_stages_cover_every_rotation_once_in_disjoint_planes(n):
    stages = givens_stages(n)
    assert len(stages) == 2 * n - 3
    assert sum(len(s) for s in stages) == n * (n - 1) // 2
    for s in stages:
        planes = set(s) | {a + 1 for a in s}
        assert len(planes) == 2 * len(s)  # disjoint within a stage
        assert s.min() >= 0 and s.max() <= n - 2


def test_frame_project_and_handles_agree_with_the_full_matrix():
    tour = GrandTour(9, seed=7).step(2.5)
    G = tour.matrix
    X = np.random.default_rng(1).standard_normal((30, 9))
    np.testing.assert_allclose(tour.frame(), G[:, :2], atol=1e-14)
    np.testing.assert_allclose(tour.project(X), (X @ G)[:, :2], atol=1e-13)
    np.testing.assert_allclose(tour.handles(), G[:, :2], atol=1e-14)


def test_setting_the_matrix_continues_the_tour_from_there():
    tour = GrandTour(6, seed=1).step(1.0)
    target = random_rotation(6, np.random.default_rng(3))
    tour.matrix = target
    np.testing.assert_allclose(tour.matrix, target, atol=1e-13)
    before = tour.matrix
    after = tour.step(0.01).matrix
    assert 0 < np.max(np.abs(after - before)) < 0.05  # a small, smooth move


def test_rebase_changes_the_data_basis():
    tour = GrandTour(5, seed=2).step(0.3)
    P = random_rotation(5, np.random.default_rng(9))
    G = tour.matrix
    tour.rebase(P)
    np.testing.assert_allclose(tour.matrix, P @ G, atol=1e-13)


@pytest.mark.parametrize("bad", [1, 0, -3])
def test_too_few_dimensions_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="ndim >= 2"):
        GrandTour(bad)


def test_bad_inputs_are_clear_errors():
    tour = GrandTour(4, seed=0)
    with pytest.raises(ValueError, match="finite"):
        tour.step(float("nan"))
    with pytest.raises(ValueError, match="orthogonal"):
        tour.matrix = np.ones((4, 4))
    with pytest.raises(ValueError, match="shape"):
        tour.project(np.ones((3, 5)))
    with pytest.raises(ValueError, match="6 entries"):
        GrandTour(4, angular_velocity=np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        GrandTour(3, phase=[0, np.nan, 0])


# ----------------------------------------------------------------- 2x2 SVD, angles


@given(st.lists(st.floats(-10, 10), min_size=4, max_size=4))
def test_svd2_reconstructs_and_orders(vals):
    M = np.array(vals).reshape(2, 2)
    U, s, V = svd2(M)
    np.testing.assert_allclose(U @ np.diag(s) @ V.T, M, atol=1e-12 * (1 + np.abs(M).max()))
    np.testing.assert_allclose(U.T @ U, np.eye(2), atol=1e-14)
    np.testing.assert_allclose(V.T @ V, np.eye(2), atol=1e-14)
    assert s[0] >= s[1] >= 0
    np.testing.assert_allclose(s, np.linalg.svd(M, compute_uv=False), atol=1e-12 * (1 + np.abs(M).max()))


def test_principal_angles_are_accurate_for_tiny_and_right_angles():
    e = np.eye(5)
    A = e[:, :2]
    for eps in (1e-12, 1e-7, 0.3):
        B = np.column_stack([e[:, 0], math.cos(eps) * e[:, 1] + math.sin(eps) * e[:, 4]])
        np.testing.assert_allclose(sorted(principal_angles(A, B)), [0, eps], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(principal_angles(A, e[:, 2:4]), [math.pi / 2] * 2, atol=1e-15)


def equal_angle_planes(n, seed):
    """Pairs of planes whose two principal angles are equal or nearly so (the principal
    vectors are then any rotation of each other), turned by a random rotation so that
    their products round differently on each BLAS kernel."""
    rng = np.random.default_rng(seed)
    Q = random_rotation(n, rng)
    e = np.eye(n)
    A = e[:, :2]
    c, s = math.cos(0.4), math.sin(0.4)
    spin = np.array([[c, -s], [s, c]])
    pairs = {
        "same plane, another basis": (A, A @ spin),
        "same plane, same basis": (A, A),
        "orthogonal planes": (A, e[:, 2:4]),
        "isoclinic, both angles 0.7": (A, math.cos(0.7) * A + math.sin(0.7) * e[:, 2:4] @ spin),
        "angles 0 and 1e-8": (A, np.column_stack([e[:, 0], math.cos(1e-8) * e[:, 1]
                                                  + math.sin(1e-8) * e[:, 2]])),
    }
    return {name: (Q @ F, Q @ T) for name, (F, T) in pairs.items()}


@pytest.mark.parametrize("n", [4, 5, 33])
@pytest.mark.parametrize("seed", [0, 1])
def test_principal_pairs_of_equal_angles_keep_their_invariants(n, seed):
    # P, G, U are not unique here (tests/fixtures/tour_vectors.json does not record them),
    # but what the geodesic tour builds on them is: P = F U spans F, G is orthogonal to F,
    # and the partners P cos(theta) + G sin(theta) are an orthonormal basis of span T.
    for name, (F, T) in equal_angle_planes(n, seed).items():
        P, G, theta, U = _principal_pairs(F, T)
        np.testing.assert_allclose(U.T @ U, np.eye(2), atol=1e-14, err_msg=name)
        np.testing.assert_allclose(P, F @ U, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(P.T @ P, np.eye(2), atol=1e-14, err_msg=name)
        np.testing.assert_allclose(F.T @ G, 0, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(G.T @ G, np.diag((theta > 0).astype(float)), atol=1e-14, err_msg=name)
        W = P * np.cos(theta) + G * np.sin(theta)
        np.testing.assert_allclose(W.T @ W, np.eye(2), atol=1e-12, err_msg=name)
        np.testing.assert_allclose(W @ W.T, T @ T.T, atol=1e-9, err_msg=name)
        # Angles 0 and 1e-8 have cosines 5e-17 apart: the pairs mix, and the angles are
        # only known to about 1e-8 there; equal angles are known to rounding.
        atol = 1e-8 if name == "angles 0 and 1e-8" else 1e-12
        np.testing.assert_allclose(math.hypot(*theta), plane_distance(F, T), atol=atol, err_msg=name)


# ----------------------------------------------------------------- geodesic tour


def plane_distance(A, B):
    return math.hypot(*principal_angles(A, B))


def recorded_targets(n, seed):
    rng = np.random.default_rng(seed)
    seen = []

    def targets():
        seen.append(random_frame(n, rng))
        return seen[-1]

    return targets, seen


@pytest.mark.parametrize("n", [3, 6, 20])
def test_geodesic_steps_have_equal_principal_angle_length(n):
    speed, dt = 0.8, 1 / 30
    targets, seen = recorded_targets(n, n)
    tour = GeodesicTour(n, speed=speed, targets=targets)
    crossings = 0
    for _ in range(1500):
        before, reached = tour.frame(), tour.targets_reached
        tour.step(dt)
        after = tour.frame()
        if tour.targets_reached == reached:
            assert abs(plane_distance(before, after) - speed * dt) < 1e-9
        else:
            # the path turns at the target: its length there is the step
            crossings += 1
            corner = seen[reached]
            length = plane_distance(before, corner) + plane_distance(corner, after)
            assert abs(length - speed * dt) < 1e-9
        np.testing.assert_allclose(after.T @ after, np.eye(2), atol=1e-12)
    assert crossings >= 3


def test_geodesic_tour_reaches_each_target_plane_and_stays_orthogonal():
    n = 7
    targets, seen = recorded_targets(n, 0)
    tour = GeodesicTour(n, speed=1.0, targets=targets)
    for k in range(6):
        # step exactly to the end of the segment
        tour.step((1 - tour.progress) * tour.segment_length / tour.speed * (1 + 1e-15))
        assert tour.targets_reached == k + 1
        assert plane_distance(tour.frame(), seen[k]) < 1e-9
        assert orth_error(tour.matrix) < 1e-12
    np.testing.assert_allclose(tour.matrix[:, :2], tour.frame(), atol=1e-13)


def test_geodesic_tour_orthogonality_after_a_million_steps():
    tour = GeodesicTour(50, seed=0, speed=0.5)
    for _ in range(1_000_000):
        tour.step(1 / 60)
    assert tour.targets_reached > 100
    assert orth_error(tour.matrix) < 1e-9


def test_geodesic_matrix_set_and_rebase():
    tour = GeodesicTour(5, seed=1).step(0.7)
    Q = random_rotation(5, np.random.default_rng(4))
    tour.matrix = Q
    np.testing.assert_allclose(tour.matrix, Q, atol=1e-13)
    P = random_rotation(5, np.random.default_rng(5))
    tour.rebase(P)
    np.testing.assert_allclose(tour.matrix, P @ Q, atol=1e-13)
    with pytest.raises(ValueError, match="forward"):
        tour.step(-0.1)


def test_geodesic_tour_stands_still_when_the_target_is_the_current_plane():
    tour = GeodesicTour(4, speed=1.0, targets=lambda: np.eye(4)[:, :2])  # start is I
    before = tour.matrix
    tour.step(0.5).step(0.0)
    np.testing.assert_array_equal(tour.matrix, before)


def test_geodesic_target_with_a_zero_column_is_refused():
    T = np.zeros((4, 2))
    T[2, 1] = 1.0
    with pytest.raises(ValueError, match="independent"):
        GeodesicTour(4, targets=lambda: T)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 10_000),
       dts=st.lists(st.floats(0, 3), min_size=1, max_size=20))
def test_any_tour_any_steps_stays_orthogonal(n, seed, dts):
    for tour in (GrandTour(n, seed=seed), GeodesicTour(n, seed=seed)):
        for dt in dts:
            tour.step(dt)
        assert orth_error(tour.matrix) < 1e-12
        np.testing.assert_allclose(tour.frame(), tour.matrix[:, :2], atol=1e-12)
