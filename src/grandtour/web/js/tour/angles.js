/**
 * Angles of the torus method: reduction modulo 2 pi, and sin and cos of many at once.
 * Python counterpart: tour.py `TAU` and the `np.mod`, `np.cos`, `np.sin` of
 * `GrandTour.step` and `GrandTour._apply_T`.
 */

export const TAU = 2 * Math.PI;

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
