// The large-n code paths of the tour maths (blocked Householder QR, blocked Gram-Schmidt,
// the O(n^2) orthogonality check, the row kernels): the same results as the plain
// row-by-row algorithms, and nothing O(n^3) where O(n^2) is enough.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  EXACT_ORTHOGONALITY_MAX_N, checkOrthogonal, det, matmul, matrix, maxAbsDiff, orthogonalityError,
  orthogonalityErrorEstimate, rowCombine, rowDots, transpose,
} from '../../src/grandtour/web/js/linalg.js';
import { GrandTour, Rng, randomRotation } from '../../src/grandtour/web/js/tour.js';
import { axisDrag, gramSchmidtRows, pointDrag } from '../../src/grandtour/web/js/manipulate.js';
import { GIVENS_BAND, applyGivens, givensStages } from '../../src/grandtour/web/js/tour/givens.js';
import { sinCos } from '../../src/grandtour/web/js/tour/angles.js';

function gaussian(rows, cols, rng) {
  const M = matrix(rows, cols);
  for (let k = 0; k < rows * cols; k++) M.data[k] = rng.normal();
  return M;
}

function naiveMatmul(A, B) {
  const out = matrix(A.rows, B.cols);
  for (let i = 0; i < A.rows; i++) {
    for (let j = 0; j < B.cols; j++) {
      let s = 0;
      for (let k = 0; k < A.cols; k++) s += A.data[i * A.cols + k] * B.data[k * B.cols + j];
      out.data[i * B.cols + j] = s;
    }
  }
  return out;
}

/** The row-by-row CGS2 of gramSchmidtRows (full-rank rows only), the reference. */
function plainGramSchmidtRows(M, first) {
  const n = M.rows, order = [first];
  for (let k = 0; k < n; k++) if (k !== first) order.push(k);
  const Q = [];
  for (const r of order) {
    const v = Float64Array.from(M.data.subarray(r * n, r * n + n));
    for (let pass = 0; pass < 2; pass++) {
      const c = Q.map((q) => q.reduce((s, x, j) => s + x * v[j], 0));
      Q.forEach((q, p) => { for (let j = 0; j < n; j++) v[j] -= c[p] * q[j]; });
    }
    const len = Math.hypot(...v);
    Q.push(v.map((x) => x / len));
  }
  const out = matrix(n, n);
  order.forEach((r, k) => out.data.set(Q[k], r * n));
  return out;
}

/** Q of Z = Q R (positive diagonal), column by column (MGS twice), then det +1: the
 * rotation randomRotation must give for the same Gaussian draws. */
function plainRandomRotation(n, rng) {
  const Z = gaussian(n, n, rng), q = Z.data;
  for (let j = 0; j < n; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        let r = 0;
        for (let i = 0; i < n; i++) r += q[i * n + k] * q[i * n + j];
        for (let i = 0; i < n; i++) q[i * n + j] -= r * q[i * n + k];
      }
    }
    const r = Math.sqrt(Array.from({ length: n }, (_, i) => q[i * n + j] ** 2).reduce((a, b) => a + b));
    for (let i = 0; i < n; i++) q[i * n + j] /= r;
  }
  if (det(Z) < 0) for (let i = 0; i < n; i++) q[i * n] = -q[i * n];
  return Z;
}

/** A dense n x n rotation in O(n^2): the product of two Householder reflections. */
function cheapRotation(n, rng) {
  const unit = () => { const u = Float64Array.from({ length: n }, () => rng.normal()); const l = Math.hypot(...u); return u.map((x) => x / l); };
  const u = unit(), w = unit();
  let uw = 0;
  for (let j = 0; j < n; j++) uw += u[j] * w[j];
  const G = matrix(n, n), g = G.data; // (I - 2uu^T)(I - 2ww^T)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) g[i * n + j] = (i === j ? 1 : 0) - 2 * u[i] * u[j] - 2 * w[i] * w[j] + 4 * uw * u[i] * w[j];
  }
  return G;
}

test('matmul, transpose and the row kernels agree with plain loops on every remainder shape', () => {
  const rng = new Rng(41);
  for (const [n, p, m] of [[1, 1, 1], [1, 3, 1], [2, 5, 3], [3, 4, 7], [5, 7, 9], [7, 1, 6], [130, 67, 33], [6, 300, 5]]) {
    const A = gaussian(n, p, rng), B = gaussian(p, m, rng);
    assert.ok(maxAbsDiff(matmul(A, B), naiveMatmul(A, B)) < 1e-12 * p, `${n}x${p} @ ${p}x${m}`);
    const T = transpose(A);
    for (let i = 0; i < n; i++) for (let k = 0; k < p; k++) assert.equal(T.data[k * n + i], A.data[i * p + k]);
  }
  // rowDots / rowCombine on strided rows with offsets, every nx, ny mod 4.
  for (let nx = 1; nx <= 9; nx++) {
    for (let ny = 1; ny <= 9; ny++) {
      const len = 11, xs = 13, ys = 17;
      const X = Float64Array.from({ length: 3 + nx * xs }, () => rng.normal());
      const Y = Float64Array.from({ length: 5 + ny * ys }, () => rng.normal());
      const C = new Float64Array(2 + nx * 10);
      rowDots(X, 3, xs, nx, Y, 5, ys, ny, len, C, 2, 10);
      const X2 = Float64Array.from(X);
      rowCombine(X2, 3, xs, nx, C, 2, 10, Y, 5, ys, ny, len, -1);
      for (let i = 0; i < nx; i++) {
        for (let r = 0; r < ny; r++) {
          let s = 0;
          for (let j = 0; j < len; j++) s += X[3 + i * xs + j] * Y[5 + r * ys + j];
          assert.ok(Math.abs(C[2 + i * 10 + r] - s) < 1e-12, `dot ${nx}x${ny} (${i}, ${r})`);
        }
        for (let j = 0; j < len; j++) {
          let s = X[3 + i * xs + j];
          for (let r = 0; r < ny; r++) s -= C[2 + i * 10 + r] * Y[5 + r * ys + j];
          assert.ok(Math.abs(X2[3 + i * xs + j] - s) < 1e-12, `combine ${nx}x${ny} (${i}, ${j})`);
        }
        for (let j = len; j < xs && 3 + i * xs + j < X.length; j++) assert.equal(X2[3 + i * xs + j], X[3 + i * xs + j], 'outside the row');
      }
    }
  }
});

test('randomRotation (blocked Householder QR) is the Q of the same Gaussian draws, det +1', () => {
  for (const n of [2, 3, 5, 33, 34, 65, 150]) {
    for (const seed of [1, 2]) {
      const Q = randomRotation(n, new Rng(seed));
      const ref = plainRandomRotation(n, new Rng(seed));
      assert.ok(maxAbsDiff(Q, ref) < 1e-12, `n=${n} seed=${seed}: ${maxAbsDiff(Q, ref)}`);
      assert.ok(orthogonalityError(Q) < 1e-14 * Math.max(10, n), `n=${n}: ${orthogonalityError(Q)}`);
      assert.ok(Math.abs(det(Q) - 1) < 1e-12);
    }
  }
});

test('checkOrthogonal above n = 64: O(n^2) estimate, still rejects what is not orthogonal', () => {
  assert.equal(EXACT_ORTHOGONALITY_MAX_N, 64);
  const rng = new Rng(43);
  const n = 100;
  const G = randomRotation(n, rng);
  checkOrthogonal(G);
  assert.ok(orthogonalityErrorEstimate(G) < 1e-14);
  // float32-level noise on every entry: passes, as in the exact check.
  const N = matrix(n, n, G.data.map((x) => Math.fround(x)));
  assert.ok(orthogonalityError(N) < 1e-6);
  checkOrthogonal(N);
  const reject = (M, what) => assert.throws(() => checkOrthogonal(M), /must be orthogonal: .*estimated/, what);
  const scaled = matrix(n, n, Float64Array.from(G.data));
  for (let i = 0; i < n; i++) scaled.data[i * n + 17] *= 1 + 1e-5; // exact on the diagonal
  reject(scaled, 'a column scaled by 1 + 1e-5');
  reject(gaussian(n, n, rng), 'a Gaussian matrix');
  const moved = matrix(n, n, Float64Array.from(G.data));
  moved.data[5 * n] += 0.1;
  moved.data[5 * n + 1] -= 0.1; // a handle moved without re-orthonormalising
  reject(moved, 'a moved row');
  const sheared = matrix(n, n, Float64Array.from(G.data)); // column 3 += 1e-3 column 4: E_34 = 1e-3
  for (let i = 0; i < n; i++) sheared.data[i * n + 3] += 1e-3 * G.data[i * n + 4];
  assert.ok(orthogonalityError(sheared) > 1e-3);
  assert.throws(() => checkOrthogonal(sheared, 1e-6), /must be orthogonal/);
  // At n <= 64 the check is exact (as Python): the same shear of 1e-7 passes at tol 1e-6.
  const small = randomRotation(64, rng);
  for (let i = 0; i < 64; i++) small.data[i * 64] += 1e-7 * small.data[i * 64 + 1];
  checkOrthogonal(small);
  assert.throws(() => checkOrthogonal(small, 1e-8), /max \|GT\^T GT - I\|/);
});

test('gramSchmidtRows above n = 64 (blocked) gives the row-by-row CGS2 result', () => {
  const rng = new Rng(47);
  for (const [n, first] of [[65, 0], [97, 96], [130, 40]]) {
    const M = gaussian(n, n, rng);
    const Q = gramSchmidtRows(M, first);
    assert.ok(maxAbsDiff(Q, plainGramSchmidtRows(M, first)) < 1e-12, `n=${n}`);
    assert.ok(orthogonalityError(Q) < 1e-14 * n);
    // Nearly dependent rows, in one block and across blocks: still orthogonal, spans kept.
    const D = matrix(n, n, Float64Array.from(M.data));
    for (let j = 0; j < n; j++) {
      D.data[5 * n + j] = D.data[3 * n + j] + 1e-9 * rng.normal();
      D.data[50 * n + j] = D.data[2 * n + j] + 1e-9 * rng.normal();
    }
    assert.ok(orthogonalityError(gramSchmidtRows(D, first)) < 1e-14 * n);
    // Zero and repeated rows are completed, and the result is a rotation.
    const Z = matrix(n, n, Float64Array.from(M.data));
    Z.data.fill(0, 7 * n, 8 * n);
    Z.data.copyWithin((n - 1) * n, 0, n);
    const R = gramSchmidtRows(Z, first);
    assert.ok(orthogonalityError(R) < 1e-14 * n && Math.abs(det(R) - 1) < 1e-10, `n=${n}: det ${det(R)}`);
  }
  // A 2-row frame completed to a rotation (what tours.js matrixFromFrame does).
  const n = 80, F = matrix(n, n);
  for (let j = 0; j < 2 * n; j++) F.data[j] = rng.normal();
  const R = gramSchmidtRows(F, 0);
  assert.ok(orthogonalityError(R) < 1e-13 && Math.abs(det(R) - 1) < 1e-10);
});

test('applyGivens: the banded path for wide arrays gives the bits of the column-pair path', () => {
  // Every path does the same two operations per entry, so banding (k > GIVENS_BAND, any
  // remainder width) may change the order of work but never a bit of the result.
  const rng = new Rng(71);
  const n = 70;
  const planes = Int32Array.from(givensStages(n).flatMap((s) => Array.from(s)));
  const angles = Float64Array.from(planes, () => rng.uniform(0, 2 * Math.PI));
  const c = new Float64Array(planes.length), s = new Float64Array(planes.length);
  sinCos(angles, c, s);
  const band = new Float64Array(n * GIVENS_BAND);
  for (const k of [GIVENS_BAND + 1, GIVENS_BAND + 3, 2 * GIVENS_BAND + 2]) {
    const Y = gaussian(n, k, rng).data;
    const wide = applyGivens(Float64Array.from(Y), n, k, planes, c, s, band);
    for (let j = 0; j < k; j += 2) {
      const w = Math.min(2, k - j);
      const cols = new Float64Array(n * w);
      for (let r = 0; r < n; r++) for (let q = 0; q < w; q++) cols[r * w + q] = Y[r * k + j + q];
      applyGivens(cols, n, w, planes, c, s, null);
      for (let r = 0; r < n; r++) {
        for (let q = 0; q < w; q++) assert.ok(Object.is(wide[r * k + j + q], cols[r * w + q]), `k = ${k}, entry (${r}, ${j + q})`);
      }
    }
  }
});

test('axisDrag and the GrandTour matrix at n = 100 (the blocked paths)', () => {
  const rng = new Rng(53);
  const n = 100;
  const t = new GrandTour({ ndim: n, seed: 3 }).step(0.8);
  const GT = t.matrix;
  assert.ok(orthogonalityError(GT) < 1e-13);
  const F = t.frame();
  for (let i = 0; i < n; i++) assert.ok(Math.abs(F.data[2 * i] - GT.data[i * n]) < 1e-13 && Math.abs(F.data[2 * i + 1] - GT.data[i * n + 1]) < 1e-13);
  const other = randomRotation(n, rng);
  t.matrix = other;
  assert.ok(maxAbsDiff(t.matrix, other) < 1e-13);
  const i = 9, dx = 0.2, dy = -0.1;
  const R = axisDrag(GT, i, dx, dy);
  const row = Array.from(GT.data.subarray(i * n, i * n + n));
  row[0] += dx;
  row[1] += dy;
  const len = Math.hypot(...row);
  assert.ok(Math.abs(R.data[i * n] - row[0] / len) < 1e-12 && Math.abs(R.data[i * n + 1] - row[1] / len) < 1e-12);
  assert.ok(maxAbsDiff(R, plainGramSchmidtRows((() => {
    const M = matrix(n, n, Float64Array.from(GT.data));
    M.data[i * n] += dx;
    M.data[i * n + 1] += dy;
    return M;
  })(), i)) < 1e-12);
  assert.ok(orthogonalityError(R) < 1e-13 && Math.abs(det(R) - 1) < 1e-10);
  const h0 = GT.data[i * n], h1 = GT.data[i * n + 1], h2 = h0 * h0 + h1 * h1;
  const S = axisDrag(GT, i, -2 * h0 / h2, -2 * h1 / h2); // 1 + <h, D> = -1: split
  assert.ok(orthogonalityError(S) < 1e-13 && Math.abs(det(S) - 1) < 1e-10);
});

// Timings (n = 1024: constructor, matrix get/set, axisDrag, pointDrag) are figures, not
// tests: `node benchmarks/bench_tour.mjs` prints them, and BENCHMARKS.md records them.
test('pointDrag at n = 1024 through the O(n^2) orthogonality estimate stays orthogonal', () => {
  const rng = new Rng(59);
  const n = 1024;
  const G = cheapRotation(n, rng);
  const c = Float64Array.from({ length: n }, () => rng.normal());
  checkOrthogonal(G); // the estimate accepts a rotation
  const R = pointDrag(G, c, 0.1, 0.05);
  assert.ok(orthogonalityErrorEstimate(R) < 1e-14);
});
