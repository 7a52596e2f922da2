/**
 * The overlay drawn above a panel's WebGL canvas (a 2-D canvas): the origin of the
 * space shown (a faint cross), the axis handles (with class names on the layers whose
 * axes are classes), the brush rectangle and the selection's centroid, which can be
 * dragged. Everything is placed by the panel's one drawing map (viewmap.js): a
 * handle's line runs from the origin to the image of `h e_i`. Also the marked point (a
 * ring, in every layer and epoch) and the lines from adversarial points to their originals.
 */

import { projectRow } from './pointcolors.js';

const MAX_HANDLES = 48; // wider layers show their longest handles only (the others are near the origin)
const LABEL_FONT = '600 12px system-ui, sans-serif';
const LABEL_H = 14; // the height of a label's box (px)
const LABEL_GAP = 9; // from the handle to its label, along the handle (px)
const NUDGE = 5, MAX_NUDGES = 24;

/**
 * Where the handle labels go, none over another: each starts LABEL_GAP px beyond its
 * handle, along the handle's direction from the origin; one that would overlap a label
 * already placed (the longest handles are placed first) moves further out along that
 * direction, then kept inside the panel, with a leader line back to its handle when moved.
 * @returns {{axis, text, x, y, align, box: number[], leader: number[]|null}[]} box: [x0, y0, x1, y1]
 */
export function placeLabels(axes, at, origin, labels, width, view) {
  const items = Array.from(axes, (i) => {
    const [hx, hy] = at(i);
    return { i, hx, hy, len: Math.hypot(hx - origin[0], hy - origin[1]) };
  }).sort((a, b) => b.len - a.len);
  const placed = [];
  const overlaps = (b) => placed.some((o) => b[0] < o.box[2] + 2 && o.box[0] < b[2] + 2 && b[1] < o.box[3] + 1 && o.box[1] < b[3] + 1);
  for (const { i, hx, hy, len } of items) {
    const text = String(labels[i] ?? i);
    const w = width(text);
    const ux = len > 1e-6 ? (hx - origin[0]) / len : 1, uy = len > 1e-6 ? (hy - origin[1]) / len : 0;
    const align = ux >= 0 ? 'left' : 'right';
    let best = null;
    for (let k = 0; k <= MAX_NUDGES; k++) {
      const d = LABEL_GAP + k * NUDGE;
      let x = hx + ux * d, y = hy + uy * d;
      // Inside the panel (the box, not only its anchor).
      const x0 = align === 'left' ? x : x - w;
      const sx = Math.max(2 - x0, Math.min(0, view.width - 2 - (x0 + w)));
      x += sx;
      y = Math.max(LABEL_H / 2 + 1, Math.min(view.height - LABEL_H / 2 - 1, y));
      const bx = align === 'left' ? x : x - w;
      const box = [bx, y - LABEL_H / 2, bx + w, y + LABEL_H / 2];
      best = { axis: i, text, x, y, align, box, moved: k > 0 || sx !== 0 };
      if (!overlaps(box)) break;
    }
    best.leader = best.moved ? [hx, hy, best.align === 'left' ? best.box[0] - 1 : best.box[2] + 1, best.y] : null;
    delete best.moved;
    placed.push(best);
  }
  return placed;
}

/** The marked point of this panel's split (a ring), where it is drawn: [x, y] CSS px or null. */
function drawMarked(g, panel, last, ctx) {
  const sp = ctx.selectedPoint;
  if (!sp || sp.split !== panel.split || !last.part) return null;
  const xy = projectRow(last.part.sets[0], sp.index, last.frame);
  if (!xy) return null;
  const [x, y] = panel.toScreen(last.view, xy[0], xy[1]);
  const cx = Math.max(0, Math.min(last.view.width, x)), cy = Math.max(0, Math.min(last.view.height, y));
  g.lineWidth = 2;
  g.strokeStyle = '#111';
  g.beginPath();
  g.arc(cx, cy, 9, 0, 2 * Math.PI);
  g.stroke();
  g.lineWidth = 1;
  g.strokeStyle = 'rgba(255, 255, 255, 0.9)';
  g.beginPath();
  g.arc(cx, cy, 11, 0, 2 * Math.PI);
  g.stroke();
  g.font = '600 11px system-ui, sans-serif';
  g.textAlign = 'left';
  g.textBaseline = 'middle';
  g.lineWidth = 3;
  g.strokeText(`#${sp.index}`, cx + 13, cy - 10);
  g.fillStyle = '#111';
  g.fillText(`#${sp.index}`, cx + 13, cy - 10);
  return [x, y];
}

/** Dashed lines from each adversarial point to its original (the genuine row it came from). */
function drawAdvLines(g, panel, last, ctx) {
  const orig = ctx.advOrigins;
  if (!ctx.advLines || !orig || orig.split !== panel.split || !last.part) return [];
  const adv = last.part.sets.find((x) => x.key === 'adversarial');
  if (!adv) return [];
  const out = [];
  g.setLineDash([3, 2]);
  g.lineWidth = 1;
  g.strokeStyle = 'rgba(40, 40, 40, 0.6)';
  g.beginPath();
  for (let j = 0; j < orig.index.length; j++) {
    const a = projectRow(adv, j, last.frame), b = projectRow(last.part.sets[0], orig.index[j], last.frame);
    if (!a || !b) continue;
    const [ax, ay] = panel.toScreen(last.view, a[0], a[1]);
    const [bx, by] = panel.toScreen(last.view, b[0], b[1]);
    g.moveTo(bx, by);
    g.lineTo(ax, ay);
    out.push([bx, by, ax, ay]);
  }
  g.stroke();
  g.setLineDash([]);
  return out;
}

/**
 * Which axes get a handle: all of them up to MAX_HANDLES, else the longest ones.
 * @returns {Int32Array} axis indices.
 */
export function visibleAxes(frame) {
  const n = frame.rows, f = frame.data;
  if (n <= MAX_HANDLES) return Int32Array.from({ length: n }, (_, i) => i);
  const len = Array.from({ length: n }, (_, i) => [i, f[2 * i] ** 2 + f[2 * i + 1] ** 2]);
  len.sort((a, b) => b[1] - a[1]);
  return Int32Array.from(len.slice(0, MAX_HANDLES).map((x) => x[0]));
}

/**
 * Redraw a panel's overlay.
 * @param {Panel} panel
 * @param {object|null} last the panel's last draw ({view, frame})
 * @param {object} ctx {axisLabels: names or null, axisColors: css or null, showHandles,
 *   activeAxis, centroid: [x, y] CSS px or null, brush}
 */
export function drawOverlay(panel, last, ctx) {
  const cv = panel.overlay;
  const g = cv.getContext('2d');
  const dpr = window.devicePixelRatio || 1;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.clearRect(0, 0, cv.width, cv.height);
  if (!last) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const { view, frame } = last;
  const [cx, cy] = view.origin;
  drawOrigin(g, view);
  panel.handleAxes = null;
  panel.handleLabels = [];
  panel.advLines = drawAdvLines(g, panel, last, ctx);
  if (ctx.showHandles !== false) {
    const axes = visibleAxes(frame);
    panel.handleAxes = axes;
    const labels = ctx.axisLabels;
    g.lineWidth = 1;
    for (const i of axes) {
      const [hx, hy] = panel.handleScreen(view, frame, i);
      const active = ctx.activeAxis === i;
      g.strokeStyle = active ? 'rgba(20, 20, 20, 0.9)' : 'rgba(90, 90, 90, 0.35)';
      g.beginPath();
      g.moveTo(cx, cy);
      g.lineTo(hx, hy);
      g.stroke();
    }
    for (const i of axes) {
      const [hx, hy] = panel.handleScreen(view, frame, i);
      const active = ctx.activeAxis === i;
      g.beginPath();
      g.arc(hx, hy, active ? 5.5 : 4, 0, 2 * Math.PI);
      g.fillStyle = ctx.axisColors ? ctx.axisColors[i] : '#ffffff';
      g.fill();
      g.lineWidth = 1.25;
      g.strokeStyle = 'rgba(30, 30, 30, 0.85)';
      g.stroke();
    }
    if (labels) {
      g.font = LABEL_FONT;
      panel.handleLabels = placeLabels(axes, (i) => panel.handleScreen(view, frame, i), [cx, cy], labels,
        (t) => g.measureText(t).width, view);
      g.textBaseline = 'middle';
      for (const lab of panel.handleLabels) {
        if (lab.leader) {
          g.lineWidth = 0.8;
          g.strokeStyle = 'rgba(120, 120, 120, 0.8)';
          g.beginPath();
          g.moveTo(lab.leader[0], lab.leader[1]);
          g.lineTo(lab.leader[2], lab.leader[3]);
          g.stroke();
        }
        g.textAlign = lab.align;
        g.lineWidth = 3;
        g.strokeStyle = 'rgba(255, 255, 255, 0.9)';
        g.strokeText(lab.text, lab.x, lab.y);
        g.fillStyle = '#222';
        g.fillText(lab.text, lab.x, lab.y);
      }
    }
  }
  panel.marked = drawMarked(g, panel, last, ctx);
  if (ctx.centroid && ctx.centroid[panel.split]) {
    const [x, y] = ctx.centroid[panel.split];
    g.lineWidth = 2;
    g.strokeStyle = '#111';
    g.fillStyle = 'rgba(255, 255, 255, 0.75)';
    g.beginPath();
    g.arc(x, y, 8, 0, 2 * Math.PI);
    g.fill();
    g.stroke();
    g.beginPath();
    g.moveTo(x - 12, y);
    g.lineTo(x + 12, y);
    g.moveTo(x, y - 12);
    g.lineTo(x, y + 12);
    g.stroke();
  }
  if (panel.brush) {
    const b = panel.brush;
    g.setLineDash([4, 3]);
    g.lineWidth = 1;
    g.strokeStyle = '#333';
    g.fillStyle = 'rgba(60, 110, 200, 0.08)';
    const x = Math.min(b.x0, b.x1), y = Math.min(b.y0, b.y1);
    g.fillRect(x, y, Math.abs(b.x1 - b.x0), Math.abs(b.y1 - b.y0));
    g.strokeRect(x, y, Math.abs(b.x1 - b.x0), Math.abs(b.y1 - b.y0));
    g.setLineDash([]);
  }
}

/**
 * The origin of the space: a faint cross where it is drawn, or, when the user has
 * panned it out of the panel, a small wedge at the edge pointing to it.
 */
function drawOrigin(g, view) {
  const [ox, oy] = view.origin;
  const m = 10;
  g.strokeStyle = 'rgba(60, 60, 60, 0.35)';
  g.fillStyle = 'rgba(60, 60, 60, 0.35)';
  g.lineWidth = 1;
  if (ox >= 0 && ox <= view.width && oy >= 0 && oy <= view.height) {
    g.beginPath();
    g.moveTo(ox - 6, oy);
    g.lineTo(ox + 6, oy);
    g.moveTo(ox, oy - 6);
    g.lineTo(ox, oy + 6);
    g.stroke();
    return;
  }
  const x = Math.max(m, Math.min(view.width - m, ox)), y = Math.max(m, Math.min(view.height - m, oy));
  const a = Math.atan2(oy - y, ox - x);
  g.beginPath();
  g.moveTo(x + 7 * Math.cos(a), y + 7 * Math.sin(a));
  g.lineTo(x + 5 * Math.cos(a + 2.4), y + 5 * Math.sin(a + 2.4));
  g.lineTo(x + 5 * Math.cos(a - 2.4), y + 5 * Math.sin(a - 2.4));
  g.closePath();
  g.fill();
}

/** The handle under (x, y) CSS px (within `radius`), or -1. */
export function hitHandle(panel, x, y, radius = 10) {
  const last = panel.last;
  if (!last || !panel.handleAxes) return -1;
  let best = -1, bestD = radius * radius;
  for (const i of panel.handleAxes) {
    const [hx, hy] = panel.handleScreen(last.view, last.frame, i);
    const d = (hx - x) ** 2 + (hy - y) ** 2;
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}
