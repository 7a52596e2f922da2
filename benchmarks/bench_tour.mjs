// Per-step cost of our Grand Tour (step + frame) against the article's Givens product.
//
//   node benchmarks/bench_tour.mjs            # n = 10, 100, 500, 1000 (about a minute)
//   node benchmarks/bench_tour.mjs 10 100     # other sizes
//
// Ours (src/grandtour/web/js/tour.js): GT(t) = L T(phi + omega t) W; a step advances the
// n(n-1)/2 angles and a frame rotates the two columns T W[:, :2] and multiplies by L:
// O(n^2) per animation frame, no allocation (frame(out) with a reused out).
//
// Baseline (the article's code, done well): every frame multiplies the full n x n matrix
// GT by the product of all n(n-1)/2 Givens rotations, applied one at a time to pairs of
// columns: O(n^3). Its columns are stored contiguously (column-major) so each rotation
// streams through memory, and cos/sin of omega dt are recomputed per frame (dt varies).
// Both run here, side by side, in one process; the table gives ms per step and the ratio.
import { matrix } from '../src/grandtour/web/js/linalg.js';
import { GrandTour, Rng } from '../src/grandtour/web/js/tour.js';

class GivensProductTour {
  constructor(n, seed) {
    const rng = new Rng(seed);
    this.n = n;
    this.m = (n * (n - 1)) / 2;
    this.omega = Float64Array.from({ length: this.m }, () => rng.normal());
    this.cols = new Float64Array(n * n); // column j of GT is cols[j*n .. j*n+n)
    for (let i = 0; i < n; i++) this.cols[i * n + i] = 1;
  }

  step(dt) {
    const { n, omega, cols } = this;
    let k = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++, k++) {
        const c = Math.cos(omega[k] * dt), s = Math.sin(omega[k] * dt);
        const a = i * n, b = j * n;
        for (let r = 0; r < n; r++) {
          const x = cols[a + r], y = cols[b + r];
          cols[a + r] = c * x - s * y;
          cols[b + r] = s * x + c * y;
        }
      }
    }
    return this;
  }

  frame(out) {
    const { n, cols } = this, o = out.data;
    for (let r = 0; r < n; r++) {
      o[2 * r] = cols[r];
      o[2 * r + 1] = cols[n + r];
    }
    return out;
  }
}

/** ms per call of fn, repeated until at least `budgetMs` has passed (and at least `minReps` times). */
function timeIt(fn, budgetMs, minReps) {
  fn(); // warm up (JIT, caches)
  let reps = 0;
  const t0 = performance.now();
  let t = t0;
  while (reps < minReps || t - t0 < budgetMs) {
    fn();
    reps += 1;
    t = performance.now();
  }
  return { ms: (t - t0) / reps, reps };
}

const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [10, 100, 500, 1000];
const dt = 1 / 60;
console.log(`node ${process.version}, dt = 1/60 s; ms per step (step + frame)`);
console.log('     n |   ours ms/step |   reps | Givens product ms/step |   reps |  ratio');
console.log('-------+----------------+--------+------------------------+--------+-------');
for (const n of sizes) {
  const ours = new GrandTour({ ndim: n, seed: 1 });
  const out = matrix(n, 2);
  const a = timeIt(() => ours.step(dt).frame(out), 1000, 20);
  const base = new GivensProductTour(n, 1);
  const out2 = matrix(n, 2);
  const budget = n >= 500 ? 0 : 1000; // the O(n^3) product at n = 1000 takes seconds a step
  const b = timeIt(() => base.step(dt).frame(out2), budget, n >= 1000 ? 2 : 3);
  console.log(`${String(n).padStart(6)} | ${a.ms.toPrecision(4).padStart(14)} | ${String(a.reps).padStart(6)} | `
    + `${b.ms.toPrecision(4).padStart(22)} | ${String(b.reps).padStart(6)} | ${(b.ms / a.ms).toFixed(1).padStart(6)}`);
}
