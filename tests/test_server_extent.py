"""The fixed scale of each layer in ``/meta`` (issue 9): ``extent``, the largest over the
layer's epochs and splits of the 99th percentile of its rows' norms as the page receives
them (float16 times ``X-Scale``), so that the page needs no epoch loaded to fix its scale;
computed in the background for a large run."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from grandtour import server
from grandtour.server import runs as served_runs
from grandtour.store import Run

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    rng = np.random.default_rng(2)
    labels = np.arange(40) % 4
    # Epoch 1 grows: the extent is that of the largest epoch; a NaN row is left out.
    a = np.stack([rng.standard_normal((40, 6)) * s for s in (1.0, 3.0)]).astype(np.float32)
    a[1, 3] = np.nan
    b = np.stack([rng.standard_normal((40, 3)) * 1e-3, rng.standard_normal((40, 3)) * 2e-3]).astype(np.float32)
    path = tmp_path_factory.mktemp("extent") / "run"
    Run.from_arrays(path, {"wide": a, "small": b}, labels, class_names=list("abcd"), split="train", overwrite=True)
    return path


def _expected(client, layer: str, epochs) -> float:
    """What the page computes (viewmap.js normQuantile) from the bytes it receives."""
    best = 0.0
    for e in epochs:
        r = client.get(f"/api/runs/run/activations/{layer}/{e}/train")
        n, d = (int(v) for v in r.headers["x-shape"].split(","))
        x = np.frombuffer(r.content, "<f2").astype(np.float64).reshape(n, d)
        sq = np.sort((x[np.isfinite(x).all(axis=1)] ** 2).sum(axis=1))
        best = max(best, float(np.sqrt(sq[int(np.floor(0.99 * (len(sq) - 1)))]) * float(r.headers["x-scale"])))
    return best


def test_meta_gives_each_layer_its_extent_over_all_epochs(run_dir):
    client = TestClient(server.create_app([run_dir]), base_url=BASE)
    meta = client.get("/api/runs/run/meta").json()
    for layer in meta["layers"]:
        want = _expected(client, layer["name"], meta["epochs"])
        assert layer["extent"] == pytest.approx(want, rel=1e-12), layer["name"]
    # The largest epoch sets it: epoch 1 of "wide" is three times epoch 0.
    assert meta["layers"][0]["extent"] > 2.5 * _expected(client, "wide", meta["epochs"][:1])


def test_a_large_run_gets_its_extents_from_the_background(run_dir, monkeypatch):
    monkeypatch.setattr(served_runs, "EXTENT_SYNC_BYTES", 0)
    client = TestClient(server.create_app([run_dir]), base_url=BASE)
    for _ in range(200):
        meta = client.get("/api/runs/run/meta").json()
        if all("extent" in layer for layer in meta["layers"]):
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"no extents after 4 s: {meta['layers']}")
    for layer in meta["layers"]:
        assert layer["extent"] == pytest.approx(_expected(client, layer["name"], meta["epochs"]), rel=1e-12)


def test_a_large_run_gets_its_narrow_layers_extents_at_once_and_the_rest_later(run_dir, monkeypatch):
    """Cheapest layers first: those that fit the budget are in the first /meta (the page then
    draws its first layer without loading every epoch of it), the others come from a thread."""
    started = []

    class Held:  # the background thread, held until the test runs it
        def __init__(self, target, **kw):
            self.target = target

        def start(self):
            started.append(self.target)

        def is_alive(self):
            return False

    monkeypatch.setattr(served_runs.threading, "Thread", Held)
    monkeypatch.setattr(served_runs, "EXTENT_SYNC_BYTES", 40 * 3 * 2 * 2)  # "small": 3 dims, 2 epochs
    client = TestClient(server.create_app([run_dir]), base_url=BASE)
    meta = client.get("/api/runs/run/meta").json()
    got = {layer["name"]: layer.get("extent") for layer in meta["layers"]}
    assert got["wide"] is None and got["small"] == pytest.approx(_expected(client, "small", meta["epochs"]), rel=1e-12)
    assert len(started) == 1
    started[0]()  # the thread's work: the wide layer
    meta = client.get("/api/runs/run/meta").json()
    got = {layer["name"]: layer.get("extent") for layer in meta["layers"]}
    assert got["wide"] == pytest.approx(_expected(client, "wide", meta["epochs"]), rel=1e-12)
