/**
 * Export the current view: a PNG (each panel's WebGL canvas and overlay composited, at
 * the screen's resolution) and an SVG (the points, handles, handle labels, the marked
 * point and the adversarial lines as vectors). Both lay the shown panels out as on the
 * page, in the box that holds them; the SVG places everything by the panels' one
 * drawing map (viewmap.js): a point's circle is where the page draws it.
 */

import { classCss, palette } from './colors.js';
import { downloadBlob } from './presets.js';

const NS = 'http://www.w3.org/2000/svg';

/** The shown panels and the box (page CSS px) that holds their stages. */
function layout(app) {
  const panels = [...app.panels.values()].filter((p) => p.last);
  const boxes = panels.map((p) => p.overlay.getBoundingClientRect());
  if (!boxes.length) return null;
  const left = Math.min(...boxes.map((b) => b.left)), top = Math.min(...boxes.map((b) => b.top));
  const right = Math.max(...boxes.map((b) => b.right)), bottom = Math.max(...boxes.map((b) => b.bottom));
  return {
    left, top, width: Math.round(right - left), height: Math.round(bottom - top),
    items: panels.map((p, k) => ({ panel: p, dx: boxes[k].left - left, dy: boxes[k].top - top, box: boxes[k] })),
  };
}

function fileName(app, ext) {
  const s = app.store.get();
  const layer = s.meta.layers[Math.round(s.layerPos)].name;
  const epoch = s.meta.epochs[Math.round(s.epochPos)];
  return `grandtour-${s.meta.name}-${layer}-epoch${epoch}.${ext}`.replace(/[^A-Za-z0-9._-]+/g, '_');
}


/** The PNG of the view as a canvas (device pixels: CSS size times devicePixelRatio). */
export function viewCanvas(app) {
  app.drawNow(true);
  const L = layout(app);
  if (!L) return null;
  const dpr = window.devicePixelRatio || 1;
  const cv = document.createElement('canvas');
  cv.width = Math.round(L.width * dpr);
  cv.height = Math.round(L.height * dpr);
  const g = cv.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, cv.width, cv.height);
  for (const { panel, dx, dy, box } of L.items) {
    const w = Math.round(box.width * dpr), h = Math.round(box.height * dpr);
    g.drawImage(panel.glCanvas, Math.round(dx * dpr), Math.round(dy * dpr), w, h);
    g.drawImage(panel.overlay, Math.round(dx * dpr), Math.round(dy * dpr), w, h);
  }
  return cv;
}

export function exportPng(app) {
  const cv = viewCanvas(app);
  if (!cv) return;
  cv.toBlob((blob) => blob && downloadBlob(blob, fileName(app, 'png')), 'image/png');
}

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

const f1 = (v) => (Math.round(v * 100) / 100).toString();

/** The SVG of the view, as a string. */
export function viewSvg(app) {
  app.drawNow(true);
  const L = layout(app);
  if (!L) return null;
  const s = app.store.get();
  const C = s.meta.class_names.length;
  const pal = palette(C, s.hidden, s.opacity);
  const svg = el('svg', { xmlns: NS, width: L.width, height: L.height, viewBox: `0 0 ${L.width} ${L.height}`, 'font-family': 'system-ui, sans-serif' });
  svg.appendChild(el('rect', { x: 0, y: 0, width: L.width, height: L.height, fill: '#ffffff' }));
  const defs = el('defs');
  svg.appendChild(defs);
  L.items.forEach(({ panel, dx, dy, box }, k) => {
    const clip = el('clipPath', { id: `panel-${k}` });
    clip.appendChild(el('rect', { x: 0, y: 0, width: f1(box.width), height: f1(box.height) }));
    defs.appendChild(clip);
    const g = el('g', { transform: `translate(${f1(dx)} ${f1(dy)})`, 'clip-path': `url(#panel-${k})`, 'data-split': panel.split });
    svg.appendChild(g);
    const { view } = panel.last;
    const set = panel.last.opts.sets[0];
    const pos = panel.positions();
    const colors = app.pointColors.indices(panel.split) ?? panel.labels;
    const r = (set.pointSize ?? 4) / 2;
    const points = el('g', { class: 'points', stroke: 'none' });
    for (let p = 0; p < pos.length / 2; p++) {
      if (!(set.flags[p] & 1)) continue;
      const ci = colors[p];
      const a = pal[4 * ci + 3];
      if (a === 0) continue;
      const [x, y] = panel.toScreen(view, pos[2 * p], pos[2 * p + 1]);
      points.appendChild(el('circle', {
        cx: f1(x), cy: f1(y), r: f1(set.flags[p] & 2 ? 1.8 * r : r), 'data-index': p,
        fill: `rgb(${pal[4 * ci]}, ${pal[4 * ci + 1]}, ${pal[4 * ci + 2]})`, 'fill-opacity': f1(a / 255),
        ...(set.flags[p] & 2 ? { stroke: '#111', 'stroke-width': 1 } : {}),
      }));
    }
    g.appendChild(points);
    for (const line of panel.advLines ?? []) {
      g.appendChild(el('line', { x1: f1(line[0]), y1: f1(line[1]), x2: f1(line[2]), y2: f1(line[3]), stroke: '#333', 'stroke-opacity': 0.6, 'stroke-dasharray': '3 2' }));
    }
    if (panel.handleAxes && s.showHandles) {
      const hg = el('g', { class: 'handles' });
      const [ox, oy] = view.origin;
      for (const i of panel.handleAxes) {
        const [hx, hy] = panel.handleScreen(view, panel.last.frame, i);
        hg.appendChild(el('line', { x1: f1(ox), y1: f1(oy), x2: f1(hx), y2: f1(hy), stroke: 'rgb(90, 90, 90)', 'stroke-opacity': 0.35 }));
      }
      const classLayer = !!panel.handleLabels?.length;
      for (const i of panel.handleAxes) {
        const [hx, hy] = panel.handleScreen(view, panel.last.frame, i);
        hg.appendChild(el('circle', { cx: f1(hx), cy: f1(hy), r: 4, fill: classLayer && i < C ? classCss(i, C) : '#ffffff', stroke: 'rgb(30, 30, 30)', 'stroke-width': 1.25, 'data-axis': i }));
      }
      for (const lab of panel.handleLabels ?? []) {
        if (lab.leader) hg.appendChild(el('line', { x1: f1(lab.leader[0]), y1: f1(lab.leader[1]), x2: f1(lab.leader[2]), y2: f1(lab.leader[3]), stroke: '#888', 'stroke-width': 0.8 }));
        hg.appendChild(el('text', {
          x: f1(lab.x), y: f1(lab.y), 'text-anchor': lab.align === 'right' ? 'end' : 'start', 'dominant-baseline': 'middle',
          'font-size': 12, 'font-weight': 600, fill: '#222', stroke: '#fff', 'stroke-width': 3, 'paint-order': 'stroke',
        }, lab.text));
      }
      g.appendChild(hg);
    }
    if (panel.marked) {
      const [x, y] = panel.marked;
      g.appendChild(el('circle', { cx: f1(x), cy: f1(y), r: 9, fill: 'none', stroke: '#111', 'stroke-width': 2, class: 'marked' }));
    }
    g.appendChild(el('text', { x: 8, y: 16, 'font-size': 12, fill: '#555' }, panel.split));
  });
  return new XMLSerializer().serializeToString(svg);
}

export function exportSvg(app) {
  const text = viewSvg(app);
  if (text) downloadBlob(new Blob([text], { type: 'image/svg+xml' }), fileName(app, 'svg'));
}
