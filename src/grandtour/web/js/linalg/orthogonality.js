/**
 * How far a matrix is from orthogonal, exactly or by an O(n^2) estimate, and the check
 * that every tour entry point applies to a matrix it is handed.
 * Python counterpart: tour.py `check_orthogonal` (exact at every n).
 */

import { asSquare } from './matrix.js';

/**
 * `max |M^T M - I|`: how far `M` is from orthogonal. Exact, O(n^3): `M^T M` is
 * accumulated row by row of `M` (each sum over the rows in order).
 */
export function orthogonalityError(M) {
  const n = M.rows, c = M.cols, d = M.data;
  const S = new Float64Array(c * c); // upper triangle of M^T M
  for (let k = 0; k < n; k++) {
    const rk = k * c;
    for (let i = 0; i < c; i++) {
      const x = d[rk + i], si = i * c;
      for (let j = i; j < c; j++) S[si + j] += x * d[rk + j];
    }
  }
  let err = 0;
  for (let i = 0; i < c; i++) {
    for (let j = i; j < c; j++) err = Math.max(err, Math.abs(S[i * c + j] - (i === j ? 1 : 0)));
  }
  return err;
}

/** Above this size `checkOrthogonal` uses the O(n^2) estimate, not the exact O(n^3) error. */
export const EXACT_ORTHOGONALITY_MAX_N = 64;
/** Number of probe vectors of `orthogonalityErrorEstimate`. */
export const ORTHOGONALITY_PROBES = 3;

/**
 * An O(n^2) stand-in for `orthogonalityError(M)` (M square, n x n), for large n:
 * the larger of
 * - the exact diagonal of `E = M^T M - I`, `max_j | |M[:, j]|^2 - 1 |` (column norms), and
 * - `max_v |E v| / sqrt(n)` over `ORTHOGONALITY_PROBES` fixed pseudo-random unit vectors
 *   v (entries +-1/sqrt(n), the same for every call), `E v = M^T (M v) - v`.
 *
 * For such a v the mean of `|E v|^2` is `|E|_F^2 / n`, so `|E v| / sqrt(n)` estimates the
 * root-mean-square entry of E (`|E|_F / n`), which is at most `max |E_ij|`: in other
 * words the test `|E v| <= sqrt(n) tol` has its tolerance scaled by sqrt(n) to the
 * length of a row of E whose entries are all within `tol`. Rounding-level errors (1e-13
 * at n = 1024) and float32-level ones pass with orders of magnitude to spare; a matrix
 * with a wrongly scaled column fails exactly as in the exact check; a non-orthogonal one
 * (a generic matrix, a row moved without re-orthonormalising) fails unless its error is
 * concentrated in a few entries (a single off-diagonal pair passes up to about
 * `n tol / sqrt(2)`). Python keeps the exact check (`tour.check_orthogonal`).
 */
export function orthogonalityErrorEstimate(M) {
  const n = M.rows, d = M.data;
  if (M.cols !== n) throw new RangeError(`orthogonalityErrorEstimate needs a square matrix, got (${M.rows}, ${M.cols})`);
  const P = ORTHOGONALITY_PROBES;
  const V = new Float64Array(P * n), U = new Float64Array(P * n), colSq = new Float64Array(n);
  const w = new Float64Array(P);
  const unit = 1 / Math.sqrt(n);
  let x = 0x9e3779b9 | 0; // xorshift32, fixed seed: the same probes every time
  for (let k = 0; k < P * n; k++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    V[k] = (x & 1) ? unit : -unit;
  }
  for (let i = 0; i < n; i++) { // one pass over the rows: (M v)_i, then M^T (M v) += (M v)_i M_i
    const ri = i * n;
    for (let p = 0; p < P; p++) {
      const vp = p * n;
      let s = 0;
      for (let j = 0; j < n; j++) s += d[ri + j] * V[vp + j];
      w[p] = s;
    }
    for (let j = 0; j < n; j++) colSq[j] += d[ri + j] * d[ri + j];
    for (let p = 0; p < P; p++) {
      const up = p * n, wp = w[p];
      for (let j = 0; j < n; j++) U[up + j] += wp * d[ri + j];
    }
  }
  let err = 0;
  for (let j = 0; j < n; j++) err = Math.max(err, Math.abs(colSq[j] - 1));
  for (let p = 0; p < P; p++) {
    let s = 0;
    for (let j = 0; j < n; j++) { const e = U[p * n + j] - V[p * n + j]; s += e * e; }
    err = Math.max(err, Math.sqrt(s / n));
  }
  return Number.isNaN(err) ? Infinity : err;
}

/**
 * `GT` as a fresh matrix after checking it is square, finite and orthogonal
 * (`max |GT^T GT - I| <= tol`), as tour.py `check_orthogonal`. Up to n =
 * `EXACT_ORTHOGONALITY_MAX_N` (64) the error is exact, as in Python; above, it is the
 * O(n^2) `orthogonalityErrorEstimate` (the exact one costs O(n^3): seconds at n = 1024).
 */
export function checkOrthogonal(GT, tol = 1e-6, name = 'GT') {
  const M = asSquare(GT, name);
  const exact = M.rows <= EXACT_ORTHOGONALITY_MAX_N;
  const err = exact ? orthogonalityError(M) : orthogonalityErrorEstimate(M);
  if (!(err <= tol)) {
    const what = exact ? `max |${name}^T ${name} - I| = ${err.toPrecision(3)}`
      : `|${name}^T ${name} - I| ~ ${err.toPrecision(3)} (estimated per entry: diagonal and ` +
        `${ORTHOGONALITY_PROBES} probe vectors, n > ${EXACT_ORTHOGONALITY_MAX_N})`;
    throw new RangeError(
      `${name} must be orthogonal: ${what} > ${tol}. ` +
      'Re-orthonormalise it (e.g. gramSchmidtRows in manipulate.js) first.');
  }
  return M;
}
