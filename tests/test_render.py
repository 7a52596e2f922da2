"""Rendering: the GIF has the frames asked for, and each frame draws tour.project of the data."""

import numpy as np
import pytest
from PIL import Image

from grandtour.render import NonFiniteWarning, plot_class_metric, render_frames, render_tour
from grandtour.shapes import softmax_simplex, tesseract
from grandtour.tour import GeodesicTour, GrandTour


def _replay(tour, X, frames, dt):
    """tour.project(X) after 0, 1, ..., frames-1 steps of dt: what frame f must show."""
    out = []
    for f in range(frames):
        if f:
            tour.step(dt)
        out.append(tour.project(X))
    return np.stack(out)


@pytest.mark.parametrize("make_tour", [lambda n: GrandTour(n, seed=3),
                                       lambda n: GeodesicTour(n, seed=3, speed=2.0)])
def test_positions_are_tour_projections_with_dt_one_over_fps(make_tour):
    X = np.random.default_rng(0).standard_normal((40, 6))
    fps = 12
    tf = render_frames(X, tour=make_tour(6), frames=7, fps=fps)
    expected = _replay(make_tour(6), X, 7, 1.0 / fps)
    np.testing.assert_allclose(tf.positions[0], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tf.times, np.arange(7) / fps, atol=1e-12)
    # The view really moves (a tour that stood still would pass the equality above).
    assert np.max(np.abs(expected[-1] - expected[0])) > 0.05


def test_handles_are_first_two_columns_of_rows_of_GT():
    tour = GrandTour(5, seed=1)
    tf = render_frames(np.eye(5), tour=tour, frames=3, fps=10)
    np.testing.assert_allclose(tf.handles[-1], tour.matrix[:, :2], atol=1e-12)
    # The projection of e_i is the handle of axis i.
    np.testing.assert_allclose(tf.positions[0], tf.handles, atol=1e-12)


def test_explicit_dt_overrides_fps_and_zero_holds_the_view():
    X = np.random.default_rng(1).standard_normal((10, 4))
    tf = render_frames(X, tour=GrandTour(4, seed=0), frames=5, fps=30, dt=0.5)
    np.testing.assert_allclose(tf.positions[0], _replay(GrandTour(4, seed=0), X, 5, 0.5))
    still = render_frames(X, tour=GrandTour(4, seed=0), frames=5, dt=0.0)
    assert np.all(still.positions[0] == still.positions[0][0])


def test_keyframes_are_interpolated_linearly_and_hit_every_keyframe_end():
    rng = np.random.default_rng(2)
    K = rng.standard_normal((3, 20, 5))  # 3 keyframes
    tour = GrandTour(5, seed=4)
    F = tour.frame()
    tf = render_frames(K, tour=tour, frames=5, dt=0.0)  # keyframe positions 0, .5, 1, 1.5, 2
    np.testing.assert_allclose(tf.keyframe, [0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(tf.positions[0][0], K[0] @ F, atol=1e-12)
    np.testing.assert_allclose(tf.positions[0][1], (0.5 * K[0] + 0.5 * K[1]) @ F, atol=1e-12)
    np.testing.assert_allclose(tf.positions[0][2], K[1] @ F, atol=1e-12)
    np.testing.assert_allclose(tf.positions[0][4], K[2] @ F, atol=1e-12)


def test_extent_covers_every_point_of_every_frame_and_every_handle():
    X = np.random.default_rng(3).standard_normal((50, 8)) * 3
    tf = render_frames(X, tour=GrandTour(8, seed=0), frames=30, fps=2)  # large steps: big moves
    reach = np.abs(tf.positions[0]).max(axis=(1, 2))
    assert tf.extent >= reach.max() - 1e-12
    assert tf.extent >= tf.handle_scale * np.abs(tf.handles).max() - 1e-12
    assert reach.min() < reach.max()  # the reach varies: the extent must not be frame 0's


def test_gif_has_requested_frames_and_size(tmp_path):
    V, E = tesseract()
    out = render_tour(V, tmp_path / "sub" / "tess.gif", edges=E, frames=6, fps=10,
                      size=(3, 3), dpi=50, title="tesseract")
    assert out == tmp_path / "sub" / "tess.gif"
    with Image.open(out) as im:
        assert im.format == "GIF"
        assert im.n_frames == 6
        assert im.size == (150, 150)
        assert im.info.get("duration") == 100


def test_gif_with_static_view_still_has_every_frame(tmp_path):
    # With dt=0 and static data every picture is the same, and Pillow merges identical
    # GIF frames: the frames must still be there (a still is a valid animation).
    X = np.random.default_rng(0).standard_normal((20, 4))
    out = render_tour(X, tmp_path / "still.gif", dt=0.0, frames=9, size=(2, 2), dpi=40)
    with Image.open(out) as im:
        assert im.n_frames == 9
    # Keyframes that barely differ: the captions still tell the 50 frames apart.
    K = np.random.default_rng(1).standard_normal((2, 20, 4))
    out = render_tour(K, tmp_path / "k.gif", dt=0.0, frames=50, size=(2, 2), dpi=40,
                      keyframe_values=[0, 1])
    with Image.open(out) as im:
        assert im.n_frames == 50


def test_panels_and_labels_with_legend_render(tmp_path):
    P, y = softmax_simplex(n_classes=10, n_points=100, seed=0)
    out = render_tour({"train": P, "test": P[:60]}, tmp_path / "p.gif",
                      labels={"train": y, "test": y[:60]}, class_names=list("abcdefghij"),
                      frames=3, size=(2, 2), dpi=40)
    with Image.open(out) as im:
        assert im.n_frames == 3
        assert im.size == (160, 96)  # two panels of 2 in, plus 0.4 in of legend, at 40 dpi


def test_png_frames_into_directory(tmp_path):
    X = np.random.default_rng(0).standard_normal((10, 3))
    out = render_tour(X, tmp_path / "frames", frames=4, size=(2, 2), dpi=40)
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"frame_{i:04d}.png" for i in range(4)]
    with Image.open(out / files[0]) as im:
        assert im.size == (80, 80)


def test_frames_differ_as_the_tour_moves(tmp_path):
    V, E = tesseract()
    out = render_tour(V, tmp_path / "f", edges=E, frames=2, fps=1, size=(2, 2), dpi=40)
    a = np.asarray(Image.open(out / "frame_0000.png"))
    b = np.asarray(Image.open(out / "frame_0001.png"))
    assert np.mean(np.any(a != b, axis=-1)) > 0.01  # more than the caption changed


def test_nan_points_are_left_out_and_counted(tmp_path):
    X = np.random.default_rng(0).standard_normal((12, 4))
    X[3, 1] = np.nan
    X[7, 0] = np.inf
    with pytest.warns(NonFiniteWarning, match="2 of 12 points"):
        tf = render_frames(X, tour=GrandTour(4, seed=0), frames=3)
    assert tf.n_dropped == 2
    np.testing.assert_array_equal(np.flatnonzero(tf.dropped[0]), [3, 7])
    assert np.all(np.isnan(tf.positions[0][:, [3, 7]]))
    keep = np.ones(12, bool)
    keep[[3, 7]] = False
    expected = _replay(GrandTour(4, seed=0), X[keep], 3, 1 / 30)
    np.testing.assert_allclose(tf.positions[0][:, keep], expected)
    assert np.isfinite(tf.extent)
    with pytest.warns(NonFiniteWarning, match="2 of 12"):
        out = render_tour(X, tmp_path / "nan.gif", labels=np.arange(12) % 3, edges=[[3, 4], [0, 1]],
                          frames=2, size=(2, 2), dpi=40)
    with Image.open(out) as im:
        assert im.n_frames == 2


def test_nan_in_one_keyframe_drops_the_point_everywhere():
    K = np.random.default_rng(0).standard_normal((2, 5, 3))
    K[1, 2, 0] = np.nan
    with pytest.warns(NonFiniteWarning):
        tf = render_frames(K, frames=3, dt=0.0)
    assert np.all(np.isnan(tf.positions[0][:, 2]))
    assert np.all(np.isfinite(np.delete(tf.positions[0], 2, axis=1)))


@pytest.mark.parametrize("kw, match", [
    ({"points": np.zeros((5, 1))}, "at least 2"),
    ({"points": np.zeros(5)}, "shape"),
    ({"frames": 0}, "frames"),
    ({"fps": 0}, "fps"),
    ({"labels": np.arange(4)}, "labels"),
    ({"labels": np.linspace(0, 1, 5)}, "labels"),
    ({"tour": GrandTour(4)}, "4-dimensional"),
])
def test_bad_input_is_rejected_with_a_message(kw, match):
    args = {"points": np.zeros((5, 3))} | kw
    with pytest.raises(ValueError, match=match):
        render_frames(args.pop("points"), **args)


def test_bad_path_and_edges_are_rejected(tmp_path):
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match="gif"):
        render_tour(X, tmp_path / "x.mp4", frames=1)
    with pytest.raises(ValueError, match="edges"):
        render_tour(X, tmp_path / "x.gif", edges=[[0, 9]], frames=1)


def test_class_metric_plot(tmp_path):
    values = np.abs(np.random.default_rng(0).standard_normal((5, 3))) + 0.1
    out = plot_class_metric(values, tmp_path / "loss.png", class_names=["a", "b", "c"], log=True)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (700, 450)
    with pytest.raises(ValueError, match="class_names"):
        plot_class_metric(values, tmp_path / "x.png", class_names=["a"])


def _class_cloud(count: int):
    rng = np.random.default_rng(0)
    labels = np.arange(20 * count) % count
    centres = rng.standard_normal((count, 4)) * 3
    return centres[labels] + 0.05 * rng.standard_normal((len(labels), 4)), labels


@pytest.mark.parametrize("count", [10, 13, 27])
def test_gif_draws_every_class_in_its_own_colour(tmp_path, count):
    """The GIF's fixed palette holds the class colours of the figure (the viewer's,
    grandtour.palette), beyond ten classes too: each class shows its exact colour."""
    from grandtour.palette import class_colors

    X, labels = _class_cloud(count)
    out = render_tour(X, tmp_path / "c.gif", labels=labels, frames=2, handles=False, dpi=60,
                      class_names=[str(c) for c in range(count)])
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    drawn = {tuple(int(v) for v in p) for p in np.unique(pixels, axis=0)}
    expected = class_colors(count)
    assert len(set(expected)) == count
    missing = [c for c, rgb in enumerate(expected) if rgb not in drawn]
    assert missing == [], f"classes drawn without their colour: {missing}"


def test_gif_of_more_classes_than_a_palette_can_blend_still_renders(tmp_path):
    X, labels = _class_cloud(150)
    out = render_tour(X, tmp_path / "c.gif", labels=labels, frames=3, handles=False, dpi=40)
    with Image.open(out) as im:
        assert im.n_frames == 3
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 100
