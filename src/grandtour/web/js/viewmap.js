/**
 * The drawing map of a panel, one for everything it draws.
 *
 * A point `x` (a row of the space shown: a layer, or a transition's common basis) is
 * drawn at
 *
 *     screen = c + s (x GT[:, :2])          (CSS px, y up)
 *
 * and so are the axis handles (`x = h e_i`), the selection's centroid and the brush. `c`
 * is where the origin of the space is drawn: the panel's centre plus the user's pan.
 * `s` (pixels per unit) is
 *
 *     s = zoom R / (r f(dim))
 *
 * with R the plot radius (a fixed fraction of the panel's smaller side) and `r` the
 * layer's *extent*: the largest, over its epochs and splits, of the 99th percentile of
 * its rows' norms `|x|`. A norm does not change when the tour turns, and the maximum is
 * over every epoch, so `s` stays the same while the tour plays and while the epochs
 * play: a point whose data did not change does not move, and a layer whose activations
 * grow is drawn growing. `f(dim)` allows for a random plane keeping only about
 * `sqrt(2 / dim)` of a vector's length. Only the user changes `c` and `s` (pan, zoom;
 * or "fit each epoch", which takes `r` from the epoch shown). Across a layer
 * transition `s` moves geometrically with t, `s(t) = s_a^(1-t) s_b^t`: the zoom changes
 * at the same rate all along, never in a snap.
 *
 * `h`, the length a handle stands for, is 1 when the layer's extent is of order one
 * (probabilities, unit-scale features): then a one-hot softmax point lies on its class
 * handle, and a 50/50 point halfway between two. On a layer of large (or tiny)
 * activations a unit handle would be a few pixels long, or far off the panel; there `h`
 * is a round number (1, 2 or 5 times a power of ten) near `r`, and the page says so.
 * The handle is still the image of the point `h e_i` under the same map.
 */

import { halfTable } from './float16.js';

export const PLOT_FRACTION = 0.45; // plot radius R, as a fraction of the panel's smaller side
export const EXTENT_QUANTILE = 0.99;
const MIN_SPREAD = 0.85; // f(dim) never below this: only rare rotations push points past R
const UNIT_HANDLE = [0.4, 2.5]; // extents for which a handle stands for one unit

/**
 * The `q` quantile of the norms of the finite rows of a slice (cached on the slice).
 * @param {{data: Uint16Array, n: number, dim: number, scale: number, mask: Uint8Array}} slice
 * @returns {number} 0 when no row is finite
 */
export function normQuantile(slice, q = EXTENT_QUANTILE) {
  const key = `_normQ${q}`;
  if (slice[key] !== undefined) return slice[key];
  const t = halfTable();
  const { data, n, dim, mask } = slice;
  const scale = slice.scale ?? 1;
  const sq = [];
  for (let p = 0; p < n; p++) {
    if (mask && !mask[p]) continue;
    const o = p * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const v = t[data[o + j]];
      s += v * v;
    }
    sq.push(s);
  }
  sq.sort((a, b) => a - b);
  const v = sq.length ? Math.sqrt(sq[Math.min(sq.length - 1, Math.floor(q * (sq.length - 1)))]) * scale : 0;
  Object.defineProperty(slice, key, { value: v, enumerable: false });
  return v;
}

/** The fraction f(dim) of the extent mapped to the plot radius. */
export function spreadOf(dim) {
  return dim <= 3 ? 1 : Math.max(MIN_SPREAD, Math.min(1, 1.6 * Math.sqrt(2 / dim)));
}

/** The length a handle stands for on a layer of extent r: 1, or a round number near r. */
export function handleUnit(r) {
  if (!(r > 0) || (r >= UNIT_HANDLE[0] && r <= UNIT_HANDLE[1])) return 1;
  const p = 10 ** Math.floor(Math.log10(r));
  const m = r / p;
  return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
}

/** Geometric interpolation a^(1-t) b^t (a, b > 0): a constant rate of zoom. */
export function geometric(a, b, t) {
  if (t <= 0) return a;
  if (t >= 1) return b;
  return Math.exp((1 - t) * Math.log(a) + t * Math.log(b));
}

/**
 * The map of one panel.
 * @param {object} o
 *   width, height: the panel (CSS px); extent: the data units drawn at the plot radius
 *   when zoom is 1 (`r f(dim)`, or a transition's mix of two); handle: h;
 *   zoom (1: fitted); pan: [px, py] the origin's offset from the panel's centre in units
 *   of the plot radius R (y down); dpr.
 * @returns {{center: number[], pxPerUnit: number, handleRadius: number, handleUnit: number,
 *   origin: number[], plotRadius: number, width: number, height: number, dpr: number}}
 *   `center`: the data point drawn at the panel's centre; `origin`: where the origin is
 *   drawn (CSS px in the panel); `handleRadius = s h`: the length on screen of a handle
 *   of a unit row of GT (the unit of axis drags).
 */
export function panelMap({ width, height, extent, handle = 1, zoom = 1, pan = [0, 0], dpr = 1 }) {
  const R = PLOT_FRACTION * Math.min(width, height);
  const units = extent > 0 && Number.isFinite(extent) ? extent : 1;
  const s = (R * zoom) / units;
  const ox = width / 2 + pan[0] * R, oy = height / 2 + pan[1] * R;
  return {
    center: [-(pan[0] * R) / s, (pan[1] * R) / s], pxPerUnit: s, handleRadius: s * handle, handleUnit: handle,
    origin: [ox, oy], plotRadius: R, width, height, dpr,
  };
}

/** Projected coordinates (x GT[:, :2]) to CSS px of the panel. */
export function toScreen(view, x, y) {
  return [view.width / 2 + (x - view.center[0]) * view.pxPerUnit, view.height / 2 - (y - view.center[1]) * view.pxPerUnit];
}

/**
 * Zoom by `factor` keeping the drawing under (qx, qy) in place (the cursor; R units
 * from the panel's centre, y down): the new `{zoom, pan}`.
 */
export function zoomAbout(zoom, pan, factor, qx = 0, qy = 0) {
  return { zoom: zoom * factor, pan: [qx + factor * (pan[0] - qx), qy + factor * (pan[1] - qy)] };
}

/**
 * Epoch indices whose data set a layer's extent: all of them while their slices fit
 * `budget` bytes, else an even sample (first and last included).
 * @param {number} E epochs; @param {number} bytesPerEpoch; @param {number} budget
 */
export function extentEpochs(E, bytesPerEpoch, budget = 64 * 2 ** 20) {
  const k = Math.max(2, Math.floor(budget / Math.max(1, bytesPerEpoch)));
  if (E <= k) return Array.from({ length: E }, (_, i) => i);
  const out = new Set();
  for (let j = 0; j < k; j++) out.add(Math.round((j * (E - 1)) / (k - 1)));
  return [...out];
}
