"""Where users work: the notebook widget and the HTML export, on the demo's run.

``bench_export_size``: ``grandtour export RUN --html`` of the whole run; printed: the file's
size, per (layer, epoch), and the ratio of the file to the float16 data it embeds (base64,
the page and the bundle are the overhead; 1.33 is base64 alone).

``bench_widget``: the first frame of ``Viewer(run)`` in a real JupyterLab (started here,
driven by Playwright and Debian's chromium) beside the same page served by ``grandtour
serve`` in the same browser: milliseconds from the view's start to the first frame drawn
and the bytes of data the page received (response bodies), with their ratios (widget /
served page).

Run: ``python benchmarks/bench_notebook.py`` (``--run PATH``, ``--epochs 3``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from grandtour.export.video import CHROMIUM_FLAGS, SWIFTSHADER_FLAGS, find_browser

CHROMIUM_ARGS = [*SWIFTSHADER_FLAGS, *CHROMIUM_FLAGS]


def demo_run(path: Path, epochs: int) -> Path:
    """The run ``grandtour demo`` trains (without its adversarial steps and figures), aligned."""
    from grandtour.align import align_run
    from grandtour.data import load_dataset
    from grandtour.defaults import DEMO_TRAINING, SEED
    from grandtour.train import train

    train(load_dataset("digits"), path, epochs=epochs, seed=SEED, overwrite=True, **DEMO_TRAINING)
    align_run(path, progress=False)
    return path


def bench_export_size(run: Path, out_dir: Path) -> dict:
    from grandtour.export.html import export_html
    from grandtour.store import Run

    t = time.perf_counter()
    s = export_html(run, out_dir / "run.html")
    seconds = time.perf_counter() - t
    r = Run.open(run)
    data = sum(2 * r.size(sp) * L.dim for L in r.layers for sp in r.splits) * len(s.epochs)
    return {"bytes": s.size, "per_slice": s.per_slice, "layers": len(s.layers), "epochs": len(s.epochs),
            "float16_bytes": data, "ratio": s.size / data, "seconds": seconds, "estimate": s.estimate}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served_first_frame(browser, run: Path) -> dict:
    from grandtour.server import ServerThread, create_app

    with ServerThread(create_app([run]), host="127.0.0.1", port=0) as srv:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        t = time.perf_counter()
        page.goto(srv.url)
        page.wait_for_function("window.grandtour !== undefined")
        page.evaluate("window.grandtour.ready")
        ms = 1000 * (time.perf_counter() - t)
        time.sleep(1.0)  # as the widget's count is read a moment after its first frame
        sizes = page.evaluate("""performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('/api/')).map((e) => e.decodedBodySize)""")
        page.close()
    return {"ms": ms, "bytes": sum(sizes)}


def _widget_first_frame(browser, run: Path, tmp: Path) -> dict:
    root = tmp / "nb"
    root.mkdir()
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
                     "source": f"from grandtour.widget import Viewer\nv = Viewer({str(run)!r})\nv"},
                    {"cell_type": "code", "execution_count": None, "id": "c2", "metadata": {}, "outputs": [],
                     "source": 'print("R=" + str([v._first_frame_ms, v.bytes_sent]))'}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "b.ipynb").write_text(json.dumps(nb))
    token, port = secrets.token_hex(8), _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "rt")}
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
                             f"--ServerApp.root_dir={root}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}lab/tree/b.ipynb?token={token}")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120000)
        cells = page.locator(".jp-Notebook .jp-Cell")
        for i in range(2):
            if i == 1:  # the first frame is in: read the figures from the kernel
                frame = None
                ready = "window.grandtour && window.grandtour.state().status === 'ready'"
                while frame is None or not frame.evaluate(ready):
                    time.sleep(0.2)
                    handle = page.locator("iframe.grandtour-widget").element_handle()
                    frame = handle.content_frame() if handle else None
                time.sleep(1.0)  # the model's update reaches the kernel
            cells.nth(i).locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
        out = cells.nth(1).locator(".jp-OutputArea-output").filter(has_text="R=")
        out.first.wait_for(timeout=60000)
        ms, sent = json.loads(out.first.inner_text().split("R=", 1)[1])
        page.close()
        return {"ms": float(ms), "bytes": int(sent)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_widget(run: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        browser = pw.chromium.launch(executable_path=find_browser(), headless=True, args=CHROMIUM_ARGS)
        served = _served_first_frame(browser, run)
        widget = _widget_first_frame(browser, run, Path(tmp))
        browser.close()
    return {"widget": widget, "served": served, "ms_ratio": widget["ms"] / served["ms"],
            "bytes_ratio": widget["bytes"] / max(1, served["bytes"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a run (default: the demo's, trained here)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the demo run trained here (default: 3)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or demo_run(Path(tmp) / "demo", args.epochs)
        e = bench_export_size(run, Path(tmp))
        print(f"HTML export: {e['bytes'] / 1e6:.2f} MB for {e['layers']} layers x {e['epochs']} epochs = "
              f"{e['per_slice'] / 1e3:.0f} kB per (layer, epoch); {e['ratio']:.2f} x the float16 data "
              f"({e['float16_bytes'] / 1e6:.2f} MB); estimate {e['estimate'] / e['bytes']:.3f} x the size; "
              f"written in {e['seconds']:.1f} s")
        w = bench_widget(run)
        print(f"first frame: widget {w['widget']['ms']:.0f} ms, served page {w['served']['ms']:.0f} ms "
              f"(ratio {w['ms_ratio']:.2f}); data sent: widget {w['widget']['bytes'] / 1e3:.0f} kB, served page "
              f"{w['served']['bytes'] / 1e3:.0f} kB (ratio {w['bytes_ratio']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
