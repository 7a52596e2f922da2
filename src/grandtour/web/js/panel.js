/**
 * One scatter panel (a split): a WebGL canvas, an overlay canvas above it, and the
 * drawing map between data coordinates and CSS pixels (viewmap.js):
 * `screen = c + s (x GT[:, :2])`, y up, for the points (projected on the GPU), the
 * axis handles (`x = h e_i`), the selection's centroid and the brush alike.
 */

import { ScatterRenderer } from './gl/scatter.js';
import { drawOverlay } from './overlay.js';
import { panelMap, toScreen } from './viewmap.js';
import { halfTable } from './float16.js';

const OFF_PANEL_COUNT_MAX = 20000; // off-panel points are counted up to this many points
const OFF_PANEL_CPU_MAX = 2_000_000; // points x dims counted on the CPU while the view moves
const OFF_PANEL_EVERY_MS = 250; // while the view moves, its off-panel count is refreshed at most this often

/** How many of the finite, visible points at `pos` (data coordinates, 2n) fall outside the view. */
function countOffPanel(pos, view, flags, visible) {
  let k = 0;
  for (let p = 0; p < pos.length / 2; p++) {
    if (!(flags[p] & 1) || !visible(p)) continue;
    const [x, y] = toScreen(view, pos[2 * p], pos[2 * p + 1]);
    if (x < 0 || y < 0 || x > view.width || y > view.height) k++;
  }
  return k;
}

/**
 * x GT[:, :2] of every point of a drawn set, on the CPU (the float16 values decoded by
 * table; the two slices mixed as the shader mixes them): what the off-panel count needs
 * without reading the GPU back, which would stall the page's frame on the GPU's work.
 */
function projectSet(item, frame) {
  const t = halfTable(), f = frame.data;
  const one = (S) => {
    const { n, dim, data } = S, sc = S.scale ?? 1;
    const out = new Float32Array(2 * n);
    for (let p = 0, o = 0; p < n; p++, o += dim) {
      let x = 0, y = 0;
      for (let j = 0; j < dim; j++) {
        const v = t[data[o + j]];
        x += v * f[2 * j];
        y += v * f[2 * j + 1];
      }
      out[2 * p] = x * sc;
      out[2 * p + 1] = y * sc;
    }
    return out;
  };
  const a = one(item.A);
  if (!(item.B && item.mix > 0)) return a;
  const b = one(item.B), m = item.mix;
  for (let i = 0; i < a.length; i++) a[i] = (1 - m) * a[i] + m * b[i];
  return a;
}

export class Panel {
  /**
   * @param {HTMLElement} parent where the panel's element is appended
   * @param {string} split
   */
  constructor(parent, split) {
    this.split = split;
    this.el = document.createElement('section');
    this.el.className = 'panel';
    this.el.dataset.split = split;
    this.el.innerHTML = `
      <header class="panel-head">
        <span class="panel-title"></span>
        <span class="panel-info"></span>
      </header>
      <div class="stage">
        <canvas class="gl" aria-label="scatter plot of the ${split} split"></canvas>
        <canvas class="overlay" tabindex="-1"></canvas>
        <div class="panel-empty" hidden></div>
      </div>`;
    parent.appendChild(this.el);
    this.title = this.el.querySelector('.panel-title');
    this.info = this.el.querySelector('.panel-info');
    this.stage = this.el.querySelector('.stage');
    this.glCanvas = this.el.querySelector('canvas.gl');
    this.overlay = this.el.querySelector('canvas.overlay');
    this.emptyEl = this.el.querySelector('.panel-empty');
    this.title.textContent = split;
    this.renderer = new ScatterRenderer(this.glCanvas, { preserveDrawingBuffer: true });
    this.labels = null;
    this.atlas = null;
    this.last = null; // the last draw: {opts, sets, frame, view, handles}
    this._positions = null; // {id, data}
    this._off = null; // the off-panel count: {drawId, count} of the draw it was counted for
    this._offAt = -Infinity; // when it was counted (performance.now)
    this._visible = () => true;
    this.drawId = 0;
    this.brush = null; // {x0, y0, x1, y1} in CSS px while brushing
  }

  destroy() {
    const ext = this.renderer.gl.getExtension('WEBGL_lose_context');
    if (ext) ext.loseContext();
    this.el.remove();
  }

  setLabels(labels) {
    this.labels = labels;
    this.renderer.setPoints('genuine', { labels });
  }

  setAtlas(atlas) {
    this.atlas = atlas;
    this.renderer.setAtlas(atlas);
  }

  size() {
    return { width: this.stage.clientWidth, height: this.stage.clientHeight };
  }

  /**
   * The drawing map of this panel for a scene's map `{extent, handle}` (data units
   * mapped to the plot radius, handle length) and the user's zoom and pan.
   */
  view(map, zoom = 1, pan = [0, 0]) {
    const { width, height } = this.size();
    return panelMap({ width, height, extent: map.extent, handle: map.handle, zoom, pan, dpr: window.devicePixelRatio || 1 });
  }

  /** Data coordinates (projected) to CSS pixels of this panel. */
  toScreen(view, x, y) {
    return toScreen(view, x, y);
  }

  /** Screen position (CSS px) of the handle of axis i: the image of `h e_i`. */
  handleScreen(view, frame, i) {
    return toScreen(view, view.handleUnit * frame.data[2 * i], view.handleUnit * frame.data[2 * i + 1]);
  }

  /**
   * Draw the panel.
   * @param {object} scene the split's part of the scene: {sets, nonfinite, n}
   * @param {object} ctx {frame, map, zoom, pan, highlight, display, ...} (see app.js drawNow)
   */
  draw(part, ctx) {
    const { width, height, dpr } = this.renderer.resize();
    const ov = this.overlay;
    if (ov.width !== Math.round(width * dpr) || ov.height !== Math.round(height * dpr)) {
      ov.width = Math.round(width * dpr);
      ov.height = Math.round(height * dpr);
    }
    if (!part) {
      this.renderer.draw({ sets: [] });
      this.last = null;
      drawOverlay(this, null, ctx);
      return;
    }
    const view = this.view(ctx.map, ctx.zoom, ctx.pan);
    const frameFlat = ctx.frame.data;
    const nPoints = part.n;
    // Dots: smaller when there are many; a little larger on a large panel.
    const grow = Math.min(1.5, Math.max(1, Math.min(width, height) / 520));
    const baseSize = (nPoints <= 2000 ? 7 : nPoints <= 20000 ? 4.5 : nPoints <= 200000 ? 2.5 : 1.5) * grow * (ctx.pointScale ?? 1);
    const thumb = Math.max(12, Math.min(34, 0.06 * Math.min(width, height)));
    const sets = part.sets.map((set) => {
      // The genuine points' colours: palette indices (pointcolors.js), or their labels.
      if (set.key === 'genuine') this.renderer.setPoints('genuine', { labels: ctx.colors?.[this.split] ?? this.labels, flags: set.flags });
      else this.renderer.setPoints(set.key, { labels: set.labels, flags: set.flags });
      const images = ctx.display === 'images' && set.key === 'genuine' && this.atlas;
      return {
        ...set,
        pointSize: images ? thumb : (set.adversarial ? Math.max(7, baseSize * 1.6) : baseSize),
        mode: images ? 'images' : 'points',
        emphasis: ctx.highlight >= 0 || (set.key === 'genuine' && (ctx.selected?.[this.split] ?? 0) > 0),
      };
    });
    const opts = { frame: frameFlat, dim: ctx.frame.rows, view, sets, highlight: ctx.highlight };
    this.renderer.draw(opts);
    this.drawId++;
    // exact: a draw asked for by a reader (test hook, export): its off-panel count is read at once.
    this.last = { opts, view, frame: ctx.frame, part, drawId: this.drawId, exact: !!ctx.exact };
    drawOverlay(this, this.last, ctx);
  }

  /** Redraw only the overlay of the last draw (e.g. once the centroid is known). */
  redrawOverlay(ctx) {
    drawOverlay(this, this.last, ctx);
  }

  /**
   * Projected data coordinates `x GT[:, :2]` of the genuine points as last drawn, read
   * back from the GPU (cached until the next draw). Float32Array of 2n.
   */
  positions(key = 'genuine') {
    if (!this.last) return null;
    const cacheKey = `${this.last.drawId}|${key}`;
    if (this._positions && this._positions.key === cacheKey) return this._positions.data;
    const item = this.last.opts.sets.find((s) => s.key === key);
    if (!item) return null;
    const data = this.renderer.readPositions(this.last.opts, item);
    this._positions = { key: cacheKey, data };
    return data;
  }

  /** The genuine point nearest to (x, y) CSS px within `radius` px: {index, dist} or null. */
  pick(x, y, radius = 8, visible = () => true) {
    const pos = this.positions();
    if (!pos || !this.last) return null;
    const view = this.last.view;
    const flags = this.last.opts.sets[0].flags;
    let best = -1, bestD = radius * radius;
    for (let p = 0; p < pos.length / 2; p++) {
      if (!(flags[p] & 1) || !visible(p)) continue;
      const [sx, sy] = this.toScreen(view, pos[2 * p], pos[2 * p + 1]);
      const d = (sx - x) ** 2 + (sy - y) ** 2;
      if (d <= bestD) {
        bestD = d;
        best = p;
      }
    }
    return best >= 0 ? { index: best, dist: Math.sqrt(bestD) } : null;
  }

  /** Indices of the visible, finite genuine points inside a screen rectangle. */
  pointsIn(rect, visible = () => true) {
    const pos = this.positions();
    if (!pos || !this.last) return new Int32Array(0);
    const view = this.last.view;
    const flags = this.last.opts.sets[0].flags;
    const x0 = Math.min(rect.x0, rect.x1), x1 = Math.max(rect.x0, rect.x1);
    const y0 = Math.min(rect.y0, rect.y1), y1 = Math.max(rect.y0, rect.y1);
    const out = [];
    for (let p = 0; p < pos.length / 2; p++) {
      if (!(flags[p] & 1) || !visible(p)) continue;
      const [sx, sy] = this.toScreen(view, pos[2 * p], pos[2 * p + 1]);
      if (sx >= x0 && sx <= x1 && sy >= y0 && sy <= y1) out.push(p);
    }
    return Int32Array.from(out);
  }

  /**
   * How many shown genuine points of the last draw lie beyond the panel (drawn as rings
   * at its edge), or null when not counted (many points: counting would cost a frame).
   * Counted at once from positions already read back from the GPU, or (read back) for an
   * exact draw (test hook, export); else the count refreshOffPanel keeps, which follows a
   * moving view a few times a second and catches up with it once it stops.
   */
  offPanel(visible = () => true) {
    if (!this.last || this.last.part.n > OFF_PANEL_COUNT_MAX) return null;
    this._visible = visible;
    const id = this.last.drawId;
    const read = this._positions && this._positions.key === `${id}|genuine`;
    if (read || this.last.exact) {
      const count = countOffPanel(this.positions(), this.last.view, this.last.opts.sets[0].flags, visible);
      this._off = { drawId: id, count };
      return count;
    }
    this.refreshOffPanel();
    return this._off ? this._off.count : null;
  }

  /**
   * Count the off-panel points of the last draw on the CPU when the count is stale
   * (another draw since) and the last count is OFF_PANEL_EVERY_MS old; called every
   * animation frame. Returns true when the count changed (the info text is rewritten).
   */
  refreshOffPanel() {
    const last = this.last;
    if (!last || last.part.n > OFF_PANEL_COUNT_MAX || (this._off && this._off.drawId === last.drawId)) return false;
    const item = last.opts.sets.find((s) => s.key === 'genuine');
    if (!item || item.A.n * item.A.dim > OFF_PANEL_CPU_MAX) return false;
    const now = performance.now();
    if (now - this._offAt < OFF_PANEL_EVERY_MS) return false;
    this._offAt = now;
    const count = countOffPanel(projectSet(item, last.frame), last.view, item.flags, this._visible);
    const changed = !this._off || this._off.count !== count;
    this._off = { drawId: last.drawId, count };
    return changed;
  }

  setEmpty(message) {
    this.emptyEl.hidden = !message;
    this.emptyEl.textContent = message || '';
  }
}
