/**
 * The Givens rotations of the torus method: their planes, grouped in stages, and the
 * product T(theta) applied to the rows of an array.
 * Python counterpart: tour.py `givens_stages`, `_stage_slices`, `_rotate_rows` and
 * `GrandTour._apply_T`.
 */

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

/** Columns per band of `applyGivens` on wide arrays (its `band` scratch is n x GIVENS_BAND). */
export const GIVENS_BAND = 64;

/**
 * In place, `Y <- T(theta) Y` for a row-major n x k array `Y`. T is the product, in
 * stage order, of the rotations r in the planes `(planes[r], planes[r] + 1)` by the
 * angles whose cosines and sines are `c[r]`, `s[r]` (see `givensStages`).
 *
 * @param {Float64Array} band scratch of `n * GIVENS_BAND` entries, used when
 *   `k > GIVENS_BAND` (owned by the caller, so that a frame allocates nothing).
 * @returns {Float64Array} `Y`.
 */
export function applyGivens(Y, n, k, planes, c, s, band) {
  // T = S_0 S_1 ... S_last: the last stage acts first (rotations within a stage commute).
  if (k === 2) {
    for (let idx = planes.length - 1; idx >= 0; idx--) {
      const ra = 2 * planes[idx], ci = c[idx], si = s[idx];
      const y0 = Y[ra], y1 = Y[ra + 1], z0 = Y[ra + 2], z1 = Y[ra + 3];
      Y[ra] = ci * y0 - si * z0;
      Y[ra + 1] = ci * y1 - si * z1;
      Y[ra + 2] = si * y0 + ci * z0;
      Y[ra + 3] = si * y1 + ci * z1;
    }
    return Y;
  }
  if (k <= GIVENS_BAND) {
    for (let idx = planes.length - 1; idx >= 0; idx--) {
      const ra = planes[idx] * k, rb = ra + k, ci = c[idx], si = s[idx];
      for (let j = 0; j < k; j++) {
        const ya = Y[ra + j], yb = Y[rb + j];
        Y[ra + j] = ci * ya - si * yb;
        Y[rb + j] = si * ya + ci * yb;
      }
    }
    return Y;
  }
  // Columns are independent: copy a band of them into the packed n x GIVENS_BAND
  // scratch (in cache, and free of the cache conflicts of a power-of-two row stride),
  // take it through all n(n-1)/2 rotations, and copy it back.
  for (let j0 = 0; j0 < k; j0 += GIVENS_BAND) {
    const w = Math.min(GIVENS_BAND, k - j0);
    for (let r = 0; r < n; r++) for (let j = 0; j < w; j++) band[r * w + j] = Y[r * k + j0 + j];
    const w4 = w - (w % 4);
    for (let idx = planes.length - 1; idx >= 0; idx--) {
      const ra = planes[idx] * w, rb = ra + w, ci = c[idx], si = s[idx];
      let j = 0;
      for (; j < w4; j += 4) { // unrolled: the same operations per entry
        const a0 = band[ra + j], a1 = band[ra + j + 1], a2 = band[ra + j + 2], a3 = band[ra + j + 3];
        const b0 = band[rb + j], b1 = band[rb + j + 1], b2 = band[rb + j + 2], b3 = band[rb + j + 3];
        band[ra + j] = ci * a0 - si * b0;
        band[ra + j + 1] = ci * a1 - si * b1;
        band[ra + j + 2] = ci * a2 - si * b2;
        band[ra + j + 3] = ci * a3 - si * b3;
        band[rb + j] = si * a0 + ci * b0;
        band[rb + j + 1] = si * a1 + ci * b1;
        band[rb + j + 2] = si * a2 + ci * b2;
        band[rb + j + 3] = si * a3 + ci * b3;
      }
      for (; j < w; j++) {
        const ya = band[ra + j], yb = band[rb + j];
        band[ra + j] = ci * ya - si * yb;
        band[rb + j] = si * ya + ci * yb;
      }
    }
    for (let r = 0; r < n; r++) for (let j = 0; j < w; j++) Y[r * k + j0 + j] = band[r * w + j];
  }
  return Y;
}
