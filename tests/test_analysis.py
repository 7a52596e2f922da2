"""Classes learned late and confusions, on synthetic runs whose answer is known."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from grandtour.analysis import (
    class_curves,
    confusion_projection,
    confusions,
    interior_share,
    late_classes,
)
from grandtour.errors import GrandTourError
from grandtour.store import Run
from grandtour.store.info import format_info

C, PER_CLASS, EPOCHS = 5, 20, 10
LATE_CLASS, LATE_EPOCH = 3, 6


def _softmax_run(path, probs_of_epoch, labels, epochs=EPOCHS):
    """A run with only a softmax layer (an import: no metrics), labels and E epochs."""
    soft = np.stack([probs_of_epoch(e) for e in range(epochs)]).astype(np.float32)
    return Run.from_arrays(path, {"softmax": soft}, labels, split="test",
                           class_names=[f"c{i}" for i in range(C)])


def _peaked(labels, rng, right, wrong_to):
    """Softmax rows: 0.8 on the label where ``right``, else 0.8 on ``wrong_to``; noise elsewhere."""
    N = len(labels)
    P = rng.uniform(0.0, 0.05, (N, C))
    target = np.where(right, labels, wrong_to)
    P[np.arange(N), target] = 0.8
    return P / P.sum(axis=1, keepdims=True)


def test_a_class_learned_late_is_found_with_its_epoch_and_nothing_else(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(C), PER_CLASS)

    def probs(epoch):
        # Epoch 0 knows nothing; every class is learned at epoch 1 except LATE_CLASS, whose
        # points are all called class 0 until LATE_EPOCH (its activations jump then).
        right = np.full(len(labels), epoch >= 1)
        right[labels == LATE_CLASS] = epoch >= LATE_EPOCH
        return _peaked(labels, rng, right, wrong_to=(labels + 1) % C if epoch == 0 else 0)

    run = _softmax_run(tmp_path / "run", probs, labels)
    assert late_classes(run) == [(f"c{LATE_CLASS}", LATE_EPOCH)]
    _, acc, loss = class_curves(run)
    assert acc[LATE_EPOCH - 1, LATE_CLASS] == 0.0 and acc[LATE_EPOCH, LATE_CLASS] == 1.0
    assert loss[LATE_EPOCH - 1, LATE_CLASS] > loss[LATE_EPOCH, LATE_CLASS]
    assert f"late classes  c{LATE_CLASS} (epoch {LATE_EPOCH})" in format_info(run)


def test_the_server_sends_an_imports_per_class_curves_computed_from_its_softmax(tmp_path):
    """The page's loss chart reads /metrics: for a run with no recorded per-class metrics
    the server adds the curves class_curves computes from the softmax, marked computed."""
    from fastapi.testclient import TestClient

    from grandtour import server

    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(C), PER_CLASS)
    run = _softmax_run(tmp_path / "run", lambda e: _peaked(labels, rng, rng.random(len(labels)) < 0.1 * e,
                                                            (labels + 1) % C), labels)
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    client = TestClient(server.create_app([run.path], web_dir=web), base_url="http://127.0.0.1")
    rid = client.get("/api/runs").json()[0]["id"]
    doc = client.get(f"/api/runs/{rid}/metrics/test").json()
    _, acc, loss = class_curves(run)
    assert "softmax" in doc["computed"] and doc["epochs"] == list(range(EPOCHS))
    np.testing.assert_allclose(np.array(doc["class_loss"], float), loss, rtol=1e-12)
    np.testing.assert_allclose(np.array(doc["class_accuracy"], float), acc, rtol=1e-12)
    assert all(v is None for v in doc["loss"])  # what was not recorded stays unrecorded


def test_no_class_is_late_when_all_are_learned_together(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(C), PER_CLASS)
    run = _softmax_run(tmp_path / "run", lambda e: _peaked(labels, rng, np.full(len(labels), e >= 2),
                                                            (labels + 1) % C), labels)
    assert late_classes(run) == []


def _triple_run(path, inside: bool):
    """Classes 0, 1, 2 confused: each point's mass spread over all three (inside the
    triangle) or over two of them (on an edge); classes 3, 4 confident."""
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(C), PER_CLASS)
    P = np.full((len(labels), C), 0.01)
    for i, label in enumerate(labels):
        if label < 3:
            if inside:
                P[i, :3] = rng.dirichlet([4.0, 4.0, 4.0])
            else:
                other = (label + 1 + i % 2) % 3  # to one of the two other classes of the triple
                w = rng.uniform(0.3, 0.7)
                P[i, :3] = 0.0
                P[i, label], P[i, other] = w, 1.0 - w
        else:
            P[i, label] = 0.96
    P /= P.sum(axis=1, keepdims=True)
    return _softmax_run(path, lambda e: P, labels, epochs=2)


def test_a_three_way_confusion_has_a_higher_interior_than_edges(tmp_path):
    inside = confusions(_triple_run(tmp_path / "in", True), 1, k=3)
    edges = confusions(_triple_run(tmp_path / "edge", False), 1, k=3)
    assert inside[0].classes == edges[0].classes == ("c0", "c1", "c2")
    assert inside[0].interior > 0.8 and edges[0].interior < 0.2
    assert [c.score for c in inside] == sorted((c.score for c in inside), reverse=True)


def test_a_confusion_projection_is_a_tour_frame_with_handles_at_the_corners(tmp_path):
    conf = confusions(_triple_run(tmp_path / "in", True), 1, k=3)[0]
    F = conf.projection
    np.testing.assert_allclose(F.T @ F, np.eye(2), atol=1e-12)
    corners = F[list(conf.indices)]
    sides = [np.linalg.norm(corners[a] - corners[b]) for a, b in ((0, 1), (1, 2), (0, 2))]
    np.testing.assert_allclose(sides, sides[0], rtol=1e-12)  # a regular triangle
    np.testing.assert_allclose(corners.mean(axis=0), 0.0, atol=1e-12)  # centred ...
    others = np.delete(F, list(conf.indices), axis=0)
    assert np.all(others == 0.0)  # ... where the other classes' handles are
    pair = confusions(_triple_run(tmp_path / "in2", True), 1, k=2)[0]
    np.testing.assert_allclose(pair.projection.T @ pair.projection, np.eye(2), atol=1e-12)
    assert set(pair.indices) <= {0, 1, 2}


def test_interior_share_counts_only_confused_points():
    labels = np.array([0, 0, 1])
    P = np.array([[0.98, 0.01, 0.01], [0.4, 0.3, 0.3], [0.5, 0.5, 0.0]])
    # Point 0 is at a corner (left out); point 1 is inside; point 2 on the 0-1 edge.
    assert interior_share(P, labels, (0, 1, 2)) == 0.5
    assert confusion_projection(3, (0, 1, 2)).shape == (3, 2)


def test_analyses_need_a_softmax_layer(tmp_path):
    labels = np.repeat(np.arange(C), 4)
    run = Run.from_arrays(tmp_path / "r", {"h": np.zeros((3, len(labels), 4), np.float32)}, labels,
                          split="test")
    with pytest.raises(GrandTourError, match="no softmax layer"):
        confusions(run, 0)


def test_the_guided_tour_raises_the_lda_index_of_the_chosen_classes():
    from grandtour.guided import GuidedTour, lda_index
    from grandtour.tour import check_orthogonal

    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(4), 40)
    X = rng.normal(size=(160, 10))
    X[:, 6] += 2.5 * labels  # the classes differ along axes 6 and 8 only
    X[:, 8] += 3.0 * (labels % 2)
    tour = GuidedTour(X, labels, classes=[0, 1, 2, 3], seed=0, speed=1.0)
    first = tour.index()
    targets = [lda_index(tour.target, tour.W, tour.B)]
    for _ in range(300):
        before = tour.targets_reached
        tour.step(0.05)
        if tour.targets_reached != before:
            targets.append(lda_index(tour.target, tour.W, tour.B))
    assert len(targets) > 5
    assert all(b >= a for a, b in pairwise(targets))  # each target is better
    assert tour.index() > first + 0.5 and tour.index() > 0.8
    check_orthogonal(tour.matrix)
    # The view it found is spanned by the separating axes.
    assert np.sum(tour.frame()[[6, 8]] ** 2) > 1.6
