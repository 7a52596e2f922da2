"""``grandtour export RUN --video OUT.mp4|OUT.gif``: a video whose frames are the viewer's picture.

There is no second renderer: the run is served in-process (:mod:`grandtour.server` on a
free loopback port), the viewer page is opened in headless chromium through Playwright,
the view is set with the page's own *Load view* (a preset saved with *Save view*), and the
page's clock is taken over (the test hook's ``manual`` / ``step``): every frame advances
the page by exactly ``1 / fps`` seconds, whatever this machine's speed, and the panels are
captured with a screenshot. So each frame is the page's picture for that moment: the same
tour matrix, zoom and pan, colours, handles and labels.

``size`` is the size of the video's frames: the panels' area (``#views``) of the page. The
browser window is made as much larger as the page's controls around the panels need
(measured on the page, not assumed); the size of that window is returned as ``window``.

Animations (``animate``):

``tour``
    the Grand Tour plays from the view (a preset's paused tour is started).
``epochs``, ``layers``, ``adversarial``
    the page's play action of that animation (its keyboard shortcut: e, l, a), the tour
    paused; when it ends it holds for :data:`HOLD_SECONDS` and plays again, until the
    video's end. The page plays from the first epoch / layer / step when the view is at the
    last, and ``adversarial`` shows the run's first record when the view shows none.

MP4 is H.264 (yuv420p, for every player) through imageio-ffmpeg's ffmpeg, streamed: memory
does not grow with the length. GIF is written by Pillow, each frame quantised to its own
256 colours, frame delays in whole hundredths of a second chosen so that the total is the
video's length; consecutive identical frames are merged by Pillow (their delays added).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from grandtour import defaults
from grandtour.errors import CorruptFileError, GrandTourError

ANIMATIONS = defaults.VIDEO_ANIMATIONS
FORMATS = (".mp4", ".gif")
CHROMIUM = "/usr/bin/chromium"
# Headless chromium drawing WebGL2 on the CPU (SwiftShader, the same picture on every machine),
# with no background traffic of its own (updates, sync). The page is composited in software
# (--disable-gpu-compositing): a frame then costs a third to a tenth of one composited by SwiftShader
# (see BENCHMARKS.md); the WebGL points are the same pixels, the 2-D overlay's anti-aliased
# edges (lines, text) differ by a few levels.
# The flags are defined here once: the browser tests and the benchmarks start chromium with
# the same ones (the benchmarks' --gpu leaves SWIFTSHADER_FLAGS out).
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)
SWIFTSHADER_FLAGS = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader")
CHROMIUM_ARGS = (*SWIFTSHADER_FLAGS, "--disable-gpu-compositing", *CHROMIUM_FLAGS)
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_FPS = 120
GIF_MAX_FPS = 50  # GIF delays are whole hundredths of a second; players slow anything under 2
GIF_MAX_BYTES = 2 << 30  # GIF frames are held in memory (1 byte a pixel) until Pillow writes them
MAX_FRAMES = 100_000
HOLD_SECONDS = 1.0  # how long the end of an epoch/layer/adversarial animation is held before it replays
PAGE_TIMEOUT_MS = 60_000
# The page's own play/pause shortcuts (keyboard.js): they work whatever the controls show.
_PLAY_KEY = {"tour": "Space", "epochs": "e", "layers": "l", "adversarial": "a"}
_PLAYING = {"tour": "playing", "epochs": "epochPlaying", "layers": "layerPlaying", "adversarial": "advPlaying"}


# ---------------------------------------------------------------------------- checks


def parse_size(size) -> tuple[int, int]:
    """``"1280x720"`` or ``(1280, 720)`` -> ``(1280, 720)``; :class:`GrandTourError` otherwise."""
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m:
            raise GrandTourError(f"--size {size!r}: give the video's width and height in pixels as WxH, e.g. 1280x720")
        w, h = int(m.group(1)), int(m.group(2))
    else:
        try:
            w, h = size
        except (TypeError, ValueError):
            raise GrandTourError(f"size {size!r}: give (width, height) in pixels, e.g. (1280, 720)") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (w, h)):
            raise GrandTourError(f"size {size!r}: width and height must be whole numbers of pixels")
        w, h = int(w), int(h)
    for name, v in (("width", w), ("height", h)):
        if not MIN_SIDE <= v <= MAX_SIDE:
            raise GrandTourError(f"--size {w}x{h}: the {name} must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    return w, h


def _check_number(name: str, value, *, integer: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer and float(value) != int(value):
        ok = False
    if not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive whole number" if integer else "a positive number"
        raise GrandTourError(f"--{name} {value!r}: must be {kind}")
    return float(value)


def load_preset(preset) -> dict | None:
    """A preset (the page's *Save view* JSON) from a path or a mapping; None for None.

    Only its being a JSON object is checked here: the page checks the rest when it loads
    it (as *Load view* does) and its message is raised as a :class:`GrandTourError`.
    """
    if preset is None:
        return None
    if isinstance(preset, Mapping):
        return dict(preset)
    path = Path(preset)
    if not path.is_file():
        raise GrandTourError(f"--preset {path}: no such file (save one with the viewer's Save view button)")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"--preset {path} is not a JSON view saved by the viewer: {err}") from None
    if not isinstance(value, dict):
        raise CorruptFileError(f"--preset {path}: a view is a JSON object, this file holds a {type(value).__name__}")
    return value


def find_browser(browser=None) -> str:
    """The chromium executable: ``browser``, else ``$GRANDTOUR_CHROMIUM``, else Debian's
    ``/usr/bin/chromium``, else ``chromium`` on the PATH."""
    wanted = browser or os.environ.get("GRANDTOUR_CHROMIUM")
    if wanted:
        found = wanted if Path(wanted).is_file() else shutil.which(str(wanted))
        if not found:
            raise GrandTourError(f"browser {wanted}: no such executable (give the path of a chromium or chrome "
                                 "binary, with browser= or $GRANDTOUR_CHROMIUM)")
        return str(found)
    for candidate in (CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise GrandTourError("video export needs a chromium browser and none was found: install one "
                         "(Debian/Ubuntu: apt-get install -y chromium) or name it with $GRANDTOUR_CHROMIUM")


def _check_run(run, animate: str) -> list[str]:
    """Refuse what the run cannot show; returns its adversarial records' names."""
    from grandtour.store import Run

    r = Run.open(run)  # StoreError (a GrandTourError) naming what is wrong
    if not r.epochs:
        raise GrandTourError(f"run {run} has no committed epoch yet: nothing to draw")
    if animate == "epochs" and len(r.epochs) < 2:
        raise GrandTourError(f"--animate epochs: run {run} has one epoch ({r.epochs[0]}); nothing to play")
    if animate == "layers" and len(r.layers) < 2:
        raise GrandTourError(f"--animate layers: run {run} has one layer; nothing to play")
    if animate == "adversarial" and not r.adversarial_names():
        raise GrandTourError(f"--animate adversarial: run {run} has no adversarial record "
                             "(make one with `grandtour adversarial RUN`)")
    return list(r.adversarial_names())


def _imports():
    try:
        import imageio.v2 as imageio
        from PIL import Image
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError as err:
        raise GrandTourError(f"video export needs the Python package '{err.name.split('.')[0]}': "
                             "pip install 'grandtour[video]'") from None
    return imageio, Image, sync_playwright


# ---------------------------------------------------------------------------- writers


class _Mp4Writer:
    """H.264 through imageio-ffmpeg, frames streamed to ffmpeg."""

    def __init__(self, path: Path, fps: int, imageio) -> None:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ModuleNotFoundError:
            raise GrandTourError("MP4 export needs the Python package 'imageio-ffmpeg': "
                                 "pip install 'grandtour[video]' (or write a .gif)") from None
        # macro_block_size=1: frames are written at their size (even, checked), never rescaled.
        self._w = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                     pixelformat="yuv420p", quality=None, macro_block_size=1,
                                     ffmpeg_log_level="error",
                                     output_params=["-crf", "18", "-movflags", "+faststart"])

    def add(self, frame: np.ndarray) -> None:
        self._w.append_data(frame)

    def close(self) -> None:
        self._w.close()


class _GifWriter:
    """Pillow: each frame quantised to its own palette, delays summing to the length."""

    def __init__(self, path: Path, fps: int, Image) -> None:
        self._path, self._fps, self._Image = path, fps, Image
        self._frames = []

    def add(self, frame: np.ndarray) -> None:
        im = self._Image.fromarray(frame)
        self._frames.append(im.quantize(256, method=self._Image.Quantize.MEDIANCUT, dither=self._Image.Dither.NONE))

    def close(self) -> None:
        if not self._frames:
            return
        n = len(self._frames)
        ends = [round(100 * (k + 1) / self._fps) for k in range(n)]
        durations = [10 * (b - a) for a, b in zip([0, *ends[:-1]], ends)]  # ms, whole hundredths
        self._frames[0].save(self._path, format="GIF", save_all=True, append_images=self._frames[1:],
                             duration=durations, loop=0, disposal=1)
        self._frames = []


# ---------------------------------------------------------------------------- the page


@contextmanager
def _served_page(run, browser_exe: str, window: tuple[int, int], sync_playwright) -> Iterator:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from grandtour.server import ServerThread, create_app

    with ServerThread(create_app([run]), host="127.0.0.1", port=0) as srv, sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=browser_exe, headless=True, args=list(CHROMIUM_ARGS))
        except PlaywrightError as err:
            raise GrandTourError(f"the browser {browser_exe} did not start ({str(err).splitlines()[0]}); "
                                 "name another with $GRANDTOUR_CHROMIUM") from None
        try:
            ctx = b.new_context(viewport={"width": window[0], "height": window[1]}, device_scale_factor=1)
            page = ctx.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            requests = _Requests(page)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.page_url)
            page.wait_for_function("window.grandtour !== undefined")
            page.evaluate("window.grandtour.ready")
            state = page.evaluate("window.grandtour.state()")
            if state["status"] != "ready":
                raise GrandTourError(f"the viewer could not show run {run}: {state['error'] or errors}")
            yield page, requests
        except PlaywrightTimeout as err:
            raise GrandTourError(f"the viewer page did not answer within {PAGE_TIMEOUT_MS / 1000:g} s "
                                 f"({str(err).splitlines()[0]})") from None
        finally:
            b.close()


def _views_box(page) -> dict:
    r = page.evaluate("""() => { const r = document.getElementById('views').getBoundingClientRect();
                                 return {x: r.left, y: r.top, width: r.width, height: r.height}; }""")
    return {k: round(v) for k, v in r.items()}


def fit_window(page, size: tuple[int, int], tries: int = 4) -> tuple[tuple[int, int], dict]:
    """Resize the page's window until its panels' area (``#views``) is ``size``; returns the
    window size and the panels' box. :class:`GrandTourError` if the page's layout will not."""
    w, h = size
    win = (page.viewport_size["width"], page.viewport_size["height"])
    for _ in range(tries):
        box = _views_box(page)
        if (box["width"], box["height"]) == (w, h):
            return win, box
        win = (win[0] + w - box["width"], win[1] + h - box["height"])
        if not (0 < win[0] <= 2 * MAX_SIDE and 0 < win[1] <= 2 * MAX_SIDE):
            break
        page.set_viewport_size({"width": win[0], "height": win[1]})
        page.evaluate("window.grandtour.frames(2)")
    box = _views_box(page)
    if (box["width"], box["height"]) == (w, h):
        return win, box
    raise GrandTourError(f"--size {w}x{h}: the viewer's layout does not give its panels that size "
                         f"(closest: {box['width']}x{box['height']}: its controls need room); try a larger size")


def apply_preset(page, preset: dict, adversarial: Sequence[str] = ()) -> None:
    """Load ``preset`` with the page's own *Load view* (its file input) and wait until shown
    (``adversarial``: the run's records; the page ignores a preset's record the run lacks)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "view.json"
        path.write_text(json.dumps(preset))
        page.set_input_files("#preset-file", str(path))
        page.wait_for_function(
            """(p) => { const s = window.grandtour.state();
                        if (s.notice.startsWith('Could not load the view')) return true;
                        return s.layer === p.layer && s.epoch === p.epoch && !s.playing
                               && (!p.adversarial || s.adversarial === p.adversarial); }""",
            arg={"layer": preset.get("layer"), "epoch": preset.get("epoch"),
                 "adversarial": preset.get("adversarial") if preset.get("adversarial") in adversarial else None})
    notice = page.evaluate("window.grandtour.state().notice")
    if notice.startswith("Could not load the view"):
        raise GrandTourError(f"--preset: the viewer {notice[0].lower()}{notice[1:]}")


class _Requests:
    """The page's requests in flight (slices, transitions, thumbnails, metrics)."""

    def __init__(self, page) -> None:
        self.pending = 0
        self.page = page
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, _request) -> None:
        self.pending += 1

    def _end(self, _request) -> None:
        self.pending = max(0, self.pending - 1)

    def wait_idle(self, quiet_ms: int = 100) -> None:
        """Return once no request has been in flight for ``quiet_ms`` (events are delivered
        while Playwright waits)."""
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        quiet = 0
        while quiet < quiet_ms:
            if time.monotonic() > deadline:
                raise GrandTourError(f"the viewer still waits for {self.pending} requests after "
                                     f"{PAGE_TIMEOUT_MS / 1000:g} s")
            self.page.wait_for_timeout(25)
            quiet = quiet + 25 if self.pending == 0 else 0


def wait_still(page, requests: _Requests) -> None:
    """Wait until the page has everything it asked for (slices, thumbnails, metrics) and its
    positions reached their targets."""
    requests.wait_idle()
    page.wait_for_function(
        """() => { const s = window.grandtour.state();
                   return s.epochPos === s.epochIndex && s.layerPos === s.layerIndex
                          && !s.epochPlaying && !s.layerPlaying && !s.advPlaying
                          && (s.adversarial === null || s.advPos === s.advStep); }""")
    requests.wait_idle()
    page.evaluate("window.grandtour.frames(2)")


class _Capture:
    """Screenshots of the panels, through the DevTools protocol (PNG: lossless)."""

    def __init__(self, page, box: dict, Image) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.clip = {**box, "scale": 1}
        self.Image = Image

    def __call__(self) -> np.ndarray:
        shot = self.cdp.send("Page.captureScreenshot", {"format": "png", "clip": self.clip, "optimizeForSpeed": True})
        return np.asarray(self.Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))


# ---------------------------------------------------------------------------- the export


def write_video(run, out, *, preset=None, animate: str = defaults.VIDEO_ANIMATE,
                seconds: float = defaults.VIDEO_SECONDS, fps: int = defaults.FPS,
                size: Sequence[int] | str = defaults.VIDEO_SIZE, browser: str | None = None,
                progress: bool = True) -> dict:
    """Write a video of the viewer showing ``run``: ``seconds * fps`` frames of the page.

    Parameters
    ----------
    run : str or Path
        A run directory.
    out : str or Path
        ``.mp4`` (H.264) or ``.gif``; written whole or not at all (a temporary file in the
        same folder, renamed at the end).
    preset : str, Path or dict, optional
        A view saved with the viewer's *Save view* (layer, epoch, tour matrix, zoom, hidden
        classes, ...); default: the page's opening view.
    animate : {"tour", "epochs", "layers", "adversarial"}
    seconds, fps : float, int
        Length and frame rate; the video has ``round(seconds * fps)`` frames.
    size : (int, int) or "WxH"
        The frames' size in pixels: the page's panels; even for MP4.
    browser : str, optional
        A chromium executable (default ``$GRANDTOUR_CHROMIUM`` or ``/usr/bin/chromium``).
    progress : bool
        A tqdm progress bar on stderr.

    Returns
    -------
    dict
        ``path``, ``frames``, ``seconds`` (frames / fps), ``fps``, ``bytes``, ``size``
        ``[w, h]`` and ``window`` ``[w, h]`` (the browser window that gives the panels that size).
    """
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise GrandTourError(f"--video {out}: the file name must end in .mp4 or .gif")
    if not out.parent.is_dir():
        raise GrandTourError(f"--video {out}: folder {out.parent} does not exist")
    if animate not in ANIMATIONS:
        raise GrandTourError(f"--animate {animate!r}: choose one of {', '.join(ANIMATIONS)}")
    seconds = _check_number("seconds", seconds)
    fps = int(_check_number("fps", fps, integer=True))
    gif = out.suffix.lower() == ".gif"
    if fps > (GIF_MAX_FPS if gif else MAX_FPS):
        raise GrandTourError(f"--fps {fps}: at most {GIF_MAX_FPS if gif else MAX_FPS} for "
                             f"{'a GIF (whole hundredths of a second a frame)' if gif else 'a video'}")
    n_frames = round(seconds * fps)
    if not 1 <= n_frames <= MAX_FRAMES:
        raise GrandTourError(f"--seconds {seconds:g} at --fps {fps}: {n_frames} frames; "
                             f"give between 1 and {MAX_FRAMES}")
    w, h = parse_size(size)
    if not gif and (w % 2 or h % 2):
        raise GrandTourError(f"--size {w}x{h}: an MP4 (H.264, yuv420p) needs an even width and height")
    if gif and n_frames * w * h > GIF_MAX_BYTES:
        raise GrandTourError(f"a {w}x{h} GIF of {n_frames} frames needs {n_frames * w * h / 2**30:.1f} GiB of "
                             "memory to write: make it smaller (--size, --fps, --seconds) or write an .mp4")
    preset = load_preset(preset)
    adversarial = _check_run(run, animate)
    exe = find_browser(browser)
    _imports()
    from tqdm.auto import tqdm

    tmp = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    job = dict(run=run, tmp=tmp, preset=preset, adversarial=adversarial, animate=animate, n_frames=n_frames,
               fps=fps, size=(w, h), exe=exe, gif=gif,
               bar=tqdm(total=n_frames, unit="frame", desc=out.name, disable=not progress))
    # Playwright's sync API refuses a thread running an asyncio loop (a notebook's kernel, a
    # caller's own Playwright): the page is driven from a thread of its own.
    stop = threading.Event()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="grandtour-video") as pool:
            future = pool.submit(_export, stop=stop, **job)
            try:
                window = future.result()
            except BaseException:
                stop.set()  # Ctrl-C: the recording ends at the next frame
                raise
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "frames": n_frames, "seconds": n_frames / fps, "fps": fps,
            "bytes": out.stat().st_size, "size": [w, h], "window": list(window)}


def _export(*, run, tmp: Path, preset, adversarial, animate: str, n_frames: int, fps: int, size, exe: str,
            gif: bool, bar, stop: threading.Event) -> tuple[int, int]:
    imageio, Image, sync_playwright = _imports()
    with _served_page(run, exe, size, sync_playwright) as (page, requests):
        if preset is not None:
            apply_preset(page, preset, adversarial)
        elif animate != "tour":
            page.keyboard.press(_PLAY_KEY["tour"])  # the opening view tours: paused for the other animations
        wait_still(page, requests)
        window, box = fit_window(page, size)
        wait_still(page, requests)
        page.evaluate("window.grandtour.manual(true)")
        state = page.evaluate("window.grandtour.state()")
        if not state[_PLAYING[animate]]:
            page.keyboard.press(_PLAY_KEY[animate])
            # (the first adversarial record is loaded first when none is shown)
            page.wait_for_function(f"window.grandtour.state().{_PLAYING[animate]}")
        for _ in range(2):  # the start of the animation drawn with its data (play may go back to the start)
            page.evaluate("window.grandtour.step(0)")
            requests.wait_idle(quiet_ms=50)
        writer = _GifWriter(tmp, fps, Image) if gif else _Mp4Writer(tmp, fps, imageio)
        try:
            _record(page, _Capture(page, box, Image), requests, writer, animate, n_frames, fps, bar, stop)
        finally:
            writer.close()
    return window


def _record(page, capture: _Capture, requests: _Requests, writer, animate: str, n_frames: int, fps: int,
            bar, stop: threading.Event) -> None:
    dt = 1.0 / fps
    held = 0.0
    # One frame, and where the panels are after it (a notice shown above them moves them).
    step = """(dt) => { const s = window.grandtour.step(dt);
                         const r = document.getElementById('views').getBoundingClientRect();
                         s.views = {x: r.left, y: r.top, width: r.width, height: r.height};
                         return s; }"""
    with bar:
        for k in range(n_frames):
            if stop.is_set():
                raise GrandTourError("the video export was interrupted")
            state = page.evaluate(step, 0.0 if k == 0 else dt)
            # A position that stood still waiting for its data (a transition, an epoch's
            # slice): that picture is the previous one, so it is not a frame; step again
            # once the data is there (the tour is paused: nothing else moved).
            deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
            while k and animate != "tour" and state["waiting"]:
                if state["status"] == "error" or time.monotonic() > deadline:
                    raise GrandTourError(f"the viewer stopped at frame {k}: {state['error'] or 'its data never came'}")
                requests.wait_idle(quiet_ms=25)
                state = page.evaluate(step, dt)
            if animate != "tour" and not state[_PLAYING[animate]]:
                held += dt
                if held >= HOLD_SECONDS - 1e-9:  # the end was held: play again (from the start)
                    held = 0.0
                    page.keyboard.press(_PLAY_KEY[animate])
            box = {key: round(v) for key, v in state["views"].items()}
            if box != {key: capture.clip[key] for key in box}:  # the layout moved: the panels back to their size
                _, box = fit_window(page, (capture.clip["width"], capture.clip["height"]))
                capture.clip = {**box, "scale": 1}
                page.evaluate("window.grandtour.step(0)")
            writer.add(capture())
            bar.update(1)
