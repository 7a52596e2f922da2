"""The page's frame does no work that waits for the GPU (issue 14).

Reading the GPU back (``getBufferSubData``, ``readPixels``) makes the page wait for every
draw queued before it: done each frame (the off-panel count of the status line once was),
it stalled the page's whole frame on the GPU's. While the tour plays nothing is read back;
the off-panel count still follows the view, counted on the CPU a few times a second, and
agrees with the GPU's positions once the view stops.
"""

from __future__ import annotations

import re

from browser_kit import pause

COUNT_READS = """() => {
  const P = WebGL2RenderingContext.prototype;
  window.__reads = 0;
  for (const name of ['getBufferSubData', 'readPixels']) {
    const f = P[name];
    P[name] = function (...args) { window.__reads++; return f.apply(this, args); };
  }
}"""

OFF_TEXT = "document.querySelector(\".panel[data-split='train'] .panel-info\").textContent"


def _off_count(text: str) -> int:
    m = re.search(r"([\d,]+) off-panel", text)
    return int(m.group(1).replace(",", "")) if m else 0


def test_touring_reads_nothing_back_and_the_off_panel_count_follows(open_page):
    page = open_page()
    for _ in range(8):
        page.keyboard.press("+")  # zoom 1.25^8 ~ 6: many points leave the panel
    page.evaluate(COUNT_READS)
    assert page.evaluate("window.grandtour.state().playing")
    page.evaluate("window.grandtour.frames(30)")  # the page tours by itself: no hook draws
    assert page.evaluate("window.__reads") == 0, "a touring frame read the GPU back"
    page.wait_for_function(f"{OFF_TEXT}.includes('off-panel')")

    pause(page)
    page.wait_for_timeout(400)  # the count catches up with the still view (every 250 ms)
    page.evaluate("window.grandtour.frames(2)")
    shown = _off_count(page.evaluate(OFF_TEXT))
    assert page.evaluate("window.__reads") == 0
    # The exact count: the GPU's own positions of this still view, against the panel's box.
    v = page.evaluate("window.grandtour.view('train')")
    pos = page.evaluate("window.grandtour.screenPositions('train')")
    left, top, w, h = v["left"], v["top"], v["width"], v["height"]
    exact = sum(1 for p in pos if p is not None and not (left <= p[0] <= left + w and top <= p[1] <= top + h))
    assert exact > 20, "the zoom did not push points off the panel"
    assert abs(shown - exact) <= 1, (shown, exact)  # a point on the edge may round either way
    assert page.errors == []
