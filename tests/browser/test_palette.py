"""One palette: the colours grandtour.render draws into a figure are the page's class colours
(web/js/colors.js), both read from web/palette.json, for ten classes and beyond."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from grandtour.palette import class_colors
from grandtour.render import render_tour
from grandtour.tour import GrandTour

#: (class count, classes drawn): the ten-colour table, and the hue circle beyond ten.
CASES = [(10, (0, 2, 7)), (13, (0, 5, 12))]

#: The page's own colors.js module (the instance app.js imported), asked for every class.
PAGE_COLORS = """async (counts) => {
  const m = await import(new URL('js/colors.js', document.baseURI).href);
  return counts.map((n) => Array.from({ length: n }, (_, c) => Array.from(m.classColor(c, n))));
}"""


@pytest.fixture(scope="module")
def page_colors(browser, server):
    """{count: [[r, g, b] per class]} as the page computes them, for the counts tested."""
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_function("window.grandtour !== undefined", timeout=15000)
        page.evaluate("window.grandtour.ready")
        counts = sorted({3, 10, 13, 25} | {n for n, _ in CASES})
        tables = page.evaluate(PAGE_COLORS, counts)
        shown = page.evaluate("window.grandtour.classColors()")  # the open run's classes
        assert errors == []
    finally:
        ctx.close()
    return {**dict(zip(counts, tables)), "shown": shown}


def _drawn_colour(png) -> tuple[tuple[int, int, int], int]:
    """The most frequent chromatic colour of a figure, and how many pixels have it (text,
    axes and white are grey; a point's antialiased rim is rarer than its inside)."""
    img = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    chromatic = img[img.max(axis=1) - img.min(axis=1) >= 12]
    colours, counts = np.unique(chromatic, axis=0, return_counts=True)
    k = int(np.argmax(counts))
    return tuple(int(v) for v in colours[k]), int(counts[k])


def test_python_and_the_page_compute_the_same_table(page_colors):
    for count in (3, 10, 13, 25):
        assert [list(c) for c in class_colors(count)] == page_colors[count], count
    # Beyond ten classes the colours are new hues, all different, not the ten reused.
    assert len({tuple(c) for c in page_colors[13]}) == 13
    assert page_colors[13][:10] != page_colors[10]
    # What the page draws for the open run (10 classes) is that table too.
    assert page_colors["shown"] == page_colors[10]


@pytest.mark.parametrize("count, classes", CASES)
def test_figure_points_have_the_pages_class_colours(page_colors, tmp_path, count, classes):
    """A figure of one class at a time: the colour of its drawn points, read from the PNG,
    is the page's colour of that class among `count` (so a swapped or shifted table fails)."""
    X = np.random.default_rng(0).standard_normal((400, 3)) * 0.3
    names = [f"c{i}" for i in range(count)]
    for c in classes:
        out = render_tour(X, tmp_path / f"{count}-{c}", tour=GrandTour(3, seed=1),
                          labels=np.full(len(X), c), class_names=names, frames=1,
                          handles=False, dpi=100)
        colour, pixels = _drawn_colour(out / "frame_0000.png")
        assert pixels >= 200, f"class {c}: too few pixels of one colour ({pixels})"
        expected = page_colors[count][c]
        assert np.abs(np.subtract(colour, expected)).max() <= 1, \
            f"class {c} of {count}: figure draws {colour}, the page {expected}"
