/**
 * The viewer page: wiring. Creates the state, the data source, the tour, the panels
 * and the controls, opens a run, and runs the animation loop.
 *
 * Data flow, one way: data source -> slice cache -> dynamics (what is shown, how it
 * moves) -> panels (GPU projection, overlay). Controls only set state (actions.js);
 * views redraw from it.
 */

import { Store } from './state.js';
import { SliceCache } from './slices.js';
import { TourManager, squeezeOf } from './tours.js';
import { Dynamics } from './dynamics.js';
import { Panel } from './panel.js';
import { bindPanel } from './interact.js';
import { bindControls } from './controls.js';
import { bindLegend } from './legend.js';
import { bindChart } from './chart.js';
import { bindNetwork } from './network.js';
import { bindCompare } from './compare.js';
import { bindKeyboard } from './keyboard.js';
import { makeActions } from './actions.js';
import { installTestHook } from './testhook.js';
import { classCss, palette } from './colors.js';
import { decodeHash } from './presets.js';
import { hoverCard } from './tooltip.js';
import { Selection } from './selection.js';
import { renderStatus } from './status.js';
import { PointColors } from './pointcolors.js';
import { extentEpochs } from './viewmap.js';
import { viewMeta } from './graph.js';
import { Guide } from './guide.js';

const LIVE_POLL_MS = 4000;

/** Default splits: train and test side by side when the run has both. */
function defaultSplits(meta) {
  const s = meta.splits;
  if (s.includes('train') && s.includes('test')) return ['train', 'test'];
  return s.slice(0, 2);
}

/** Layers whose axes are classes: the trailing layers as wide as the class count. */
function classAxisLayers(meta) {
  const C = meta.class_names.length;
  const out = new Set();
  for (let i = meta.layers.length - 1; i >= 0; i--) {
    const L = meta.layers[i];
    if ((L.reduced_dim ?? L.dim) !== C) break;
    out.add(L.name);
  }
  return out;
}

/** Whether two transition descriptions say the same. */
function sameTransition(a, b) {
  if (!a || !b) return a === b;
  return a.from === b.from && a.method === b.method && a.exact === b.exact && a.residual === b.residual && a.note === b.note;
}

class App {
  constructor(source) {
    this.source = source;
    this.store = new Store();
    this.cache = new SliceCache(source);
    this.tours = new TourManager({ speed: this.store.get().speed });
    this.dynamics = new Dynamics(this.store, this.cache, this.tours);
    this.dynamics.labelsOf = (split) => this.labels[split] ?? null;
    this.guide = new Guide(this);
    this.panels = new Map();
    this.labels = {};
    this.atlases = {};
    this.frameCount = 0;
    this.manual = false; // true: frames are stepped by the test hook (tick), not by the clock
    this.dirty = true;
    this.scene = null;
    this._sig = '';
    this._hover = null;
    this.selection = new Selection(this);
    this.pointColors = new PointColors(this);
    this.activeAxis = -1;
    this._firstFrame = null;
    this.ready = new Promise((resolve) => { this._firstFrame = resolve; });
    this.actions = makeActions(this);
    this.views = document.getElementById('views');
    bindControls(this);
    bindLegend(this);
    bindChart(this);
    bindNetwork(this);
    bindCompare(this);
    bindKeyboard(this);
    document.addEventListener('click', (ev) => {
      // A mouse click leaves no focus on a button: space and arrows stay the page's.
      const b = ev.target.closest && ev.target.closest('button');
      if (b && ev.detail > 0) b.blur();
    });
    this.store.subscribe((s, changed) => this._onChange(s, changed));
    window.addEventListener('resize', () => { this.dirty = true; });
    window.addEventListener('hashchange', () => this.actions.loadHash(location.hash));
    installTestHook(this);
  }

  async start() {
    try {
      const runs = await this.source.runs();
      if (!runs.length) throw new Error('the server has no runs to show');
      this.store.set({ runs });
      let preset = null;
      try {
        preset = decodeHash(location.hash);
      } catch (err) {
        this.store.set({ notice: `The view in the address could not be read: ${err.message}` });
      }
      const wanted = preset && runs.find((r) => r.id === preset.run || r.name === preset.runName);
      await this.openRun(wanted ? wanted.id : runs[0].id, preset);
    } catch (err) {
      this.store.set({ status: 'error', error: err.message });
      this._firstFrame();
      return;
    }
    requestAnimationFrame((ts) => this._loop(ts));
  }

  /** Open a run: the article's teaser (last epoch, softmax, train beside test, touring). */
  async openRun(runId, preset = null) {
    // Shown along the graph's main path (meta.layers), the whole graph in meta.graph.
    const meta = viewMeta(await this.source.meta(runId));
    this.cache.clear();
    this.tours.reset();
    this.dynamics.reset();
    for (const p of this.panels.values()) p.destroy();
    this.panels.clear();
    this.selection.clear();
    this.pointColors.clear();
    this._prefetched = null;
    this.labels = {};
    this.atlases = {};
    const splits = defaultSplits(meta);
    await Promise.all(meta.splits.map(async (split) => {
      this.labels[split] = await this.cache.labels(runId, split);
    }));
    const names = meta.layers.map((l) => l.name);
    const layer = names.includes('softmax') ? names.indexOf('softmax') : names.length - 1;
    const epoch = Math.max(0, meta.epochs.length - 1);
    this.classAxes = classAxisLayers(meta);
    this.store.set({
      notice: meta.epochs.length ? '' : `Run ${meta.name} has no committed epoch yet; waiting for training to write one.`,
      runId, meta, splits, layer, layerPos: layer, epoch, epochPos: epoch, playing: true,
      hidden: new Set(), highlight: -1, selection: {}, adversarial: null, advPos: 0, advStep: 0,
      advSteps: 0, zoom: 1, pan: [0, 0], selectedPoint: null, transition: null, transitions: {}, chartSplit: splits.includes('test') ? 'test' : splits[0],
      epochPlaying: false, layerPlaying: false, advPlaying: false, alignment: 'unknown',
      metrics: {}, classCounts: this._classCounts(meta, splits), status: 'loading',
    });
    this._rebuildPanels();
    this.dynamics.jumpTo(layer);
    this._loadMetrics();
    for (const split of meta.splits) {
      if (meta.images && !meta.images[split]) continue;
      this.cache.images(runId, split).then((atlas) => {
        if (this.store.get().runId !== runId) return; // another run was opened meanwhile
        this.atlases[split] = atlas;
        this.panels.get(split)?.setAtlas(atlas);
        this.dirty = true;
      }).catch(() => {});
    }
    if (preset) await this.actions.applyPreset(preset);
    this._pollLive();
  }

  _classCounts(meta, splits) {
    const counts = new Array(meta.class_names.length).fill(0);
    for (const split of splits) for (const c of this.labels[split] ?? []) if (c >= 0 && c < counts.length) counts[c]++;
    return counts;
  }

  async _loadMetrics(version = 0) {
    const s = this.store.get();
    const out = {};
    await Promise.all(s.meta.splits.map(async (split) => {
      try {
        out[split] = await this.cache.metrics(s.runId, split, version);
      } catch { /* a run without metrics draws an empty chart */ }
    }));
    if (this.store.get().runId === s.runId) this.store.set({ metrics: out });
  }

  /** A run that is still training: re-read its meta every few seconds, add epochs. */
  _pollLive() {
    clearTimeout(this._pollTimer);
    const runId = this.store.get().runId;
    const live = this.store.get().meta.live ?? this.store.get().runs.find((r) => r.id === runId)?.live;
    if (!live) return;
    this._pollTimer = setTimeout(async () => {
      try {
        const s = this.store.get();
        if (s.runId !== runId) return;
        const meta = await this.source.meta(runId);
        if (meta.epochs.length !== s.meta.epochs.length) {
          const atEnd = Math.round(s.epochPos) >= s.meta.epochs.length - 1 && !s.epochPlaying;
          // The layers too: their extents (the fixed scale) grow with the epochs.
          const merged = { ...s.meta, epochs: meta.epochs, layers: meta.layers, nonfinite: meta.nonfinite, live: meta.live };
          this.store.set({ meta: merged, ...(atEnd ? { epoch: meta.epochs.length - 1 } : {}) });
          this._loadMetrics(meta.epochs.length);
        } else if (meta.live !== s.meta.live) {
          this.store.set({ meta: { ...s.meta, live: meta.live } });
        }
      } catch { /* the server may be restarting: try again */ }
      this._pollLive();
    }, LIVE_POLL_MS);
  }

  _rebuildPanels() {
    const s = this.store.get();
    for (const [split, p] of this.panels) {
      if (!s.splits.includes(split)) {
        p.destroy();
        this.panels.delete(split);
      }
    }
    for (const split of s.meta.splits) {
      if (!s.splits.includes(split) || this.panels.has(split)) continue;
      const p = new Panel(this.views, split);
      p.setLabels(this.labels[split]);
      if (this.atlases[split]) p.setAtlas(this.atlases[split]);
      p.renderer.setPalette(palette(s.meta.class_names.length, s.hidden, s.opacity));
      bindPanel(this, p);
      this.panels.set(split, p);
    }
    // Keep the panels in the run's split order.
    for (const split of s.meta.splits) if (this.panels.has(split)) this.views.appendChild(this.panels.get(split).el);
    this.dirty = true;
  }

  _onChange(s, changed) {
    if (changed.has('splits') && s.meta) {
      this._rebuildPanels();
      this.store.set({ classCounts: this._classCounts(s.meta, s.splits) });
    }
    if (changed.has('hidden') || changed.has('opacity')) {
      for (const p of this.panels.values()) p.renderer.setPalette(palette(s.meta.class_names.length, s.hidden, s.opacity));
    }
    if (changed.has('speed')) this.tours.setSpeed(s.speed);
    if (['hidden', 'highlight', 'selection', 'zoom', 'pan', 'fitEpoch', 'display', 'splits', 'meta', 'colorBy', 'onlyMisclassified',
      'pointSize', 'opacity', 'showHandles', 'selectedPoint', 'advLines'].some((k) => changed.has(k))) this.dirty = true;
  }

  requestDraw() {
    this.dirty = true;
  }

  // ------------------------------------------------------------------ drag & selection

  beginDrag(axis) {
    this.activeAxis = axis;
    this.store.set({ dragging: true });
    this.dirty = true;
  }

  endDrag() {
    this.activeAxis = -1;
    this.store.set({ dragging: false });
    this.dirty = true;
  }

  /** Set the tour matrix (direct manipulation, presets, tests). */
  setMatrix(GT) {
    this.tours.matrix = GT;
    this.dirty = true;
  }

  // The selection and its centroid live in selection.js; these are what interact.js calls.
  centroidVector(split) { return this.selection.centroidVector(split); }
  centroidScreen(split) { return this.selection.centroidScreen(split); }
  brushSelect(panel, rect, add) { this.selection.brush(panel, rect, add); }
  clearSelection() { this.selection.clearAll(); }

  // ------------------------------------------------------------------ hover

  hover(panel, x, y, clientX, clientY) {
    this._hover = { panel, x, y, clientX, clientY };
  }

  _doHover() {
    const h = this._hover;
    if (!h) return;
    this._hover = null;
    hoverCard(this, h, () => { this._hover = this._hover ?? h; });
  }

  // ------------------------------------------------------------------ drawing

  _signature(s) {
    return [this.tours.version, this.tours.space, s.epochPos, s.layerPos, s.advPos, s.zoom, s.pan.join(),
      s.highlight, s.display, s.hidden.size, this.activeAxis].join('|');
  }

  _loop(ts) {
    // Slow frames move further (up to a quarter second each): animations keep to time.
    const dt = this._last == null ? 0 : Math.min(0.25, Math.max(0, (ts - this._last) / 1000));
    this._last = ts;
    // Stepped by hand (the test hook's clock): frames advance only through tick().
    if (!this.manual) this.tick(dt);
    this._refreshOffPanel();
    requestAnimationFrame((t) => this._loop(t));
  }

  /** The panels' off-panel counts, refreshed a few times a second: rewrite the report when one changes. */
  _refreshOffPanel() {
    try {
      let changed = false;
      for (const p of this.panels.values()) changed = p.refreshOffPanel() || changed;
      if (changed && this.scene && this.store.get().meta) this._updateInfo(this.store.get(), this.scene);
    } catch (err) {
      console.error(err); // a report a frame behind: never stop the animation for it
    }
  }

  /** One frame: advance the tour and the positions by dt seconds, draw if anything changed. */
  tick(dt) {
    const s = this.store.get();
    this.guide.update();
    if (s.playing && !s.dragging && s.meta) this.tours.step(dt);
    this.guide.after();
    try {
      this.dynamics.update(dt);
      const drawn = this.drawNow(false);
      this._doHover();
      // "Loading…" while the view waits for data (a slice, a transition).
      const show = this.dynamics.waiting || (!drawn && !this.scene) || this.store.get().status === 'loading';
      if (show !== this._loadingShown) {
        this._loadingShown = show;
        document.getElementById('loading').hidden = !show;
      }
    } catch (err) {
      if (s.status !== 'error') {
        console.error(err);
        this.store.set({ status: 'error', error: `The view failed: ${err.message}` });
      }
    }
  }

  /** Draw every panel if anything changed (or `force`). */
  drawNow(force = true) {
    const s = this.store.get();
    const scene = this.dynamics.scene();
    if (!scene) return false;
    const sig = this._signature(s);
    if (!force && !this.dirty && sig === this._sig && scene === this.scene) return false;
    this.scene = scene;
    this._sig = sig;
    if (scene.kind === 'layer' && scene.layerIndex !== this._prefetched) this._prefetchEpochs(scene.layerIndex);
    this.dirty = false;
    const frame = this.tours.frame(this._squeeze(s, scene));
    this._drawnFrame = frame;
    const classes = s.meta.class_names;
    const classLayer = scene.kind === 'layer' && this.classAxes.has(s.meta.layers[scene.layerIndex].name);
    const rec = s.adversarial ? this.dynamics.adversarialRecord() : null;
    const ctx = {
      frame, map: scene.map, zoom: s.zoom, pan: s.pan, highlight: this.pointColors.highlight(s.highlight), display: s.display,
      colors: Object.fromEntries(s.splits.map((split) => [split, this.pointColors.indices(split)])),
      pointScale: s.pointSize, selectedPoint: s.selectedPoint, advLines: s.advLines,
      advOrigins: rec && rec.meta.example_index ? { split: rec.meta.split, index: rec.meta.example_index } : null,
      axisLabels: classLayer ? classes : null,
      axisColors: classLayer ? classes.map((_, c) => classCss(c, classes.length)) : null,
      activeAxis: this.activeAxis, showHandles: s.showHandles, exact: force,
      selected: Object.fromEntries(Object.entries(s.selection).map(([k, v]) => [k, v ? v.length : 0])),
      centroid: {},
    };
    for (const split of s.splits) ctx.centroid[split] = null;
    for (const [split, p] of this.panels) {
      const part = scene.splits[split];
      p.draw(part, ctx);
      const cs = this.centroidScreen(split); // needs the view of this draw
      if (cs) {
        ctx.centroid[split] = cs;
        p.redrawOverlay(ctx);
      }
    }
    this.frameCount++;
    if (!sameTransition(s.transition, scene.transition)) this.store.set({ transition: scene.transition });
    this._updateInfo(s, scene);
    if (s.status === 'loading') {
      this.store.set({ status: 'ready' });
      // `ready` (the test hook's): once the shown layer's other epochs are loaded too, so
      // that what a test does next does not wait for them.
      Promise.allSettled(this._prefetching ?? []).then(() => this._firstFrame());
    }
    return true;
  }

  /**
   * Load the other epochs of layer li in the background (as many as the cache's budget
   * holds): the epoch slider and epoch play then move without waiting. The layer's scale
   * does not wait for them when the server sends its extent.
   */
  _prefetchEpochs(li) {
    this._prefetched = li;
    const s = this.store.get(), m = s.meta, L = m.layers[li];
    if (L.static) return;
    const bytes = s.splits.reduce((b, split) => b + (m.sizes?.[split] ?? 0) * this.dynamics.layerDim(li) * 2, 0);
    this._prefetching = [];
    for (const ei of extentEpochs(m.epochs.length, bytes)) {
      for (const split of s.splits) this._prefetching.push(this.cache.activations(s.runId, L.name, m.epochs[ei], split).catch(() => {}));
    }
  }

  /** Inside a transition into a narrower layer: the frame's squeeze (tours.js), else null. */
  _squeeze(s, scene) {
    if (scene.kind !== 'transition') return null;
    const to = scene.layerIndex, t = s.layerPos - (to - 1);
    return squeezeOf(this.tours.tour.ndim, this.dynamics.layerDim(to - 1), this.dynamics.layerDim(to), t);
  }

  _updateInfo(s, scene) {
    const nonfinite = renderStatus(this, s, scene);
    const same = Object.keys(nonfinite).length === Object.keys(s.nonfinite).length &&
      Object.keys(nonfinite).every((k) => s.nonfinite[k] === nonfinite[k]);
    if (!same) this.store.set({ nonfinite });
  }
}

/**
 * Start the viewer on `source` (any object with the data-source methods of datasource.js:
 * HTTP for `grandtour serve`, the notebook widget's messages, an HTML export's embedded
 * data). Returns the App at once; `app.ready` resolves after its first frame.
 * @param {object} source
 * @param {{onStart?: (app: App) => void}} [options] `onStart`: called with the app once its
 *   first run is open and drawn (a host page wires its own state to `app.store` there).
 */
export function boot(source, { onStart } = {}) {
  const app = new App(source);
  app.start();
  if (onStart) app.ready.then(() => { if (app.store.get().status === 'ready') onStart(app); });
  return app;
}
