/**
 * What is on screen, and how it moves: training dynamics (epochs), layer dynamics
 * (transitions between layers) and adversarial dynamics (FGSM steps).
 *
 * Each is a position along its axis: `epochPos` (an index into meta.epochs),
 * `layerPos` (i + t: the transition from layer i into layer i + 1 at t) and `advPos`
 * (a step). A fractional position mixes two slices in the shader with the factor t.
 * Positions move towards their targets (or play) at a rate in units per second of
 * elapsed time, and never enter a segment whose data is not loaded yet (they wait for
 * it). Epochs and layers do not move at the same time: a transition is computed at one
 * epoch.
 *
 * Crossing a layer boundary re-bases the tour with the transition's basis changes
 * (see tours.js); without alignment the layer view jumps, and the page says why.
 *
 * Each scene carries its drawing map (viewmap.js): `{extent, handle}`, from the layer's
 * extent over all of its epochs (loaded before the layer is first drawn, so the scale
 * never changes while its epochs play), or from the epoch shown with "fit each epoch";
 * across a transition the two layers' maps are mixed geometrically in t. A transition's
 * scene also says what it is (`transition`: exact or a fit, method, residual, note).
 *
 * Layers follow one path through the network's graph (graph.js): `meta.layers` is the
 * path shown, `meta.graph` the whole graph, and the transition into the path's layer i
 * comes from its layer i - 1 (`source`, when that is not the layer's main input: a
 * branch of a merge). Into a merge, the scene's transition says where each input comes
 * from (`from`: the source, and the other inputs growing in; `inputs`).
 */

import { SliceCache } from './slices.js';
import { transpose } from './linalg.js';
import { extentEpochs, geometric, handleUnit, normQuantile, spreadOf } from './viewmap.js';
import { transitionInfo } from './transitioninfo.js';
import { RATES, advance, segmentStep } from './motion.js';
import { pathThrough, viewMeta } from './graph.js';

export { RATES, advance } from './motion.js';

const isInt = (x) => Number.isInteger(x);

export class Dynamics {
  constructor(store, cache, tours) {
    this.store = store;
    this.cache = cache;
    this.tours = tours;
    this.current = null; // {kind: 'layer', li} | {kind: 'tr', to}
    this._flags = new Map(); // split -> {A, B, selection, flags}
    this._extents = new Map(); // run|layer|epochs -> extent r
  }

  /** Forget the spaces (a new run). */
  reset() {
    this.current = null;
    this._flags.clear();
    this._extents.clear();
    this._scene = null;
  }

  meta() {
    return this.store.get().meta;
  }

  /** Show layer li now, without animation (opening a run, a preset, a jump). */
  jumpTo(li) {
    this.current = { kind: 'layer', li };
    this.tours.use(this.meta().layers[li].name, this.layerDim(li));
  }

  /**
   * Follow `path` (indices into meta.graph.layers) from now on and go to its layer
   * `goTo` (a graph index on it): the layer shown stays shown when it is on the new
   * path (the view then moves along the path), else the view jumps to `goTo`.
   */
  usePath(path, goTo) {
    const s = this.store.get(), m = s.meta;
    const shown = this.graph().path[Math.round(s.layerPos)];
    const meta = viewMeta({ ...m, graph: this.graph() }, path);
    const target = path.indexOf(goTo);
    const at = path.indexOf(shown);
    this._scene = null;
    if (at >= 0 && isInt(s.layerPos)) {
      this.store.set({ meta, layer: target, layerPos: at, layerPlaying: false });
      this.current = { kind: 'layer', li: at };
    } else {
      this.store.set({ meta, layer: target, layerPos: target, layerPlaying: false });
      this.jumpTo(target);
    }
  }

  /** Go to layer k of the graph (an index into meta.graph.layers), along a path through it. */
  pickLayer(k) {
    const g = this.graph();
    const at = g.path.indexOf(k);
    if (at >= 0) return this.store.set({ layer: at, layerPlaying: false });
    return this.usePath(pathThrough(g.inputs, g.path, k), k);
  }

  /**
   * The whole graph and the path shown (`meta.graph`, see graph.js); a meta set without
   * one (not through viewMeta) is shown as the chain of its layers, as before the graph.
   */
  graph() {
    const m = this.meta();
    if (m.graph) return m.graph;
    if (this._graphFor !== m) {
      this._graphFor = m;
      this._graph = { layers: m.layers, inputs: m.layers.map((_, i) => (i ? [i - 1] : [])), path: m.layers.map((_, i) => i) };
    }
    return this._graph;
  }

  /** The input the transition into path layer `to` starts from: null for its main input. */
  sourceOf(to) {
    const g = this.graph();
    const prev = g.path[to - 1], ins = g.inputs[g.path[to]];
    return prev === undefined || ins[0] === prev ? null : g.layers[prev].name;
  }

  /** The diagram's key of the edge into path layer `to`: "from>to". */
  edgeKey(to) {
    const m = this.meta();
    return `${m.layers[to - 1]?.name ?? ''}>${m.layers[to].name}`;
  }

  layerDim(li) {
    const L = this.meta().layers[li];
    return L.reduced_dim ?? L.dim;
  }

  /** The epoch number used to request layer li at epoch index ei (static layers: one). */
  epochOf(li, ei) {
    const m = this.meta();
    return m.layers[li].static ? m.epochs[0] : m.epochs[ei];
  }

  /** The slices of layer li at epoch index ei for every shown split, or null (loading). */
  layerSlices(li, ei) {
    const s = this.store.get(), m = s.meta;
    const out = {};
    let ok = true;
    for (const split of s.splits) {
      const epoch = this.epochOf(li, ei);
      const key = SliceCache.actKey(s.runId, m.layers[li].name, epoch, split);
      const v = this.cache.peek(key);
      if (v === undefined) {
        ok = false;
        this.cache.activations(s.runId, m.layers[li].name, epoch, split).catch((err) => this._fail(err));
      } else {
        out[split] = v;
      }
    }
    return ok ? out : null;
  }

  /**
   * The extent r of layer li (see viewmap.js): the largest 99th-percentile row norm over
   * its epochs and every split, the same for all its epochs; or null while loading. A
   * server that knows it sends it as the layer's `extent` in the run's meta.
   */
  layerExtent(li) {
    const s = this.store.get(), m = s.meta, L = m.layers[li];
    if (Number.isFinite(L.extent) && L.extent > 0) return L.extent;
    const key = `${s.runId}|${L.name}|${m.epochs.length}`;
    const hit = this._extents.get(key);
    if (hit !== undefined) return hit;
    const bytes = m.splits.reduce((b, split) => b + (m.sizes?.[split] ?? 0) * this.layerDim(li) * 2, 0);
    const epochs = L.static ? [0] : extentEpochs(m.epochs.length, bytes);
    let r = 0, ok = true;
    for (const ei of epochs) {
      for (const split of m.splits) {
        const epoch = this.epochOf(li, ei);
        const v = this.cache.peek(SliceCache.actKey(s.runId, L.name, epoch, split));
        if (v === undefined) {
          ok = false;
          this.cache.activations(s.runId, L.name, epoch, split).catch((err) => this._fail(err));
        } else {
          r = Math.max(r, normQuantile(v));
        }
      }
    }
    if (!ok) return null;
    r = r > 0 ? r : 1;
    this._extents.set(key, r);
    return r;
  }

  /** The extent of layer li at epoch index ei alone (shown splits): "fit each epoch". */
  epochExtent(li, ei) {
    const sl = this.layerSlices(li, ei);
    if (!sl) return null;
    const r = Math.max(0, ...Object.values(sl).map((v) => normQuantile(v)));
    return r > 0 ? r : 1;
  }

  /**
   * The data units mapped to the plot radius (`r f(dim)`) and the handle length `h` of
   * layer li, at epoch position `epochPos` when fitting each epoch; null while loading.
   */
  layerMap(li, epochPos) {
    const R = this.layerExtent(li);
    if (R === null) return null;
    let r = R;
    if (this.store.get().fitEpoch) {
      const E = this.meta().epochs.length;
      const i0 = Math.floor(epochPos), t = epochPos - i0;
      const a = this.epochExtent(li, i0);
      const b = t > 0 ? this.epochExtent(li, Math.min(E - 1, i0 + 1)) : a;
      if (a === null || b === null) return null;
      r = geometric(a, b, t);
    }
    return { extent: r * spreadOf(this.layerDim(li)), handle: handleUnit(R) };
  }

  /**
   * The transition into layer `to` at epoch index ei for every shown split:
   * an object split -> {start, end, basis}, null while loading, or 'missing'.
   */
  transitionSlices(to, ei) {
    const s = this.store.get(), m = s.meta;
    const out = {};
    let ok = true;
    for (const split of s.splits) {
      const epoch = m.epochs[ei];
      const source = this.sourceOf(to);
      const key = SliceCache.transitionKey(s.runId, m.layers[to].name, epoch, split, source);
      const err = this.cache.error(key);
      if (err) {
        this._alignmentMissing(err);
        return 'missing';
      }
      const v = this.cache.peek(key);
      if (v === undefined) {
        ok = false;
        this.cache.transition(s.runId, m.layers[to].name, epoch, split, source).catch(() => {});
      } else {
        out[split] = v;
      }
    }
    if (ok && this.store.get().alignment !== 'available') this.store.set({ alignment: 'available' });
    const edge = this.edgeKey(to);
    if (ok && !this.store.get().transitions[edge]) {
      // What the network diagram draws for this edge (a fit: dashed).
      const info = transitionInfo(Object.values(out));
      this.store.set({ transitions: { ...this.store.get().transitions, [edge]: info } });
    }
    return ok ? out : null;
  }

  _alignmentMissing(err) {
    const s = this.store.get();
    if (s.alignment === 'missing') return;
    this.store.set({
      alignment: 'missing',
      notice: `Layer transitions are not available (${err.message}). ` +
        'The layer slider jumps between layers instead of animating them.',
    });
  }

  _fail(err) {
    this.store.set({ status: 'error', error: err.message });
  }

  /** The adversarial record shown, if its data is loaded: {meta, predictions} or null. */
  adversarialRecord() {
    const s = this.store.get();
    if (!s.adversarial) return null;
    const v = this.cache.peek(`adv|${s.runId}|${s.adversarial}`);
    if (v === undefined) this.cache.adversarial(s.runId, s.adversarial).catch((err) => this._fail(err));
    return v ?? null;
  }

  /** Advance every position by dt seconds; re-base or switch the tour at boundaries. */
  update(dt) {
    const s = this.store.get(), m = s.meta;
    if (!m || m.epochs.length === 0 || !s.splits.length) return;
    const E = m.epochs.length, L = m.layers.length;
    const patch = {};
    let { epochPos, layerPos, advPos } = s;
    if (epochPos > E - 1) epochPos = E - 1;

    // Epochs (only while on a layer, not inside a transition).
    const li = Math.round(layerPos);
    if (isInt(layerPos)) {
      const target = s.epochPlaying ? E - 1 : s.epoch;
      const rate = s.epochPlaying ? RATES.epochPlay : Math.max(4, 3 * Math.abs(target - epochPos));
      epochPos = advance(epochPos, target, rate, dt, (from, to) => this.layerMap(li, from) !== null &&
        this.layerSlices(li, from) !== null && this.layerSlices(li, to) !== null);
      if (s.epochPlaying) {
        patch.epoch = Math.floor(epochPos + 1e-9);
        if (epochPos >= E - 1) patch.epochPlaying = false;
      }
      if (epochPos + 1 < E && isInt(epochPos)) this.layerSlices(li, Math.min(E - 1, epochPos + 1)); // prefetch
    }

    // Layers (only at a whole epoch), through as many transitions as dt allows: the
    // tour is re-based at each boundary crossed.
    if (isInt(epochPos)) {
      const target = s.layerPlaying ? L - 1 : s.layer;
      const rate = s.layerPlaying ? RATES.layerPlay : Math.max(1.2, 1.5 * Math.abs(target - layerPos));
      let left = dt;
      for (let guard = 0; layerPos !== target && left > 1e-12 && guard < 4 * L + 4; guard++) {
        if (isInt(layerPos)) {
          const dir = Math.sign(target - layerPos);
          const tr = this.transitionSlices(dir > 0 ? layerPos + 1 : layerPos, epochPos);
          if (tr === 'missing') {
            layerPos = target; // jump: no animation without alignment
            break;
          }
          if (tr === null || this.layerSlices(layerPos + dir, epochPos) === null ||
            this.layerMap(layerPos, epochPos) === null || this.layerMap(layerPos + dir, epochPos) === null) break;
        }
        const from = layerPos;
        ({ pos: layerPos, left } = segmentStep(layerPos, target, rate, left));
        if (left > 1e-12 && layerPos !== target) {
          if (isInt(from)) this._resolveSpace((from + layerPos) / 2, epochPos); // into the transition
          this._resolveSpace(layerPos, epochPos); // out of it, at the boundary
        }
      }
      if (s.layerPlaying) {
        patch.layer = Math.floor(layerPos + 1e-9);
        if (layerPos >= L - 1) patch.layerPlaying = false;
      }
    }

    // Adversarial steps.
    const rec = this.adversarialRecord();
    if (rec) {
      const S = rec.meta.steps;
      const target = s.advPlaying ? S : Math.min(s.advStep, S);
      const rate = s.advPlaying ? RATES.advPlay : Math.max(20, 4 * Math.abs(target - advPos));
      advPos = advance(advPos, target, rate, dt, () => true);
      if (s.advPlaying) {
        patch.advStep = Math.floor(advPos + 1e-9);
        if (advPos >= S) patch.advPlaying = false;
      }
    }

    Object.assign(patch, { epochPos, layerPos, advPos });
    // Waiting: a position wants to move but stood still (its data is loading).
    this.waiting = (epochPos === s.epochPos && epochPos !== (s.epochPlaying ? E - 1 : s.epoch) && isInt(layerPos)) ||
      (layerPos === s.layerPos && layerPos !== (s.layerPlaying ? L - 1 : s.layer) && isInt(epochPos));
    this.store.set(patch);
    this._resolveSpace();
  }

  /** Make the tour's space match layerPos, re-basing across a boundary when possible. */
  _resolveSpace(layerPos = this.store.get().layerPos, epochPos = this.store.get().epochPos) {
    const m = this.meta();
    const desired = isInt(layerPos) ? { kind: 'layer', li: layerPos } : { kind: 'tr', to: Math.floor(layerPos) + 1 };
    const cur = this.current;
    if (cur && cur.kind === desired.kind && cur.li === desired.li && cur.to === desired.to) return;
    const ei = Math.round(epochPos);
    let done = false;
    if (cur && this.tours.tour) {
      try {
        done = this._rebase(cur, desired, ei);
      } catch (err) {
        console.warn(`grandtour: re-basing failed, the view jumps: ${err.message}`);
      }
    }
    if (!done) {
      if (desired.kind === 'layer') this.tours.use(m.layers[desired.li].name, this.layerDim(desired.li));
      else {
        const tr = this.transitionSlices(desired.to, ei);
        const k = tr && tr !== 'missing' ? Object.values(tr)[0].k : this.layerDim(desired.to);
        this.tours.use(`transition:${m.layers[desired.to].name}`, k);
      }
    }
    this.current = desired;
  }

  _rebase(cur, desired, ei) {
    const m = this.meta();
    if (cur.kind === 'layer' && desired.kind === 'tr') {
      const tr = this.transitionSlices(desired.to, ei);
      if (!tr || tr === 'missing') return false;
      const t = Object.values(tr)[0];
      const fromStart = desired.to === cur.li + 1;
      if (!fromStart && desired.to !== cur.li) return false;
      const { start, end } = basisChanges(t);
      const B = fromStart ? start : end;
      if (!B || B.rows !== this.tours.tour.ndim || B.cols !== t.k) return false;
      this.tours.rebaseInto(`transition:${m.layers[desired.to].name}`, t.k, transpose(B));
      return true;
    }
    if (cur.kind === 'tr' && desired.kind === 'layer') {
      const tr = this.transitionSlices(cur.to, ei);
      if (!tr || tr === 'missing') return false;
      const t = Object.values(tr)[0];
      const toEnd = desired.li === cur.to;
      if (!toEnd && desired.li !== cur.to - 1) return false;
      const { start, end } = basisChanges(t);
      const B = toEnd ? end : start;
      const dim = this.layerDim(desired.li);
      if (!B || B.rows !== dim || B.cols !== this.tours.tour.ndim) return false;
      this.tours.rebaseInto(m.layers[desired.li].name, dim, B);
      return true;
    }
    return false;
  }

  /**
   * What to draw now, per shown split: `{sets: [{key, A, B, mix, ...}], nonfinite}`, the
   * view statistics (mean and radius of the genuine points), or null while loading.
   */
  scene() {
    const s = this.store.get(), m = s.meta;
    if (!m || !this.current || !this.tours.tour) return null;
    // The same inputs give the same scene object: the app redraws only when it changes.
    const key = [s.runId, this.current.kind, this.current.li, this.current.to, s.epochPos, s.layerPos,
      s.advPos, s.adversarial, s.splits.join(), s.fitEpoch, this.tours.tour.ndim, this._cacheVersion(),
      s.colorBy !== 'label' && !s.hidden.has(s.highlight) ? s.highlight : -1].join('|'); // the last: the legend's emphasis flags
    if (this._scene && this._sceneKey === key && this._sceneSel === s.selection) return this._scene;
    const scene = this._buildScene();
    if (scene) {
      this._scene = scene;
      this._sceneKey = key;
      this._sceneSel = s.selection;
    }
    return scene;
  }

  /** Changes when a slice the scene may use has arrived. */
  _cacheVersion() {
    return this.cache.version;
  }

  _buildScene() {
    const s = this.store.get(), m = s.meta;
    const cur = this.current;
    const per = {};
    let kind, layerName, map, transition = null;
    if (cur.kind === 'layer') {
      const i0 = Math.floor(s.epochPos), t = s.epochPos - i0;
      const a = this.layerSlices(cur.li, i0);
      const b = t > 0 ? this.layerSlices(cur.li, Math.min(i0 + 1, m.epochs.length - 1)) : null;
      map = this.layerMap(cur.li, s.epochPos);
      if (!a || (t > 0 && !b) || !map) return null;
      for (const split of s.splits) {
        const B = b && b[split] !== a[split] ? b[split] : null; // a static layer: one slice
        per[split] = { A: a[split], B, mix: B ? t : 0 };
      }
      kind = 'layer';
      layerName = m.layers[cur.li].name;
    } else {
      const ei = Math.round(s.epochPos);
      const tr = this.transitionSlices(cur.to, ei);
      const ma = this.layerMap(cur.to - 1, ei), mb = this.layerMap(cur.to, ei);
      if (!tr || tr === 'missing' || !ma || !mb) return null;
      const t = s.layerPos - (cur.to - 1);
      for (const split of s.splits) per[split] = { A: tr[split].start, B: tr[split].end, mix: t };
      // The zoom changes at a constant rate from one layer's map to the next.
      map = { extent: geometric(ma.extent, mb.extent, t), handle: geometric(ma.handle, mb.handle, t) };
      transition = this._mergeInfo(cur.to, transitionInfo(Object.values(tr)));
      kind = 'transition';
      layerName = m.layers[cur.to].name;
    }
    const dim = this.tours.tour.ndim;
    for (const p of Object.values(per)) {
      if (p.A.dim !== dim || (p.B && p.B.dim !== dim)) return null; // space switch pending
    }
    const splits = {};
    for (const split of s.splits) {
      const p = per[split];
      const nonfinite = countNonfinite(p);
      splits[split] = {
        sets: [{ key: 'genuine', A: p.A, B: p.mix > 0 ? p.B : null, mix: p.mix, flags: this.flags(split, p) }],
        nonfinite,
        n: p.A.n,
      };
    }
    const adv = kind === 'layer' ? this._adversarialSet(cur.li) : null;
    if (adv && splits[adv.split]) splits[adv.split].sets.push(adv.set);
    return {
      kind, layerName, layerIndex: cur.kind === 'layer' ? cur.li : cur.to, dim, splits, map, transition,
      adversarial: adv,
    };
  }

  /**
   * A transition into a merge (a layer of several inputs) says where each comes from:
   * `inputs` (every input, main first), `from` the source shown at t = 0 and how the
   * others enter (added in, or concatenated growing from 0).
   */
  _mergeInfo(to, info) {
    const m = this.meta(), g = this.graph();
    const ins = g.inputs[g.path[to]].map((j) => g.layers[j].name);
    if (ins.length < 2) return info;
    const source = m.layers[to - 1].name;
    const others = ins.filter((n) => n !== source).join(' + ');
    const kind = m.layers[to].kind;
    const how = ['add', 'sub'].includes(kind) ? 'added in' : ['cat', 'stack'].includes(kind)
      ? 'concatenated, growing from 0' : 'the other inputs';
    return { ...info, from: `${source} (+ ${others}: ${how})`, source, inputs: ins };
  }

  /**
   * Flags of the genuine points of a split (shaders.js): finite (bit 0), selected (bit 1)
   * and, when the colours are not the labels (colour by prediction or correctness), of
   * the class the legend highlights (bit 4: drawn on top, not faded): the legend's
   * entries always mean the labelled classes, as hiding and selecting do.
   */
  flags(split, p) {
    const s = this.store.get();
    const sel = s.selection[split] ?? null;
    const hl = s.colorBy !== 'label' && s.highlight >= 0 && !s.hidden.has(s.highlight) ? s.highlight : -1;
    const labels = hl >= 0 ? this.labelsOf?.(split) ?? null : null;
    const B = p.mix > 0 ? p.B : null;
    const c = this._flags.get(split);
    if (c && c.A === p.A && c.B === B && c.sel === sel && c.hl === hl && c.labels === labels) return c.flags;
    const n = p.A.n;
    const flags = new Uint8Array(n); // a new array: the renderer re-uploads when it changes
    const a = p.A.mask, b = B ? B.mask : null;
    for (let k = 0; k < n; k++) flags[k] = (a[k] && (!b || b[k])) ? 1 : 0;
    if (sel) for (const k of sel) if (k < n) flags[k] |= 2;
    if (labels) for (let k = 0; k < Math.min(n, labels.length); k++) if (labels[k] === hl) flags[k] |= 16;
    this._flags.set(split, { A: p.A, B, sel, hl, labels, flags });
    return flags;
  }

  _adversarialSet(li) {
    const s = this.store.get(), m = s.meta;
    const rec = this.adversarialRecord();
    if (!rec || !s.splits.includes(rec.meta.split)) return null;
    const layer = m.layers[li].name;
    if (!rec.meta.layers.includes(layer)) return null;
    if (!isInt(s.epochPos) || m.epochs[s.epochPos] !== rec.meta.epoch) return null;
    const steps = this.cache.peek(`advl|${s.runId}|${s.adversarial}|${layer}`);
    if (steps === undefined) {
      this.cache.adversarialLayer(s.runId, s.adversarial, layer).catch((err) => this._fail(err));
      return null;
    }
    const S = steps.length - 1;
    const pos = Math.min(s.advPos, S);
    const s0 = Math.floor(pos), t = pos - s0;
    const A = steps[s0], B = t > 0 ? steps[Math.min(s0 + 1, S)] : null;
    if (A.dim !== this.tours.tour.ndim) return null;
    const step = Math.round(pos);
    const P = rec.predictions;
    const labels = new Int16Array(P.m);
    for (let j = 0; j < P.m; j++) labels[j] = Math.max(0, P.data[step * P.m + j]);
    const flags = new Uint8Array(A.n);
    for (let j = 0; j < A.n; j++) flags[j] = (A.mask[j] && (!B || B.mask[j])) ? 5 : 4;
    return {
      split: rec.meta.split,
      step,
      labels,
      set: { key: 'adversarial', A, B, mix: t, flags, labels, adversarial: true },
    };
  }
}

/**
 * The basis changes of a transition as `{start (d_prev x k), end (d x k)}`:
 * `start = X_prev start`, `end = X end` (`k` columns, zero-padded on the narrower side).
 * The server sends the alignment's square orthogonal `basis_in` (d_prev x d_prev) and
 * `basis_out` (d x d), padded here with zero columns to k = max(d_prev, d).
 */
export function basisChanges(t) {
  const b = t.basis ?? {};
  const pad = (M) => {
    if (!M) return null;
    if (M.cols === t.k) return M;
    if (M.cols > t.k) return null;
    const out = { rows: M.rows, cols: t.k, data: new Float64Array(M.rows * t.k) };
    for (let i = 0; i < M.rows; i++) for (let j = 0; j < M.cols; j++) out.data[i * t.k + j] = M.data[i * M.cols + j];
    return out;
  };
  return {
    start: pad(b.basis_in ?? b.start_basis ?? null),
    end: pad(b.basis_out ?? b.end_basis ?? null),
  };
}

function countNonfinite(p) {
  if (!(p.mix > 0 && p.B)) return p.A.nonfinite;
  let c = 0;
  for (let k = 0; k < p.A.n; k++) if (!(p.A.mask[k] && p.B.mask[k])) c++;
  return c;
}

