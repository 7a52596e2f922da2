/**
 * What colour each genuine point is drawn in, and whether it is drawn: an index into
 * the renderer's palette (colors.js `palette`) per point, from the labels, the
 * predictions at the epoch shown and the page's settings:
 *
 *   colorBy 'label'        the point's class (index c: hidden classes have alpha 0)
 *   colorBy 'prediction'   the class predicted (index C + 3 + c; -1, not recorded: the label)
 *   colorBy 'correctness'  C when the prediction is the label, C + 1 when it is not
 *   onlyMisclassified      the correctly classified (and the not recorded) get C + 2: not drawn
 *
 * A point of a hidden class is never drawn (index C + 2 outside "colour by label").
 * Also the CPU projection of single rows (the selected point's marker, the lines from
 * adversarial points to their originals, the SVG export).
 */

import { halfTable } from './float16.js';

export const COLOR_MODES = ['label', 'prediction', 'correctness'];

/** A palette index no point is drawn in. */
const NO_INDEX = 0x7fff;

/**
 * @param {Int16Array} labels
 * @param {Int16Array|null} preds predictions at the epoch shown (null: not loaded)
 * @param {object} o {count: C, colorBy, onlyMisclassified, hidden: Set}
 * @returns {Int16Array} palette indices
 */
export function colorIndices(labels, preds, { count, colorBy = 'label', onlyMisclassified = false, hidden = new Set() }) {
  const C = count, n = labels.length;
  const out = new Int16Array(n);
  for (let p = 0; p < n; p++) {
    const y = labels[p];
    const q = preds && p < preds.length ? preds[p] : -1;
    const wrong = q >= 0 && q !== y;
    if (hidden.has(y) || (onlyMisclassified && !wrong)) out[p] = C + 2;
    else if (colorBy === 'prediction') out[p] = q >= 0 ? C + 3 + q : C + 3 + y;
    else if (colorBy === 'correctness') out[p] = q < 0 ? C + 2 : wrong ? C + 1 : C;
    else out[p] = y;
  }
  return out;
}

/** Whether a point of palette index k is drawn (not hidden, not filtered out). */
export function drawnIndex(k, count, hidden) {
  if (k === count + 2) return false;
  return !(k < count && hidden.has(k));
}

/**
 * Row p of a scene set projected by a frame: (1 - mix) a GT + mix b GT, with the
 * slices' scales, as [x, y] data units; null when the row is not finite.
 * @param {{A, B, mix}} set @param {number} p @param {{data: Float64Array}} frame GT[:, :2]
 */
export function projectRow(set, p, frame) {
  const t = halfTable();
  const one = (S) => {
    if (!S || p >= S.n || (S.mask && !S.mask[p])) return null;
    const o = p * S.dim, f = frame.data, sc = S.scale ?? 1;
    let x = 0, y = 0;
    for (let j = 0; j < S.dim; j++) {
      const v = t[S.data[o + j]];
      x += v * f[2 * j];
      y += v * f[2 * j + 1];
    }
    return [x * sc, y * sc];
  };
  const a = one(set.A);
  if (!a) return null;
  if (!(set.B && set.mix > 0)) return a;
  const b = one(set.B);
  if (!b) return null;
  return [(1 - set.mix) * a[0] + set.mix * b[0], (1 - set.mix) * a[1] + set.mix * b[1]];
}

/**
 * Softmax confidence of row p: the slice's values when they are probabilities (each
 * finite, in [0, 1], summing to 1 within 1e-2 of float16), as {cls, prob}; else null.
 */
export function confidence(slice, p) {
  if (!slice || p >= slice.n || (slice.mask && !slice.mask[p])) return null;
  const t = halfTable();
  const o = p * slice.dim, sc = slice.scale ?? 1;
  let sum = 0, best = -1, bestV = -Infinity;
  for (let j = 0; j < slice.dim; j++) {
    const v = t[slice.data[o + j]] * sc;
    if (!(v >= -1e-3 && v <= 1 + 1e-3)) return null;
    sum += v;
    if (v > bestV) { bestV = v; best = j; }
  }
  return Math.abs(sum - 1) <= 1e-2 ? { cls: best, prob: bestV } : null;
}

/**
 * The palette indices of every split's genuine points for the page's state, cached; the
 * predictions of the epoch shown are loaded on demand (until then, by label).
 */
export class PointColors {
  constructor(app) {
    this.app = app;
    this._cache = new Map(); // split -> {key, out}
  }

  clear() {
    this._cache.clear();
  }

  /** The predictions of `split` at the epoch shown, or null while loading (then a redraw). */
  predictions(split) {
    const app = this.app, s = app.store.get();
    if (!s.meta || !s.meta.epochs.length) return null;
    const epoch = s.meta.epochs[Math.min(s.meta.epochs.length - 1, Math.round(s.epochPos))];
    const key = `pred|${s.runId}|${epoch}|${split}`;
    const v = app.cache.peek(key);
    if (v !== undefined) return v;
    if (!this._asked?.has(key)) {
      (this._asked ??= new Set()).add(key);
      app.cache.predictions(s.runId, epoch, split).then(() => app.requestDraw()).catch(() => {});
    }
    return null;
  }

  /** Int16Array of palette indices for `split`, or null (no labels yet). */
  indices(split) {
    const app = this.app, s = app.store.get();
    const labels = app.labels[split];
    if (!labels || !s.meta) return null;
    const needs = s.colorBy !== 'label' || s.onlyMisclassified;
    const preds = needs ? this.predictions(split) : null;
    const key = [s.colorBy, s.onlyMisclassified, [...s.hidden].join(','), s.meta.class_names.length];
    const hit = this._cache.get(split);
    if (hit && hit.labels === labels && hit.preds === preds && hit.key === key.join('|')) return hit.out;
    // Until the predictions arrive, by label (the view does not empty for a moment).
    const out = colorIndices(labels, preds, needs && !preds ? { count: s.meta.class_names.length, hidden: s.hidden } : {
      count: s.meta.class_names.length, colorBy: s.colorBy, onlyMisclassified: s.onlyMisclassified, hidden: s.hidden,
    });
    this._cache.set(split, { labels, preds, key: key.join('|'), out });
    return out;
  }

  /** A predicate: is probe row p of `split` drawn (shown class, not filtered out)? */
  visible(split) {
    const s = this.app.store.get();
    const k = this.indices(split);
    if (!k) return () => true;
    const C = s.meta.class_names.length;
    return (p) => drawnIndex(k[p], C, s.hidden);
  }

  /**
   * The palette index the renderer highlights for the legend's class c (-1: none). The
   * legend's classes are the labels: when the colours are the labels, that index is c;
   * otherwise it is one no point has (everything fades) and the class's points are
   * emphasised by their flags instead (dynamics.js `flags`).
   */
  highlight(c) {
    const s = this.app.store.get();
    if (c < 0 || !s.meta || s.hidden.has(c)) return -1; // a hidden class has nothing to show
    return s.colorBy === 'label' ? c : NO_INDEX;
  }
}
