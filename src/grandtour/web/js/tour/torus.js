/**
 * Asimov's torus method, made uniform: the `GrandTour`.
 * Python counterpart: tour.py `GrandTour`.
 */

import { checkOrthogonal } from '../linalg/orthogonality.js';
import { matmul, matrix, norm, transpose } from '../linalg/matrix.js';
import { TAU, modTau, sinCos } from './angles.js';
import { GIVENS_BAND, applyGivens, givensStages } from './givens.js';
import { Tour, checkDt, checkSize, outFrame } from './interface.js';
import { Rng, randomRotation } from './random.js';

/**
 * The Grand Tour by the torus method: GT(t) = L T(phi + omega t) W.
 *
 * T is the product of the n(n-1)/2 Givens rotations in stage order; L and W are random
 * orthogonal matrices drawn once (they spread the view over every data axis, see
 * tour.py); L also absorbs direct manipulation and re-basing.
 *
 * Options (as the Python keyword arguments):
 * - `ndim` (int >= 2): dimension of the data.
 * - `seed` (int): seeds everything not given explicitly (the `Rng` of random.js).
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
    const band = k > GIVENS_BAND ? (this._band ??= new Float64Array(this.ndim * GIVENS_BAND)) : null;
    return applyGivens(Y, this.ndim, k, this._planeA, this._cos, this._sin, band);
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
