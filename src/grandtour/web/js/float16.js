/**
 * IEEE 754 half precision (float16) helpers for the viewer.
 *
 * Activations travel as raw float16 bits (a Uint16Array) and go to the GPU as they
 * are; the CPU decodes only what it needs (statistics, a selection's centroid, a
 * tooltip). Decoding is a table lookup: 65536 exact float32 values, built once.
 */

let TABLE = null;

/** The exact value of a float16 bit pattern (NaN and +-Infinity included). */
export function halfToFloat(h) {
  const s = (h & 0x8000) ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24; // subnormal (or zero)
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A Float32Array of all 65536 float16 values, indexed by bit pattern. */
export function halfTable() {
  if (TABLE === null) {
    TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) TABLE[h] = halfToFloat(h);
  }
  return TABLE;
}

/** Decode float16 bits to float32 values, times `scale` (the store's overflow scale). */
export function decode(bits, scale = 1, out = new Float32Array(bits.length)) {
  const t = halfTable();
  if (scale === 1) for (let k = 0; k < bits.length; k++) out[k] = t[bits[k]];
  else for (let k = 0; k < bits.length; k++) out[k] = t[bits[k]] * scale;
  return out;
}

/** The nearest float16 bit pattern of a number (round to nearest even). */
export function floatToHalf(x) {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = x;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h += 1;
  return sign | h;
}

/** Float16 bits of an array of numbers (for tests and the benchmark page). */
export function encode(values) {
  const out = new Uint16Array(values.length);
  for (let k = 0; k < values.length; k++) out[k] = floatToHalf(values[k]);
  return out;
}

/**
 * Per-row finiteness of an (n x dim) float16 matrix: `mask[p] = 1` if every entry of
 * row p is finite. A float16 is NaN or infinite exactly when its exponent bits are all
 * ones. Returns `{mask: Uint8Array(n), nonfinite}` (the number of rows left out).
 */
export function finiteRows(bits, n, dim) {
  const mask = new Uint8Array(n);
  let bad = 0;
  for (let p = 0, k = 0; p < n; p++) {
    let ok = 1;
    for (const end = k + dim; k < end; k++) if ((bits[k] & 0x7c00) === 0x7c00) ok = 0;
    mask[p] = ok;
    bad += 1 - ok;
  }
  return { mask, nonfinite: bad };
}

/**
 * Mean of the finite rows and a robust radius: the `quantile` of the distances of the
 * finite rows from that mean (the view is scaled so that most points fit; a few
 * outliers may leave it rather than shrink everything else).
 *
 * @returns {{mean: Float64Array, radius: number, maxNorm: number}}
 */
export function rowStats(bits, n, dim, scale, mask, quantile = 0.99) {
  const t = halfTable();
  const mean = new Float64Array(dim);
  let count = 0;
  for (let p = 0; p < n; p++) {
    if (!mask[p]) continue;
    const o = p * dim;
    for (let j = 0; j < dim; j++) mean[j] += t[bits[o + j]];
    count += 1;
  }
  for (let j = 0; j < dim; j++) mean[j] = count ? (mean[j] / count) * scale : 0;
  const d2 = new Float64Array(count);
  let q = 0;
  for (let p = 0; p < n; p++) {
    if (!mask[p]) continue;
    const o = p * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const v = t[bits[o + j]] * scale - mean[j];
      s += v * v;
    }
    d2[q++] = s;
  }
  d2.sort();
  const maxNorm = count ? Math.sqrt(d2[count - 1]) : 0;
  const radius = count ? Math.sqrt(d2[Math.min(count - 1, Math.floor(quantile * (count - 1)))]) : 0;
  return { mean, radius: radius > 0 ? radius : (maxNorm > 0 ? maxNorm : 1), maxNorm };
}

/**
 * The given rows of an (n x dim) float16 matrix, decoded (times `scale`), as a
 * `{rows, cols, data}` matrix (linalg.js convention) of `rows.length x dim`.
 */
export function decodeRows(bits, dim, scale, rows) {
  const t = halfTable();
  const data = new Float64Array(rows.length * dim);
  rows.forEach((p, r) => {
    const o = p * dim;
    for (let j = 0; j < dim; j++) data[r * dim + j] = t[bits[o + j]] * scale;
  });
  return { rows: rows.length, cols: dim, data };
}
