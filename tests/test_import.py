"""`grandtour import` of a run recorded elsewhere (issue 10): several splits, predictions,
per-layer parameters, the graph's edges and activations of any shape, so that the imported
run aligns as exactly as the recorded one. The round trip: a run recorded by the Recorder
(the Inception-like block of tests/graph_models.py: convolutions, a concatenation) is
written out as a ``.npz`` with the documented keys, imported, and aligned."""

from __future__ import annotations

import json
import warnings
from argparse import Namespace

import numpy as np
import pytest
import torch
from graph_models import MODELS

from grandtour.errors import StoreError
from grandtour.store import Run
from grandtour.store.importer import import_command

SPLITS = {"train": 24, "test": 16}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A recorded run (2 epochs, 2 splits) and its aligned transitions."""
    from grandtour.align import AlignmentWarning, align_run
    from grandtour.record import Recorder

    rng = np.random.default_rng(0)
    probes = {s: (rng.standard_normal((n, 1, 8, 8)).astype(np.float32), np.arange(n) % 10)
              for s, n in SPLITS.items()}
    torch.manual_seed(0)
    model = MODELS["inception"][0]()
    path = tmp_path_factory.mktemp("recorded") / "run"
    rec = Recorder(model, path, probes=probes)
    rec.record(0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    rec.record(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        align_run(path, progress=False)
    return Run.open(path)


def _npz_of(run: Run, path) -> None:
    """The run as a .npz with the keys of docs/store.md (activations in their layer shape)."""
    epochs = list(run.epochs)
    data = {"splits": np.array(run.splits), "epochs": np.array(epochs), "class_names": np.array(run.class_names),
            "layers": np.array(run.layer_names), "layer_kinds": np.array([i.kind for i in run.layers]),
            "layer_shapes": np.array(json.dumps({i.name: list(i.shape) for i in run.layers})),
            "layer_inputs": np.array(json.dumps({i.name: list(run.inputs(i.name)) for i in run.layers})),
            "layer_configs": np.array(json.dumps({i.name: i.config for i in run.layers}))}
    for s in run.splits:
        data[f"labels/{s}"] = run.labels(s)
        data[f"predictions/{s}"] = np.stack([run.predictions(e, s) for e in epochs])
        for i in run.layers:
            n = run.size(s)
            if i.static:
                data[f"act/{s}/{i.name}"] = run.activations(i.name, epochs[0], s).reshape(n, *i.shape)
            else:
                data[f"act/{s}/{i.name}"] = np.stack([run.activations(i.name, e, s).reshape(n, *i.shape)
                                                      for e in epochs])
    for i in run.layers:
        for name in run.params(i.name, epochs[0]):
            data[f"params/{i.name}/{name}"] = np.stack([run.params(i.name, e)[name] for e in epochs])
    np.savez(path, **data)


def test_an_imported_run_keeps_the_graph_and_aligns_exactly(recorded, tmp_path, capsys):
    from grandtour.align import AlignmentWarning, align_run, load_transition

    _npz_of(recorded, tmp_path / "run.npz")
    assert import_command(Namespace(npz=tmp_path / "run.npz", out=tmp_path / "imported")) == 0
    assert "2 epochs" in capsys.readouterr().out
    run = Run.open(tmp_path / "imported")
    assert run.splits == recorded.splits and run.epochs == recorded.epochs
    for a, b in zip(run.layers, recorded.layers, strict=True):
        assert (a.name, a.kind, a.shape, a.static) == (b.name, b.kind, b.shape, b.static)
        assert run.inputs(a.name) == recorded.inputs(b.name)  # the graph, edge by edge
    assert run.inputs("cat") == ("a.1", "b.1")
    for s in run.splits:
        np.testing.assert_array_equal(run.predictions(1, s), recorded.predictions(1, s))
        np.testing.assert_array_equal(run.activations("cat", 1, s), recorded.activations("cat", 1, s))
    np.testing.assert_array_equal(run.params("a.0", 1)["weight"], recorded.params("a.0", 1)["weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)  # not one fit: every transition is exact
        align_run(tmp_path / "imported", progress=False)
    for layer in run.layer_names[1:]:
        for source in run.inputs(layer):
            t = load_transition(run, layer, 1, "test", source=source)
            want = load_transition(recorded, layer, 1, "test", source=source)
            assert t.exact and t.residual is not None and t.residual <= 2e-2, (layer, source, t.note)
            assert (t.method, t.exact) == (want.method, want.exact)
            np.testing.assert_allclose(t.end, want.end, rtol=1e-6, atol=1e-6)
    assert load_transition(run, "cat", 1, "test", source="b.1").method == "merge"
    # The server sends the graph, and the transition from either input of the merge.
    from fastapi.testclient import TestClient

    from grandtour.server import create_app

    with TestClient(create_app([tmp_path / "imported"]), base_url="http://127.0.0.1") as client:
        meta = client.get("/api/runs/imported/meta").json()
        assert {la["name"]: tuple(la["inputs"]) for la in meta["layers"]} == {
            n: run.inputs(n) for n in run.layer_names}
        r = client.get("/api/runs/imported/transition/cat/1/test?source=b.1")
        assert r.status_code == 200 and r.headers["x-previous"] == "b.1" and r.headers["x-method"] == "merge"
        assert r.headers["x-basis"].endswith("/basis?source=b.1")
        assert client.get(r.headers["x-basis"]).status_code == 200
        r = client.get("/api/runs/imported/transition/cat/1/test?source=head")
        assert r.status_code == 404 and "its inputs: a.1, b.1" in r.json()["error"]


def test_one_split_without_edges_is_the_chain_of_its_layers(tmp_path):
    rng = np.random.default_rng(1)
    y = np.arange(12) % 3
    run = Run.from_arrays(tmp_path / "r", {"input": rng.standard_normal((12, 2, 3)),
                                           "fc": rng.standard_normal((2, 12, 4))}, y,
                          layer_shapes={"input": (2, 3)}, predictions=np.stack([y, y]))
    assert run.layer("input").shape == (2, 3) and run.layer("input").static
    assert run.activations("input", 0, "train").shape == (12, 6)  # flattened, the shape kept
    assert run.inputs("fc") == ("input",)
    np.testing.assert_array_equal(run.predictions(1, "train"), y)


def test_import_mistakes_are_refused_before_anything_is_written(tmp_path):
    y = np.arange(6) % 2
    x, h = np.zeros((6, 4)), np.zeros((2, 6, 3))
    cases = [
        (dict(activations={"input": x, "h": h}, labels=y, layer_inputs={"input": ["h"]}),
         r"not a layer before 'input'"),
        (dict(activations={"input": x, "h": h}, labels=y, layer_inputs={"nope": ["input"]}),
         r"unknown layer\(s\) nope"),
        (dict(activations={"input": x, "h": h}, labels=y, params={"h": {"weight": np.zeros((3, 4))}}),
         r"params\['h'\]\['weight'\] has shape \(3, 4\); expected \(2, \.\.\.\)"),
        (dict(activations={"input": x, "h": h}, labels=y, predictions=np.zeros((2, 5), int)),
         r"predictions has shape \(2, 5\); expected \(E, N\) = \(2, 6\)"),
        (dict(activations={"input": x, "h": h}, labels=y, layer_shapes={"input": (2, 3)}),
         r"activations\['input'\] has shape \(6, 4\); expected .*\(6, 2, 3\)"),
        (dict(activations={"train": {"input": x}, "test": {"h": h}}, labels={"train": y, "test": y}),
         r"every split needs the same layers"),
        (dict(activations={"train": {"input": x}}, labels={"train": y, "test": y}),
         r"activations has no split test"),
    ]
    for k, (kw, match) in enumerate(cases):
        with pytest.raises(StoreError, match=match):
            Run.from_arrays(tmp_path / f"r{k}", **kw)
        assert not (tmp_path / f"r{k}").exists()
