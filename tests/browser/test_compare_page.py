"""The comparison panel: small multiples with linked brushing, confusions, the legend."""

from __future__ import annotations

import shutil

import pytest

from browser_kit import EPOCHS, pause

from grandtour import compare
from grandtour.store import Run


@pytest.fixture()
def compare_page(browser, runs, tmp_path):
    """The page on a copy of the digits run with linear and pca pictures of the softmax stored."""
    from grandtour.server import ServerThread, create_app

    path = tmp_path / "digits"
    shutil.copytree(runs["digits"], path)
    run = Run.open(path)
    for method in ("linear", "pca"):
        compare.embed(run, "softmax", method, epochs=list(EPOCHS[:2]), split="test", progress=False)
    with ServerThread(create_app([path]), host="127.0.0.1", port=0) as srv:
        ctx, page, errors = _open(browser, srv.url)
        page.wait_for_function("document.getElementById('compare').compare?.panels().length === 4",
                               timeout=15000)
        yield page, run, errors
        ctx.close()


def _open(browser, url):
    """A 1280 x 900 page on `url`, ready: (context, page, the page's errors)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.grandtour !== undefined", timeout=15000)
    page.evaluate("window.grandtour.ready")
    return ctx, page, errors


def _brush(page, i, fx0=0.05, fy0=0.05, fx1=0.6, fy1=0.6):
    # The comparison card sits below the status card: scroll the sidebar to it first.
    page.evaluate("document.getElementById('compare-card').scrollIntoView({block: 'nearest'})")
    box = page.evaluate(f"document.getElementById('compare').compare.box({i})")
    x0, y0 = box["x"] + fx0 * box["width"], box["y"] + fy0 * box["height"]
    x1, y1 = box["x"] + fx1 * box["width"], box["y"] + fy1 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
    page.mouse.move(x1, y1)
    page.mouse.up()


def test_a_brush_in_any_small_multiple_selects_the_same_points_in_every_panel(compare_page):
    """Linked brushing across the small multiples; the legend's hidden classes; confusions."""
    page, run, errors = compare_page
    pause(page)
    panels = page.evaluate("document.getElementById('compare').compare.panels()")
    assert sorted((p["method"], p["epoch"]) for p in panels) == sorted(
        (m, e) for m in ("linear", "pca") for e in EPOCHS[:2])
    _brush(page, 2)
    page.wait_for_function("(window.grandtour.state().selection.test || []).length > 0")
    chosen = sorted(page.evaluate("window.grandtour.state().selection.test"))
    assert 0 < len(chosen) < run.size("test")
    shown = page.evaluate("document.getElementById('compare').compare.panels()")
    for p in shown:  # every small multiple shows exactly the brushed points selected
        assert sorted(p["selected"]) == chosen, p["method"]
    # The tour's panels draw the store's selection, the key the brush of a tour panel sets too.
    # A brush in another panel replaces it everywhere.
    _brush(page, 0, 0.4, 0.4, 0.95, 0.95)
    page.wait_for_function(f"JSON.stringify(window.grandtour.state().selection.test) !== '{chosen}'")
    again = sorted(page.evaluate("window.grandtour.state().selection.test"))
    for p in page.evaluate("document.getElementById('compare').compare.panels()"):
        assert sorted(p["selected"]) == again
    # Hidden classes are not brushed; the confusions are listed.
    labels = run.labels("test")
    page.click("#legend li[data-class='0']")  # hides class 0
    page.wait_for_function("window.grandtour.state().hidden.includes(0)")
    _brush(page, 1, 0.0, 0.0, 1.0, 1.0)
    page.wait_for_function("(window.grandtour.state().selection.test || []).length > 0")
    chosen = page.evaluate("window.grandtour.state().selection.test")
    assert chosen and all(labels[i] != 0 for i in chosen)
    page.wait_for_function("document.querySelectorAll('#compare-confusions button').length > 0")
    texts = page.eval_on_selector_all("#compare-confusions button", "bs => bs.map(b => b.textContent)")
    assert all("inside" in t for t in texts)
    # Clicking one turns the tour (on the softmax, the page's first layer) to its projection.
    from grandtour.analysis import confusions

    epoch = page.evaluate("window.grandtour.state().epoch")
    target = confusions(run, epoch, "test")[0].projection
    page.click("#compare-confusions button >> nth=0")
    page.wait_for_function(f"""(() => {{ const f = window.grandtour.frame(); const t = {target.tolist()};
        return f.every((row, i) => Math.abs(row[0] - t[i][0]) < 1e-6 && Math.abs(row[1] - t[i][1]) < 1e-6); }})()""",
                           timeout=10000)
    assert not errors, errors


def test_the_hybrid_opens_as_a_run_the_grand_tour_runs_on_with_its_caveat(browser, runs, tmp_path):
    """A stored hybrid (here written straight through the store: any 5-dim coordinates will
    do) is listed in the run menu; opened, the tour runs in its 5 dims, the points drawn
    are its coordinates times the tour's frame, and the status card states the caveat."""
    import numpy as np

    from grandtour.compare.hybrid import CAVEAT, hybrid_key
    from grandtour.compare.storage import Comparisons
    from grandtour.server import ServerThread, create_app

    path = tmp_path / "digits"
    shutil.copytree(runs["digits"], path)
    run = Run.open(path)
    rng = np.random.default_rng(1)
    Z = {e: rng.normal(size=(run.size("test"), 5)).astype(np.float32) for e in EPOCHS}
    with Comparisons.open(run) as store:
        key = hybrid_key("test", "softmax", 5)
        store.start("hybrid", key, {"seed": 0, "dims": 5})
        for e in EPOCHS:
            store.put("hybrid", key, run, e, Z[e], 0.0)
    with ServerThread(create_app([path]), host="127.0.0.1", port=0) as srv:
        ctx, page, errors = _open(browser, srv.url)
        rid = page.evaluate("window.grandtour.state().runs")[1]
        assert rid.endswith("~test-softmax-umap5")
        page.select_option("#run-select", rid)
        ready = f"window.grandtour.state().runId === {rid!r} && window.grandtour.state().status === 'ready'"
        page.wait_for_function(ready, timeout=15000)
        pause(page)
        s = page.evaluate("window.grandtour.state()")
        assert s["layer"] == "softmax.umap5" and s["dim"] == 5 and s["splits"] == ["test"]
        assert page.is_visible("#status-derived") and CAVEAT in page.inner_text("#status-derived")
        F = np.array(page.evaluate("window.grandtour.frame()"))
        got = np.array(page.evaluate("window.grandtour.projectedPositions('test')"), float)
        Ze = Z[s["epoch"]].astype(np.float64)
        want = (Ze - Ze.mean(axis=0)) @ F  # the derived run is centred
        np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(want).max())
        # Back on the source run: no caveat.
        page.select_option("#run-select", s["runs"][0])
        page.wait_for_function(f"window.grandtour.state().runId === {s['runs'][0]!r}", timeout=15000)
        page.wait_for_function("document.getElementById('status-derived').hidden", timeout=15000)
        assert errors == []
        ctx.close()
