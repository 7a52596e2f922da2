/**
 * Tours: smooth paths through the linear 2-D views of n-dimensional data.
 * The JavaScript mirror of `grandtour/tour.py`, function for function; both are tested
 * against the same vectors (tests/fixtures/tour_vectors.json) to 1e-9.
 *
 * Conventions (Li, Zhao, Scheidegger, Distill 2020): data points are row vectors; the
 * state is an n x n orthogonal matrix GT; the screen position of x is the first two
 * entries of x GT; the handle of axis i is row i of GT, first two entries. Time is in
 * seconds of elapsed time and speeds in radians per second (the same on 60 and 144 Hz).
 * Matrices are `{rows, cols, data}` with row-major Float64Array data (see linalg.js).
 *
 * GrandTour: the torus method, GT(t) = L T(phi + omega t) W, T a product of n(n-1)/2
 *   Givens rotations in 2n-3 stages of disjoint adjacent planes (Sameh-Kuck order),
 *   L and W random orthogonal. `step` advances the angles, O(n^2); `frame` rotates the
 *   two columns T W[:, :2] and multiplies by L, O(n^2); only `.matrix` costs O(n^3).
 * GeodesicTour: from the current plane to a target plane along the geodesic, at a
 *   constant principal-angle arc length per second (tourr's grand tour).
 *
 * Hot path: `tour.step(dt).frame(out)` with a reused `out` (an n x 2 matrix) allocates
 * nothing.
 */

import {
  asMatrix, checkOrthogonal, fromRows, identity, matmul, matrix, norm, orthonormalFrame,
  principalPairs, rowCombine, rowDots, transpose,
} from './linalg.js';

export const TAU = 2 * Math.PI;

// ----------------------------------------------------------------------------- PRNG

/**
 * A small seeded PRNG: xoshiro128** (Blackman and Vigna) with its 128-bit state filled
 * by splitmix32 from the seed. `uniform()` gives 53-bit doubles in [0, 1); `normal()`
 * standard normals by Box-Muller. It does not reproduce numpy's streams: parity with
 * Python is tested with explicit parameters.
 */
export class Rng {
  /** @param {number} [seed] a non-negative safe integer; default: from Math.random. */
  constructor(seed) {
    if (seed == null) seed = Math.floor(Math.random() * 2 ** 32);
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    }
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) | 0, 0x85ebca6b);
    const splitmix32 = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) | 0;
    };
    this._s = Int32Array.of(splitmix32(), splitmix32(), splitmix32(), splitmix32());
    this._spare = null;
  }

  /** The next 32 random bits, as an unsigned integer. */
  nextUint32() {
    const s = this._s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9);
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r >>> 0;
  }

  /** Uniform in [lo, hi), 53 random bits. */
  uniform(lo = 0, hi = 1) {
    const u = ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) / 9007199254740992;
    return lo + (hi - lo) * u;
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal() {
    if (this._spare !== null) {
      const z = this._spare;
      this._spare = null;
      return z;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.uniform())); // 1 - u in (0, 1]: log is finite
    const a = TAU * this.uniform();
    this._spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

function rotl(x, k) {
  return (x << k) | (x >>> (32 - k));
}

// --------------------------------------------------------------------------- helpers

/**
 * Python's (and numpy's) float modulo by 2 pi: the result has the sign of 2 pi (and is
 * +0, not -0, for a zero remainder). The common cases, one turn either side, skip the
 * slow general `%` and give the same bits: x - 2 pi is exact there (Sterbenz), and for
 * -2 pi < x < 0 numpy also computes x + 2 pi.
 */
export function modTau(x) {
  if (x >= 0) {
    if (x < TAU) return x + 0; // -0 + 0 = +0
    if (x < 2 * TAU) return x - TAU;
  } else if (x > -TAU) {
    return x + TAU;
  }
  const m = x % TAU;
  if (m === 0) return 0;
  return m < 0 ? m + TAU : m;
}

// sin and cos of angles in [0, 2 pi], both at once: the kernels of fdlibm (FreeBSD
// k_sin.c, k_cos.c, error < 1 ulp on |x| <= pi/4) after a Cody-Waite reduction by
// pi/2. About twice as fast as Math.cos plus Math.sin, which is what a frame costs
// when n is large (n(n-1)/2 angles change every frame); agrees with them to 2e-16.
const PIO2_1 = 1.57079632673412561417e+00; // first 33 bits of pi/2 (k * PIO2_1 is exact)
const PIO2_1T = 6.07710050650619224932e-11; // pi/2 - PIO2_1
const INV_PIO2 = 6.36619772367581382433e-01;
const S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03;
const S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06;
const S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
const C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03;
const C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07;
const C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;

/** `cosOut[k] = cos(angles[k])`, `sinOut[k] = sin(angles[k])` for angles in [0, 2 pi]. */
export function sinCos(angles, cosOut, sinOut) {
  for (let k = 0; k < angles.length; k++) {
    const a = angles[k];
    const q = (a * INV_PIO2 + 0.5) | 0; // nearest multiple of pi/2 (a >= 0)
    const x = (a - q * PIO2_1) - q * PIO2_1T; // |x| <= pi/4 (+ rounding)
    const z = x * x, w = z * z;
    const rs = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
    const sn = x + z * x * (S1 + z * rs);
    const rc = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    const hz = 0.5 * z, v = 1 - hz;
    const cn = v + (((1 - v) - hz) + z * rc);
    const sign = 1 - (q & 2); // quadrants 2 and 3 negate both
    if (q & 1) {
      cosOut[k] = -sn * sign;
      sinOut[k] = cn * sign;
    } else {
      cosOut[k] = cn * sign;
      sinOut[k] = sn * sign;
    }
  }
}

function checkDt(dt) {
  if (typeof dt !== 'number' || !Number.isFinite(dt)) {
    throw new RangeError(`dt must be a finite number of seconds, got ${dt}`);
  }
  return dt;
}

function checkSize(M, n, name) {
  if (M.rows !== n) throw new RangeError(`${name} must be ${n} x ${n}, got (${M.rows}, ${M.cols})`);
  return M;
}

function outFrame(out, n) {
  if (out === undefined) return matrix(n, 2);
  if (out.rows !== n || out.cols !== 2 || out.data.length !== 2 * n) {
    throw new RangeError(`out must be an ${n} x 2 matrix`);
  }
  return out;
}

/**
 * The plane rotations of the torus method, grouped in stages of disjoint planes.
 *
 * Stage `s` holds the adjacent planes `(a, a+1)` that a parallel Givens QR (Sameh and
 * Kuck, 1978) uses at step `s` to zero entry `(a+1, j)`, `s = (n-1-(a+1)) + 2j`: 2n-3
 * stages, n(n-1)/2 rotations; rotations within a stage commute.
 *
 * @returns {Int32Array[]} `stages[s]`: the sorted first indices `a` of its planes.
 */
export function givensStages(n) {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`n must be an integer >= 2, got ${n}`);
  const stages = Array.from({ length: 2 * n - 3 }, () => []);
  for (let j = 0; j < n - 1; j++) {
    for (let i = n - 1; i > j; i--) stages[(n - 1 - i) + 2 * j].push(i - 1);
  }
  return stages.map((s) => Int32Array.from(s.sort((a, b) => a - b)));
}

/** A random orthonormal n x 2 frame, uniform (Haar) on the Stiefel manifold. */
export function randomFrame(n, rng) {
  const Z = matrix(n, 2);
  for (let k = 0; k < 2 * n; k++) Z.data[k] = rng.normal();
  return orthonormalFrame(Z, 'random');
}

/**
 * A random n x n rotation (det +1), uniform (Haar) on SO(n), as tour.py
 * `random_rotation`: Q of the QR decomposition `Z = Q R` of a standard Gaussian n x n
 * matrix Z (filled row by row from `rng`), with the signs that make the diagonal of R
 * positive (that makes Q Haar on O(n)), then column 0 negated if det Q < 0.
 *
 * Householder QR, blocked: O(n^3) through the row kernels of linalg.js (about 0.8 s at
 * n = 1024 in node or chromium). The same Q as Gram-Schmidt on the columns of Z, to
 * rounding. The determinant needs no LU: each reflector has det -1.
 */
export function randomRotation(n, rng) {
  const Z = new Float64Array(n * n);
  for (let k = 0; k < n * n; k++) Z[k] = rng.normal();
  return haarQ(Z, n);
}

/** Columns per band in `GrandTour._applyT`. */
const BAND = 64;

/** Reflectors per block of the Householder QR (they are applied to the rest together). */
const HOUSEHOLDER_BLOCK = 32;

/**
 * The Q factor (positive diagonal R, then det +1) of the row-major n x n matrix `Z`.
 * Works on `A = Z^T`, so that every column of Z, every reflector and every column of Q
 * is a contiguous row. Rows are stored `n + 8` apart (and reflectors `m + 4`): with a
 * power-of-two stride the rows that a kernel reads together would share cache sets.
 */
function haarQ(Z, n) {
  const ld = n + 8;
  const A = new Float64Array(n * ld); // row c of A = column c of Z
  transposeStrided(Z, n, A, ld, n, n);
  const NB = HOUSEHOLDER_BLOCK;
  const nref = n - 1; // reflectors 0 .. n-2; the last column needs none
  const beta = new Float64Array(n); // H_k = I - beta_k v_k v_k^T
  const rsign = new Float64Array(n); // sign of R_kk (+1 for 0)
  let reflections = 0; // reflectors with beta != 0, each of det -1
  const Vg = new Float64Array(NB * (n + 4)); // the block's reflectors, zero-padded to entry k0
  const Gm = new Float64Array(NB * NB); // their inner products
  const D = new Float64Array(NB * Math.max(n, 256)); // dot products, then coefficients
  const blocks = [];
  for (let k0 = 0; k0 < nref; k0 += NB) {
    const kb = Math.min(NB, nref - k0), m = n - k0, vs = m + 4;
    // Panel: the block's columns, one after the other: each first gets the block's
    // earlier reflectors (as in applyBlock), then gives its own.
    for (let t = 0; t < kb; t++) {
      const k = k0 + t, rk = k * ld;
      if (t > 0) {
        rowDots(Vg, 0, vs, t, A, rk + k0, 0, 1, m, D, 0, 1); // D[u] = <v_u, a>
        for (let u = 0; u < t; u++) {
          let s = D[u];
          for (let w = 0; w < u; w++) s -= D[w] * Gm[w * NB + u];
          D[u] = beta[k0 + u] * s;
        }
        rowCombine(A, rk + k0, 0, 1, D, 0, t, Vg, 0, vs, t, m, -1);
      }
      let sq = 0;
      for (let j = k; j < n; j++) sq += A[rk + j] * A[rk + j];
      const x0 = A[rk + k], norm = Math.sqrt(sq);
      const vt = t * vs;
      Vg.fill(0, vt, vt + m);
      if (norm === 0) { // a zero column (probability 0): no reflection, R_kk = 0
        beta[k] = 0;
        rsign[k] = 1;
      } else {
        const alpha = x0 >= 0 ? -norm : norm; // R_kk; v = x - alpha e_0 has no cancellation
        beta[k] = 1 / (sq - x0 * alpha); // 2 / |v|^2
        rsign[k] = alpha >= 0 ? 1 : -1;
        reflections += 1;
        Vg[vt + t] = x0 - alpha;
        for (let j = k + 1; j < n; j++) Vg[vt + (j - k0)] = A[rk + j];
      }
      rowDots(Vg, 0, vs, t + 1, Vg, vt, 0, 1, m, D, 0, 1); // D[u] = <v_u, v_t>
      for (let u = 0; u <= t; u++) Gm[u * NB + t] = Gm[t * NB + u] = D[u];
    }
    blocks.push({ k0, kb, V: Vg.slice(0, kb * vs), G: Gm.slice() });
    // The rest of A: row a <- H_{k0+kb-1} ... H_{k0} a, as a <- a - sum_t s_t v_t.
    const j0 = k0 + kb, rows = n - j0;
    if (rows > 0) applyBlock(A, j0 * ld + k0, ld, rows, Vg, vs, m, kb, Gm, NB, beta, k0, D, false);
  }
  rsign[n - 1] = A[(n - 1) * ld + (n - 1)] >= 0 ? 1 : -1;
  // Q = H_0 H_1 ... H_{n-2}, accumulated backwards in B = Q^T (row j = column j of Q).
  const B = new Float64Array(n * ld);
  for (let i = 0; i < n; i++) B[i * ld + i] = 1;
  for (let b = blocks.length - 1; b >= 0; b--) {
    const { k0, kb, V, G } = blocks[b];
    const m = n - k0;
    applyBlock(B, k0 * ld + k0, ld, n - k0, V, m + 4, m, kb, G, NB, beta, k0, D, true);
  }
  // Column signs: Q diag(sign R_kk) has a positive R; then det +1.
  let detSign = reflections % 2 === 0 ? 1 : -1;
  for (let k = 0; k < n; k++) {
    if (rsign[k] < 0) {
      detSign = -detSign;
      for (let j = 0; j < n; j++) B[k * ld + j] = -B[k * ld + j];
    }
  }
  if (detSign < 0) for (let j = 0; j < n; j++) B[j] = -B[j];
  const Q = matrix(n, n);
  transposeStrided(B, ld, Q.data, n, n, n);
  return Q;
}

/** `dst[j * ds + i] = src[i * ss + j]` for `i < rows`, `j < cols`, in tiles. */
function transposeStrided(src, ss, dst, ds, rows, cols) {
  const TILE = 32;
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(rows, i0 + TILE);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(cols, j0 + TILE);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) dst[j * ds + i] = src[i * ss + j];
    }
  }
}

/**
 * Apply the block's reflectors (rows of V, `vs` apart) to `rows` rows of X (row i at
 * `x0 + i * xs`, `m` entries each): `a <- H_{k0+kb-1} ... H_{k0} a` (`reverse` false:
 * the factorisation) or `a <- H_{k0} ... H_{k0+kb-1} a` (`reverse` true: accumulating
 * Q). With `d_t = <a, v_t>` and `G` the inner products of the reflectors, the
 * coefficients follow by substitution, `s_t = beta_t (d_t - sum_u s_u G_ut)` over the
 * reflectors u applied before t, and then `a <- a - sum_t s_t v_t` in one pass.
 */
function applyBlock(X, x0, xs, rows, V, vs, m, kb, G, ldg, beta, k0, D, reverse) {
  const ROWS = 128; // rows per batch: their coefficients fit D
  for (let i0 = 0; i0 < rows; i0 += ROWS) {
    const nr = Math.min(ROWS, rows - i0), xi = x0 + i0 * xs;
    rowDots(X, xi, xs, nr, V, 0, vs, kb, m, D, 0, kb);
    for (let i = 0; i < nr; i++) {
      const di = i * kb;
      if (!reverse) {
        for (let t = 0; t < kb; t++) {
          let s = D[di + t];
          for (let u = 0; u < t; u++) s -= D[di + u] * G[u * ldg + t];
          D[di + t] = beta[k0 + t] * s;
        }
      } else {
        for (let t = kb - 1; t >= 0; t--) {
          let s = D[di + t];
          for (let u = t + 1; u < kb; u++) s -= D[di + u] * G[u * ldg + t];
          D[di + t] = beta[k0 + t] * s;
        }
      }
    }
    rowCombine(X, xi, xs, nr, D, 0, kb, V, 0, vs, kb, m, -1);
  }
}

// --------------------------------------------------------------------------- interface

/**
 * A path through the linear 2-D views of `ndim`-dimensional data. Subclasses provide
 * `frame(out)`, `matrix` (get/set), `step(dt)`, `rebase(P)`.
 */
export class Tour {
  /**
   * Screen coordinates of the rows of `X` (N x n): the first two entries of `X GT`.
   * Non-finite rows give non-finite coordinates (the viewer counts and skips them).
   * @returns an N x 2 matrix (`out` if given).
   */
  project(X, out) {
    const A = X != null && X.data != null ? X : fromRows(X);
    const n = this.ndim;
    if (A.cols !== n) throw new RangeError(`X must have shape (N, ${n}), got (${A.rows}, ${A.cols})`);
    const N = A.rows;
    if (out === undefined) out = matrix(N, 2);
    else if (out.rows !== N || out.cols !== 2) throw new RangeError(`out must be an ${N} x 2 matrix`);
    this._projFrame = this.frame(this._projFrame);
    const f = this._projFrame.data, x = A.data, o = out.data;
    for (let p = 0; p < N; p++) {
      let s0 = 0, s1 = 0;
      const xp = p * n;
      for (let i = 0; i < n; i++) {
        const v = x[xp + i];
        s0 += v * f[2 * i];
        s1 += v * f[2 * i + 1];
      }
      o[2 * p] = s0;
      o[2 * p + 1] = s1;
    }
    return out;
  }

  /** Axis handle positions: row i is where axis i is drawn, n x 2. */
  handles(out) {
    return this.frame(out);
  }

  /** Yield the frame (a fresh matrix) after each of `steps` steps of `dt` seconds. */
  *path(dt, steps) {
    for (let k = 0; k < steps; k++) yield this.step(dt).frame();
  }
}

// --------------------------------------------------------------------------- torus method

/**
 * The Grand Tour by the torus method: GT(t) = L T(phi + omega t) W.
 *
 * T is the product of the n(n-1)/2 Givens rotations in stage order; L and W are random
 * orthogonal matrices drawn once (they spread the view over every data axis, see
 * tour.py); L also absorbs direct manipulation and re-basing.
 *
 * Options (as the Python keyword arguments):
 * - `ndim` (int >= 2): dimension of the data.
 * - `seed` (int): seeds everything not given explicitly (the `Rng` above).
 * - `speed` (rad/s, default 0.5): omega is scaled to `|omega| = speed sqrt(n/2)`.
 * - `angularVelocity`, `phase` (n(n-1)/2 numbers, stage order): explicit; override seed.
 * - `base`, `right` (n x n orthogonal): L and W; random rotations (Haar) by default.
 *
 * @example
 *   const tour = new GrandTour({ ndim: 4, seed: 0 });
 *   const out = matrix(4, 2);
 *   function animate(dt) { tour.step(dt).frame(out); }   // allocates nothing
 */
export class GrandTour extends Tour {
  constructor({ ndim, seed, speed = 0.5, angularVelocity, phase, base, right } = {}) {
    super();
    const n = ndim;
    if (!Number.isInteger(n) || n < 2) {
      throw new RangeError(`a Grand Tour needs ndim >= 2 (a 2-D view of n-D data), got ${ndim}`);
    }
    if (typeof speed !== 'number' || !Number.isFinite(speed)) throw new RangeError(`speed must be finite, got ${speed}`);
    this.ndim = n;
    this.speed = speed;
    this.time = 0;
    this.stages = givensStages(n);
    const m = (n * (n - 1)) / 2;
    let rng = null;
    const random = () => (rng ??= new Rng(seed));
    let omega;
    if (angularVelocity == null) {
      const u = new Float64Array(m);
      for (let k = 0; k < m; k++) u[k] = random().normal();
      const scale = speed * Math.sqrt(n / 2) / norm(u);
      omega = u.map((x) => x * scale);
    } else {
      omega = flatVector(angularVelocity);
    }
    let theta;
    if (phase == null) {
      theta = new Float64Array(m);
      for (let k = 0; k < m; k++) theta[k] = random().uniform(0, TAU);
    } else {
      theta = flatVector(phase);
    }
    for (const [name, arr] of [['angularVelocity', omega], ['phase', theta]]) {
      if (arr.length !== m) throw new RangeError(`${name} must have n(n-1)/2 = ${m} entries, got ${arr.length}`);
      if (!arr.every(Number.isFinite)) throw new RangeError(`${name} contains NaN or infinite entries`);
    }
    this.angularVelocity = omega;
    this.angles = theta.map(modTau);
    // planeA[k]: first index a of the plane (a, a+1) of angle k (angles in stage order).
    this._planeA = Int32Array.from(this.stages.flatMap((s) => Array.from(s)));
    this._cos = new Float64Array(m);
    this._sin = new Float64Array(m);
    this._trigValid = false; // _cos/_sin hold cos/sin of the current angles
    this._y = new Float64Array(2 * n); // scratch: T W[:, :2]
    this._band = null; // scratch of _applyT for wide matrices
    this._base = base == null ? randomRotation(n, random()) : checkSize(checkOrthogonal(base, 1e-6, 'base'), n, 'base');
    this._right = right == null ? randomRotation(n, random()) : checkSize(checkOrthogonal(right, 1e-6, 'right'), n, 'right');
    this._right2 = matrix(n, 2); // W[:, :2], the start of every frame
    for (let i = 0; i < n; i++) {
      this._right2.data[2 * i] = this._right.data[i * n];
      this._right2.data[2 * i + 1] = this._right.data[i * n + 1];
    }
  }

  /** The left factor L (a copy). */
  get base() {
    return matrix(this.ndim, this.ndim, Float64Array.from(this._base.data));
  }

  /** The right factor W (a copy). */
  get right() {
    return matrix(this.ndim, this.ndim, Float64Array.from(this._right.data));
  }

  _trig() {
    if (this._trigValid) return;
    sinCos(this.angles, this._cos, this._sin);
    this._trigValid = true;
  }

  /** In place, `Y <- T(theta) Y` for a row-major n x k array `Y`. */
  _applyT(Y, k) {
    this._trig();
    const A = this._planeA, c = this._cos, s = this._sin;
    // T = S_0 S_1 ... S_last: the last stage acts first (rotations within a stage commute).
    if (k === 2) {
      for (let idx = A.length - 1; idx >= 0; idx--) {
        const ra = 2 * A[idx], ci = c[idx], si = s[idx];
        const y0 = Y[ra], y1 = Y[ra + 1], z0 = Y[ra + 2], z1 = Y[ra + 3];
        Y[ra] = ci * y0 - si * z0;
        Y[ra + 1] = ci * y1 - si * z1;
        Y[ra + 2] = si * y0 + ci * z0;
        Y[ra + 3] = si * y1 + ci * z1;
      }
      return Y;
    }
    if (k <= BAND) {
      for (let idx = A.length - 1; idx >= 0; idx--) {
        const ra = A[idx] * k, rb = ra + k, ci = c[idx], si = s[idx];
        for (let j = 0; j < k; j++) {
          const ya = Y[ra + j], yb = Y[rb + j];
          Y[ra + j] = ci * ya - si * yb;
          Y[rb + j] = si * ya + ci * yb;
        }
      }
      return Y;
    }
    // Columns are independent: copy a band of them into a packed n x BAND buffer (in
    // cache, and free of the cache conflicts of a power-of-two row stride), take it
    // through all n(n-1)/2 rotations, and copy it back.
    const n = this.ndim;
    const buf = (this._band ??= new Float64Array(n * BAND));
    for (let j0 = 0; j0 < k; j0 += BAND) {
      const w = Math.min(BAND, k - j0);
      for (let r = 0; r < n; r++) for (let j = 0; j < w; j++) buf[r * w + j] = Y[r * k + j0 + j];
      const w4 = w - (w % 4);
      for (let idx = A.length - 1; idx >= 0; idx--) {
        const ra = A[idx] * w, rb = ra + w, ci = c[idx], si = s[idx];
        let j = 0;
        for (; j < w4; j += 4) { // unrolled: the same operations per entry
          const a0 = buf[ra + j], a1 = buf[ra + j + 1], a2 = buf[ra + j + 2], a3 = buf[ra + j + 3];
          const b0 = buf[rb + j], b1 = buf[rb + j + 1], b2 = buf[rb + j + 2], b3 = buf[rb + j + 3];
          buf[ra + j] = ci * a0 - si * b0;
          buf[ra + j + 1] = ci * a1 - si * b1;
          buf[ra + j + 2] = ci * a2 - si * b2;
          buf[ra + j + 3] = ci * a3 - si * b3;
          buf[rb + j] = si * a0 + ci * b0;
          buf[rb + j + 1] = si * a1 + ci * b1;
          buf[rb + j + 2] = si * a2 + ci * b2;
          buf[rb + j + 3] = si * a3 + ci * b3;
        }
        for (; j < w; j++) {
          const ya = buf[ra + j], yb = buf[rb + j];
          buf[ra + j] = ci * ya - si * yb;
          buf[rb + j] = si * ya + ci * yb;
        }
      }
      for (let r = 0; r < n; r++) for (let j = 0; j < w; j++) Y[r * k + j0 + j] = buf[r * w + j];
    }
    return Y;
  }

  /** The projection frame GT[:, :2] = L (T W[:, :2]), n x 2, O(n^2); into `out` if given. */
  frame(out) {
    const n = this.ndim;
    out = outFrame(out, n);
    const y = this._y;
    y.set(this._right2.data);
    this._applyT(y, 2);
    const L = this._base.data, o = out.data;
    for (let i = 0; i < n; i++) {
      let s0 = 0, s1 = 0;
      const li = i * n;
      for (let k = 0; k < n; k++) {
        const l = L[li + k];
        s0 += l * y[2 * k];
        s1 += l * y[2 * k + 1];
      }
      o[2 * i] = s0;
      o[2 * i + 1] = s1;
    }
    return out;
  }

  /** The current n x n orthogonal matrix GT = L T W (a fresh matrix; O(n^3)). */
  get matrix() {
    const TW = this.right;
    this._applyT(TW.data, this.ndim);
    return matmul(this._base, TW);
  }

  /** Jump to GT (after direct manipulation): L = GT W^T T^T, so that L T W = GT. */
  set matrix(GT) {
    const M = checkSize(checkOrthogonal(GT), this.ndim, 'GT');
    const Y = matmul(this._right, transpose(M)); // (T W GT^T)^T
    this._applyT(Y.data, this.ndim);
    this._base = transpose(Y);
  }

  /** Change the data basis: GT <- P GT (P orthogonal, n x n); returns this. */
  rebase(P) {
    const M = checkSize(checkOrthogonal(P, 1e-6, 'P'), this.ndim, 'P');
    this._base = matmul(M, this._base);
    return this;
  }

  /** Advance by dt seconds of elapsed time (any sign): O(n^2); returns this. */
  step(dt) {
    checkDt(dt);
    const a = this.angles, w = this.angularVelocity;
    // Angles are kept in [0, 2 pi]: cos/sin stay exact however long the tour runs.
    for (let k = 0; k < a.length; k++) a[k] = modTau(a[k] + w[k] * dt);
    this.time += dt;
    this._trigValid = false;
    return this;
  }
}

function flatVector(v) {
  if (v == null || typeof v.length !== 'number') throw new TypeError('expected an array of numbers');
  return Float64Array.from(Array.isArray(v) ? v.flat(Infinity) : v);
}

// --------------------------------------------------------------------------- geodesic

/**
 * Geodesic interpolation between target planes (tourr's grand tour).
 *
 * From the current plane F to the target: with principal vectors P_k of F, unit
 * G_k orthogonal to F and principal angles theta_k, GT(tau) = R(tau) GT_0 where R(tau)
 * rotates each plane (P_k, G_k) by tau theta_k and is the identity elsewhere. Each step
 * of dt seconds advances the arc length tau sqrt(theta_1^2 + theta_2^2) by speed * dt
 * (a step that reaches the target carries the rest on towards the next one).
 *
 * Options: `ndim`, `seed`, `speed` (rad/s, >= 0, default 0.5), `targets` (a function
 * returning the next target frame, n x 2, any basis of the plane; default: planes
 * uniform on the Grassmannian), `start` (n x n orthogonal; default identity).
 * For n = 2 there is a single plane and the tour stands still (use GrandTour).
 */
export class GeodesicTour extends Tour {
  constructor({ ndim, seed, speed = 0.5, targets, start } = {}) {
    super();
    const n = ndim;
    if (!Number.isInteger(n) || n < 2) throw new RangeError(`a tour needs ndim >= 2, got ${ndim}`);
    if (typeof speed !== 'number' || !(Number.isFinite(speed) && speed >= 0)) {
      throw new RangeError(`speed must be finite and >= 0, got ${speed}`);
    }
    this.ndim = n;
    this.speed = speed;
    this.time = 0;
    let rng = null;
    this._targets = targets ?? (() => randomFrame(n, (rng ??= new Rng(seed))));
    if (typeof this._targets !== 'function') throw new TypeError('targets must be a function returning an n x 2 frame');
    this._start = start == null ? identity(n) : checkSize(checkOrthogonal(start, 1e-6, 'start'), n, 'start');
    this.targetsReached = 0;
    this._startFrame = matrix(n, 2);
    this._newSegment(this._nextTarget());
  }

  _nextTarget() {
    const n = this.ndim;
    let T;
    try {
      T = asMatrix(this._targets(), 'target');
    } catch (err) {
      if (err instanceof RangeError || err instanceof TypeError) {
        throw new RangeError(`a target must be a finite (${n}, 2) frame: ${err.message}`);
      }
      throw err;
    }
    if (T.rows !== n || T.cols !== 2) {
      throw new RangeError(`a target must be a finite (${n}, 2) frame, got (${T.rows}, ${T.cols})`);
    }
    return orthonormalFrame(T); // any basis of the plane will do
  }

  _newSegment(target) {
    const n = this.ndim, st = this._start.data, f = this._startFrame.data;
    for (let i = 0; i < n; i++) {
      f[2 * i] = st[i * n];
      f[2 * i + 1] = st[i * n + 1];
    }
    this.target = target;
    const { P, G, theta, U } = principalPairs(this._startFrame, target);
    this._P = P;
    this._G = G;
    this._theta = theta;
    this._U = U;
    this.segmentLength = Math.hypot(theta[0], theta[1]);
    this._tau = 0;
  }

  /** The projection frame (P cos + G sin) U^T, n x 2, O(n); into `out` if given. */
  frame(out) {
    const n = this.ndim;
    out = outFrame(out, n);
    const tau = this._tau, th = this._theta;
    const c0 = Math.cos(tau * th[0]), c1 = Math.cos(tau * th[1]);
    const s0 = Math.sin(tau * th[0]), s1 = Math.sin(tau * th[1]);
    const p = this._P.data, g = this._G.data, u = this._U.data, o = out.data;
    // F(tau) = R(tau) F0 = (P cos + G sin) U^T, since F0 = P U^T.
    for (let i = 0; i < n; i++) {
      const w0 = p[2 * i] * c0 + g[2 * i] * s0;
      const w1 = p[2 * i + 1] * c1 + g[2 * i + 1] * s1;
      o[2 * i] = w0 * u[0] + w1 * u[1];
      o[2 * i + 1] = w0 * u[2] + w1 * u[3];
    }
    return out;
  }

  _matrixAt(tau) {
    const n = this.ndim, th = this._theta;
    const c = [Math.cos(tau * th[0]) - 1, Math.cos(tau * th[1]) - 1];
    const s = [Math.sin(tau * th[0]), Math.sin(tau * th[1])];
    const p = this._P.data, g = this._G.data, st = this._start.data;
    // R - I = P diag(c-1) P^T + G diag(c-1) G^T + G diag(s) P^T - P diag(s) G^T
    const Pt = new Float64Array(2 * n), Gt = new Float64Array(2 * n); // P^T start, G^T start
    for (let i = 0; i < n; i++) {
      const p0 = p[2 * i], p1 = p[2 * i + 1], g0 = g[2 * i], g1 = g[2 * i + 1];
      for (let j = 0; j < n; j++) {
        const v = st[i * n + j];
        Pt[j] += p0 * v;
        Pt[n + j] += p1 * v;
        Gt[j] += g0 * v;
        Gt[n + j] += g1 * v;
      }
    }
    const out = matrix(n, n), o = out.data;
    for (let j = 0; j < n; j++) {
      const a0 = c[0] * Pt[j] - s[0] * Gt[j], a1 = c[1] * Pt[n + j] - s[1] * Gt[n + j];
      const b0 = c[0] * Gt[j] + s[0] * Pt[j], b1 = c[1] * Gt[n + j] + s[1] * Pt[n + j];
      for (let i = 0; i < n; i++) {
        o[i * n + j] = (st[i * n + j] + (p[2 * i] * a0 + p[2 * i + 1] * a1)) + (g[2 * i] * b0 + g[2 * i + 1] * b1);
      }
    }
    return out;
  }

  /** The current n x n orthogonal matrix GT (a fresh matrix; O(n^2)). */
  get matrix() {
    return this._matrixAt(this._tau);
  }

  /** Jump to GT; the tour keeps heading for the same target plane. */
  set matrix(GT) {
    this._start = checkSize(checkOrthogonal(GT), this.ndim, 'GT');
    this._newSegment(this.target);
  }

  /** Change the data basis: GT <- P GT, target <- P target; returns this. */
  rebase(P) {
    const M = checkSize(checkOrthogonal(P, 1e-6, 'P'), this.ndim, 'P');
    this._start = matmul(M, this.matrix);
    this._newSegment(matmul(M, this.target));
    return this;
  }

  /** Fraction tau of the current segment travelled. */
  get progress() {
    return this._tau;
  }

  /** Advance by dt >= 0 seconds: speed * dt of principal-angle arc length; returns this. */
  step(dt) {
    checkDt(dt);
    if (dt < 0) throw new RangeError('a geodesic tour only moves forward: dt must be >= 0');
    this.time += dt;
    if (this.ndim === 2) return this; // R^2 is the only plane: there is nowhere to go
    let arc = this.speed * dt;
    for (let k = 0; k < 10000; k++) { // a step longer than 10k segments is not a display step
      const remaining = (1 - this._tau) * this.segmentLength;
      if (arc < remaining) {
        this._tau += arc / this.segmentLength;
        return this;
      }
      arc -= remaining;
      this._start = this._matrixAt(1);
      this.targetsReached += 1;
      this._newSegment(this._nextTarget());
      // A target on the current plane (a guided tour that has converged): stand still.
      if (this.segmentLength === 0) return this;
    }
    throw new RangeError(`dt = ${dt} s at speed ${this.speed} crosses too many target planes`);
  }
}
