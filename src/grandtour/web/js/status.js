/**
 * The page's running report: each panel's point count (with the non-finite points
 * left out and the adversarial points shown, and what a handle stands for when it is
 * not one unit), and the status card (the space shown, what the transition shown is:
 * exact or a fit, non-finite values, the selection; for a derived run, what it is and its
 * caveat). Written only when its text changes.
 */

import { describeTransition } from './transitioninfo.js';

function setHtml(el, html) {
  if (el._html !== html) {
    el.innerHTML = html;
    el._html = html;
  }
}

/**
 * What the page says about the adversarial record chosen: where its points are (◆), or
 * why they are not drawn now (they exist at one epoch, in some layers, of one split).
 * @returns {string} '' when no record is chosen
 */
export function adversarialNote(app, s, scene) {
  if (!s.adversarial) return '';
  const rec = app.dynamics.adversarialRecord();
  if (!rec) return `Adversarial record ${s.adversarial}: loading…`;
  const r = rec.meta, m = s.meta;
  const head = `Adversarial ${s.adversarial} (${r.split}, epoch ${r.epoch})`;
  if (scene.adversarial) return `${head}: ${scene.adversarial.set.A.n} points ◆, step ${scene.adversarial.step} of ${r.steps}`;
  const layer = m.layers[scene.layerIndex].name;
  const epoch = m.epochs[Math.round(s.epochPos)];
  let why = 'loading…';
  if (!s.splits.includes(r.split)) why = `not shown: recorded on the ${r.split} split, which is hidden`;
  else if (scene.kind === 'transition') why = 'not shown during a layer transition';
  else if (!r.layers.includes(layer)) why = `not shown at ${layer}: recorded at ${r.layers.join(', ')} only`;
  else if (epoch !== r.epoch) why = `not shown at epoch ${epoch}: recorded at epoch ${r.epoch} only`;
  return `${head}: ${why}`;
}

/** Update the report for `scene`; returns the non-finite counts per split. */
export function renderStatus(app, s, scene) {
  const nonfinite = {};
  for (const [split, p] of app.panels) {
    const part = scene.splits[split];
    if (!part) continue;
    nonfinite[split] = part.nonfinite;
    const adv = part.sets.find((x) => x.adversarial);
    const h = scene.map.handle;
    const off = p.offPanel(app.selection.visibleFilter(split));
    setHtml(p.info, `${part.n.toLocaleString()} points` +
      (part.nonfinite ? ` · <span class="warn">${part.nonfinite} non-finite not drawn</span>` : '') +
      (adv ? ` · ${adv.A.n} adversarial (◆)` : '') +
      (off ? ` · <span title="points beyond the panel are drawn as rings at its edge; zoom out (-) to see them">${off} off-panel (○ at the edge)</span>` : '') +
      (scene.kind === 'layer' && h !== 1 ? ` · <span title="each axis handle marks the point h e_i">handle = ${h} units</span>` : ''));
  }
  const total = Object.values(nonfinite).reduce((a, b) => a + b, 0);
  setHtml(document.getElementById('status-nonfinite'), total
    ? `<span class="warn">Non-finite values: ${Object.entries(nonfinite).map(([k, v]) => `${k} ${v}`).join(', ')} points not drawn</span>`
    : 'No non-finite values in this view');
  const advEl = document.getElementById('status-adversarial');
  const adv = adversarialNote(app, s, scene);
  advEl.hidden = !adv;
  advEl.className = adv.includes('not shown') ? 'warn-soft' : '';
  if (advEl.textContent !== adv) advEl.textContent = adv;
  if (s.advNote !== adv) app.store.set({ advNote: adv });
  const counts = Object.entries(s.selection).filter(([, v]) => v && v.length);
  const sel = document.getElementById('status-selection');
  const selText = counts.length
    ? `Selected: ${counts.map(([k, v]) => `${v.length} ${k}`).join(', ')} — drag ⊕ to move them (Esc clears)`
    : 'Drag a rectangle to select points';
  if (sel.textContent !== selText) sel.textContent = selText;
  // A run the server derived (the article's hybrid): what it is and its caveat, while open.
  const der = s.meta.derived;
  const derEl = document.getElementById('status-derived');
  derEl.hidden = !der;
  const derText = der ? `Hybrid of ${der.layer} (${der.split}, ${der.dims} dims): ${der.caveat}` : '';
  if (derEl.textContent !== derText) {
    derEl.textContent = derText;
    derEl.title = derText; // the card clamps long notes to three lines
  }
  const L = s.meta.layers[scene.layerIndex];
  const lay = document.getElementById('status-layer');
  const layText = scene.kind === 'transition'
    ? `Transition ${scene.transition.from ? `${scene.transition.from} → ` : 'into '}${L.name} (${scene.dim}-dim common basis)`
    : `${L.name}: ${L.kind}, ${scene.dim} dims${L.reduced_dim ? ` (reduced from ${L.dim})` : ''}`;
  if (lay.textContent !== layText) lay.textContent = layText;
  const trEl = document.getElementById('status-transition');
  const d = describeTransition(scene.transition);
  trEl.hidden = !d;
  const trText = d ? `${d.what[0].toUpperCase()}${d.what.slice(1)}${d.text === 'fit' && scene.transition.note ? `: ${scene.transition.note}` : ''}` : '';
  if (trEl.textContent !== trText) {
    trEl.textContent = trText;
    trEl.title = d ? d.title : '';
  }
  trEl.className = d && d.text === 'fit' ? 'fit-note' : '';
  return nonfinite;
}
