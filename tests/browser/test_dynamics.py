"""Training, layer and adversarial dynamics: sliders, play buttons, the loss chart, and
what the GPU draws in between (interpolated slices, re-based tours)."""

from __future__ import annotations

import numpy as np

from browser_kit import ADV_M, ADV_STEPS, EPOCHS, REDUCE_ABOVE, gl_screenshot, pause, wait_settled

from grandtour.store import Run

F16_REL = 2.0**-10


def _close(got, X, GT, what):
    got = np.array(got, float)
    bound = F16_REL * (np.abs(X) @ np.abs(GT[:, :2])) + 1e-6
    err = np.abs(got - X @ GT[:, :2])
    assert np.all(err <= bound), f"{what}: max error {err.max()}"


def _snapshot(page, split="train", key="genuine"):
    """State, matrix and GPU positions read in one go (one JS task: one consistent frame)."""
    return page.evaluate("""([split, key]) => ({s: window.grandtour.state(), m: window.grandtour.matrix(),
        p: window.grandtour.projectedPositions(split, key)})""", [split, key])


def test_epoch_slider_interpolates_with_the_same_projection(open_page, runs):
    run = Run.open(runs["digits"])
    X = {e: run.activations("softmax", e, "train").astype(np.float64) for e in EPOCHS}
    page = open_page()
    pause(page)
    GT = np.array(page.evaluate("window.grandtour.matrix()"))
    last_picture = gl_screenshot(page)
    page.fill("#epoch-slider", "0")
    seen_mid = False
    for _ in range(200):
        snap = _snapshot(page)
        pos = snap["s"]["epochPos"]
        # The projection never changes while the epochs move.
        assert np.abs(np.array(snap["m"]) - GT).max() < 1e-12
        i0 = int(np.floor(pos))
        t = pos - i0
        if 0 < t < 1:  # between two epochs: the GPU mixes the two slices
            seen_mid = True
            mixed = (1 - t) * X[EPOCHS[i0]] + t * X[EPOCHS[i0 + 1]]
            _close(snap["p"], mixed, GT, f"epoch position {pos}")
        if pos == 0:
            break
    assert seen_mid, "the epoch change was not animated"
    _close(snap["p"], X[EPOCHS[0]], GT, "epoch 0")
    assert page.inner_text("#epoch-label").startswith(f"epoch {EPOCHS[0]}")
    # The pixels changed with the data (the projection did not).
    diff = np.abs(gl_screenshot(page).astype(int) - last_picture.astype(int)).max(axis=-1)
    assert (diff > 60).sum() > 200
    assert page.errors == []


def test_epoch_play_runs_to_the_last_epoch_and_arrows_step(open_page):
    page = open_page()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("window.grandtour.state().epochIndex === 1")
    page.keyboard.press("ArrowLeft")
    wait_settled(page)
    assert page.evaluate("window.grandtour.state().epoch") == EPOCHS[0]
    page.click("#epoch-play")
    assert page.evaluate("window.grandtour.state().epochPlaying")
    assert page.get_attribute("#epoch-play", "aria-pressed") == "true"
    page.wait_for_function("!window.grandtour.state().epochPlaying", timeout=10000)
    s = page.evaluate("window.grandtour.state()")
    assert s["epochPos"] == len(EPOCHS) - 1 and s["epoch"] == EPOCHS[-1]
    page.keyboard.press("e")  # play again from the last epoch: starts over from the first
    page.wait_for_function("window.grandtour.state().epochPlaying")
    page.keyboard.press("e")
    page.wait_for_function("!window.grandtour.state().epochPlaying")
    assert page.errors == []


def test_loss_chart_click_jumps_and_its_marker_follows(open_page, runs):
    page = open_page()
    marker = page.locator("#chart line.epoch-marker")
    x_last = float(marker.get_attribute("x1"))
    paths = page.locator("#chart path[data-class]")
    assert paths.count() == 10
    box = page.locator("#chart").bounding_box()
    page.mouse.click(box["x"] + 36, box["y"] + box["height"] / 2)  # the first epoch's x
    page.wait_for_function("window.grandtour.state().epochIndex === 0")
    wait_settled(page)
    assert float(marker.get_attribute("x1")) < x_last - 50
    # The chart shows the test split's per-class loss by default; a hidden class leaves it.
    assert page.evaluate("window.grandtour.state().chartSplit") == "test"
    page.click("#legend li[data-class='4']")
    page.wait_for_function("document.querySelectorAll('#chart path[data-class]').length === 9")
    page.select_option("#chart-split", "train")
    assert page.evaluate("window.grandtour.state().chartSplit") == "train"
    assert page.errors == []


def _aligned() -> bool:
    try:
        import grandtour.align  # noqa: F401
    except ImportError:
        return False
    return True


def test_layer_slider_animates_transitions_and_rebases_the_tour(open_page, runs):
    """softmax -> fc2 -> relu1 -> fc1 -> input (shown in its 32-dim reduction) plays each
    transition ((1 - t) start + t end, drawn by the GPU) and re-bases the tour at every
    boundary so that the picture does not jump: with the tour paused, each transition's
    matrix G satisfies end G = X_layer GT_layer and start G = X_prev GT_prev (first two
    columns), GT_prev being the matrix the page then shows the previous layer with."""
    assert _aligned(), "grandtour.align is missing: layer transitions cannot be tested"
    from grandtour.align import layer_coordinates, load_transition

    run = Run.open(runs["digits"])
    names = run.layer_names
    epoch = EPOCHS[-1]
    page = open_page()
    pause(page)
    spaces = {}  # tour space -> (matrix, a snapshot inside it)
    for target in (3, 2, 1, 0):
        page.fill("#layer-slider", str(target))
        for _ in range(300):
            snap = page.evaluate("""() => { const s = window.grandtour.state();
                return {s, m: window.grandtour.matrix(),
                        p: s.space === 'transition' ? window.grandtour.projectedPositions('train') : null}; }""")
            st = snap["s"]
            if st["space"] == "layer" or 0.1 < st["layerPos"] % 1 < 0.9:
                spaces.setdefault(st["tourSpace"], (np.array(snap["m"]), snap))
            if st["layerPos"] == target and st["space"] == "layer":
                break
    assert st["alignment"] == "available", f"alignment not used: {st['notice']}"
    assert list(spaces) == ["softmax", "transition:softmax", "fc2", "transition:fc2", "relu1",
                            "transition:relu1", "fc1", "transition:fc1", "input"], list(spaces)
    X = {name: layer_coordinates(run, name, epoch, "train").astype(np.float64) for name in names}
    ok = np.isfinite(X["softmax"]).all(axis=1)
    for k in range(1, len(names)):
        into, prev = names[k], names[k - 1]
        t = load_transition(run, into, epoch, "train")
        G = spaces[f"transition:{into}"][0]
        start, end = t.start.astype(np.float64)[ok], t.end.astype(np.float64)[ok]
        for side, data, layer in (("end", end, into), ("start", start, prev)):
            want = X[layer][ok] @ spaces[layer][0][:, :2]
            err = np.abs(data @ G[:, :2] - want).max()
            assert err < 1e-2 * np.abs(want).max(), f"{side} of the transition into {into} jumps by {err}"
        # What the GPU drew inside the transition is the mix at its t.
        snap = spaces[f"transition:{into}"][1]
        mix = snap["s"]["layerPos"] - (k - 1)
        drawn = np.array([p for p, keep in zip(snap["p"], ok) if keep])
        want = ((1 - mix) * start + mix * end) @ G[:, :2]
        assert np.abs(drawn - want).max() < 1e-2 * np.abs(want).max(), f"transition into {into} at t={mix}"
    # On the reduced input, the page draws its 32 coordinates with an orthogonal 32 x 32 GT.
    GT = np.array(page.evaluate("window.grandtour.matrix()"))
    assert GT.shape == (REDUCE_ABOVE, REDUCE_ABOVE)
    assert np.abs(GT.T @ GT - np.eye(REDUCE_ABOVE)).max() < 1e-9
    _close(page.evaluate("window.grandtour.projectedPositions('train')"), X["input"], GT, "input")
    assert "aligned" in page.inner_text("#network-note")
    assert page.errors == []


def test_layer_play_and_arrow_keys_walk_the_network(open_page):
    page = open_page()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("window.grandtour.state().layerIndex === 3")
    wait_settled(page, timeout=20000)
    assert page.evaluate("window.grandtour.state().layer") == "fc2"
    assert "current" in page.get_attribute(".network .layer[data-index='3']", "class")
    page.click(".network .layer[data-index='2']")  # the diagram moves the view too
    wait_settled(page, timeout=20000)
    assert page.evaluate("window.grandtour.state().layer") == "relu1"
    page.click("#layer-play")
    assert page.evaluate("window.grandtour.state().layerPlaying")
    assert page.get_attribute("#layer-play", "aria-pressed") == "true"
    page.wait_for_function("!window.grandtour.state().layerPlaying", timeout=30000)
    s = page.evaluate("window.grandtour.state()")
    assert s["layer"] == "softmax" and s["layerPos"] == 4 and s["dim"] == 10
    assert page.errors == []


def test_adversarial_steps_are_drawn_apart_and_follow_the_slider(open_page, runs):
    run = Run.open(runs["digits"])
    rec = run.adversarial("default")
    page = open_page()
    pause(page)
    page.fill("#epoch-slider", "0")
    page.select_option("#adv-select", "default")
    page.wait_for_function("window.grandtour.state().adversarial === 'default'")
    wait_settled(page)
    s = page.evaluate("window.grandtour.state()")
    # The record's epoch, split and layer are shown; its points are an extra set.
    assert (s["epoch"], "test" in s["splits"], s["layer"], s["advSteps"]) == (rec.epoch, True, "softmax", ADV_STEPS)
    assert f"{ADV_M} adversarial" in page.inner_text(".panel[data-split='test'] .panel-info")
    GT = np.array(page.evaluate("window.grandtour.matrix()"))
    for step in (0, 4):
        page.fill("#adv-slider", str(step))
        page.wait_for_function(f"window.grandtour.state().advPos === {step}")
        got = page.evaluate("window.grandtour.projectedPositions('test', 'adversarial')")
        _close(got, rec.activations("softmax", step).astype(np.float64), GT, f"adversarial step {step}")
    # Marked apart: a dark-outlined diamond at each adversarial point (genuine dots have none).
    pos = np.array(page.evaluate("window.grandtour.projectedPositions('test', 'adversarial')"))
    view = page.evaluate("window.grandtour.view('test')")
    img = gl_screenshot(page).astype(float)
    outlined = 0
    for x, y in pos:
        sx = view["left"] + view["width"] / 2 + (x - view["center"][0]) * view["pxPerUnit"]
        sy = view["top"] + view["height"] / 2 - (y - view["center"][1]) * view["pxPerUnit"]
        patch = img[int(sy) - 7:int(sy) + 8, int(sx) - 7:int(sx) + 8].reshape(-1, 3)
        outlined += (patch.max(axis=1) < 50).any()
    assert outlined >= ADV_M - 1
    # Play runs to the last step; ']' and '[' step.
    page.keyboard.press("a")
    page.wait_for_function("window.grandtour.state().advPlaying")
    page.wait_for_function(f"!window.grandtour.state().advPlaying && window.grandtour.state().advPos === {ADV_STEPS}",
                           timeout=10000)
    page.keyboard.press("[")
    page.wait_for_function(f"window.grandtour.state().advPos === {ADV_STEPS - 1}")
    assert page.inner_text("#adv-label") == f"step {ADV_STEPS - 1} of {ADV_STEPS}"
    page.select_option("#adv-select", "")
    page.wait_for_function("window.grandtour.state().adversarial === null")
    page.evaluate("window.grandtour.frames(2)")
    assert "adversarial" not in page.inner_text(".panel[data-split='test'] .panel-info")
    assert page.errors == []


def test_adversarial_points_follow_the_layer(open_page, runs):
    """The record has fc2 and softmax: on fc2 its points are fc2's activations."""
    run = Run.open(runs["digits"])
    rec = run.adversarial("default")
    page = open_page()
    pause(page)
    page.select_option("#adv-select", "default")
    page.wait_for_function("window.grandtour.state().adversarial === 'default'")
    page.fill("#layer-slider", "3")
    wait_settled(page, timeout=20000)
    assert page.evaluate("window.grandtour.state().layer") == "fc2"
    page.fill("#adv-slider", "2")
    page.wait_for_function("window.grandtour.state().advPos === 2")
    GT = np.array(page.evaluate("window.grandtour.matrix()"))
    got = page.evaluate("window.grandtour.projectedPositions('test', 'adversarial')")
    _close(got, rec.activations("fc2", 2).astype(np.float64), GT, "fc2 adversarial")
    assert page.errors == []
