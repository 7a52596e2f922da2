/**
 * One scatter panel (a split): a WebGL canvas, an overlay canvas above it, and the
 * view transform between data coordinates and CSS pixels.
 *
 * View transform: the data point `p` projected by the frame (`x GT[:, :2]`, computed on
 * the GPU) is drawn at `centre + (x GT[:, :2] - c) * pxPerUnit` with y up, where `c`
 * is the projected mean of the shown points and `pxPerUnit = R zoom / radius`, R the
 * plot radius in pixels and `radius` a robust radius of the data about its mean. The
 * axis handle of axis i is drawn at `centre + GT[i, :2] R` (zoom leaves it in place).
 */

import { ScatterRenderer } from './gl/scatter.js';
import { drawOverlay } from './overlay.js';

const PLOT_FRACTION = 0.45; // plot radius as a fraction of the panel's smaller side
const VIEW_SPREAD = 0.7; // least fraction of the data radius mapped to the plot radius (wide layers)

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

  /** The view transform for a frame and the scene's statistics. */
  view(frame, stats, zoom) {
    const { width, height } = this.size();
    const R = PLOT_FRACTION * Math.min(width, height);
    const dim = frame.rows, f = frame.data, mu = stats.mean;
    let c0 = 0, c1 = 0;
    for (let i = 0; i < dim; i++) {
      c0 += mu[i] * f[2 * i];
      c1 += mu[i] * f[2 * i + 1];
    }
    // A 2-D view of n-D points rarely shows their full radius (a random plane keeps about
    // sqrt(2/n) of a vector's length): scale so that typical views fill the panel.
    const spread = dim <= 3 ? 1 : Math.max(VIEW_SPREAD, Math.min(1, 1.6 * Math.sqrt(2 / dim)));
    return {
      center: [c0, c1], pxPerUnit: (R * zoom) / (stats.radius * spread), handleRadius: R,
      width, height, dpr: window.devicePixelRatio || 1,
    };
  }

  /** Data coordinates (projected) to CSS pixels of this panel. */
  toScreen(view, x, y) {
    return [view.width / 2 + (x - view.center[0]) * view.pxPerUnit, view.height / 2 - (y - view.center[1]) * view.pxPerUnit];
  }

  /** Screen position (CSS px) of the handle of axis i. */
  handleScreen(view, frame, i) {
    return [view.width / 2 + frame.data[2 * i] * view.handleRadius, view.height / 2 - frame.data[2 * i + 1] * view.handleRadius];
  }

  /**
   * Draw the panel.
   * @param {object} scene the split's part of the scene: {sets, nonfinite, n}
   * @param {object} ctx {frame, stats, zoom, highlight, display, palette, overlay: {...}}
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
    const view = this.view(ctx.frame, ctx.stats, ctx.zoom);
    const frameFlat = ctx.frame.data;
    const nPoints = part.n;
    // Dots: smaller when there are many; a little larger on a large panel.
    const grow = Math.min(1.5, Math.max(1, Math.min(width, height) / 520));
    const baseSize = (nPoints <= 2000 ? 7 : nPoints <= 20000 ? 4.5 : nPoints <= 200000 ? 2.5 : 1.5) * grow;
    const thumb = Math.max(12, Math.min(34, 0.06 * Math.min(width, height)));
    const sets = part.sets.map((set) => {
      if (set.key === 'genuine') this.renderer.setPoints('genuine', { labels: this.labels, flags: set.flags });
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
    this.last = { opts, view, frame: ctx.frame, part, drawId: this.drawId };
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

  setEmpty(message) {
    this.emptyEl.hidden = !message;
    this.emptyEl.textContent = message || '';
  }
}
