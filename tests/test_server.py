"""The viewer's server: the HTTP API over a run store, its static files, and its defences.

Each test builds a small run in tmp_path with the real store writer and asks the app for
it, through Starlette's TestClient or a real socket (ServerThread), then checks the bytes
against what the store holds.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import socket
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
PIL_Image = pytest.importorskip("PIL.Image")

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the `httpx2` fork for its test client; `httpx` still works.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from grandtour import server  # noqa: E402
from grandtour.errors import GrandTourError, StoreError  # noqa: E402
from grandtour.server import atlas, serving  # noqa: E402
from grandtour.server import runs as served_runs  # noqa: E402
from grandtour.store import LayerInfo, ProbeSet, Run, RunWriter  # noqa: E402

CLASSES = ["cat", "dog", "eel"]
N_TRAIN, N_TEST = 7, 5
SECRET = "TOP-SECRET-do-not-serve-7f3a"
BASE = "http://127.0.0.1"
# No proxy: a *_proxy variable in the environment must not reroute the requests to 127.0.0.1.
_open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


def _values(rng: np.random.Generator, shape) -> np.ndarray:
    # Multiples of 1/8 in [-8, 8]: exact in float16, so reads can be compared for equality.
    return (rng.integers(-64, 65, size=shape) / 8.0).astype(np.float32)


def _epoch_data(epoch: int) -> dict:
    rng = np.random.default_rng(100 + epoch)
    acts = {"train": {"input": _values(rng, (N_TRAIN, 16)), "fc": _values(rng, (N_TRAIN, 5)),
                      "softmax": _values(rng, (N_TRAIN, 3))},
            "test": {"input": _values(rng, (N_TEST, 16)), "fc": _values(rng, (N_TEST, 5)),
                     "softmax": _values(rng, (N_TEST, 3))}}
    if epoch == 1:
        acts["train"]["fc"][2, 1] = np.nan     # one non-finite row
        acts["test"]["fc"][0, 0] = 1.5 * 2**17  # beyond float16: stored with a scale of 4
    return acts


def _write_epoch(writer: RunWriter, epoch: int) -> None:
    rng = np.random.default_rng(200 + epoch)
    metrics = {"train": {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch,
                         "class_loss": rng.random(3), "class_accuracy": rng.random(3)}}
    if epoch > 0:  # the test metrics of epoch 0 are missing: they read back as NaN -> null
        metrics["test"] = {"loss": 2.0, "accuracy": 0.25, "class_loss": rng.random(3),
                           "class_accuracy": rng.random(3)}
    writer.write_epoch(
        epoch, activations=_epoch_data(epoch),
        predictions={"train": rng.integers(0, 3, N_TRAIN), "test": rng.integers(0, 3, N_TEST)},
        metrics=metrics)


def _make_run(root: Path) -> Path:
    rng = np.random.default_rng(0)
    layers = [LayerInfo("input", "input", (1, 4, 4), static=True),
              LayerInfo("fc", "linear", (5,), module="Linear(16, 5)"),
              LayerInfo("softmax", "softmax", (3,))]
    probes = {"train": ProbeSet(labels=np.arange(N_TRAIN) % 3,
                                images=rng.integers(0, 256, (N_TRAIN, 1, 6, 4), dtype=np.uint8)),
              "test": ProbeSet(labels=(np.arange(N_TEST) + 1) % 3,
                               images=rng.integers(0, 256, (N_TEST, 3, 5, 5), dtype=np.uint8))}
    path = root / "My Run!"
    writer = RunWriter.create(path, dataset="toy", class_names=CLASSES, layers=layers, probes=probes,
                              config={"lr": 0.1})
    for epoch in (0, 1):
        _write_epoch(writer, epoch)
    steps, m = 3, 2
    writer.write_adversarial(
        "default", epoch=1, source=0, target=2, eps=0.5, split="test", example_index=np.array([1, 3]),
        activations={"fc": _values(rng, (steps + 1, m, 5)), "softmax": _values(rng, (steps + 1, m, 3))},
        images=rng.integers(0, 256, (steps + 1, m, 3, 5, 5), dtype=np.uint8),
        predictions=rng.integers(0, 3, (steps + 1, m)), target_loss=np.linspace(2, 0.5, steps + 1))
    (root / "secret.txt").write_text(SECRET)
    return path


def _make_web(root: Path) -> Path:
    web = root / "site" / "web"
    (web / "js").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>viewer</title>")
    (web / "js" / "app.js").write_text("export const answer = 42;\n")
    (root / "site" / "outside.txt").write_text(SECRET)
    return web


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A run of its own, for the tests that change it."""
    return _make_run(tmp_path)


@pytest.fixture()
def web_dir(tmp_path: Path) -> Path:
    return _make_web(tmp_path)


@pytest.fixture()
def client(run_dir: Path, web_dir: Path) -> TestClient:
    return TestClient(server.create_app([run_dir], web_dir=web_dir), base_url=BASE)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path, TestClient]:
    """One run, page and client for the tests that only read (building a run takes ~0.2 s)."""
    root = tmp_path_factory.mktemp("shared")
    run, web = _make_run(root), _make_web(root)
    return run, web, TestClient(server.create_app([run], web_dir=web), base_url=BASE)


@pytest.fixture()
def ro_client(shared) -> TestClient:
    return shared[2]


def _error(resp) -> str:
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"} and body["error"], body
    return body["error"]


# ----------------------------------------------------------------------------- JSON


def test_runs_and_meta_describe_the_store(client: TestClient, run_dir: Path) -> None:
    runs = client.get("/api/runs").json()
    assert [(r["id"], r["name"], r["dataset"], r["epochs"]) for r in runs] == [
        ("my-run", "My Run!", "toy", [0, 1])]
    assert isinstance(runs[0]["live"], bool)
    meta = client.get("/api/runs/my-run/meta").json()
    run = Run.open(run_dir)
    assert meta["class_names"] == CLASSES
    assert [(la["name"], la["kind"], la["shape"], la["dim"], la["static"]) for la in meta["layers"]] == [
        (la.name, la.kind, list(la.shape), la.dim, la.static) for la in run.layers]
    assert meta["splits"] == ["train", "test"] and meta["sizes"] == {"train": N_TRAIN, "test": N_TEST}
    assert meta["images"] == {"train": [1, 6, 4], "test": [3, 5, 5]}
    assert meta["epochs"] == [0, 1] and meta["adversarial"] == ["default"]
    assert meta["config"] == {"lr": 0.1}
    # Only the non-zero counts: the NaN row of train/fc at epoch 1.
    assert meta["nonfinite"] == {"1": {"train": {"fc": 1}}}


def test_run_ids_are_unique_slugs_in_argument_order(tmp_path: Path, run_dir: Path) -> None:
    other = tmp_path / "b" / "My Run!"
    other.parent.mkdir()
    Run.from_arrays(other, {"x": np.zeros((2, 4, 3))}, np.array([0, 1, 0, 1]))
    app = server.create_app([run_dir, other])
    runs = TestClient(app, base_url=BASE).get("/api/runs").json()
    assert [r["id"] for r in runs] == ["my-run", "my-run-2"]
    assert [r["epochs"] for r in runs] == [[0, 1], [0, 1]]
    with pytest.raises(GrandTourError, match="given twice"):
        server.create_app([run_dir, run_dir])


# ----------------------------------------------------------------------------- binary


@pytest.mark.parametrize(("layer", "epoch", "split"), [
    ("fc", 0, "train"), ("fc", 1, "train"), ("fc", 1, "test"), ("input", 1, "test"), ("softmax", 0, "test")])
def test_activations_are_the_stored_float16(ro_client: TestClient, layer: str, epoch: int,
                                            split: str) -> None:
    resp = ro_client.get(f"/api/runs/my-run/activations/{layer}/{epoch}/{split}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/octet-stream"
    n, dim = map(int, resp.headers["x-shape"].split(","))
    values = np.frombuffer(resp.content, dtype="<f2").reshape(n, dim)
    scale = float(resp.headers["x-scale"])
    # The static input is stored once, from the first epoch written.
    expected = _epoch_data(0 if layer == "input" else epoch)[split][layer]
    assert (n, dim) == expected.shape
    np.testing.assert_array_equal(values.astype(np.float32) * scale, expected)
    rows = int((~np.isfinite(expected).all(axis=1)).sum())
    assert int(resp.headers["x-nonfinite"]) == rows
    if (layer, epoch, split) == ("fc", 1, "test"):
        assert scale == 4.0  # 1.5 * 2**17 / 4 fits float16; / 2 would not


def test_committed_epochs_revalidate_by_etag(ro_client: TestClient) -> None:
    url = "/api/runs/my-run/activations/fc/1/train"
    first = ro_client.get(url)
    tag = first.headers["etag"]
    assert "no-cache" in first.headers["cache-control"]
    again = ro_client.get(url, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    # Another epoch, layer or split is other data: another tag.
    others = {ro_client.get(u).headers["etag"] for u in (
        "/api/runs/my-run/activations/fc/0/train", "/api/runs/my-run/activations/softmax/1/train",
        "/api/runs/my-run/activations/fc/1/test")}
    assert tag not in others and len(others) == 3
    # The static input is one array for all epochs: one tag.
    assert (ro_client.get("/api/runs/my-run/activations/input/0/test").headers["etag"]
            == ro_client.get("/api/runs/my-run/activations/input/1/test").headers["etag"])


def test_labels_predictions_and_metrics(client: TestClient, run_dir: Path) -> None:
    run = Run.open(run_dir)
    for split in ("train", "test"):
        resp = client.get(f"/api/runs/my-run/labels/{split}")
        assert resp.headers["x-shape"] == str(run.size(split))
        np.testing.assert_array_equal(np.frombuffer(resp.content, "<i2"), run.labels(split))
        for epoch in (0, 1):
            resp = client.get(f"/api/runs/my-run/predictions/{epoch}/{split}")
            np.testing.assert_array_equal(np.frombuffer(resp.content, "<i2"), run.predictions(epoch, split))
    m = client.get("/api/runs/my-run/metrics/test").json()
    stored = run.metrics("test")
    assert m["epochs"] == [0, 1]
    assert m["loss"] == [None, 2.0] and m["accuracy"] == [None, 0.25]  # NaN -> null
    assert m["class_loss"][0] == [None] * 3
    np.testing.assert_allclose(m["class_accuracy"][1], stored["class_accuracy"][1])
    train = client.get("/api/runs/my-run/metrics/train").json()
    np.testing.assert_allclose(train["loss"], [1.0, 0.5])


def test_image_atlas_holds_each_thumbnail_at_its_cell(client: TestClient, run_dir: Path) -> None:
    run = Run.open(run_dir)
    for split, mode in (("train", "L"), ("test", "RGB")):
        resp = client.get(f"/api/runs/my-run/images/{split}")
        assert resp.headers["content-type"] == "image/png"
        cols, rows, cw, ch, n = map(int, resp.headers["x-atlas"].split(","))
        images = run.images(split)
        assert n == images.shape[0] and (ch, cw) == images.shape[2:] and cols * rows >= n
        img = PIL_Image.open(io.BytesIO(resp.content))
        assert img.mode == mode and img.size == (cols * cw, rows * ch)
        pix = np.asarray(img)
        for i in range(n):
            x, y = (i % cols) * cw, (i // cols) * ch
            cell = pix[y:y + ch, x:x + cw]
            want = images[i, 0] if mode == "L" else np.moveaxis(images[i], 0, -1)
            np.testing.assert_array_equal(cell, want)
        layout = client.get(f"/api/runs/my-run/images/{split}/layout").json()
        assert (layout["cols"], layout["rows"], layout["cell_w"], layout["cell_h"], layout["n"]) == (
            cols, rows, cw, ch, n)


@pytest.mark.parametrize(("n", "h", "w"), [(1, 8, 8), (1000, 28, 28), (60000, 28, 28), (50000, 32, 32),
                                           (7, 6, 4), (100000, 3, 40)])
def test_atlas_grid_fits_a_webgl2_texture(n: int, h: int, w: int) -> None:
    cols, rows, cw, ch = atlas.atlas_grid(n, h, w)
    assert cols * rows >= n > cols * (rows - 1)  # no empty row
    assert cols * cw <= atlas.ATLAS_MAX_SIDE and rows * ch <= atlas.ATLAS_MAX_SIDE
    if n * h * w <= (atlas.ATLAS_MAX_SIDE // max(h, w) * min(h, w)) ** 2 // 2:
        assert (cw, ch) == (w, h)  # small sets keep their thumbnails' size


def test_atlas_of_many_thumbnails_shrinks_them_to_fit() -> None:
    n = 20000  # 20000 cells of 32 x 32 would need a 4526-pixel square
    images = np.broadcast_to((np.arange(n) % 251).astype(np.uint8)[:, None, None, None], (n, 1, 32, 32))
    png, layout = server.sprite_atlas(np.ascontiguousarray(images))
    img = np.asarray(PIL_Image.open(io.BytesIO(png)))
    assert img.shape == (layout["rows"] * layout["cell_h"], layout["cols"] * layout["cell_w"])
    assert max(img.shape) <= atlas.ATLAS_MAX_SIDE and layout["cell_w"] < 32
    cols, cw, ch = layout["cols"], layout["cell_w"], layout["cell_h"]
    for i in (0, 1, 250, 251, n - 1):  # a constant thumbnail stays that constant when shrunk
        y, x = (i // cols) * ch, (i % cols) * cw
        assert (img[y:y + ch, x:x + cw] == i % 251).all(), i


def test_adversarial_endpoints(client: TestClient, run_dir: Path) -> None:
    rec = Run.open(run_dir).adversarial("default")
    meta = client.get("/api/runs/my-run/adversarial/default").json()
    assert (meta["source"], meta["target"], meta["eps"], meta["epoch"], meta["split"], meta["steps"]) == (
        0, 2, 0.5, 1, "test", 3)
    assert meta["example_index"] == [1, 3] and meta["layers"] == ["fc", "softmax"]
    resp = client.get("/api/runs/my-run/adversarial/default/fc")
    shape = tuple(map(int, resp.headers["x-shape"].split(",")))
    assert shape == (4, 2, 5)
    scale = float(resp.headers["x-scale"])
    values = np.frombuffer(resp.content, "<f2").reshape(shape).astype(np.float32) * scale
    np.testing.assert_array_equal(values, rec.activations("fc"))
    resp = client.get("/api/runs/my-run/adversarial/default/predictions")
    assert resp.headers["x-shape"] == "4,2"
    np.testing.assert_array_equal(np.frombuffer(resp.content, "<i2").reshape(4, 2), rec.predictions)
    resp = client.get("/api/runs/my-run/adversarial/default/images")
    cols, _rows, cw, ch, n = map(int, resp.headers["x-atlas"].split(","))
    assert n == 8
    pix = np.asarray(PIL_Image.open(io.BytesIO(resp.content)))
    i = 1 * 2 + 1  # step 1, example 1: step-major cells
    y, x = (i // cols) * ch, (i % cols) * cw
    np.testing.assert_array_equal(pix[y:y + ch, x:x + cw], np.moveaxis(rec.images(1)[1], 0, -1))
    assert client.get("/api/runs/my-run/adversarial/nope").status_code == 404
    assert client.get("/api/runs/my-run/adversarial/default/input").status_code == 404


def test_transition_without_alignment_says_how_to_compute_it(ro_client: TestClient) -> None:
    resp = ro_client.get("/api/runs/my-run/transition/fc/1/train")
    assert resp.status_code == 404 and "grandtour align" in _error(resp)
    # The first layer has no transition into it; an unknown layer is unknown.
    assert ro_client.get("/api/runs/my-run/transition/input/1/train").status_code == 404
    assert ro_client.get("/api/runs/my-run/transition/nope/1/train").status_code == 404


def _aligned_run(root: Path) -> Path:
    """input (6) -> fc (linear, 4) -> relu (4) -> wide (linear, 8), recorded exactly as the
    maps compute it, then aligned with a threshold of 6: `wide` is shown in a reduction."""
    rng = np.random.default_rng(5)
    n = 12
    layers = [LayerInfo("input", "input", (6,), static=True),
              LayerInfo("fc", "linear", (4,), config={"in_features": 6, "out_features": 4, "bias": True}),
              LayerInfo("relu", "relu", (4,)),
              LayerInfo("wide", "linear", (8,), config={"in_features": 4, "out_features": 8, "bias": True})]
    path = root / "aligned"
    writer = RunWriter.create(path, dataset="toy", class_names=CLASSES, layers=layers,
                              probes={"train": ProbeSet(labels=np.arange(n) % 3)})
    x = rng.normal(size=(n, 6))
    for epoch in (0, 1):
        w1, b1 = rng.normal(size=(4, 6)), rng.normal(size=4)
        w2, b2 = rng.normal(size=(8, 4)), rng.normal(size=8)
        fc = x @ w1.T + b1
        relu = np.maximum(fc, 0)
        writer.write_epoch(epoch, activations={"train": {"input": x, "fc": fc, "relu": relu,
                                                         "wide": relu @ w2.T + b2}},
                           params={"fc": {"weight": w1, "bias": b1}, "wide": {"weight": w2, "bias": b2}})
    return path


def test_transitions_and_reductions_of_an_aligned_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    align = pytest.importorskip("grandtour.align")
    path = _aligned_run(tmp_path)
    c = TestClient(server.create_app([path]), base_url=BASE)
    resp = c.get("/api/runs/aligned/transition/fc/1/train")
    assert resp.status_code == 404 and "grandtour align" in _error(resp)
    assert c.get("/api/runs/aligned/meta").json()["aligned"] is False

    align.align_run(path, threshold=6, progress=False)
    meta = c.get("/api/runs/aligned/meta").json()  # the server sees the alignment appear
    assert meta["aligned"] is True
    red = align.load_reduction(path, "wide")
    layers = {la["name"]: la for la in meta["layers"]}
    assert layers["wide"]["reduced_dim"] == red.rank < 8
    assert layers["wide"]["variance_kept"] == pytest.approx(red.variance_kept)
    assert "reduced_dim" not in layers["fc"]

    # A reduced layer is sent in its reduction, (N, r).
    resp = c.get("/api/runs/aligned/activations/wide/1/train")
    n, r = map(int, resp.headers["x-shape"].split(","))
    assert (n, r) == (12, red.rank) and resp.headers["x-reduced"] == f"{red.rank},8"
    z = np.frombuffer(resp.content, "<f2").reshape(n, r).astype(np.float64) * float(resp.headers["x-scale"])
    want = align.layer_coordinates(path, "wide", 1, "train")
    np.testing.assert_allclose(z, want, rtol=2**-10, atol=2**-10 * np.abs(want).max())

    for layer in ("fc", "relu", "wide"):
        t = align.load_transition(path, layer, 1, "train")
        resp = c.get(f"/api/runs/aligned/transition/{layer}/1/train")
        assert resp.status_code == 200, resp.text
        n, k = map(int, resp.headers["x-shape"].split(","))
        assert (n, k) == t.start.shape and resp.headers["x-previous"] == t.previous
        both = np.frombuffer(resp.content, "<f2").astype(np.float64) * float(resp.headers["x-scale"])
        peak = max(np.abs(t.start).max(), np.abs(t.end).max())
        np.testing.assert_allclose(both[:n * k].reshape(n, k), t.start, atol=2**-10 * peak)
        np.testing.assert_allclose(both[n * k:].reshape(n, k), t.end, atol=2**-10 * peak)
        basis = c.get(resp.headers["x-basis"])
        d_in, d_in2, d, d2 = map(int, basis.headers["x-shape"].split(","))
        assert (d_in, d_in2) == t.basis_in.shape and (d, d2) == t.basis_out.shape
        b = np.frombuffer(basis.content, "<f4")
        np.testing.assert_allclose(b[:d_in * d_in].reshape(d_in, d_in), t.basis_in, atol=1e-6)
        np.testing.assert_allclose(b[d_in * d_in:].reshape(d, d), t.basis_out, atol=1e-6)
    # An epoch committed after `grandtour align` is aligned on demand, in the stored reductions.
    writer = RunWriter.open(path)
    rng = np.random.default_rng(5)
    writer.write_epoch(2, activations={"train": {"fc": rng.normal(size=(12, 4)),
                                                 "relu": rng.normal(size=(12, 4)),
                                                 "wide": rng.normal(size=(12, 8))}})
    resp = c.get("/api/runs/aligned/transition/fc/2/train")
    assert resp.status_code == 200, resp.text
    t = align.Aligner(path).transition("fc", 2, "train")
    n, k = map(int, resp.headers["x-shape"].split(","))
    assert (n, k) == t.start.shape
    both = np.frombuffer(resp.content, "<f2").astype(np.float64) * float(resp.headers["x-scale"])
    peak = max(np.abs(t.start).max(), np.abs(t.end).max())
    np.testing.assert_allclose(both[n * k:].reshape(n, k), t.end, atol=2**-10 * peak)


# ----------------------------------------------------------------------------- live runs


def test_an_epoch_committed_while_serving_appears(client: TestClient, run_dir: Path) -> None:
    assert client.get("/api/runs/my-run/meta").json()["epochs"] == [0, 1]
    assert client.get("/api/runs/my-run/activations/fc/2/train").status_code == 404
    _write_epoch(RunWriter.open(run_dir), 2)
    assert client.get("/api/runs/my-run/meta").json()["epochs"] == [0, 1, 2]
    assert client.get("/api/runs").json()[0]["live"] is True  # just committed
    resp = client.get("/api/runs/my-run/activations/fc/2/train")
    assert resp.status_code == 200
    np.testing.assert_array_equal(np.frombuffer(resp.content, "<f2").reshape(N_TRAIN, 5),
                                  _epoch_data(2)["train"]["fc"])
    assert client.get("/api/runs/my-run/metrics/train").json()["epochs"] == [0, 1, 2]


def test_live_means_recently_committed_or_unfinished(run_dir: Path) -> None:
    handle = served_runs.open_runs([run_dir])[0]
    commit = run_dir / "commit.json"
    old = commit.stat().st_mtime - 2 * served_runs.LIVE_WINDOW_S
    os.utime(commit, (old, old))
    assert handle.live() is False  # finished long enough ago (no plan in its config)
    writer = RunWriter.open(run_dir)
    writer.update_config({"epochs": 5})  # the trainer plans 5 epochs; 0-1 are done
    handle = served_runs.open_runs([run_dir])[0]
    assert handle.live() is True
    very_old = commit.stat().st_mtime - 2 * served_runs.LIVE_PLANNED_S
    os.utime(commit, (very_old, very_old))
    assert handle.live() is False  # an interrupted run, abandoned


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("url", [
    "/api/runs/nope/meta", "/api/runs/nope/activations/fc/0/train",
    "/api/runs/my-run/activations/nope/0/train",
    "/api/runs/my-run/activations/fc/0/nope", "/api/runs/my-run/activations/fc/7/train",
    "/api/runs/my-run/predictions/7/train", "/api/runs/my-run/labels/nope", "/api/runs/my-run/metrics/nope",
    "/api/runs/my-run/images/nope", "/api/runs/my-run/nope", "/api/nope", "/api", "/nope.js",
])
def test_unknown_names_are_404_json(ro_client: TestClient, url: str) -> None:
    resp = ro_client.get(url)
    assert resp.status_code == 404
    _error(resp)


@pytest.mark.parametrize("epoch", ["abc", "-1", str(10**30), "1.5", "1e3", "%20" + "1", "0x1", "+1", "٣"])
def test_malformed_epochs_are_4xx(ro_client: TestClient, epoch: str) -> None:
    for url in (f"/api/runs/my-run/activations/fc/{epoch}/train",
                f"/api/runs/my-run/predictions/{epoch}/train",
                f"/api/runs/my-run/transition/fc/{epoch}/train"):
        resp = ro_client.get(url)
        assert 400 <= resp.status_code < 500, (url, resp.status_code)
        _error(resp)


def test_only_get_is_allowed(ro_client: TestClient) -> None:
    resp = ro_client.post("/api/runs")
    assert resp.status_code == 405
    _error(resp)


TRAVERSALS = [
    "/static/../../pyproject.toml", "/static/../../outside.txt", "/static/../../../secret.txt",
    "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/outside.txt", "/static/%2e%2e/outside.txt",
    "/static/..%2foutside.txt", "/static/..%2f..%2fsecret.txt", "/static/%2fetc%2fpasswd",
    "/static//etc/passwd", "//etc/passwd", "/static/..\\outside.txt", "/js/../../outside.txt",
    "/api/runs/..%2f..%2f/meta", "/api/runs/..%2f..%2fsecret.txt/meta", "/api/runs/%2e%2e/meta",
    "/static/%252e%252e/outside.txt", "/static/.hidden", "/static/js/", "/static/", "/static/C:/secret.txt",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_is_404_and_leaks_nothing(ro_client: TestClient, url: str) -> None:
    resp = ro_client.get(url)
    assert resp.status_code == 404, (url, resp.status_code)
    assert SECRET not in resp.text and "root:" not in resp.text and "[project]" not in resp.text


def test_path_traversal_over_a_raw_socket(run_dir: Path, web_dir: Path) -> None:
    """HTTP clients normalise ``..`` away; a raw request line reaches the server as written."""
    (web_dir / "link.txt").symlink_to(web_dir.parent / "outside.txt")
    app = server.create_app([run_dir], web_dir=web_dir)
    with server.ServerThread(app) as srv:
        def raw(target: str) -> tuple[int, bytes]:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return int(data.split(b" ", 2)[1]), data

        assert raw("/js/app.js")[0] == 200  # the check reaches real files
        for target in TRAVERSALS + ["/static/link.txt", "/link.txt", str(web_dir.parent / "outside.txt"),
                                    "/static/" + str(web_dir.parent / "outside.txt"), "/static/../outside.txt",
                                    "/../outside.txt", "/static/js/../../outside.txt"]:
            status, data = raw(target)
            assert status in (400, 404), (target, status)
            assert SECRET.encode() not in data and b"[project]" not in data, target


def test_static_files_are_served_with_module_types(ro_client: TestClient) -> None:
    resp = ro_client.get("/")
    assert resp.status_code == 200 and "<title>viewer</title>" in resp.text
    assert resp.headers["content-type"].startswith("text/html")
    for url in ("/static/js/app.js", "/js/app.js"):
        resp = ro_client.get(url)
        assert resp.status_code == 200 and "answer = 42" in resp.text
        assert resp.headers["content-type"].startswith("text/javascript")  # ES modules need a JS type
        assert resp.headers["x-content-type-options"] == "nosniff"


def test_api_works_without_the_page(run_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-web"
    empty.mkdir()
    c = TestClient(server.create_app([run_dir], web_dir=empty), base_url=BASE)
    assert "index.html" in _error(c.get("/"))
    assert c.get("/api/runs").status_code == 200


def test_requests_for_another_host_are_refused(client: TestClient, run_dir: Path) -> None:
    # DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1.
    resp = client.get("/api/runs", headers={"Host": "evil.example:8787"})
    assert resp.status_code == 400 and "addressed to this machine" in _error(resp)
    for host in ("localhost:8787", "127.0.0.1", "[::1]:80"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200
    anyone = TestClient(server.create_app([run_dir], allowed_hosts=None), base_url="http://evil.example")
    assert anyone.get("/api/runs").status_code == 200


def test_corrupt_array_is_a_500_naming_it_and_the_server_survives(client: TestClient, run_dir: Path) -> None:
    chunks = sorted((run_dir / "activations" / "train" / "fc").glob("c/1/**/*"))
    chunk = next(p for p in chunks if p.is_file())
    chunk.write_bytes(b"not zstd at all" * 3)
    resp = client.get("/api/runs/my-run/activations/fc/1/train")
    assert resp.status_code == 500
    message = _error(resp)
    assert "activations/train/fc" in message and "Traceback" not in message
    ok = client.get("/api/runs/my-run/activations/fc/0/train")
    assert ok.status_code == 200 and len(ok.content) == N_TRAIN * 5 * 2


def test_unexpected_errors_are_json_without_traceback(client: TestClient, monkeypatch, caplog) -> None:
    def boom(self, split):
        raise RuntimeError("internal detail 1234")

    monkeypatch.setattr(Run, "labels", boom)
    resp = client.get("/api/runs/my-run/labels/train")
    assert resp.status_code == 500
    message = _error(resp)
    assert "RuntimeError" in message and "internal detail" not in message and "Traceback" not in resp.text
    assert any("internal detail 1234" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    monkeypatch.undo()
    assert client.get("/api/runs/my-run/labels/train").status_code == 200


# ----------------------------------------------------------------------------- running


def test_server_thread_serves_over_a_real_socket(run_dir: Path, web_dir: Path) -> None:
    app = server.create_app([run_dir], web_dir=web_dir)
    with server.ServerThread(app, port=0) as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}/" and srv.port > 0
        with _open(srv.url + "api/runs", timeout=5) as resp:
            assert [r["id"] for r in json.load(resp)] == ["my-run"]
        with _open(srv.url + "api/runs/my-run/activations/softmax/1/test", timeout=5) as resp:
            values = np.frombuffer(resp.read(), "<f2").reshape(N_TEST, 3)
        np.testing.assert_array_equal(values, _epoch_data(1)["test"]["softmax"])
    with pytest.raises(OSError):  # stopped: nothing listens any more
        _open(srv.url + "api/runs", timeout=2)


def test_stopping_while_a_request_runs_is_quiet_waits_for_it_and_errors_still_log(monkeypatch, capfd) -> None:
    """A stop cancels what still runs after the grace period (a page loading a big run when
    its notebook widget closes): that is the stop asked for, not an error to print. The
    thread answering it is waited for, so a program ending just after the stop does not end
    in the middle of its reads. A request that fails on its own is still logged."""
    import threading

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    started, finished = threading.Event(), threading.Event()

    def slow(request):
        started.set()
        threading.Event().wait(1.0)  # past the grace period below
        finished.set()
        return PlainTextResponse("late")

    def broken(request):
        raise ValueError("a real failure 5678")

    monkeypatch.setattr(serving, "STOP_GRACE_S", 0.2)
    app = Starlette(routes=[Route("/slow", slow), Route("/broken", broken)])
    srv = server.ServerThread(app, port=0).start()
    with pytest.raises(urllib.error.HTTPError):
        _open(srv.url + "broken", timeout=5)
    answers = []

    def get() -> None:
        try:
            answers.append(_open(srv.url + "slow", timeout=30).status)
        except urllib.error.HTTPError as err:
            answers.append(err.code)

    client = threading.Thread(target=get)
    client.start()
    assert started.wait(10)
    srv.stop()
    assert finished.is_set() and not serving._orphaned_workers()  # its handler was waited for
    client.join(30)
    err = capfd.readouterr().err
    assert answers == [500] and not srv._thread.is_alive()
    assert "a real failure 5678" in err and "ValueError" in err  # a failing request: logged
    assert "CancelledError" not in err and "graceful shutdown" not in err, err
    assert err.count("Traceback") == 1, err


def test_serve_binds_loopback_by_default(run_dir: Path, monkeypatch) -> None:
    assert inspect.signature(server.serve).parameters["host"].default == "127.0.0.1"
    opened = []
    monkeypatch.setattr(serving.webbrowser, "open", opened.append)
    out = io.StringIO()
    srv = server.serve([run_dir], port=0, block=False, out=out)
    try:
        assert srv.sock.getsockname()[0] == "127.0.0.1"
        assert srv.url in out.getvalue() and opened == [srv.url]
        with _open(srv.url + "api/runs", timeout=5) as resp:
            assert resp.status == 200
    finally:
        srv.stop()
    # The CLI passes --host only when given: the default is loopback too.
    seen = {}
    monkeypatch.setattr(serving, "serve", lambda runs, **kw: seen.update(kw, runs=runs))
    server.serve_command(argparse.Namespace(runs=[str(run_dir)], port=None, host=None, no_browser=True))
    assert seen["host"] == "127.0.0.1" and seen["open_browser"] is False and seen["runs"] == [str(run_dir)]


def test_public_host_warns_asks_a_token_and_keeps_the_host_check(run_dir: Path, monkeypatch,
                                                                  capsys) -> None:
    # Bind loopback for real, but take the code path of --host 0.0.0.0.
    monkeypatch.setattr(serving, "_bind_search", lambda host, port: serving._bind("127.0.0.1", 0))
    monkeypatch.delenv(serving.TOKEN_ENV, raising=False)
    out = io.StringIO()
    srv = server.serve([run_dir], host="0.0.0.0", port=0, block=False, open_browser=False, out=out,
                       allowed_hosts=["my-laptop.lan"])
    try:
        assert "not a loopback address" in capsys.readouterr().err
        token = srv.app.state.token
        assert token and len(token) >= 32 and srv.page_url == f"{srv.url}?token={token}"
        assert srv.page_url in out.getvalue()  # printed, like Jupyter's

        def status(host: str, auth: str | None) -> int:
            headers = {"Host": host, **({"Authorization": f"token {auth}"} if auth else {})}
            try:
                with _open(urllib.request.Request(srv.url + "api/runs", headers=headers), timeout=5) as resp:
                    return resp.status
            except urllib.error.HTTPError as err:
                return err.code

        assert status("my-laptop.lan:8787", token) == 200  # a name given with --allow-host
        assert status("my-laptop.lan:8787", None) == 401
        assert status("my-laptop.lan:8787", token + "x") == 403
        # The Host check holds on a wildcard bind: other names are refused, token or not.
        assert status("192.168.1.2:8787", token) == 400
        assert status("evil.example", token) == 400
    finally:
        srv.stop()
    assert all(serving._is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))
    assert not serving._is_loopback("0.0.0.0") and not serving._is_loopback("192.168.1.2")


def test_busy_ports(run_dir: Path, monkeypatch) -> None:
    holder = serving._bind("127.0.0.1", 0)
    try:
        busy = holder.getsockname()[1]
        with pytest.raises(GrandTourError, match="--port"):
            server.serve([run_dir], port=busy, block=False, open_browser=False, out=io.StringIO())
        # No --port: the default, or the next free one, said so.
        monkeypatch.setattr(serving, "DEFAULT_PORT", busy)
        out = io.StringIO()
        srv = server.serve([run_dir], block=False, open_browser=False, out=out)
        try:
            assert srv.port != busy and busy < srv.port < busy + serving.PORT_TRIES
            assert f"port {busy} is in use; using {srv.port}" in out.getvalue()
        finally:
            srv.stop()
    finally:
        holder.close()


def test_serve_command_rejects_what_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for bad, why in ((tmp_path / "missing", "does not exist"), (tmp_path / "plain", "not a grandtour run"),
                     (tmp_path / "file.txt", "is a file")):
        with pytest.raises(StoreError, match=why):
            server.serve_command(argparse.Namespace(runs=[str(bad)], port=0, host=None, no_browser=True))
    with pytest.raises(GrandTourError, match="at least one run"):
        server.serve_command(argparse.Namespace(runs=[], port=0, host=None, no_browser=True))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_serve_blocks_until_interrupted(run_dir: Path, monkeypatch) -> None:
    """The blocking path returns cleanly when uvicorn re-raises Ctrl-C after shutting down."""
    def interrupted(self, sockets=None):
        self.started = True
        raise KeyboardInterrupt

    monkeypatch.setattr(serving.webbrowser, "open", lambda url: None)
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", interrupted)
    out = io.StringIO()
    assert server.serve([run_dir], port=0, out=out) is None
    assert "Ctrl-C" in out.getvalue() and "stopped" in out.getvalue()
