r"""Render a Grand Tour to an animated GIF or to PNG frames (matplotlib, Agg).

The tour (:mod:`grandtour.tour`) says where the view goes; this module only draws.
Each frame shows the first two entries of :math:`x\,GT` for every point :math:`x`
(``tour.project``), the axis handles (row :math:`i` of :math:`GT`, first two entries)
as short lines from the origin, and optional edges. Between frames the tour advances
by ``dt = 1 / fps`` seconds (its speed is in radians per second), so a GIF plays at
the tour's own pace.

Data may also move: ``points`` of shape ``(K, N, n)`` are *keyframes* (epochs of
training, steps of an adversarial attack) linearly interpolated over the animation;
with ``dt=0`` the view is one fixed tour matrix and only the data moves, as in the
article's training and adversarial dynamics.

The extent of the picture is computed once over the whole animation (symmetric about
the origin), so the picture never jumps. Points with a NaN or infinite coordinate in
any keyframe are left out of every frame, counted, and reported with a
:class:`NonFiniteWarning`.

matplotlib and Pillow are imported only when drawing: the rest of the package needs
numpy alone. Nothing here touches pyplot's global state.

Examples
--------
>>> from grandtour.shapes import tesseract
>>> V, E = tesseract()
>>> render_tour(V, "tesseract.gif", edges=E, frames=60)          # doctest: +SKIP
PosixPath('tesseract.gif')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grandtour import defaults, palette
from grandtour.tour import GrandTour, Tour

__all__ = [
    "PALETTE",
    "NonFiniteWarning",
    "TourFrames",
    "plot_class_metric",
    "render_frames",
    "render_tour",
]

#: The colours of up to ten classes, the viewer's (:mod:`grandtour.palette`, read from
#: ``web/palette.json``), so class k has the same colour in every figure and on the page.
#: With more classes each figure takes evenly spaced hues (:func:`palette.class_colors`).
PALETTE = tuple(palette.hex_colour(c) for c in palette.CLASSES)
#: Colour of the edges between points. Unlabelled points take class 0's colour.
NEUTRAL = palette.hex_colour(palette.NEUTRAL)
#: Colour of the axis handles and their labels.
HANDLE = palette.hex_colour(palette.HANDLE)
#: How far towards white the "light" (not highlighted) points are drawn.
LIGHTEN = 0.6
#: Axis handles are labelled only up to this many axes (beyond, labels are clutter).
MAX_LABELLED_AXES = 20
#: Handles are drawn only up to this many axes.
MAX_HANDLES = 100


class NonFiniteWarning(UserWarning):
    """Some points had NaN or infinite coordinates and were left out of the drawing."""


@dataclass(frozen=True)
class TourFrames:
    """The 2-D positions of every frame of an animation (what :func:`render_tour` draws).

    Attributes
    ----------
    names : tuple of str
        Panel names (``("",)`` for a single array of points).
    positions : tuple of ndarray of shape (F, N, 2)
        Per panel, the screen position of each point in each frame; rows of points
        left out (non-finite) are NaN.
    dropped : tuple of ndarray of shape (N,), bool
        Per panel, the points left out because a coordinate was NaN or infinite.
    handles : ndarray of shape (F, n, 2)
        Row ``i`` of ``GT`` (first two entries) in each frame: the unit axis handles.
    times : ndarray of shape (F,)
        Tour time (seconds) of each frame.
    keyframe : ndarray of shape (F,)
        Fractional keyframe index of each frame (0 for static data).
    extent : float
        Half-width of the square view: every point of every frame (and every handle,
        scaled by ``handle_scale``) lies within ``[-extent, extent]^2``.
    handle_scale : float
        Handles are drawn at ``handle_scale`` times their unit length.
    """

    names: tuple[str, ...]
    positions: tuple[np.ndarray, ...]
    dropped: tuple[np.ndarray, ...]
    handles: np.ndarray
    times: np.ndarray
    keyframe: np.ndarray
    extent: float
    handle_scale: float

    @property
    def n_frames(self) -> int:
        return int(self.handles.shape[0])

    @property
    def n_dropped(self) -> int:
        """Points left out, all panels together."""
        return int(sum(int(d.sum()) for d in self.dropped))


@dataclass
class _Panel:
    name: str
    data: np.ndarray  # (K, N, n) float64, dropped rows zeroed
    dropped: np.ndarray  # (N,) bool
    labels: np.ndarray | None  # (N,) int
    highlight: np.ndarray | None  # (N,) bool


@dataclass
class _Artists:
    """The matplotlib artists of one panel that change from frame to frame."""

    ax: object
    positions: np.ndarray  # (F, N, 2)
    order: np.ndarray  # indices of the drawn points, light ones first
    scatter: object
    caption: object
    edges: object = None
    edge_pairs: np.ndarray | None = None
    handles: object = None
    handle_labels: list = field(default_factory=list)

    def moving(self) -> list:
        """In drawing order."""
        out = [a for a in (self.edges, self.handles) if a is not None]
        return out + [self.scatter, *self.handle_labels, self.caption]


# --------------------------------------------------------------------------- validation


def _per_panel(value, names: Sequence[str], what: str):
    """``value`` for each panel: a mapping keyed by panel name, or one value shared by all."""
    if isinstance(value, Mapping):
        missing = [k for k in names if k not in value]
        if missing:
            raise ValueError(f"{what} has no entry for panel(s) {missing}; keys: {list(value)}")
        return [value[k] for k in names]
    return [value] * len(names)


def _panels(points, labels, highlight) -> tuple[list[_Panel], int, int]:
    if isinstance(points, Mapping):
        if not points:
            raise ValueError("points is an empty mapping: give at least one panel")
        names = [str(k) for k in points]
        arrays = list(points.values())
    else:
        names, arrays = [""], [points]
    panels, ndim, n_key = [], None, None
    for name, X, y, h in zip(names, arrays, _per_panel(labels, names, "labels"),
                             _per_panel(highlight, names, "highlight")):
        where = f" (panel {name!r})" if name else ""
        X = np.array(X, dtype=np.float64)
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3:
            raise ValueError(f"points{where} must have shape (N, n) or keyframes (K, N, n), "
                             f"got {X.shape}")
        K, N, n = X.shape
        if n < 2:
            raise ValueError(f"points{where} must have at least 2 dimensions for a 2-D view, "
                             f"got n = {n}")
        if K < 1:
            raise ValueError(f"points{where} has no keyframe")
        if ndim is not None and (n != ndim or n_key != K):
            raise ValueError(f"every panel must have the same dimension and keyframes; "
                             f"panel {name!r} has (K, n) = ({K}, {n}), not ({n_key}, {ndim})")
        ndim, n_key = n, K
        dropped = ~np.all(np.isfinite(X), axis=(0, 2))
        X[:, dropped] = 0.0  # left out of the drawing; zeros keep the arithmetic quiet
        if y is not None:
            y = np.asarray(y)
            if y.shape != (N,) or not np.issubdtype(y.dtype, np.integer) or (N and y.min() < 0):
                raise ValueError(f"labels{where} must be {N} non-negative integers, got shape "
                                 f"{y.shape} dtype {y.dtype}")
        if h is not None:
            h = np.asarray(h)
            if h.shape != (N,) or h.dtype != bool:
                raise ValueError(f"highlight{where} must be a boolean array of shape ({N},)")
        panels.append(_Panel(name, X, dropped, y, h))
    return panels, ndim, n_key


def _check_edges(edges, N: int) -> np.ndarray | None:
    if edges is None:
        return None
    E = np.asarray(edges)
    if E.ndim != 2 or E.shape[1] != 2 or (E.size and not np.issubdtype(E.dtype, np.integer)):
        raise ValueError(f"edges must be integer pairs of shape (M, 2), got {E.shape} {E.dtype}")
    if E.size and (E.min() < 0 or E.max() >= N):
        raise ValueError(f"edges refer to points outside [0, {N})")
    return E.astype(np.intp)


# --------------------------------------------------------------------------- frames


def render_frames(points, *, tour: Tour | None = None, frames: int = defaults.FRAMES,
                  fps: float = defaults.FPS,
                  dt: float | None = None, labels=None, highlight=None,
                  handle_scale: float | None = None, seed=defaults.SEED) -> TourFrames:
    """Trace the animation without drawing it: the 2-D positions of every frame.

    Frame 0 shows the tour as it is; before each later frame the tour steps by ``dt``
    seconds. The tour is left at the last frame's state (``(frames-1) * dt`` seconds on).

    Parameters
    ----------
    points : array of shape (N, n) or (K, N, n), or a mapping name -> such arrays
        The data; ``K`` keyframes are interpolated linearly so that frame 0 shows
        keyframe 0 and the last frame keyframe ``K-1``. A mapping gives side-by-side
        panels (e.g. ``{"train": ..., "test": ...}``) under one tour.
    tour : Tour, optional
        Default ``GrandTour(n, seed=seed)``.
    frames : int
        Number of frames ``F >= 1``.
    fps : float
        Frames per second of the animation.
    dt : float, optional
        Tour seconds per frame; default ``1 / fps``. ``0`` holds one fixed view.
    labels, highlight
        Only checked here (see :func:`render_tour`).
    handle_scale : float, optional
        Length of a unit axis handle in data units. Default 1 (for a softmax layer
        each handle ends at its class's vertex), or half the data's extent when that
        is more than 4 times larger or smaller (so handles stay visible and in scale).
    seed : int
        Seed of the default tour.

    Returns
    -------
    TourFrames
    """
    panels, n, K = _panels(points, labels, highlight)
    return _trace(panels, n, K, tour=tour, frames=frames, fps=fps, dt=dt,
                  handle_scale=handle_scale, seed=seed, stacklevel=3)


def _trace(panels: list[_Panel], n: int, K: int, *, tour, frames, fps, dt, handle_scale, seed,
           stacklevel: int) -> TourFrames:
    frames = _check_frames(frames)
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    dt = 1.0 / fps if dt is None else float(dt)
    if tour is None:
        tour = GrandTour(n, seed=seed)
    elif tour.ndim != n:
        raise ValueError(f"the tour is {tour.ndim}-dimensional but the points have n = {n}")
    positions = [np.empty((frames, p.data.shape[1], 2)) for p in panels]
    handles = np.empty((frames, n, 2))
    times = np.empty(frames)
    keyframe = np.linspace(0.0, K - 1.0, frames) if frames > 1 else np.zeros(1)
    for f in range(frames):
        if f:
            tour.step(dt)
        i0 = min(int(keyframe[f]), K - 2) if K > 1 else 0
        w = keyframe[f] - i0
        for p, pos in zip(panels, positions):
            X = p.data[i0] if K == 1 or w == 0.0 else (1.0 - w) * p.data[i0] + w * p.data[i0 + 1]
            pos[f] = tour.project(X)
            pos[f, p.dropped] = np.nan
        handles[f] = tour.handles()
        times[f] = tour.time
    reach = max((float(np.nanmax(np.abs(pos))) if np.any(np.isfinite(pos)) else 0.0)
                for pos in positions)
    if handle_scale is None:
        handle_scale = 1.0 if 0.25 <= reach <= 4.0 else 0.5 * reach
    handle_scale = float(handle_scale)
    if not (math.isfinite(handle_scale) and handle_scale > 0):
        raise ValueError(f"handle_scale must be a positive number, got {handle_scale}")
    reach = max(reach, handle_scale * float(np.max(np.abs(handles))))
    dropped = tuple(p.dropped for p in panels)
    n_out = sum(int(d.sum()) for d in dropped)
    if n_out:
        total = sum(len(d) for d in dropped)
        warnings.warn(f"{n_out} of {total} points have NaN or infinite coordinates and are "
                      "left out of the drawing", NonFiniteWarning, stacklevel=stacklevel)
    return TourFrames(
        names=tuple(p.name for p in panels),
        positions=tuple(positions),
        dropped=dropped,
        handles=handles,
        times=times,
        keyframe=keyframe,
        extent=reach if reach > 0 else 1.0,
        handle_scale=handle_scale,
    )


def _check_frames(frames) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    return int(frames)


# --------------------------------------------------------------------------- drawing


def _rgb(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    return np.array([int(h[k:k + 2], 16) / 255.0 for k in (0, 2, 4)])


def _class_table(count: int, size: int | None = None) -> np.ndarray:
    """The colours (the viewer's) of classes ``0 .. size-1`` among ``count`` classes,
    (size, 3) in [0, 1]; ``size`` defaults to ``count``."""
    size = max(1, count if size is None else size)
    rgb = [palette.class_color(c, count) for c in range(size)]
    return np.array(rgb, dtype=np.float64) / 255.0


def _figure_classes(panels: Sequence[_Panel], class_names) -> np.ndarray:
    """The class colours of a figure, one row per label up to the largest. The colours
    are chosen, as on the page, for one class per class name (without names, per label)."""
    top = max((int(p.labels.max()) for p in panels if p.labels is not None and p.labels.size),
              default=0)
    return _class_table(len(class_names) if class_names else top + 1, top + 1)


def _colours(labels, highlight, N: int, table: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face colours (N, 4), sizes (N,), and drawing order (light points first).

    ``table`` (C, 3) in [0, 1] holds the colour of every label (:func:`_figure_classes`)."""
    if labels is None:
        rgb = np.tile(table[0], (N, 1))
    else:
        rgb = table[labels]
    sizes = np.full(N, 9.0)
    order = np.arange(N)
    if highlight is not None:
        light = ~highlight
        rgb = rgb.copy()
        rgb[light] = rgb[light] + LIGHTEN * (1.0 - rgb[light])
        sizes[highlight] = 30.0
        order = np.concatenate([np.flatnonzero(light), np.flatnonzero(highlight)])
    return np.column_stack([rgb, np.ones(N)]), sizes, order


def _caption_format(step: float) -> int:
    """Decimals that tell consecutive frames apart (so no two GIF frames are identical)."""
    if step <= 0:
        return 0
    return max(0, min(6, math.ceil(-math.log10(step) + 1e-9)))


def render_tour(points, path, *, tour: Tour | None = None, labels=None, class_names=None,
                edges=None, frames: int = defaults.FRAMES, fps: float = defaults.FPS,
                dt: float | None = None,
                handles: bool = True, title: str | None = None,
                size: tuple[float, float] = (6, 6), axis_names: Sequence[str] | None = None,
                highlight=None, keyframe_values=None, keyframe_label: str = "epoch",
                handle_scale: float | None = None, dpi: int = 80, seed=defaults.SEED) -> Path:
    """Draw the Grand Tour of ``points`` into an animated GIF or a folder of PNG frames.

    Parameters
    ----------
    points : array of shape (N, n) or (K, N, n), or a mapping name -> such arrays
        See :func:`render_frames`. A mapping draws side-by-side panels, one per key,
        under the same tour.
    path : str or Path
        ``*.gif``: an animated GIF (looping). A directory, or a path without a suffix:
        PNG frames ``frame_0000.png, ...`` in that directory (created).
    tour : Tour, optional
        Default ``GrandTour(n, seed=seed)``; it is advanced as the animation plays.
    labels : int array of shape (N,), or a mapping per panel, optional
        Class of each point: its colour (the viewer's, :mod:`grandtour.palette`) and
        legend.
    class_names : sequence of str, optional
        Legend entries (and handle labels when there is one axis per class, as in a
        softmax layer). Their number chooses the colours, as on the page: up to ten
        classes :data:`PALETTE`, more evenly spaced hues. Default one class per label
        up to the largest.
    edges : int array of shape (M, 2), optional
        Line segments between points (e.g. the edges of a hypercube).
    frames, fps, dt, handle_scale, seed
        See :func:`render_frames`.
    handles : bool
        Draw the axis handles (up to 100 axes; labelled up to 20).
    title : str, optional
    size : (width, height)
        Inches per panel.
    axis_names : sequence of str, optional
        Handle labels; default the class names when ``n == len(class_names)``, else
        the axis indices.
    highlight : bool array of shape (N,), or a mapping per panel, optional
        Highlighted points are drawn in full colour, large and on top; the others
        light (blended towards white).
    keyframe_values : array of shape (K,), optional
        The value each keyframe stands for (epoch numbers, step numbers), shown
        interpolated in each frame's caption as ``"{keyframe_label} {value}"``.
        Without keyframes the caption is the tour time.
    keyframe_label : str
    dpi : int

    Returns
    -------
    Path
        The GIF, or the folder of PNG frames.
    """
    path = Path(path)
    as_gif = path.suffix.lower() == ".gif"
    if not as_gif and path.suffix and not path.is_dir():
        raise ValueError(f"{path}: write a .gif, or give a directory for PNG frames")
    panels, n, K = _panels(points, labels, highlight)
    E = _check_edges(edges, panels[0].data.shape[1])
    if class_names is not None:
        class_names = [str(c) for c in class_names]
    if axis_names is None:
        axis_names = (class_names if class_names is not None and len(class_names) == n
                      else [str(i) for i in range(n)])
    elif len(axis_names) != n:
        raise ValueError(f"axis_names has {len(axis_names)} names for {n} axes")
    if keyframe_values is not None:
        keyframe_values = np.asarray(keyframe_values, dtype=np.float64)
        if keyframe_values.shape != (K,):
            raise ValueError(f"keyframe_values must have one value per keyframe ({K}), "
                             f"got shape {keyframe_values.shape}")

    tf = _trace(panels, n, K, tour=tour, frames=frames, fps=fps, dt=dt,
                handle_scale=handle_scale, seed=seed, stacklevel=3)

    # Captions: the data's keyframe value when the data move, else the tour time.
    if keyframe_values is not None and K > 1:
        cap_values = np.interp(tf.keyframe, np.arange(K), keyframe_values)
        cap_prefix, cap_unit = f"{keyframe_label} ", ""
    else:
        cap_values, cap_prefix, cap_unit = tf.times, "t = ", " s"
    steps = np.abs(np.diff(cap_values))
    if tf.n_frames > 1 and not np.all(steps > 0):
        # Pillow merges identical consecutive GIF frames: number them instead.
        captions = [f"frame {f + 1}/{tf.n_frames}" for f in range(tf.n_frames)]
    else:
        decimals = _caption_format(float(steps.min()) if steps.size else 1.0)
        captions = [f"{cap_prefix}{v:.{decimals}f}{cap_unit}" for v in cap_values]

    table = _figure_classes(panels, class_names)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n_panels = len(panels)
    has_legend = any(p.labels is not None for p in panels)
    fig = Figure(figsize=(size[0] * n_panels, size[1] + (0.4 if has_legend else 0.0)), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    lim = 1.12 * tf.extent  # room for the labels at the handle tips
    artists = []
    for k, p in enumerate(panels):
        ax = fig.add_subplot(1, n_panels, k + 1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        if p.name:
            ax.set_title(p.name)
        keep = np.flatnonzero(~p.dropped)
        colours, sizes, order = _colours(p.labels, p.highlight, p.data.shape[1], table)
        order = order[np.isin(order, keep)]
        art = _Artists(ax=ax, positions=tf.positions[k], order=order,
                       scatter=ax.scatter(np.zeros(len(order)), np.zeros(len(order)),
                                          s=sizes[order], c=colours[order], linewidths=0,
                                          zorder=2),
                       caption=ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=9,
                                       color="#333333"))
        if E is not None and len(E):
            art.edge_pairs = E[~(p.dropped[E[:, 0]] | p.dropped[E[:, 1]])]
            art.edges = ax.add_collection(LineCollection([], colors=NEUTRAL, linewidths=0.8,
                                                         alpha=0.6, zorder=1))
        if handles and n <= MAX_HANDLES:
            art.handles = ax.add_collection(LineCollection([], colors=HANDLE,
                                                           linewidths=1.0, zorder=3))
            if n <= MAX_LABELLED_AXES:
                art.handle_labels = [ax.text(0, 0, name, fontsize=8, ha="center",
                                             va="center", color=HANDLE, zorder=4)
                                     for name in axis_names]
        artists.append(art)
    if has_legend:
        present = np.unique(np.concatenate([p.labels[~p.dropped] for p in panels
                                            if p.labels is not None]))
        names = class_names or []
        proxies = [Line2D([], [], marker="o", linestyle="", markersize=6, markeredgewidth=0,
                          color=table[c],
                          label=names[c] if c < len(names) else str(c)) for c in present]
        fig.legend(handles=proxies, loc="lower center", ncol=min(len(proxies), 10),
                   fontsize=8, frameon=False, handletextpad=0.1, columnspacing=0.8)
    # Fixed margins in inches (not tight_layout, which squeezes equal-aspect panels).
    fig_w, fig_h = fig.get_size_inches()
    top = 0.1 + (0.3 if any(p.name for p in panels) else 0.0) + (0.35 if title else 0.0)
    bottom = 0.1 + (0.4 if has_legend else 0.0)
    fig.subplots_adjust(left=0.1 / fig_w, right=1 - 0.1 / fig_w, bottom=bottom / fig_h,
                        top=1 - top / fig_h, wspace=0.05)
    if title:
        fig.suptitle(title, y=1 - 0.08 / fig_h, va="top")

    for art in artists:
        for a in art.moving():
            a.set_animated(True)  # drawn per frame on top of the saved static background
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)

    def draw(f: int) -> np.ndarray:
        canvas.restore_region(background)
        for art in artists:
            xy = art.positions[f]
            if art.edges is not None:
                art.edges.set_segments(np.stack([xy[art.edge_pairs[:, 0]],
                                                 xy[art.edge_pairs[:, 1]]], axis=1))
            h = tf.handle_scale * tf.handles[f]
            if art.handles is not None:
                art.handles.set_segments(np.stack([np.zeros_like(h), h], axis=1))
            art.scatter.set_offsets(xy[art.order])
            for t, hi in zip(art.handle_labels, h):
                t.set_position(hi * 1.08)
            art.caption.set_text(captions[f])
            for a in art.moving():  # edges, handles, then points: clusters at a vertex stay visible
                art.ax.draw_artist(a)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    from PIL import Image

    if as_gif:
        path.parent.mkdir(parents=True, exist_ok=True)
        present = np.unique(np.concatenate([p.labels[~p.dropped] for p in panels
                                            if p.labels is not None] or [np.zeros(1, int)]))
        first = draw(0)
        gif_palette = _gif_palette(Image, table[present], first)
        # One fixed palette, no dithering: no flicker between frames, fast, small files.
        images = [Image.fromarray(first if f == 0 else draw(f)).quantize(
                      palette=gif_palette, dither=Image.Dither.NONE)
                  for f in range(tf.n_frames)]
        images[0].save(path, save_all=True, append_images=images[1:],
                       duration=max(1, round(1000.0 / float(fps))), loop=0)
    else:
        path.mkdir(parents=True, exist_ok=True)
        for f in range(tf.n_frames):
            Image.fromarray(draw(f)).save(path / f"frame_{f:04d}.png")
    return path


def _gif_palette(Image, classes: np.ndarray, first: np.ndarray):
    """A fixed 256-colour palette holding every colour we draw, light and full, plus
    their blends with white (antialiased edges) and a grey ramp (text).

    ``classes`` (C, 3) in [0, 1] are the class colours drawn. With so many classes that
    their blends do not fit, fewer blends; past about 120 classes, the adaptive palette
    of the first frame ``first`` (H, W, 3)."""
    base = list(classes) + [c + LIGHTEN * (1.0 - c) for c in classes] + [_rgb(NEUTRAL)]
    for blends, greys in (((0.0, 0.3, 0.55, 0.8), 32), ((0.0, 0.55), 24), ((0.0,), 16)):
        if len(base) * len(blends) + greys <= 256:
            break
    else:
        return Image.fromarray(first).quantize(colors=256, dither=Image.Dither.NONE)
    colours = [c + t * (1.0 - c) for c in base for t in blends]
    colours += [np.full(3, g) for g in np.linspace(0.0, 1.0, greys)]
    table = np.clip(np.round(np.array(colours) * 255), 0, 255).astype(np.uint8)
    table = np.concatenate([table, np.zeros((256 - len(table), 3), np.uint8)])
    pal = Image.new("P", (1, 1))
    pal.putpalette(table.ravel().tolist())
    return pal


def plot_class_metric(values, path, *, epochs=None, class_names=None,
                      ylabel: str = "test loss", title: str | None = None,
                      size: tuple[float, float] = (7, 4.5), dpi: int = 100,
                      log: bool = False) -> Path:
    """A static line plot of a per-class metric across epochs (one line per class).

    Parameters
    ----------
    values : array of shape (E, C)
        E.g. ``Run.metrics("test")["class_loss"]``.
    path : str or Path
        The image file (format from the suffix, e.g. ``.png``).
    epochs : array of shape (E,), optional
        Default ``0..E-1``.
    class_names : sequence of str, optional
    log : bool
        Logarithmic y axis.

    Returns
    -------
    Path
    """
    V = np.asarray(values, dtype=np.float64)
    if V.ndim != 2:
        raise ValueError(f"values must have shape (epochs, classes), got {V.shape}")
    E, C = V.shape
    x = np.arange(E) if epochs is None else np.asarray(epochs, dtype=np.float64)
    if x.shape != (E,):
        raise ValueError(f"epochs must have {E} entries, got shape {x.shape}")
    names = [str(c) for c in (class_names if class_names is not None else range(C))]
    if len(names) != C:
        raise ValueError(f"class_names has {len(names)} names for {C} classes")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    table = _class_table(C)
    for c in range(C):
        ax.plot(x, V[:, c], color=table[c], label=names[c], linewidth=1.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, ncol=2, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
