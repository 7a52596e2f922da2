"""``grandtour export --video``: frames that are the viewer's picture for a saved view.

A view is set up in the page and saved with *Save view*; the video made from that preset
(its own server and browser) must start on the picture the page shows for the same preset
(a screenshot of the panels taken separately), and have seconds x fps frames.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from browser_kit import pause, screenshot, wait_settled

from grandtour.errors import GrandTourError
from grandtour.export.video import parse_size, write_video
from grandtour.tour import GrandTour

SIZE = (480, 320)


def _views(page) -> dict:
    r = page.evaluate("(() => { const r = document.getElementById('views').getBoundingClientRect();"
                      " return {x: r.left, y: r.top, width: r.width, height: r.height}; })()")
    return {k: round(v) for k, v in r.items()}


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)


@pytest.fixture(scope="module")
def view(browser, server, tmp_path_factory):
    """A saved view (the adversarial record at step 0, class 2 hidden, zoomed, a chosen matrix) and a screenshot of the
    panels for it, taken in a window that gives the panels SIZE (the video's frame size)."""
    tmp = tmp_path_factory.mktemp("video")
    ctx = browser.new_context(viewport={"width": 720, "height": 480}, accept_downloads=True)
    try:
        page = ctx.new_page()
        page.goto(server.url)
        page.wait_for_function("window.grandtour !== undefined", timeout=15000)
        page.evaluate("window.grandtour.ready")
        pause(page)
        page.select_option("#adv-select", "default")  # the adversarial record, at its epoch (the last)
        page.wait_for_function("window.grandtour.state().adversarial === 'default'")
        wait_settled(page, timeout=20000)
        page.click("#legend li[data-class='2']")
        page.click("#zoom-in")
        page.evaluate("(m) => window.grandtour.setMatrix(m)", GrandTour(10, seed=3).step(0.7).matrix.tolist())
        with page.expect_download() as dl:
            page.click("#preset-save")
        preset = tmp / "view.json"
        dl.value.save_as(preset)
        page.close()
        # The picture the page shows for that preset, loaded fresh as a user would.
        page = ctx.new_page()
        page.goto(server.url)
        page.wait_for_function("window.grandtour !== undefined", timeout=15000)
        page.evaluate("window.grandtour.ready")
        page.set_input_files("#preset-file", str(preset))
        page.wait_for_function("(() => { const s = window.grandtour.state();"
                               " return s.epoch === 2 && s.adversarial === 'default' && !s.playing; })()")
        wait_settled(page, timeout=20000)
        # The window in which the panels are SIZE (this server's page also has a run picker).
        for _ in range(4):
            box = _views(page)
            vp = page.viewport_size
            page.set_viewport_size({"width": vp["width"] + SIZE[0] - box["width"],
                                    "height": vp["height"] + SIZE[1] - box["height"]})
            page.evaluate("window.grandtour.frames(2)")
        box = _views(page)
        assert (box["width"], box["height"]) == SIZE
        shot = screenshot(page, box)
        page.fill("#epoch-slider", "1")  # a wrong picture: the same view at the epoch before
        wait_settled(page, timeout=20000)
        other = screenshot(page, box)
    finally:
        ctx.close()
    return {"preset": preset, "shot": shot, "other": other, "tmp": tmp}


def test_the_first_frame_is_the_pages_picture_and_the_frame_count_is_seconds_x_fps(runs, view):
    import imageio.v3 as iio

    out = view["tmp"] / "view.mp4"
    info = write_video(runs["digits"], out, preset=view["preset"], animate="adversarial", seconds=1.0, fps=20,
                       size=SIZE, progress=False)
    assert (info["frames"], info["fps"], info["size"]) == (20, 20, list(SIZE))
    assert info["path"] == str(out) and info["bytes"] == out.stat().st_size > 0
    frames = iio.imread(out)
    assert frames.shape == (20, SIZE[1], SIZE[0], 3)
    meta = iio.immeta(out)
    assert meta["fps"] == 20 and meta["codec"] == "h264"
    # H.264 (yuv420p, crf 18) is lossy: small differences everywhere, larger ones at the
    # 1-2 px point edges (chroma is stored at half resolution); the export's software
    # compositing also anti-aliases the overlay's edges a few levels differently. A wrong
    # picture (the same view one epoch before) differs far more.
    d = _diff(frames[0], view["shot"])
    wrong = _diff(frames[0], view["other"])
    print(f"first frame vs page: mean {d.mean():.2f}, p99 {np.percentile(d, 99):.0f}; "
          f"vs the epoch before: mean {wrong.mean():.2f}, p99 {np.percentile(wrong, 99):.0f}")
    assert d.mean() < 3 and np.percentile(d, 99) < 60
    assert wrong.mean() > 2 * d.mean() and np.percentile(wrong, 99) > 2 * np.percentile(d, 99)
    # The record's 6 steps play at the page's rate (12 a second: over by frame 10), then the
    # last step is held (a second) before a replay.
    change = [_diff(frames[k + 1], frames[k]).mean() for k in range(len(frames) - 1)]
    moving, held = change[:4], change[12:]
    assert min(moving) > 10 * max(held) + 0.1, np.round(change, 3)


def test_a_gif_has_seconds_x_fps_frames_lasting_seconds_and_starts_on_the_view(runs, view):
    out = view["tmp"] / "view.gif"
    info = write_video(runs["digits"], out, preset=view["preset"], seconds=0.5, fps=10, size=SIZE, progress=False)
    assert info["frames"] == 5
    with Image.open(out) as im:
        assert (im.n_frames, im.size) == (5, SIZE)
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
            if k == 0:
                first = np.asarray(im.convert("RGB"))
    # Pillow merges identical consecutive frames: five frames, so the tour moved every frame.
    assert sum(durations) == 500
    # 256 colours a frame, no dithering: nearly the page's picture.
    d = _diff(first, view["shot"])
    assert d.mean() < 2 and np.percentile(d, 99) < 40, (d.mean(), np.percentile(d, 99))


def test_a_view_the_page_refuses_is_a_clear_error(runs, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "layer": "no-such-layer", "epoch": 0}))
    with pytest.raises(GrandTourError, match="no layer no-such-layer"):
        write_video(runs["digits"], tmp_path / "x.mp4", preset=bad, seconds=0.1, fps=10, size=SIZE, progress=False)
    assert list(tmp_path.iterdir()) == [bad]  # nothing half-written


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"animate": "spin"}, "choose one of tour, epochs, layers, adversarial"),
    ({"size": "1280by720"}, "as WxH"),
    ({"size": "0x720"}, "width must be between"),
    ({"size": (1281, 720)}, "even width and height"),
    ({"size": (12.5, 720)}, "whole numbers"),
    ({"fps": 0}, "positive whole number"),
    ({"fps": 2.5}, "positive whole number"),
    ({"seconds": float("nan")}, "positive number"),
    ({"seconds": 0.001}, "between 1 and"),
    ({"preset": "missing.json"}, "no such file"),
    ({"out": "x.avi"}, "must end in .mp4 or .gif"),
    ({"out": "nowhere/x.mp4"}, "does not exist"),
    ({"out": "x.gif", "fps": 60}, "at most 50"),
    ({"browser": "/no/such/chromium"}, "no such executable"),
])
def test_bad_inputs_are_clear_errors(runs, tmp_path, monkeypatch, kwargs, message):
    monkeypatch.chdir(tmp_path)
    out = kwargs.pop("out", "x.mp4")
    with pytest.raises(GrandTourError, match=message):
        write_video(runs["digits"], out, **{"seconds": 1, "fps": 10, "size": SIZE, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_bad_preset_files_and_runs(runs, tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, message in (("junk.json", "not a JSON view"), ("list.json", "a view is a JSON object")):
        with pytest.raises(GrandTourError, match=message):
            write_video(runs["digits"], tmp_path / "x.mp4", preset=tmp_path / name)
    with pytest.raises(GrandTourError, match="adversarial record"):
        write_video(runs["plain"], tmp_path / "x.mp4", animate="adversarial")
    with pytest.raises(GrandTourError):
        write_video(tmp_path / "not-a-run", tmp_path / "x.mp4")
    assert parse_size(" 640 x 360 ") == (640, 360) and parse_size((64, 4096)) == (64, 4096)


def test_the_command_says_what_is_wrong_and_exits_2(runs, tmp_path, capsys):
    from grandtour.cli import main

    for argv, message in (
        (["--size", "1280"], "as WxH"),
        (["--seconds", "-1"], "positive number"),
        (["--preset", str(tmp_path / "missing.json")], "no such file"),
    ):
        assert main(["export", str(runs["digits"]), "--video", str(tmp_path / "v.mp4"), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:  # argparse refuses an unknown animation
        main(["export", str(runs["digits"]), "--video", str(tmp_path / "v.mp4"), "--animate", "spin"])
    assert exc.value.code == 2 and "invalid choice: 'spin'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_no_browser_is_a_clear_error(monkeypatch):
    from grandtour.export import video

    monkeypatch.delenv("GRANDTOUR_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(video, "CHROMIUM", "/no/such/chromium")
    with pytest.raises(GrandTourError, match="apt-get install -y chromium"):
        video.find_browser()
