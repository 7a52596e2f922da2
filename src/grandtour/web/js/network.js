/**
 * A small diagram of the network: one chip per recorded layer, showing its width (and,
 * for a layer shown in a fixed reduction, the reduced width and the fraction of variance
 * it keeps), joined by an edge per transition: solid when it is exact, dashed when it is
 * a least-squares fit, light grey until the page knows (a transition is known once it
 * was loaded, or from the meta's `transition` of a layer when the server sends it). The
 * current layer is marked; during a transition a bar under the next layer fills up.
 *
 * A chain (each layer reads the one before) is drawn as a row of chips. A graph with
 * branches is drawn in lanes (graph.js `layout`): the main path down the first lane,
 * each branch beside it, its edges meeting where the branches merge; the edges are SVG
 * paths (`.edge[data-from][data-to]`). The path the layer slider walks is marked
 * (`.on-path` chips and edges); click a chip to go to it: a chip off that path picks
 * the path through it (Dynamics.pickLayer).
 */

import { describeTransition } from './transitioninfo.js';
import { layout } from './graph.js';

const SVG = 'http://www.w3.org/2000/svg';
const ROW = 26; // px per row of the graph layout
const GUTTER = 12; // px left of each lane, for the edges that skip layers in it

function pct(v) {
  return `${(100 * v).toFixed(v >= 0.995 ? 0 : 1)}%`;
}

/** Whether the graph is the chain of its layers (drawn as a row of chips). */
function isChain(g) {
  return g.inputs.every((ins, i) => (i === 0 ? ins.length === 0 : ins.length === 1 && ins[0] === i - 1));
}

function chip(L, i) {
  const b = document.createElement('button');
  b.className = 'layer';
  b.dataset.index = String(i);
  b.dataset.name = L.name;
  const reduced = L.reduced_dim != null && L.reduced_dim !== L.dim;
  const dims = reduced ? `${L.reduced_dim} of ${L.dim}` : `${L.dim}`;
  const kept = reduced && L.variance_kept != null ? ` · ${pct(L.variance_kept)} var` : '';
  b.innerHTML = '<span class="lname"></span><small></small><span class="progress"></span>';
  b.querySelector('.lname').textContent = L.name;
  b.querySelector('small').textContent = `${dims}${kept}`;
  const ins = (L.inputs ?? []).length > 1 ? `; reads ${L.inputs.join(' + ')}` : '';
  b.title = `${L.name}: ${L.kind}, shape ${JSON.stringify(L.shape)}, ${L.dim} dims` +
    (reduced ? `; shown in a fixed ${L.reduced_dim}-dim reduction` +
      (L.variance_kept != null ? ` keeping ${pct(L.variance_kept)} of the variance` : '') : '') + ins;
  return b;
}

export function bindNetwork(app) {
  const { store, actions } = app;
  const box = document.getElementById('network');
  const note = document.getElementById('network-note');
  let builtFor = null;
  let graphMode = false;
  let svg = null;
  let chips = [];

  const graphOf = () => app.dynamics.graph();

  function build(g) {
    chips = g.layers.map((L, i) => {
      const b = chip(L, i);
      b.addEventListener('click', () => actions.pickLayer(i));
      return b;
    });
    graphMode = !isChain(g);
    box.classList.toggle('graph', graphMode);
    if (!graphMode) {
      box.removeAttribute('style');
      box.replaceChildren(...chips.flatMap((b, i) => {
        if (i === 0) return [b];
        const edge = document.createElement('span');
        edge.className = 'edge';
        edge.dataset.from = g.layers[i - 1].name;
        edge.dataset.to = g.layers[i].name;
        return [edge, b];
      }));
      svg = null;
    } else {
      const { lanes, pos } = layout(g.inputs, g.path);
      Object.assign(box.style, {
        display: 'grid', position: 'relative', gap: '0', gridAutoRows: `${ROW}px`,
        gridTemplateColumns: `repeat(${lanes}, minmax(0, 1fr))`, maxHeight: '60vh', overflowY: 'auto',
      });
      chips.forEach((b, i) => {
        Object.assign(b.style, {
          gridRow: String(pos[i].row + 1), gridColumn: String(pos[i].lane + 1), margin: `2px 2px 2px ${GUTTER}px`,
          flexDirection: 'row', alignItems: 'baseline', gap: '4px', whiteSpace: 'nowrap', minWidth: '0',
          padding: '1px 5px', zIndex: '1',
        });
      });
      svg = document.createElementNS(SVG, 'svg');
      svg.setAttribute('class', 'edges');
      Object.assign(svg.style, { position: 'absolute', left: '0', top: '0', pointerEvents: 'none', overflow: 'visible' });
      svg.style.zIndex = '0';
      for (const [i, ins] of g.inputs.entries()) {
        for (const j of ins) {
          const p = document.createElementNS(SVG, 'path');
          p.setAttribute('class', 'edge');
          p.setAttribute('fill', 'none');
          p.dataset.from = g.layers[j].name;
          p.dataset.to = g.layers[i].name;
          p.dataset.fromIndex = String(j);
          p.dataset.toIndex = String(i);
          const t = document.createElementNS(SVG, 'title');
          p.append(t);
          svg.append(p);
        }
      }
      box.replaceChildren(svg, ...chips);
      placeEdges(pos);
    }
    builtFor = g.layers;
  }

  /** Draw each edge between its chips' boxes (re-run when the box changes size). */
  function placeEdges(pos = null) {
    if (!svg) return;
    const g = graphOf(store.get());
    pos = pos ?? layout(g.inputs, g.path).pos;
    const r = (el) => ({ l: el.offsetLeft, t: el.offsetTop, w: el.offsetWidth, h: el.offsetHeight });
    svg.setAttribute('width', String(box.scrollWidth));
    svg.setAttribute('height', String(box.scrollHeight));
    for (const p of svg.querySelectorAll('.edge')) {
      const j = Number(p.dataset.fromIndex), i = Number(p.dataset.toIndex);
      const a = r(chips[j]), b = r(chips[i]);
      const ax = a.l + a.w / 2, bx = b.l + b.w / 2, ay = a.t + a.h, by = b.t;
      let d;
      if (pos[i].lane === pos[j].lane && pos[i].row === pos[j].row + 1) d = `M${ax},${ay} L${bx},${by}`;
      else if (pos[i].lane === pos[j].lane) { // skips layers of its lane: round their left side
        const x = a.l - GUTTER / 2, y0 = a.t + a.h / 2, y1 = b.t + b.h / 2;
        d = `M${a.l},${y0} C${x - 4},${y0} ${x - 4},${y1} ${b.l},${y1}`;
      } else if (pos[i].lane > pos[j].lane) { // a branch leaves: out of the side, down its lane
        const y0 = a.t + a.h / 2;
        d = `M${a.l + a.w},${y0} C${bx},${y0} ${bx},${y0} ${bx},${by}`;
      } else { // a branch merges: down its lane, into the side
        const y1 = b.t + b.h / 2;
        d = `M${ax},${ay} C${ax},${y1} ${ax},${y1} ${b.l + b.w},${y1}`;
      }
      p.setAttribute('d', d);
    }
  }
  if (typeof ResizeObserver !== 'undefined') new ResizeObserver(() => placeEdges()).observe(box);

  /** Mark each edge exact or fit, from what the page knows of its transition. */
  function markEdges(s, g) {
    const onPath = new Set(g.path.slice(1).map((i, at) => `${g.layers[g.path[at]].name}>${g.layers[i].name}`));
    for (const edge of box.querySelectorAll('.edge')) {
      const key = `${edge.dataset.from}>${edge.dataset.to}`;
      const L = g.layers.find((l) => l.name === edge.dataset.to);
      const main = L && (L.inputs?.[0] ?? edge.dataset.from) === edge.dataset.from;
      const tr = s.transitions[key] ?? (main ? L?.transition : null) ?? null;
      const d = describeTransition(tr && { from: edge.dataset.from, residual: null, note: '', ...tr });
      const exact = !!d && d.text === 'exact', fit = !!d && d.text === 'fit';
      const title = d ? d.title : `${edge.dataset.from} → ${edge.dataset.to}: transition not loaded yet`;
      edge.classList.toggle('exact', exact);
      edge.classList.toggle('fit', fit);
      edge.classList.toggle('on-path', onPath.has(key));
      if (edge instanceof SVGElement) {
        edge.setAttribute('stroke', fit ? '#d97706' : exact ? '#7b8494' : '#c5cad3');
        edge.setAttribute('stroke-width', onPath.has(key) ? '2.5' : '1.5');
        if (fit) edge.setAttribute('stroke-dasharray', '4 3');
        else edge.removeAttribute('stroke-dasharray');
        edge.querySelector('title').textContent = title;
      } else {
        edge.title = title;
        edge.nextElementSibling?.classList.toggle('fit-into', fit);
      }
    }
  }

  function sync(s, changed) {
    if (!s.meta) return;
    const g = graphOf(s);
    if (builtFor !== g.layers) build(g);
    if (changed && !['layerPos', 'layer', 'meta', 'alignment', 'transitions'].some((k) => changed.has(k))) return;
    markEdges(s, g);
    const i = Math.floor(s.layerPos + 1e-9), t = s.layerPos - i;
    const cur = g.path[t > 0.5 ? i + 1 : i], at = g.path[i], next = g.path[i + 1];
    const onPath = new Set(g.path);
    for (const b of chips) {
      const k = Number(b.dataset.index);
      b.classList.toggle('current', k === cur);
      b.classList.toggle('on-path', onPath.has(k));
      if (graphMode) b.style.opacity = onPath.has(k) ? '' : '0.62';
      b.setAttribute('aria-current', String(k === at && t === 0));
      b.querySelector('.progress').style.width = k === next && t > 0 ? `${(100 * t).toFixed(1)}%` : '0';
    }
    note.textContent = s.alignment === 'missing' ? 'not aligned: layers jump' : s.alignment === 'available' ? 'aligned transitions' : '';
  }
  store.subscribe(sync);
  sync(store.get(), null);
}
