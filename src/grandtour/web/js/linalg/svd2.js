/**
 * The closed-form SVD of a 2 x 2 matrix (the cross products of two planes' frames).
 * Python counterpart: tour.py `svd2`.
 */

import { fromRows, isMatrix, matrix } from './matrix.js';

/**
 * Closed-form SVD of a 2 x 2 matrix, exactly as tour.py `svd2` (same signs):
 * `M = U diag(s) V^T`, `s[0] >= s[1] >= 0`, with `M = Rot(phi) diag(s0, s1) Rot(theta)`.
 *
 * @returns {{U: object, s: Float64Array, V: object}} U, V as 2 x 2 matrices.
 */
export function svd2(M) {
  const A = isMatrix(M) ? M : fromRows(M);
  if (A.rows !== 2 || A.cols !== 2) throw new RangeError(`svd2 needs a 2 x 2 matrix, got (${A.rows}, ${A.cols})`);
  const [m00, m01, m10, m11] = A.data;
  const e = (m00 + m11) / 2;
  const f = (m00 - m11) / 2;
  const g = (m10 + m01) / 2;
  const h = (m10 - m01) / 2;
  const q = Math.hypot(e, h);
  const r = Math.hypot(f, g);
  const a1 = Math.atan2(g, f);
  const a2 = Math.atan2(h, e);
  const theta = (a2 - a1) / 2; // M = Rot(phi) diag(s0, s1) Rot(theta)
  const phi = (a2 + a1) / 2;
  const s0 = q + r;
  let s1 = q - r;
  const cu = Math.cos(phi), su = Math.sin(phi);
  const cv = Math.cos(theta), sv = Math.sin(theta);
  const U = matrix(2, 2, Float64Array.of(cu, -su, su, cu));
  const V = matrix(2, 2, Float64Array.of(cv, sv, -sv, cv)); // V^T = Rot(theta)
  if (s1 < 0) { // make both singular values non-negative
    s1 = -s1;
    V.data[1] = -V.data[1];
    V.data[3] = -V.data[3];
  }
  return { U, s: Float64Array.of(s0, s1), V };
}
