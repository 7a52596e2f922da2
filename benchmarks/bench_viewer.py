"""Frame time of the viewer's GPU projection against the floor of merely drawing the points.

For each size (points x dimensions) the benchmark page (``grandtour/web/bench.html``,
reusing the viewer's ``gl/scatter.js``) times, in one browser and one run:

* **auto** (ours, as the viewer runs): advance the Grand Tour by 1/60 s (``tour.js``),
  upload its frame GT[:, :2] and draw every point projected on the GPU from its float16
  activations (in the vertex shader while the frame moves);
* **vertex**: the same, the renderer's fall-back (always projected in the vertex shader:
  the viewer's only path before the projection pass);
* **pass**: the same, always projected by the projection pass (a float32 render target);
* **still**: ours with the frame unchanged (what a zoom, a hover, a brush or the paused
  tour costs: the projection pass's positions are kept);
* **still-vertex**: the fall-back with the frame unchanged (it projects every draw);
* **floor**: draw the same number of precomputed 2-D points with a trivial vertex shader
  (same fragment shader, point size and 800 x 800 canvas).

Each frame is timed to completion (a 1-pixel ``readPixels`` waits for the GPU). The
variants are interleaved (2 rounds of ``--frames`` frames each; fewer for a million
points). The table gives, per variant, the median wall time per frame and the CPU time
per frame of all the browser's processes (SwiftShader rasterises on the CPU, on several
threads: on a loaded machine the CPU time is the steadier figure), and the ratios to the
floor (CPU time).

Run::

    python benchmarks/bench_viewer.py            # Debian chromium, SwiftShader (CPU) WebGL
    python benchmarks/bench_viewer.py --sizes 10000x10 100000x10 --gpu

``--gpu`` drops ``--use-angle=swiftshader`` so that a machine with a GPU and a display
uses it (CPU time is then not the GPU's time: read the wall times).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from grandtour.export.video import CHROMIUM_FLAGS, SWIFTSHADER_FLAGS

DEFAULT_SIZES = ["10000x10", "100000x10", "1000000x10", "10000x256", "10000x1024"]


def serve_web(web: Path | None = None):
    """Serve the viewer's static files (or those of ``web``, a copy to try a change on) on
    127.0.0.1 (a free port), as ``grandtour serve`` does (same routes and media types),
    without runs; returns the started ServerThread."""
    from fastapi import FastAPI

    from grandtour.server import ServerThread
    from grandtour.server.static import WEB_DIR, static_routes

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(static_routes(web or WEB_DIR))
    return ServerThread(app).start()


def _browser_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's descendants (the browser's
    processes, SwiftShader's threads included), from /proc (Linux)."""
    parent, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    me, total = os.getpid(), 0
    for pid, t in ticks.items():
        p = parent.get(pid)
        while p and p != me:
            p = parent.get(p)
        if p == me:
            total += t
    return total / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="NxD sizes (points x dims)")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--point-size", type=float, default=2.0)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--gpu", action="store_true", help="let chromium use a GPU (no SwiftShader)")
    ap.add_argument("--web", type=Path, help="serve this copy of grandtour/web instead (to try a change)")
    args = ap.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"chromium not found at {args.chromium}: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    server = serve_web(args.web)
    url = server.url
    flags = [*CHROMIUM_FLAGS, *([] if args.gpu else SWIFTSHADER_FLAGS)]
    variants = ["floor", "auto", "vertex", "pass", "still", "still-vertex"]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 900, "height": 900})
            page.goto(url + "bench.html")
            page.wait_for_function("window.grandtourBench !== undefined")
            renderer = page.evaluate("""() => { const gl = document.createElement('canvas').getContext('webgl2');
                const ext = gl.getExtension('WEBGL_debug_renderer_info');
                return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); }""")
            print(f"chromium {browser.version}, WebGL renderer: {renderer}")
            print("ms per frame, wall (median) / CPU of the browser (mean); ratios: CPU time / floor's")
            print(f"{'points':>9} {'dims':>5} " + " ".join(f"{v:>15}" for v in variants)
                  + "".join(f" {v[:7] + '/fl':>10}" for v in variants[1:]) + f" {'set-up s':>8}")
            for size in args.sizes:
                n, d = (int(v) for v in size.lower().split("x"))
                t = time.time()
                frames = max(6, min(args.frames, int(4e6 / n)))  # 1M points: fewer, slow frames
                setup = page.evaluate("(o) => window.grandtourBench.open(o)",
                                      {"n": n, "dim": d, "pointSize": args.point_size})
                wall = {v: [] for v in variants}
                cpu = {v: 0.0 for v in variants}
                for _ in range(2):  # interleaved: drift of the machine hits every variant alike
                    for v in variants:
                        page.evaluate("(a) => window.grandtourBench.phase(a[0], a[1])", [v, max(2, frames // 5)])
                        c0 = _browser_cpu()
                        wall[v] += page.evaluate("(a) => window.grandtourBench.phase(a[0], a[1])", [v, frames])
                        cpu[v] += _browser_cpu() - c0
                page.evaluate("() => window.grandtourBench.close()")
                med = {v: statistics.median(wall[v]) for v in variants}
                per = {v: 1000 * cpu[v] / (2 * frames) for v in variants}
                cells = " ".join(f"{med[v]:>7.2f}/{per[v]:<7.2f}" for v in variants)
                ratios = "".join(f" {per[v] / per['floor']:>10.2f}" for v in variants[1:])
                print(f"{n:>9} {d:>5} {cells}{ratios} {setup['setup_ms'] / 1000:>8.1f}   ({time.time() - t:.0f} s)",
                      flush=True)
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
