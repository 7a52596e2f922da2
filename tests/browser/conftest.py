"""Browser tests of the viewer page: Playwright driving Debian's chromium against the real
server (``grandtour.server``) on small runs written with the real store writer.

The run ("digits") is a tiny but genuine network on scikit-learn's 8x8 digits: input (64)
-> fc1 (linear, 24) -> relu1 -> fc2 (linear, 10) -> softmax, three epochs whose last layer
gets sharper, train and test splits with thumbnails, per-class metrics, parameters (so
``grandtour.align`` can align it), one NaN row in the test softmax of the last epoch, and an
FGSM-like adversarial record (class 8 pushed toward 0); it is aligned (``grandtour.align``)
with a threshold that shows the 64-dim input in a fixed 32-dim reduction. A second run ("plain") is a bare
``Run.from_arrays`` import: one split, no images, no alignment.

Never ``playwright install``: the tests use /usr/bin/chromium (``apt-get install -y
chromium``) and fail, not skip, when it is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from grandtour.export import video

# The test modules import the helpers below as `browser_kit`: a name of its own, so that
# another conftest.py elsewhere in the tests can never shadow this one.
sys.modules.setdefault("browser_kit", sys.modules[__name__])

CHROMIUM = os.environ.get("GRANDTOUR_CHROMIUM", video.CHROMIUM)
CHROMIUM_ARGS = [*video.SWIFTSHADER_FLAGS, *video.CHROMIUM_FLAGS]  # the page composited as users see it
EPOCHS = [0, 1, 2]
N_TRAIN, N_TEST = 240, 160
HIDDEN = 24
NAN_ROW = 5  # test row whose last-epoch softmax is NaN
ADV_STEPS, ADV_M = 6, 8
REDUCE_ABOVE = 32  # alignment threshold: the 64-dim input is shown in a fixed 32-dim reduction
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(d.target))
    x = d.images[order].astype(np.float32) / 16.0  # (N, 8, 8) in [0, 1]
    y = d.target[order].astype(np.int64)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:N_TRAIN + N_TEST], y[N_TRAIN:N_TRAIN + N_TEST]


class Net:
    """input -> fc1 -> relu1 -> fc2 -> softmax, with fc2 sharpening over the epochs."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray) -> None:
        rng = np.random.default_rng(1)
        self.w1 = (rng.standard_normal((HIDDEN, 64)) / 4).astype(np.float32)
        self.b1 = (rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)
        h = self.hidden(x_train.reshape(len(x_train), -1))
        target = np.eye(10)[y_train] - 0.1
        w, *_ = np.linalg.lstsq(np.c_[h, np.ones(len(h))], target, rcond=None)
        self.w2_full = w[:-1].T.astype(np.float32)  # (10, HIDDEN)
        self.b2_full = w[-1].astype(np.float32)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1.T + self.b1, 0)

    def params(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        gain = 2.0 + 4.0 * epoch  # sharper every epoch
        return (self.w2_full * gain).astype(np.float32), (self.b2_full * gain).astype(np.float32)

    def forward(self, x: np.ndarray, epoch: int) -> dict[str, np.ndarray]:
        flat = x.reshape(len(x), -1).astype(np.float32)
        fc1 = flat @ self.w1.T + self.b1
        relu1 = np.maximum(fc1, 0)
        w2, b2 = self.params(epoch)
        fc2 = relu1 @ w2.T + b2
        return {"input": flat, "fc1": fc1, "relu1": relu1, "fc2": fc2, "softmax": _softmax(fc2)}


def _metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    ok = np.isfinite(probs).all(axis=1)
    p = np.clip(probs[ok, labels[ok]], 1e-7, 1)
    loss = -np.log(p)
    pred = probs[ok].argmax(axis=1)
    class_loss = np.array([loss[labels[ok] == c].mean() if (labels[ok] == c).any() else np.nan
                           for c in range(10)])
    class_acc = np.array([(pred[labels[ok] == c] == c).mean() if (labels[ok] == c).any() else np.nan
                          for c in range(10)])
    return {"loss": float(loss.mean()), "accuracy": float((pred == labels[ok]).mean()),
            "class_loss": class_loss, "class_accuracy": class_acc}


def make_digits_run(path: Path, *, align: bool = True) -> Path:
    """Write the "digits" run (see the module docstring) and align it if possible."""
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    x_tr, y_tr, x_te, y_te = _digits()
    net = Net(x_tr, y_tr)
    layers = [LayerInfo("input", "input", (1, 8, 8), static=True),
              LayerInfo("fc1", "linear", (HIDDEN,), module=f"Linear(64, {HIDDEN})",
                        config={"in_features": 64, "out_features": HIDDEN}),
              LayerInfo("relu1", "relu", (HIDDEN,), module="ReLU()"),
              LayerInfo("fc2", "linear", (10,), module=f"Linear({HIDDEN}, 10)",
                        config={"in_features": HIDDEN, "out_features": 10}),
              LayerInfo("softmax", "softmax", (10,))]
    thumbs = {s: (x[:, None] * 255).astype(np.uint8) for s, x in (("train", x_tr), ("test", x_te))}
    probes = {"train": ProbeSet(labels=y_tr, images=thumbs["train"], indices=np.arange(N_TRAIN)),
              "test": ProbeSet(labels=y_te, images=thumbs["test"], indices=np.arange(N_TEST))}
    writer = RunWriter.create(path, dataset="digits", class_names=CLASS_NAMES, layers=layers,
                              probes=probes, config={"epochs": len(EPOCHS), "lr": 0.1}, overwrite=True)
    for epoch in EPOCHS:
        acts = {"train": net.forward(x_tr, epoch), "test": net.forward(x_te, epoch)}
        if epoch == EPOCHS[-1]:
            acts["test"]["softmax"][NAN_ROW] = np.nan
        w2, b2 = net.params(epoch)
        writer.write_epoch(
            epoch, activations=acts,
            predictions={s: np.nan_to_num(a["softmax"], nan=0).argmax(axis=1) for s, a in acts.items()},
            metrics={s: _metrics(a["softmax"], y) for (s, a), y in zip(acts.items(), (y_tr, y_te))},
            params={"fc1": {"weight": net.w1, "bias": net.b1}, "fc2": {"weight": w2, "bias": b2}})
    # Adversarial: eights of the test split walked toward the mean zero, step by step.
    eights = np.flatnonzero(y_te == 8)[:ADV_M]
    zero = x_tr[y_tr == 0].mean(axis=0)
    t = np.linspace(0, 1, ADV_STEPS + 1)[:, None, None, None]
    steps_x = (1 - t) * x_te[eights][None] + t * zero[None, None]  # (S+1, M, 8, 8)
    per_step = [net.forward(sx, EPOCHS[-1]) for sx in steps_x]
    adv_layers = ["fc2", "softmax"]
    writer.write_adversarial(
        "default", epoch=EPOCHS[-1], source=8, target=0, eps=0.05, split="test",
        example_index=eights,
        activations={name: np.stack([p[name] for p in per_step]) for name in adv_layers},
        images=(steps_x[:, :, None] * 255).astype(np.uint8),
        predictions=np.stack([p["softmax"].argmax(axis=1) for p in per_step]),
        target_loss=np.array([-np.log(max(p["softmax"][:, 0].mean(), 1e-7)) for p in per_step]))
    writer.close()
    if align:
        try:
            from grandtour.align import align_run
        except ImportError:
            pass
        else:
            # A threshold below the input's 64 dims: the viewer also shows a reduced layer.
            align_run(path, threshold=REDUCE_ABOVE, progress=False)
    return path


def make_plain_run(path: Path) -> Path:
    """A bare import: one split, two epochs, 5-dim and 3-dim layers, no images, not aligned."""
    from grandtour.store import Run

    rng = np.random.default_rng(7)
    labels = np.arange(60) % 3
    centers = rng.standard_normal((3, 5)) * 3
    a = np.stack([centers[labels] + rng.standard_normal((60, 5)) * s for s in (1.0, 0.5)])
    b = a[..., :3] * 2
    Run.from_arrays(path, {"hidden": a, "out": b}, labels, class_names=["a", "b", "c"],
                    split="train", overwrite=True)
    return path


def growing_epoch(writer, epoch: int) -> None:
    """One epoch of the "growing" run (a run still training: the test appends epochs)."""
    rng = np.random.default_rng(epoch)
    labels = np.arange(30) % 3
    writer.write_epoch(epoch, activations={"train": {"h": rng.standard_normal((30, 4)) + labels[:, None]}},
                       predictions={"train": labels}, metrics={})


def make_growing_run(path: Path) -> Path:
    """Two epochs of ten planned: the server reports it live and the page polls it."""
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    writer = RunWriter.create(path, dataset="custom", class_names=["a", "b", "c"],
                              layers=[LayerInfo("h", "linear", (4,))],
                              probes={"train": ProbeSet(labels=np.arange(30) % 3)},
                              config={"epochs": 10}, overwrite=True)
    for epoch in (0, 1):
        growing_epoch(writer, epoch)
    writer.close()
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser-runs")
    return {"digits": make_digits_run(root / "digits"), "plain": make_plain_run(root / "plain"),
            "growing": make_growing_run(root / "growing")}


@pytest.fixture(scope="session")
def server(runs):
    """The real server on a free port, serving the runs ("digits" first: the page opens it)."""
    from grandtour.server import ServerThread, create_app

    app = create_app([runs["digits"], runs["plain"], runs["growing"]])
    with ServerThread(app, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"chromium is missing ({CHROMIUM}): the browser tests need Debian's chromium. "
                    "Install it with `apt-get install -y chromium` (scripts/test does); never "
                    "`playwright install`.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install -e '.[test]' "
                    "(never `playwright install`: the tests use Debian's chromium)")
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageErrors(list):
    """Console errors and uncaught exceptions of a page; a test ends by asserting none."""


@pytest.fixture()
def open_page(browser, server):
    """``open_page(path="/", width=1280, height=720)`` -> a page with the viewer loaded
    (``window.grandtour.ready`` resolved), its errors collected in ``page.errors``."""
    contexts = []

    def _open(path: str = "", width: int = 1280, height: int = 720, wait: bool = True):
        ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(ctx)
        page = ctx.new_page()
        page.errors = PageErrors()
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(server.url + path.lstrip("/"))
        if wait:
            page.wait_for_function("window.grandtour !== undefined", timeout=15000)
            page.evaluate("window.grandtour.ready")
            state = page.evaluate("window.grandtour.state()")
            assert state["status"] == "ready", f"page did not load: {state['error']}"
        return page

    yield _open
    for ctx in contexts:
        ctx.close()


# ---------------------------------------------------------------------------- helpers


def screenshot(page, clip: dict | None = None) -> np.ndarray:
    """The page's pixels (H, W, 3) uint8 (CSS px at device scale 1)."""
    from PIL import Image

    png = page.screenshot(clip=clip)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def gl_screenshot(page) -> np.ndarray:
    """The page's pixels with the overlays (handles, labels, brush) hidden: what WebGL drew."""
    page.evaluate("document.querySelectorAll('canvas.overlay').forEach(c => c.style.visibility = 'hidden')")
    try:
        return screenshot(page)
    finally:
        page.evaluate("document.querySelectorAll('canvas.overlay').forEach(c => c.style.visibility = '')")


def near_class(img: np.ndarray, rgb, tol: float = 28.0) -> np.ndarray:
    """Pixels showing a class colour: within `tol` of the segment from the colour drawn once
    (alpha 0.85 on white) to the opaque colour (overlapping points), and not grey."""
    rgb = np.asarray(rgb, float)
    a = 0.85 * rgb + 0.15 * 255
    d = rgb - a
    t = np.clip(((img - a) @ d) / max(d @ d, 1e-9), 0, 1)
    dist = np.linalg.norm(img - (a + t[..., None] * d), axis=-1)
    chroma = img.max(axis=-1) - img.min(axis=-1)
    return (dist < tol) & (chroma > 0.5 * (rgb.max() - rgb.min()))


def faded_away_from(img: np.ndarray, points, keep, within: float = 12) -> list[bool]:
    """For each of `points` (page pixels) farther than `within` px from every one of `keep`:
    whether it is drawn faded (grey: low saturation, light), as the legend's hover draws
    the classes it does not highlight."""
    keep = np.asarray(keep, float)
    out = []
    for x, y in points:
        if np.min(np.hypot(*(keep - [x, y]).T)) < within:
            continue
        px = img[int(round(y)), int(round(x))]
        out.append(bool(px.max() - px.min() < 60 and px.min() > 150))
    return out


def panel_box(page, split: str) -> dict:
    v = page.evaluate("(s) => window.grandtour.view(s)", split)
    return {"x": v["left"], "y": v["top"], "width": v["width"], "height": v["height"]}


PAUSE_TOUR_TIME = 2.0  # s: where pause() leaves the tour


def pause(page, at: float | None = PAUSE_TOUR_TIME) -> None:
    """Pause the tour through the page's own control, move it to `at` seconds of tour time
    (None: leave it where it stopped) and wait until the view is still.

    Where the tour stops on its own depends on how fast this machine loaded and drew the
    page; a test measuring pixels at that view would pass or fail by timing. At a fixed
    tour time every run sees the same view."""
    if page.evaluate("window.grandtour.state().playing"):
        page.click("#tour-play")
    page.wait_for_function("!window.grandtour.state().playing")
    if at is not None:
        page.evaluate("(t) => window.grandtour.seek(t)", at)
    page.evaluate("window.grandtour.frames(2)")


def drive_frames(page):
    """Take over the page's animation frames: returns ``advance(ms)``, which runs one frame
    ``ms`` milliseconds after the previous one and returns the tour time after it (s).

    Every ``requestAnimationFrame`` callback is queued and run only by ``advance``, with the
    timestamp it chose, so what a test measures follows these timestamps, never how fast this
    machine draws. Call it last in a test: Playwright's default ``wait_for_function`` polls
    on animation frames, and ``window.grandtour.frames`` waits for them.
    """
    page.evaluate("""() => {
        const queue = [];
        let id = 0;
        window.requestAnimationFrame = (cb) => { queue.push(cb); return ++id; };
        window.__gtFrames = {
          pending: () => queue.length,
          run(ts) { for (const cb of queue.splice(0)) cb(ts); },
        };
    }""")
    # The frame the browser had already scheduled runs once more, then joins the queue.
    page.wait_for_function("window.__gtFrames.pending() > 0", polling=10)
    now = [page.evaluate("performance.now()") + 1000.0]

    def advance(ms: float) -> float:
        now[0] += ms
        script = "(ts) => { window.__gtFrames.run(ts); return window.grandtour.state().tourTime; }"
        return page.evaluate(script, now[0])

    advance(0.0)  # the first driven frame: its step from the browser's last one is not measured
    return advance


def wait_settled(page, timeout: float = 15000) -> None:
    """Wait until epoch/layer/step positions reached their targets (animations over)."""
    page.wait_for_function(
        """() => { const s = window.grandtour.state();
                   return s.epochPos === s.epochIndex && s.layerPos === s.layerIndex
                          && !s.epochPlaying && !s.layerPlaying && !s.advPlaying
                          && (s.adversarial === null || s.advPos === s.advStep); }""",
        timeout=timeout)
    page.evaluate("window.grandtour.frames(2)")
