/**
 * The class legend: hover highlights a class (the others fade), click hides or shows
 * it, shift-click selects its points (then the selection's centroid can be dragged).
 * Keyboard: the entries are buttons in the tab order; Enter/space toggles. Below the
 * entries, what the points' colours mean when they are not the labels (colour by
 * prediction or correctness, only the misclassified).
 */

import { CORRECT, WRONG, classCss } from './colors.js';

const rgb = (c) => `rgb(${c.join(', ')})`;

export function bindLegend(app) {
  const { store, actions } = app;
  const list = document.getElementById('legend');
  const mode = document.createElement('p');
  mode.id = 'legend-mode';
  mode.className = 'legend-mode';
  list.after(mode);
  let builtFor = null;

  function describe(s) {
    const parts = [];
    if (s.colorBy === 'prediction') parts.push('<span>Colour: the class predicted</span>');
    if (s.colorBy === 'correctness') {
      parts.push(`<span><i class="dot" style="background:${rgb(CORRECT)}"></i>correct</span>`,
        `<span><i class="dot" style="background:${rgb(WRONG)}"></i>misclassified</span>`);
    }
    if (s.onlyMisclassified) parts.push('<span>only the misclassified</span>');
    mode.innerHTML = parts.join('');
    mode.hidden = parts.length === 0;
  }

  function build(meta) {
    const C = meta.class_names.length;
    list.replaceChildren(...meta.class_names.map((name, c) => {
      const li = document.createElement('li');
      li.dataset.class = String(c);
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      li.title = `${name}: hover to highlight, click to hide or show, shift-click to select`;
      li.innerHTML = '<span class="swatch"></span><span class="name"></span><span class="count"></span>';
      li.querySelector('.swatch').style.background = classCss(c, C);
      li.querySelector('.swatch').style.borderColor = classCss(c, C);
      li.querySelector('.name').textContent = name;
      li.addEventListener('mouseenter', () => actions.highlightClass(c));
      li.addEventListener('mouseleave', () => actions.highlightClass(-1));
      li.addEventListener('focus', () => actions.highlightClass(c));
      li.addEventListener('blur', () => actions.highlightClass(-1));
      li.addEventListener('click', (ev) => {
        if (ev.shiftKey) actions.selectClass(c, ev.ctrlKey || ev.metaKey);
        else actions.toggleClass(c);
      });
      li.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          ev.stopPropagation();
          if (ev.shiftKey) actions.selectClass(c, false);
          else actions.toggleClass(c);
        }
      });
      return li;
    }));
    builtFor = meta;
  }

  function sync(s, changed) {
    if (!s.meta) return;
    if (builtFor !== s.meta && (!builtFor || builtFor.class_names.join('\u0000') !== s.meta.class_names.join('\u0000'))) build(s.meta);
    builtFor = s.meta;
    if (!changed || changed.has('colorBy') || changed.has('onlyMisclassified')) describe(s);
    if (changed && !['hidden', 'highlight', 'meta', 'classCounts'].some((k) => changed.has(k))) return;
    for (const li of list.children) {
      const c = Number(li.dataset.class);
      li.classList.toggle('hidden-class', s.hidden.has(c));
      li.classList.toggle('highlight', s.highlight === c);
      li.setAttribute('aria-pressed', String(!s.hidden.has(c)));
      const n = s.classCounts?.[c];
      li.querySelector('.count').textContent = n != null ? String(n) : '';
    }
  }
  store.subscribe(sync);
  sync(store.get(), null);
}
