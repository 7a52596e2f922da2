"""Sprite atlases: every probe thumbnail of a split (or an adversarial record) in one PNG.

The page draws a thumbnail by its cell in one texture, so the atlas is at most
:data:`ATLAS_MAX_SIDE` pixels a side, the smallest ``MAX_TEXTURE_SIZE`` WebGL2 allows.
"""

from __future__ import annotations

import io
import math

import numpy as np

from grandtour.errors import StoreError

__all__ = ["ATLAS_MAX_SIDE", "atlas_grid", "sprite_atlas"]

#: Side of the largest sprite atlas: 4096 is the smallest MAX_TEXTURE_SIZE WebGL2 allows.
ATLAS_MAX_SIDE = 4096


def atlas_grid(n: int, h: int, w: int, max_side: int = ATLAS_MAX_SIDE) -> tuple[int, int, int, int]:
    """Columns, rows and cell size of an atlas of ``n`` thumbnails of ``h x w`` pixels.

    Roughly square, at most ``max_side`` pixels a side: thumbnails are shrunk (keeping
    their aspect ratio) only when ``n`` full-size cells would not fit.
    """
    cols = max(1, math.ceil(math.sqrt(n * h / w)))
    cell_w, cell_h = w, h
    if cols * w > max_side or math.ceil(n / cols) * h > max_side:
        # Largest cell whose square-ish grid fits max_side.
        f = max_side / math.sqrt(n * h * w) if n else 1.0
        while True:
            cell_w, cell_h = max(1, int(w * f)), max(1, int(h * f))
            cols = max(1, max_side // cell_w)
            if math.ceil(n / cols) * cell_h <= max_side or (cell_w == 1 and cell_h == 1):
                break
            f *= 0.97
    rows = max(1, math.ceil(n / cols))
    return cols, rows, cell_w, cell_h


def sprite_atlas(images: np.ndarray) -> tuple[bytes, dict]:
    """A PNG sprite atlas of thumbnails, row-major.

    Parameters
    ----------
    images : ndarray of shape (N, C, H, W), uint8
        C = 1 gives a grayscale PNG, 3 RGB, 4 RGBA; any other C uses its first channel.

    Returns
    -------
    png : bytes
    layout : dict
        ``{"cols", "rows", "cell_w", "cell_h", "n", "width", "height", "channels"}``.
        Thumbnail ``i`` is at pixel ``(x, y) = ((i % cols) * cell_w, (i // cols) * cell_h)``;
        cells are the thumbnails' size unless ``N`` of them would make the atlas wider or
        taller than 4096 pixels, in which case they are shrunk to fit.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise StoreError(f"thumbnails must be (N, C, H, W) uint8, got {images.shape} {images.dtype}")
    n, c, h, w = images.shape
    channels = c if c in (1, 3, 4) else 1
    pix = images if c == channels else images[:, :1]
    pix = np.moveaxis(pix, 1, -1)  # (N, H, W, C)
    cols, rows, cell_w, cell_h = atlas_grid(n, h, w)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    if (cell_w, cell_h) != (w, h) and n:
        def shrink(p: np.ndarray) -> np.ndarray:
            small = Image.fromarray(p[..., 0] if channels == 1 else p, mode).resize(
                (cell_w, cell_h), Image.BILINEAR)
            return np.asarray(small).reshape(cell_h, cell_w, channels)

        pix = np.stack([shrink(p) for p in pix])
    grid = np.zeros((rows * cols, cell_h, cell_w, channels), np.uint8)
    grid[:n] = pix
    sheet = grid.reshape(rows, cols, cell_h, cell_w, channels).swapaxes(1, 2).reshape(
        rows * cell_h, cols * cell_w, channels)
    img = Image.fromarray(sheet[..., 0] if channels == 1 else sheet, mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast: the atlas is made on first request
    layout = {"cols": cols, "rows": rows, "cell_w": cell_w, "cell_h": cell_h, "n": int(n),
              "width": cols * cell_w, "height": rows * cell_h, "channels": channels}
    return buf.getvalue(), layout
