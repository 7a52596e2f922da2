"""A bounded loopback load test of ``grandtour serve``: errors, latency and memory.

The server runs in a child process (``grandtour.server.serve``, as the command does) on a
run written here (``--epochs`` x ``--points`` x ``--dim``, two layers, one split). ``C``
client connections (keep-alive HTTP/1.1 over raw asyncio streams, so the client adds
little) send ``N`` requests in all, round-robin over what the page asks for: the run
list, ``meta``, labels, predictions, metrics, every activation slice and a static file.
Bounded: at most ``--requests`` requests and ``--time-limit`` seconds.

Printed: requests done, errors (any status but 200, or a broken connection), p50 / p99 /
max latency, requests per second, and the server's peak resident memory (VmHWM, Linux).

Run::

    python benchmarks/bench_server_load.py                      # 2000 requests, 16 connections
    python benchmarks/bench_server_load.py --requests 5000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_run(path: Path, epochs: int, points: int, dim: int) -> Path:
    from grandtour.store import Run

    rng = np.random.default_rng(0)
    labels = np.arange(points) % 10
    hidden = rng.standard_normal((epochs, points, dim)).astype(np.float32)
    Run.from_arrays(path, {"hidden": hidden, "out": hidden[..., :10] * 2}, labels, split="train")
    return path


def start_server(run: Path) -> tuple[subprocess.Popen, int]:
    code = ("import sys; from grandtour.server import serve; "
            "serve([sys.argv[1]], port=0, open_browser=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the server did not start")


def peak_rss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else None


async def one(reader, writer, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(m.group(1)) if m else 0)
    return status


async def load(port: int, urls: list[str], n: int, c: int, limit_s: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    deadline = time.monotonic() + limit_s

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    status = await one(reader, writer, urls[i % len(urls)])
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(c)))
    return latencies, errors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--time-limit", type=float, default=60.0, help="stop sending after this many seconds")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args(argv)
    n = max(1, min(args.requests, 100_000))
    c = max(1, min(args.concurrency, 200))
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "load", args.epochs, args.points, args.dim)
        proc, port = start_server(run)
        try:
            base = "/api/runs/load"
            urls = ["/api/runs", f"{base}/meta", f"{base}/labels/train", f"{base}/metrics/train", "/js/app.js"]
            for e in range(args.epochs):
                urls += [f"{base}/activations/hidden/{e}/train", f"{base}/activations/out/{e}/train",
                         f"{base}/predictions/{e}/train"]
            rss0 = peak_rss_mib(proc.pid)
            t0 = time.perf_counter()
            latencies, errors = asyncio.run(load(port, urls, n, c, args.time_limit))
            wall = time.perf_counter() - t0
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    ms = np.asarray(latencies) * 1000
    done = len(latencies)
    print(f"run: {args.epochs} epochs x {args.points} points x {args.dim} dims; {len(urls)} distinct URLs")
    print(f"requests {done} of {n}, concurrency {c}, errors {errors}, wall {wall:.2f} s, "
          f"{done / wall:.0f} req/s")
    if done:
        print(f"latency ms: p50 {np.percentile(ms, 50):.2f}  p99 {np.percentile(ms, 99):.2f}  "
              f"max {ms.max():.2f}")
    if rss is not None:
        print(f"server peak RSS: {rss:.0f} MiB (after start-up: {rss0:.0f} MiB)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
