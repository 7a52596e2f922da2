/**
 * The overlay drawn above a panel's WebGL canvas (a 2-D canvas): the origin of the
 * space shown (a faint cross), the axis handles (with class names on the layers whose
 * axes are classes), the brush rectangle and the selection's centroid, which can be
 * dragged. Everything is placed by the panel's one drawing map (viewmap.js): a
 * handle's line runs from the origin to the image of `h e_i`.
 */

const MAX_HANDLES = 48; // wider layers show their longest handles only (the others are near the origin)

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
      if (labels) {
        const dx = hx - cx, dy = hy - cy;
        const d = Math.hypot(dx, dy) || 1;
        g.font = '600 12px system-ui, sans-serif';
        g.textAlign = dx >= 0 ? 'left' : 'right';
        g.textBaseline = 'middle';
        const tx = hx + (dx / d) * 9, ty = hy + (dy / d) * 9;
        g.lineWidth = 3;
        g.strokeStyle = 'rgba(255, 255, 255, 0.9)';
        g.strokeText(labels[i], tx, ty);
        g.fillStyle = '#222';
        g.fillText(labels[i], tx, ty);
      }
    }
  }
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
