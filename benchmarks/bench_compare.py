"""Time per epoch of each comparison method, and their correspondence, side by side.

Synthetic probe sets (``--points``, default 1000 and 10000) of ten Gaussian classes in
``--dim`` dimensions (default 64), two epochs between which one class alone moves (the
article's MNIST 13 -> 14 in miniature). For each size and method: the seconds per epoch
(wall and CPU: CPU time is a proxy for the time on an idle machine), the ratio to the
Grand Tour's ``linear`` projection, and the correspondence of the epoch step
(``docs/compare.md``). ``dtsne`` embeds both epochs jointly: its time is per epoch of
that joint optimisation. UMAP's first call compiles (numba): a warm-up call on 100
points is made first and not counted.

With ``--run RUN --layer L --epochs A B`` it measures a recorded run instead (e.g. an
MNIST run at the epochs where a class is learned late: ``grandtour info RUN`` lists them).

Run: ``python benchmarks/bench_compare.py [--points 1000 10000] [--methods ...]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread each: comparable on a shared machine
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

from grandtour.compare.correspondence import correspondence_of
from grandtour.compare.dynamic_tsne import dynamic_tsne
from grandtour.compare.methods import METHODS, PER_EPOCH_FUNCTIONS, umap


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    X0 = rng.normal(size=(10, dim))[labels] * 4 + rng.normal(size=(n, dim))
    X1 = X0.copy()
    X1[labels == 1] += rng.normal(size=dim) * 3 + rng.normal(size=(int((labels == 1).sum()), dim))
    return X0, X1


def measure(method: str, X0: np.ndarray, X1: np.ndarray) -> tuple[float, float, float]:
    """(wall seconds per epoch, CPU seconds per epoch, correspondence)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "dtsne":
        Ya, Yb = dynamic_tsne([X0, X1], seed=0)
    else:
        f = PER_EPOCH_FUNCTIONS[method]
        Ya, Yb = f(X0, 0), f(X1, 0)
    wall, cpu = (time.perf_counter() - t0) / 2, (time.process_time() - c0) / 2
    return wall, cpu, correspondence_of(X0, X1, Ya, Yb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--run", default=None)
    ap.add_argument("--layer", default=None)
    ap.add_argument("--epochs", type=int, nargs=2, default=None)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    methods = args.methods.split(",")
    if "umap" in methods:
        umap(np.random.default_rng(0).normal(size=(100, 8)), 0)  # numba's compilation, not counted
    if args.run:
        from grandtour.store import Run

        run = Run.open(args.run)
        a, b = args.epochs
        cases = [(f"{args.run} {args.layer} {a}->{b}", run.activations(args.layer, a, args.split),
                  run.activations(args.layer, b, args.split))]
    else:
        cases = [(f"N={n} D={args.dim}", *synthetic(n, args.dim)) for n in args.points]
    print(f"{'case':<28} {'method':<7} {'s/epoch':>9} {'cpu s':>9} {'x linear':>9} {'corresp.':>9}")
    for name, X0, X1 in cases:
        base = None
        for method in methods:
            wall, cpu, value = measure(method, X0.astype(np.float64), X1.astype(np.float64))
            base = cpu if method == "linear" else base
            ratio = f"{cpu / base:9.0f}" if base else f"{'':>9}"
            print(f"{name:<28} {method:<7} {wall:9.3f} {cpu:9.3f} {ratio} {value:9.3f}", flush=True)


if __name__ == "__main__":
    main()
