/**
 * The one Grand Tour the page shows, across layers of different widths.
 *
 * Each data space (a layer, or the common basis of a layer transition) has its own
 * `GrandTour` of its dimension, created on first use from a seed derived from its
 * name (the same view every time the page opens). Train and test share it.
 *
 * Passing a layer boundary with alignment re-bases the tour, `GT <- P GT`, with the
 * basis change the server returns, so the picture does not jump. `P GT` is
 * re-orthonormalised column by column (its first two columns, the projection frame,
 * first); when the two spaces differ in dimension it is completed to a square
 * orthogonal matrix: the frame, hence the picture, is kept.
 *
 * Except into a narrower layer: the transition's common space has k = max(d_prev, d)
 * dimensions, the narrower side's points are zero in the last k - d_side coordinates,
 * and the frame's rows there, which move nothing at that end, are dropped by the
 * re-base; re-orthonormalising what is left rescales and shears the picture (the
 * "re-base jump", about 47 px on the digits run's relu1 -> fc2). So the frame shown
 * inside such a transition is `squeezeFrame`: those rows scaled by 1 - w, w going
 * linearly from 0 at the wide end to 1 at the narrow one, then orthonormalised; at the
 * narrow end it is the re-based frame exactly, and in between it moves smoothly.
 */

import { matmul, matrix } from './linalg.js';
import { GrandTour } from './tour.js';
import { gramSchmidtRows } from './manipulate.js';

function seedOf(name) {
  let h = 2166136261;
  for (let k = 0; k < name.length; k++) h = Math.imul(h ^ name.charCodeAt(k), 16777619);
  return h >>> 0;
}

/**
 * An n x n orthogonal matrix whose first two columns span the same plane as those of
 * `P GT` (`P`: n x m, `GT`: m x m orthogonal), orthonormalised in order.
 */
export function rebasedMatrix(GT, P) {
  const m = GT.rows, n = P.rows;
  if (P.cols !== m) throw new RangeError(`basis change is ${P.rows} x ${P.cols}, the tour has ${m} dimensions`);
  // A = P GT (n x m, linalg's cache-friendly product); S = columns of A as rows,
  // padded/truncated to n x n.
  const A = matmul(P, GT);
  const S = matrix(n, n);
  const cols = Math.min(n, m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cols; j++) S.data[j * n + i] = A.data[i * m + j];
  }
  const R = gramSchmidtRows(S, 0); // rows in order: the frame columns come first
  const out = matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out.data[i * n + j] = R.data[j * n + i];
  return out;
}

/**
 * The squeeze of a transition of common width k between layers of d_prev and d
 * dimensions at t: `{from, w}` (rows from `from` on scaled by 1 - w), or null.
 */
export function squeezeOf(k, dPrev, d, t) {
  if (d < k) return { from: d, w: Math.max(0, Math.min(1, t)) };
  if (dPrev < k) return { from: dPrev, w: Math.max(0, Math.min(1, 1 - t)) };
  return null;
}

/**
 * A frame F (n x 2, orthonormal columns) with its rows from `from` on scaled by 1 - w,
 * orthonormalised in order (Gram-Schmidt: the first column, then the second): as
 * `rebasedMatrix` does at w = 1. Written into `out` (n x 2).
 */
export function squeezeFrame(F, from, w, out = matrix(F.rows, 2)) {
  const n = F.rows, f = F.data, o = out.data;
  const c = 1 - w;
  for (let i = 0; i < n; i++) {
    const g = i < from ? 1 : c;
    o[2 * i] = g * f[2 * i];
    o[2 * i + 1] = g * f[2 * i + 1];
  }
  let a = 0;
  for (let i = 0; i < n; i++) a += o[2 * i] * o[2 * i];
  a = Math.sqrt(a);
  if (!(a > 1e-12)) return out;
  for (let i = 0; i < n; i++) o[2 * i] /= a;
  let d = 0;
  for (let i = 0; i < n; i++) d += o[2 * i] * o[2 * i + 1];
  let b = 0;
  for (let i = 0; i < n; i++) {
    o[2 * i + 1] -= d * o[2 * i];
    b += o[2 * i + 1] * o[2 * i + 1];
  }
  b = Math.sqrt(b);
  if (b > 1e-12) for (let i = 0; i < n; i++) o[2 * i + 1] /= b;
  return out;
}

export class TourManager {
  constructor({ speed = 0.25, seed = 0 } = {}) {
    this.speed = speed;
    this.seed = seed;
    this._tours = new Map(); // space name -> GrandTour
    this.space = null;
    this.tour = null;
    this._frame = null;
    this.version = 0; // bumped whenever the frame changes
  }

  _make(name, dim) {
    // Made at 1 rad/s, then scaled: a tour made at speed 0 would have no direction.
    // L and W are random rotations (Haar) at every width: about 1.7 s at n = 1024.
    const seed = (seedOf(name) ^ this.seed) >>> 0;
    const t = new GrandTour({ ndim: dim, seed, speed: 1 });
    scaleSpeed(t, this.speed);
    return t;
  }

  /** Switch to the tour of `name` (dimension `dim`), jumping; creates it if needed. */
  use(name, dim) {
    let t = this._tours.get(name);
    if (!t || t.ndim !== dim) {
      t = this._make(name, dim);
      this._tours.set(name, t);
    }
    this._switch(name, t);
    return t;
  }

  _switch(name, t) {
    this.space = name;
    this.tour = t;
    this._guided = null; // a guided tour belongs to the space it was made for
    this._frame = matrix(t.ndim, 2);
    this.version++;
  }

  /**
   * Move into space `name` of dimension `dim` with the basis change `P` (dim x current
   * dim): GT_new = P GT (completed to an orthogonal matrix if the dimensions differ).
   */
  rebaseInto(name, dim, P) {
    const cur = this.tour;
    if (P.rows !== dim || P.cols !== cur.ndim) {
      throw new RangeError(`basis change ${P.rows} x ${P.cols} does not map ${cur.ndim} to ${dim} dimensions`);
    }
    let t = this._tours.get(name);
    if (!t || t.ndim !== dim) t = this._make(name, dim);
    // Also for a square P: the server's bases are float32, orthogonal to ~1e-7 only, and
    // P GT re-orthonormalised (a QR of a nearly orthogonal matrix) keeps the tour exact.
    t.matrix = rebasedMatrix(cur.matrix, P);
    this._tours.set(name, t);
    this._switch(name, t);
    return t;
  }

  setSpeed(speed) {
    this.speed = speed;
    for (const t of this._tours.values()) scaleSpeed(t, speed);
    if (this._guided) scaleSpeed(this._guided, speed);
  }

  /**
   * Tour the current space with `g` instead of its Grand Tour (a guided tour, guide.js,
   * started from the current matrix) until `unguide`, or until the space changes.
   */
  guide(g) {
    if (!this.tour || g.ndim !== this.tour.ndim) throw new RangeError(`a guided tour of ${g.ndim} dimensions for a space of ${this.tour?.ndim}`);
    scaleSpeed(g, this.speed);
    this._guided = g;
    this.tour = g;
    this.version++;
  }

  /** Whether the current tour is a guided one. */
  get guided() {
    return this._guided != null && this.tour === this._guided;
  }

  /** Back to the space's Grand Tour, from the view the guided tour reached (no jump). */
  unguide() {
    if (!this.guided) return;
    const M = this.matrix;
    const t = this._tours.get(this.space);
    this._guided = null;
    this.tour = t;
    this.matrix = M;
  }

  /** Advance the current tour by dt seconds of elapsed time. */
  step(dt) {
    if (!this.tour || dt === 0) return;
    scaleSpeed(this.tour, this.speed);
    this.tour.step(dt);
    this.version++;
  }

  /**
   * GT[:, :2] of the current tour, a reused dim x 2 matrix; with `squeeze` ({from, w},
   * see `squeezeOf`), the frame shown inside a transition into a narrower layer.
   */
  frame(squeeze = null) {
    const F = this.tour.frame(this._frame);
    if (!squeeze || !(squeeze.w > 0) || squeeze.from >= F.rows) return F;
    this._squeezed = squeezeFrame(F, squeeze.from, squeeze.w, this._squeezed?.rows === F.rows ? this._squeezed : undefined);
    return this._squeezed;
  }

  /** GT of the current tour. A matrix that was set is returned bit for bit until the
   * tour moves (L T W recomputed would differ in the last bits): presets are exact. */
  get matrix() {
    const c = this._set;
    if (c && c.version === this.version && c.tour === this.tour) return matrix(c.M.rows, c.M.cols, Float64Array.from(c.M.data));
    return this.tour.matrix;
  }

  set matrix(GT) {
    this.tour.matrix = GT;
    this.version++;
    this._set = { version: this.version, tour: this.tour, M: matrix(GT.rows, GT.cols, Float64Array.from(GT.data)) };
  }

  /** Forget every tour (another run was opened). */
  reset() {
    this._tours.clear();
    this.space = null;
    this.tour = null;
  }
}

/**
 * Rescale a GrandTour's angular velocities to `speed` rad/s (its own convention); a
 * geodesic (guided) tour's speed is its arc length per second.
 */
function scaleSpeed(t, speed) {
  if (t.speed === speed) return;
  if (!t.angularVelocity) {
    t.speed = speed;
    return;
  }
  if (t.speed === 0) { // the direction was lost at speed 0: keep it in _omega0
    t.angularVelocity = (t._omega0 ?? t.angularVelocity).map((w) => w * speed);
  } else {
    if (!t._omega0) t._omega0 = t.angularVelocity.map((w) => w / t.speed);
    t.angularVelocity = t.angularVelocity.map((w) => (w * speed) / t.speed);
  }
  t.speed = speed;
}

/**
 * An n x n orthogonal matrix whose first two columns are the orthonormal frame F
 * (n x 2): what a preset that kept only the frame of a wide layer restores.
 */
export function matrixFromFrame(F) {
  const n = F.rows;
  const S = matrix(n, n);
  for (let i = 0; i < n; i++) {
    S.data[i] = F.data[2 * i];
    S.data[n + i] = F.data[2 * i + 1];
  }
  const R = gramSchmidtRows(S, 0);
  const out = matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out.data[i * n + j] = R.data[j * n + i];
  return out;
}
