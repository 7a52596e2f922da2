// Per-step cost of our Grand Tour (step + frame) against the article's Givens product,
// then the cost of the O(n^3) operations at one large n (1024 by default).
//
//   node benchmarks/bench_tour.mjs                 # n = 10, 100, 500, 1000, then 1024 (under a minute)
//   node benchmarks/bench_tour.mjs 10 100          # other sizes
//   node benchmarks/bench_tour.mjs --ops 512 10    # the O(n^3) operations at n = 512
//   node benchmarks/bench_tour.mjs --ops 0         # skip them
//
// Ours (GrandTour, src/grandtour/web/js/tour/torus.js): GT(t) = L T(phi + omega t) W; a
// step advances the n(n-1)/2 angles and a frame rotates the two columns T W[:, :2] and
// multiplies by L: O(n^2) per animation frame, no allocation (frame(out), reused out).
//
// Baseline (the article's code, done well): every frame multiplies the full n x n matrix
// GT by the product of all n(n-1)/2 Givens rotations, applied one at a time to pairs of
// columns: O(n^3). Its columns are stored contiguously (column-major) so each rotation
// streams through memory, and cos/sin of omega dt are recomputed per frame (dt varies).
// Both run here, side by side, in one process; the table gives ms per step and the ratio.
//
// The O(n^3) operations (the second table) are what a wide layer costs the viewer: making
// a tour (two random rotations L, W by Householder QR), reading its matrix L T W (for a
// drag), setting it (a drag's result), an axis drag (blocked Gram-Schmidt) and a point
// drag (O(n^2): a rank-2 rotation, and the O(n^2) orthogonality check). Each is timed
// `REPS` times on a fresh tour (another seed, another time); the table gives the median
// and the fastest, in wall-clock ms and in ms of CPU time of this process (the two
// differ when other processes compete for the cores).
import { matrix } from '../src/grandtour/web/js/linalg.js';
import { GrandTour, Rng } from '../src/grandtour/web/js/tour.js';
import { axisDrag, pointDrag } from '../src/grandtour/web/js/manipulate.js';

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

const args = process.argv.slice(2);
let opsN = 1024;
const k = args.indexOf('--ops');
if (k >= 0) {
  opsN = Number(args[k + 1]);
  args.splice(k, 2);
}
if (!Number.isInteger(opsN) || opsN < 0 || opsN === 1) throw new RangeError(`--ops needs an integer n >= 2 (or 0), got ${opsN}`);
const sizes = args.length ? args.map(Number) : [10, 100, 500, 1000];
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

// ------------------------------------------------------------- the O(n^3) operations

const REPS = 3;

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** ms of wall-clock and CPU time of `fn()`, and its result. */
function timed(fn) {
  const c0 = cpuMs(), t0 = performance.now();
  const result = fn();
  return { wall: performance.now() - t0, cpu: cpuMs() - c0, result };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1];
}

if (opsN >= 2) {
  const n = opsN;
  console.log();
  console.log(`O(n^3) operations at n = ${n}: ms, median and fastest of ${REPS} (wall clock; CPU time of this process)`);
  console.log('operation                      | median wall |  min wall | median cpu |   min cpu');
  console.log('-------------------------------+-------------+-----------+------------+----------');
  const rng = new Rng(2024);
  const times = { ctor: [], get: [], set: [], axis: [], point: [] };
  for (let r = 0; r < REPS; r++) {
    const made = timed(() => new GrandTour({ ndim: n, seed: 100 + r }));
    const t = made.result.step(0.37 + r);
    const got = timed(() => t.matrix);
    const GT = got.result;
    const set = timed(() => { t.matrix = GT; });
    const axis = timed(() => axisDrag(GT, 7, 0.12, -0.05));
    const c = Float64Array.from({ length: n }, () => rng.normal());
    const point = timed(() => pointDrag(GT, c, 0.12, -0.05));
    for (const [key, v] of [['ctor', made], ['get', got], ['set', set], ['axis', axis], ['point', point]]) times[key].push(v);
  }
  const rows = [
    ['new GrandTour({ndim, seed})', 'ctor'], ['tour.matrix (get: L T W)', 'get'], ['tour.matrix = GT (set)', 'set'],
    ['axisDrag(GT, i, dx, dy)', 'axis'], ['pointDrag(GT, c, dx, dy)', 'point'],
  ];
  for (const [name, key] of rows) {
    const wall = times[key].map((v) => v.wall), cpu = times[key].map((v) => v.cpu);
    const f = (x, w) => x.toFixed(0).padStart(w);
    console.log(`${name.padEnd(30)} | ${f(median(wall), 11)} | ${f(Math.min(...wall), 9)} | `
      + `${f(median(cpu), 10)} | ${f(Math.min(...cpu), 9)}`);
  }
}
