"""The faithful drawing map (issue 9): one map `screen = c + s (x GT[:, :2])` per panel for
points, handles, centroid and brush; `s` fixed for a layer across its epochs and moving
geometrically across a transition; fits labelled as fits. Asserted on the test hook and on
the pixels, with the page's own clock stepped by hand (no timed assertion).

The run ("simplex") is synthetic and tiny, so every point can be checked: four classes,
the same ten rows in train and test: rows 0-3 are one-hot in the softmax (class c), rows
4-9 are 50/50 between two classes. Layers: hidden (6 dims) -> logits (4) -> softmax (4);
between epochs 0 and 1 only the class-0 rows of hidden change (scaled by 5). hidden ->
logits is a least-squares fit (the layer kinds are unknown to the alignment), logits ->
softmax an exact coordinate-wise map.
"""

from __future__ import annotations

import base64
import json
from itertools import combinations, pairwise

import numpy as np
import pytest

from browser_kit import gl_screenshot, near_class, panel_box, pause, screenshot, wait_settled

from grandtour.tour import GrandTour

C = 4
PAIRS = list(combinations(range(C), 2))
LABELS = np.array(list(range(C)) + [i for i, _ in PAIRS])
N = len(LABELS)
SPLITS = ("train", "test")
TOL_PX = 2.0  # the bound: a one-hot point on its handle, a 50/50 point at the midpoint


def _simplex_rows() -> np.ndarray:
    eye = np.eye(C)
    return np.concatenate([eye, [(eye[i] + eye[j]) / 2 for i, j in PAIRS]])


def _hidden(epoch: int) -> np.ndarray:
    h = np.random.default_rng(3).standard_normal((N, 6)) + LABELS[:, None]
    if epoch >= 1:
        h[LABELS == 0] *= 5.0  # only class 0 changes (and sets the layer's extent)
    return h


def make_simplex_run(path):
    from grandtour.align import align_run
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    P = _simplex_rows()
    layers = [LayerInfo("hidden", "unknown", (6,)), LayerInfo("logits", "unknown", (C,)),
              LayerInfo("softmax", "softmax", (C,))]
    writer = RunWriter.create(path, dataset="custom", class_names=[f"c{c}" for c in range(C)], layers=layers,
                              probes={s: ProbeSet(labels=LABELS) for s in SPLITS}, config={}, overwrite=True)
    for epoch in range(3):
        acts = {"hidden": _hidden(epoch).astype(np.float32),
                "logits": np.log(np.clip(P, 1e-3, 1)).astype(np.float32), "softmax": P.astype(np.float32)}
        writer.write_epoch(epoch, activations={s: acts for s in SPLITS},
                           predictions={s: LABELS for s in SPLITS}, metrics={})
    writer.close()
    with pytest.warns(Warning, match="least-squares"):  # hidden -> logits: the fit this test wants
        align_run(path, progress=False)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's server: the simplex run only (the page opens it)."""
    from grandtour.server import ServerThread, create_app

    run = make_simplex_run(tmp_path_factory.mktemp("faithful") / "simplex")
    with ServerThread(create_app([run]), host="127.0.0.1", port=0) as srv:
        yield srv


# ---------------------------------------------------------------------------- helpers


def _xy(page, split):
    return np.array(page.evaluate("(s) => window.grandtour.screenPositions(s)", split), float)


def _handles(page, split):
    return {h["axis"]: np.array([h["x"], h["y"]]) for h in page.evaluate("(s) => window.grandtour.handles(s)", split)}


def _separated_matrix(page) -> np.ndarray:
    """A softmax view where the ten points (and so the handles) are at least 24 px apart,
    so that each one's pixels can be told from the others'."""
    view = page.evaluate("window.grandtour.view('train')")
    P = _simplex_rows()
    for seed in range(200):
        GT = GrandTour(C, seed=seed).step(0.5).matrix
        xy = P @ GT[:, :2] * view["pxPerUnit"]
        d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) + np.eye(N) * 1e9
        if d.min() >= 24:
            return GT
    raise AssertionError("no separated view found")


def _hide(page, selector, hidden=True):
    page.evaluate("([s, h]) => document.querySelectorAll(s).forEach(c => c.style.visibility = h ? 'hidden' : '')",
                  [selector, hidden])


def _colour_centroid(img, at, rgb, radius=6):
    """Centroid (page px) of the pixels of colour `rgb` within `radius` of `at`, or None."""
    x0, y0 = int(round(at[0])) - radius, int(round(at[1])) - radius
    win = img[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1].astype(float)
    ys, xs = np.nonzero(near_class(win, rgb))
    if len(xs) < 4:
        return None
    return np.array([x0 + xs.mean() + 0.5, y0 + ys.mean() + 0.5])


def _check_simplex(page, label=""):
    """Hook and pixels: row c on handle c, row (i, j) halfway between handles i and j, in every panel."""
    colors = page.evaluate("window.grandtour.classColors()")
    gl = gl_screenshot(page)
    _hide(page, "canvas.gl")
    try:
        overlay = screenshot(page)
    finally:
        _hide(page, "canvas.gl", False)
    for split in SPLITS:
        assert page.evaluate("(s) => window.grandtour.view(s).handleUnit", split) == 1
        xy, hs = _xy(page, split), _handles(page, split)
        want = np.array([hs[c] for c in range(C)] + [(hs[i] + hs[j]) / 2 for i, j in PAIRS])
        err = np.hypot(*(xy - want).T)
        assert err.max() <= TOL_PX, f"{label} {split}: {np.round(err, 2)} px from where the handles say"
        for k in range(N):
            dot = _colour_centroid(gl, want[k], colors[LABELS[k]])
            assert dot is not None and np.hypot(*(dot - want[k])) <= TOL_PX, \
                f"{label} {split}: the dot of row {k} is not drawn at {want[k]} ({dot})"
        for c in range(C):
            knob = _colour_centroid(overlay, hs[c], colors[c])
            assert knob is not None and np.hypot(*(knob - hs[c])) <= TOL_PX, \
                f"{label} {split}: handle {c}'s knob is not drawn at {hs[c]} ({knob})"


# ---------------------------------------------------------------------------- tests


def test_one_hot_points_lie_on_their_handles_and_halves_halfway(open_page):
    page = open_page()
    pause(page)
    s = page.evaluate("window.grandtour.state()")
    assert (s["layer"], s["space"]) == ("softmax", "layer")
    page.evaluate("(m) => window.grandtour.setMatrix(m)", _separated_matrix(page).tolist())
    _check_simplex(page, "as opened")
    # After an axis drag (with the mouse) the map is still one map.
    h = _handles(page, "train")[2]
    page.mouse.move(*h)
    page.mouse.down()
    page.mouse.move(h[0] + 30, h[1] - 18, steps=3)
    page.mouse.up()
    page.evaluate("window.grandtour.frames(2)")
    assert np.hypot(*(_handles(page, "train")[2] - h)) > 10, "the drag did not move the handle"
    _check_simplex(page, "after an axis drag")
    # And after zooming toward the cursor and panning: the user's c and s, the same map.
    box = panel_box(page, "test")
    page.mouse.move(box["x"] + 0.45 * box["width"], box["y"] + 0.55 * box["height"])
    page.mouse.wheel(0, -120)
    page.wait_for_function("window.grandtour.state().zoom > 1.15")
    _check_simplex(page, "after a zoom")
    assert page.errors == []


def test_wheel_zooms_toward_the_cursor_pan_moves_everything_and_reset_restores(open_page):
    page = open_page()
    pause(page)
    before, hs0 = _xy(page, "train"), _handles(page, "train")
    o0 = np.array(page.evaluate("window.grandtour.view('train').origin"))
    box = panel_box(page, "train")
    # Whole pixels: the wheel event reports integer client coordinates.
    q = np.round([box["x"] + 0.7 * box["width"], box["y"] + 0.35 * box["height"]]).tolist()
    page.mouse.move(*q)
    page.mouse.wheel(0, -200)
    page.wait_for_function("window.grandtour.state().zoom > 1.1")
    f = page.evaluate("window.grandtour.state().zoom")
    # Toward the cursor: everything moves away from it by the zoom factor; the spot under
    # the cursor stays.
    np.testing.assert_allclose(_xy(page, "train") - q, f * (before - np.array(q)), atol=1e-3)
    # Panning (middle button, or Alt-drag) moves points, handles and the origin alike.
    zoomed, hz = _xy(page, "train"), _handles(page, "train")
    oz = np.array(page.evaluate("window.grandtour.view('train').origin"))
    start = np.round([box["x"] + 20, box["y"] + box["height"] - 20]).tolist()
    for how in ("middle", "alt"):
        page.mouse.move(*start)
        if how == "middle":
            page.mouse.down(button="middle")
            page.mouse.move(start[0] + 25, start[1] - 10, steps=2)
            page.mouse.up(button="middle")
        else:
            page.keyboard.down("Alt")
            page.mouse.down()
            page.mouse.move(start[0] + 25, start[1] - 10, steps=2)
            page.mouse.up()
            page.keyboard.up("Alt")
    shift = np.array([50.0, -20.0])
    assert page.evaluate("window.grandtour.state().selection") == {}, "a pan must not brush"
    np.testing.assert_allclose(_xy(page, "train"), zoomed + shift, atol=1e-3)
    np.testing.assert_allclose(np.array(page.evaluate("window.grandtour.view('train').origin")), oz + shift, atol=1e-3)
    for c, h in _handles(page, "train").items():
        np.testing.assert_allclose(h, hz[c] + shift, atol=1e-3)
    # The other panel shares the map: same zoom, its origin moved alike.
    vt = page.evaluate("window.grandtour.view('test')")
    assert vt["pxPerUnit"] == pytest.approx(page.evaluate("window.grandtour.view('train').pxPerUnit"))
    # The origin mark is drawn where the origin is (overlay pixels, GL hidden).
    _hide(page, "canvas.gl")
    try:
        img = screenshot(page).astype(float)
    finally:
        _hide(page, "canvas.gl", False)
    o = np.array(page.evaluate("window.grandtour.view('train').origin")).round().astype(int)
    assert (img[o[1] - 1:o[1] + 2, o[0] - 5:o[0] + 6].min(axis=-1) < 235).sum() >= 5, "no origin mark"
    # A double click on empty space resets zoom and pan; so does 0.
    page.mouse.dblclick(*start)
    page.wait_for_function("window.grandtour.state().zoom === 1 && window.grandtour.state().pan.join() === '0,0'")
    np.testing.assert_allclose(_xy(page, "train"), before, atol=1e-3)
    np.testing.assert_allclose(np.array(page.evaluate("window.grandtour.view('train').origin")), o0, atol=1e-6)
    for c, h in _handles(page, "train").items():
        np.testing.assert_allclose(h, hs0[c], atol=1e-3)
    page.keyboard.press("+")
    page.keyboard.press("0")
    page.wait_for_function("window.grandtour.state().zoom === 1")
    assert page.errors == []


def _go_to_layer(page, index):
    page.fill("#layer-slider", str(index))
    wait_settled(page, timeout=20000)
    assert page.evaluate("window.grandtour.state().layerPos") == index


def test_an_epoch_change_moves_only_the_points_whose_activations_changed(open_page):
    page = open_page()
    pause(page)
    _go_to_layer(page, 0)
    page.evaluate("(m) => window.grandtour.setMatrix(m)", GrandTour(6, seed=4).step(0.3).matrix.tolist())
    shots, pos, ppu = {}, {}, {}
    for epoch in (0, 1, 0):
        page.fill("#epoch-slider", str(epoch))
        wait_settled(page)
        pos[epoch] = {s: _xy(page, s) for s in SPLITS}
        ppu[epoch] = page.evaluate("window.grandtour.view('train').pxPerUnit")
        shots[epoch] = gl_screenshot(page).astype(int)
    changed = LABELS == 0
    assert ppu[0] == ppu[1], "the scale changed with the epoch"
    for split in SPLITS:
        d = np.hypot(*(pos[1][split] - pos[0][split]).T)
        assert d[~changed].max() < 0.01, f"{split}: unchanged points moved {d[~changed].max():.3f} px"
        assert d[changed].min() > 3, f"{split}: the points that changed did not move"
    # Pixels: the two pictures differ only around the points that moved.
    diff = np.abs(shots[1] - shots[0]).max(axis=-1) > 0
    near = np.zeros_like(diff)
    for split in SPLITS:
        for p in np.concatenate([pos[0][split][changed], pos[1][split][changed]]):
            x, y = np.round(p).astype(int)
            near[y - 9:y + 10, x - 9:x + 10] = True
    for split in SPLITS:
        b = panel_box(page, split)
        region = np.zeros_like(diff)
        region[int(b["y"]) + 1:int(b["y"] + b["height"]) - 1, int(b["x"]) + 1:int(b["x"] + b["width"]) - 1] = True
        assert (diff & region & ~near).sum() == 0, f"{split}: pixels changed away from the moved points"
        assert (diff & region & near).sum() > 20
    # "Fit each epoch" (off by default) scales to the epoch shown: epoch 0 is smaller, so
    # it is drawn larger; the toggle is saved in the view's link.
    assert page.get_attribute("#fit-epoch", "aria-pressed") == "false"
    page.click("#fit-epoch")
    page.wait_for_function("window.grandtour.state().fitEpoch")
    assert page.get_attribute("#fit-epoch", "aria-pressed") == "true"
    assert page.evaluate("window.grandtour.view('train').pxPerUnit") > 1.2 * ppu[0]
    page.click("#preset-link")
    view = page.url.split("#view=")[1]
    preset = json.loads(base64.urlsafe_b64decode(view + "=" * (-len(view) % 4)))
    assert preset["fitEpoch"] is True
    page.keyboard.press("p")
    page.wait_for_function("!window.grandtour.state().fitEpoch")
    assert page.evaluate("window.grandtour.view('train').pxPerUnit") == ppu[0]
    assert page.errors == []


def _play_transition(page, to):
    """Step the page's clock through the transition into layer `to`: the frames' positions,
    scales and t, from the layer before to the layer after."""
    page.evaluate("window.grandtour.manual(true)")
    frames = []

    def record(state):
        frames.append({"t": state["layerPos"], "transition": state["transition"],
                       "s": page.evaluate("window.grandtour.view('train').pxPerUnit"),
                       "F": np.array(page.evaluate("window.grandtour.frame()")),
                       "xy": {s: _xy(page, s) for s in SPLITS}})

    record(page.evaluate("window.grandtour.step(0)"))
    page.fill("#layer-slider", str(to))
    for _ in range(400):
        state = page.evaluate("window.grandtour.step(1 / 30)")
        if state["layerPos"] != frames[-1]["t"] or state["layerPos"] == to:
            record(state)
        if state["layerPos"] == to and state["space"] == "layer":
            break
    assert frames[-1]["t"] == to, "the transition did not finish"
    return frames


@pytest.mark.parametrize("start", [0, 1])
def test_a_transition_moves_each_point_by_no_more_than_its_own_motion(open_page, start):
    """hidden -> logits (a fit, 6 -> 4 dims) and logits -> softmax (exact, 4 -> 4), frame by
    frame from the layer before into the transition and through it; for the square one
    also out of it into the next layer. Into the narrower layer the frame shown is faded
    onto the narrow layer's dimensions along the transition (tours.js `squeezeFrame`), so
    that the re-base at its end moves nothing: there a point may also move by its data's
    norm times the frame's own change, and it must not jump at the boundary."""
    page = open_page()
    pause(page)
    _go_to_layer(page, start)
    dim = 6 if start == 0 else C
    page.evaluate("(m) => window.grandtour.setMatrix(m)", GrandTour(dim, seed=8).step(0.9).matrix.tolist())
    frames = _play_transition(page, start + 1)
    assert len(frames) > 10, "the transition was not animated"
    first, last = frames[0], frames[-1]
    s_a, s_b = first["s"], last["s"]
    for f in frames[1:-1]:
        t = f["t"] - start
        # The zoom moves geometrically with t: no snap at either end.
        assert f["s"] == pytest.approx(s_a ** (1 - t) * s_b ** t, rel=1e-9)
    inside = frames[1:-1]
    if start == 0:  # the picture at t = 1, before the re-basing: the end of the transition
        last = inside[-1]
        assert last["t"] > 0.95
    for split in SPLITS:
        o = np.array(page.evaluate("(s) => window.grandtour.view(s).origin", split))
        a = first["xy"][split]
        if start == 0:  # extrapolate the straight path to t = 1 from the last frame inside
            t1 = last["t"] - start
            y1 = (last["xy"][split] - o) / last["s"]
            ya = (a - o) / s_a
            yb = ya + (y1 - ya) / t1
        else:
            ya, yb = (a - o) / s_a, (last["xy"][split] - o) / s_b  # the point's data at each end (projected)
        # Its speed on screen: the motion of its own data, plus the zoom's effect on it.
        speed = max(s_a, s_b) * (abs(np.log(s_b / s_a)) * np.maximum(np.hypot(*ya.T), np.hypot(*yb.T))
                                 + np.hypot(*(yb - ya).T))
        # The norm of each point's data in the transition's space bounds |x(t)| (a mix of the two).
        logits = np.log(np.clip(_simplex_rows(), 1e-3, 1))
        norm = np.maximum(np.linalg.norm(_hidden(2), axis=1), np.linalg.norm(logits, axis=1))
        for f0, f1 in pairwise(frames):
            step = np.hypot(*(f1["xy"][split] - f0["xy"][split]).T)
            bound = (f1["t"] - f0["t"]) * speed + 0.5  # + float16 rounding of the two ends' data
            if start == 0 and f0["F"].shape == f1["F"].shape:  # the squeezed frame's own motion
                bound = bound + max(f0["s"], f1["s"]) * norm * np.linalg.norm(f1["F"] - f0["F"], 2)
            k = int(np.argmax(step - bound))
            assert step[k] <= bound[k], \
                (f"{split}: point {k} moved {step[k]:.2f} px between t={f0['t']:.3f} and {f1['t']:.3f} "
                 f"(bound {bound[k]:.2f})")
    assert page.errors == []


def _step_into_transition(page):
    """Step the page's clock until a transition is shown (its data loaded) and under way."""
    for _ in range(400):
        state = page.evaluate("window.grandtour.step(1 / 30)")
        if state["space"] == "transition" and state["layerPos"] % 1 > 0.1:
            return state
    raise AssertionError(f"no transition shown: {state}")


def test_a_fitted_transition_is_labelled_in_the_page(open_page):
    page = open_page()
    pause(page)
    _go_to_layer(page, 0)
    assert page.evaluate("window.grandtour.state().transition") is None
    assert page.is_hidden("#transition-badge")
    page.evaluate("window.grandtour.manual(true)")
    page.fill("#layer-slider", "1")
    state = _step_into_transition(page)
    assert 0 < state["layerPos"] < 1
    tr = state["transition"]
    assert (tr["from"], tr["method"], tr["exact"]) == ("hidden", "lstsq", False)
    assert tr["residual"] > 0 and "least-squares" in tr["note"]
    assert page.inner_text("#transition-badge") == "fit"
    assert "fit" in page.get_attribute("#transition-badge", "class")
    status = page.inner_text("#status-transition")
    assert status.startswith("Fit (least squares, relative residual") and "least-squares" in status
    edge = ".network .edge[data-to='logits']"
    assert "fit" in page.get_attribute(edge, "class")
    assert page.evaluate(f"getComputedStyle(document.querySelector(\"{edge}\")).borderTopStyle") == "dashed"
    # The next transition (logits -> softmax) is exact, and says so.
    for _ in range(200):
        state = page.evaluate("window.grandtour.step(1 / 30)")
        if state["layerPos"] == 1:
            break
    page.fill("#layer-slider", "2")
    state = _step_into_transition(page)
    assert state["transition"]["exact"] is True
    assert state["transition"]["method"] == "coordinatewise"
    assert page.inner_text("#transition-badge") == "exact"
    assert page.inner_text("#status-transition").startswith("Exact (coordinate-wise)")
    assert "exact" in page.get_attribute(".network .edge[data-to='softmax']", "class")
    page.evaluate("window.grandtour.manual(false)")
    wait_settled(page, timeout=20000)
    assert page.evaluate("window.grandtour.state().transition") is None and page.is_hidden("#transition-badge")
    assert page.errors == []
