/**
 * The page's data cache: every slice it draws, loaded once through the data source,
 * with what the CPU needs to know about it (which rows are finite, the mean and
 * radius the view is centred and scaled by). A slice is the renderer's unit of
 * upload (see gl/scatter.js): `{data, n, dim, scale, nonfinite, mask, stats}`.
 *
 * Requests are de-duplicated (a Promise per key) and the least recently used slices
 * are dropped beyond a byte budget.
 */

import { finiteRows, rowStats } from './float16.js';

const BYTE_BUDGET = 1024 * 2 ** 20;
let nextId = 1;

/** Make a slice from float16 bits (n x dim); `stats` is computed on first use. */
export function makeSlice(data, n, dim, scale = 1, extra = {}) {
  const { mask, nonfinite } = finiteRows(data, n, dim);
  let stats = null;
  return {
    id: nextId++, data, n, dim, scale, mask, nonfinite, ...extra,
    get stats() {
      if (stats === null) stats = rowStats(data, n, dim, scale, mask);
      return stats;
    },
  };
}

export class SliceCache {
  constructor(source) {
    this.source = source;
    this._entries = new Map(); // key -> {promise, value, bytes, used}
    this._tick = 0;
    this._bytes = 0;
    this.version = 0; // bumped whenever a request completes
  }

  _get(key, load, bytesOf = () => 0) {
    let e = this._entries.get(key);
    if (e) {
      e.used = ++this._tick;
      return e.promise;
    }
    e = { value: undefined, error: null, bytes: 0, used: ++this._tick };
    e.promise = load().then((value) => {
      e.value = value;
      this.version++;
      e.bytes = bytesOf(value);
      this._bytes += e.bytes;
      this._evict(key);
      return value;
    }, (err) => {
      e.error = err;
      this.version++;
      throw err;
    });
    e.promise.catch(() => {}); // errors are read by whoever asked; never unhandled
    this._entries.set(key, e);
    return e.promise;
  }

  /** The loaded value for `key` now, or undefined (never waits). */
  peek(key) {
    const e = this._entries.get(key);
    if (!e) return undefined;
    e.used = ++this._tick;
    return e.value;
  }

  /** The error a request for `key` ended with, or null. */
  error(key) {
    return this._entries.get(key)?.error ?? null;
  }

  _evict(keep) {
    if (this._bytes <= BYTE_BUDGET) return;
    const list = [...this._entries.entries()].filter(([, e]) => e.value !== undefined)
      .sort((a, b) => a[1].used - b[1].used);
    for (const [k, e] of list) {
      if (this._bytes <= BYTE_BUDGET) break;
      if (k === keep) continue;
      this._entries.delete(k);
      this._bytes -= e.bytes;
    }
  }

  /** Forget everything (another run was opened). */
  clear() {
    this._entries.clear();
    this._bytes = 0;
  }

  static actKey(runId, layer, epoch, split) {
    return `act|${runId}|${layer}|${epoch}|${split}`;
  }

  activations(runId, layer, epoch, split) {
    return this._get(SliceCache.actKey(runId, layer, epoch, split), async () => {
      const a = await this.source.activations(runId, layer, epoch, split);
      return makeSlice(a.data, a.n, a.dim, a.scale, { serverNonfinite: a.nonfinite, layer, epoch, split });
    }, (s) => s.data.byteLength);
  }

  static transitionKey(runId, layer, epoch, split, source = null) {
    return `tr|${runId}|${layer}|${epoch}|${split}${source == null ? '' : `|${source}`}`;
  }

  /**
   * The transition into `layer` from `source` (null: its main input): `{start, end
   * (slices), basis, n, k, info}`, `info` saying what it is: `{previous, method, exact,
   * residual, note}`.
   */
  transition(runId, layer, epoch, split, source = null) {
    return this._get(SliceCache.transitionKey(runId, layer, epoch, split, source), async () => {
      const t = await (source == null ? this.source.transition(runId, layer, epoch, split)
        : this.source.transition(runId, layer, epoch, split, source));
      return {
        start: makeSlice(t.start, t.n, t.k, t.scale, { layer, epoch, split, part: 'start' }),
        end: makeSlice(t.end, t.n, t.k, t.scale, { layer, epoch, split, part: 'end' }),
        basis: t.basis, n: t.n, k: t.k,
        info: {
          previous: t.previous ?? '', method: t.method ?? '', exact: t.exact !== false, note: t.note ?? '',
          residual: residualOf(t),
        },
      };
    }, (t) => 2 * t.start.data.byteLength);
  }

  labels(runId, split) {
    return this._get(`labels|${runId}|${split}`, () => this.source.labels(runId, split));
  }

  predictions(runId, epoch, split) {
    return this._get(`pred|${runId}|${epoch}|${split}`, () => this.source.predictions(runId, epoch, split));
  }

  metrics(runId, split, version = 0) {
    return this._get(`metrics|${runId}|${split}|${version}`, () => this.source.metrics(runId, split));
  }

  images(runId, split) {
    return this._get(`images|${runId}|${split}`, async () => {
      const atlas = await this.source.images(runId, split);
      if (atlas) atlas.grey = isGrey(atlas.bitmap);
      return atlas;
    });
  }

  adversarial(runId, name) {
    return this._get(`adv|${runId}|${name}`, async () => {
      const [meta, preds] = await Promise.all([
        this.source.adversarial(runId, name),
        this.source.adversarialPredictions(runId, name),
      ]);
      return { meta, predictions: preds };
    });
  }

  /** One slice per FGSM step of the record's points in `layer` (step 0: genuine). */
  adversarialLayer(runId, name, layer) {
    return this._get(`advl|${runId}|${name}|${layer}`, async () => {
      const a = await this.source.adversarialLayer(runId, name, layer);
      const per = a.m * a.dim;
      const steps = [];
      for (let s = 0; s < a.steps1; s++) {
        steps.push(makeSlice(a.data.subarray(s * per, (s + 1) * per), a.m, a.dim, a.scale, { layer, step: s }));
      }
      return steps;
    }, (steps) => steps.reduce((b, s) => b + s.data.byteLength, 0));
  }
}

/**
 * A transition's relative residual: the data source's `residual` (X-Residual), else the
 * one the alignment writes into its note ("relative residual 0.0123"), else null.
 */
export function residualOf(t) {
  if (Number.isFinite(t.residual)) return t.residual;
  const m = /relative residual ([0-9.]+(?:e[-+]?[0-9]+)?)/i.exec(t.note ?? '');
  return m ? Number(m[1]) : null;
}

/** Whether a thumbnail atlas is grey (MNIST-like): then strokes are tinted by class. */
function isGrey(bitmap) {
  try {
    const w = Math.min(bitmap.width, 256), h = Math.min(bitmap.height, 256);
    const c = new OffscreenCanvas(w, h).getContext('2d');
    c.drawImage(bitmap, 0, 0);
    const px = c.getImageData(0, 0, w, h).data;
    for (let k = 0; k < px.length; k += 4) {
      if (Math.abs(px[k] - px[k + 1]) > 8 || Math.abs(px[k] - px[k + 2]) > 8) return false;
    }
    return true;
  } catch {
    return false;
  }
}
