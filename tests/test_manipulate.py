"""Direct manipulation lands where the article says, stays orthogonal, and never NaNs."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grandtour.manipulate import (
    FLIP_MARGIN,
    axis_drag,
    centroid,
    gram_schmidt_rows,
    point_drag,
)
from grandtour.tour import random_rotation


def orth_error(M):
    return float(np.max(np.abs(M.T @ M - np.eye(M.shape[0]))))


def reference_row_gram_schmidt(M, first):
    """Independent reference: QR of the rows in processing order, signs fixed so R > 0."""
    n = M.shape[0]
    order = [first] + [k for k in range(n) if k != first]
    Q, R = np.linalg.qr(M[order].T)
    Q = Q * np.sign(np.diag(R))
    out = np.empty_like(M)
    out[order] = Q.T
    return out


dims = st.integers(2, 12)
seeds = st.integers(0, 2**31)
drag = st.floats(-0.6, 0.6)


# ----------------------------------------------------------------- axis mode


@settings(max_examples=150, deadline=None)
@given(n=dims, seed=seeds, dx=drag, dy=drag, data=st.data())
def test_axis_drag_lands_where_the_article_says(n, seed, dx, dy, data):
    GT = random_rotation(n, np.random.default_rng(seed))
    i = data.draw(st.integers(0, n - 1))
    D = np.array([dx, dy])
    assume(1 + GT[i, :2] @ D >= FLIP_MARGIN)  # an ordinary drag (split drags tested below)
    new = axis_drag(GT, i, dx, dy)
    row = GT[i].copy()
    row[:2] += D
    expected = row / np.linalg.norm(row)
    np.testing.assert_allclose(new[i], expected, atol=1e-12)
    # within ||D|| of the requested spot
    assert np.linalg.norm(new[i, :2] - (GT[i, :2] + D)) <= np.hypot(dx, dy) + 1e-12
    assert orth_error(new) < 1e-12
    # the other rows are the row-first Gram-Schmidt of the rest
    M = GT.copy()
    M[i, :2] += D
    np.testing.assert_allclose(new, reference_row_gram_schmidt(M, i), atol=1e-10)
    assert np.linalg.det(new) == pytest.approx(np.linalg.det(GT), abs=1e-10)


@settings(max_examples=100, deadline=None)
@given(n=dims, seed=seeds, scale=st.floats(1.0, 5.0), data=st.data())
def test_axis_drag_through_the_origin_rotates_rather_than_mirrors(n, seed, scale, data):
    GT = random_rotation(n, np.random.default_rng(seed))
    i = data.draw(st.integers(0, n - 1))
    h = GT[i, :2]
    assume(np.linalg.norm(h) > 0.3)
    D = -scale * h / np.linalg.norm(h) * 1.5  # straight through the origin and beyond
    new = axis_drag(GT, i, *D)
    assert np.all(np.isfinite(new))
    assert orth_error(new) < 1e-12
    assert np.linalg.det(new) == pytest.approx(np.linalg.det(GT), abs=1e-10)
    # the handle ends up on the far side, where it was dragged (when it can: a handle on
    # the unit circle has no room to move inwards by a rotation, as for n = 2)
    if np.linalg.norm(h) < 0.9:
        assert new[i, :2] @ h < 0


def test_axis_drag_exact_flip_of_a_unit_handle_is_defined():
    GT = np.eye(3)  # handle 0 at (1, 0), its row has nothing beyond the screen plane
    new = axis_drag(GT, 0, -1.0, 0.0)  # would put row 0 at exactly zero in one step
    assert np.all(np.isfinite(new)) and orth_error(new) < 1e-12
    assert np.linalg.det(new) == pytest.approx(1.0)


def test_zero_drag_changes_nothing():
    GT = random_rotation(5, np.random.default_rng(0))
    np.testing.assert_array_equal(axis_drag(GT, 2, 0.0, 0.0), GT)
    np.testing.assert_array_equal(point_drag(GT, np.ones(5), 0.0, 0.0), GT)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.eye(1), 0, 0.1, 0.1), "at least 2"),
        ((np.ones((3, 3)), 0, 0.1, 0.1), "orthogonal"),
        ((np.full((3, 3), np.nan), 0, 0.1, 0.1), "NaN"),
        ((np.eye(3), 3, 0.1, 0.1), "axis index"),
        ((np.eye(3), 0, np.nan, 0.1), "finite"),
        ((np.eye(3), 0, 0.1, np.inf), "finite"),
        ((np.eye(3, 4), 0, 0.1, 0.1), "square"),
    ],
)
def test_axis_drag_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        axis_drag(*args)


# ----------------------------------------------------------------- point mode


@settings(max_examples=150, deadline=None)
@given(n=st.integers(3, 12), seed=seeds, dx=drag, dy=drag)
def test_point_drag_moves_the_centroid_exactly_by_a_simple_rotation(n, seed, dx, dy):
    rng = np.random.default_rng(seed)
    GT = random_rotation(n, rng)
    c = rng.standard_normal(n) * rng.uniform(0.1, 3)
    assume(np.hypot(dx, dy) > 1e-6)
    new = point_drag(GT, c, dx, dy)
    ct = c @ GT
    D = np.zeros(n)
    D[:2] = dx, dy
    target = (ct + D) * np.linalg.norm(ct) / np.linalg.norm(ct + D)
    np.testing.assert_allclose(c @ new, target, atol=1e-12 * max(1.0, np.linalg.norm(c)))
    assert orth_error(new) < 1e-12
    # a simple rotation: GT^T GT_new - I has rank <= 2
    sv = np.linalg.svd(GT.T @ new - np.eye(n), compute_uv=False)
    assert np.all(sv[2:] < 1e-10)
    # view-space vectors orthogonal to span(c~, c~_new) keep their image
    basis = np.linalg.qr(np.column_stack([ct, target]))[0]
    w = rng.standard_normal(n)
    w -= basis @ (basis.T @ w)
    x = w @ GT.T  # the data point whose view coordinates are w
    np.testing.assert_allclose(x @ new, x @ GT, atol=1e-12)


def test_point_drag_degenerate_cases_are_defined():
    GT = random_rotation(4, np.random.default_rng(1))
    # zero centroid: projects to the origin whatever the rotation
    np.testing.assert_array_equal(point_drag(GT, np.zeros(4), 0.3, 0.1), GT)
    # target exactly at the origin: no direction to rotate to
    c = np.array([0.5, 0.2, 0, 0]) @ GT.T  # c~ = (0.5, 0.2, 0, 0)
    np.testing.assert_allclose(point_drag(GT, c, -0.5, -0.2), GT)
    # straight through the origin: the half-turn in the screen plane
    new = point_drag(GT, c, -1.0, -0.4)
    assert orth_error(new) < 1e-12
    np.testing.assert_allclose(c @ new, [-0.5, -0.2, 0, 0], atol=1e-12)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.eye(3), np.ones(2), 0.1, 0.1), "shape"),
        ((np.eye(3), np.array([1, np.nan, 0]), 0.1, 0.1), "NaN"),
        ((np.eye(3), np.ones(3), np.nan, 0.1), "finite"),
        ((np.eye(1), np.ones(1), 0.1, 0.1), "at least 2"),
    ],
)
def test_point_drag_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        point_drag(*args)


# ----------------------------------------------------------------- helpers


def test_centroid_of_a_selection_skips_non_finite_rows():
    X = np.array([[0.0, 0.0], [2.0, 4.0], [np.nan, 1.0], [4.0, 8.0]])
    np.testing.assert_allclose(centroid(X), [2.0, 4.0])
    np.testing.assert_allclose(centroid(X, [0, 1]), [1.0, 2.0])
    np.testing.assert_allclose(centroid(X, np.array([False, True, True, True])), [3.0, 6.0])
    with pytest.raises(ValueError, match="empty"):
        centroid(X, np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match="empty"):
        centroid(X, [2])
    with pytest.raises(ValueError, match="shape"):
        centroid(X, np.ones(3, dtype=bool))


@settings(max_examples=60, deadline=None)
@given(n=dims, seed=seeds, data=st.data())
def test_gram_schmidt_matches_qr_and_completes_dependent_rows(n, seed, data):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    first = data.draw(st.integers(0, n - 1))
    np.testing.assert_allclose(gram_schmidt_rows(M, first), reference_row_gram_schmidt(M, first), atol=1e-8)
    # make one row a combination of others: still orthogonal, det +1, finite
    k = data.draw(st.integers(0, n - 1))
    M[k] = M[(k + 1) % n] * 2.0 if n > 1 else 0.0
    Q = gram_schmidt_rows(M, first)
    assert np.all(np.isfinite(Q)) and orth_error(Q) < 1e-12
    assert np.linalg.det(Q) == pytest.approx(1.0)


def test_many_small_drags_stay_orthogonal():
    rng = np.random.default_rng(0)
    GT = random_rotation(10, rng)
    for _ in range(2000):
        if rng.random() < 0.5:
            GT = axis_drag(GT, int(rng.integers(10)), *rng.normal(0, 0.05, 2))
        else:
            GT = point_drag(GT, rng.standard_normal(10), *rng.normal(0, 0.05, 2))
    assert orth_error(GT) < 1e-12
    assert math.isclose(np.linalg.det(GT), 1.0, abs_tol=1e-10)
