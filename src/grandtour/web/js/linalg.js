/**
 * Small dense linear algebra for the Grand Tour (mirror of the helpers in tour.py).
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

function isMatrix(M) {
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

// ------------------------------------------------------------------------- row kernels
//
// The O(n^3) work of the tour (matmul, Householder QR, blocked Gram-Schmidt) runs
// through the two kernels below. They work on rows that are contiguous slices of
// Float64Arrays (row i of X starts at x0 + i * xs), unrolled so that every value loaded
// is used several times (4 x 2 dot products, 3 x 4 row combinations at once), and they
// walk the rows of Y in chunks that stay in cache. No allocation, no calls inside. About
// 0.4-0.5 ns per multiply-add in V8 (node 20, chromium), against 1-5 ns for plain loops;
// rows a power-of-two apart (a stride of 1024) are slower: callers that own the layout
// pad it (see haarQ in tour.js).

/** Rows of Y per chunk: about 512 KiB of them (a multiple of 4). */
function chunkRows(len) {
  return Math.max(4, (Math.floor(65536 / Math.max(1, len)) >> 2) << 2);
}

/**
 * Dot products of rows: `C[c0 + i * ldc + r] = <X_i, Y_r>` over `len` entries, for
 * `i < nx`, `r < ny`; X_i starts at `X[x0 + i * xs]`, Y_r at `Y[y0 + r * ys]`. Each sum
 * runs over the entries in order, one accumulator per product (as a plain loop would).
 */
export function rowDots(X, x0, xs, nx, Y, y0, ys, ny, len, C, c0, ldc) {
  const chunk = chunkRows(len);
  for (let r0 = 0; r0 < ny; r0 += chunk) {
    const r1 = Math.min(ny, r0 + chunk);
    let i = 0;
    for (; i + 3 < nx; i += 4) {
      const a0 = x0 + i * xs, a1 = a0 + xs, a2 = a1 + xs, a3 = a2 + xs;
      const ci = c0 + i * ldc;
      let r = r0;
      for (; r + 1 < r1; r += 2) {
        const b0 = y0 + r * ys, b1 = b0 + ys;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (let j = 0; j < len; j++) {
          const p = Y[b0 + j], q = Y[b1 + j];
          const u0 = X[a0 + j], u1 = X[a1 + j], u2 = X[a2 + j], u3 = X[a3 + j];
          s0 += u0 * p; s1 += u1 * p; s2 += u2 * p; s3 += u3 * p;
          t0 += u0 * q; t1 += u1 * q; t2 += u2 * q; t3 += u3 * q;
        }
        C[ci + r] = s0; C[ci + ldc + r] = s1; C[ci + 2 * ldc + r] = s2; C[ci + 3 * ldc + r] = s3;
        C[ci + r + 1] = t0; C[ci + ldc + r + 1] = t1; C[ci + 2 * ldc + r + 1] = t2; C[ci + 3 * ldc + r + 1] = t3;
      }
      if (r < r1) {
        const b0 = y0 + r * ys;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let j = 0; j < len; j++) {
          const p = Y[b0 + j];
          s0 += X[a0 + j] * p; s1 += X[a1 + j] * p; s2 += X[a2 + j] * p; s3 += X[a3 + j] * p;
        }
        C[ci + r] = s0; C[ci + ldc + r] = s1; C[ci + 2 * ldc + r] = s2; C[ci + 3 * ldc + r] = s3;
      }
    }
    for (; i < nx; i++) {
      const a0 = x0 + i * xs, ci = c0 + i * ldc;
      for (let r = r0; r < r1; r++) {
        const b0 = y0 + r * ys;
        let s = 0;
        for (let j = 0; j < len; j++) s += X[a0 + j] * Y[b0 + j];
        C[ci + r] = s;
      }
    }
  }
}

/**
 * Row combinations: `X_i += sign * sum_r C[c0 + i * ldc + r] Y_r` (over `len` entries),
 * for `i < nx`, `r < ny`, with `sign` 1 or -1; the same row layout as `rowDots`. X must
 * not overlap Y.
 */
export function rowCombine(X, x0, xs, nx, C, c0, ldc, Y, y0, ys, ny, len, sign = 1) {
  const chunk = chunkRows(len);
  for (let r0 = 0; r0 < ny; r0 += chunk) {
    const r1 = Math.min(ny, r0 + chunk);
    let i = 0;
    for (; i + 2 < nx; i += 3) {
      const a0 = x0 + i * xs, a1 = a0 + xs, a2 = a1 + xs;
      const ci = c0 + i * ldc, di = ci + ldc, ei = di + ldc;
      let r = r0;
      for (; r + 3 < r1; r += 4) {
        const b0 = y0 + r * ys, b1 = b0 + ys, b2 = b1 + ys, b3 = b2 + ys;
        const p0 = sign * C[ci + r], p1 = sign * C[ci + r + 1], p2 = sign * C[ci + r + 2], p3 = sign * C[ci + r + 3];
        const q0 = sign * C[di + r], q1 = sign * C[di + r + 1], q2 = sign * C[di + r + 2], q3 = sign * C[di + r + 3];
        const u0 = sign * C[ei + r], u1 = sign * C[ei + r + 1], u2 = sign * C[ei + r + 2], u3 = sign * C[ei + r + 3];
        for (let j = 0; j < len; j++) {
          const y0j = Y[b0 + j], y1j = Y[b1 + j], y2j = Y[b2 + j], y3j = Y[b3 + j];
          X[a0 + j] += (p0 * y0j + p1 * y1j) + (p2 * y2j + p3 * y3j);
          X[a1 + j] += (q0 * y0j + q1 * y1j) + (q2 * y2j + q3 * y3j);
          X[a2 + j] += (u0 * y0j + u1 * y1j) + (u2 * y2j + u3 * y3j);
        }
      }
      for (; r < r1; r++) {
        const b0 = y0 + r * ys, p = sign * C[ci + r], q = sign * C[di + r], u = sign * C[ei + r];
        for (let j = 0; j < len; j++) {
          const y = Y[b0 + j];
          X[a0 + j] += p * y;
          X[a1 + j] += q * y;
          X[a2 + j] += u * y;
        }
      }
    }
    for (; i + 1 < nx; i += 2) {
      const a0 = x0 + i * xs, a1 = a0 + xs;
      const ci = c0 + i * ldc, di = ci + ldc;
      let r = r0;
      for (; r + 3 < r1; r += 4) {
        const b0 = y0 + r * ys, b1 = b0 + ys, b2 = b1 + ys, b3 = b2 + ys;
        const p0 = sign * C[ci + r], p1 = sign * C[ci + r + 1], p2 = sign * C[ci + r + 2], p3 = sign * C[ci + r + 3];
        const q0 = sign * C[di + r], q1 = sign * C[di + r + 1], q2 = sign * C[di + r + 2], q3 = sign * C[di + r + 3];
        for (let j = 0; j < len; j++) {
          const y0j = Y[b0 + j], y1j = Y[b1 + j], y2j = Y[b2 + j], y3j = Y[b3 + j];
          X[a0 + j] += (p0 * y0j + p1 * y1j) + (p2 * y2j + p3 * y3j);
          X[a1 + j] += (q0 * y0j + q1 * y1j) + (q2 * y2j + q3 * y3j);
        }
      }
      for (; r < r1; r++) {
        const b0 = y0 + r * ys, p = sign * C[ci + r], q = sign * C[di + r];
        for (let j = 0; j < len; j++) {
          const y = Y[b0 + j];
          X[a0 + j] += p * y;
          X[a1 + j] += q * y;
        }
      }
    }
    if (i < nx) {
      const a0 = x0 + i * xs, ci = c0 + i * ldc;
      let r = r0;
      for (; r + 3 < r1; r += 4) {
        const b0 = y0 + r * ys, b1 = b0 + ys, b2 = b1 + ys, b3 = b2 + ys;
        const p0 = sign * C[ci + r], p1 = sign * C[ci + r + 1], p2 = sign * C[ci + r + 2], p3 = sign * C[ci + r + 3];
        for (let j = 0; j < len; j++) {
          X[a0 + j] += (p0 * Y[b0 + j] + p1 * Y[b1 + j]) + (p2 * Y[b2 + j] + p3 * Y[b3 + j]);
        }
      }
      for (; r < r1; r++) {
        const b0 = y0 + r * ys, p = sign * C[ci + r];
        for (let j = 0; j < len; j++) X[a0 + j] += p * Y[b0 + j];
      }
    }
  }
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
