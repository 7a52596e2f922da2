"""The notebook widget (``grandtour.widget.Viewer``) in a real JupyterLab: started here on a
free loopback port, driven by Playwright and Debian's chromium. A cell shows the viewer
(points drawn), a brush in it is read back from ``viewer.selection`` in the kernel by the
next cell, and ``viewer.epoch`` set from Python moves the page."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from browser_kit import EPOCHS, near_class

START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": secrets.token_hex(4), "metadata": {},
            "outputs": [], "source": source}


@pytest.fixture()
def lab(tmp_path):
    """A JupyterLab server on a free loopback port, its own config, data and runtime dirs."""
    root = tmp_path / "notebooks"
    root.mkdir()
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"), "JUPYTER_PLATFORM_DIRS": "1"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
           "--allow-root",  # a container may run the tests as root
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield {"url": url, "token": token, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _run_cell(page, index: int) -> None:
    """Run the notebook's cell `index` from its editor (Shift+Enter)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def _output(page, index: int, marker: str, timeout: float = 30000) -> str:
    out = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")
    out.filter(has_text=marker).first.wait_for(timeout=timeout)
    return out.filter(has_text=marker).first.inner_text()


def _viewer_frame(page, timeout: float = 60000):
    """The viewer's iframe once its page has drawn (or said why not)."""
    iframe = page.locator("iframe.grandtour-widget")
    iframe.wait_for(timeout=timeout)
    deadline = time.monotonic() + timeout / 1000
    status = "no frame"
    while time.monotonic() < deadline:
        frame = iframe.element_handle().content_frame()
        if frame is not None:
            try:
                status = frame.evaluate("window.grandtour ? window.grandtour.state().status : 'booting'")
            except Exception:  # noqa: BLE001 - the frame is still loading
                status = "booting"
            if status == "error":
                pytest.fail(f"the viewer failed: {frame.evaluate('window.grandtour.state().error')}")
            if status == "ready":
                return frame
        time.sleep(0.2)
    pytest.fail(f"the viewer in the notebook did not draw ({status})")


def test_widget_in_jupyterlab_draws_selects_and_follows_python(browser, runs, lab):
    nb = {"cells": [
        _cell(f"from grandtour.widget import Viewer\nv = Viewer({str(runs['digits'])!r}, height=560)\nv"),
        _cell('import json\nprint("SEL=" + json.dumps(v.selection, sort_keys=True))'),
        _cell(f"v.epoch = {EPOCHS[0]}\nprint('EPOCH=', v.epoch)"),
        _cell('print("STATE=" + json.dumps({"layer": v.layer, "epoch": v.epoch, "playing": v.playing, '
              '"dim": len(v.matrix), "sent": v.bytes_sent, "ms": v._first_frame_ms}))'),
    ], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}
    (lab["root"] / "w.ipynb").write_text(json.dumps(nb))
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Nothing but the lab: the widget needs no other server.
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((lab["url"], "about:", "data:", "blob:"))
               else r.abort())
    try:
        page.goto(f"{lab['url']}lab/tree/w.ipynb?token={lab['token']}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60000)
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60000)  # the kernel is up
        _run_cell(page, 0)
        frame = _viewer_frame(page)
        s = frame.evaluate("window.grandtour.state()")
        assert (s["layer"], s["epoch"], s["splits"]) == ("softmax", EPOCHS[-1], ["train", "test"])
        # The tour stops from Python's side of the page (its own button).
        frame.click("#tour-play")
        frame.wait_for_function("!window.grandtour.state().playing")
        frame.evaluate("window.grandtour.frames(2)")
        # Points drawn: the class colours in the test panel, in the notebook's own pixels.
        box = page.locator("iframe.grandtour-widget").bounding_box()
        v = frame.evaluate("window.grandtour.view('test')")
        import io

        clip = {"x": box["x"] + v["left"], "y": box["y"] + v["top"], "width": v["width"], "height": v["height"]}
        img = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"))
        colors = frame.evaluate("window.grandtour.classColors()")
        seen = [int(near_class(img.astype(float), c).sum()) for c in colors]
        assert min(seen) >= 4, f"class colours missing from the widget: {seen}"
        # Brush a rectangle around the middle of the test panel (page pixels = iframe + offset).
        pos = frame.evaluate("window.grandtour.screenPositions('test')")
        xy = np.array([p if p else [np.nan, np.nan] for p in pos])
        cx, cy = np.nanmedian(xy[:, 0]), np.nanmedian(xy[:, 1])
        # A brush starts off the axis handles (a press on one drags the axis instead).
        handles = np.array([[h["x"], h["y"]] for h in frame.evaluate("window.grandtour.handles('test')")], float)
        starts = [(cx + dx, cy + dy) for dx in range(-5, -60, -6) for dy in range(-5, -60, -6)]
        x0, y0 = next(p for p in starts if handles.size == 0 or np.hypot(*(handles - p).T).min() > 16)
        x1, y1 = x0 + 75, y0 + 65
        finite = np.isfinite(xy).all(axis=1)
        inside = finite & (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        assert inside.sum() >= 3
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        page.mouse.move(box["x"] + x1, box["y"] + y1, steps=3)
        page.mouse.up()
        frame.wait_for_function("(window.grandtour.state().selection.test || []).length > 0", timeout=10000)
        brushed = frame.evaluate("window.grandtour.state().selection")["test"]
        # The points inside (page pixels map to the iframe's to within a fraction of a pixel).
        assert len(set(brushed) ^ set(np.flatnonzero(inside).tolist())) <= 2, (brushed, np.flatnonzero(inside))
        # The kernel has it the moment the brush ended.
        _run_cell(page, 1)
        sel = json.loads(_output(page, 1, "SEL=").split("SEL=", 1)[1])
        assert sel == {"test": brushed}
        # Python sets the epoch: the page goes there.
        _run_cell(page, 2)
        _output(page, 2, "EPOCH=")
        frame.wait_for_function(f"window.grandtour.state().epochIndex === 0 && window.grandtour.state().epochPos === 0"
                                f" && window.grandtour.state().epoch === {EPOCHS[0]}", timeout=30000)
        _run_cell(page, 3)
        state = json.loads(_output(page, 3, "STATE=").split("STATE=", 1)[1])
        assert (state["layer"], state["epoch"], state["playing"], state["dim"]) == ("softmax", EPOCHS[0], False, 10)
        assert state["sent"] > 0 and state["ms"] > 0
        assert errors == []
    finally:
        ctx.close()
