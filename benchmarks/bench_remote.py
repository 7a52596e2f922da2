"""Runs on object storage and align on a Dask cluster (issue 15), measured side by side.

Three comparisons, each printed as a ratio of the two sides measured in the same process
one after the other (so both see the same machine load):

- ``record``: writing E epochs of a run of MNIST-network size (N probes per split, two
  splits, layers 784, 100, 10, plus parameters) with ``RunWriter.write_epoch``, to a local
  directory vs. to a loopback S3 server (moto's standalone server in a child process,
  reached by s3fs over HTTP). Per epoch, and relative to a plain training epoch if
  ``--train-s`` gives one (the recording overhead).
- ``align``: ``align_run`` of those runs: epochs per minute, local vs. S3.
- ``dask``: ``align --dask local:1`` vs. ``local:2`` on the local run (epochs per minute).

The loopback server is moto, a Python emulation: its per-request cost dominates and is far
from a real object store's (which adds network latency instead), so the S3 figures say how
many requests the store makes more than what a bucket would cost.

Run: ``python benchmarks/bench_remote.py [--epochs 6] [--probes 1000]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SERVER = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print(s.get_host_and_port()[1], flush=True)
sys.stdin.read()
"""


def start_server() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    import s3fs

    s3fs.S3FileSystem().mkdir("bench")
    return proc


def make_run(where, epochs: int, n: int) -> float:
    """Write the run; seconds per epoch."""
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    dims = {"input": 784, "fc1": 100, "fc2": 10}
    layers = [LayerInfo("input", "input", (784,), static=True),
              LayerInfo("fc1", "linear", (100,), config={"in_features": 784, "out_features": 100}),
              LayerInfo("fc2", "linear", (10,), config={"in_features": 100, "out_features": 10})]
    probes = {s: ProbeSet(labels=np.arange(n) % 10) for s in ("train", "test")}
    rng = np.random.default_rng(0)
    x0 = {s: rng.standard_normal((n, 784)).astype(np.float32) for s in probes}
    w = RunWriter.create(where, dataset="bench", class_names=[str(i) for i in range(10)], layers=layers,
                         probes=probes, overwrite=True)
    times = []
    for e in range(epochs):
        w1 = rng.standard_normal((784, 100)).astype(np.float32) / 28
        w2 = rng.standard_normal((100, 10)).astype(np.float32) / 10
        acts = {}
        for s in probes:
            h = np.maximum(x0[s] @ w1, 0)
            acts[s] = {"input": x0[s], "fc1": h, "fc2": h @ w2}
        assert set(acts["train"]) == set(dims)
        t = time.perf_counter()
        w.write_epoch(e, activations=acts, predictions={s: acts[s]["fc2"].argmax(1) for s in probes},
                      metrics={s: {"loss": 1.0, "accuracy": 0.5} for s in probes},
                      params={"fc1": {"weight": w1.T, "bias": np.zeros(100)},
                              "fc2": {"weight": w2.T, "bias": np.zeros(10)}})
        times.append(time.perf_counter() - t)
    w.close()
    return float(np.median(times))


def align_epm(where, epochs: int, scheduler: str | None = None) -> float:
    """Epochs per minute of a whole ``align`` (forced: from scratch)."""
    from grandtour.align import align_run
    from grandtour.align.distributed import align_run_dask

    t = time.perf_counter()
    if scheduler is None:
        align_run(where, force=True, progress=False)
    else:
        align_run_dask(where, scheduler, force=True, progress=False)
    return epochs / ((time.perf_counter() - t) / 60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--probes", type=int, default=1000, help="probes per split")
    ap.add_argument("--dask-only", action="store_true", help="only the 1 vs 2 Dask workers comparison")
    ap.add_argument("--train-s", type=float, default=None, help="seconds of one training epoch, for the overhead")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    server = start_server()
    try:
        local, url = tmp / "run", "s3://bench/run"
        print(f"{args.epochs} epochs, {args.probes} probes per split, layers 784/100/10, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        if args.dask_only:
            make_run(local, args.epochs, args.probes)
            al = align_epm(local, args.epochs)
            d1 = align_epm(local, args.epochs, "local:1")
            d2 = align_epm(local, args.epochs, "local:2")
            print(f"align --dask: {d1:.1f} epochs/min with 1 worker, {d2:.1f} with 2 (ratio {d2 / d1:.2f}; "
                  f"serial {al:.1f}; cluster start-up included)")
            return
        rl, rs = make_run(local, args.epochs, args.probes), make_run(url, args.epochs, args.probes)
        print(f"record: {rl * 1000:.0f} ms/epoch local, {rs * 1000:.0f} ms/epoch S3 (loopback), ratio {rs / rl:.1f}")
        if args.train_s:
            print(f"  overhead over a {args.train_s:.1f} s training epoch: local {100 * rl / args.train_s:.1f} %, "
                  f"S3 {100 * rs / args.train_s:.1f} %")
        al, as_ = align_epm(local, args.epochs), align_epm(url, args.epochs)
        print(f"align: {al:.1f} epochs/min local, {as_:.1f} epochs/min S3, ratio {al / as_:.2f}")
        d1 = align_epm(local, args.epochs, "local:1")
        d2 = align_epm(local, args.epochs, "local:2")
        print(f"align --dask: {d1:.1f} epochs/min with 1 worker, {d2:.1f} with 2 (ratio {d2 / d1:.2f}; "
              f"serial {al:.1f}; cluster start-up included)")
    finally:
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
