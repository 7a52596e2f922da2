"""Exports of the viewer: the time to write a video (``grandtour export RUN --video``).

``bench_video``: a 10-second 30 fps MP4 at 1280x720 of the demo's run (the digits network
of ``grandtour demo``, trained here for ``--epochs`` epochs, probe sets of up to 1000 examples,
and aligned; or ``--run PATH``), the tour playing. Printed: the wall time of the whole
export, the same export of one frame (server, browser, page and view: the fixed cost),
the cost per frame from the two, and the ratio of the video's length to the time it took
(1.0 = real time). Then, side by side, the cost per frame with the page composited in
software (the export's ``--disable-gpu-compositing``) and by SwiftShader (chromium's
default with ``--use-angle=swiftshader``), and their ratio. Each export is run
``--repeat`` times and the fastest is kept: the frames are stepped by the page's own
clock, so the video is the same whatever the speed, and only the machine's load varies.

Run: ``python benchmarks/bench_export.py`` (``--run PATH``, ``--epochs 3``, ``--seconds 10``,
``--fps 30``, ``--size 1280x720``, ``--repeat 1``, ``--compare-frames 30``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def demo_run(path: Path, epochs: int) -> Path:
    """The run ``grandtour demo`` trains (without its adversarial steps and figures)."""
    from grandtour.align import align_run
    from grandtour.data import load_dataset
    from grandtour.defaults import DEMO_TRAINING, SEED
    from grandtour.train import train

    train(load_dataset("digits"), path, epochs=epochs, seed=SEED, overwrite=True, **DEMO_TRAINING)
    align_run(path, progress=False)
    return path


def _timed_export(run: Path, n_seconds: float, fps: int, size, repeat: int, args=None) -> tuple[float, dict]:
    from grandtour.export import video

    saved = video.CHROMIUM_ARGS
    if args is not None:
        video.CHROMIUM_ARGS = tuple(args)
    try:
        best, info = float("inf"), None
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                info = video.write_video(run, Path(tmp) / "bench.mp4", seconds=n_seconds, fps=fps, size=size,
                                         progress=False)
                best = min(best, time.perf_counter() - t)
        return best, info
    finally:
        video.CHROMIUM_ARGS = saved


def bench_video(run: Path, *, seconds: float = 10.0, fps: int = 30, size=(1280, 720), repeat: int = 1,
                compare_frames: int = 30) -> dict:
    """Time ``write_video`` for ``seconds * fps`` frames and for one frame; and, side by side,
    the cost per frame with the page composited in software (the export's setting) and by
    SwiftShader (chromium's default with ``--use-angle=swiftshader``), ``compare_frames`` each."""
    from grandtour.export.video import CHROMIUM_ARGS

    one, _ = _timed_export(run, 1 / fps, fps, size, repeat)
    total, info = _timed_export(run, seconds, fps, size, repeat)
    per_frame = (total - one) / max(1, info["frames"] - 1)
    out = {"frames": info["frames"], "seconds": info["seconds"], "size": info["size"], "window": info["window"],
           "bytes": info["bytes"], "total_s": total, "one_frame_s": one, "per_frame_ms": 1000 * per_frame,
           "realtime": info["seconds"] / total}
    if compare_frames > 1:
        gpu = [a for a in CHROMIUM_ARGS if a != "--disable-gpu-compositing"]
        costs = {}
        for name, args in (("software", CHROMIUM_ARGS), ("swiftshader", gpu)):
            t1, _ = _timed_export(run, 1 / fps, fps, size, repeat, args)
            tn, _ = _timed_export(run, compare_frames / fps, fps, size, repeat, args)
            costs[name] = 1000 * (tn - t1) / (compare_frames - 1)
        out["compositing_ms"] = costs
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a run to film (default: the demo's run, trained here)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the demo run trained here (default: 3)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--compare-frames", type=int, default=30,
                    help="frames of the software vs. SwiftShader compositing comparison (0: skip it)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or demo_run(Path(tmp) / "demo", args.epochs)
        r = bench_video(run, seconds=args.seconds, fps=args.fps, size=args.size, repeat=args.repeat,
                        compare_frames=args.compare_frames)
    w, h = r["size"]
    print("| video | frames | whole export (s) | one-frame export (s) | per frame (ms) | video s / wall s | MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {r['seconds']:g} s, {args.fps} fps, {w}x{h} MP4 (window {r['window'][0]}x{r['window'][1]}) "
          f"| {r['frames']} | {r['total_s']:.1f} | {r['one_frame_s']:.1f} | {r['per_frame_ms']:.0f} "
          f"| {r['realtime']:.3f} | {r['bytes'] / 1e6:.2f} |")
    if "compositing_ms" in r:
        c = r["compositing_ms"]
        print(f"\nper frame, {args.compare_frames} frames each: composited in software {c['software']:.0f} ms, "
              f"by SwiftShader {c['swiftshader']:.0f} ms: {c['swiftshader'] / c['software']:.1f}x")
    print(f"\n(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
