"""Per-step cost of a tour in Python: our torus-method GrandTour vs the article's Givens product.

The article (and its JavaScript) advances the view each frame by multiplying the full
``n x n`` matrix by all ``n(n-1)/2`` Givens rotations, applied one by one to pairs of
columns: ``O(n^3)`` work per frame. ``GrandTour.step`` only advances the angles and
``GrandTour.frame`` rotates an ``n x 2`` block through the ``2n-3`` stages of disjoint
planes, ``O(n^2)``. ``GeodesicTour`` (tourr's) is timed too.

Each cell is the median over repetitions of one ``step(dt)`` followed by the projection
frame ``GT[:, :2]`` (what a display needs per frame). Repetitions adapt to ``n`` so the
whole script runs in well under 3 minutes.

Run::

    python benchmarks/bench_tour.py            # n = 10, 100, 500, 1000
    python benchmarks/bench_tour.py 10 100     # chosen sizes
"""

from __future__ import annotations

import math
import platform
import sys
import time

import numpy as np

from grandtour.tour import GeodesicTour, GrandTour

DT = 1.0 / 60.0
#: Time spent per measurement (seconds), at least MIN_REPS and at most MAX_REPS repetitions.
BUDGET_S = 1.5
MIN_REPS, MAX_REPS = 2, 2000


class GivensProductTour:
    """The article's tour: ``GT <- GT G_1 G_2 ... G_m`` every frame, ``m = n(n-1)/2``.

    Each Givens rotation in plane ``(i, j)`` by the fixed per-frame angle
    ``omega_ij * dt`` mixes columns ``i`` and ``j``. Columns are stored as rows of
    ``GT^T`` so each rotation touches two contiguous arrays (the fair way in numpy).
    """

    def __init__(self, n: int, seed=0, speed: float = 0.5):
        rng = np.random.default_rng(seed)
        self.pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        u = rng.standard_normal(len(self.pairs))
        self.omega = u * (speed * math.sqrt(n / 2) / np.linalg.norm(u))
        self.GT_T = np.eye(n)  # GT transposed: row k is column k of GT
        self._dt = None

    def step(self, dt: float) -> GivensProductTour:
        if dt != self._dt:  # the article precomputes the rotations for its fixed frame step
            self._c = np.cos(self.omega * dt).tolist()
            self._s = np.sin(self.omega * dt).tolist()
            self._dt = dt
        G = self.GT_T
        for (i, j), c, s in zip(self.pairs, self._c, self._s):
            a = G[i].copy()
            b = G[j]
            G[i] = c * a - s * b
            G[j] = s * a + c * b
        return self

    def frame(self) -> np.ndarray:
        return self.GT_T[:2].T.copy()


def per_step_ms(tour, budget: float = BUDGET_S) -> tuple[float, int]:
    """Median milliseconds of ``tour.step(DT); tour.frame()``, and the repetitions."""
    tour.step(DT).frame()  # warm-up (caches, the baseline's cos/sin)
    times = []
    start = time.perf_counter()
    while len(times) < MAX_REPS:
        t0 = time.perf_counter()
        tour.step(DT)
        tour.frame()
        times.append(time.perf_counter() - t0)
        if len(times) >= MIN_REPS and time.perf_counter() - start > budget:
            break
    return 1000.0 * float(np.median(times)), len(times)


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [10, 100, 500, 1000]
    print(f"# tour step + frame, Python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}, dt = 1/60 s; median over the repetitions shown\n")
    print("| n | GrandTour (ours) ms/step | Givens product (article) ms/step | ratio "
          "| GeodesicTour ms/step | reps (ours / article / geodesic) |")
    print("|---:|---:|---:|---:|---:|---:|")
    total = time.perf_counter()
    for n in sizes:
        ours, r1 = per_step_ms(GrandTour(n, seed=0))
        # The baseline at n = 1000 takes seconds per step: two steps are enough.
        article, r2 = per_step_ms(GivensProductTour(n, seed=0), budget=BUDGET_S if n < 500 else 0.0)
        geo, r3 = per_step_ms(GeodesicTour(n, seed=0))
        print(f"| {n} | {ours:.3f} | {article:.3f} | {article / ours:.1f}x | {geo:.3f} "
              f"| {r1} / {r2} / {r3} |", flush=True)
    print(f"\ntotal {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
