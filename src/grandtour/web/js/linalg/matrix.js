/**
 * Dense matrices as plain objects: construction, checks, products, norms.
 * Python counterpart: numpy itself (`np.asarray`, `@`, `np.linalg.norm`, `np.linalg.det`)
 * and tour.py `_as_matrix` (`asSquare`).
 *
 * Convention: a matrix is a plain object `{rows, cols, data}` where `data` is a
 * row-major Float64Array of length `rows * cols`: entry (i, j) is
 * `data[i * cols + j]`. A vector is a Float64Array (or any array of numbers on input).
 * Data points are row vectors: a dataset is an N x n matrix X and a map acts on the
 * right, `X @ M` (Li, Zhao, Scheidegger, Distill 2020).
 *
 * Functions that take a matrix also accept nested arrays (`[[1, 0], [0, 1]]`); they
 * never modify their inputs. Where an `out` argument is offered it is written and
 * returned, so a caller in an animation loop allocates nothing.
 */

import { rowCombine } from './kernels.js';

/** A new `rows x cols` matrix, zero-filled or wrapping `data` (not copied). */
export function matrix(rows, cols, data = new Float64Array(rows * cols)) {
  if (data.length !== rows * cols) {
    throw new RangeError(`data has ${data.length} entries, a ${rows} x ${cols} matrix needs ${rows * cols}`);
  }
  return { rows, cols, data };
}

/** A matrix from an array of equal-length rows (arrays of numbers). */
export function fromRows(rowsArray) {
  const rows = rowsArray.length;
  const cols = rows ? rowsArray[0].length : 0;
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const r = rowsArray[i];
    if (r == null || r.length !== cols) {
      throw new RangeError(`row ${i} has ${r == null ? 'no' : r.length} entries, expected ${cols} (rows must have equal length)`);
    }
    for (let j = 0; j < cols; j++) data[i * cols + j] = r[j];
  }
  return { rows, cols, data };
}

/** Nested arrays of the rows of `M` (for printing and JSON). */
export function toRows(M) {
  const out = [];
  for (let i = 0; i < M.rows; i++) out.push(Array.from(M.data.subarray(i * M.cols, (i + 1) * M.cols)));
  return out;
}

/** Whether `M` is a `{rows, cols, data}` matrix with `rows * cols` entries. */
export function isMatrix(M) {
  return M != null && typeof M === 'object' && Number.isInteger(M.rows) && Number.isInteger(M.cols) &&
    M.data != null && M.data.length === M.rows * M.cols;
}

/**
 * `M` as a matrix with a Float64Array (a copy: callers may keep it), checked finite.
 * Accepts a `{rows, cols, data}` matrix or nested arrays.
 */
export function asMatrix(M, name = 'M') {
  let out;
  if (isMatrix(M)) {
    out = { rows: M.rows, cols: M.cols, data: Float64Array.from(M.data) };
  } else if (Array.isArray(M) && M.every((r) => r != null && typeof r.length === 'number')) {
    out = fromRows(M);
  } else {
    throw new TypeError(`${name} must be a {rows, cols, data} matrix or an array of rows`);
  }
  for (let k = 0; k < out.data.length; k++) {
    if (!Number.isFinite(out.data[k])) throw new RangeError(`${name} contains NaN or infinite entries`);
  }
  return out;
}

/** As tour.py `_as_matrix`: a finite square matrix with n >= 2. */
export function asSquare(M, name = 'GT') {
  const A = asMatrix(M, name);
  if (A.rows !== A.cols) throw new RangeError(`${name} must be a square n x n matrix, got shape (${A.rows}, ${A.cols})`);
  if (A.rows < 2) throw new RangeError(`${name} must be at least 2 x 2 (a 2-D view needs n >= 2), got (${A.rows}, ${A.cols})`);
  return A;
}

/** A Float64Array copy of a vector (array-like of numbers), checked finite and of length `n` if given. */
export function asVector(v, name = 'v', n = undefined) {
  if (v == null || typeof v.length !== 'number' || typeof v === 'string') {
    throw new TypeError(`${name} must be an array of numbers`);
  }
  const out = Float64Array.from(v);
  if (n !== undefined && out.length !== n) throw new RangeError(`${name} must have shape (${n},), got (${out.length},)`);
  for (let k = 0; k < out.length; k++) {
    if (!Number.isFinite(out[k])) throw new RangeError(`${name} contains NaN or infinite entries`);
  }
  return out;
}

/** The n x n identity. */
export function identity(n) {
  const M = matrix(n, n);
  for (let i = 0; i < n; i++) M.data[i * n + i] = 1;
  return M;
}

/** `A^T`, into `out` if given (must not alias `A`). Tiled, so both sides stay in cache. */
export function transpose(A, out = matrix(A.cols, A.rows)) {
  const { rows, cols, data } = A;
  const o = out.data;
  const TILE = 32;
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(rows, i0 + TILE);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(cols, j0 + TILE);
      for (let i = i0; i < i1; i++) {
        const ri = i * cols;
        for (let j = j0; j < j1; j++) o[j * rows + i] = data[ri + j];
      }
    }
  }
  return out;
}

/** `A @ B`, into `out` if given (must alias neither): row combinations, `out_i = sum_k A_ik B_k`. */
export function matmul(A, B, out = matrix(A.rows, B.cols)) {
  if (A.cols !== B.rows) throw new RangeError(`matmul: shapes (${A.rows}, ${A.cols}) and (${B.rows}, ${B.cols}) do not agree`);
  const n = A.rows, p = A.cols, m = B.cols;
  out.data.fill(0, 0, n * m);
  rowCombine(out.data, 0, m, n, A.data, 0, p, B.data, 0, m, p, m, 1);
  return out;
}

/** `<u, v>`. */
export function dot(u, v) {
  let s = 0;
  for (let k = 0; k < u.length; k++) s += u[k] * v[k];
  return s;
}

/** Euclidean norm of a vector. */
export function norm(v) {
  return Math.sqrt(dot(v, v));
}

/** Frobenius norm of a matrix. */
export function frobeniusNorm(M) {
  return norm(M.data);
}

/** `max |M_ij|` (0 for an empty matrix). */
export function maxAbs(M) {
  const d = M.data ?? M;
  let m = 0;
  for (let k = 0; k < d.length; k++) m = Math.max(m, Math.abs(d[k]));
  return m;
}

/** `max |A_ij - B_ij|` of two matrices (or vectors) of the same size. */
export function maxAbsDiff(A, B) {
  const a = A.data ?? A, b = B.data ?? B;
  if (a.length !== b.length) throw new RangeError(`maxAbsDiff: sizes ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}

/** Determinant by LU with partial pivoting (used only for its sign). */
export function det(M) {
  const n = M.rows;
  if (M.cols !== n) throw new RangeError(`det needs a square matrix, got (${M.rows}, ${M.cols})`);
  const a = Float64Array.from(M.data);
  let d = 1;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]) > Math.abs(a[p * n + k])) p = i;
    if (a[p * n + k] === 0) return 0;
    if (p !== k) {
      for (let j = 0; j < n; j++) { const t = a[k * n + j]; a[k * n + j] = a[p * n + j]; a[p * n + j] = t; }
      d = -d;
    }
    const akk = a[k * n + k];
    d *= akk;
    for (let i = k + 1; i < n; i++) {
      const f = a[i * n + k] / akk;
      if (f !== 0) for (let j = k + 1; j < n; j++) a[i * n + j] -= f * a[k * n + j];
    }
  }
  return d;
}
