"""Class colours, shared with the viewer: both read ``web/palette.json``.

The table is the page's (``web/js/colors.js``): Tableau 10 (2014) for up to ten classes,
then evenly spaced hues, class ``c`` of ``count`` at hue ``360 c / count`` degrees. The
viewer is what people look at, so the figures take its colours, not matplotlib's tab10.
The hue rule is computed here with the same float64 arithmetic as in JavaScript, rounding
as ``Math.round`` does, so Python and the page agree to the byte.

Examples
--------
>>> class_color(2)
(225, 87, 89)
>>> len(class_colors(13)), class_color(0, 13)
(13, (207, 48, 48))
"""

from __future__ import annotations

import json
import math
from importlib import resources

__all__ = ["CLASSES", "HANDLE", "NEUTRAL", "class_color", "class_colors", "hex_colour"]


def _load() -> dict:
    # importlib.resources: the file is found in a wheel, an editable install or a zip.
    return json.loads(resources.files("grandtour").joinpath("web", "palette.json").read_text("utf-8"))


_TABLE = _load()

#: The colours of up to ten classes, in order, as (r, g, b) bytes.
CLASSES: tuple[tuple[int, int, int], ...] = tuple(tuple(c) for c in _TABLE["classes"])
#: Colour of the edges between points (a hypercube's), (r, g, b) bytes.
NEUTRAL: tuple[int, int, int] = tuple(_TABLE["neutral"])
#: Colour of the axis handles and their labels, (r, g, b) bytes.
HANDLE: tuple[int, int, int] = tuple(_TABLE["handle"])
_SATURATION = float(_TABLE["many"]["saturation"])
_LIGHTNESS = float(_TABLE["many"]["lightness"])


def _js_round(x: float) -> int:
    """``Math.round``: the nearest integer, halves toward +infinity (Python's round() is
    banker's, and ``floor(x + 0.5)`` is off for the double just below 0.5)."""
    r = math.floor(x)
    return int(r + 1 if x - r >= 0.5 else r)


def _hsl(h: float, s: float, l: float) -> tuple[int, int, int]:  # noqa: E741 - CSS names it l
    """colors.js ``hsl``: CSS's HSL to RGB, operation for operation."""
    a = s * min(l, 1 - l)

    def f(n: int) -> int:
        k = (n + h / 30) % 12  # h >= 0: Python's % is JavaScript's here
        return _js_round(255 * (l - a * max(-1, min(k - 3, 9 - k, 1))))

    return f(0), f(8), f(4)


def class_color(c: int, count: int = 10) -> tuple[int, int, int]:
    """The colour of class ``c`` among ``count`` classes, as (r, g, b) bytes.

    Parameters
    ----------
    c : int
        Class index, >= 0 (an index >= ``count`` wraps around the ten colours, or
        continues the hue circle beyond ten classes, as on the page).
    count : int
        Number of classes: up to ten take :data:`CLASSES`, more the hue circle.
    """
    c, count = int(c), int(count)
    if count <= len(CLASSES):
        return CLASSES[c % len(CLASSES)]
    return _hsl((360 * c) / count, _SATURATION, _LIGHTNESS)


def class_colors(count: int) -> list[tuple[int, int, int]]:
    """The colours of classes ``0 .. count-1``: ``[class_color(c, count) for c ...]``."""
    return [class_color(c, count) for c in range(int(count))]


def hex_colour(rgb) -> str:
    """``"#rrggbb"`` for (r, g, b) bytes."""
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"
