/**
 * What the user can do, as functions of the app: the controls, the legend, the chart,
 * the network diagram and the keyboard all call these (one implementation of each).
 */

import { PRESET_VERSION, base64ToF64, decodeHash, downloadPreset, encodeHash, f64ToBase64, readPresetFile } from './presets.js';
import { matrix } from './linalg.js';
import { matrixFromFrame } from './tours.js';
import { zoomAbout } from './viewmap.js';
import { COLOR_MODES } from './pointcolors.js';
import { exportPng, exportSvg } from './viewexport.js';

const clamp = (x, lo, hi) => Math.max(lo, Math.min(hi, x));

export function makeActions(app) {
  const store = app.store;
  const get = () => store.get();
  const E = () => get().meta?.epochs.length ?? 0;
  const L = () => get().meta?.layers.length ?? 0;

  const actions = {
    async openRun(runId) {
      if (runId === get().runId) return;
      try {
        history.replaceState(null, '', location.pathname + location.search); // a view of another run
        await app.openRun(runId);
      } catch (err) {
        store.set({ status: 'error', error: `Could not open run ${runId}: ${err.message}` });
      }
    },
    togglePlay() { store.set({ playing: !get().playing }); },
    setPlaying(on) { store.set({ playing: !!on }); },
    setSpeed(v) { store.set({ speed: clamp(Number(v) || 0, 0, 3) }); },
    speedBy(f) { store.set({ speed: clamp(Math.max(get().speed, 0.02) * f, 0, 3) }); },

    setDisplay(mode) {
      if (mode === 'images' && !Object.values(app.atlases).some(Boolean)) return;
      store.set({ display: mode });
    },
    toggleDisplay() { actions.setDisplay(get().display === 'points' ? 'images' : 'points'); },

    toggleSplit(split) {
      const s = get();
      if (!s.meta || !s.meta.splits.includes(split)) return;
      let next;
      if (s.splits.includes(split)) {
        if (s.splits.length === 1) return; // at least one panel
        next = s.splits.filter((x) => x !== split);
      } else {
        next = s.meta.splits.filter((x) => x === split || s.splits.includes(x));
      }
      store.set({ splits: next });
    },

    /** Zoom by f, keeping the drawing at (qx, qy) in place (plot radii from the centre, y down). */
    zoomBy(f, qx = 0, qy = 0) {
      const s = get();
      const z = clamp(s.zoom * f, 0.1, 40);
      const v = zoomAbout(s.zoom, s.pan, z / s.zoom, qx, qy);
      store.set({ zoom: v.zoom, pan: v.pan });
    },
    /** Where the origin is drawn: [x, y] plot radii from the panels' centre (y down). */
    setPan(pan) {
      const ok = Array.isArray(pan) && pan.length === 2 && pan.every(Number.isFinite);
      store.set({ pan: ok ? [clamp(pan[0], -50, 50), clamp(pan[1], -50, 50)] : [0, 0] });
    },
    /** Back to the fitted map: zoom 1, the origin at the centre. */
    resetZoom() { store.set({ zoom: 1, pan: [0, 0] }); },
    toggleFitEpoch(on) { store.set({ fitEpoch: on ?? !get().fitEpoch }); },
    toggleGuided(on) {
      const guided = on ?? !get().guided;
      store.set(guided ? { guided, playing: true } : { guided });
    },

    // ---------------------------------------------------------------- how points are drawn
    setColorBy(mode) { if (COLOR_MODES.includes(mode)) store.set({ colorBy: mode }); },
    /** Label -> prediction -> correctness -> label. */
    cycleColorBy() { actions.setColorBy(COLOR_MODES[(COLOR_MODES.indexOf(get().colorBy) + 1) % COLOR_MODES.length]); },
    toggleOnlyMisclassified(on) { store.set({ onlyMisclassified: on ?? !get().onlyMisclassified }); },
    setPointSize(v) { store.set({ pointSize: clamp(Number(v) || 1, 0.25, 4) }); },
    pointSizeBy(f) { actions.setPointSize(get().pointSize * f); },
    setOpacity(v) { store.set({ opacity: clamp(Number.isFinite(Number(v)) ? Number(v) : 0.85, 0.05, 1) }); },
    opacityBy(d) { actions.setOpacity(Math.round((get().opacity + d) * 100) / 100); },
    toggleHandles(on) { store.set({ showHandles: on ?? !get().showHandles }); },
    toggleAdvLines(on) { store.set({ advLines: on ?? !get().advLines }); },

    /** Mark one point (`index` of `split`) in its panel; null clears the mark. */
    selectPoint(split, index) {
      const s = get();
      if (split == null || !(index >= 0) || !app.labels[split] || index >= app.labels[split].length) {
        store.set({ selectedPoint: null });
        return;
      }
      store.set({ selectedPoint: { split, index } });
    },
    /**
     * Find points: "123" (or "test:123", "#123") selects and marks point 123 of the first
     * shown split that has it; "label:3", "label:cat" or a class name selects the class.
     * @returns {string} what was found (shown beside the search box)
     */
    search(text) {
      const s = get();
      const q = String(text ?? '').trim();
      if (!q || !s.meta) return '';
      const names = s.meta.class_names;
      const m = /^(?:([A-Za-z_][\w-]*):)?#?(\d+)$/.exec(q);
      if (m && (!m[1] || s.meta.splits.includes(m[1]))) {
        const i = Number(m[2]);
        const order = m[1] ? [m[1]] : [...s.splits, ...s.meta.splits.filter((x) => !s.splits.includes(x))];
        const split = order.find((x) => app.labels[x] && i < app.labels[x].length);
        if (!split) return `no point ${i}`;
        const patch = { selection: { [split]: Int32Array.of(i) }, selectedPoint: { split, index: i } };
        if (!s.splits.includes(split)) patch.splits = s.meta.splits.filter((x) => x === split || s.splits.includes(x));
        store.set(patch);
        return `point ${i} of ${split}`;
      }
      const lab = /^(?:label|class):\s*(.+)$/i.exec(q);
      const name = (lab ? lab[1] : q).trim().toLowerCase();
      let c = names.findIndex((x) => String(x).toLowerCase() === name);
      if (c < 0 && lab && /^\d+$/.test(name) && Number(name) < names.length) c = Number(name);
      if (c < 0) return `nothing matches "${q}"`;
      actions.selectClass(c, false);
      return `class ${names[c]}`;
    },
    toggleViewMenu(on) { store.set({ viewMenu: on ?? !get().viewMenu }); },
    focusSearch() { document.getElementById('search')?.focus(); },
    exportPng() { return exportPng(app); },
    exportSvg() { return exportSvg(app); },
    toggleFullscreen() {
      if (document.fullscreenElement) document.exitFullscreen?.();
      else document.documentElement.requestFullscreen?.().catch(() => {});
    },

    setEpoch(i) {
      if (!E()) return;
      store.set({ epoch: clamp(Math.round(i), 0, E() - 1), epochPlaying: false });
    },
    /** Step from the target epoch (repeated presses add up while the view moves). */
    stepEpoch(d) { actions.setEpoch((get().epochPlaying ? Math.round(get().epochPos) : get().epoch) + d); },
    toggleEpochPlay() {
      const s = get();
      if (s.epochPlaying) {
        store.set({ epochPlaying: false, epoch: Math.min(E() - 1, Math.ceil(s.epochPos - 1e-9)) });
      } else {
        if (Math.round(s.epochPos) >= E() - 1) store.set({ epoch: 0, epochPos: 0 });
        store.set({ epochPlaying: E() > 1, layerPlaying: false });
      }
    },

    /** Go to layer k of the network's graph (meta.graph.layers), off the path shown or on it. */
    pickLayer(k) { app.dynamics.pickLayer(k); },
    setLayer(i) {
      if (!L()) return;
      store.set({ layer: clamp(Math.round(i), 0, L() - 1), layerPlaying: false });
    },
    stepLayer(d) {
      const s = get();
      const from = s.layerPlaying ? (d > 0 ? Math.floor(s.layerPos + 1e-9) : Math.ceil(s.layerPos - 1e-9)) : s.layer;
      actions.setLayer(from + d);
    },
    toggleLayerPlay() {
      const s = get();
      if (s.layerPlaying) {
        store.set({ layerPlaying: false, layer: Math.min(L() - 1, Math.ceil(s.layerPos - 1e-9)) });
      } else {
        if (Math.round(s.layerPos) >= L() - 1) {
          store.set({ layer: 0, layerPos: 0 });
          app.dynamics.jumpTo(0);
        }
        store.set({ layerPlaying: L() > 1, epochPlaying: false });
      }
    },

    async setAdversarial(name) {
      const s = get();
      if (!name) {
        store.set({ adversarial: null, advPlaying: false });
        return;
      }
      try {
        const rec = await app.cache.adversarial(s.runId, name);
        const m = get().meta;
        const ei = m.epochs.indexOf(rec.meta.epoch);
        const patch = { adversarial: name, advSteps: rec.meta.steps, advPos: 0, advStep: 0, advPlaying: false };
        if (ei >= 0) patch.epoch = ei;
        if (!get().splits.includes(rec.meta.split)) patch.splits = m.splits.filter((x) => x === rec.meta.split || get().splits.includes(x));
        const layerName = m.layers[Math.round(get().layerPos)].name;
        if (!rec.meta.layers.includes(layerName)) {
          const soft = rec.meta.layers.includes('softmax') ? 'softmax' : rec.meta.layers[rec.meta.layers.length - 1];
          patch.layer = m.layers.findIndex((l) => l.name === soft);
        }
        store.set(patch);
      } catch (err) {
        store.set({ notice: `Adversarial record ${name}: ${err.message}` });
      }
    },
    setAdvStep(i) {
      const s = get();
      if (!s.adversarial) return;
      store.set({ advStep: clamp(Math.round(i), 0, s.advSteps), advPlaying: false });
    },
    stepAdv(d) {
      if (!get().adversarial) {
        const names = get().meta?.adversarial ?? [];
        if (names.length) actions.setAdversarial(names[0]);
        return;
      }
      actions.setAdvStep(Math.round(get().advPos) + d);
    },
    toggleAdvPlay() {
      const s = get();
      if (!s.adversarial) {
        const names = s.meta?.adversarial ?? [];
        if (names.length) actions.setAdversarial(names[0]).then(() => store.set({ advPlaying: true }));
        return;
      }
      if (s.advPlaying) store.set({ advPlaying: false, advStep: Math.round(s.advPos) });
      else {
        if (Math.round(s.advPos) >= s.advSteps) store.set({ advPos: 0, advStep: 0 });
        store.set({ advPlaying: true });
      }
    },

    toggleClass(c) {
      const hidden = new Set(get().hidden);
      if (hidden.has(c)) hidden.delete(c); else hidden.add(c);
      store.set({ hidden });
    },
    highlightClass(c) { store.set({ highlight: c }); },
    /** Select every point of class c in the shown splits; `add` keeps the selection. */
    selectClass(c, add = false) { app.selection.selectClass(c, add); },
    clearSelection() { app.clearSelection(); },
    escape() {
      if (get().help) store.set({ help: false });
      else if (get().viewMenu) store.set({ viewMenu: false });
      else {
        app.clearSelection();
        store.set({ selectedPoint: null });
      }
    },
    toggleHelp(on) { store.set({ help: on ?? !get().help }); },

    // ---------------------------------------------------------------- presets
    preset() {
      const s = get();
      const GT = app.tours.matrix;
      const li = Math.round(s.layerPos);
      return {
        version: PRESET_VERSION,
        run: s.runId,
        runName: s.meta.name,
        layer: s.meta.layers[li].name,
        epoch: s.meta.epochs[Math.round(s.epochPos)],
        splits: [...s.splits],
        tour: { dim: GT.rows, matrix: f64ToBase64(GT.data), speed: s.speed },
        selection: Object.fromEntries(Object.entries(s.selection).filter(([, v]) => v && v.length).map(([k, v]) => [k, Array.from(v)])),
        hidden: [...s.hidden].sort((a, b) => a - b),
        display: s.display,
        zoom: s.zoom,
        pan: [...s.pan],
        fitEpoch: s.fitEpoch,
        colorBy: s.colorBy,
        onlyMisclassified: s.onlyMisclassified,
        pointSize: s.pointSize,
        opacity: s.opacity,
        showHandles: s.showHandles,
        selectedPoint: s.selectedPoint ? { ...s.selectedPoint } : null,
        advLines: s.advLines,
        adversarial: s.adversarial,
        advStep: s.adversarial ? Math.round(s.advPos) : 0,
      };
    },
    savePreset() {
      const p = actions.preset();
      downloadPreset(p, `grandtour-${p.runName}-${p.layer}-epoch${p.epoch}.json`.replace(/[^A-Za-z0-9._-]+/g, '_'));
    },
    copyLink() {
      const hash = encodeHash(actions.preset());
      app._ownHash = `#${hash}`;
      history.replaceState(null, '', `#${hash}`);
      navigator.clipboard?.writeText(location.href).catch(() => {});
      store.set({ notice: 'The address now holds this view: copy it to share it.' });
    },
    async loadPresetFile(file) {
      try {
        await actions.applyPreset(await readPresetFile(file));
      } catch (err) {
        store.set({ notice: `Could not load the view: ${err.message}` });
      }
    },
    async loadHash(hash) {
      if (hash === app._ownHash) return;
      try {
        const p = decodeHash(hash);
        if (p) await actions.applyPreset(p);
      } catch (err) {
        store.set({ notice: `The view in the address could not be read: ${err.message}` });
      }
    },
    /** Show a preset's view exactly (the tour pauses there). */
    async applyPreset(p) {
      let s = get();
      if (p.run && p.run !== s.runId && s.runs.some((r) => r.id === p.run)) {
        await app.openRun(p.run);
        s = get();
      }
      let m = s.meta;
      const g = app.dynamics.graph();
      const k = g.layers.findIndex((l) => l.name === p.layer);
      if (k < 0) throw new Error(`this run has no layer ${p.layer}`);
      if (!g.path.includes(k)) app.dynamics.pickLayer(k); // a layer off the path shown
      m = get().meta;
      const li = m.layers.findIndex((l) => l.name === p.layer);
      const ei = m.epochs.indexOf(p.epoch);
      if (ei < 0) throw new Error(`this run has no epoch ${p.epoch}`);
      const splits = (p.splits ?? s.splits).filter((x) => m.splits.includes(x));
      const selection = {};
      for (const [k, v] of Object.entries(p.selection ?? {})) if (m.splits.includes(k)) selection[k] = Int32Array.from(v);
      store.set({
        layer: li, layerPos: li, epoch: ei, epochPos: ei, playing: false,
        epochPlaying: false, layerPlaying: false, advPlaying: false,
        splits: splits.length ? splits : s.splits, selection,
        hidden: new Set(p.hidden ?? []), display: p.display === 'images' ? 'images' : 'points',
        zoom: Number.isFinite(p.zoom) && p.zoom > 0 ? p.zoom : 1,
        fitEpoch: p.fitEpoch === true,
        colorBy: COLOR_MODES.includes(p.colorBy) ? p.colorBy : 'label',
        onlyMisclassified: p.onlyMisclassified === true,
        pointSize: Number.isFinite(p.pointSize) && p.pointSize > 0 ? clamp(p.pointSize, 0.25, 4) : 1,
        opacity: Number.isFinite(p.opacity) ? clamp(p.opacity, 0.05, 1) : 0.85,
        showHandles: p.showHandles !== false,
        advLines: p.advLines === true,
        selectedPoint: p.selectedPoint && m.splits.includes(p.selectedPoint.split) && Number.isInteger(p.selectedPoint.index)
          ? { split: p.selectedPoint.split, index: p.selectedPoint.index } : null,
        ...(Number.isFinite(p.tour?.speed) ? { speed: p.tour.speed } : {}),
      });
      actions.setPan(p.pan ?? [0, 0]);
      app.dynamics.jumpTo(li);
      if (p.tour) {
        const n = p.tour.dim;
        if (n !== app.tours.tour.ndim) throw new Error(`the preset's tour has ${n} dimensions, layer ${p.layer} has ${app.tours.tour.ndim}`);
        const GT = p.tour.matrix
          ? matrix(n, n, base64ToF64(p.tour.matrix))
          : matrixFromFrame(matrix(n, 2, base64ToF64(p.tour.frame)));
        app.setMatrix(GT);
      }
      if (p.adversarial && m.adversarial?.includes(p.adversarial)) {
        await actions.setAdversarial(p.adversarial);
        store.set({ advStep: p.advStep ?? 0, advPos: p.advStep ?? 0, epoch: ei, epochPos: ei });
      } else if (get().adversarial) {
        store.set({ adversarial: null });
      }
      app.requestDraw();
    },
  };
  return actions;
}
