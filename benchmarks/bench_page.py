"""The whole viewer page against langevitour's widget, and time to first frame.

Two figures, in one run of Debian's chromium (headless; SwiftShader's software WebGL2
unless ``--gpu``):

1. **Frame period while touring**, our page vs. the ``langevitour`` Python package's
   HTML widget, on the same data (N points x 10 dims, 10 classes): each page animates
   its tour by itself and we record the ``requestAnimationFrame`` intervals over a few
   seconds (median). This is what a user feels; both pages are capped by the display
   rate (16.7 ms) when their work per frame is shorter. Beside it, the CPU time all the
   browser's processes used per frame (/proc): on a machine shared with other work the
   intervals stretch, the CPU per frame much less, so its ratio is the steadier one.
2. **Time from ``grandtour serve`` to first frame** for a run given with ``--run``:
   from starting the server (``create_app`` opens the run) to the page's
   ``window.grandtour.ready`` (first frame drawn).
3. **Our page alone** at sizes langevitour cannot tour (``--alone 1000000``): time from
   ``goto`` to the first frame, frame period and CPU while touring, JS heap.

    pip install langevitour    # or: pip download langevitour; unzip the wheel; PYTHONPATH=...
    python benchmarks/bench_page.py --run runs/fashion
    python benchmarks/bench_page.py --sizes --alone 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from grandtour.export.video import CHROMIUM_FLAGS, SWIFTSHADER_FLAGS

RAF_PROBE = """async (ms) => {
  const t = []; const end = performance.now() + ms;
  await new Promise((done) => {
    const f = (now) => { t.push(now); if (now < end || t.length < 4) requestAnimationFrame(f); else done(); };
    requestAnimationFrame(f);
  });
  const d = t.slice(1).map((x, i) => x - t[i]).sort((a, b) => a - b);
  return {median: d[Math.floor(d.length / 2)], frames: d.length};
}"""


def _descendants() -> dict[int, tuple[str, list[str]]]:
    """This process's descendants (the Playwright driver and every chromium process:
    browser, GPU with SwiftShader, renderer): pid -> (name, the /proc stat fields after it)."""
    import os

    parent, stat = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        parent[int(d)] = int(fields[1])
        stat[int(d)] = (head.split("(", 1)[1], fields)
    me = os.getpid()

    def below(pid):
        while pid in parent and pid != me:
            pid = parent[pid]
        return pid == me

    return {pid: v for pid, v in stat.items() if pid != me and below(pid)}


def _browser_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's descendants."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for _, f in _descendants().values())


def measure(page, seconds: float) -> tuple[float, float]:
    """(median rAF interval in ms, browser CPU ms per frame) while the page animates by itself.
    The second figure is what a frame costs the machine, whatever else shares it."""
    c0 = _browser_cpu_s()
    r = page.evaluate(RAF_PROBE, seconds * 1000)
    return r["median"], 1000 * (_browser_cpu_s() - c0) / max(1, r["frames"])


def launch(p, gpu: bool):
    args = [*CHROMIUM_FLAGS, *([] if gpu else SWIFTSHADER_FLAGS)]
    return p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centers = rng.normal(0, 3, (10, 10))
    return (centers[labels] + rng.normal(0, 1, (n, 10))).astype(np.float32), labels


def ours_page(p, gpu, n, tmp: Path, seconds: float, web: Path | None = None) -> dict:
    """Our page on ``n`` points x 10 dims: seconds from ``goto`` to the first frame, the
    frame period and CPU per frame while touring, the JS heap after."""
    from grandtour.server import ServerThread, create_app
    from grandtour.store import Run

    X, y = data(n)
    path = tmp / f"ours-{n}"
    if not path.exists():
        Run.from_arrays(path, {"layer": X}, y, split="test")
    with ServerThread(create_app([path], web_dir=web), "127.0.0.1", 0) as srv:
        browser = launch(p, gpu)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        t0 = time.perf_counter()
        page.goto(srv.url)
        page.wait_for_function("window.grandtour && window.grandtour.state().frameCount > 0",
                               timeout=300_000, polling=10)
        first = time.perf_counter() - t0
        page.wait_for_function("window.grandtour.state().frameCount > 5", timeout=300_000)
        period, cpu = measure(page, seconds)
        heap = page.evaluate("performance.memory.usedJSHeapSize") / 2**20
        browser.close()
    return {"first_frame_s": first, "period_ms": period, "cpu_ms": cpu, "js_heap_mb": heap}


def ours_period(p, gpu, n, tmp: Path, seconds: float, web: Path | None = None) -> tuple[float, float]:
    f = ours_page(p, gpu, n, tmp, seconds, web)
    return f["period_ms"], f["cpu_ms"]


def _pkg_resources_shim() -> None:
    """langevitour 0.8 reads its bundled script with ``pkg_resources.resource_filename``;
    setuptools >= 81 no longer ships ``pkg_resources``: give it the one function it uses."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import importlib.resources
        import sys
        import types

        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda pkg, name: str(importlib.resources.files(pkg) / name)
        sys.modules["pkg_resources"] = shim


def langevitour_period(p, gpu, n, tmp: Path, seconds: float) -> tuple[float, float]:
    _pkg_resources_shim()
    from langevitour import Langevitour

    X, y = data(n)
    html = tmp / f"langevitour-{n}.html"
    Langevitour(X, group=[str(v) for v in y], width=700, height=600).write_html(str(html))
    browser = launch(p, gpu)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(html.as_uri())
    page.wait_for_timeout(2000)  # let it start its own animation
    period = measure(page, seconds)
    browser.close()
    return period


def _browser_rss_mb() -> float:
    """Resident memory (MiB) of this process's chromium descendants, summed (shared pages
    counted once per process: an upper bound)."""
    import os

    page = os.sysconf("SC_PAGE_SIZE")
    return sum(int(f[21]) * page for name, f in _descendants().values() if "chrom" in name) / 2**20


def first_frame(p, gpu, run: Path) -> dict:
    """Seconds from starting the server to the first frame drawn, and the memory then."""
    import resource

    from grandtour.server import ServerThread, create_app

    t0 = time.perf_counter()
    with ServerThread(create_app([run]), "127.0.0.1", 0) as srv:
        t_server = time.perf_counter() - t0
        browser = launch(p, gpu)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(srv.url)
        page.wait_for_function("window.grandtour && window.grandtour.state().frameCount > 0",
                               timeout=300_000, polling=10)
        total = time.perf_counter() - t0
        out = {"server_s": t_server, "first_frame_s": total,
               "js_heap_mb": page.evaluate("performance.memory.usedJSHeapSize") / 2**20,
               "browser_rss_mb": _browser_rss_mb(),
               "server_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000],
                    help="points for the frame-period table (none: skip it)")
    ap.add_argument("--alone", type=int, nargs="*", default=[], metavar="N",
                    help="points toured in our page alone (langevitour takes seconds a frame from "
                         "100,000): first frame, period, CPU and JS heap")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--run", type=Path, help="a run for the time-to-first-frame figure")
    ap.add_argument("--gpu", action="store_true", help="let chromium use a GPU (no SwiftShader)")
    ap.add_argument("--before", type=Path, metavar="WEB",
                    help="another copy of grandtour/web (e.g. `git archive` of an older commit) measured in the "
                         "same run, for a before/after table")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        pages = [("grandtour page", None)] + ([(f"before ({args.before.name})", args.before)] if args.before else [])
        if args.sizes:
            print("| points x dims | page | page (ms/frame) | langevitour widget (ms/frame) | ratio "
                  "| page CPU (ms/frame) | langevitour CPU (ms/frame) | CPU ratio |")
            print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in args.sizes:
            theirs, theirs_cpu = langevitour_period(p, args.gpu, n, Path(tmp), args.seconds)
            for name, web in pages:
                ours, ours_cpu = ours_period(p, args.gpu, n, Path(tmp), args.seconds, web)
                print(f"| {n} x 10 | {name} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f}x "
                      f"| {ours_cpu:.1f} | {theirs_cpu:.1f} | {theirs_cpu / ours_cpu:.2f}x |", flush=True)
        for n in args.alone:
            f = ours_page(p, args.gpu, n, Path(tmp), args.seconds)
            print(f"\n{n} x 10 in our page alone: first frame {f['first_frame_s']:.1f} s after goto, then "
                  f"{f['period_ms']:.0f} ms a frame ({f['cpu_ms']:.0f} ms of CPU), JS heap "
                  f"{f['js_heap_mb']:.0f} MiB", flush=True)
        if args.run:
            f = first_frame(p, args.gpu, args.run)
            print(f"\ntime to first frame, {args.run}: {f['first_frame_s']:.2f} s "
                  f"(server and run opened in {f['server_s']:.2f} s); then the page's JS heap "
                  f"{f['js_heap_mb']:.0f} MiB, chromium's resident memory {f['browser_rss_mb']:.0f} MiB "
                  f"(summed over its processes), this process's peak (server and benchmark) "
                  f"{f['server_peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
