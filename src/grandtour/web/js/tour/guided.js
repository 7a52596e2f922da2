/**
 * The guided tour: a geodesic tour whose targets raise a projection-pursuit index, the
 * LDA index of chosen classes (tourr's guided_tour(lda_pp(cl)) with search_better).
 * Python counterpart: guided.py `GuidedTour`, `lda_index`, `scatter_matrices`.
 *
 * I(A) = 1 - det(A^T W A) / det(A^T (W + B) A), W and B the within- and between-class
 * scatter of the chosen classes' points: 0 when the view shows no difference of the
 * class means, 1 when each class collapses to a point. From the plane it is heading
 * for, the search draws `tries` frames orth(F + alpha G), G standard normal, and takes
 * the best if it raises the index; else alpha shrinks by `cooling`; below `minAlpha`
 * the tour stands still on the view it found. Each target reached is better than the one
 * before.
 */

import { matrix } from '../linalg/matrix.js';
import { orthonormalFrame } from '../linalg/planes.js';
import { GeodesicTour } from './geodesic.js';
import { Rng } from './random.js';

/**
 * Within-class `W` and between-class `B` scatter (n x n Float64Array, row-major) of the
 * points of `classes` (default: every label present).
 * @param {Float32Array|Float64Array} X N x n, row-major
 */
export function scatterMatrices(X, N, n, labels, classes) {
  const keep = classes == null ? null : new Set(classes);
  const sums = new Map(), counts = new Map();
  const total = new Float64Array(n);
  let kept = 0;
  for (let p = 0; p < N; p++) {
    const c = labels[p];
    if (keep !== null && !keep.has(c)) continue;
    if (!sums.has(c)) { sums.set(c, new Float64Array(n)); counts.set(c, 0); }
    const s = sums.get(c);
    for (let i = 0; i < n; i++) { s[i] += X[p * n + i]; total[i] += X[p * n + i]; }
    counts.set(c, counts.get(c) + 1);
    kept += 1;
  }
  if (sums.size < 2) throw new RangeError(`a guided tour separates at least 2 classes; got ${sums.size}`);
  const means = new Map();
  for (const [c, s] of sums) means.set(c, s.map((v) => v / counts.get(c)));
  const mean = total.map((v) => v / kept);
  const W = new Float64Array(n * n), B = new Float64Array(n * n);
  const r = new Float64Array(n);
  for (let p = 0; p < N; p++) {
    const c = labels[p];
    if (!means.has(c)) continue;
    const m = means.get(c);
    for (let i = 0; i < n; i++) r[i] = X[p * n + i] - m[i];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) W[i * n + j] += r[i] * r[j];
  }
  for (const [c, m] of means) {
    const k = counts.get(c);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) B[i * n + j] += k * (m[i] - mean[i]) * (m[j] - mean[j]);
  }
  let trace = 0;
  for (let i = 0; i < n; i++) trace += W[i * n + i] + B[i * n + i];
  const ridge = 1e-9 * Math.max(trace, 1e-300) / n; // keeps det(A^T W A) > 0 for rank-deficient layers
  for (let i = 0; i < n; i++) W[i * n + i] += ridge;
  return { W, B };
}

function quadratic2(A, M, n) { // A^T M A (2 x 2) as [a00, a01, a11], A an n x 2 matrix
  const a = A.data;
  let s00 = 0, s01 = 0, s11 = 0;
  for (let i = 0; i < n; i++) {
    let m0 = 0, m1 = 0;
    for (let j = 0; j < n; j++) { const v = M[i * n + j]; m0 += v * a[2 * j]; m1 += v * a[2 * j + 1]; }
    s00 += a[2 * i] * m0; s01 += a[2 * i] * m1; s11 += a[2 * i + 1] * m1;
  }
  return [s00, s01, s11];
}

/** tourr's LDA index 1 - det(A^T W A) / det(A^T (W + B) A) of the n x 2 frame `A`. */
export function ldaIndex(A, W, B) {
  const n = A.rows;
  const [w00, w01, w11] = quadratic2(A, W, n);
  const [b00, b01, b11] = quadratic2(A, B, n);
  const within = w00 * w11 - w01 * w01;
  const total = (w00 + b00) * (w11 + b11) - (w01 + b01) * (w01 + b01);
  return total > 0 ? 1 - within / total : 0;
}

/**
 * A geodesic tour toward views separating chosen classes.
 *
 * Options: `X` (N x n row-major array), `N`, `labels` (N class indices), `classes`
 * (default all), `seed`, `speed`, `start` as GeodesicTour; `alpha` (0.5), `tries` (25),
 * `cooling` (0.9), `minAlpha` (1e-3).
 */
export class GuidedTour extends GeodesicTour {
  constructor({ X, N, labels, classes, seed, speed = 0.5, start, alpha = 0.5, tries = 25, cooling = 0.9,
    minAlpha = 1e-3 } = {}) {
    const n = X.length / N;
    if (!Number.isInteger(n) || n < 2) throw new RangeError(`X must hold N x n values, n >= 2; got ${X.length} for N = ${N}`);
    const { W, B } = scatterMatrices(X, N, n, labels, classes);
    const rng = new Rng(seed ?? 0);
    const search = { W, B, alpha, tries, cooling, minAlpha, rng, best: null, n, start };
    super({ ndim: n, seed, speed, start, targets: () => searchBetter(search) });
    this._search = search;
  }

  /** The LDA index of frame `A` (default: the current view). */
  index(A) {
    return ldaIndex(A ?? this.frame(), this._search.W, this._search.B);
  }

  get W() { return this._search.W; }
  get B() { return this._search.B; }
}

function startFrame(state) {
  const n = state.n, F = matrix(n, 2);
  if (state.start == null) { F.data[0] = 1; F.data[3] = 1; return F; }
  const s = state.start.data;
  for (let i = 0; i < n; i++) { F.data[2 * i] = s[i * n]; F.data[2 * i + 1] = s[i * n + 1]; }
  return F;
}

function searchBetter(state) {
  const current = state.best ?? startFrame(state);
  const n = state.n;
  const bestIndex = ldaIndex(current, state.W, state.B);
  while (state.alpha >= state.minAlpha) {
    let best = null, score = -Infinity;
    for (let t = 0; t < state.tries; t++) {
      const F = matrix(n, 2);
      for (let k = 0; k < 2 * n; k++) F.data[k] = current.data[k] + state.alpha * state.rng.normal();
      const Q = orthonormalFrame(F, 'candidate');
      const s = ldaIndex(Q, state.W, state.B);
      if (s > score) { score = s; best = Q; }
    }
    if (score > bestIndex + 1e-12) { state.best = best; return best; }
    state.alpha *= state.cooling;
  }
  state.best = current;
  return current; // converged: the tour stands still on this plane
}
