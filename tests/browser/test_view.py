"""The page opens on the article's teaser, projects on the GPU exactly as Python does, and
reports what it cannot draw."""

from __future__ import annotations

import numpy as np
import pytest

from browser_kit import (
    CLASS_NAMES,
    EPOCHS,
    NAN_ROW,
    REDUCE_ABOVE,
    drive_frames,
    gl_screenshot,
    near_class,
    panel_box,
    pause,
    screenshot,
)

from grandtour.align import layer_coordinates
from grandtour.store import Run
from grandtour.tour import GrandTour

# float16 data, float32 arithmetic on the GPU: |x GT - page| <= this * sum_i |x_i| |GT_i|.
F16_REL = 2.0**-10


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_opens_on_the_teaser_and_fits_the_screen(open_page, size):
    page = open_page(width=size[0], height=size[1])
    s = page.evaluate("window.grandtour.state()")
    # One run given first: last epoch, softmax, train beside test, tour playing.
    assert (s["runId"], s["layer"], s["epoch"], s["splits"], s["playing"]) == \
        ("digits", "softmax", EPOCHS[-1], ["train", "test"], True)
    m0 = np.array(page.evaluate("window.grandtour.matrix()"))
    page.evaluate("window.grandtour.frames(10)")
    assert page.is_hidden("#loading") and page.is_hidden("#error") and page.is_hidden("#notice")
    m1 = np.array(page.evaluate("window.grandtour.matrix()"))
    assert np.abs(m1 - m0).max() > 1e-4, "the tour is not moving"
    # Usable: nothing scrolls, both panels side by side and large, the timeline on screen.
    dims = page.evaluate("""() => ({sh: document.documentElement.scrollHeight,
        sw: document.documentElement.scrollWidth,
        tl: document.querySelector('.timeline').getBoundingClientRect().bottom,
        tt: document.querySelector('.timeline').getBoundingClientRect().top,
        pb: document.querySelector('.panel').getBoundingClientRect().bottom})""")
    assert dims["sh"] <= size[1] and dims["sw"] <= size[0] and dims["tl"] <= size[1]
    assert dims["pb"] >= dims["tt"] - 20, "the panels do not fill the height down to the timeline"
    train, test = panel_box(page, "train"), panel_box(page, "test")
    assert test["x"] >= train["x"] + train["width"] and abs(train["y"] - test["y"]) < 1
    assert min(train["width"], train["height"]) >= 0.3 * size[1]
    # Pixels: each panel shows every class colour.
    img = gl_screenshot(page).astype(float)
    colors = page.evaluate("window.grandtour.classColors()")
    for box in (train, test):
        crop = img[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]
        seen = [int(near_class(crop, c).sum()) for c in colors]
        assert min(seen) >= 4, f"class colours missing from the panel: {seen}"
    assert page.errors == []


def test_projection_equals_python_grand_tour(open_page, runs):
    """The GPU's x GT[:, :2], read back by transform feedback, is GrandTour.project to
    float16 precision, for a layer whose width is not a multiple of 4 (softmax, 10) and
    for a layer shown in its fixed reduction (input, 64 -> 32)."""
    page = open_page()
    pause(page)
    run = Run.open(runs["digits"])
    for layer in ["softmax", "input"]:
        if page.evaluate("window.grandtour.state().layer") != layer:
            idx = [lay.name for lay in run.layers].index(layer)
            page.fill("#layer-slider", str(idx))
            page.wait_for_function(f"window.grandtour.state().layer === '{layer}' && "
                                   "window.grandtour.state().space === 'layer' && "
                                   f"window.grandtour.state().layerPos === {idx}", timeout=20000)
        n = page.evaluate("window.grandtour.state().dim")
        assert n == (REDUCE_ABOVE if layer == "input" else run.layer(layer).dim)
        tour = GrandTour(n, seed=11).step(0.7)
        GT = tour.matrix
        page.evaluate("(m) => window.grandtour.setMatrix(m)", GT.tolist())
        assert np.abs(np.array(page.evaluate("window.grandtour.matrix()")) - GT).max() < 1e-12
        for split in ("train", "test"):
            # What the viewer shows: the activations, or a wide layer's fixed reduction.
            X = layer_coordinates(run, layer, EPOCHS[-1], split).astype(np.float64)
            got = page.evaluate("(s) => window.grandtour.projectedPositions(s)", split)
            finite = np.isfinite(X).all(axis=1)
            assert [g is None for g in got] == list(~finite)
            expected = tour.project(np.where(finite[:, None], X, 0))[finite]
            got = np.array([g for g in got if g is not None])
            bound = F16_REL * (np.abs(X[finite]) @ np.abs(GT[:, :2])) + 1e-6
            assert np.all(np.abs(got - expected) <= bound), \
                f"{layer}/{split}: max error {np.abs(got - expected).max()}"
    assert page.errors == []


def test_nonfinite_rows_are_counted_shown_and_not_drawn(open_page, runs):
    page = open_page()
    pause(page)
    s = page.evaluate("window.grandtour.state()")
    assert s["nonfinite"] == {"train": 0, "test": 1}
    assert "1 non-finite not drawn" in page.inner_text(".panel[data-split='test'] .panel-info")
    assert "test 1" in page.inner_text("#status-nonfinite")
    assert page.evaluate("window.grandtour.projectedPositions('test')")[NAN_ROW] is None
    # The NaN row is not drawn anywhere: the pixel where a finite point of it would be is
    # whatever else is there; we check the page drew the other 159 and nothing crashed.
    pos = page.evaluate("window.grandtour.screenPositions('test')")
    assert sum(p is None for p in pos) == 1 and len(pos) == 160
    assert page.errors == []


def test_space_toggles_the_tour_and_speed_is_radians_per_second(open_page):
    page = open_page()
    page.locator("body").focus()
    page.keyboard.press(" ")
    page.wait_for_function("!window.grandtour.state().playing")
    m0 = page.evaluate("window.grandtour.matrix()")
    box = panel_box(page, "train")
    rows = slice(int(box["y"]), int(box["y"] + box["height"]))
    cols = slice(int(box["x"]), int(box["x"] + box["width"]))
    crop = lambda img: img[rows, cols]  # noqa: E731
    still = crop(gl_screenshot(page))
    page.evaluate("window.grandtour.frames(8)")
    assert page.evaluate("window.grandtour.matrix()") == m0, "paused tour moved"
    assert np.array_equal(crop(gl_screenshot(page)), still), "the paused picture changed"
    assert page.get_attribute("#tour-play", "aria-pressed") == "false"
    page.keyboard.press(" ")
    page.wait_for_function("window.grandtour.state().playing")
    page.evaluate("window.grandtour.frames(8)")
    assert not np.array_equal(crop(gl_screenshot(page)), still), "the playing picture did not move"
    # Speed: at 0 rad/s the playing tour stands still; '.' makes it faster.
    page.fill("#tour-speed", "0")
    page.wait_for_function("window.grandtour.state().speed === 0")
    m1 = page.evaluate("window.grandtour.matrix()")
    page.evaluate("window.grandtour.frames(6)")
    assert np.abs(np.array(page.evaluate("window.grandtour.matrix()")) - np.array(m1)).max() < 1e-12
    page.fill("#tour-speed", "1")
    page.keyboard.press(".")
    assert page.evaluate("window.grandtour.state().speed") == pytest.approx(1.25)
    assert page.inner_text("#tour-speed-label") == "1.25 rad/s"
    assert page.errors == []
    # Elapsed-time speed: the tour advances by the time between frames (their rAF
    # timestamps), not per frame: twelve frames at 30 fps move it 0.4 s, at 144 fps 1/12 s.
    # The frames are driven with chosen timestamps, so a loaded machine measures the same.
    advance = drive_frames(page)
    for fps in (30, 144):
        t0 = advance(1000 / fps)
        times = [advance(1000 / fps) for _ in range(12)]
        np.testing.assert_allclose(np.array(times) - t0, np.arange(1, 13) / fps, rtol=1e-9)
    assert page.errors == []


def test_split_toggle_shows_one_or_both_panels(open_page):
    page = open_page()
    page.click("#split-toggles button[data-split='test']")
    page.wait_for_function("window.grandtour.state().splits.join() === 'train'")
    assert page.locator(".panel").count() == 1
    page.keyboard.press("t")
    page.wait_for_function("window.grandtour.state().splits.join() === 'train,test'")
    assert page.locator(".panel").count() == 2
    assert page.errors == []


def test_zoom_scales_the_drawing_about_the_centre(open_page):
    page = open_page()
    pause(page)
    before = np.array([p for p in page.evaluate("window.grandtour.screenPositions('train')") if p])
    v = page.evaluate("window.grandtour.view('train')")
    centre = np.array([v["left"] + v["width"] / 2, v["top"] + v["height"] / 2])
    page.click("#zoom-in")
    page.wait_for_function("window.grandtour.state().zoom > 1.2")
    after = np.array([p for p in page.evaluate("window.grandtour.screenPositions('train')") if p])
    np.testing.assert_allclose(after - centre, 1.25 * (before - centre), atol=1e-3)
    page.keyboard.press("0")
    page.wait_for_function("window.grandtour.state().zoom === 1")
    box = panel_box(page, "train")
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.wheel(0, -200)
    page.wait_for_function("window.grandtour.state().zoom > 1")
    assert page.errors == []


def test_help_overlay_lists_the_keys(open_page):
    page = open_page()
    page.keyboard.press("?")
    page.wait_for_selector("#help:not([hidden])")
    text = page.inner_text("#help")
    for what in ("Space", "Play / pause the tour", "Next epoch", "Next layer", "adversarial"):
        assert what in text
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")
    assert page.errors == []


def test_class_names_label_the_softmax_handles(open_page):
    page = open_page()
    pause(page)
    handles = page.evaluate("window.grandtour.handles('train')")
    assert sorted(h["axis"] for h in handles) == list(range(10))
    # Overlay text is drawn on the canvas: check the page knows the labels and the
    # knobs are class-coloured at their positions.
    img = screenshot(page)
    colors = page.evaluate("window.grandtour.classColors()")
    hits = 0
    for h in handles:
        x, y = int(round(h["x"])), int(round(h["y"]))
        patch = img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).astype(float)
        if (np.linalg.norm(patch - np.array(colors[h["axis"]], float), axis=1) < 30).any():
            hits += 1
    assert hits >= 8, f"only {hits} of 10 knobs show their class colour"
    assert CLASS_NAMES[0] == "zero"
    assert page.errors == []


def test_network_diagram_shows_the_reduced_layer_and_its_kept_variance(open_page, runs):
    from grandtour.align import load_reduction

    red = load_reduction(runs["digits"], "input")
    page = open_page()
    chip = page.inner_text(".network .layer[data-index='0']")
    assert f"{red.rank} of 64" in chip and f"{100 * red.variance_kept:.1f}% var" in chip
    assert "current" in page.get_attribute(".network .layer[data-index='4']", "class")
    assert page.errors == []


def test_fullscreen_and_resize(open_page):
    page = open_page()
    page.click("#fullscreen")
    page.wait_for_function("document.fullscreenElement !== null")
    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement === null")
    pause(page)
    before = page.evaluate("window.grandtour.view('train')")
    page.set_viewport_size({"width": 1600, "height": 900})
    page.wait_for_function(f"window.grandtour.view('train').width > {before['width'] + 100}")
    after = page.evaluate("window.grandtour.view('train')")
    # The drawing buffer follows the panel, and the plot scales with it.
    size = page.evaluate("(() => { const c = document.querySelector('.panel canvas.gl'); "
                         "return [c.width, c.height, c.clientWidth]; })()")
    assert size[0] == size[2] and after["handleRadius"] > before["handleRadius"]
    assert page.errors == []
