/**
 * Householder QR of a square matrix, blocked, for the Q factor of a random rotation.
 * Python counterpart: the `np.linalg.qr` (LAPACK) and sign fix-up of tour.py
 * `random_rotation`.
 */

import { matrix } from './matrix.js';
import { rowCombine, rowDots } from './kernels.js';

/** Reflectors per block of the Householder QR (they are applied to the rest together). */
const HOUSEHOLDER_BLOCK = 32;

/**
 * The Q factor (positive diagonal R, then det +1) of the row-major n x n matrix `Z`.
 * Works on `A = Z^T`, so that every column of Z, every reflector and every column of Q
 * is a contiguous row. Rows are stored `n + 8` apart (and reflectors `m + 4`): with a
 * power-of-two stride the rows that a kernel reads together would share cache sets.
 */
export function haarQ(Z, n) {
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
