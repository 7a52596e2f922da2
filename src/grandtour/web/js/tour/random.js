/**
 * Randomness of the tours: a small seeded PRNG, and random rotations and frames
 * uniform (Haar) on SO(n) and on the Stiefel manifold.
 * Python counterpart: `np.random.Generator` (no stream parity) and tour.py
 * `random_rotation`, `random_frame`.
 */

import { haarQ } from '../linalg/householder.js';
import { matrix } from '../linalg/matrix.js';
import { orthonormalFrame } from '../linalg/planes.js';
import { TAU } from './angles.js';

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
 * Householder QR, blocked (linalg/householder.js): O(n^3) through the row kernels of
 * linalg/kernels.js, about 0.8 s at n = 1024 in node or chromium. The same Q as
 * Gram-Schmidt on the columns of Z, to rounding. The determinant needs no LU: each
 * reflector has det -1.
 */
export function randomRotation(n, rng) {
  const Z = new Float64Array(n * n);
  for (let k = 0; k < n * n; k++) Z[k] = rng.normal();
  return haarQ(Z, n);
}
