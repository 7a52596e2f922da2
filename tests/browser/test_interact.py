"""Direct manipulation, the legend, hover and thumbnails, asserted on the page state and
on its pixels."""

from __future__ import annotations

import numpy as np

from browser_kit import (
    CLASS_NAMES,
    EPOCHS,
    N_TEST,
    N_TRAIN,
    faded_away_from,
    gl_screenshot,
    near_class,
    panel_box,
    pause,
    screenshot,
)

from grandtour.manipulate import axis_drag, centroid, point_drag
from grandtour.store import Run


def _crop(img, box):
    return img[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]


def _labels(runs, split):
    return Run.open(runs["digits"]).labels(split)


def test_highlighting_a_class_shows_its_colour_where_its_points_are(open_page, runs):
    page = open_page()
    pause(page)
    c = 3
    color = np.array(page.evaluate("window.grandtour.classColors()")[c], float)
    page.hover(f"#legend li[data-class='{c}']")
    page.wait_for_function(f"window.grandtour.state().highlight === {c}")
    page.evaluate("window.grandtour.frames(2)")
    img = gl_screenshot(page).astype(float)
    labels = _labels(runs, "train")
    pos = page.evaluate("window.grandtour.screenPositions('train')")
    own = [p for p, y in zip(pos, labels) if p and y == c]
    others = [p for p, y in zip(pos, labels) if p and y != c]
    # Every point of class c shows the class colour at its centre (drawn on top).
    ok = [near_class(img[int(round(y)), int(round(x))][None], color)[0] for x, y in own]
    assert np.mean(ok) > 0.95, f"{np.mean(ok):.2f} of class {c}'s points show its colour"
    # The other classes are faded to grey: low saturation where they are (and c is far).
    faded = faded_away_from(img, others, own)
    assert len(faded) > 20 and np.mean(faded) > 0.9
    page.mouse.move(5, 5)
    page.wait_for_function("window.grandtour.state().highlight === -1")
    assert page.errors == []


def test_toggling_a_class_removes_its_colour_and_brings_it_back(open_page, runs):
    page = open_page()
    pause(page)
    box = panel_box(page, "test")
    # Where a class's points are drawn away from every other class's (blends of other
    # colours are not its colour): the class with the most such points.
    labels = _labels(runs, "test")
    pos = page.evaluate("window.grandtour.screenPositions('test')")

    def apart(c):
        others = np.array([p for p, y in zip(pos, labels) if p and y != c])
        return [p for p, y in zip(pos, labels) if p and y == c and np.min(np.hypot(*(others - p).T)) > 8]

    c = max(range(len(CLASS_NAMES)), key=lambda k: len(apart(k)))
    own = apart(c)
    color = page.evaluate("window.grandtour.classColors()")[c]

    def count():
        page.evaluate("window.grandtour.frames(2)")
        img = gl_screenshot(page).astype(float)
        at = np.array([img[int(round(y)), int(round(x))] for x, y in own])
        return int(near_class(_crop(img, box), color).sum()), int(near_class(at, color).sum())

    before, at_before = count()
    page.click(f"#legend li[data-class='{c}']")
    page.wait_for_function(f"window.grandtour.state().hidden.includes({c})")
    assert "hidden-class" in page.get_attribute(f"#legend li[data-class='{c}']", "class")
    page.mouse.move(5, 5)  # no legend entry hovered: the view as it is left
    after, at_after = count()
    assert len(own) >= 5 and at_before >= 0.9 * len(own) and at_after == 0, (len(own), at_before, at_after)
    assert before > 60 and after < before, (before, after)
    # Hidden points cannot be brushed either; a second click shows them again.
    page.click(f"#legend li[data-class='{c}']")
    page.wait_for_function("window.grandtour.state().hidden.length === 0")
    assert count()[0] >= 0.9 * before
    assert page.errors == []


def test_axis_drag_moves_the_handle_where_axis_drag_says(open_page):
    page = open_page()
    pause(page)
    GT0 = np.array(page.evaluate("window.grandtour.matrix()"))
    handles = page.evaluate("window.grandtour.handles('train')")
    view = page.evaluate("window.grandtour.view('train')")
    R = view["handleRadius"]
    centre = np.array([view["left"] + view["width"] / 2, view["top"] + view["height"] / 2])
    h = max(handles, key=lambda h: np.hypot(h["x"] - centre[0], h["y"] - centre[1]))
    i = h["axis"]
    dx, dy = 37.0, -23.0  # pixels; y grows downwards on screen, upwards in the view
    page.mouse.move(h["x"], h["y"])
    page.mouse.down()
    page.mouse.move(h["x"] + dx, h["y"] + dy)
    assert page.evaluate("window.grandtour.state().dragging")
    page.mouse.up()
    assert not page.evaluate("window.grandtour.state().dragging")
    expected = axis_drag(GT0, i, dx / R, -dy / R)
    got = np.array(page.evaluate("window.grandtour.matrix()"))
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # The handle is drawn where the maths says: centre + GT'[i, :2] R (y flipped) ...
    page.evaluate("window.grandtour.frames(2)")
    moved = {m["axis"]: m for m in page.evaluate("window.grandtour.handles('train')")}[i]
    want = centre + np.array([expected[i, 0], -expected[i, 1]]) * R
    assert np.hypot(moved["x"] - want[0], moved["y"] - want[1]) < 1e-6
    # ... within |D| of the requested spot, and its knob is there in the pixels.
    assert np.hypot(*(want - [h["x"] + dx, h["y"] + dy])) <= np.hypot(dx, dy) + 1e-6
    img = screenshot(page).astype(float)
    color = np.array(page.evaluate("window.grandtour.classColors()")[i], float)
    x, y = int(round(want[0])), int(round(want[1]))
    patch = img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3)
    assert (np.linalg.norm(patch - color, axis=1) < 30).any(), "no knob at the handle's position"
    assert page.errors == []


def test_the_tour_pauses_while_dragging_and_resumes_after(open_page):
    page = open_page()
    assert page.evaluate("window.grandtour.state().playing")
    box = panel_box(page, "train")
    x, y = box["x"] + 30, box["y"] + 30  # empty corner: a brush drag
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 5, y + 5)
    m0 = page.evaluate("window.grandtour.matrix()")
    page.evaluate("window.grandtour.frames(6)")
    assert page.evaluate("window.grandtour.matrix()") == m0, "the tour moved during a drag"
    page.mouse.up()
    page.evaluate("window.grandtour.frames(6)")
    s = page.evaluate("window.grandtour.state()")
    assert s["playing"] and not s["dragging"]
    assert page.evaluate("window.grandtour.matrix()") != m0, "the tour did not resume"
    assert page.errors == []


def test_brush_selects_then_centroid_drag_is_point_drag(open_page, runs):
    page = open_page()
    pause(page)
    pos = page.evaluate("window.grandtour.screenPositions('test')")
    xy = np.array([p if p else [np.nan, np.nan] for p in pos])
    # A rectangle around the points of the densest corner.
    finite = np.isfinite(xy).all(axis=1)
    cx, cy = np.nanmedian(xy[:, 0]), np.nanmedian(xy[:, 1])
    x0, y0 = cx - 5, cy - 5
    x1, y1 = cx + 70, cy + 60
    inside = finite & (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    assert inside.sum() >= 3
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=3)
    page.mouse.up()
    sel = page.evaluate("window.grandtour.state().selection")
    assert sel["test"] == list(np.flatnonzero(inside)), "the brush did not select exactly the points inside"
    # The status card and the rings are drawn by the next frames, not by the mouse event.
    page.evaluate("window.grandtour.frames(2)")
    assert f"{inside.sum()} test" in page.inner_text("#status-selection")
    # Selected points are drawn with a dark ring (on top).
    img = gl_screenshot(page).astype(float)
    dark = 0
    for k in np.flatnonzero(inside):
        x, y = xy[k]
        patch = img[int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5].reshape(-1, 3)
        dark += (patch.max(axis=1) < 60).any()
    assert dark >= 0.8 * inside.sum()
    # Drag the centroid marker: the matrix is point_drag(GT0, c, D), c the selection's
    # centroid, a point of the layer drawn by the same map as the points (no mean shift).
    run = Run.open(runs["digits"])
    c = centroid(run.activations("softmax", EPOCHS[-1], "test").astype(np.float64), np.flatnonzero(inside))
    GT0 = np.array(page.evaluate("window.grandtour.matrix()"))
    view = page.evaluate("window.grandtour.view('test')")
    ppu = view["pxPerUnit"]
    centre = np.array([view["left"] + view["width"] / 2, view["top"] + view["height"] / 2])
    marker = np.array(page.evaluate("window.grandtour.centroid('test')"))
    want0 = centre + np.array([c @ GT0[:, 0], -(c @ GT0[:, 1])]) * ppu
    assert np.hypot(*(marker - want0)) < 0.05, "the centroid marker is not at c GT"
    dx, dy = -28.0, 19.0
    page.mouse.move(*marker)
    page.mouse.down()
    page.mouse.move(marker[0] + dx, marker[1] + dy)
    page.mouse.up()
    expected = point_drag(GT0, c, dx / ppu, -dy / ppu)
    got = np.array(page.evaluate("window.grandtour.matrix()"))
    np.testing.assert_allclose(got, expected, atol=1e-6)  # c from float16 data, float64 maths
    # The centroid lands at c~new = (c~ + D) |c~| / |c~ + D| (its screen part).
    ct = c @ GT0
    moved = ct.copy()
    moved[:2] += [dx / ppu, -dy / ppu]
    new = moved * np.linalg.norm(ct) / np.linalg.norm(moved)
    marker2 = np.array(page.evaluate("window.grandtour.centroid('test')"))
    np.testing.assert_allclose(marker2, centre + np.array([new[0], -new[1]]) * ppu, atol=0.05)
    # A click on empty space clears the selection.
    box = panel_box(page, "test")
    page.mouse.click(box["x"] + 8, box["y"] + box["height"] - 8)
    page.wait_for_function("Object.keys(window.grandtour.state().selection).length === 0")
    assert page.errors == []


def test_shift_click_in_the_legend_selects_a_class(open_page, runs):
    page = open_page()
    pause(page)
    page.click("#legend li[data-class='2']", modifiers=["Shift"])
    sel = page.evaluate("window.grandtour.state().selection")
    for split in ("train", "test"):
        assert sel[split] == list(np.flatnonzero(_labels(runs, split) == 2))
    assert page.evaluate("window.grandtour.centroid('train')") is not None
    page.keyboard.press("Escape")
    page.wait_for_function("Object.keys(window.grandtour.state().selection).length === 0")
    assert page.errors == []


def test_hover_shows_label_prediction_and_thumbnail(open_page, runs):
    page = open_page()
    pause(page)
    run = Run.open(runs["digits"])
    labels = run.labels("train")
    preds = run.predictions(EPOCHS[-1], "train")
    pos = page.evaluate("window.grandtour.screenPositions('train')")
    # A point with no other within 6 px, so the hover is unambiguous.
    xy = np.array(pos)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]) + np.eye(len(xy)) * 1e9
    k = int(np.argmax(d.min(axis=1)))
    page.mouse.move(xy[k, 0] + 1, xy[k, 1] + 1)
    page.wait_for_selector("#tooltip:not([hidden])")
    page.wait_for_function("!document.querySelector('#tooltip').innerText.includes('loading')")
    text = page.inner_text("#tooltip")
    assert f"#{k}" in text and CLASS_NAMES[labels[k]] in text and CLASS_NAMES[preds[k]] in text
    thumb = page.locator("#tooltip canvas")
    assert thumb.count() == 1
    px = np.asarray(screenshot(page, clip=thumb.bounding_box()), float)
    assert px.std() > 10, "the thumbnail is blank"
    page.mouse.move(2, 2)
    page.wait_for_selector("#tooltip", state="hidden")
    assert page.errors == []


def test_images_toggle_draws_thumbnails(open_page):
    page = open_page()
    pause(page)
    box = panel_box(page, "train")

    def ink():
        page.evaluate("window.grandtour.frames(2)")
        img = _crop(gl_screenshot(page).astype(float), box)
        return int((img.min(axis=-1) < 235).sum())

    points = ink()
    page.click("#display-images")
    page.wait_for_function("window.grandtour.state().display === 'images'")
    images = ink()
    assert images > 2 * points, (points, images)  # thumbnails cover far more of the panel
    page.keyboard.press("i")
    page.wait_for_function("window.grandtour.state().display === 'points'")
    assert abs(ink() - points) < 0.1 * points
    assert page.errors == []


def test_every_point_is_drawn_once_per_split(open_page):
    page = open_page()
    assert len(page.evaluate("window.grandtour.projectedPositions('train')")) == N_TRAIN
    assert len(page.evaluate("window.grandtour.projectedPositions('test')")) == N_TEST
    assert page.errors == []
