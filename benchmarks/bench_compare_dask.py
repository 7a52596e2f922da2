"""``compare`` serially vs. ``compare --dask local:1`` vs. ``local:2`` (issue 15), side by side.

A run of E epochs of one layer (N points, 50 dimensions, three moving clusters) is
copied three times and compared with ``--methods`` (default ``pca,tsne,dtsne``: UMAP's
numba code is compiled again by every fresh worker process, a start-up cost that would
swamp the comparison; add it with ``--methods pca,tsne,umap``), one after the other in
this process, so each sees the same machine load. Printed: seconds of each and epochs per
minute, and the ratio of 2 workers to 1. The cluster's start-up is included.

Run: ``python benchmarks/bench_compare_dask.py [--epochs 6] [--points 500]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def make_run(path: Path, epochs: int, n: int) -> None:
    from grandtour.store import LayerInfo, ProbeSet, RunWriter

    rng = np.random.default_rng(0)
    layers = [LayerInfo("fc", "linear", (50,)), LayerInfo("softmax", "softmax", (3,))]
    probes = {"test": ProbeSet(labels=np.arange(n) % 3, indices=np.arange(n))}
    with RunWriter.create(path, dataset="bench", class_names=["a", "b", "c"], layers=layers, probes=probes) as w:
        centres = rng.standard_normal((3, 50)) * 3
        for epoch in range(epochs):
            fc = centres[np.arange(n) % 3] * (1 + 0.3 * epoch) + rng.standard_normal((n, 50))
            w.write_epoch(epoch, activations={"test": {"fc": fc, "softmax": rng.random((n, 3))}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--methods", default="pca,tsne,dtsne")
    args = ap.parse_args()
    from grandtour import cli

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        make_run(base, args.epochs, args.points)
        seconds = {}
        for how in ("serial", "local:1", "local:2"):
            where = Path(tmp) / how.replace(":", "")
            shutil.copytree(base, where)
            argv = ["compare", str(where), "--layer", "fc", "--methods", args.methods]
            t0 = time.perf_counter()
            assert cli.main(argv + ([] if how == "serial" else ["--dask", how])) == 0
            seconds[how] = time.perf_counter() - t0
    print(f"\ncompare --methods {args.methods}, {args.epochs} epochs, {args.points} points")
    for how, s in seconds.items():
        print(f"  {how:8s} {s:7.1f} s   {args.epochs / s * 60:6.1f} epochs per minute")
    print(f"  local:2 / local:1: {seconds['local:1'] / seconds['local:2']:.2f} x faster")


if __name__ == "__main__":
    main()
