/**
 * The page's controls: the top bar (tour play/pause and speed, points or images,
 * splits, fit each epoch, zoom, find, the View menu, fullscreen, presets, help) and the timeline (epoch, layer
 * and adversarial sliders, each with play; the transition's badge: exact or fit). Each
 * control calls an action (app.js) and redraws itself from the state.
 */

import { describeTransition } from './transitioninfo.js';

const $ = (id) => document.getElementById(id);

function fmtLayer(layer) {
  if (!layer) return '';
  const dim = layer.reduced_dim ? `${layer.reduced_dim} of ${layer.dim}` : `${layer.dim}`;
  return `${layer.name} (${layer.kind}, ${dim} dims)`;
}

export function bindControls(app) {
  const { store, actions } = app;
  const el = {
    play: $('tour-play'), speed: $('tour-speed'), speedLabel: $('tour-speed-label'),
    points: $('display-points'), images: $('display-images'), splits: $('split-toggles'),
    fitEpoch: $('fit-epoch'), badge: $('transition-badge'), guided: $('tour-guided'), guideLabel: $('tour-guided-label'),
    zoomIn: $('zoom-in'), zoomOut: $('zoom-out'), zoomReset: $('zoom-reset'), fullscreen: $('fullscreen'),
    save: $('preset-save'), load: $('preset-load'), file: $('preset-file'), link: $('preset-link'),
    help: $('help-button'), helpClose: $('help-close'), helpBox: $('help'),
    epochPlay: $('epoch-play'), epochSlider: $('epoch-slider'), epochLabel: $('epoch-label'),
    layerPlay: $('layer-play'), layerSlider: $('layer-slider'), layerLabel: $('layer-label'),
    advTrack: $('adv-track'), advSelect: $('adv-select'), advPlay: $('adv-play'), advSlider: $('adv-slider'), advLabel: $('adv-label'),
    runSelect: $('run-select'), runName: $('run-name'),
    notice: $('notice'), noticeText: $('notice-text'), noticeClose: $('notice-close'),
    error: $('error'),
    search: $('search'), searchForm: $('search-form'), searchResult: $('search-result'),
    menuButton: $('view-menu-button'), menu: $('view-menu'), colorBy: $('color-by'),
    onlyWrong: $('only-wrong'), showHandles: $('show-handles'), advLines: $('adv-lines'),
    pointSize: $('point-size'), pointSizeLabel: $('point-size-label'), opacity: $('opacity'), opacityLabel: $('opacity-label'),
    exportPng: $('export-png'), exportSvg: $('export-svg'),
  };

  // Find: a point by its index, a class by label or name.
  el.searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    el.searchResult.textContent = actions.search(el.search.value);
    el.search.blur();
  });
  // The View menu: colours, size and opacity, handles, adversarial lines, export.
  el.menuButton.addEventListener('click', () => actions.toggleViewMenu());
  document.addEventListener('pointerdown', (ev) => {
    if (store.get().viewMenu && !ev.target.closest('.menu')) actions.toggleViewMenu(false);
  });
  for (const b of el.colorBy.querySelectorAll('button')) b.addEventListener('click', () => actions.setColorBy(b.dataset.mode));
  el.onlyWrong.addEventListener('click', () => actions.toggleOnlyMisclassified());
  el.showHandles.addEventListener('click', () => actions.toggleHandles());
  el.advLines.addEventListener('click', () => actions.toggleAdvLines());
  el.pointSize.addEventListener('input', () => actions.setPointSize(Number(el.pointSize.value)));
  el.opacity.addEventListener('input', () => actions.setOpacity(Number(el.opacity.value)));
  el.exportPng.addEventListener('click', () => actions.exportPng());
  el.exportSvg.addEventListener('click', () => actions.exportSvg());

  el.play.addEventListener('click', () => actions.togglePlay());
  el.speed.addEventListener('input', () => actions.setSpeed(Number(el.speed.value)));
  el.points.addEventListener('click', () => actions.setDisplay('points'));
  el.images.addEventListener('click', () => actions.setDisplay('images'));
  el.fitEpoch.addEventListener('click', () => actions.toggleFitEpoch());
  el.guided.addEventListener('click', () => actions.toggleGuided());
  el.zoomIn.addEventListener('click', () => actions.zoomBy(1.25));
  el.zoomOut.addEventListener('click', () => actions.zoomBy(0.8));
  el.zoomReset.addEventListener('click', () => actions.resetZoom());
  el.fullscreen.addEventListener('click', () => actions.toggleFullscreen());
  el.save.addEventListener('click', () => actions.savePreset());
  el.load.addEventListener('click', () => el.file.click());
  el.file.addEventListener('change', () => {
    if (el.file.files[0]) actions.loadPresetFile(el.file.files[0]);
    el.file.value = '';
  });
  el.link.addEventListener('click', () => actions.copyLink());
  el.help.addEventListener('click', () => actions.toggleHelp(true));
  el.helpClose.addEventListener('click', () => actions.toggleHelp(false));
  el.helpBox.addEventListener('click', (ev) => { if (ev.target === el.helpBox) actions.toggleHelp(false); });
  el.noticeClose.addEventListener('click', () => store.set({ notice: '' }));
  el.runSelect.addEventListener('change', () => actions.openRun(el.runSelect.value));

  el.epochPlay.addEventListener('click', () => actions.toggleEpochPlay());
  el.epochSlider.addEventListener('input', () => actions.setEpoch(Math.round(Number(el.epochSlider.value))));
  el.layerPlay.addEventListener('click', () => actions.toggleLayerPlay());
  el.layerSlider.addEventListener('input', () => actions.setLayer(Math.round(Number(el.layerSlider.value))));
  el.advPlay.addEventListener('click', () => actions.toggleAdvPlay());
  el.advSlider.addEventListener('input', () => actions.setAdvStep(Math.round(Number(el.advSlider.value))));
  el.advSelect.addEventListener('change', () => actions.setAdversarial(el.advSelect.value || null));
  // A slider keeps no keyboard focus: the page's arrow keys step epochs and layers.
  // Its thumb follows the state except while the pointer holds it (not while it merely
  // has focus: a click on the track jumps the value, and the thumb must show the jump).
  const held = new Set();
  for (const s of [el.epochSlider, el.layerSlider, el.advSlider, el.speed, el.pointSize, el.opacity]) {
    s.addEventListener('change', () => s.blur());
    s.addEventListener('pointerdown', () => held.add(s));
  }
  window.addEventListener('pointerup', () => {
    if (!held.size) return;
    held.clear();
    sync(store.get(), null);
  }, true);
  // A dropdown chosen with the mouse gives the keys back to the page (arrows step layers).
  for (const sel of [el.advSelect, el.runSelect, document.getElementById('chart-split')]) {
    sel.addEventListener('change', () => sel.blur());
  }

  let splitsBuiltFor = null, runsBuilt = null, advBuiltFor = null;

  function sync(s, changed) {
    const all = !changed;
    const has = (...keys) => all || keys.some((k) => changed.has(k));
    if (has('playing')) el.play.setAttribute('aria-pressed', String(s.playing));
    if (has('speed')) {
      if (Number(el.speed.value) !== s.speed) el.speed.value = String(s.speed);
      el.speedLabel.textContent = `${s.speed.toFixed(2)} rad/s`;
    }
    if (has('display', 'meta')) {
      el.points.setAttribute('aria-pressed', String(s.display === 'points'));
      el.images.setAttribute('aria-pressed', String(s.display === 'images'));
      const hasImages = !!(s.meta && Object.values(s.meta.images ?? {}).some(Boolean));
      el.images.disabled = !hasImages;
      el.images.title = hasImages ? 'Show thumbnails (i toggles)' : 'This run has no thumbnails';
    }
    if (has('meta', 'splits') && s.meta) {
      if (splitsBuiltFor !== s.meta) {
        el.splits.replaceChildren(...s.meta.splits.map((split) => {
          const b = document.createElement('button');
          b.className = 'btn';
          b.dataset.split = split;
          b.textContent = split;
          b.title = `Show the ${split} split`;
          b.addEventListener('click', () => actions.toggleSplit(split));
          return b;
        }));
        el.splits.hidden = s.meta.splits.length < 2;
        splitsBuiltFor = s.meta;
      }
      for (const b of el.splits.children) b.setAttribute('aria-pressed', String(s.splits.includes(b.dataset.split)));
    }
    if (has('runs', 'runId', 'meta')) {
      // Live: the open run's own meta is the newer word (re-read while it is polled).
      const live = (r) => (r.id === s.runId && s.meta && s.meta.live !== undefined ? s.meta.live : r.live);
      const key = s.runs.map((r) => `${r.id}:${live(r)}`).join('|');
      if (runsBuilt !== key) {
        el.runSelect.replaceChildren(...s.runs.map((r) => new Option(`${r.name}${live(r) ? ' (live)' : ''}`, r.id)));
        runsBuilt = key;
      }
      el.runSelect.hidden = s.runs.length < 2;
      el.runSelect.value = s.runId ?? '';
    }
    if (has('meta') && s.meta) {
      el.runName.textContent = `${s.meta.name} · ${s.meta.dataset}${s.meta.live ? ' · live' : ''}`;
      el.runName.hidden = s.runs.length > 1;
      document.title = `${s.meta.name} · Grand Tour`;
    }
    if (has('meta', 'epochPos', 'epoch', 'epochPlaying') && s.meta) {
      const E = s.meta.epochs.length;
      el.epochSlider.max = String(Math.max(0, E - 1));
      el.epochSlider.disabled = E < 2;
      if (!held.has(el.epochSlider)) el.epochSlider.value = String(s.epochPos);
      const i = Math.round(s.epochPos);
      el.epochLabel.textContent = E ? `epoch ${s.meta.epochs[Math.min(E - 1, i)]}  (${i + 1} of ${E})` : 'no epochs yet';
      el.epochPlay.setAttribute('aria-pressed', String(s.epochPlaying));
      el.epochPlay.innerHTML = s.epochPlaying ? '&#10074;&#10074;' : '&#9654;';
    }
    if (has('meta', 'layerPos', 'layer', 'layerPlaying') && s.meta) {
      const L = s.meta.layers.length;
      el.layerSlider.max = String(Math.max(0, L - 1));
      el.layerSlider.disabled = L < 2;
      if (!held.has(el.layerSlider)) el.layerSlider.value = String(s.layerPos);
      const i = Math.floor(s.layerPos + 1e-9), t = s.layerPos - i;
      el.layerLabel.textContent = t > 1e-9
        ? `${s.meta.layers[i].name} → ${s.meta.layers[i + 1].name}  ${(100 * t).toFixed(0)}%`
        : fmtLayer(s.meta.layers[i]);
      el.layerLabel.title = el.layerLabel.textContent;
      el.layerPlay.setAttribute('aria-pressed', String(s.layerPlaying));
      el.layerPlay.innerHTML = s.layerPlaying ? '&#10074;&#10074;' : '&#9654;';
    }
    if (has('meta', 'adversarial', 'advPos', 'advPlaying', 'advSteps', 'advNote') && s.meta) {
      const names = s.meta.adversarial ?? [];
      el.advTrack.hidden = names.length === 0;
      if (advBuiltFor !== s.meta) {
        el.advSelect.replaceChildren(new Option('off', ''), ...names.map((n) => new Option(n, n)));
        advBuiltFor = s.meta;
      }
      el.advSelect.value = s.adversarial ?? '';
      const S = s.advSteps ?? 0;
      el.advSlider.max = String(S);
      el.advSlider.disabled = !s.adversarial;
      el.advPlay.disabled = !s.adversarial;
      if (!held.has(el.advSlider)) el.advSlider.value = String(s.advPos);
      // Why its points are not drawn (another epoch, layer or split), beside the step.
      const why = /not shown (.*)$/.exec(s.advNote ?? '');
      el.advLabel.textContent = s.adversarial ? `step ${Math.round(s.advPos)} of ${S}${why ? ` · not shown ${why[1]}` : ''}` : '';
      el.advLabel.title = s.advNote ?? '';
      el.advPlay.setAttribute('aria-pressed', String(s.advPlaying));
      el.advPlay.innerHTML = s.advPlaying ? '&#10074;&#10074;' : '&#9654;';
    }
    if (has('fitEpoch')) el.fitEpoch.setAttribute('aria-pressed', String(s.fitEpoch));
    if (has('guided', 'guide', 'meta')) {
      el.guided.setAttribute('aria-pressed', String(s.guided));
      const g = s.guided ? s.guide : null;
      el.guideLabel.hidden = !g;
      if (g) {
        const names = g.classes.map((c) => s.meta?.class_names[c] ?? c);
        el.guideLabel.textContent = g.index.toFixed(2);
        el.guideLabel.title = `Guided tour: separating ${names.length > 6 ? `${names.length} classes` : names.join(', ')} `
          + `in the ${g.split} split (${g.points === g.of ? `${g.points} points` : `a sample of ${g.points} of ${g.of} points`}); `
          + 'LDA index 1 - det(within) / det(total) of the view shown: 0 no separation, 1 each class a point';
      }
    }
    if (has('viewMenu')) {
      el.menu.hidden = !s.viewMenu;
      el.menuButton.setAttribute('aria-expanded', String(s.viewMenu));
    }
    if (has('colorBy')) for (const b of el.colorBy.children) b.setAttribute('aria-pressed', String(b.dataset.mode === s.colorBy));
    if (has('onlyMisclassified')) el.onlyWrong.setAttribute('aria-pressed', String(s.onlyMisclassified));
    if (has('showHandles')) el.showHandles.setAttribute('aria-pressed', String(s.showHandles));
    if (has('advLines', 'meta')) {
      el.advLines.setAttribute('aria-pressed', String(s.advLines));
      el.advLines.hidden = !(s.meta?.adversarial?.length);
    }
    if (has('pointSize')) {
      if (!held.has(el.pointSize)) el.pointSize.value = String(s.pointSize);
      el.pointSizeLabel.textContent = `${s.pointSize.toFixed(2)}×`;
    }
    if (has('opacity')) {
      if (!held.has(el.opacity)) el.opacity.value = String(s.opacity);
      el.opacityLabel.textContent = `${Math.round(100 * s.opacity)}%`;
    }
    if (has('transition')) {
      const d = describeTransition(s.transition);
      el.badge.hidden = !d;
      if (d) {
        el.badge.textContent = d.text;
        el.badge.className = `badge ${s.transition.exact ? 'exact' : 'fit'}`;
        el.badge.title = d.title;
      }
    }
    if (has('help')) el.helpBox.hidden = !s.help;
    if (has('notice')) {
      el.notice.hidden = !s.notice;
      el.noticeText.textContent = s.notice;
    }
    if (has('status', 'error')) {
      el.error.hidden = s.status !== 'error';
      el.error.textContent = s.error;
    }
  }

  store.subscribe(sync);
  sync(store.get(), null);
}
