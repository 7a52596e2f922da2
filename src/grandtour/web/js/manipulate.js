/**
 * Direct manipulation of a Grand Tour view: the JavaScript mirror of
 * `grandtour/manipulate.py`, function for function (tested against the same vectors).
 *
 * GT is the n x n orthogonal tour matrix ({rows, cols, data}, row-major; see linalg.js),
 * data points are row vectors, the screen position of x is the first two entries of
 * x GT, the handle of axis i is row i of GT, first two entries.
 *
 * Axis mode (axisDrag): dragging handle i by D = (dx, dy) adds dx, dy to GT[i,0], GT[i,1]
 *   and re-orthonormalises the rows by Gram-Schmidt with row i first. The handle lands
 *   at normalize(e_i GT + D) (first two entries), within |D| of the requested spot.
 * Data-point mode (pointDrag): dragging the centroid c by D applies the simple rotation
 *   rho in span(c~, c~new), c~ = c GT, c~new = (c~ + D) |c~| / |c~ + D|, by the angle
 *   between them: GT <- GT rho. The centroid lands exactly at c~new.
 *
 * Every drag returns a new orthogonal matrix and never NaN: degenerate input has a
 * defined result or throws.
 */

import { asMatrix, asVector, checkOrthogonal, det, matrix, rowCombine, rowDots } from './linalg.js';

/** Below this, 1 + <h_i, D> means the drag would carry handle i through the origin in
 * one step (and Gram-Schmidt would mirror the view): such a drag is split. */
export const FLIP_MARGIN = 0.25;
/** Each piece of a split drag is at most this long (so 1 + <h, D_k> >= 0.5). */
export const SUBSTEP = 0.5;

function checkFiniteScalar(name, v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${v}`);
  return v;
}

function checkIndex(name, what, i, n) {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`${name} must be ${what} in [0, ${n}), got ${i}`);
  return i;
}

/**
 * Orthonormalise the rows of a square matrix, row `first` first, then the others in
 * order: classical Gram-Schmidt applied twice per row (CGS2). A row (numerically) in
 * the span of the rows before it is replaced by a unit vector orthogonal to them (the
 * projection of the standard basis vector that keeps most of its length); if any row
 * was replaced and the result has det < 0, the last replaced row is negated (det = +1).
 * Above n = 64 the same steps run in blocks of rows (gramSchmidtRowsBlocked), O(n^3)
 * through the row kernels of linalg.js: about 1 s at n = 1024.
 *
 * @returns a new n x n matrix; its row k is the orthonormalised row k of M.
 */
export function gramSchmidtRows(M, first = 0) {
  const A = asMatrix(M, 'M');
  if (A.rows !== A.cols) throw new RangeError(`M must be a square n x n matrix, got shape (${A.rows}, ${A.cols})`);
  const n = A.rows;
  if (n < 2) throw new RangeError(`M must be at least 2 x 2 (a 2-D view needs n >= 2), got (${n}, ${n})`);
  checkIndex('first', 'a row index', first, n);
  const order = [first];
  for (let k = 0; k < n; k++) if (k !== first) order.push(k);
  const a = A.data;
  let scale = 0;
  for (let k = 0; k < a.length; k++) scale = Math.max(scale, Math.abs(a[k]));
  if (scale === 0) scale = 1;
  if (n > BLOCKED_ABOVE) return gramSchmidtRowsBlocked(a, n, order, scale);
  const Q = new Float64Array(n * n); // rows in processing order: the finished ones are Q[:k]
  const v = new Float64Array(n), coef = new Float64Array(n), w = new Float64Array(n);
  let completed = -1;
  for (let k = 0; k < n; k++) {
    v.set(a.subarray(order[k] * n, order[k] * n + n));
    for (let pass = 0; pass < 2; pass++) projectOut(Q, k, n, v, coef, w);
    let nrm = Math.sqrt(sumSq(v));
    if (nrm <= 1e-10 * scale) {
      complementVector(Q, k, n, v, coef, w);
      nrm = 1;
      completed = k;
    }
    for (let j = 0; j < n; j++) Q[k * n + j] = v[j] / nrm;
  }
  return finishRows(Q, n, n, order, completed);
}

/** The rows of Q (processing order, `ld` apart) back in their places; det +1 if a row
 * was completed. */
function finishRows(Q, ld, n, order, completed) {
  const out = matrix(n, n);
  for (let k = 0; k < n; k++) out.data.set(Q.subarray(k * ld, k * ld + n), order[k] * n);
  if (completed >= 0 && det(out) < 0) { // a rotation, not a mirror image
    const r = order[completed] * n;
    for (let j = 0; j < n; j++) out.data[r + j] *= -1;
  }
  return out;
}

/** Above this size gramSchmidtRows works in blocks of rows (the same CGS2, reordered). */
const BLOCKED_ABOVE = 64;
/** Rows per block of the blocked Gram-Schmidt. */
const GS_BLOCK = 32;

/**
 * gramSchmidtRows for large n: the same orthonormalisation (CGS2, rows in `order`, the
 * same completion rule), organised so that the O(n^3) work runs through the row kernels
 * of linalg.js. Rows come in blocks of GS_BLOCK; a block is first projected twice
 * against all finished rows at once (block CGS2), then each of its rows, in order,
 * twice against the block's finished rows. If that last step cancels most of a row
 * (its length drops below half) the rounding left along the earlier rows is no longer
 * negligible next to it, and the row is projected twice more against all finished rows.
 * In exact arithmetic every row ends as in the row-by-row version.
 */
function gramSchmidtRowsBlocked(a, n, order, scale) {
  const ld = n + 8; // row stride: see haarQ in linalg/householder.js (no power-of-two stride)
  const NB = GS_BLOCK;
  const Q = new Float64Array(n * ld); // finished rows, in processing order
  const V = new Float64Array(NB * ld); // the block's rows
  const C = new Float64Array(NB * n); // coefficients
  const colSq = new Float64Array(n); // sum of squares of each column of the finished rows
  let completed = -1;
  for (let k0 = 0; k0 < n; k0 += NB) {
    const b = Math.min(NB, n - k0);
    let zero = true; // a block of zero rows (a frame completed to a matrix): nothing to project
    for (let t = 0; t < b; t++) {
      const row = a.subarray(order[k0 + t] * n, order[k0 + t] * n + n);
      V.set(row, t * ld);
      if (zero) for (let j = 0; j < n; j++) if (row[j] !== 0) { zero = false; break; }
    }
    if (k0 > 0 && !zero) {
      for (let pass = 0; pass < 2; pass++) {
        rowDots(V, 0, ld, b, Q, 0, ld, k0, n, C, 0, k0);
        rowCombine(V, 0, ld, b, C, 0, k0, Q, 0, ld, k0, n, -1);
      }
    }
    for (let t = 0; t < b; t++) {
      const k = k0 + t, vo = t * ld;
      const before = rowSumSq(V, vo, n);
      let sq = before;
      if (t > 0) {
        for (let pass = 0; pass < 2; pass++) projectRow(V, vo, Q, k0 * ld, ld, t, n, C);
        sq = rowSumSq(V, vo, n);
        if (sq < 0.25 * before) {
          for (let pass = 0; pass < 2; pass++) projectRow(V, vo, Q, 0, ld, k, n, C);
          sq = rowSumSq(V, vo, n);
        }
      }
      let nrm = Math.sqrt(sq);
      if (nrm <= 1e-10 * scale) {
        complementRow(Q, ld, k, n, colSq, V, vo, C);
        nrm = 1;
        completed = k;
      }
      const qo = k * ld;
      for (let j = 0; j < n; j++) {
        const q = V[vo + j] / nrm;
        Q[qo + j] = q;
        colSq[j] += q * q;
      }
    }
  }
  return finishRows(Q, ld, n, order, completed);
}

function rowSumSq(X, o, n) {
  let s = 0;
  for (let j = 0; j < n; j++) s += X[o + j] * X[o + j];
  return s;
}

/** One CGS pass on the row of X at `xo`: minus its projection on the `k` rows of Q from
 * `q0` (`ld` apart). `coef` is scratch of length >= k. */
function projectRow(X, xo, Q, q0, ld, k, n, coef) {
  if (k === 0) return;
  rowDots(Q, q0, ld, k, X, xo, 0, 1, n, coef, 0, 1);
  rowCombine(X, xo, 0, 1, coef, 0, k, Q, q0, ld, k, n, -1);
}

/**
 * Into the row of X at `xo`: complementVector for large n. The longest column of
 * `P = I - B^T B` (B: the first k rows of Q) is the one with the smallest sum of squares
 * in B (`|P e_j|^2 = 1 - |B e_j|^2`), read from `colSq` in O(n), not by forming P.
 */
function complementRow(Q, ld, k, n, colSq, X, xo, coef) {
  X.fill(0, xo, xo + n);
  if (k === 0) {
    X[xo] = 1;
    return;
  }
  let best = 0;
  for (let j = 1; j < n; j++) if (colSq[j] < colSq[best]) best = j;
  for (let r = 0; r < k; r++) coef[r] = Q[r * ld + best];
  X[xo + best] = 1;
  rowCombine(X, xo, 0, 1, coef, 0, k, Q, 0, ld, k, n, -1); // P e_best
  for (let pass = 0; pass < 2; pass++) projectRow(X, xo, Q, 0, ld, k, n, coef);
  const nrm = Math.sqrt(rowSumSq(X, xo, n));
  for (let j = 0; j < n; j++) X[xo + j] /= nrm;
}

function sumSq(v) {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j] * v[j];
  return s;
}

/** One classical Gram-Schmidt pass: v <- v - (B v) B, B = the first k rows of Q. */
function projectOut(Q, k, n, v, coef, w) {
  for (let r = 0; r < k; r++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += Q[r * n + j] * v[j];
    coef[r] = s;
  }
  w.fill(0);
  for (let r = 0; r < k; r++) {
    const cr = coef[r];
    for (let j = 0; j < n; j++) w[j] += cr * Q[r * n + j];
  }
  for (let j = 0; j < n; j++) v[j] -= w[j];
}

/** Into v: a unit vector orthogonal to the orthonormal rows Q[:k], the projection of the
 * standard basis vector that keeps most of its length (the first such, deterministic). */
function complementVector(Q, k, n, v, coef, w) {
  if (k === 0) {
    v.fill(0);
    v[0] = 1;
    return;
  }
  // Column j of P = I - B^T B is e_j - B^T B[:, j]; pick the longest.
  let best = -1, bestSq = -Infinity;
  for (let j = 0; j < n; j++) {
    colOfProjector(Q, k, n, j, w);
    const s = sumSq(w);
    if (s > bestSq) { bestSq = s; best = j; }
  }
  colOfProjector(Q, k, n, best, v);
  for (let pass = 0; pass < 2; pass++) projectOut(Q, k, n, v, coef, w);
  const nrm = Math.sqrt(sumSq(v));
  for (let j = 0; j < n; j++) v[j] /= nrm;
}

function colOfProjector(Q, k, n, j, out) {
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let r = 0; r < k; r++) s += Q[r * n + i] * Q[r * n + j];
    out[i] = (i === j ? 1 : 0) - s;
  }
}

/**
 * Drag the handle of axis i by (dx, dy) screen units (axis mode):
 * GT[i, :2] += (dx, dy), then gramSchmidtRows with row i first. A drag that would carry
 * the handle through the origin in one step (1 + <h_i, D> < FLIP_MARGIN) is applied as
 * equal shorter drags of length at most SUBSTEP, so the view stays a rotation.
 *
 * @returns a new n x n orthogonal matrix.
 */
export function axisDrag(GT, i, dx, dy) {
  let G = checkOrthogonal(GT);
  const n = G.rows;
  checkIndex('i', 'an axis index', i, n);
  const D0 = checkFiniteScalar('dx', dx), D1 = checkFiniteScalar('dy', dy);
  const length = Math.hypot(D0, D1);
  if (length === 0) return G;
  let k = 1, p0 = D0, p1 = D1;
  if (!(1 + (G.data[i * n] * D0 + G.data[i * n + 1] * D1) >= FLIP_MARGIN)) {
    k = Math.max(2, Math.ceil(length / SUBSTEP));
    p0 = D0 / k;
    p1 = D1 / k;
  }
  for (let piece = 0; piece < k; piece++) {
    const M = matrix(n, n, Float64Array.from(G.data));
    M.data[i * n] += p0;
    M.data[i * n + 1] += p1;
    G = gramSchmidtRows(M, i);
  }
  return G;
}

/**
 * The plane and angle of the simple rotation taking direction u to direction w:
 * `{a, b, angle}` with a = u/|u|, b the unit vector orthogonal to a in span(u, w), angle
 * in [0, pi] (an atan2), so that a cos(angle) + b sin(angle) = w/|w|. Returns null if u
 * and w are parallel or opposite (no unique plane). Throws for a zero vector.
 */
export function simpleRotation(u, w) {
  u = asVector(u, 'u');
  w = asVector(w, 'w', u.length);
  const nu = Math.sqrt(sumSq(u)), nw = Math.sqrt(sumSq(w));
  if (nu === 0 || nw === 0) throw new RangeError('simpleRotation needs non-zero vectors u and w');
  const a = u.map((x) => x / nu);
  const wn = w.map((x) => x / nw);
  let cos = 0;
  for (let j = 0; j < a.length; j++) cos += a[j] * wn[j];
  const r = wn.map((x, j) => x - cos * a[j]);
  const sin = Math.sqrt(sumSq(r));
  if (sin <= 1e-15) return null;
  return { a, b: r.map((x) => x / sin), angle: Math.atan2(sin, cos) };
}

/**
 * Drag the screen position of `c` (usually the centroid of a selection) by (dx, dy)
 * (data-point mode). Returns GT rho, a new orthogonal matrix with c GT rho = c~new.
 *
 * Degenerate input: a zero centroid, a zero drag, or a drag whose target c~ + D is
 * (within 1e-9 |c~| of) the origin return GT unchanged (a copy); if c~new is opposite to c~ the rotation is the
 * half-turn in the screen plane.
 */
export function pointDrag(GT, c, dx, dy) {
  const G = checkOrthogonal(GT);
  const n = G.rows, g = G.data;
  const cv = asVector(c, 'centroid');
  if (cv.length !== n) throw new RangeError(`centroid must have shape (${n},), got (${cv.length},)`);
  const D0 = checkFiniteScalar('dx', dx), D1 = checkFiniteScalar('dy', dy);
  const ct = new Float64Array(n); // c GT
  for (let i = 0; i < n; i++) {
    const ci = cv[i];
    for (let j = 0; j < n; j++) ct[j] += ci * g[i * n + j];
  }
  const nrm = Math.sqrt(sumSq(ct));
  const moved = Float64Array.from(ct);
  moved[0] += D0;
  moved[1] += D1;
  const nrmMoved = Math.sqrt(sumSq(moved));
  // A target (numerically) at the origin has no direction to rotate to.
  if (nrm === 0 || nrmMoved <= 1e-9 * nrm || (D0 === 0 && D1 === 0)) return G;
  const ratio = nrm / nrmMoved;
  const ctNew = moved.map((x) => x * ratio);
  let rot = simpleRotation(ct, ctNew);
  if (rot === null) {
    let d = 0;
    for (let j = 0; j < n; j++) d += ct[j] * ctNew[j];
    if (d >= 0) return G; // parallel: already there
    // Opposite: rotate by pi in the screen plane (c~ lies in it).
    const a = ct.map((x) => x / nrm);
    const b = new Float64Array(n);
    b[0] = -a[1];
    b[1] = a[0];
    const nb = Math.sqrt(sumSq(b));
    if (nb < 1e-12) return G; // c~ off the screen plane: cannot happen
    for (let j = 0; j < 2; j++) b[j] /= nb;
    rot = { a, b, angle: Math.PI };
  }
  return rotateRightView(G, rot.a, rot.b, rot.angle);
}

/** GT rho, rho = I + (c-1)(a^T a + b^T b) + s(a^T b - b^T a) on view coordinates: O(n^2). */
function rotateRightView(G, a, b, angle) {
  const n = G.rows, g = G.data;
  const c = Math.cos(angle), s = Math.sin(angle);
  const out = matrix(n, n), o = out.data;
  const ua = a.map((x, j) => (c - 1) * x + s * b[j]);
  const ub = b.map((x, j) => (c - 1) * x - s * a[j]);
  for (let i = 0; i < n; i++) {
    let Ga = 0, Gb = 0;
    for (let j = 0; j < n; j++) {
      Ga += g[i * n + j] * a[j];
      Gb += g[i * n + j] * b[j];
    }
    for (let j = 0; j < n; j++) o[i * n + j] = (g[i * n + j] + Ga * ua[j]) + Gb * ub[j];
  }
  return out;
}

/**
 * The centroid of the selected rows of X (N x n). `selection`: omitted (all rows), an
 * array of booleans (a mask of length N) or integer indices (negative ones count from
 * the end). Non-finite rows are left out (they are not drawn either).
 * Throws if the selection is empty or has no finite row.
 *
 * @returns {Float64Array} of length n.
 */
export function centroid(X, selection) {
  const A = X != null && X.data != null && Number.isInteger(X.rows) && Number.isInteger(X.cols)
    ? X : fromNested(X);
  const N = A.rows, n = A.cols, x = A.data;
  let rows;
  if (selection == null) {
    rows = Array.from({ length: N }, (_, k) => k);
  } else {
    if (typeof selection.length !== 'number') throw new TypeError('selection must be a boolean mask or integer indices');
    const sel = Array.from(selection);
    if (sel.length > 0 && sel.every((s) => typeof s === 'boolean')) {
      if (sel.length !== N) throw new RangeError(`a boolean selection must have shape (${N},), got (${sel.length},)`);
      rows = [];
      for (let k = 0; k < N; k++) if (sel[k]) rows.push(k);
    } else {
      rows = sel.map((k) => {
        if (!Number.isInteger(k)) throw new TypeError('selection must be a boolean mask or integer indices');
        if (k < -N || k >= N) throw new RangeError(`index ${k} is out of bounds for ${N} rows`);
        return k < 0 ? k + N : k;
      });
    }
  }
  const sum = new Float64Array(n);
  let count = 0;
  for (const r of rows) {
    let finite = true;
    for (let j = 0; j < n; j++) if (!Number.isFinite(x[r * n + j])) { finite = false; break; }
    if (!finite) continue;
    for (let j = 0; j < n; j++) sum[j] += x[r * n + j];
    count += 1;
  }
  if (count === 0) throw new RangeError('the selection is empty (or has no finite point): select some points first');
  for (let j = 0; j < n; j++) sum[j] /= count;
  return sum;
}

function fromNested(X) {
  if (!Array.isArray(X) || !X.every((r) => r != null && typeof r.length === 'number')) {
    throw new TypeError('X must be a {rows, cols, data} matrix or an array of rows (N, n)');
  }
  const N = X.length, n = N ? X[0].length : 0;
  const data = new Float64Array(N * n);
  X.forEach((r, i) => {
    if (r.length !== n) throw new RangeError('X must be a 2-D array (N, n): rows differ in length');
    for (let j = 0; j < n; j++) data[i * n + j] = Number(r[j]);
  });
  return { rows: N, cols: n, data };
}
