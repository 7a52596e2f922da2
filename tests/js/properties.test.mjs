// Properties that make a tour a tour and a drag land where the article says, checked on
// the JS side alone (each would fail if the property broke).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  det, fromRows, identity, matmul, matrix, maxAbsDiff, orthogonalityError, principalAngles, transpose,
} from '../../src/grandtour/web/js/linalg.js';
import {
  GeodesicTour, GrandTour, Rng, TAU, modTau, randomRotation, sinCos,
} from '../../src/grandtour/web/js/tour.js';
import { axisDrag, centroid, gramSchmidtRows, pointDrag } from '../../src/grandtour/web/js/manipulate.js';

function firstTwoColumns(GT) {
  const n = GT.rows, F = matrix(n, 2);
  for (let i = 0; i < n; i++) {
    F.data[2 * i] = GT.data[i * n];
    F.data[2 * i + 1] = GT.data[i * n + 1];
  }
  return F;
}

function rowTimes(x, G) { // x G, x a row vector
  const n = G.rows, out = new Float64Array(G.cols);
  for (let i = 0; i < n; i++) for (let j = 0; j < G.cols; j++) out[j] += x[i] * G.data[i * G.cols + j];
  return out;
}

test('sinCos agrees with Math.cos/Math.sin to 2.3e-16 on [0, 2 pi], edges included', () => {
  const rng = new Rng(31);
  const a = Float64Array.from({ length: 100000 }, () => rng.uniform(0, TAU));
  a.set([0, TAU, Math.PI, Math.PI / 2, 3 * Math.PI / 2, Math.PI / 4, 3 * Math.PI / 4, 5e-324, 1e-300, TAU - 1e-15]);
  const c = new Float64Array(a.length), s = new Float64Array(a.length);
  sinCos(a, c, s);
  let d = 0;
  for (let k = 0; k < a.length; k++) d = Math.max(d, Math.abs(c[k] - Math.cos(a[k])), Math.abs(s[k] - Math.sin(a[k])));
  assert.ok(d <= 2.3e-16, `max difference ${d}`);
  assert.ok(Object.is(c[0], 1) && Object.is(s[0], 0));
});

test('modTau gives the bits of Python/numpy float modulo (fast paths included)', () => {
  const reference = (x) => { const m = x % TAU; return m === 0 ? 0 : (m < 0 ? m + TAU : m); };
  const rng = new Rng(37);
  const xs = [0, -0, TAU, -TAU, 2 * TAU, -2 * TAU, 1e-300, -1e-300, -1e-17, TAU - 1e-16, 3 * TAU + 0.5, -7.5, 1e6, -1e6];
  for (let k = 0; k < 100000; k++) xs.push(rng.uniform(-3 * TAU, 3 * TAU));
  for (const x of xs) assert.ok(Object.is(modTau(x), reference(x)), `modTau(${x}) = ${modTau(x)}, numpy: ${reference(x)}`);
  assert.ok(Object.is(modTau(-1e-20), TAU), 'as numpy: a tiny negative angle rounds up to 2 pi');
});

test('GrandTour: .matrix is orthogonal after 1e5 steps at n = 20, and frame() is its first two columns', () => {
  const t = new GrandTour({ ndim: 20, seed: 7, speed: 1.3 });
  const rng = new Rng(1);
  for (let k = 0; k < 100000; k++) t.step(rng.uniform(-0.01, 0.05));
  const GT = t.matrix;
  assert.ok(orthogonalityError(GT) < 1e-12, `max |GT^T GT - I| = ${orthogonalityError(GT)}`);
  assert.ok(maxAbsDiff(t.frame(), firstTwoColumns(GT)) < 1e-13);
  assert.ok(t.time > 1000, 'the tour has moved on');
});

test('GrandTour: the same path for dt = 1/60 x 60 and dt = 1/144 x 144 (speed is per second)', () => {
  const make = () => new GrandTour({ ndim: 12, seed: 3, speed: 0.8 });
  const a = make(), b = make();
  const start = a.frame();
  for (let k = 0; k < 60; k++) a.step(1 / 60);
  for (let k = 0; k < 144; k++) b.step(1 / 144);
  assert.ok(maxAbsDiff(a.frame(), b.frame()) < 1e-9, `frames differ by ${maxAbsDiff(a.frame(), b.frame())}`);
  assert.ok(Math.abs(a.time - b.time) < 1e-12);
  assert.ok(maxAbsDiff(a.frame(), start) > 1e-2, 'one second of touring moves the view');
});

test('GrandTour: the angular velocities have |omega| = speed sqrt(n/2); seeds reproduce', () => {
  for (const n of [2, 5, 30]) {
    const t = new GrandTour({ ndim: n, seed: n, speed: 0.7 });
    let s = 0;
    for (const w of t.angularVelocity) s += w * w;
    assert.ok(Math.abs(Math.sqrt(s) - 0.7 * Math.sqrt(n / 2)) < 1e-12);
    assert.ok(t.angles.every((a) => a >= 0 && a <= 2 * Math.PI));
    assert.ok(Math.abs(det(t.base) - 1) < 1e-12 && Math.abs(det(t.right) - 1) < 1e-12);
  }
  const a = new GrandTour({ ndim: 6, seed: 11 }), b = new GrandTour({ ndim: 6, seed: 11 });
  const c = new GrandTour({ ndim: 6, seed: 12 });
  assert.equal(maxAbsDiff(a.step(0.3).frame(), b.step(0.3).frame()), 0);
  assert.ok(maxAbsDiff(a.frame(), c.step(0.3).frame()) > 1e-3);
});

test('GrandTour: n = 2 is a plain rotation at `speed` rad/s', () => {
  const t = new GrandTour({ ndim: 2, seed: 5, speed: 0.9, base: identity(2), right: identity(2) });
  const a0 = Math.atan2(t.frame().data[2], t.frame().data[0]);
  const a1 = Math.atan2(t.step(0.5).frame().data[2], t.frame().data[0]);
  const turned = Math.abs(Math.atan2(Math.sin(a1 - a0), Math.cos(a1 - a0)));
  assert.ok(Math.abs(turned - 0.45) < 1e-12, `turned ${turned}`);
});

test('GrandTour: matrix = GT lands on GT and the tour goes on from there; rebase is GT <- P GT', () => {
  const rng = new Rng(2);
  const t = new GrandTour({ ndim: 9, seed: 4 });
  t.step(1.7);
  const GT = randomRotation(9, rng);
  t.matrix = GT;
  assert.ok(maxAbsDiff(t.matrix, GT) < 1e-13);
  const before = t.matrix;
  const P = randomRotation(9, rng);
  t.rebase(P);
  assert.ok(maxAbsDiff(t.matrix, matmul(P, before)) < 1e-13);
  t.step(0.1);
  assert.ok(orthogonalityError(t.matrix) < 1e-13);
});

test('GrandTour: frame(out) and project(X, out) reuse the buffers they are given', () => {
  const t = new GrandTour({ ndim: 7, seed: 9 });
  const out = matrix(7, 2);
  assert.equal(t.step(0.01).frame(out), out);
  assert.equal(maxAbsDiff(out, t.frame()), 0);
  const X = identity(7), Y = matrix(7, 2);
  assert.equal(t.project(X, Y), Y);
  assert.ok(maxAbsDiff(Y, out) < 1e-15, 'projecting the unit axes gives the handles');
  assert.throws(() => t.frame(matrix(6, 2)), RangeError);
});

test('GeodesicTour: each step within a segment moves the plane by speed * dt (principal-angle distance)', () => {
  const speed = 0.8;
  const g = new GeodesicTour({ ndim: 7, seed: 21, speed });
  const rng = new Rng(5);
  let checked = 0;
  for (let k = 0; k < 2000; k++) {
    const dt = rng.uniform(0, 0.05);
    const F0 = g.frame(), reached = g.targetsReached;
    g.step(dt);
    if (g.targetsReached !== reached) continue;
    const dist = Math.hypot(...principalAngles(F0, g.frame()));
    assert.ok(Math.abs(dist - speed * dt) < 1e-9, `step ${k}: moved ${dist}, expected ${speed * dt}`);
    checked += 1;
  }
  assert.ok(g.targetsReached >= 5 && checked > 1900, `crossed ${g.targetsReached} targets, checked ${checked}`);
});

test('GeodesicTour: reaches each target plane, and stays orthogonal over thousands of segments', () => {
  const targets = [];
  const rng = new Rng(8);
  const g = new GeodesicTour({
    ndim: 12, speed: 40,
    targets: () => {
      const T = matrix(12, 2);
      for (let k = 0; k < 24; k++) T.data[k] = rng.normal();
      targets.push(T);
      return T;
    },
  });
  for (let k = 0; k < 2000; k++) g.step(0.1);
  assert.ok(g.targetsReached > 1000, `only ${g.targetsReached} targets`);
  assert.ok(orthogonalityError(g.matrix) < 1e-10, `max |GT^T GT - I| = ${orthogonalityError(g.matrix)}`);
  // Just before a target, the view is (almost) the target plane.
  const h = new GeodesicTour({ ndim: 5, seed: 1, speed: 1 });
  h.step(h.segmentLength * (1 - 1e-9));
  assert.equal(h.targetsReached, 0);
  assert.ok(Math.hypot(...principalAngles(h.frame(), h.target)) < 1e-8);
  h.step(2e-9 * h.segmentLength);
  assert.equal(h.targetsReached, 1);
});

test('axisDrag: the handle lands at normalize(e_i GT + D), the result is a rotation', () => {
  const rng = new Rng(13);
  for (let trial = 0; trial < 200; trial++) {
    const n = 2 + (trial % 9);
    const GT = randomRotation(n, rng);
    const i = trial % n;
    const dx = rng.uniform(-0.4, 0.4), dy = rng.uniform(-0.4, 0.4);
    const h = [GT.data[i * n], GT.data[i * n + 1]];
    if (1 + h[0] * dx + h[1] * dy < 0.25) continue; // split drags are checked below
    const R = axisDrag(GT, i, dx, dy);
    const row = Array.from(GT.data.subarray(i * n, i * n + n));
    row[0] += dx;
    row[1] += dy;
    const len = Math.hypot(...row);
    assert.ok(Math.abs(R.data[i * n] - row[0] / len) < 1e-12 && Math.abs(R.data[i * n + 1] - row[1] / len) < 1e-12);
    assert.ok(Math.hypot(R.data[i * n] - h[0] - dx, R.data[i * n + 1] - h[1] - dy) <= Math.hypot(dx, dy) + 1e-12);
    assert.ok(orthogonalityError(R) < 1e-13);
    assert.ok(Math.abs(det(R) - 1) < 1e-12);
  }
  // Through the origin: split, and still a rotation (no mirror image).
  const GT = randomRotation(5, rng);
  const R = axisDrag(GT, 2, -2 * GT.data[10], -2 * GT.data[11]);
  assert.ok(orthogonalityError(R) < 1e-13 && det(R) > 0);
});

test('gramSchmidtRows: orthogonal rows, row `first` only normalised, completed rows give det +1', () => {
  const rng = new Rng(19);
  for (let n = 2; n <= 7; n++) {
    for (let first = 0; first < n; first++) {
      const M = matrix(n, n);
      for (let k = 0; k < n * n; k++) M.data[k] = rng.normal();
      const Q = gramSchmidtRows(M, first);
      assert.ok(orthogonalityError(Q) < 1e-13);
      const row = M.data.subarray(first * n, first * n + n), len = Math.hypot(...row);
      assert.ok(maxAbsDiff(Q.data.subarray(first * n, first * n + n), row.map((x) => x / len)) < 1e-15);
      // Rank-deficient: rows 1 and (the last) repeat row 0, so rows are completed.
      const D = matrix(n, n, Float64Array.from(M.data));
      D.data.copyWithin(n * (n - 1), 0, n);
      if (n > 2) D.data.copyWithin(n, 0, n);
      const R = gramSchmidtRows(D, first);
      assert.ok(orthogonalityError(R) < 1e-13 && Math.abs(det(R) - 1) < 1e-12, `n=${n} first=${first}: det ${det(R)}`);
    }
  }
});

test('pointDrag: the centroid lands exactly at c~new; the orthogonal complement does not move', () => {
  const rng = new Rng(17);
  for (let trial = 0; trial < 200; trial++) {
    const n = 2 + (trial % 9);
    const GT = randomRotation(n, rng);
    const c = Float64Array.from({ length: n }, () => rng.normal());
    const dx = rng.uniform(-2, 2), dy = rng.uniform(-2, 2);
    const R = pointDrag(GT, c, dx, dy);
    const ct = rowTimes(c, GT), moved = Float64Array.from(ct);
    moved[0] += dx;
    moved[1] += dy;
    const ratio = Math.hypot(...ct) / Math.hypot(...moved);
    const ctNew = moved.map((x) => x * ratio);
    assert.ok(maxAbsDiff(rowTimes(c, R), ctNew) < 1e-12, `trial ${trial}`);
    assert.ok(orthogonalityError(R) < 1e-13);
    // A view vector orthogonal to ct and ctNew keeps its image: x GT^T R = x.
    if (n >= 3) {
      const x = Float64Array.from({ length: n }, () => rng.normal());
      const B = gramSchmidtRows(fromRows([Array.from(ct), Array.from(ctNew), ...Array.from({ length: n - 2 }, (_, k) => {
        const r = new Array(n).fill(0); r[k] = 1; return r;
      })]), 0); // rows 0, 1: a basis of span(ct, ctNew)
      for (let r = 0; r < 2; r++) {
        let d = 0;
        for (let j = 0; j < n; j++) d += x[j] * B.data[r * n + j];
        for (let j = 0; j < n; j++) x[j] -= d * B.data[r * n + j];
      }
      const back = rowTimes(rowTimes(x, transpose(GT)), R);
      assert.ok(maxAbsDiff(back, x) < 1e-12);
    }
  }
});

test('centroid: mask and indices select the same rows; non-finite rows are left out', () => {
  const X = fromRows([[1, 2], [3, NaN], [5, 6], [7, 8]]);
  assert.deepEqual(Array.from(centroid(X)), [13 / 3, 16 / 3]);
  assert.deepEqual(Array.from(centroid(X, [true, true, false, true])), Array.from(centroid(X, [0, 1, -1])));
  assert.throws(() => centroid(X, [1]), /select some points/);
  assert.throws(() => centroid(X, []), /select some points/);
});

test('Rng: uniform in [0, 1), standard normals with mean 0 and variance 1', () => {
  const rng = new Rng(123);
  let s = 0, s2 = 0, umin = 1, umax = 0;
  const N = 200000;
  for (let k = 0; k < N; k++) {
    const z = rng.normal();
    s += z;
    s2 += z * z;
    const u = rng.uniform();
    umin = Math.min(umin, u);
    umax = Math.max(umax, u);
  }
  assert.ok(Math.abs(s / N) < 0.01 && Math.abs(s2 / N - 1) < 0.015, `mean ${s / N}, variance ${s2 / N}`);
  assert.ok(umin >= 0 && umin < 1e-4 && umax < 1 && umax > 1 - 1e-4);
  assert.throws(() => new Rng(-1), RangeError);
});
