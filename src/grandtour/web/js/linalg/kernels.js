/**
 * Row kernels: the two unrolled loops that carry the O(n^3) work of the tours and of direct manipulation.
 * Python counterpart: none (numpy's BLAS does this work in tour.py and manipulate.py).
 */

// The O(n^3) work of the tour (matmul, Householder QR, blocked Gram-Schmidt) runs
// through the two kernels below. They work on rows that are contiguous slices of
// Float64Arrays (row i of X starts at x0 + i * xs), unrolled so that every value loaded
// is used several times (4 x 2 dot products, 3 x 4 row combinations at once), and they
// walk the rows of Y in chunks that stay in cache. No allocation, no calls inside. About
// 0.4-0.5 ns per multiply-add in V8 (node 20, chromium), against 1-5 ns for plain loops;
// rows a power-of-two apart (a stride of 1024) are slower: callers that own the layout
// pad it (see haarQ in householder.js).

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
