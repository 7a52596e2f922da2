/**
 * The hover card: an instance's label, prediction (at the epoch shown), its softmax
 * confidence (the class of highest probability and that probability, when the run has
 * a softmax layer: the last layer as wide as the class count whose rows are
 * probabilities) and thumbnail.
 */

import { classCss } from './colors.js';
import { confidence } from './pointcolors.js';
import { SliceCache } from './slices.js';

const box = () => document.getElementById('tooltip');

/**
 * Show the card near (clientX, clientY).
 * @param {object} info {index, split, label, prediction, classNames, atlas, extra}
 */
export function showTooltip(clientX, clientY, info) {
  const el = box();
  const C = info.classNames.length;
  const name = (c) => (c >= 0 && c < C ? info.classNames[c] : '—');
  el.replaceChildren();
  if (info.atlas && info.index < info.atlas.n) {
    const a = info.atlas;
    const cv = document.createElement('canvas');
    cv.width = a.cellW;
    cv.height = a.cellH;
    const col = info.index % a.cols, row = Math.floor(info.index / a.cols);
    cv.getContext('2d').drawImage(a.bitmap, col * a.cellW, row * a.cellH, a.cellW, a.cellH, 0, 0, a.cellW, a.cellH);
    el.appendChild(cv);
  }
  const text = document.createElement('div');
  const wrong = info.prediction != null && info.prediction >= 0 && info.prediction !== info.label;
  text.innerHTML = `
    <div class="tt-row"><b></b> <span class="tt-muted"></span></div>
    <div class="tt-row">label <span class="lab"></span></div>
    <div class="tt-row">prediction <span class="pred"></span></div>
    <div class="tt-row conf" hidden>confidence <span class="conf-v"></span></div>
    <div class="tt-row tt-muted extra"></div>`;
  text.querySelector('b').textContent = info.title ?? `#${info.index}`;
  text.querySelector('.tt-muted').textContent = info.split;
  const lab = text.querySelector('.lab');
  lab.textContent = name(info.label);
  lab.style.color = classCss(info.label, C);
  const pred = text.querySelector('.pred');
  pred.textContent = info.prediction == null ? 'loading…' : info.prediction < 0 ? 'not recorded' : name(info.prediction);
  if (wrong) pred.className = 'pred wrong';
  if (info.confidence) {
    const row = text.querySelector('.conf');
    row.hidden = false;
    const v = row.querySelector('.conf-v');
    v.textContent = `${name(info.confidence.cls)} ${(100 * info.confidence.prob).toFixed(1)}%`;
    v.style.color = classCss(info.confidence.cls, C);
    row.title = `softmax probability at ${info.confidence.layer}`;
  }
  text.querySelector('.extra').textContent = info.extra ?? '';
  el.appendChild(text);
  el.hidden = false;
  const w = el.offsetWidth, h = el.offsetHeight;
  const x = clientX + 16 + w > window.innerWidth ? clientX - 16 - w : clientX + 16;
  const y = clientY + 16 + h > window.innerHeight ? clientY - 16 - h : clientY + 16;
  el.style.left = `${Math.max(4, x)}px`;
  el.style.top = `${Math.max(4, y)}px`;
}

export function hideTooltip() {
  box().hidden = true;
}

/**
 * The card for the point under the pointer of `hover = {panel, x, y, clientX, clientY}`
 * (panel CSS px), or none. The prediction is that of the epoch shown (loaded on demand:
 * `retry` is called once it arrives).
 */
export function hoverCard(app, hover, retry) {
  const s = app.store.get();
  if (s.dragging) return;
  const split = hover.panel.split;
  const hit = hover.panel.pick(hover.x, hover.y, 8, app.selection.visibleFilter(split));
  if (!hit) {
    hideTooltip();
    return;
  }
  const epoch = s.meta.epochs[Math.round(s.epochPos)];
  const preds = app.cache.peek(`pred|${s.runId}|${epoch}|${split}`);
  if (preds === undefined) app.cache.predictions(s.runId, epoch, split).then(retry).catch(() => {});
  showTooltip(hover.clientX, hover.clientY, {
    index: hit.index, split, label: app.labels[split][hit.index], confidence: softmaxConfidence(app, split, hit.index, retry),
    prediction: preds ? preds[hit.index] : null, classNames: s.meta.class_names,
    atlas: app.atlases[split], title: `#${hit.index}`,
    extra: `epoch ${epoch} · ${s.meta.layers[Math.round(s.layerPos)].name}`,
  });
}

/**
 * {cls, prob, layer} of row `index` at the epoch shown: from the last layer as wide as
 * the class count whose values are probabilities (rows summing to 1); null if none (or
 * while its slice loads: `retry` is called once it arrives).
 */
export function softmaxConfidence(app, split, index, retry = () => {}) {
  const s = app.store.get(), m = s.meta;
  const C = m.class_names.length;
  const ei = Math.min(m.epochs.length - 1, Math.round(s.epochPos));
  for (let li = m.layers.length - 1; li >= 0; li--) {
    const L = m.layers[li];
    if (L.dim !== C || L.reduced_dim) continue;
    const epoch = L.static ? m.epochs[0] : m.epochs[ei];
    const slice = app.cache.peek(SliceCache.actKey(s.runId, L.name, epoch, split));
    if (slice === undefined) {
      app.cache.activations(s.runId, L.name, epoch, split).then(retry).catch(() => {});
      return null;
    }
    const c = confidence(slice, index);
    if (c) return { ...c, layer: L.name };
  }
  return null;
}
