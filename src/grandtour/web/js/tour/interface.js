/**
 * The interface every tour shares (`frame`, `matrix`, `step`, `rebase`, and from them
 * `project`, `handles`, `path`), and the checks of the arguments they take.
 * Python counterpart: tour.py `Tour` and `_check_dt`.
 */

import { fromRows, matrix } from '../linalg/matrix.js';

/** `dt` if it is a finite number of seconds (any sign), else a RangeError. */
export function checkDt(dt) {
  if (typeof dt !== 'number' || !Number.isFinite(dt)) {
    throw new RangeError(`dt must be a finite number of seconds, got ${dt}`);
  }
  return dt;
}

/** `M` if it has `n` rows (an already checked square matrix), else a RangeError. */
export function checkSize(M, n, name) {
  if (M.rows !== n) throw new RangeError(`${name} must be ${n} x ${n}, got (${M.rows}, ${M.cols})`);
  return M;
}

/** `out` checked to be an n x 2 matrix, or a new one: where a `frame(out)` writes. */
export function outFrame(out, n) {
  if (out === undefined) return matrix(n, 2);
  if (out.rows !== n || out.cols !== 2 || out.data.length !== 2 * n) {
    throw new RangeError(`out must be an ${n} x 2 matrix`);
  }
  return out;
}

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
