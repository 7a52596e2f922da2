"""Properties of the warm-up data: hypercubes are hypercubes, softmax points are on the simplex."""

import numpy as np
import pytest

from grandtour.shapes import cube, ncube, softmax_simplex, square, tesseract


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_ncube_vertices_are_all_sign_vectors(n):
    V, _ = ncube(n)
    assert V.shape == (2**n, n)
    assert set(np.unique(V)) <= {-1.0, 1.0}
    assert len({tuple(v) for v in V}) == 2**n  # every sign pattern, once


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_ncube_edges_join_hamming_neighbours_and_every_vertex_has_degree_n(n):
    V, E = ncube(n)
    assert E.shape == (n * 2 ** (n - 1), 2)
    assert np.issubdtype(E.dtype, np.integer)
    hamming = np.sum(V[E[:, 0]] != V[E[:, 1]], axis=1)
    assert np.all(hamming == 1)
    assert len({tuple(sorted(e)) for e in E.tolist()}) == len(E)  # no duplicate edge
    degree = np.bincount(E.ravel(), minlength=2**n)
    assert np.all(degree == n)


def test_named_cubes_match_ncube():
    for f, n, n_edges in ((square, 2, 4), (cube, 3, 12), (tesseract, 4, 32)):
        V, E = f()
        V2, E2 = ncube(n)
        assert V.shape == (2**n, n) and len(E) == n_edges
        np.testing.assert_array_equal(V, V2)
        np.testing.assert_array_equal(E, E2)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_ncube_rejects_bad_dimension(bad):
    with pytest.raises(ValueError):
        ncube(bad)


def test_softmax_rows_are_on_the_simplex():
    P, y = softmax_simplex(n_classes=10, n_points=500, seed=3)
    assert P.shape == (500, 10) and y.shape == (500,)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    assert set(np.unique(y)) == set(range(10))
    assert np.all(np.bincount(y) == 50)  # balanced


def test_softmax_mostly_near_own_vertex_some_confused():
    P, y = softmax_simplex(n_classes=10, n_points=2000, seed=0, confused=0.2)
    argmax_ok = np.mean(P.argmax(axis=1) == y)
    assert 0.8 < argmax_ok < 1.0  # a good classifier, not a perfect one
    top2 = np.sort(P, axis=1)[:, -2:]
    # Confused points: two classes share most of the mass.
    between = np.mean((top2[:, 0] > 0.2) & (top2.sum(axis=1) > 0.7))
    assert 0.05 < between < 0.4


def test_softmax_is_deterministic_per_seed():
    a = softmax_simplex(n_points=200, seed=7)
    b = softmax_simplex(n_points=200, seed=7)
    c = softmax_simplex(n_points=200, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_softmax_stable_for_huge_logits():
    P, _ = softmax_simplex(n_classes=4, n_points=50, seed=0, scale=1e4)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0)


@pytest.mark.parametrize("kw", [{"n_classes": 1}, {"n_points": -1}, {"confused": 1.5},
                                {"noise": -1.0}, {"scale": float("nan")}])
def test_softmax_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        softmax_simplex(**kw)
