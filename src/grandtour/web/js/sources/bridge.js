/**
 * The viewer's state shared with the notebook widget (grandtour.widget.Viewer traitlets),
 * both ways, over window.postMessage with the widget's view (widget.js):
 *
 *   to the parent     {gt: 'state', layer, epoch, playing, selection, matrix}: what changed
 *                     (layer by name, epoch by number, selection {split: [rows]} the moment a
 *                     brush ends, matrix GT as nested arrays when the tour stops, a drag ends,
 *                     or at most once a second while it plays)
 *   from the parent   {gt: 'set', layer?, epoch?, playing?, matrix?, selection?, splits?}
 */

import { toRows } from '../linalg.js';

const MATRIX_EVERY_MS = 1000;

function selectionOf(s) {
  const out = {};
  for (const [split, v] of Object.entries(s.selection)) if (v && v.length) out[split] = Array.from(v);
  return out;
}

/** Wire `app` to the parent window `target` (see above). */
export function bindParent(app, target = window.parent) {
  const { store, actions } = app;
  const post = (patch) => target.postMessage({ gt: 'state', ...patch }, '*');
  let lastMatrix = '';
  const matrixNow = (force = false) => {
    if (!app.tours.tour) return;
    const rows = toRows(app.tours.matrix);
    const text = JSON.stringify(rows);
    if (!force && text === lastMatrix) return;
    lastMatrix = text;
    post({ matrix: rows });
  };
  const full = () => {
    const s = store.get();
    return {
      layer: s.meta.layers[s.layer].name, epoch: s.meta.epochs.length ? s.meta.epochs[s.epoch] : null,
      playing: s.playing, selection: selectionOf(s), splits: [...s.splits],
    };
  };

  store.subscribe((s, changed) => {
    if (!s.meta) return;
    const patch = {};
    if (changed.has('layer') || changed.has('meta')) patch.layer = s.meta.layers[s.layer].name;
    if ((changed.has('epoch') || changed.has('meta')) && s.meta.epochs.length) patch.epoch = s.meta.epochs[s.epoch];
    if (changed.has('playing')) patch.playing = s.playing;
    if (changed.has('selection')) patch.selection = selectionOf(s);
    if (changed.has('splits')) patch.splits = [...s.splits];
    if (Object.keys(patch).length) post(patch);
    if ((changed.has('playing') && !s.playing) || (changed.has('dragging') && !s.dragging)) {
      requestAnimationFrame(() => matrixNow());
    }
  });
  setInterval(() => { if (store.get().playing) matrixNow(); }, MATRIX_EVERY_MS);

  const notice = (text) => store.set({ notice: text });
  window.addEventListener('message', (ev) => {
    const m = ev.data;
    if (ev.source !== target || !m || m.gt !== 'set') return;
    const s = store.get();
    if (!s.meta) return;
    if (m.splits != null) {
      const want = s.meta.splits.filter((x) => m.splits.includes(x));
      if (want.length) store.set({ splits: want });
      else notice(`No split ${m.splits.join(', ')} in this run; splits: ${s.meta.splits.join(', ')}`);
    }
    if (m.layer != null) {
      const i = s.meta.layers.findIndex((L) => L.name === m.layer);
      if (i >= 0) actions.setLayer(i);
      else notice(`No layer ${m.layer} in this run`);
    }
    if (m.epoch != null) {
      const i = s.meta.epochs.indexOf(m.epoch);
      if (i >= 0) actions.setEpoch(i);
      else notice(`No epoch ${m.epoch} in this run; epochs: ${s.meta.epochs.join(', ')}`);
    }
    if (m.playing != null) actions.setPlaying(m.playing);
    if (m.selection != null) {
      const selection = {};
      for (const [split, rows] of Object.entries(m.selection)) {
        if (s.meta.splits.includes(split)) selection[split] = Int32Array.from(rows).sort();
      }
      store.set({ selection });
    }
    if (m.matrix != null && m.matrix.length) {
      const n = m.matrix.length;
      const dim = app.tours.tour ? app.tours.tour.ndim : 0;
      if (n !== dim || m.matrix.some((r) => r.length !== n)) {
        notice(`The matrix set from Python is ${n} x ${m.matrix[0]?.length ?? 0}; this view needs ${dim} x ${dim}`);
      } else {
        actions.setPlaying(false);
        app.setMatrix({ rows: n, cols: n, data: Float64Array.from(m.matrix.flat()) });
        lastMatrix = JSON.stringify(m.matrix);
      }
    }
  });

  post({ ready: true, ...full() });
  matrixNow(true);
}
