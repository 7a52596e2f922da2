/**
 * The selection (per split, probe rows picked by the brush or the legend) and its
 * centroid, the handle of data-point mode.
 *
 * The centroid is taken in the current space (a layer, or a transition's common basis)
 * of the points as drawn: the mean of the selected finite rows (manipulate.js
 * `centroid`), mixed like the slices when two are shown. It is a point of that space,
 * drawn by the same map as the points (viewmap.js), and data-point mode turns it
 * about the space's origin, as in the article.
 */

import { centroid } from './manipulate.js';
import { decodeRows } from './float16.js';

export class Selection {
  constructor(app) {
    this.app = app;
    this._cache = new Map(); // slice -> {sel, c}
  }

  clear() {
    this._cache.clear();
  }

  /** The centroid of `sel` in one slice (cached), or null if no selected row is finite. */
  _centroidOf(S, sel) {
    const hit = this._cache.get(S);
    if (hit && hit.sel === sel) return hit.c;
    let c = null;
    try {
      c = centroid(decodeRows(S.data, S.dim, S.scale ?? 1, sel));
    } catch { /* no finite point selected */ }
    if (this._cache.size > 16) this._cache.clear();
    this._cache.set(S, { sel, c });
    return c;
  }

  /** The selection's centroid in the current space (dim), or null. */
  centroidVector(split) {
    const app = this.app;
    const sel = app.store.get().selection[split];
    const part = app.scene?.splits[split]?.sets[0];
    if (!sel || !sel.length || !part) return null;
    const cA = this._centroidOf(part.A, sel);
    if (!cA) return null;
    const cB = part.B && part.mix > 0 ? this._centroidOf(part.B, sel) : null;
    const c = new Float64Array(cA.length);
    for (let j = 0; j < c.length; j++) c[j] = cB ? (1 - part.mix) * cA[j] + part.mix * cB[j] : cA[j];
    return c;
  }

  /** The centroid's position in a panel (CSS px), or null. */
  centroidScreen(split) {
    const p = this.app.panels.get(split);
    const c = this.centroidVector(split);
    if (!p || !p.last || !c) return null;
    const f = p.last.frame.data, v = p.last.view;
    let x = 0, y = 0;
    for (let i = 0; i < c.length; i++) {
      x += c[i] * f[2 * i];
      y += c[i] * f[2 * i + 1];
    }
    return p.toScreen(v, x, y);
  }

  /** A predicate: is probe row p of `split` drawn (a shown class, not filtered out)? */
  visibleFilter(split) {
    return this.app.pointColors.visible(split);
  }

  /** Select the shown points inside a screen rectangle of a panel (`add`: keep the others). */
  brush(panel, rect, add) {
    const store = this.app.store;
    const idx = panel.pointsIn(rect, this.visibleFilter(panel.split));
    const s = store.get();
    let next = idx;
    if (add && s.selection[panel.split]) next = Int32Array.from(new Set([...s.selection[panel.split], ...idx])).sort();
    store.set({ selection: { ...s.selection, [panel.split]: next } });
  }

  /** Select every point of class c in the shown splits (`add`: keep the selection). */
  selectClass(c, add = false) {
    const store = this.app.store;
    const s = store.get();
    const selection = add ? { ...s.selection } : {};
    for (const split of s.splits) {
      const labels = this.app.labels[split];
      const idx = [];
      for (let p = 0; p < labels.length; p++) if (labels[p] === c) idx.push(p);
      const prev = add && selection[split] ? [...selection[split]] : [];
      selection[split] = Int32Array.from(new Set([...prev, ...idx])).sort();
    }
    store.set({ selection });
  }

  clearAll() {
    const store = this.app.store;
    if (Object.values(store.get().selection).some((v) => v && v.length)) store.set({ selection: {} });
  }
}
