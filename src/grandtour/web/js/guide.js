/**
 * The guided tour in the page: while it is on (the tour group's "Guided" toggle, key d),
 * the tour heads for views that separate the classes shown, by tourr's LDA
 * projection-pursuit index (tour/guided.js `GuidedTour`; Python: guided.py), instead of
 * wandering at random. The index is computed from the layer shown at the epoch shown, on
 * the first split shown; the classes hidden in the legend are left out, so hiding all but
 * two or three asks for the views that tell those apart. It stands still once no nearby
 * view separates them better. What is drawn stays the same linear projection of the data:
 * only the choice of the plane is guided.
 *
 * A new layer, epoch, split or set of classes starts a new search from the view shown
 * (no jump). In a layer transition the Grand Tour carries the view across, and the search
 * starts again in the next layer.
 */

import { halfTable } from './float16.js';
import { GuidedTour } from './tour/guided.js';

/** Work bound on the scatter matrices (N n^2 multiply-adds): beyond it, a seeded sample of points. */
const MAX_WORK = 1.5e8;

/** Rows of a float16 slice as a Float64Array (N x dim), the rows kept by `keep` (and finite). */
function decode(slice, keep) {
  const t = halfTable(), n = slice.dim, sc = slice.scale ?? 1;
  const rows = [];
  for (let p = 0; p < slice.n; p++) if ((!slice.mask || slice.mask[p]) && keep(p)) rows.push(p);
  const X = new Float64Array(rows.length * n);
  rows.forEach((p, r) => {
    const o = p * n;
    for (let j = 0; j < n; j++) X[r * n + j] = t[slice.data[o + j]] * sc;
  });
  return { X, rows };
}

/** A seeded subset of `rows` (in order) of at most m of them (a multiplicative stride, no repeats). */
function sample(rows, m) {
  if (rows.length <= m) return rows;
  const picked = new Set();
  let h = 2166136261;
  while (picked.size < m) {
    h = Math.imul(h ^ picked.size, 16777619) >>> 0;
    picked.add(rows[h % rows.length]);
  }
  return [...picked].sort((a, b) => a - b);
}

export class Guide {
  constructor(app) {
    this.app = app;
    this._key = null;
    this.info = null; // {classes, points, sampled, index} of the search under way
  }

  /** Each tick, before the tour steps: start, restart or stop the search as the state asks. */
  update() {
    const app = this.app, s = app.store.get(), tours = app.tours;
    if (!s.guided || !s.meta || !tours.tour) {
      if (tours.guided) tours.unguide();
      this._key = null;
      this._setInfo(null);
      return;
    }
    const cur = app.dynamics.current;
    if (!cur || cur.kind !== 'layer') return; // a transition: carried by the Grand Tour
    const ei = Math.round(s.epochPos);
    const split = s.splits[0];
    const key = [s.runId, tours.space, tours.tour.ndim, cur.li, ei, split, [...s.hidden].sort().join(',')].join('|');
    if (key === this._key && tours.guided) return;
    const slices = app.dynamics.layerSlices(cur.li, ei);
    const labels = app.labels[split];
    if (!slices || !slices[split] || !labels) return; // loading: try again next tick
    this._key = key;
    const slice = slices[split];
    if (slice.dim !== tours.tour.ndim) return; // not the tour's space (should not happen)
    const n = slice.dim;
    const { X: all, rows } = decode(slice, (p) => p < labels.length && labels[p] >= 0 && !s.hidden.has(labels[p]));
    const keep = sample(rows.map((_, r) => r), Math.max(2 * n, Math.floor(MAX_WORK / (n * n))));
    let X = all;
    if (keep.length < rows.length) {
      X = new Float64Array(keep.length * n);
      keep.forEach((r, k) => X.set(all.subarray(r * n, (r + 1) * n), k * n));
    }
    const ys = Int32Array.from(keep, (r) => labels[rows[r]]);
    const classes = [...new Set(ys)].sort((a, b) => a - b);
    if (classes.length < 2) {
      app.store.set({ guided: false, notice: 'The guided tour separates classes: show at least two in the legend.' });
      return;
    }
    const g = new GuidedTour({ X, N: ys.length, labels: ys, classes, seed: 0, start: tours.matrix });
    tours.guide(g);
    this._setInfo({ classes, points: ys.length, of: rows.length, split, index: g.index() });
  }

  /** After the tour stepped: the index of the view shown, for the readout. */
  after() {
    const tours = this.app.tours;
    if (!this.info || !tours.guided) return;
    const index = tours.tour.index();
    if (Math.abs(index - this.info.index) > 5e-4) this._setInfo({ ...this.info, index });
  }

  _setInfo(info) {
    this.info = info;
    this.app.store.set({ guide: info });
  }
}
