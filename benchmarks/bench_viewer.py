"""Frame time of the viewer's GPU projection against the floor of merely drawing the points.

For each size (points x dimensions) the benchmark page (``grandtour/web/bench.html``,
reusing the viewer's ``gl/scatter.js``) times, in one browser and one run:

* **ours**: advance the Grand Tour by 1/60 s (``tour.js``), upload its frame GT[:, :2],
  and draw every point projected on the GPU from its float16 activations;
* **floor**: draw the same number of precomputed 2-D points with a trivial vertex shader
  (same fragment shader, point size and 800 x 800 canvas).

Each frame is timed to completion (a 1-pixel ``readPixels`` waits for the GPU); the
table gives the median over 2 x 40 frames (fewer for a million points; floor and ours
interleaved) and the ratio.

Run::

    python benchmarks/bench_viewer.py            # Debian chromium, SwiftShader (CPU) WebGL
    python benchmarks/bench_viewer.py --sizes 10000x10 100000x10 --gpu

``--gpu`` drops ``--use-angle=swiftshader`` so that a machine with a GPU and a display
uses it. Without a GPU, SwiftShader rasterises on the CPU: both columns are CPU times,
and the ratio says how much the projection adds to drawing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ARGS = ["--no-sandbox", "--enable-unsafe-swiftshader", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
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
    flags = ARGS + ([] if args.gpu else ["--use-angle=swiftshader"])
    rows = []
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
            print(f"{'points':>9} {'dims':>5} {'ours ms':>9} {'floor ms':>9} {'ratio':>6} {'set-up s':>9}")
            for size in args.sizes:
                n, d = (int(v) for v in size.lower().split("x"))
                t = time.time()
                frames = max(6, min(args.frames, int(4e6 / n)))  # 1M points: fewer, slow frames
                r = page.evaluate("(o) => window.grandtourBench.run(o)",
                                  {"n": n, "dim": d, "frames": frames, "warmup": max(2, frames // 5),
                                   "pointSize": args.point_size})
                ours, floor = r["ours"]["median"], r["floor"]["median"]
                rows.append((n, d, ours, floor))
                print(f"{n:>9} {d:>5} {ours:>9.2f} {floor:>9.2f} {ours / floor:>6.2f} "
                      f"{r['setup_ms'] / 1000:>9.1f}   ({time.time() - t:.0f} s)", flush=True)
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
