/**
 * A small diagram of the network: one chip per recorded layer, in order, showing its
 * width (and, for a layer shown in a fixed reduction, the reduced width and the
 * fraction of variance it keeps), joined by an edge per transition: solid when it is
 * exact, dashed (and the chip marked "fit") when it is a least-squares fit, light grey
 * until the page knows (a transition is known once it was loaded, or from the meta's
 * `transition` of a layer when the server sends it). The current layer is marked;
 * during a transition a bar under the next layer fills up. Click a chip to go to it.
 */

import { describeTransition } from './transitioninfo.js';

function pct(v) {
  return `${(100 * v).toFixed(v >= 0.995 ? 0 : 1)}%`;
}

export function bindNetwork(app) {
  const { store, actions } = app;
  const box = document.getElementById('network');
  const note = document.getElementById('network-note');
  let builtFor = null;

  function build(meta) {
    box.replaceChildren(...meta.layers.flatMap((L, i) => {
      const b = document.createElement('button');
      b.className = 'layer';
      b.dataset.index = String(i);
      const reduced = L.reduced_dim != null && L.reduced_dim !== L.dim;
      const dims = reduced ? `${L.reduced_dim} of ${L.dim}` : `${L.dim}`;
      const kept = reduced && L.variance_kept != null ? ` · ${pct(L.variance_kept)} var` : '';
      b.innerHTML = '<span class="lname"></span><small></small><span class="progress"></span>';
      b.querySelector('.lname').textContent = L.name;
      b.querySelector('small').textContent = `${dims}${kept}`;
      b.title = `${L.name}: ${L.kind}, shape ${JSON.stringify(L.shape)}, ${L.dim} dims` +
        (reduced ? `; shown in a fixed ${L.reduced_dim}-dim reduction` +
          (L.variance_kept != null ? ` keeping ${pct(L.variance_kept)} of the variance` : '') : '');
      b.addEventListener('click', () => actions.setLayer(i));
      if (i === 0) return [b];
      const edge = document.createElement('span');
      edge.className = 'edge';
      edge.dataset.to = L.name;
      return [edge, b];
    }));
    builtFor = meta;
  }

  /** Mark each edge exact or fit, from what the page knows of its transition. */
  function markEdges(s) {
    for (const edge of box.querySelectorAll('.edge')) {
      const L = s.meta.layers.find((l) => l.name === edge.dataset.to);
      const tr = s.transitions[edge.dataset.to] ?? L?.transition ?? null;
      const d = describeTransition(tr && { from: '', residual: null, note: '', ...tr });
      edge.classList.toggle('exact', !!d && d.text === 'exact');
      edge.classList.toggle('fit', !!d && d.text === 'fit');
      edge.title = d ? d.title : 'transition not loaded yet';
      edge.nextElementSibling?.classList.toggle('fit-into', !!d && d.text === 'fit');
    }
  }

  function sync(s, changed) {
    if (!s.meta) return;
    if (builtFor !== s.meta) build(s.meta);
    if (changed && !['layerPos', 'layer', 'meta', 'alignment', 'transitions'].some((k) => changed.has(k))) return;
    markEdges(s);
    const i = Math.floor(s.layerPos + 1e-9), t = s.layerPos - i;
    for (const b of box.querySelectorAll('.layer')) {
      const k = Number(b.dataset.index);
      b.classList.toggle('current', k === (t > 0.5 ? i + 1 : i));
      b.setAttribute('aria-current', String(k === i && t === 0));
      b.querySelector('.progress').style.width = k === i + 1 && t > 0 ? `${(100 * t).toFixed(1)}%` : '0';
    }
    note.textContent = s.alignment === 'missing' ? 'not aligned: layers jump' : s.alignment === 'available' ? 'aligned transitions' : '';
  }
  store.subscribe(sync);
  sync(store.get(), null);
}
