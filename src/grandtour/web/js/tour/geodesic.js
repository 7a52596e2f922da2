/**
 * The geodesic tour: from plane to target plane along the geodesic of the Grassmannian.
 * Python counterpart: tour.py `GeodesicTour`.
 */

import { asMatrix, identity, matmul, matrix } from '../linalg/matrix.js';
import { checkOrthogonal } from '../linalg/orthogonality.js';
import { orthonormalFrame, principalPairs } from '../linalg/planes.js';
import { Tour, checkDt, checkSize, outFrame } from './interface.js';
import { Rng, randomFrame } from './random.js';

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
