/**
 * The comparison panel: small multiples of the stored embeddings (methods x two epochs,
 * made by `grandtour compare`), their correspondence, the classes learned late, the
 * confusions, and the hybrid's caveat. Server side: grandtour/server/compare.py.
 *
 * Linked brushing: a brush in any small multiple sets the page's selection (the same
 * store key the tour panels' brush sets, selection.js), so every panel, tour included,
 * shows the same points; the legend's highlight and hidden classes apply here too.
 * Clicking a confusion turns the tour, along a geodesic, to its projection of the softmax.
 */

import { classCss } from './colors.js';
import { identity, matrix } from './linalg/matrix.js';
import { GeodesicTour } from './tour/geodesic.js';

const SIZE = 132; // CSS px of a small multiple
const FADED = 'rgba(150,150,150,0.35)';

/** Complete an orthonormal n x 2 frame (rows of `P`) to an n x n orthogonal matrix. */
export function completeFrame(P) {
  const n = P.length, M = identity(n);
  const cols = [P.map((r) => r[0]), P.map((r) => r[1])];
  for (let k = 0; k < n; k++) {
    const v = new Float64Array(n);
    v[k] = 1;
    cols.push(v);
  }
  const basis = [];
  for (const c of cols) {
    const v = Float64Array.from(c);
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        let d = 0;
        for (let i = 0; i < n; i++) d += v[i] * b[i];
        for (let i = 0; i < n; i++) v[i] -= d * b[i];
      }
    }
    let s = 0;
    for (let i = 0; i < n; i++) s += v[i] * v[i];
    if (Math.sqrt(s) < 1e-8) continue;
    for (let i = 0; i < n; i++) v[i] /= Math.sqrt(s);
    basis.push(v);
    if (basis.length === n) break;
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M.data[i * n + j] = basis[j][i];
  return M;
}

class SmallMultiple {
  constructor(container, method, epoch, xy, onBrush) {
    this.method = method;
    this.epoch = epoch;
    this.n = xy.n;
    this.xy = Float32Array.from(xy.xy);
    const fig = document.createElement('figure');
    fig.className = 'compare-cell';
    fig.style.cssText = 'margin:0 4px 4px 0;font-size:11px;text-align:center'; // style.css is the layout's
    this.canvas = document.createElement('canvas');
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = SIZE * dpr;
    this.canvas.height = SIZE * dpr;
    this.canvas.style.width = `${SIZE}px`;
    this.canvas.style.height = `${SIZE}px`;
    this.canvas.dataset.method = method;
    this.canvas.dataset.epoch = String(epoch);
    const cap = document.createElement('figcaption');
    cap.textContent = `${method} · epoch ${epoch}`;
    fig.append(this.canvas, cap);
    container.append(fig);
    this.selected = [];
    this._fit();
    this._bindBrush(onBrush);
  }

  _fit() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let p = 0; p < this.n; p++) {
      const x = this.xy[2 * p], y = this.xy[2 * p + 1];
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    const span = Math.max(x1 - x0, y1 - y0, 1e-12);
    this.scale = (SIZE - 12) / span;
    this.cx = (x0 + x1) / 2;
    this.cy = (y0 + y1) / 2;
  }

  /** CSS px of point p in the cell. */
  screen(p) {
    return [SIZE / 2 + (this.xy[2 * p] - this.cx) * this.scale, SIZE / 2 - (this.xy[2 * p + 1] - this.cy) * this.scale];
  }

  pointsIn(rect, visible) {
    const out = [];
    for (let p = 0; p < this.n; p++) {
      if (!visible(p)) continue;
      const [x, y] = this.screen(p);
      if (x >= rect.x0 && x <= rect.x1 && y >= rect.y0 && y <= rect.y1) out.push(p);
    }
    return out;
  }

  _bindBrush(onBrush) {
    let start = null;
    const at = (ev) => {
      const r = this.canvas.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    };
    this.canvas.addEventListener('pointerdown', (ev) => {
      start = at(ev);
      this.canvas.setPointerCapture?.(ev.pointerId);
    });
    this.canvas.addEventListener('pointermove', (ev) => {
      if (!start) return;
      this.brushRect = rectOf(start, at(ev));
      this.redraw();
    });
    this.canvas.addEventListener('pointerup', (ev) => {
      if (!start) return;
      const rect = rectOf(start, at(ev));
      start = null;
      this.brushRect = null;
      onBrush(this, rect, ev.shiftKey);
    });
  }

  draw(labels, state, selection) {
    this._last = [labels, state, selection];
    const ctx = this.canvas.getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, SIZE, SIZE);
    const count = state.meta.class_names.length;
    const chosen = selection && selection.length ? new Set(selection) : null;
    this.selected = [];
    const drawPass = (emphasis) => {
      for (let p = 0; p < this.n; p++) {
        const c = labels[p];
        if (state.hidden.has(c)) continue;
        const on = chosen ? chosen.has(p) : (state.highlight < 0 || state.highlight === c);
        if (on !== emphasis) continue;
        const [x, y] = this.screen(p);
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        ctx.fillStyle = on ? classCss(c, count) : FADED;
        ctx.fillRect(x - (on ? 1.5 : 1), y - (on ? 1.5 : 1), on ? 3 : 2, on ? 3 : 2);
        if (on && chosen) this.selected.push(p);
      }
    };
    drawPass(false);
    drawPass(true);
    if (this.brushRect) {
      const r = this.brushRect;
      ctx.strokeStyle = '#333';
      ctx.strokeRect(r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
    }
    this.canvas.dataset.selected = String(this.selected.length);
  }

  redraw() {
    if (this._last) this.draw(...this._last);
  }
}

function rectOf(a, b) {
  return { x0: Math.min(a[0], b[0]), x1: Math.max(a[0], b[0]), y0: Math.min(a[1], b[1]), y1: Math.max(a[1], b[1]) };
}

/** The stored epoch at or before `epoch`, and the one before it (or the two first). */
export function chooseEpochs(stored, epoch) {
  const sorted = [...stored].sort((a, b) => a - b);
  let k = sorted.findLastIndex((e) => e <= epoch);
  if (k < 1) k = Math.min(1, sorted.length - 1);
  return sorted.length < 2 ? sorted : [sorted[k - 1], sorted[k]];
}

export function bindCompare(app) {
  const root = document.getElementById('compare');
  const card = document.getElementById('compare-card');
  if (!root || !card || typeof app.source._url !== 'function') return null;
  const source = app.source;
  const json = (...parts) => source._json(source._url(...parts));
  let cells = [], key = '', split = null, generation = 0, animation = null;

  const visible = (p) => !app.store.get().hidden.has(app.labels[split]?.[p]);

  const redraw = () => {
    const s = app.store.get();
    if (!split || !app.labels[split]) return;
    for (const cell of cells) cell.draw(app.labels[split], s, s.selection[split]);
  };

  const onBrush = (cell, rect, add) => {
    const s = app.store.get();
    let idx = cell.pointsIn(rect, visible);
    if (add && s.selection[split]) idx = [...new Set([...s.selection[split], ...idx])];
    app.store.set({ selection: { ...s.selection, [split]: Int32Array.from(idx).sort() } });
  };

  const turnTo = (conf, meta) => {
    const layerIndex = meta.layers.findIndex((l) => l.name === conf.layer);
    const tour = app.tours.tour;
    if (layerIndex < 0 || !tour || tour.ndim !== conf.projection.length) {
      app.store.set({ notice: `Show the ${conf.layer} layer to see this confusion's view.` });
      return;
    }
    const target = matrix(conf.projection.length, 2, Float64Array.from(conf.projection.flat()));
    const path = new GeodesicTour({ ndim: tour.ndim, start: app.tours.matrix, targets: () => target, speed: 2 });
    app.store.set({ playing: false });
    cancelAnimationFrame(animation);
    // Elapsed time from the frames' own timestamps: a frame's timestamp may precede a
    // performance.now() taken before it was requested, and a negative step turns the path back.
    let last = null;
    const step = (now) => {
      path.step(last === null ? 0 : Math.min(0.1, Math.max(0, (now - last) / 1000)));
      last = now;
      if (path.targetsReached > 0) {
        app.setMatrix(completeFrame(conf.projection));
        return;
      }
      app.setMatrix(path.matrix);
      animation = requestAnimationFrame(step);
    };
    animation = requestAnimationFrame(step);
  };

  const renderAnalyses = async (s, meta, epoch, mine) => {
    const list = card.querySelector('#compare-confusions');
    const late = card.querySelector('#compare-late');
    list.replaceChildren();
    late.textContent = '';
    try {
      const doc = await json(s.runId, 'analysis', split);
      if (mine !== generation) return;
      app.store.set({ lateClasses: { ...(app.store.get().lateClasses ?? {}), [split]: doc.late } }); // the chart marks them
      late.textContent = doc.late.length
        ? `Learned late: ${doc.late.map((l) => `${l.class} (epoch ${l.epoch})`).join(', ')}` : 'No class learned late.';
      const confs = await json(s.runId, 'confusions', epoch, split);
      if (mine !== generation) return;
      if (confs.length) card.hidden = false;
      for (const conf of confs.slice(0, 5)) {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'mini';
        b.textContent = `${conf.classes.join(' · ')}  (inside ${Math.round(100 * conf.interior)} %)`;
        b.title = 'Turn the tour to this confusion\'s view of the softmax';
        b.addEventListener('click', () => turnTo(conf, meta));
        li.append(b);
        list.append(li);
      }
    } catch { /* no softmax layer: nothing to list */ }
  };

  const reload = async () => {
    const s = app.store.get();
    const meta = s.meta;
    if (!meta || !meta.layers.length || !meta.epochs.length) return;
    const layer = meta.layers[Math.round(s.layerPos ?? s.layer)].name;
    split = s.chartSplit ?? s.splits[0];
    const epoch = meta.epochs[Math.round(s.epochPos ?? s.epoch)];
    const next = `${s.runId}|${layer}|${split}|${epoch}`;
    if (next === key) return;
    key = next;
    const mine = ++generation;
    let listing;
    try {
      listing = await json(s.runId, 'compare', layer, split);
    } catch {
      listing = { methods: {}, hybrid: {} };
    }
    if (mine !== generation) return;
    renderAnalyses(s, meta, epoch, mine);
    const grid = root;
    const methods = Object.keys(listing.methods);
    card.hidden = !methods.length; // shown too when there are confusions to list (renderAnalyses)
    const caveat = card.querySelector('#compare-caveat');
    caveat.hidden = !Object.keys(listing.hybrid ?? {}).length;
    caveat.textContent = listing.caveat ?? '';
    const fresh = [];
    const rows = [];
    for (const method of methods) {
      const epochs = chooseEpochs(listing.methods[method].epochs, epoch);
      const pics = await Promise.all(epochs.map((e) => json(s.runId, 'compare', layer, split, method, e)));
      let value = null;
      if (epochs.length === 2) {
        try {
          value = (await json(s.runId, 'correspondence', layer, split, method, epochs[0], epochs[1])).value;
        } catch { /* not computable */ }
      }
      rows.push({ method, epochs, pics, value });
    }
    if (mine !== generation) return;
    grid.replaceChildren();
    if (!rows.length) {
      grid.textContent = `No embeddings of ${layer} stored: run \`grandtour compare RUN --layer ${layer}\`.`;
    }
    for (const row of rows) {
      const line = document.createElement('div');
      line.className = 'compare-row';
      line.style.cssText = 'display:flex;align-items:center;flex-wrap:wrap';
      for (let k = 0; k < row.epochs.length; k++) fresh.push(new SmallMultiple(line, row.method, row.epochs[k], row.pics[k], onBrush));
      const note = document.createElement('div');
      note.className = 'compare-value';
      note.dataset.method = row.method;
      note.textContent = row.value == null ? '' : `correspondence ${row.value.toFixed(2)}`;
      line.append(note);
      grid.append(line);
    }
    cells = fresh;
    redraw();
  };

  app.store.subscribe((s, changed) => {
    if (['runId', 'meta', 'layer', 'epoch', 'chartSplit'].some((k) => changed.has(k))) reload();
    if (['selection', 'highlight', 'hidden'].some((k) => changed.has(k))) redraw();
  });
  reload();
  const api = {
    /** Per small multiple: {method, epoch, selected: the indices it shows selected}. */
    panels: () => cells.map((c) => ({ method: c.method, epoch: c.epoch, selected: [...c.selected] })),
    /** Screen rectangle (client px) of a small multiple, for a test's brush. */
    box: (i) => cells[i].canvas.getBoundingClientRect().toJSON(),
    reload: () => { key = ''; return reload(); },
  };
  root.compare = api;
  return api;
}
