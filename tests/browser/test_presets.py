"""Presets (a view saved to a file or the URL and loaded back exactly), the run picker,
runs without alignment, and runs that are still training."""

from __future__ import annotations

import json

import numpy as np

from browser_kit import EPOCHS, growing_epoch, pause, wait_settled

from grandtour.store import RunWriter
from grandtour.tour import GrandTour


def _set_up_a_view(page, layer_index=None, dim=10):
    """Pause, go to epoch 1 (and a layer), hide class 2, select class 5, zoom, set GT."""
    pause(page)
    if layer_index is not None:
        page.fill("#layer-slider", str(layer_index))
    page.fill("#epoch-slider", "1")
    wait_settled(page, timeout=20000)
    page.click("#legend li[data-class='2']")
    page.click("#legend li[data-class='5']", modifiers=["Shift"])
    page.click("#zoom-in")
    GT = GrandTour(dim, seed=5).step(1.3).matrix
    page.evaluate("(m) => window.grandtour.setMatrix(m)", GT.tolist())
    page.evaluate("window.grandtour.frames(2)")
    return GT, page.evaluate("window.grandtour.state()")


def _same_view(page, GT, before):
    s = page.evaluate("window.grandtour.state()")
    for key in ("runId", "layer", "epoch", "splits", "hidden", "selection", "zoom", "display"):
        assert s[key] == before[key], key
    assert not s["playing"], "a loaded view must stay where it was saved"
    # Exactly the same matrix: float64 values round-trip bit for bit.
    assert np.array_equal(np.array(page.evaluate("window.grandtour.matrix()")), GT)


def test_url_preset_round_trips_exactly(open_page):
    page = open_page()
    GT, before = _set_up_a_view(page)
    page.click("#preset-link")
    url = page.url
    assert "#view=" in url
    assert "address now holds this view" in page.inner_text("#notice")
    other = open_page(url.split("/", 3)[3])
    other.evaluate("window.grandtour.frames(6)")  # a few frames drawn, not a wait on the clock
    _same_view(other, GT, before)
    # The shared page draws the same picture: same GPU positions.
    a = page.evaluate("window.grandtour.projectedPositions('train')")
    b = other.evaluate("window.grandtour.projectedPositions('train')")
    assert a == b
    assert page.errors == [] and other.errors == []


def test_file_preset_round_trips_exactly_on_another_layer(open_page, tmp_path):
    page = open_page()
    GT, before = _set_up_a_view(page, layer_index=1, dim=24)  # fc1
    with page.expect_download() as dl:
        page.click("#preset-save")
    path = tmp_path / "view.json"
    dl.value.save_as(path)
    preset = json.loads(path.read_text())
    assert (preset["layer"], preset["epoch"], preset["tour"]["dim"]) == ("fc1", EPOCHS[1], 24)
    # Change everything, then load the file.
    page.keyboard.press("Escape")
    page.fill("#layer-slider", "2")
    page.fill("#epoch-slider", "0")
    page.click("#legend li[data-class='2']")
    wait_settled(page, timeout=20000)
    page.set_input_files("#preset-file", str(path))
    page.wait_for_function("window.grandtour.state().layer === 'fc1'")
    page.evaluate("window.grandtour.frames(2)")
    _same_view(page, GT, before)
    assert page.errors == []


def test_a_damaged_preset_is_reported_not_applied(open_page, tmp_path):
    page = open_page()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "layer": "no-such-layer", "epoch": 0}))
    page.set_input_files("#preset-file", str(bad))
    page.wait_for_function("window.grandtour.state().notice.includes('no-such-layer')")
    assert page.evaluate("window.grandtour.state().layer") == "softmax"
    (tmp_path / "junk.json").write_text("{not json")
    page.set_input_files("#preset-file", str(tmp_path / "junk.json"))
    page.wait_for_function("window.grandtour.state().notice.includes('not a JSON preset')")
    assert page.errors == []


def test_run_picker_and_a_run_without_alignment(open_page):
    page = open_page()
    assert page.is_visible("#run-select")
    page.select_option("#run-select", "plain")
    page.wait_for_function("window.grandtour.state().runId === 'plain' && window.grandtour.state().status === 'ready'")
    s = page.evaluate("window.grandtour.state()")
    # A one-split import opens on its last layer and epoch, one panel, no thumbnails.
    assert (s["splits"], s["layer"], s["epoch"], s["dim"]) == (["train"], "out", 1, 3)
    assert page.locator(".panel").count() == 1
    assert page.is_disabled("#display-images") and page.is_hidden("#adv-track")
    # Not aligned: the layer slider jumps, and the page says why and what to do.
    page.keyboard.press("ArrowDown")
    page.wait_for_function("window.grandtour.state().layer === 'hidden'")
    s = page.evaluate("window.grandtour.state()")
    assert s["alignment"] == "missing" and s["space"] == "layer" and s["dim"] == 5
    notice = page.inner_text("#notice")
    assert "grandtour align" in notice and "jumps" in notice
    assert "not aligned" in page.inner_text("#network-note")
    # The browser logs the transition's 404 (the expected answer for a run not aligned).
    assert [e for e in page.errors if "status of 404" not in e] == []


def test_a_run_still_training_shows_new_epochs(open_page, runs):
    page = open_page()
    page.select_option("#run-select", "growing")
    page.wait_for_function("window.grandtour.state().runId === 'growing' "
                           "&& window.grandtour.state().status === 'ready'")
    assert page.evaluate("window.grandtour.state().epochs") == [0, 1]
    with RunWriter.open(runs["growing"]) as writer:
        growing_epoch(writer, 2)
    # The page polls the meta of a live run every few seconds and follows the last epoch.
    page.wait_for_function("window.grandtour.state().epochs.length === 3", timeout=15000)
    page.wait_for_function("window.grandtour.state().epoch === 2 && window.grandtour.state().epochPos === 2",
                           timeout=10000)
    assert page.get_attribute("#epoch-slider", "max") == "2"
    assert page.errors == []
