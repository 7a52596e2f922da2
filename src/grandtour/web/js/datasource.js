/**
 * HttpDataSource: the page's only knowledge of HTTP (see the viewer contract,
 * /api/... of `grandtour serve`). Everything else in the page talks to this
 * interface, so a notebook widget or a static export can supply the same methods:
 *
 *   runs()                                   -> [{id, name, dataset, epochs, live}]
 *   meta(runId)                              -> {id, name, class_names, layers, splits, epochs, sizes, adversarial, ...}
 *   activations(runId, layer, epoch, split)  -> {data: Uint16Array (float16 bits, n x dim row-major), n, dim, scale, nonfinite}
 *   labels(runId, split)                     -> Int16Array (n)
 *   predictions(runId, epoch, split)         -> Int16Array (n)
 *   metrics(runId, split)                    -> {epochs, loss, accuracy, class_loss, class_accuracy}
 *   images(runId, split)                     -> {bitmap, cols, rows, cellW, cellH, n} or null
 *   transition(runId, layer, epoch, split)   -> {start, end (Uint16Array, n x k), n, k, scale, basis}
 *   adversarial(runId, name)                 -> {source, target, eps, epoch, split, steps, example_index, layers}
 *   adversarialLayer(runId, name, layer)     -> {data: Uint16Array (S+1, M, dim), steps1, m, dim, scale}
 *   adversarialPredictions(runId, name)      -> {data: Int16Array (S+1, M), steps1, m}
 *
 * Errors: a rejected promise with a `DataSourceError` carrying the HTTP status and the
 * server's message (`{"error": ...}`), so the page can show it.
 */

export class DataSourceError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = 'DataSourceError';
    this.status = status;
  }
}

function ints(header, what) {
  if (header == null) throw new DataSourceError(`the server sent no ${what} header`);
  const v = header.split(',').map((s) => Number(s.trim()));
  if (v.some((x) => !Number.isInteger(x) || x < 0)) throw new DataSourceError(`bad ${what} header: ${header}`);
  return v;
}

export class HttpDataSource {
  /** @param {string} [base] URL prefix of the API (default: this page's origin). */
  constructor(base = '') {
    this.base = base.replace(/\/$/, '');
  }

  _url(...parts) {
    return `${this.base}/api/runs/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;
  }

  async _fetch(url, opts) {
    let res;
    try {
      res = await fetch(url, opts);
    } catch (err) {
      throw new DataSourceError(`cannot reach the server (${err.message}); is \`grandtour serve\` still running?`);
    }
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`;
      try {
        const body = await res.json();
        if (body && body.error) msg = body.error;
      } catch { /* not JSON */ }
      throw new DataSourceError(msg, res.status);
    }
    return res;
  }

  async _json(url) {
    return (await this._fetch(url)).json();
  }

  async _binary(url) {
    const res = await this._fetch(url);
    return { res, buf: await res.arrayBuffer() };
  }

  async runs() {
    return this._json(`${this.base}/api/runs`);
  }

  async meta(runId) {
    // Re-read on every call: a run that is still training gains epochs.
    return this._json(this._url(runId, 'meta'));
  }

  async activations(runId, layer, epoch, split) {
    const { res, buf } = await this._binary(this._url(runId, 'activations', layer, epoch, split));
    const [n, dim] = ints(res.headers.get('X-Shape'), 'X-Shape');
    const data = new Uint16Array(buf);
    if (data.length !== n * dim) throw new DataSourceError(`activations of ${layer}: ${data.length} values for shape ${n} x ${dim}`);
    return {
      data, n, dim,
      scale: Number(res.headers.get('X-Scale') ?? 1),
      nonfinite: Number(res.headers.get('X-Nonfinite') ?? 0),
    };
  }

  async labels(runId, split) {
    const { buf } = await this._binary(this._url(runId, 'labels', split));
    return new Int16Array(buf);
  }

  async predictions(runId, epoch, split) {
    const { buf } = await this._binary(this._url(runId, 'predictions', epoch, split));
    return new Int16Array(buf);
  }

  async metrics(runId, split) {
    return this._json(this._url(runId, 'metrics', split));
  }

  /** The probe thumbnails as one sprite atlas, or null if the run has none. */
  async images(runId, split) {
    let res;
    try {
      res = await this._fetch(this._url(runId, 'images', split));
    } catch (err) {
      if (err.status === 404) return null;
      throw err;
    }
    const [cols, rows, cellW, cellH, n] = ints(res.headers.get('X-Atlas'), 'X-Atlas');
    const blob = await res.blob();
    const bitmap = await createImageBitmap(blob);
    return { bitmap, cols, rows, cellW, cellH, n };
  }

  /**
   * The transition into `layer` (from the layer before it) at `epoch`: float16 `start`
   * then `end`, each n x k, and the orthogonal basis change(s) for re-basing the tour.
   */
  async transition(runId, layer, epoch, split) {
    const url = this._url(runId, 'transition', layer, epoch, split);
    const { res, buf } = await this._binary(url);
    const [n, k] = ints(res.headers.get('X-Shape'), 'X-Shape');
    const all = new Uint16Array(buf);
    if (all.length !== 2 * n * k) throw new DataSourceError(`transition into ${layer}: ${all.length} values for 2 x ${n} x ${k}`);
    const basisUrl = res.headers.get('X-Basis') || `${url}/basis`;
    return {
      start: all.subarray(0, n * k),
      end: all.subarray(n * k),
      n, k,
      scale: Number(res.headers.get('X-Scale') ?? 1),
      basis: await this._basis(basisUrl),
    };
  }

  /**
   * The basis changes of a transition: little-endian float32 matrices, row-major and
   * concatenated, their shapes in `X-Shape` (`d_prev,d_prev,d,d`) and their names in
   * `X-Basis-Names` (`basis_in,basis_out`: orthogonal, `start[:, :d_prev] = Z_prev
   * basis_in`, `end[:, :d] = Z basis_out`). Returns `{name: {rows, cols, data}}`.
   */
  async _basis(url) {
    const full = /^https?:/.test(url) ? url : `${this.base}${url.startsWith('/') ? '' : '/'}${url}`;
    const { res, buf } = await this._binary(full);
    const shapeHeader = (res.headers.get('X-Shape') ?? '').trim();
    // "r,c;r,c" or "r,c,r,c": one (rows, cols) pair per matrix.
    const flat = shapeHeader ? ints(shapeHeader.replace(/;/g, ','), 'X-Shape') : [];
    if (flat.length % 2) throw new DataSourceError(`bad basis X-Shape: ${shapeHeader}`);
    const shapes = [];
    for (let k = 0; k < flat.length; k += 2) shapes.push([flat[k], flat[k + 1]]);
    const names = (res.headers.get('X-Basis-Names') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const values = new Float32Array(buf);
    const out = {};
    let offset = 0;
    shapes.forEach(([rows, cols], k) => {
      const data = Float64Array.from(values.subarray(offset, offset + rows * cols));
      if (data.length !== rows * cols) throw new DataSourceError(`basis ${k}: too few values for ${rows} x ${cols}`);
      out[names[k] ?? `basis${k}`] = { rows, cols, data };
      offset += rows * cols;
    });
    return out;
  }

  async adversarial(runId, name) {
    return this._json(this._url(runId, 'adversarial', name));
  }

  async adversarialLayer(runId, name, layer) {
    const { res, buf } = await this._binary(this._url(runId, 'adversarial', name, layer));
    const [steps1, m, dim] = ints(res.headers.get('X-Shape'), 'X-Shape');
    const data = new Uint16Array(buf);
    if (data.length !== steps1 * m * dim) throw new DataSourceError(`adversarial ${name}/${layer}: bad size`);
    return { data, steps1, m, dim, scale: Number(res.headers.get('X-Scale') ?? 1) };
  }

  async adversarialPredictions(runId, name) {
    const { res, buf } = await this._binary(this._url(runId, 'adversarial', name, 'predictions'));
    const data = new Int16Array(buf);
    const shape = res.headers.get('X-Shape');
    const [steps1, m] = shape ? ints(shape, 'X-Shape') : [1, data.length];
    return { data, steps1, m };
  }
}
