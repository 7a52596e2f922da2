/**
 * Per-class loss across epochs (SVG), linked to the epoch: a marker shows the epoch
 * on screen (it slides during interpolation), and a click jumps to the nearest epoch.
 * Hidden classes are left out; the highlighted class is drawn bold. Axis titles (epoch,
 * loss); a readout (epoch, class, value) of the line nearest the pointer, or, without a
 * pointer, of the class highlighted in the legend (a legend entry with keyboard focus)
 * at the epoch shown. A run without recorded per-class metrics (an import) shows the
 * curves the server computes from its softmax, titled "loss (computed)".
 */

import { classCss } from './colors.js';

const NS = 'http://www.w3.org/2000/svg';
const PAD = { left: 42, right: 8, top: 6, bottom: 18 };

function svgEl(name, attrs = {}) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function bindChart(app) {
  const { store, actions } = app;
  const box = document.getElementById('chart');
  const select = document.getElementById('chart-split');
  select.addEventListener('change', () => store.set({ chartSplit: select.value }));
  let geom = null; // {x(i), E, width}
  let marker = null;
  let builtKey = null;
  let builtMetrics = null;
  let pointer = null; // [x, y] in the chart's px while the pointer is over it
  const readout = document.createElement('div');
  readout.className = 'chart-readout';
  readout.hidden = true;

  box.addEventListener('pointermove', (ev) => {
    const r = box.getBoundingClientRect();
    pointer = [ev.clientX - r.left, ev.clientY - r.top];
    showReadout(store.get());
  });
  box.addEventListener('pointerleave', () => {
    pointer = null;
    showReadout(store.get());
  });

  box.addEventListener('click', (ev) => {
    if (!geom) return;
    const r = box.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const i = Math.round(((x - PAD.left) / (geom.width - PAD.left - PAD.right)) * Math.max(1, geom.E - 1));
    actions.setEpoch(Math.max(0, Math.min(geom.E - 1, i)));
  });

  function build(s) {
    const m = s.metrics?.[s.chartSplit];
    const width = box.clientWidth || 280, height = box.clientHeight || 150;
    box.replaceChildren(readout);
    geom = null;
    marker = null;
    const any = m && m.class_loss && m.class_loss.some((row) => row && row.some((v) => v != null && Number.isFinite(v)));
    if (!any) {
      const d = document.createElement('div');
      d.className = 'empty';
      d.textContent = m ? 'no per-class loss recorded (and no softmax layer to compute it from)' : 'loading…';
      box.appendChild(d);
      return;
    }
    const E = m.class_loss.length, C = m.class_loss[0]?.length ?? 0;
    let ymax = 0;
    for (const row of m.class_loss) for (const v of row) if (v != null && Number.isFinite(v)) ymax = Math.max(ymax, v);
    ymax = niceMax(ymax);
    const x = (i) => PAD.left + (E > 1 ? (i / (E - 1)) : 0.5) * (width - PAD.left - PAD.right);
    const y = (v) => PAD.top + (1 - v / ymax) * (height - PAD.top - PAD.bottom);
    const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'per-class loss by epoch' });
    const axis = svgEl('g', { class: 'axis' });
    for (const v of [0, ymax / 2, ymax]) {
      axis.appendChild(svgEl('line', { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v), 'stroke-dasharray': v ? '2 3' : '' }));
      const t = svgEl('text', { x: PAD.left - 4, y: y(v) + 3, 'text-anchor': 'end' });
      t.textContent = String(+v.toPrecision(3));
      axis.appendChild(t);
    }
    const epochs = m.epochs ?? s.meta.epochs;
    for (const i of [...new Set([0, Math.floor((E - 1) / 2), E - 1])]) {
      const t = svgEl('text', { x: x(i), y: height - 4, 'text-anchor': 'middle' });
      t.textContent = String(epochs[i]);
      axis.appendChild(t);
    }
    const xt = svgEl('text', { x: PAD.left - 6, y: height - 4, 'text-anchor': 'end', class: 'axis-title' });
    xt.textContent = 'epoch';
    axis.appendChild(xt);
    const yt = svgEl('text', {
      x: 0, y: 0, 'text-anchor': 'middle', class: 'axis-title',
      transform: `translate(9 ${PAD.top + (height - PAD.top - PAD.bottom) / 2}) rotate(-90)`,
    });
    yt.textContent = m.computed ? 'loss (computed)' : 'loss';
    axis.appendChild(yt);
    if (m.computed) { // not recorded: computed by the server from the softmax (an import)
      const title = svgEl('title');
      title.textContent = `Per-class loss computed ${m.computed}`;
      yt.appendChild(title);
    }
    svg.appendChild(axis);
    for (let c = 0; c < C; c++) {
      if (s.hidden.has(c)) continue;
      let d = '', pen = false;
      for (let i = 0; i < E; i++) {
        const v = m.class_loss[i]?.[c];
        if (v == null || !Number.isFinite(v)) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      const bold = s.highlight === c;
      const faded = s.highlight >= 0 && !bold;
      svg.appendChild(svgEl('path', {
        d, fill: 'none', stroke: classCss(c, C), 'stroke-width': bold ? 2.6 : 1.4,
        'stroke-opacity': faded ? 0.18 : 0.95, 'data-class': c,
      }));
      if (E === 1) svg.appendChild(svgEl('circle', { cx: x(0), cy: y(m.class_loss[0][c] ?? 0), r: 2.5, fill: classCss(c, C) }));
    }
    for (const late of s.lateClasses?.[s.chartSplit] ?? []) { // analysis.late_classes, loaded by compare.js
      const i = (m.epochs ?? s.meta.epochs).indexOf(late.epoch), c = s.meta.class_names.indexOf(late.class);
      if (i >= 0) {
        svg.appendChild(svgEl('line', { x1: x(i), x2: x(i), y1: PAD.top, y2: height - PAD.bottom, stroke: classCss(c, C),
          'stroke-dasharray': '3 2', class: 'late-class', 'data-class': c, 'data-epoch': late.epoch }));
      }
    }
    marker = svgEl('line', { y1: PAD.top, y2: height - PAD.bottom, stroke: '#1d2330', 'stroke-width': 1.2, class: 'epoch-marker' });
    svg.appendChild(marker);
    const dot = svgEl('circle', { r: 3.5, fill: 'none', stroke: '#1d2330', 'stroke-width': 1.5, class: 'readout-dot', visibility: 'hidden' });
    svg.appendChild(dot);
    box.appendChild(svg);
    geom = { E, width, height, x, y, m, epochs, dot };
  }

  /** The readout: {i, c, v} of the point under the pointer (nearest line), or of the highlighted class. */
  function readoutAt(s) {
    if (!geom) return null;
    const { E, m, x, y } = geom;
    const C = m.class_loss[0]?.length ?? 0;
    const val = (i, c) => m.class_loss[i]?.[c];
    const ok = (v) => v != null && Number.isFinite(v);
    if (pointer) {
      const i = Math.max(0, Math.min(E - 1, Math.round(((pointer[0] - PAD.left) / (geom.width - PAD.left - PAD.right)) * Math.max(1, E - 1))));
      let best = -1, bestD = Infinity;
      for (let c = 0; c < C; c++) {
        if (s.hidden.has(c) || !ok(val(i, c))) continue;
        const d = Math.abs(y(val(i, c)) - pointer[1]);
        if (d < bestD) { bestD = d; best = c; }
      }
      return best >= 0 ? { i, c: best, v: val(i, best), px: x(i), py: y(val(i, best)) } : null;
    }
    const c = s.highlight;
    const i = Math.max(0, Math.min(E - 1, Math.round(s.epochPos)));
    if (c >= 0 && c < C && !s.hidden.has(c) && ok(val(i, c))) return { i, c, v: val(i, c), px: x(i), py: y(val(i, c)) };
    return null;
  }

  function showReadout(s) {
    if (!s.meta) return;
    const r = readoutAt(s);
    readout.hidden = !r;
    if (geom) geom.dot.setAttribute('visibility', r ? 'visible' : 'hidden');
    if (!r) return;
    const names = s.meta.class_names;
    readout.replaceChildren();
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = classCss(r.c, names.length);
    const t = document.createElement('span');
    t.textContent = `epoch ${geom.epochs[r.i]} · ${names[r.c] ?? r.c} · ${Number(r.v).toPrecision(3)}`;
    readout.append(sw, t);
    readout.dataset.epoch = String(geom.epochs[r.i]);
    readout.dataset.class = String(r.c);
    readout.dataset.value = String(r.v);
    geom.dot.setAttribute('cx', r.px);
    geom.dot.setAttribute('cy', r.py);
    geom.dot.setAttribute('stroke', classCss(r.c, names.length));
  }

  function place(s) {
    if (!marker || !geom) return;
    const xp = geom.x(Math.min(s.epochPos, geom.E - 1));
    marker.setAttribute('x1', xp);
    marker.setAttribute('x2', xp);
  }

  function sync(s, changed) {
    if (!s.meta) return;
    if (!changed || changed.has('meta')) {
      const opts = s.meta.splits.map((sp) => new Option(sp, sp));
      select.replaceChildren(...opts);
    }
    if (select.value !== s.chartSplit && s.chartSplit) select.value = s.chartSplit;
    const key = [s.chartSplit, [...s.hidden].join(','), s.highlight, box.clientWidth,
      JSON.stringify(s.lateClasses?.[s.chartSplit] ?? [])].join('|');
    const m = s.metrics?.[s.chartSplit];
    if (key !== builtKey || m !== builtMetrics) {
      build(s);
      builtKey = key;
      builtMetrics = m;
    }
    place(s);
    showReadout(s);
  }
  store.subscribe(sync);
  window.addEventListener('resize', () => { builtKey = null; sync(store.get(), null); });
  sync(store.get(), null);
}
