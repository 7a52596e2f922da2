/**
 * Planes through the origin as orthonormal n x 2 frames: an orthonormal basis of a
 * plane, and the principal angles and principal vectors between two planes (the
 * geodesic between them is what GeodesicTour follows).
 * Python counterpart: tour.py `principal_angles`, `_principal_pairs`, and the QR of
 * `random_frame` and `GeodesicTour._next_target` (`orthonormalFrame`).
 */

import { fromRows, isMatrix, matrix } from './matrix.js';
import { svd2 } from './svd2.js';

function columns2(F, name) {
  const A = isMatrix(F) ? F : fromRows(F);
  if (A.cols !== 2) throw new RangeError(`${name} must be an n x 2 frame, got (${A.rows}, ${A.cols})`);
  return A;
}

/** `F^T T` of two n x 2 frames, then its closed-form SVD. */
function crossSvd(F, T) {
  const n = F.rows, f = F.data, t = T.data;
  let m00 = 0, m01 = 0, m10 = 0, m11 = 0;
  for (let i = 0; i < n; i++) {
    const f0 = f[2 * i], f1 = f[2 * i + 1], t0 = t[2 * i], t1 = t[2 * i + 1];
    m00 += f0 * t0; m01 += f0 * t1; m10 += f1 * t0; m11 += f1 * t1;
  }
  return svd2(matrix(2, 2, Float64Array.of(m00, m01, m10, m11)));
}

/** `P = F U` (n x 2). */
function leftVectors(F, U) {
  const n = F.rows, f = F.data, u = U.data;
  const P = matrix(n, 2), p = P.data;
  for (let i = 0; i < n; i++) {
    const f0 = f[2 * i], f1 = f[2 * i + 1];
    p[2 * i] = f0 * u[0] + f1 * u[2];
    p[2 * i + 1] = f0 * u[1] + f1 * u[3];
  }
  return P;
}

/** `Res = T V - P diag(c)`: each partner's component orthogonal to span F (n x 2). */
function residuals(T, V, P, c) {
  const n = T.rows, t = T.data, v = V.data, p = P.data;
  const Res = matrix(n, 2), res = Res.data;
  for (let i = 0; i < n; i++) {
    const t0 = t[2 * i], t1 = t[2 * i + 1];
    res[2 * i] = (t0 * v[0] + t1 * v[2]) - p[2 * i] * c[0];
    res[2 * i + 1] = (t0 * v[1] + t1 * v[3]) - p[2 * i + 1] * c[1];
  }
  return Res;
}

function checkPair(A, B) {
  A = columns2(A, 'A');
  B = columns2(B, 'B');
  if (A.rows !== B.rows) throw new RangeError(`frames must have the same number of rows, got ${A.rows} and ${B.rows}`);
  return [A, B];
}

function columnNorm(M, k) {
  let s = 0;
  for (let i = 0; i < M.rows; i++) s += M.data[2 * i + k] * M.data[2 * i + k];
  return Math.sqrt(s);
}

/**
 * Principal vectors of `span F` and `span T` (orthonormal n x 2 frames), as tour.py
 * `_principal_pairs`.
 *
 * @returns {{P, G, theta: Float64Array, U}} `P = F U` (n x 2), the principal vectors of
 *   `span F`; `G` (n x 2) unit vectors orthogonal to `span F` (and to each other) with
 *   partners in `span T` `P cos(theta) + G sin(theta)`; `theta` ascending; columns of
 *   `G` are zero where `theta == 0`; `U` the 2 x 2 left factor.
 */
export function principalPairs(F, T) {
  [F, T] = checkPair(F, T);
  const n = F.rows;
  const { U, s: c, V } = crossSvd(F, T);
  // Orthonormalise P: if rounding left it slightly off, the rotation R built on it
  // would be slightly non-orthogonal, and the error would double at every segment.
  const P = leftVectors(F, U), p = P.data;
  const n0 = columnNorm(P, 0);
  for (let i = 0; i < n; i++) p[2 * i] /= n0;
  for (let pass = 0; pass < 2; pass++) {
    let d = 0;
    for (let i = 0; i < n; i++) d += p[2 * i] * p[2 * i + 1];
    for (let i = 0; i < n; i++) p[2 * i + 1] -= p[2 * i] * d;
  }
  const n1 = columnNorm(P, 1);
  for (let i = 0; i < n; i++) p[2 * i + 1] /= n1;
  const Res = residuals(T, V, P, c), res = Res.data;
  const sines = [columnNorm(Res, 0), columnNorm(Res, 1)];
  const theta = Float64Array.of(Math.atan2(sines[0], c[0]), Math.atan2(sines[1], c[1]));
  const G = matrix(n, 2), g = G.data;
  const gk = new Float64Array(n);
  for (const k of (sines[1] > sines[0] ? [1, 0] : [0, 1])) { // largest sine first (stable)
    // Re-orthogonalise against span F and the other G: when a sine is tiny its Res is
    // rounding noise (often along the other G), and an unorthogonalised G would let
    // the frame drift.
    let pr0 = 0, pr1 = 0, gr0 = 0, gr1 = 0; // P^T r, G^T r
    for (let i = 0; i < n; i++) {
      const r = res[2 * i + k];
      pr0 += p[2 * i] * r; pr1 += p[2 * i + 1] * r;
      gr0 += g[2 * i] * r; gr1 += g[2 * i + 1] * r;
    }
    let nrm = 0;
    for (let i = 0; i < n; i++) {
      const v = (res[2 * i + k] - (p[2 * i] * pr0 + p[2 * i + 1] * pr1)) - (g[2 * i] * gr0 + g[2 * i + 1] * gr1);
      gk[i] = v;
      nrm += v * v;
    }
    nrm = Math.sqrt(nrm);
    if (sines[k] > 1e-12 && nrm > 0.5 * sines[k]) {
      for (let i = 0; i < n; i++) g[2 * i + k] = gk[i] / nrm;
    } else {
      theta[k] = 0;
    }
  }
  return { P, G, theta, U };
}

/**
 * Principal angles `(theta_1, theta_2)` between the planes spanned by two orthonormal
 * n x 2 frames, as tour.py `principal_angles`: each an atan2 of its principal pair,
 * accurate for small and large angles alike. The geodesic distance of the planes is
 * `Math.hypot(...principalAngles(A, B))`.
 */
export function principalAngles(A, B) {
  [A, B] = checkPair(A, B);
  const { U, s: c, V } = crossSvd(A, B);
  const Res = residuals(B, V, leftVectors(A, U), c);
  return Float64Array.of(Math.atan2(columnNorm(Res, 0), c[0]), Math.atan2(columnNorm(Res, 1), c[1]));
}

/**
 * Orthonormal basis `Q` (n x 2) of the span of the columns of `T`, by Gram-Schmidt
 * twice, with a positive diagonal `R` (`T = Q R`). Throws if the columns are
 * (numerically) dependent: `|R11| < 1e-12 |R00|` or a zero first column.
 */
export function orthonormalFrame(T, name = 'target') {
  const n = T.rows, t = T.data;
  const Q = matrix(n, 2), q = Q.data;
  let r00 = 0;
  for (let i = 0; i < n; i++) r00 += t[2 * i] * t[2 * i];
  r00 = Math.sqrt(r00);
  if (r00 === 0) throw new RangeError(`a ${name} frame's two columns must be linearly independent`);
  for (let i = 0; i < n; i++) { q[2 * i] = t[2 * i] / r00; q[2 * i + 1] = t[2 * i + 1]; }
  for (let pass = 0; pass < 2; pass++) {
    let r = 0;
    for (let i = 0; i < n; i++) r += q[2 * i] * q[2 * i + 1];
    for (let i = 0; i < n; i++) q[2 * i + 1] -= r * q[2 * i];
  }
  let r11 = 0;
  for (let i = 0; i < n; i++) r11 += q[2 * i + 1] * q[2 * i + 1];
  r11 = Math.sqrt(r11);
  if (r11 < 1e-12 * r00) throw new RangeError(`a ${name} frame's two columns must be linearly independent`);
  for (let i = 0; i < n; i++) q[2 * i + 1] /= r11;
  return Q;
}
