"""The page on a branched network (issue 10): the Inception-like block of
``tests/graph_models.py`` (two branches ``a`` and ``b`` of the input, concatenated), recorded
for two epochs on the digits and aligned. The network diagram draws both branches side by
side and their merge; layer play follows the path the user picks, and the transition into
the merge says where each input comes from.
"""

from __future__ import annotations

import sys
import warnings
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from browser_kit import pause

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: graph_models
from graph_models import MODELS

MAIN = ["input", "a.0", "a.1", "cat", "head", "softmax"]
VIA_B = ["input", "b.0", "b.1", "cat", "head", "softmax"]


def make_inception_run(path: Path) -> Path:
    from grandtour.align import AlignmentWarning, align_run
    from grandtour.data import load_dataset
    from grandtour.models import normalize
    from grandtour.record import Recorder

    ds = load_dataset("digits")
    x, y = normalize(ds.x_train[:160], "digits"), torch.as_tensor(ds.y_train[:160])
    probes = {"train": (x[:48], ds.y_train[:48]), "test": (normalize(ds.x_test[:32], "digits"), ds.y_test[:32])}
    torch.manual_seed(0)
    model = MODELS["inception"][0]()
    rec = Recorder(model, path, probes=probes, dataset="digits")
    rec.record(0)
    model.train()
    for idx in torch.randperm(len(x), generator=torch.Generator().manual_seed(1)).split(32):
        model.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        with torch.no_grad():  # plain SGD (torch.optim would import torch._dynamo: seconds)
            for p in model.parameters():
                p -= 0.05 * p.grad
    rec.record(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        align_run(path, progress=False)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's server: the branched run only (the page opens it)."""
    from grandtour.server import ServerThread, create_app

    run = make_inception_run(tmp_path_factory.mktemp("graph-page") / "inception")
    with ServerThread(create_app([run]), host="127.0.0.1", port=0) as srv:
        yield srv


def _diagram(page) -> dict:
    """The diagram as drawn: each chip's name, box and classes; each edge's ends and classes."""
    return page.evaluate("""() => {
        const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
        return {
          chips: Object.fromEntries([...document.querySelectorAll('#network .layer')].map((b) => [
            b.dataset.name, { box: box(b), cls: b.className, index: Number(b.dataset.index) }])),
          edges: [...document.querySelectorAll('#network svg .edge')].map((e) => ({
            from: e.dataset.from, to: e.dataset.to, cls: e.getAttribute('class'), d: e.getAttribute('d'),
            dash: e.getAttribute('stroke-dasharray') })),
        };
    }""")


def _play_layers(page) -> tuple[list[str], dict[str, dict], dict[str, str]]:
    """Play the layers from the one shown to the last (on the manual clock): the layers passed,
    in order, the transition shown into each and the status card's line while it is."""
    page.click("#layer-play")
    visited, into, status = [page.evaluate("window.grandtour.state().layer")], {}, {}
    for _ in range(3000):
        s = page.evaluate("window.grandtour.step(1 / 4)")
        if s["layer"] != visited[-1]:  # the layer nearest the view (steps of 0.15 layers: none is missed)
            visited.append(s["layer"])
        if s["space"] == "transition" and s["transition"] and s["layerPos"] % 1 >= 0.5:
            into[s["layer"]] = s["transition"]  # past halfway, `layer` is the one it goes into
            status[s["layer"]] = page.inner_text("#status-layer")
        if not s["layerPlaying"] and s["layerPos"] == s["layerIndex"] and len(visited) > 1:
            break
    return visited, into, status


def test_the_diagram_draws_both_branches_and_their_merge(open_page):
    page = open_page()
    pause(page)
    d = _diagram(page)
    assert set(d["chips"]) == {"input", "a.0", "a.1", "b.0", "b.1", "cat", "head", "softmax"}
    edges = {(e["from"], e["to"]) for e in d["edges"]}
    assert edges == {("input", "a.0"), ("a.0", "a.1"), ("input", "b.0"), ("b.0", "b.1"),
                     ("a.1", "cat"), ("b.1", "cat"), ("cat", "head"), ("head", "softmax")}
    assert all(e["d"] for e in d["edges"])  # every edge is drawn
    c = {k: v["box"] for k, v in d["chips"].items()}
    # Side by side: each of a's layers beside (right of) none, b's to the right of a's column.
    assert c["b.0"][0] >= c["a.0"][2] and c["b.1"][0] >= c["a.1"][2]
    # The merge below both branches, the branch chips below the input.
    assert c["cat"][1] >= max(c["a.1"][3], c["b.1"][3]) and c["b.0"][1] >= c["input"][3]
    # The main path (first inputs) is the one the slider walks: marked, b off it.
    on = {k for k, v in d["chips"].items() if "on-path" in v["cls"].split()}
    assert on == set(MAIN)
    state = page.evaluate("window.grandtour.state()")
    assert state["layer"] == "softmax" and state["alignment"] in ("unknown", "available")
    assert page.errors == []


def _go(page, chip: str) -> dict:
    """Click a chip of the diagram and step the page's clock until the view is at that layer."""
    page.click(f"#network .layer[data-name='{chip}']")
    for _ in range(500):
        s = page.evaluate("window.grandtour.step(1 / 4)")
        if s["layer"] == chip and s["layerPos"] == s["layerIndex"]:
            return s
    raise AssertionError(f"the view did not reach {chip}: {s}")


def _view(page, layer: str) -> dict:
    """Open the view of `layer` at the last epoch through the address (a preset: a jump)."""
    page.evaluate("""async (layer) => {
        const { PRESET_VERSION } = await import('./js/presets.js');
        const json = JSON.stringify({ version: PRESET_VERSION, run: window.grandtour.state().runId, layer, epoch: 1 });
        location.hash = `view=${btoa(json).replace(/[+]/g, '-').replace(/[/]/g, '_').replace(/=+$/, '')}`;
    }""", layer)
    for _ in range(500):
        s = page.evaluate("window.grandtour.step(1 / 4)")
        if s["layer"] == layer and s["layerPos"] == s["layerIndex"]:
            return s
    raise AssertionError(f"the view did not reach {layer}: {s}")


def _on_path(page) -> tuple[set, set]:
    d = _diagram(page)
    return ({k for k, v in d["chips"].items() if "on-path" in v["cls"].split()},
            {(e["from"], e["to"]) for e in d["edges"] if "on-path" in e["cls"].split()})


def test_layer_play_follows_the_picked_branch_and_the_merge_says_where_inputs_come_from(open_page):
    page = open_page()
    pause(page)
    page.evaluate("window.grandtour.manual(true)")
    _view(page, "b.1")  # a view of a layer off the main path shows it on the path through it
    assert _on_path(page) == (set(VIA_B), set(pairwise(VIA_B)))
    _view(page, "input")  # on both paths: the path stays
    assert _on_path(page)[0] == set(VIA_B)
    _go(page, "a.0")  # a click off the path picks the path through it, and walks there
    assert _on_path(page) == (set(MAIN), set(pairwise(MAIN)))
    _go(page, "b.0")  # a.0 is not on b's path: the view jumps
    assert _on_path(page)[0] == set(VIA_B)
    _go(page, "input")
    visited, into, status = _play_layers(page)
    assert visited == VIA_B  # exactly the picked path's layers, in order
    cat = into["cat"]
    assert cat["source"] == "b.1" and cat["inputs"] == ["a.1", "b.1"]
    assert cat["from"].startswith("b.1") and "a.1" in cat["from"] and "concatenated" in cat["from"]
    assert cat["exact"] is True and cat["method"] == "merge"
    assert status["cat"].startswith("Transition b.1 (+ a.1: concatenated") and "→ cat" in status["cat"]
    # Every transition along the path was exact, and the diagram draws those edges solid.
    assert set(into) == set(VIA_B[1:]) and all(t["exact"] for t in into.values()), into
    for e in _diagram(page)["edges"]:
        if (e["from"], e["to"]) in set(pairwise(VIA_B)):
            assert "exact" in e["cls"].split() and e["dash"] is None, e
    assert page.errors == []
