"""The researcher's tools (issue 9): colour by label / prediction / correctness, only the
misclassified, find, a marked point, point size and opacity, hidden handles, labels that
do not overlap, the loss chart's titles and readout, the softmax confidence, adversarial
lines, PNG and SVG export, the re-base into a narrower layer. Each from the mouse and from
the keyboard, asserted on the test hook and, where it shows, on the pixels. Animations run
on the hook's manual clock: nothing here depends on how fast this machine draws.

The run is conftest's "digits" (train 240, test 160; the last epoch's softmax is sharp).
"""

from __future__ import annotations

import io
import json
import urllib.request
import xml.etree.ElementTree as ET
from importlib import resources
from itertools import pairwise

import numpy as np

from browser_kit import (
    CLASS_NAMES,
    faded_away_from,
    gl_screenshot,
    near_class,
    panel_box,
    pause,
    screenshot,
    wait_settled,
)

C = len(CLASS_NAMES)
PALETTE = json.loads(resources.files("grandtour").joinpath("web", "palette.json").read_text("utf-8"))


def _api(server, path: str):
    with urllib.request.urlopen(server.url + "api/runs/digits/" + path) as r:
        return r.read(), r.headers


def _ints(server, path: str) -> np.ndarray:
    return np.frombuffer(_api(server, path)[0], "<i2").astype(int)


def _floats(server, path: str) -> np.ndarray:
    body, headers = _api(server, path)
    n, d = (int(v) for v in headers["X-Shape"].split(","))
    return np.frombuffer(body, "<f2").astype(float).reshape(n, d) * float(headers["X-Scale"])


def _state(page) -> dict:
    return page.evaluate("window.grandtour.state()")


def _xy(page, split) -> list:
    return page.evaluate("(s) => window.grandtour.screenPositions(s)", split)


def _isolated(xy: list, within: dict, margin: float = 30) -> int:
    """The finite point farthest from every other one, well inside the panel box."""
    pts = np.array([p if p is not None else [np.nan, np.nan] for p in xy], float)
    d = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
    d[np.isnan(d)] = np.inf
    np.fill_diagonal(d, np.inf)
    inside = ((pts[:, 0] > within["x"] + margin) & (pts[:, 0] < within["x"] + within["width"] - margin) &
              (pts[:, 1] > within["y"] + margin) & (pts[:, 1] < within["y"] + within["height"] - margin))
    score = np.where(inside, d.min(axis=1), -1)
    return int(np.argmax(score))


def _panels(page, img: np.ndarray) -> np.ndarray:
    """The pixels of the panels' stages only (the sidebar's swatches and chart are not points)."""
    out = np.full_like(img, 255)
    for split in ("train", "test"):
        b = panel_box(page, split)
        x0, y0 = int(b["x"]) + 1, int(b["y"]) + 1
        x1, y1 = int(b["x"] + b["width"]) - 1, int(b["y"] + b["height"]) - 1
        out[y0:y1, x0:x1] = img[y0:y1, x0:x1]
    return out


def _open_menu(page) -> None:
    if not _state(page)["viewMenu"]:
        page.click("#view-menu-button")
    page.wait_for_selector("#view-menu", state="visible")


def _close_menu(page) -> None:
    """Esc closes the menu. The cursor then rests on whatever lay under the control it
    clicked (a legend row, say, whose hover fades every other class): park it on the
    page's margin, where it hovers nothing."""
    page.keyboard.press("Escape")
    assert not _state(page)["viewMenu"]
    page.mouse.move(1, page.viewport_size["height"] - 1)
    page.wait_for_function("window.grandtour.state().highlight === -1")


def test_colour_by_and_only_misclassified_from_menu_and_keys(open_page, server):
    page = open_page()
    pause(page)
    wait_settled(page)
    labels = _ints(server, "labels/test")
    preds = _ints(server, "predictions/2/test")
    wrong = preds != labels
    assert 0 < wrong.sum() < len(labels), "the fixture needs both right and wrong predictions"
    # Mouse: the segmented control in the View menu.
    _open_menu(page)
    page.click("#color-by [data-mode=correctness]")
    page.wait_for_function("window.grandtour.state().colorBy === 'correctness'")
    page.wait_for_function(f"window.grandtour.colorIndices('test').every(k => k === {C} || k === {C + 1})")
    got = np.array(page.evaluate("window.grandtour.colorIndices('test')"))
    np.testing.assert_array_equal(got, np.where(wrong, C + 1, C))
    # Pixels: the wrong colour is drawn, the class colours are not.
    _close_menu(page)
    img = _panels(page, gl_screenshot(page))
    assert near_class(img, PALETTE["wrong"]).sum() > 20
    assert near_class(img, PALETTE["classes"][1]).sum() == 0
    # Keys: c cycles label -> prediction -> correctness -> label.
    page.keyboard.press("c")
    assert _state(page)["colorBy"] == "label"
    np.testing.assert_array_equal(page.evaluate("window.grandtour.colorIndices('test')"), labels)
    page.keyboard.press("c")
    assert _state(page)["colorBy"] == "prediction"
    np.testing.assert_array_equal(page.evaluate("window.grandtour.colorIndices('test')"), C + 3 + preds)
    # Only the misclassified (m): the others are not drawn, nor pickable.
    drawn_before = (_panels(page, gl_screenshot(page)) < 235).any(axis=-1).sum()
    page.keyboard.press("m")
    assert _state(page)["onlyMisclassified"]
    got = np.array(page.evaluate("window.grandtour.colorIndices('test')"))
    np.testing.assert_array_equal(got == C + 2, ~wrong)
    drawn_after = (_panels(page, gl_screenshot(page)) < 235).any(axis=-1).sum()
    assert drawn_after < 0.8 * drawn_before
    # ... and from the menu's toggle, back off.
    _open_menu(page)
    page.click("#only-wrong")
    assert not _state(page)["onlyMisclassified"]
    assert page.errors == []


def test_legend_hover_means_the_labelled_class_in_every_colour_mode(open_page, server):
    """Colour by correctness: hovering class c keeps its labelled points in their colours
    (correct / misclassified), drawn on top, and fades every other point: the legend's
    entries are the labels, as hiding and selecting are."""
    page = open_page()
    pause(page)
    wait_settled(page)
    labels = _ints(server, "labels/test")
    preds = _ints(server, "predictions/2/test")
    _open_menu(page)
    page.click("#color-by [data-mode=correctness]")
    page.keyboard.press("Escape")
    page.wait_for_function(f"window.grandtour.colorIndices('test').every(k => k === {C} || k === {C + 1})")
    c = int(np.bincount(labels).argmax())
    page.hover(f"#legend li[data-class='{c}']")
    page.wait_for_function(f"window.grandtour.state().highlight === {c}")
    page.evaluate("window.grandtour.frames(2)")
    img = gl_screenshot(page).astype(float)
    pos = _xy(page, "test")
    own = [(p, preds[k] == labels[k]) for k, p in enumerate(pos) if p and labels[k] == c]
    others = [p for k, p in enumerate(pos) if p and labels[k] != c]
    assert len(own) > 5 and len(others) > 20
    want = {True: np.array(PALETTE["correct"], float), False: np.array(PALETTE["wrong"], float)}
    ok = [near_class(img[int(round(y)), int(round(x))][None], want[right])[0] for (x, y), right in own]
    assert np.mean(ok) > 0.9, f"{np.mean(ok):.2f} of class {c}'s points show their correctness colour"
    faded = faded_away_from(img, others, [p for p, _ in own])
    assert len(faded) > 10 and np.mean(faded) > 0.9
    page.mouse.move(5, 5)
    page.wait_for_function("window.grandtour.state().highlight === -1")
    assert page.errors == []


def test_find_and_click_mark_a_point_across_layers_and_epochs(open_page, server):
    page = open_page()
    pause(page)
    wait_settled(page)
    # Find by index (keyboard: / focuses the box).
    page.keyboard.press("/")
    page.keyboard.type("17")
    page.keyboard.press("Enter")
    s = _state(page)
    assert s["selectedPoint"] == {"split": "train", "index": 17}
    assert s["selection"] == {"train": [17]}
    np.testing.assert_allclose(page.evaluate("window.grandtour.marked('train')"), _xy(page, "train")[17], atol=1)
    assert "point 17 of train" in page.inner_text("#search-result")
    # Find a class: by label number and by name.
    labels = {s: _ints(server, f"labels/{s}") for s in ("train", "test")}
    for query in ("label:3", "three"):
        page.fill("#search", query)
        page.press("#search", "Enter")
        sel = _state(page)["selection"]
        for split in ("train", "test"):
            assert sel[split] == np.flatnonzero(labels[split] == 3).tolist(), query
    page.fill("#search", "label:no-such-class")
    page.press("#search", "Enter")
    assert "nothing matches" in page.inner_text("#search-result")
    # Click a point: it is marked, and stays marked at another layer and epoch. (The class
    # selected above is cleared first: a selected point wears a ring of its own.)
    page.keyboard.press("Escape")  # leaves the search box
    page.keyboard.press("Escape")  # clears the selection
    assert _state(page)["selection"] in ({}, {"train": [], "test": []})
    box = panel_box(page, "test")
    xy = _xy(page, "test")
    k = _isolated(xy, box)
    page.mouse.click(*xy[k])
    assert _state(page)["selectedPoint"] == {"split": "test", "index": k}
    # Pixels: a dark ring of radius 9 px around the point.
    page.mouse.move(1, 1)
    img = screenshot(page).astype(int)
    cx, cy = (int(round(v)) for v in xy[k])
    yy, xx = np.mgrid[cy - 12:cy + 13, cx - 12:cx + 13]
    r = np.hypot(xx - xy[k][0], yy - xy[k][1])
    dark = (img[cy - 12:cy + 13, cx - 12:cx + 13] < 80).all(axis=-1)
    assert dark[(r > 8) & (r < 10)].sum() >= 20 and dark[r < 4].sum() == 0
    for key in ("ArrowDown", "ArrowLeft"):  # fc2, then epoch 1
        page.keyboard.press(key)
        wait_settled(page)
        at = page.evaluate("window.grandtour.marked('test')")
        want = _xy(page, "test")[k]
        assert at is not None and want is not None
        np.testing.assert_allclose(at, want, atol=1)
    # Esc clears the mark.
    page.keyboard.press("Escape")
    assert _state(page)["selectedPoint"] is None
    assert page.evaluate("window.grandtour.marked('test')") is None
    assert page.errors == []


def test_point_size_opacity_and_hidden_handles(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    box = panel_box(page, "train")
    xy = _xy(page, "train")
    k = _isolated(xy, box)
    x, y = (int(round(v)) for v in xy[k])

    def ink():
        img = gl_screenshot(page)
        win = img[y - 12:y + 13, x - 12:x + 13].astype(float)
        return (win < 235).any(axis=-1).sum(), win[12, 12]

    area0, centre0 = ink()
    page.keyboard.press("9")
    page.keyboard.press("9")
    assert abs(_state(page)["pointSize"] - 1.5625) < 1e-9
    area1, _ = ink()
    assert area1 > 1.8 * area0, (area0, area1)
    # Opacity: the centre of a lone dot is alpha c + (1 - alpha) white.
    colors = page.evaluate("window.grandtour.classColors()")
    label = page.evaluate("window.grandtour.colorIndices('train')")[k]
    rgb = np.array(colors[label], float)

    def alpha(px):
        d = rgb - 255
        return float(((px - 255) @ d) / (d @ d))

    assert abs(alpha(centre0) - 0.85) < 0.04
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert abs(_state(page)["opacity"] - 0.65) < 1e-9
    assert abs(alpha(ink()[1]) - 0.65) < 0.04
    # The sliders (mouse): the opacity slider's far right end is fully opaque.
    _open_menu(page)
    sb = page.locator("#opacity").bounding_box()
    page.mouse.click(sb["x"] + sb["width"] - 2, sb["y"] + sb["height"] / 2)
    assert _state(page)["opacity"] > 0.97
    _close_menu(page)
    assert abs(alpha(ink()[1]) - 1.0) < 0.04
    # Handles: h hides them (hook and pixels), the menu's toggle shows them again.
    handles = page.evaluate("window.grandtour.handles('train')")
    assert len(handles) == C

    def dark_at_handles():
        img = screenshot(page).astype(int)
        win = lambda h: img[int(h["y"]) - 5:int(h["y"]) + 6, int(h["x"]) - 5:int(h["x"]) + 6]  # noqa: E731
        return sum(int((win(h) < 90).all(axis=-1).sum() >= 8) for h in handles)

    assert dark_at_handles() == C  # each knob's dark outline
    page.keyboard.press("h")
    assert not _state(page)["showHandles"]
    assert page.evaluate("window.grandtour.handles('train')") == []
    assert page.evaluate("window.grandtour.handleLabels('train')") == []
    assert dark_at_handles() == 0
    _open_menu(page)
    page.click("#show-handles")
    assert _state(page)["showHandles"] and len(page.evaluate("window.grandtour.handles('train')")) == C
    assert page.errors == []


def test_handle_labels_do_not_overlap(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    # A crowded view: every class axis within a few degrees of one direction.
    rng = np.random.default_rng(4)
    A = np.c_[np.ones(C), 0.05 * rng.standard_normal(C), rng.standard_normal((C, C - 2))]
    Q, R = np.linalg.qr(A)
    Q *= np.sign(np.diag(R))
    page.evaluate("(m) => window.grandtour.setMatrix(m)", Q.tolist())
    for split in ("train", "test"):
        labs = page.evaluate("(s) => window.grandtour.handleLabels(s)", split)
        assert sorted(lab["text"] for lab in labs) == sorted(CLASS_NAMES)
        boxes = np.array([lab["box"] for lab in labs])
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                assert not overlap, f"{split}: labels {labs[i]['text']} and {labs[j]['text']} overlap"
        # Moved labels say where they belong: a leader line from the handle.
        hs = {h["axis"]: (h["x"], h["y"]) for h in page.evaluate("(s) => window.grandtour.handles(s)", split)}
        moved = [lab for lab in labs if lab["leader"]]
        assert moved, "a crowded view moves some labels"
        for lab in moved:
            np.testing.assert_allclose(lab["leader"][:2], hs[lab["axis"]], atol=0.01)
        v = page.evaluate("(s) => window.grandtour.view(s)", split)
        assert (boxes[:, 0] >= v["left"] - 0.5).all() and (boxes[:, 2] <= v["left"] + v["width"] + 0.5).all()
    assert page.errors == []


def test_loss_chart_titles_and_readout(open_page, server):
    page = open_page()
    pause(page)
    wait_settled(page)
    titles = page.eval_on_selector_all("#chart text.axis-title", "ts => ts.map(t => t.textContent)")
    assert sorted(titles) == ["epoch", "loss"]
    metrics = json.loads(_api(server, "metrics/test")[0])
    loss = np.array([[np.nan if v is None else v for v in row] for row in metrics["class_loss"]])
    # Hover on the line of class c at epoch 1: the readout says epoch, class and value.
    c = int(np.nanargmax(loss[1]))
    dot = page.evaluate("""([c, i]) => { const p = document.querySelector(`#chart path[data-class="${c}"]`);
        const b = document.querySelector('#chart svg').getBoundingClientRect();
        const pts = p.getAttribute('d').match(/[-0-9.]+,[-0-9.]+/g).map(s => s.split(',').map(Number));
        return [b.left + pts[i][0], b.top + pts[i][1]]; }""", [c, 1])
    page.mouse.move(*dot)
    ro = page.locator(".chart-readout")
    ro.wait_for(state="visible")
    assert ro.get_attribute("data-epoch") == "1" and ro.get_attribute("data-class") == str(c)
    assert abs(float(ro.get_attribute("data-value")) - loss[1, c]) < 1e-9
    assert f"epoch 1 · {CLASS_NAMES[c]} · {loss[1, c]:.3g}" in ro.inner_text()
    # Keyboard: a legend entry with focus gives its class's loss at the epoch shown.
    page.mouse.move(5, 5)
    page.focus("#legend li[data-class='4']")
    assert ro.get_attribute("data-class") == "4" and ro.get_attribute("data-epoch") == "2"
    assert abs(float(ro.get_attribute("data-value")) - loss[2, 4]) < 1e-9
    assert page.errors == []


def test_tooltip_shows_the_softmax_confidence(open_page, server):
    page = open_page()
    pause(page)
    wait_settled(page)
    probs = _floats(server, "activations/softmax/2/test")
    box = panel_box(page, "test")
    xy = _xy(page, "test")
    k = _isolated(xy, box)
    page.mouse.move(*xy[k])
    tip = page.locator("#tooltip .conf")
    tip.wait_for(state="visible")
    c = int(np.argmax(probs[k]))
    assert tip.inner_text() == f"confidence {CLASS_NAMES[c]} {100 * probs[k, c]:.1f}%"
    # A layer that is not probabilities (fc2 has 10 dims too) does not change the answer.
    page.keyboard.press("ArrowDown")
    wait_settled(page)
    xy = _xy(page, "test")
    page.mouse.move(5, 5)
    page.mouse.move(*xy[k])
    tip.wait_for(state="visible")
    assert tip.inner_text() == f"confidence {CLASS_NAMES[c]} {100 * probs[k, c]:.1f}%"
    assert page.errors == []


def test_adversarial_lines_join_each_point_to_its_original(open_page, server):
    page = open_page()
    pause(page)
    page.select_option("#adv-select", "default")
    page.wait_for_function("window.grandtour.state().adversarial === 'default'")
    page.keyboard.press("]")
    page.keyboard.press("]")
    wait_settled(page)
    rec = json.loads(_api(server, "adversarial/default")[0])
    assert page.evaluate("window.grandtour.advLines('test')") == []
    page.keyboard.press("o")
    assert _state(page)["advLines"]
    lines = np.array(page.evaluate("window.grandtour.advLines('test')"))
    assert len(lines) == len(rec["example_index"])
    genuine = _xy(page, "test")
    adv = page.evaluate("window.grandtour.projectedPositions('test', 'adversarial')")
    v = page.evaluate("window.grandtour.view('test')")
    for j, i in enumerate(rec["example_index"]):
        np.testing.assert_allclose(lines[j, :2], genuine[i], atol=1)
        ax = v["left"] + v["width"] / 2 + (adv[j][0] - v["center"][0]) * v["pxPerUnit"]
        ay = v["top"] + v["height"] / 2 - (adv[j][1] - v["center"][1]) * v["pxPerUnit"]
        np.testing.assert_allclose(lines[j, 2:], [ax, ay], atol=1)
    _open_menu(page)
    page.click("#adv-lines")
    assert page.evaluate("window.grandtour.advLines('test')") == []
    assert page.errors == []


def test_export_svg_circles_are_where_the_points_are_and_png_is_the_panels(open_page):
    from PIL import Image

    page = open_page()
    pause(page)
    wait_settled(page)
    page.keyboard.press("m")  # fewer points: the SVG leaves out those not drawn
    _open_menu(page)
    with page.expect_download() as dl:
        page.click("#export-svg")
    svg = ET.parse(dl.value.path()).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    boxes = {s: panel_box(page, s) for s in ("train", "test")}
    left = min(b["x"] for b in boxes.values())
    top = min(b["y"] for b in boxes.values())
    right = max(b["x"] + b["width"] for b in boxes.values())
    bottom = max(b["y"] + b["height"] for b in boxes.values())
    assert float(svg.get("width")) == round(right - left) and float(svg.get("height")) == round(bottom - top)
    for split in ("train", "test"):
        g = svg.find(f"s:g[@data-split='{split}']", ns)
        dx, dy = (float(v) for v in g.get("transform")[len("translate("):-1].split())
        drawn = np.array(page.evaluate(f"window.grandtour.colorIndices('{split}')")) != C + 2
        xy = _xy(page, split)
        circles = g.findall("s:g[@class='points']/s:circle", ns)
        want = sorted(i for i in range(len(xy)) if xy[i] is not None and drawn[i])
        assert sorted(int(c.get("data-index")) for c in circles) == want
        for c in circles:
            i = int(c.get("data-index"))
            at = np.array([float(c.get("cx")) + dx + left, float(c.get("cy")) + dy + top])
            assert np.hypot(*(at - xy[i])) <= 1, (split, i, at, xy[i])
        handles = g.findall("s:g[@class='handles']/s:circle", ns)
        hs = page.evaluate(f"window.grandtour.handles('{split}')")
        assert len(handles) == len(hs) == C
        texts = sorted(t.text for t in g.findall("s:g[@class='handles']/s:text", ns))
        assert texts == sorted(CLASS_NAMES)
    # The PNG (keyboard: x) decodes to the panels' size.
    with page.expect_download() as dl:
        page.keyboard.press("Escape")
        page.keyboard.press("x")
    with open(dl.value.path(), "rb") as f:
        img = Image.open(io.BytesIO(f.read()))
    assert img.size == (round(right - left), round(bottom - top))
    # ... and shows what the page shows.
    page.mouse.move(1, 1)
    shot = screenshot(page, clip={"x": left, "y": top, "width": img.size[0], "height": img.size[1]}).astype(float)
    png = np.asarray(img.convert("RGB"), float)
    assert np.abs(png - shot).mean() < 2.0
    assert page.errors == []


def test_the_view_settings_are_saved_in_presets(open_page):
    page = open_page()
    pause(page)
    wait_settled(page)
    for key in ("c", "m", "9", "j", "h", "o"):
        page.keyboard.press(key)
    page.fill("#search", "test:7")
    page.press("#search", "Enter")
    want = {"colorBy": "prediction", "onlyMisclassified": True, "pointSize": 1.25, "opacity": 0.75,
            "showHandles": False, "advLines": True, "selectedPoint": {"split": "test", "index": 7}}
    s = _state(page)
    assert {k: s[k] for k in want} == want
    page.keyboard.press("u")
    hash_ = page.evaluate("location.hash")
    assert hash_.startswith("#view=")
    other = open_page(hash_)
    s = _state(other)
    assert {k: s[k] for k in want} == want
    assert page.errors == [] and other.errors == []


def test_no_jump_where_a_transition_re_bases_into_a_narrower_layer(open_page):
    """relu1 (24 dims) -> fc2 (10): the common space has 24, fc2's points none in the last 14;
    the frame's rows there are dropped by the re-base. The picture must not jump there: the
    move of the last frame before the boundary to the first one after is no larger than the
    frames' moves before it (it was 90 px here, against 1.5 px a frame before it)."""
    page = open_page()
    pause(page)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # relu1
    wait_settled(page)
    assert _state(page)["layer"] == "relu1"
    # A view of relu1 that uses all of its 24 dims (come down from fc2, the frame would
    # still lie in fc2's 10, and nothing would be dropped).
    Q, R = np.linalg.qr(np.random.default_rng(5).standard_normal((24, 24)))
    page.evaluate("(m) => window.grandtour.setMatrix(m)", (Q * np.sign(np.diag(R))).tolist())
    page.evaluate("window.grandtour.manual(true)")
    page.keyboard.press("ArrowUp")  # into fc2
    frames, kinds = [], []
    for _ in range(400):
        s = page.evaluate("(dt) => window.grandtour.step(dt)", 1 / 30)
        frames.append(np.array([p if p is not None else [np.nan, np.nan] for p in _xy(page, "train")], float))
        kinds.append(s["space"])
        if s["layerPos"] == s["layerIndex"] == 3:
            break
        page.wait_for_timeout(5)  # slices arrive between frames
    assert kinds[-1] == "layer" and "transition" in kinds
    moves = [np.nanmax(np.hypot(*(b - a).T)) for a, b in pairwise(frames)]
    i = len(moves) - 1  # the move across the boundary (last transition frame -> the layer)
    before = [m for m, k in zip(moves[:i], kinds[1:i + 1]) if k == "transition"][-6:]
    assert len(before) >= 3, kinds
    assert moves[i] <= 2 * max(before) + 0.5, f"the view jumps {moves[i]:.1f} px at the re-base (before: {before})"
    assert page.errors == []


def test_guided_tour_heads_for_views_that_separate_the_classes_shown(open_page, server):
    """With all but three classes hidden, the guided tour (button, key d) turns toward views
    in which those three separate: the LDA index (guided.py, on the layer's served data) of
    the page's own view rises, the page's readout is that index, and turning it off hands
    the view back to the Grand Tour where it is."""
    from grandtour.guided import lda_index, scatter_matrices

    page = open_page()
    pause(page)
    wait_settled(page)
    st = _state(page)
    split = st["splits"][0]
    X = _floats(server, f"activations/{st['layer']}/{st['epoch']}/{split}")
    labels = _ints(server, f"labels/{split}")
    keep = [3, 5, 8]
    for c in range(C):
        if c not in keep:
            page.click(f"#legend li[data-class='{c}']")
    page.wait_for_function(f"window.grandtour.state().hidden.length === {C - len(keep)}")
    W, B = scatter_matrices(X, labels, keep)

    def index() -> float:
        return lda_index(np.array(page.evaluate("window.grandtour.matrix()"))[:, :2], W, B)

    # Start from a poor view: of 200 random planes, the one that separates them least.
    rng = np.random.default_rng(3)
    Qs = [np.linalg.qr(rng.standard_normal((X.shape[1], X.shape[1])))[0] for _ in range(200)]
    worst = min(Qs, key=lambda Q: lda_index(Q[:, :2], W, B))
    page.evaluate("(m) => window.grandtour.setMatrix(m)", worst.tolist())
    page.evaluate("window.grandtour.manual(true)")
    start = index()
    page.click("#tour-guided")
    s = page.evaluate("(dt) => window.grandtour.step(dt)", 0)
    assert s["guided"] and s["playing"] and s["guide"]["classes"] == keep
    assert s["guide"]["points"] == s["guide"]["of"] == int(np.isin(labels, keep).sum())
    for _ in range(80):  # 20 s of touring
        s = page.evaluate("(dt) => window.grandtour.step(dt)", 0.25)
    end = index()
    assert end > start + 0.2, (start, end)
    assert abs(s["guide"]["index"] - end) < 1e-3
    assert page.inner_text("#tour-guided-label") == f"{s['guide']['index']:.2f}"
    # Off (key d): the Grand Tour goes on from the same view.
    M = np.array(page.evaluate("window.grandtour.matrix()"))
    page.keyboard.press("d")
    s = page.evaluate("(dt) => window.grandtour.step(dt)", 0)
    assert not s["guided"] and s["guide"] is None
    np.testing.assert_allclose(page.evaluate("window.grandtour.matrix()"), M, atol=1e-9)
    s = page.evaluate("(dt) => window.grandtour.step(dt)", 0.25)
    assert np.abs(np.array(page.evaluate("window.grandtour.matrix()")) - M).max() > 1e-6  # it moves on
    assert page.errors == []
