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

/** `A^T`, into `out` if given (must not alias `A`). */
export function transpose(A, out = matrix(A.cols, A.rows)) {
  const { rows, cols, data } = A;
  const o = out.data;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[j * rows + i] = data[i * cols + j];
  return out;
}

/** `A @ B`, into `out` if given (must alias neither). */
export function matmul(A, B, out = matrix(A.rows, B.cols)) {
  if (A.cols !== B.rows) throw new RangeError(`matmul: shapes (${A.rows}, ${A.cols}) and (${B.rows}, ${B.cols}) do not agree`);
  const n = A.rows, p = A.cols, m = B.cols;
  const a = A.data, b = B.data, o = out.data;
  o.fill(0, 0, n * m);
  for (let i = 0; i < n; i++) {
    const oi = i * m;
    for (let k = 0; k < p; k++) {
      const aik = a[i * p + k];
      const bk = k * m;
      for (let j = 0; j < m; j++) o[oi + j] += aik * b[bk + j];
    }
  }
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

/** `max |M^T M - I|`: how far `M` is from orthogonal. */
export function orthogonalityError(M) {
  const n = M.rows, c = M.cols, d = M.data;
  let err = 0;
  for (let i = 0; i < c; i++) {
    for (let j = i; j < c; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += d[k * c + i] * d[k * c + j];
      err = Math.max(err, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return err;
}

/**
 * `GT` as a fresh matrix after checking it is square, finite and orthogonal
 * (`max |GT^T GT - I| <= tol`), as tour.py `check_orthogonal`.
 */
export function checkOrthogonal(GT, tol = 1e-6, name = 'GT') {
  const M = asSquare(GT, name);
  const err = orthogonalityError(M);
  if (!(err <= tol)) {
    throw new RangeError(
      `${name} must be orthogonal: max |${name}^T ${name} - I| = ${err.toPrecision(3)} > ${tol}. ` +
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
