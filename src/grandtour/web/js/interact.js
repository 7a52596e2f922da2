/**
 * Pointer interaction with a panel: one implementation of each, for every panel.
 *
 * - Axis mode: press on an axis handle and drag; the tour matrix becomes
 *   `axisDrag(GT0, i, dx, dy)` with GT0 the matrix when the drag began and (dx, dy) the
 *   pointer's displacement in handle units (the handle of a unit axis has length R px).
 * - Data-point mode: drag a rectangle to select points (a click clears the
 *   selection; a click on a point marks it), then press on the selection's centroid marker and drag: the matrix
 *   becomes `pointDrag(GT0, c, dx, dy)`, c the selection's centroid (about the view
 *   mean, in the current layer's coordinates) and (dx, dy) the displacement in data units.
 * - Pan: drag with the middle button, or with Alt / Ctrl / Cmd held; the wheel zooms
 *   toward the cursor; a double click resets both. They change the drawing map's
 *   `c` and `s` (viewmap.js) for every panel alike, and nothing else.
 * - Hover shows the point's card.
 * Every position here goes through the panel's one drawing map. The tour pauses while
 * anything is dragged, and resumes after if it was playing.
 */

import { axisDrag, pointDrag } from './manipulate.js';
import { hitHandle } from './overlay.js';
import { hideTooltip } from './tooltip.js';

export function bindPanel(app, panel) {
  const cv = panel.overlay;
  let drag = null;
  let hoverAt = null;

  const local = (ev) => {
    const r = cv.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  };

  cv.addEventListener('pointerdown', (ev) => {
    if ((ev.button !== 0 && ev.button !== 1) || !panel.last) return;
    const [x, y] = local(ev);
    hideTooltip();
    const panning = ev.button === 1 || ev.altKey || ev.ctrlKey || ev.metaKey;
    const axis = panning ? -1 : hitHandle(panel, x, y);
    const cen = panning ? null : app.centroidScreen(panel.split);
    if (panning) {
      drag = { kind: 'pan', x0: x, y0: y, pan0: app.store.get().pan, R: panel.last.view.plotRadius };
    } else if (axis >= 0) {
      drag = { kind: 'axis', axis, x0: x, y0: y, GT0: app.tours.matrix, R: panel.last.view.handleRadius };
    } else if (cen && Math.hypot(cen[0] - x, cen[1] - y) <= 12) {
      const c = app.centroidVector(panel.split);
      if (!c) return;
      drag = { kind: 'point', c, x0: x, y0: y, GT0: app.tours.matrix, ppu: panel.last.view.pxPerUnit };
    } else {
      drag = { kind: 'brush', x0: x, y0: y };
      panel.brush = { x0: x, y0: y, x1: x, y1: y };
    }
    cv.setPointerCapture(ev.pointerId);
    cv.classList.toggle('grabbing', drag.kind !== 'brush');
    if (drag.kind !== 'pan') app.beginDrag(drag.kind === 'axis' ? drag.axis : -1);
    ev.preventDefault();
  });

  cv.addEventListener('pointermove', (ev) => {
    const [x, y] = local(ev);
    if (!drag) {
      hoverAt = [x, y, ev.clientX, ev.clientY];
      app.hover(panel, x, y, ev.clientX, ev.clientY);
      const over = panel.last && (hitHandle(panel, x, y) >= 0 ||
        ((c) => c && Math.hypot(c[0] - x, c[1] - y) <= 12)(app.centroidScreen(panel.split)));
      cv.classList.toggle('grab', !!over);
      return;
    }
    drag.at = [x, y];
    // At most one matrix update per frame: on a wide layer one costs O(n^3).
    if (!drag.raf) drag.raf = requestAnimationFrame(() => { if (drag) { drag.raf = 0; apply(drag, ...drag.at); } });
  });

  /** The drag's effect for the pointer at (x, y): always from the matrix at its start. */
  function apply(d, x, y) {
    if (d.kind === 'axis') {
      app.setMatrix(axisDrag(d.GT0, d.axis, (x - d.x0) / d.R, -(y - d.y0) / d.R));
    } else if (d.kind === 'point') {
      app.setMatrix(pointDrag(d.GT0, d.c, (x - d.x0) / d.ppu, -(y - d.y0) / d.ppu));
    } else if (d.kind === 'pan') {
      app.actions.setPan([d.pan0[0] + (x - d.x0) / d.R, d.pan0[1] + (y - d.y0) / d.R]);
    } else {
      panel.brush.x1 = x;
      panel.brush.y1 = y;
      app.requestDraw();
    }
  }

  const end = (ev) => {
    if (!drag) return;
    const [x, y] = local(ev);
    if (drag.raf) cancelAnimationFrame(drag.raf);
    if (drag.kind !== 'brush') apply(drag, x, y);
    if (drag.kind === 'brush') {
      const moved = Math.hypot(x - drag.x0, y - drag.y0) > 3;
      if (moved) app.brushSelect(panel, { x0: drag.x0, y0: drag.y0, x1: x, y1: y }, ev.shiftKey);
      else {
        // A click on a point marks it (in every layer and epoch); on empty space, clears.
        const hit = panel.pick(x, y, 8, app.selection.visibleFilter(panel.split));
        if (hit) app.actions.selectPoint(panel.split, hit.index);
        else {
          app.clearSelection();
          app.actions.selectPoint(null);
        }
      }
      panel.brush = null;
    }
    const kind = drag.kind;
    drag = null;
    cv.classList.remove('grabbing');
    if (kind !== 'pan') app.endDrag();
    app.requestDraw();
  };
  cv.addEventListener('pointerup', end);
  cv.addEventListener('pointercancel', end);
  cv.addEventListener('pointerleave', () => {
    hoverAt = null;
    if (!drag) hideTooltip();
  });
  cv.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    if (!panel.last) return;
    // Toward the cursor: the drawing under it stays where it is.
    const [x, y] = local(ev);
    const v = panel.last.view;
    app.actions.zoomBy(Math.exp(-ev.deltaY * 0.0015), (x - v.width / 2) / v.plotRadius, (y - v.height / 2) / v.plotRadius);
  }, { passive: false });
  cv.addEventListener('dblclick', (ev) => {
    const [x, y] = local(ev);
    if (hitHandle(panel, x, y) < 0) app.actions.resetZoom();
  });
  cv.addEventListener('auxclick', (ev) => { if (ev.button === 1) ev.preventDefault(); });

  return { hovering: () => hoverAt };
}
