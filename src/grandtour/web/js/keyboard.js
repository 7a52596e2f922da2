/**
 * Keyboard paths for everything the page does, and the `?` help overlay that lists
 * them (built from the same table, so the two never disagree).
 */

export const SHORTCUTS = [
  [[' '], 'Play / pause the tour', (a) => a.togglePlay()],
  [['ArrowRight'], 'Next epoch', (a) => a.stepEpoch(1)],
  [['ArrowLeft'], 'Previous epoch', (a) => a.stepEpoch(-1)],
  [['ArrowUp'], 'Next layer (animated when aligned)', (a) => a.stepLayer(1)],
  [['ArrowDown'], 'Previous layer', (a) => a.stepLayer(-1)],
  [['e'], 'Play / pause the epochs', (a) => a.toggleEpochPlay()],
  [['l'], 'Play / pause the layers', (a) => a.toggleLayerPlay()],
  [['a'], 'Play / pause the adversarial steps', (a) => a.toggleAdvPlay()],
  [[']'], 'Next adversarial step', (a) => a.stepAdv(1)],
  [['['], 'Previous adversarial step', (a) => a.stepAdv(-1)],
  [['.', '>'], 'Faster tour', (a) => a.speedBy(1.25)],
  [[',', '<'], 'Slower tour', (a) => a.speedBy(0.8)],
  [['+', '='], 'Zoom in', (a) => a.zoomBy(1.25)],
  [['-', '_'], 'Zoom out', (a) => a.zoomBy(0.8)],
  [['0'], 'Reset zoom and pan', (a) => a.resetZoom()],
  [['p'], 'Fit each epoch on / off (off: one scale for all epochs)', (a) => a.toggleFitEpoch()],
  [['d'], 'Guided tour on / off: toward views separating the classes shown', (a) => a.toggleGuided()],
  [['i'], 'Points / images', (a) => a.toggleDisplay()],
  [['c'], 'Colour by label / prediction / correctness', (a) => a.cycleColorBy()],
  [['m'], 'Show only the misclassified points', (a) => a.toggleOnlyMisclassified()],
  [['h'], 'Show / hide the axis handles', (a) => a.toggleHandles()],
  [['o'], 'Lines from adversarial points to their originals', (a) => a.toggleAdvLines()],
  [['9'], 'Larger points', (a) => a.pointSizeBy(1.25)],
  [['8'], 'Smaller points', (a) => a.pointSizeBy(0.8)],
  [['k'], 'More opaque points', (a) => a.opacityBy(0.1)],
  [['j'], 'More transparent points', (a) => a.opacityBy(-0.1)],
  [['/'], 'Find a point (123) or a class (label:3)', (a) => a.focusSearch()],
  [['v'], 'The View menu (colours, size, handles, export)', (a) => a.toggleViewMenu()],
  [['x'], 'Export the view as PNG', (a) => a.exportPng()],
  [['g'], 'Export the view as SVG', (a) => a.exportSvg()],
  [['t'], 'Show / hide the test split', (a) => a.toggleSplit('test')],
  [['f'], 'Fullscreen', (a) => a.toggleFullscreen()],
  [['s'], 'Save this view to a JSON file', (a) => a.savePreset()],
  [['u'], 'Put this view in the URL (to share)', (a) => a.copyLink()],
  [['Escape'], 'Close this help or the menu / clear the selection and the marked point', (a) => a.escape()],
  [['?'], 'This help', (a) => a.toggleHelp()],
];

const SELECT_KEYS = new Set([' ', 'Enter', 'ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight', 'Home', 'End', 'PageUp', 'PageDown']);

const LABELS = { ' ': 'Space', ArrowRight: '→', ArrowLeft: '←', ArrowUp: '↑', ArrowDown: '↓', Escape: 'Esc' };

export function bindKeyboard(app) {
  const table = document.getElementById('help-table');
  table.replaceChildren(...SHORTCUTS.map(([keys, what]) => {
    const tr = document.createElement('tr');
    const k = document.createElement('td');
    k.innerHTML = keys.map((key) => `<kbd>${(LABELS[key] ?? key).replace(/</g, '&lt;').replace(/>/g, '&gt;')}</kbd>`).join(' ');
    const d = document.createElement('td');
    d.textContent = what;
    tr.append(k, d);
    return tr;
  }));
  const byKey = new Map();
  for (const [keys, , fn] of SHORTCUTS) for (const key of keys) byKey.set(key, fn);

  window.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const tag = t && t.tagName;
    // The help dialog is modal: behind it nothing moves; Esc and ? close it.
    if (app.store.get().help) {
      if (ev.key === 'Escape' || ev.key === '?') {
        ev.preventDefault();
        app.actions.toggleHelp(false);
      } else if (ev.key !== 'Tab' && !(tag === 'BUTTON' && (ev.key === 'Enter' || ev.key === ' '))) {
        ev.preventDefault();
      }
      return;
    }
    // Typing in a field, or a select/button with its own keys, keeps them.
    if ((tag === 'INPUT' && t.type !== 'range' && t.type !== 'checkbox') || tag === 'TEXTAREA') {
      if (ev.key === 'Escape') t.blur();
      return;
    }
    // A dropdown reached with Tab keeps the keys that choose in it; the page's letters still work.
    if (tag === 'SELECT' && (SELECT_KEYS.has(ev.key) || ev.key.length > 1)) return;
    if ((tag === 'BUTTON' || (t && t.getAttribute && t.getAttribute('role') === 'button')) && (ev.key === ' ' || ev.key === 'Enter')) return;
    const fn = byKey.get(ev.key) ?? byKey.get(ev.key.toLowerCase());
    if (!fn) return;
    ev.preventDefault();
    if (tag === 'INPUT') t.blur(); // a focused slider must not also move
    fn(app.actions);
  });
}
