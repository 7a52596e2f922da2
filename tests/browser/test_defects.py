"""The defects a new user found (issue 9), each stated as the property that was broken.

Every animation here is driven by the test hook's manual clock (``manual(on)`` and
``step(dt)``): what is asserted follows the clock's seconds, never how fast this machine
draws.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from browser_kit import gl_screenshot, near_class, pause, wait_settled


def _manual(page):
    page.evaluate("window.grandtour.manual(true)")


def _step(page, dt: float) -> dict:
    return page.evaluate("(dt) => window.grandtour.step(dt)", dt)


def _settle(page, dt: float = 0.05, limit: int = 600) -> dict:
    """Step the manual clock until every position reached its target (slices load between steps)."""
    for _ in range(limit):
        s = _step(page, dt)
        if (s["epochPos"] == s["epochIndex"] and s["layerPos"] == s["layerIndex"] and not s["epochPlaying"]
                and not s["layerPlaying"]):
            return s
        page.wait_for_timeout(5)
    raise AssertionError(f"the view did not settle: {s}")


def _slider_click(page, selector: str, frac: float) -> None:
    box = page.locator(selector).bounding_box()
    page.mouse.click(box["x"] + frac * box["width"], box["y"] + box["height"] / 2)


def test_slider_thumb_follows_a_jump_of_the_value(open_page):
    page = open_page()
    pause(page)
    _manual(page)
    for frac, want in ((0.01, 0), (0.99, 2), (0.01, 0)):
        _slider_click(page, "#epoch-slider", frac)
        s = _settle(page)
        assert s["epochIndex"] == want and s["epochPos"] == want
        # The thumb sits where the label says, whatever had focus.
        assert float(page.eval_on_selector("#epoch-slider", "e => e.value")) == want
        assert page.inner_text("#epoch-label").startswith(f"epoch {want}")
    _slider_click(page, "#layer-slider", 0.01)
    s = _settle(page)
    assert s["layerIndex"] == 0
    assert float(page.eval_on_selector("#layer-slider", "e => e.value")) == 0
    assert page.errors == []


def test_a_dropdown_chosen_with_the_mouse_gives_the_keys_back(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    page.focus("#adv-select")
    page.select_option("#adv-select", "default")
    page.wait_for_function("window.grandtour.state().adversarial === 'default'")
    layer = page.evaluate("window.grandtour.state().layerIndex")
    page.keyboard.press("ArrowDown")
    s = page.evaluate("window.grandtour.state()")
    assert s["adversarial"] == "default", "the arrow key changed the dropdown's record"
    assert s["layerIndex"] == layer - 1, "the arrow key did not step the layer"
    # The loss chart's split dropdown too.
    page.focus("#chart-split")
    page.select_option("#chart-split", "train")
    page.keyboard.press("ArrowRight")
    s = page.evaluate("window.grandtour.state()")
    assert s["chartSplit"] == "train"
    assert page.errors == []


def test_shortcuts_do_nothing_behind_the_help_dialog(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    before = page.evaluate("window.grandtour.state()")
    page.keyboard.press("?")
    assert page.is_visible("#help")
    for key in ("ArrowLeft", "ArrowDown", "e", "l", " ", "p", "+", "t"):
        page.keyboard.press(key)
    s = page.evaluate("window.grandtour.state()")
    for k in ("epochIndex", "layerIndex", "epochPlaying", "layerPlaying", "playing", "fitEpoch", "zoom", "splits"):
        assert s[k] == before[k], f"{k} changed behind the help dialog"
    assert s["help"] is True
    page.keyboard.press("Escape")
    assert not page.is_visible("#help")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("window.grandtour.state().epochIndex") == before["epochIndex"] - 1
    assert page.errors == []


def test_adversarial_points_not_shown_say_why(open_page):
    page = open_page()
    pause(page)
    page.select_option("#adv-select", "default")
    page.wait_for_function("window.grandtour.state().adversarial === 'default'")
    wait_settled(page)
    page.wait_for_function("document.querySelector('#status-adversarial').textContent.includes('◆')")
    assert "hidden" not in page.inner_text("#status-adversarial").lower()
    page.keyboard.press("ArrowLeft")  # another epoch: the record's points are not in it
    wait_settled(page)
    page.wait_for_function("document.querySelector('#status-adversarial').textContent.includes('epoch 2')")
    text = page.inner_text("#status-adversarial")
    assert "epoch 2" in text and "not shown" in text, text
    assert "epoch 2" in page.inner_text("#adv-label")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # relu1: a layer the record did not capture
    wait_settled(page)
    page.wait_for_function("document.querySelector('#status-adversarial').textContent.includes('fc2')")
    assert "not shown" in page.inner_text("#status-adversarial")
    assert page.errors == []


def _inside(rect, w, h, tol=0.5):
    return rect["x"] >= -tol and rect["y"] >= -tol and rect["x"] + rect["width"] <= w + tol and \
        rect["y"] + rect["height"] <= h + tol


def test_every_control_is_on_screen_at_900_by_600(open_page):
    page = open_page(width=900, height=600)
    rects = page.evaluate("""() => [...document.querySelectorAll(
        '.topbar button, .topbar select, .topbar input, .timeline button, .timeline select, .timeline input')]
        .filter(e => e.offsetParent !== null && !e.closest('[hidden]'))
        .map(e => { const r = e.getBoundingClientRect();
                    return {id: e.id || e.textContent, x: r.x, y: r.y, width: r.width, height: r.height}; })""")
    assert len(rects) > 15
    off = [r["id"] for r in rects if not _inside(r, 900, 600)]
    assert off == [], f"off screen at 900x600: {off}"
    # The panels keep a usable size.
    v = page.evaluate("window.grandtour.view('train')")
    assert v["width"] >= 200 and v["height"] >= 200, v
    assert page.errors == []


@pytest.mark.parametrize("size", [(1280, 720), (1024, 640), (900, 600)])
def test_the_status_card_is_whole(open_page, size):
    page = open_page(width=size[0], height=size[1])
    wait_settled(page)
    card = page.evaluate("(() => { const r = document.querySelector('.card.status').getBoundingClientRect();"
                         " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
    timeline = page.evaluate("document.querySelector('.timeline').getBoundingClientRect().top")
    assert card["y"] + card["height"] <= timeline + 0.5, "the status card is cut by the timeline"
    assert page.errors == []


def test_points_beyond_the_panel_are_drawn_at_its_edge(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    page.evaluate("window.grandtour.manual(true)")
    for _ in range(8):
        page.keyboard.press("+")  # zoom 1.25^8 ~ 6: many points leave the panel
    _step(page, 0.02)
    v = page.evaluate("window.grandtour.view('train')")
    pos = page.evaluate("window.grandtour.screenPositions('train')")
    colors = page.evaluate("window.grandtour.classColors()")
    img = gl_screenshot(page)
    left, top, w, h = v["left"], v["top"], v["width"], v["height"]
    far = [(k, p) for k, p in enumerate(pos) if p is not None and
           (p[0] < left - 30 or p[0] > left + w + 30 or p[1] < top - 30 or p[1] > top + h + 30)]
    assert len(far) > 20, "the zoom did not push points off the panel"
    text = page.inner_text(".panel[data-split='train'] .panel-info")
    assert "off-panel" in text, text
    any_color = np.zeros(img.shape[:2], bool)
    for rgb in colors:
        any_color |= near_class(img, rgb, tol=60)
    hits = 0
    for _, (x, y) in far:
        cx = int(np.clip(x, left + 1, left + w - 2))
        cy = int(np.clip(y, top + 1, top + h - 2))
        patch = any_color[max(0, cy - 6):cy + 7, max(0, cx - 6):cx + 7]
        hits += bool(patch.any())
    assert hits >= 0.9 * len(far), f"{hits} of {len(far)} far points drawn at the edge"
    assert page.errors == []


def test_one_big_clock_step_advances_several_epochs_and_layers(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    _manual(page)
    # Visit every layer once (the transitions load), then come back to the last one.
    L = int(float(page.eval_on_selector("#layer-slider", "e => e.max"))) + 1
    for _ in range(L - 1):
        page.keyboard.press("ArrowDown")
        _settle(page)
    for _ in range(L - 1):
        page.keyboard.press("ArrowUp")
        _settle(page)
    # Epochs: 2 -> 0 in one step of a second (the slices are loaded: nothing to wait for).
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    s = _step(page, 1.0)
    assert s["epochPos"] == 0, f"one 1 s step moved the epoch only to {s['epochPos']}"
    page.keyboard.press("e")  # play the epochs: 3 per second
    s = _step(page, 1.0)
    assert s["epochPos"] == 2 and not s["epochPlaying"], s
    # Layers: the last to the first in one step.
    for _ in range(L - 1):
        page.keyboard.press("ArrowDown")
    s = _step(page, 3.0)
    assert s["layerPos"] == 0 and s["layerIndex"] == 0, f"one 3 s step moved the layer only to {s['layerPos']}"
    assert s["space"] == "layer" and s["layer"] == "input"
    page.keyboard.press("l")  # play the layers: 0.6 per second
    s = _step(page, 3.5)
    assert s["layerPos"] >= 2, f"3.5 s of layer play moved {s['layerPos']} layers"
    assert page.errors == []


def test_a_finished_run_is_not_reported_live(browser, server):
    """The page trusts the run's own meta (`live`), newer than the list it read first."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        def patch(route, live):
            resp = route.fetch()
            body = resp.json()
            for r in body if isinstance(body, list) else [body]:
                r["live"] = live
            route.fulfill(response=resp, body=json.dumps(body))

        page.route("**/api/runs", lambda r: patch(r, True))  # a stale list
        page.route("**/api/runs/*/meta", lambda r: patch(r, False))  # the run says: finished
        page.goto(server.url)
        page.wait_for_function("window.grandtour !== undefined")
        page.evaluate("window.grandtour.ready")
        sid = page.evaluate("window.grandtour.state().runId")
        text = page.eval_on_selector(f"#run-select option[value='{sid}']", "o => o.textContent")
        assert "live" not in text, text
        assert "live" not in page.inner_text("#run-name")
        assert errors == []
    finally:
        ctx.close()
