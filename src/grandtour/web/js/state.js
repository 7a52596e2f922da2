/**
 * The one place where the page's state lives: a small object that views subscribe to.
 *
 * `store.set(patch)` merges a shallow patch and calls every subscriber with
 * `(state, changed)`, `changed` being the Set of keys whose value changed (by `!==`).
 * Views never write each other's DOM: they set state, and redraw from it.
 *
 * Mutable collections (Sets, typed arrays) are replaced, never mutated in place, so
 * that a change is seen.
 */

/** The initial state of the page (what a preset or a test can rely on). */
export function initialState() {
  return {
    runs: [],            // [{id, name, dataset, epochs, live}]
    runId: null,
    meta: null,          // the run's meta (see the viewer contract)
    layer: 0,            // index of the target layer in meta.layers
    layerPos: 0,         // displayed layer position: i + t is the transition i -> i+1 at t
    epoch: 0,            // index of the target epoch in meta.epochs
    epochPos: 0,         // displayed epoch position (float: interpolated between epochs)
    splits: [],          // splits shown side by side
    playing: true,       // the Grand Tour runs
    speed: 0.25,         // tour speed, radians per second
    guided: false,       // the guided tour (guide.js): toward views separating the classes shown
    guide: null,         // the guided search under way: {classes, points, of, split, index}, or null
    epochPlaying: false,
    layerPlaying: false,
    adversarial: null,   // name of the adversarial record shown, or null
    advStep: 0,          // target step
    advPos: 0,           // displayed step (float)
    advPlaying: false,
    display: 'points',   // 'points' | 'images'
    hidden: new Set(),   // hidden class indices
    highlight: -1,       // class highlighted by the legend hover, -1: none
    selection: {},       // split -> Int32Array of selected probe rows
    zoom: 1,             // the user's zoom of the drawing map (viewmap.js); 1: fitted
    pan: [0, 0],         // the origin's offset from the panels' centre, in plot radii (y down)
    fitEpoch: false,     // "fit each epoch": scale to the epoch shown, not to all of the layer's
    colorBy: 'label',    // 'label' | 'prediction' | 'correctness' (pointcolors.js)
    onlyMisclassified: false, // draw only the points whose prediction is not their label
    pointSize: 1,        // the user's factor on the dots' size
    opacity: 0.85,       // the dots' opacity (drawn once, on white)
    showHandles: true,   // the axis handles and their labels
    selectedPoint: null, // {split, index}: one point marked in its panel across layers and epochs
    advLines: false,     // lines from the adversarial points back to their originals
    viewMenu: false,     // the top bar's "View" menu is open
    transition: null,    // the transition shown: {from, method, exact, residual, note}, or null
    transitions: {},     // layer -> what its incoming transition is, once loaded (network diagram)
    notice: '',          // a message for the user (e.g. alignment missing)
    advNote: '',         // what the page says about the adversarial record: where, or why not shown
    nonfinite: {},       // split -> number of points left out of the current drawing
    alignment: 'unknown', // 'unknown' | 'available' | 'missing'
    chartSplit: null,
    dragging: false,
    help: false,
    status: 'loading',   // 'loading' | 'ready' | 'error'
    error: '',
  };
}

export class Store {
  constructor(state = initialState()) {
    this.state = state;
    this._subs = new Set();
  }

  get() {
    return this.state;
  }

  /** Merge `patch`; notify subscribers of the changed keys (if any). */
  set(patch) {
    const changed = new Set();
    for (const [k, v] of Object.entries(patch)) {
      if (this.state[k] !== v) changed.add(k);
    }
    if (changed.size === 0) return changed;
    this.state = { ...this.state, ...patch };
    for (const fn of this._subs) fn(this.state, changed);
    return changed;
  }

  /** Call `fn(state, changed)` on every change; returns an unsubscribe function. */
  subscribe(fn) {
    this._subs.add(fn);
    return () => this._subs.delete(fn);
  }
}
