"""The HTML export (``grandtour export RUN --html``): one file that, opened from file:// with
every network request refused, draws the run, tours, and changes epoch and layer from the
data it carries."""

from __future__ import annotations

import numpy as np

from browser_kit import EPOCHS, gl_screenshot, near_class, panel_box, wait_settled

from grandtour.cli import main
from grandtour.store import Run

LAYERS = ["fc1", "relu1", "fc2", "softmax"]  # the input left out: a subset of the run's layers


def _open_offline(browser, path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    page = ctx.new_page()
    page.errors, asked = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            asked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    page.wait_for_function("window.grandtour !== undefined", timeout=60000)
    page.evaluate("window.grandtour.ready")
    return ctx, page, asked


def test_export_opens_offline_draws_tours_and_changes_epoch(browser, runs, tmp_path, capsys):
    out = tmp_path / "digits.html"
    assert main(["export", str(runs["digits"]), "--html", str(out), "--layers", *LAYERS]) == 0
    printed = capsys.readouterr().out
    size = out.stat().st_size
    assert (f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB") in printed
    html = out.read_text()
    assert "<script type=\"module\" src=" not in html and 'rel="stylesheet"' not in html  # nothing to fetch

    ctx, page, asked = _open_offline(browser, out)
    try:
        s = page.evaluate("window.grandtour.state()")
        assert s["status"] == "ready", s["error"]
        assert (s["layer"], s["epoch"], s["splits"]) == ("softmax", EPOCHS[-1], ["train", "test"])
        # Draws: each class colour in each panel.
        img = gl_screenshot(page).astype(float)
        colors = page.evaluate("window.grandtour.classColors()")
        for split in ("train", "test"):
            box = panel_box(page, split)
            crop = img[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]
            assert min(int(near_class(crop, c).sum()) for c in colors) >= 4
        # Tours: the page's own clock, stepped.
        m0 = np.array(page.evaluate("window.grandtour.matrix()"))
        page.evaluate("window.grandtour.manual(true); window.grandtour.step(0.5)")
        m1 = np.array(page.evaluate("window.grandtour.matrix()"))
        assert np.abs(m1 - m0).max() > 1e-3, "the tour does not move"
        page.evaluate("window.grandtour.manual(false)")
        if page.evaluate("window.grandtour.state().playing"):
            page.click("#tour-play")
        # Epoch 0 from the slider: the points are the embedded epoch-0 activations.
        page.fill("#epoch-slider", "0")
        wait_settled(page, timeout=60000)
        assert page.evaluate("window.grandtour.state().epoch") == EPOCHS[0]
        GT = np.array(page.evaluate("window.grandtour.matrix()"))
        pos = page.evaluate("window.grandtour.projectedPositions('train')")
        X = Run.open(runs["digits"]).activations("softmax", EPOCHS[0], "train").astype(np.float64)
        want = X @ GT[:, :2]
        got = np.array(pos, dtype=float)
        assert np.abs(got - want).max() <= 2.0**-9 * (np.abs(X) @ np.abs(GT[:, :2])).max()
        # Another layer through its transition: the alignment was exported too.
        page.fill("#layer-slider", str(LAYERS.index("fc2")))
        wait_settled(page, timeout=60000)
        s = page.evaluate("window.grandtour.state()")
        assert (s["layer"], s["alignment"]) == ("fc2", "available")
        assert asked == [], f"the export asked the network for {asked}"
        assert page.errors == []
    finally:
        ctx.close()


def test_export_refuses_what_is_over_its_budget_before_writing(runs, tmp_path, capsys):
    out = tmp_path / "big.html"
    assert main(["export", str(runs["digits"]), "--html", str(out), "--max-size", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "over the 0.01 MB budget" in err and "--max-size" in err
    assert not out.exists()
    assert main(["export", str(runs["digits"]), "--html", str(out), "--epochs", "7"]) == 2
    assert "no epoch 7" in capsys.readouterr().err
