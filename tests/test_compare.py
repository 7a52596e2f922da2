"""The comparison with t-SNE, dynamic t-SNE and UMAP, and the correspondence measure."""

from __future__ import annotations

import numpy as np
import pytest

from grandtour import compare
from grandtour.cli import main
from grandtour.compare import methods
from grandtour.compare.correspondence import correspondence_of, data_motion, picture_motion
from grandtour.compare.hybrid import CAVEAT
from grandtour.store import Run
from grandtour.tour import GrandTour

N, D, CLASSES = 120, 8, 4


def _one_class_changes(path, epochs=2):
    """Four Gaussian clusters; between consecutive epochs only class 0's points move
    (all by one step plus each its own: its activations change, the others' do not)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(CLASSES), N // CLASSES)
    X = rng.normal(size=(CLASSES, D))[labels] * 6 + rng.normal(size=(N, D))
    frames = [X.copy()]
    for _ in range(epochs - 1):
        X = X.copy()
        X[labels == 0] += rng.normal(size=D) * 4 + rng.normal(size=(N // CLASSES, D)) * 2
        frames.append(X)
    return Run.from_arrays(path, {"hidden": np.stack(frames).astype(np.float32)}, labels, split="test"), labels


@pytest.fixture(scope="module")
def changing(tmp_path_factory):
    return _one_class_changes(tmp_path_factory.mktemp("compare") / "run")


def _normalised_motion(Y: np.ndarray) -> np.ndarray:
    """Picture motion between the two epochs in units of the picture's RMS spread."""
    return picture_motion(Y[0], Y[1]) / np.sqrt(np.mean(np.sum((Y[1] - Y[1].mean(0)) ** 2, axis=1)))


def test_linear_is_the_tours_fixed_projection(changing):
    run, _ = changing
    Y = compare.embed(run, "hidden", "linear", progress=False)
    W = GrandTour(D, seed=0).frame()
    for e in run.epochs:
        np.testing.assert_allclose(Y[e], run.activations("hidden", e, "test") @ W, rtol=1e-5, atol=1e-4)


def test_linear_correspondence_exceeds_tsne_and_umap_when_one_class_alone_changes(changing):
    run, _ = changing
    rho = {m: compare.correspondence(run, "hidden", 0, 1, m, progress=False) for m in ("linear", "tsne", "umap")}
    assert rho["linear"] > 0.8
    assert rho["linear"] > rho["tsne"] + 0.2 and rho["linear"] > rho["umap"] + 0.2, rho
    # Stored in the run, readable by a fresh reader.
    again = compare.stored(Run.open(run.path), "hidden", "tsne")
    assert sorted(again) == [0, 1] and again[0].shape == (N, 2)


def test_dynamic_tsne_moves_unchanged_points_less_than_tsne(changing):
    run, labels = changing
    tsne = compare.embed(run, "hidden", "tsne", progress=False)
    dtsne = compare.embed(run, "hidden", "dtsne", progress=False)
    unchanged = labels != 0
    assert _normalised_motion(dtsne)[unchanged].mean() < 0.5 * _normalised_motion(tsne)[unchanged].mean()


def test_an_interrupted_embedding_keeps_its_finished_epochs_and_resumes(tmp_path, monkeypatch):
    run, _ = _one_class_changes(tmp_path / "run", epochs=3)
    calls, seen_while_writing = [], []

    def flaky(X, seed):
        calls.append(len(calls))
        seen_while_writing.append(sorted(compare.stored(Run.open(run.path), "hidden", "pca")))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return X[:, :2] * 1.0

    monkeypatch.setitem(methods.PER_EPOCH_FUNCTIONS, "pca", flaky)
    with pytest.raises(KeyboardInterrupt):
        compare.embed(run, "hidden", "pca", progress=False)
    assert sorted(compare.stored(run, "hidden", "pca")) == [0]
    assert seen_while_writing == [[], [0]]  # a reader sees each epoch once committed
    Y = compare.embed(run, "hidden", "pca", progress=False)
    assert len(calls) == 4  # only epochs 1 and 2 were computed again
    np.testing.assert_allclose(Y[0], run.activations("hidden", 0, "test")[:, :2])
    compare.embed(run, "hidden", "pca", progress=False, seed=1)  # other settings: redone
    assert len(calls) == 7


def test_correspondence_ignores_a_similarity_and_counts_motion_of_unchanged_points():
    rng = np.random.default_rng(3)
    Xa = rng.normal(size=(200, 6))
    Xb = Xa.copy()
    moved = np.arange(200) < 40
    Xb[moved] += rng.normal(size=(40, 6)) * 3
    W = np.linalg.qr(rng.normal(size=(6, 2)))[0]
    Ya, Yb = Xa @ W, Xb @ W
    value = correspondence_of(Xa, Xb, Ya, Yb)
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert correspondence_of(Xa, Xb, Ya, 3.0 * Yb @ R + 5.0) == pytest.approx(value, abs=1e-9)
    assert correspondence_of(1.7 * Xa + 2, 1.7 * Xb + 2, Ya, Yb) == pytest.approx(value, abs=1e-9)
    assert np.all(picture_motion(Ya, Yb)[~moved] > 0)  # a fit to all points blames the unchanged ...
    anchored = picture_motion(Ya, Yb, data_motion(Xa, Xb) <= np.median(data_motion(Xa, Xb)))
    np.testing.assert_allclose(anchored[~moved], 0.0, atol=1e-9)  # ... the anchors' fit does not
    jittered = Yb + rng.normal(size=Yb.shape) * np.where(moved, 0.0, 0.5)[:, None]
    assert value > 0.7 and correspondence_of(Xa, Xb, Ya, jittered) < value - 0.2  # unchanged points jump
    assert correspondence_of(Xa, Xb, Ya, Ya + (Xb - Xa) @ W) == pytest.approx(value, abs=1e-9)
    assert np.all(data_motion(Xa, Xa * 2.0 + 1.0) < 1e-12)  # a zoom of the data is no motion
    assert np.isnan(correspondence_of(Xa, Xa, Ya, Ya))
    assert 0.0 <= value <= 1.0


def test_compare_command_prints_time_and_correspondence_and_makes_the_hybrid(changing, capsys):
    run, _ = changing
    assert main(["compare", str(run.path), "--methods", "linear,pca", "--hybrid", "umap:3"]) == 0
    out = capsys.readouterr().out
    assert "linear:" in out and "pca:" in out and "s per epoch" in out
    assert "0 -> 1  correspondence 0." in out or "0 -> 1  correspondence 1.000" in out
    assert CAVEAT in out
    from grandtour.compare.hybrid import hybrid

    H = hybrid(run, "hidden", 3, progress=False)  # stored: read back, not recomputed
    assert H.shape == (2, N, 3) and np.isfinite(H).all()


@pytest.mark.parametrize("argv, message", [
    (["--methods", "tsne,bogus"], "unknown comparison method 'bogus'"),
    (["--hybrid", "umap:1"], "--hybrid takes umap:<k>"),
    (["--layer", "nope"], "nope"),
    (["--epochs", "7"], "epoch 7 is not in run"),
])
def test_compare_command_refuses_bad_input_with_a_message(changing, capsys, argv, message):
    run, _ = changing
    assert main(["compare", str(run.path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_server_serves_stored_pictures_correspondences_and_analyses(tmp_path):
    from fastapi.testclient import TestClient

    from grandtour import server

    run, _ = _one_class_changes(tmp_path / "run")
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    client = TestClient(server.create_app([run.path], web_dir=web), base_url="http://127.0.0.1")
    rid = client.get("/api/runs").json()[0]["id"]
    missing = client.get(f"/api/runs/{rid}/compare/hidden/test/linear/0")
    assert missing.status_code == 404 and "grandtour compare" in missing.json()["error"]
    Y = compare.embed(run, "hidden", "linear", progress=False)
    listing = client.get(f"/api/runs/{rid}/compare/hidden/test").json()
    assert listing["methods"]["linear"]["epochs"] == [0, 1] and "no longer" in listing["caveat"]
    doc = client.get(f"/api/runs/{rid}/compare/hidden/test/linear/1").json()
    np.testing.assert_allclose(np.reshape(doc["xy"], (N, 2)), Y[1], rtol=1e-6)
    value = client.get(f"/api/runs/{rid}/correspondence/hidden/test/linear/0/1").json()["value"]
    assert value == pytest.approx(compare.correspondence(run, "hidden", 0, 1, "linear"), abs=1e-9)
    assert client.get(f"/api/runs/{rid}/compare/hidden/test/bogus/1").status_code == 404
    no_softmax = client.get(f"/api/runs/{rid}/confusions/1/test")
    assert no_softmax.status_code == 200 and no_softmax.json() == []  # nothing to list (/analysis says why)
    why = client.get(f"/api/runs/{rid}/analysis/test").json()
    assert why["late"] == [] and "softmax" in why["unavailable"]
    assert client.get(f"/api/runs/{rid}/confusions/1/test?k=5").status_code == 400


def test_a_stored_hybrid_is_served_as_a_run_of_its_own_with_its_caveat(changing, tmp_path):
    """The Grand Tour runs on the hybrid as on any layer: the server lists it after its
    source as a run with one layer (the UMAP coordinates, as stored, to float16), the
    source's labels, and a `derived` entry carrying the caveat the page shows."""
    from fastapi.testclient import TestClient

    from grandtour import server
    from grandtour.compare.hybrid import hybrid

    run, labels = changing
    H = hybrid(run, "hidden", 3, progress=False)
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    app = server.create_app([run.path], web_dir=web)
    client = TestClient(app, base_url="http://127.0.0.1")
    listed = client.get("/api/runs").json()
    assert len(listed) == 2 and listed[1]["id"] == f"{listed[0]['id']}~test-hidden-umap3"
    rid = listed[1]["id"]
    meta = client.get(f"/api/runs/{rid}/meta").json()
    assert meta["derived"] == {"kind": "hybrid", "source": listed[0]["id"], "layer": "hidden", "split": "test",
                               "dims": 3, "caveat": CAVEAT}
    assert [(x["name"], x["kind"], x["dim"]) for x in meta["layers"]] == [("hidden.umap3", "hybrid", 3)]
    assert meta["splits"] == ["test"] and meta["epochs"] == [0, 1] and not meta["live"]
    r = client.get(f"/api/runs/{rid}/activations/hidden.umap3/1/test")
    n, d = (int(v) for v in r.headers["X-Shape"].split(","))
    got = np.frombuffer(r.content, "<f2").astype(np.float64).reshape(n, d) * float(r.headers["X-Scale"])
    want = H[1] - H[1].mean(axis=0)  # centred: UMAP's origin means nothing
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * np.abs(want).max())
    np.testing.assert_array_equal(np.frombuffer(client.get(f"/api/runs/{rid}/labels/test").content, "<i2"), labels)
    assert "derived" not in client.get(f"/api/runs/{listed[0]['id']}/meta").json()
    scratch = app.state.hybrid_scratch.name
    app.state.hybrid_scratch.cleanup()  # the app's scratch directory holds the derived run
    assert not __import__("os").path.exists(scratch)
