/**
 * A small diagram of the network: one chip per recorded layer, in order, showing its
 * width (and, for a layer shown in a fixed reduction, the reduced width and the
 * fraction of variance it keeps). The current layer is marked; during a transition a
 * bar under the next layer fills up. Click a chip to go to that layer.
 */

function pct(v) {
  return `${(100 * v).toFixed(v >= 0.995 ? 0 : 1)}%`;
}

export function bindNetwork(app) {
  const { store, actions } = app;
  const box = document.getElementById('network');
  const note = document.getElementById('network-note');
  let builtFor = null;

  function build(meta) {
    box.replaceChildren(...meta.layers.map((L, i) => {
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
      return b;
    }));
    builtFor = meta;
  }

  function sync(s, changed) {
    if (!s.meta) return;
    if (builtFor !== s.meta) build(s.meta);
    if (changed && !['layerPos', 'layer', 'meta', 'alignment'].some((k) => changed.has(k))) return;
    const i = Math.floor(s.layerPos + 1e-9), t = s.layerPos - i;
    for (const b of box.children) {
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
