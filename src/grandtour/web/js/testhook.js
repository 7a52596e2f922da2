/**
 * `window.grandtour`: a small hook for tests and automation (browser tests, scripted
 * screenshots, benchmarks). Read-only, except `setMatrix`. Not a public API for pages.
 * Whatever returns positions first draws the current state, so it never reads a stale frame.
 *
 *   ready                       Promise: resolves after the first frame is drawn and the shown layer's epochs loaded
 *   state()                     a JSON snapshot of the page state (layer and epoch by name/number)
 *   matrix(), frame()           the tour matrix GT (n x n) and GT[:, :2], as nested arrays
 *   setMatrix(rows)             set GT (pauses nothing; pause with the page's controls)
 *   projectedPositions(split)   x GT[:, :2] of every genuine point, read back from the GPU
 *                               (transform feedback of the drawing shader); null for non-finite
 *   screenPositions(split)      the same points in page pixels (clientX, clientY)
 *   handles(split)              [{axis, x, y}] page pixels of the drawn axis handles
 *   centroid(split)             page pixels of the selection's centroid marker, or null
 *   view(split)                 the panel's view transform and its box on the page
 *   classColors()               [[r, g, b]] of every class
 *   frames(n)                   Promise: resolves after n more animation frames
 *   manual(on)                  take over the page's clock: frames run only through step()
 *   step(dt)                    run one frame dt seconds after the last one (manual mode), and
 *                               return state(): animations measured by this clock, never by
 *                               how fast the machine draws
 *
 *   handleLabels(split)         [{axis, text, box: [x0, y0, x1, y1], leader}] page pixels of the handle labels
 *   marked(split)               page pixels of the marked point (selectedPoint), or null
 *   advLines(split)             [[x0, y0, x1, y1]] page pixels: original -> adversarial point
 *   colorIndices(split)         the palette index of every genuine point (pointcolors.js)
 *   svg()                       the SVG export of the view, as text
 *   png()                       the PNG export of the view, as a data URL
 *
 * state() includes the drawing settings `colorBy`, `onlyMisclassified`, `pointSize`,
 * `opacity`, `showHandles`, `selectedPoint` ({split, index} or null), `advLines`;
 * `waiting` (a position stood still last frame, its data loading),
 * `transition: {from, method, exact, residual, note}` while a layer
 * transition is shown (null otherwise), `zoom`, `pan` and `fitEpoch`; `guided` and `guide`
 * (the guided search: {classes, points, of, split, index}); view() includes
 * the drawing map (`origin`, `pxPerUnit`, `handleUnit`, `plotRadius`).
 */

import { toRows } from './linalg.js';
import { classColor } from './colors.js';
import { viewCanvas, viewSvg } from './viewexport.js';

export function installTestHook(app) {
  const panelOf = (split) => {
    const p = app.panels.get(split);
    if (!p) throw new Error(`no panel for split ${split}; shown: ${[...app.panels.keys()].join(', ')}`);
    return p;
  };
  const box = (p) => p.overlay.getBoundingClientRect();

  window.grandtour = Object.freeze({
    get ready() { return app.ready; },
    state() {
      const s = app.store.get();
      const m = s.meta;
      return {
        runId: s.runId, runs: s.runs.map((r) => r.id), status: s.status, error: s.error,
        layer: m ? m.layers[Math.round(s.layerPos)].name : null, layerIndex: s.layer, layerPos: s.layerPos,
        epoch: m && m.epochs.length ? m.epochs[Math.round(s.epochPos)] : null, epochIndex: s.epoch, epochPos: s.epochPos,
        splits: [...s.splits], playing: s.playing, speed: s.speed, dragging: s.dragging,
        epochPlaying: s.epochPlaying, layerPlaying: s.layerPlaying, advPlaying: s.advPlaying,
        display: s.display, hidden: [...s.hidden].sort((a, b) => a - b), highlight: s.highlight,
        selection: Object.fromEntries(Object.entries(s.selection).map(([k, v]) => [k, Array.from(v ?? [])])),
        zoom: s.zoom, pan: [...s.pan], fitEpoch: s.fitEpoch,
        colorBy: s.colorBy, onlyMisclassified: s.onlyMisclassified, pointSize: s.pointSize, opacity: s.opacity,
        showHandles: s.showHandles, selectedPoint: s.selectedPoint ? { ...s.selectedPoint } : null, advLines: s.advLines,
        viewMenu: s.viewMenu,
        transition: app.scene && app.scene.transition ? { ...app.scene.transition } : null,
        notice: s.notice, alignment: s.alignment, nonfinite: { ...s.nonfinite },
        adversarial: s.adversarial, advPos: s.advPos, advStep: s.advStep, advSteps: s.advSteps,
        help: s.help, space: app.scene ? app.scene.kind : null, dim: app.tours.tour ? app.tours.tour.ndim : null,
        tourSpace: app.tours.space, tourTime: app.tours.tour ? app.tours.tour.time : 0, frameCount: app.frameCount, epochs: m ? [...m.epochs] : [],
        chartSplit: s.chartSplit, guided: s.guided, guide: s.guide ? { ...s.guide, classes: [...s.guide.classes] } : null,
        waiting: !!app.dynamics.waiting, // a position stood still last frame: its data is loading
      };
    },
    matrix() { return toRows(app.tours.matrix); },
    frame() {
      app.drawNow(true);
      return toRows(app._drawnFrame ?? app.tours.frame());
    },
    setMatrix(rows) {
      const n = rows.length;
      const data = Float64Array.from(rows.flat());
      app.setMatrix({ rows: n, cols: n, data });
      app.drawNow(true);
    },
    projectedPositions(split, key = 'genuine') {
      app.drawNow(true);
      const p = panelOf(split);
      const pos = p.positions(key);
      if (!pos) return null;
      const flags = p.last.opts.sets.find((x) => x.key === key).flags;
      const out = [];
      for (let k = 0; k < pos.length / 2; k++) out.push(flags[k] & 1 ? [pos[2 * k], pos[2 * k + 1]] : null);
      return out;
    },
    screenPositions(split) {
      app.drawNow(true);
      const p = panelOf(split);
      const pos = p.positions();
      const r = box(p);
      const flags = p.last.opts.sets[0].flags;
      const out = [];
      for (let k = 0; k < pos.length / 2; k++) {
        if (!(flags[k] & 1)) { out.push(null); continue; }
        const [x, y] = p.toScreen(p.last.view, pos[2 * k], pos[2 * k + 1]);
        out.push([r.left + x, r.top + y]);
      }
      return out;
    },
    handles(split) {
      app.drawNow(true);
      const p = panelOf(split);
      if (!p.last || !p.handleAxes) return [];
      const r = box(p);
      return Array.from(p.handleAxes, (i) => {
        const [x, y] = p.handleScreen(p.last.view, p.last.frame, i);
        return { axis: i, x: r.left + x, y: r.top + y };
      });
    },
    handleLabels(split) {
      app.drawNow(true);
      const p = panelOf(split);
      const r = box(p);
      return (p.handleLabels ?? []).map((l) => ({
        axis: l.axis, text: l.text, box: [l.box[0] + r.left, l.box[1] + r.top, l.box[2] + r.left, l.box[3] + r.top],
        leader: l.leader ? [l.leader[0] + r.left, l.leader[1] + r.top, l.leader[2] + r.left, l.leader[3] + r.top] : null,
      }));
    },
    marked(split) {
      app.drawNow(true);
      const p = panelOf(split);
      const r = box(p);
      return p.marked ? [p.marked[0] + r.left, p.marked[1] + r.top] : null;
    },
    advLines(split) {
      app.drawNow(true);
      const p = panelOf(split);
      const r = box(p);
      return (p.advLines ?? []).map((l) => [l[0] + r.left, l[1] + r.top, l[2] + r.left, l[3] + r.top]);
    },
    colorIndices(split) {
      app.drawNow(true);
      const k = app.pointColors.indices(split);
      return k ? Array.from(k) : null;
    },
    svg() { return viewSvg(app); },
    png() { return viewCanvas(app)?.toDataURL('image/png') ?? null; },
    centroid(split) {
      app.drawNow(true);
      const c = app.centroidScreen(split);
      if (!c) return null;
      const r = box(panelOf(split));
      return [r.left + c[0], r.top + c[1]];
    },
    view(split) {
      app.drawNow(true);
      const p = panelOf(split);
      const r = box(p);
      const v = p.last?.view;
      return v ? {
        center: [...v.center], pxPerUnit: v.pxPerUnit, handleRadius: v.handleRadius, handleUnit: v.handleUnit,
        origin: [r.left + v.origin[0], r.top + v.origin[1]], plotRadius: v.plotRadius,
        width: v.width, height: v.height, left: r.left, top: r.top,
      } : null;
    },
    classColors() {
      const C = app.store.get().meta.class_names.length;
      return Array.from({ length: C }, (_, c) => classColor(c, C));
    },
    /** Move the tour to `t` seconds of its own time (a view that does not depend on when
     * the tour was paused; the tour is a function of its time); the next frame draws it. */
    seek(t) {
      const tour = app.tours.tour;
      if (!tour) throw new Error('no tour yet');
      app.tours.step(t - tour.time);
      app.requestDraw();
      return tour.time;
    },
    manual(on = true) {
      app.manual = !!on;
      app._last = null; // the next clock frame measures no time spent in manual mode
    },
    step(dt) {
      if (!app.manual) throw new Error('call window.grandtour.manual(true) before step(dt)');
      app.tick(dt);
      return this.state();
    },
    frames(n = 1) {
      return new Promise((resolve) => {
        const target = app.frameCount + n;
        let rafs = 0;
        const tick = () => ((app.frameCount >= target || ++rafs > 6 * n + 30) ? resolve() : requestAnimationFrame(tick));
        requestAnimationFrame(tick);
      });
    },
  });
}
