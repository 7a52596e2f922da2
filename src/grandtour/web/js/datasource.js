/**
 * HttpDataSource: the page's only knowledge of HTTP (see the viewer contract,
 * /api/... of `grandtour serve`; the bytes and headers are read by wire.js). Everything
 * else in the page talks to this interface, so a notebook widget or a static export can
 * supply the same methods:
 *
 *   runs()                                   -> [{id, name, dataset, epochs, live}]
 *   meta(runId)                              -> {id, name, class_names, layers, splits, epochs, sizes, adversarial, ...}
 *   activations(runId, layer, epoch, split)  -> {data: Uint16Array (float16 bits, n x dim row-major), n, dim, scale, nonfinite}
 *   labels(runId, split)                     -> Int16Array (n)
 *   predictions(runId, epoch, split)         -> Int16Array (n)
 *   metrics(runId, split)                    -> {epochs, loss, accuracy, class_loss, class_accuracy}
 *   images(runId, split)                     -> {bitmap, cols, rows, cellW, cellH, n} or null
 *   transition(runId, layer, epoch, split, source?) -> {start, end (Uint16Array, n x k), n, k, scale, nonfinite,
 *                                                previous, method, exact, note, varianceKept, reduced, basis}
 *   adversarial(runId, name)                 -> {source, target, eps, epoch, split, steps, example_index, layers}
 *   adversarialLayer(runId, name, layer)     -> {data: Uint16Array (S+1, M, dim), steps1, m, dim, scale, nonfinite}
 *   adversarialPredictions(runId, name)      -> {data: Int16Array (S+1, M), steps1, m}
 *
 * Errors: a rejected promise with a `DataSourceError` carrying the HTTP status and the
 * server's message (`{"error": ...}`), so the page can show it.
 */

import * as wire from './wire.js';
import { DataSourceError } from './wire.js';

export { DataSourceError };

export class HttpDataSource {
  /**
   * @param {string} [base] URL of the server's root, where `api/runs` lives. Default '':
   *   relative to this page, so every request stays under whatever path prefix a proxy
   *   put the page at (`/proxy/8787/` -> `/proxy/8787/api/runs`). No URL the page asks
   *   for starts with "/".
   * @param {{fetch?: Function}} [options] `fetch`: the function making the requests
   *   (default: the browser's; tests pass recorded responses through it).
   */
  constructor(base = '', { fetch: fetchImpl } = {}) {
    this.base = base === '' || base.endsWith('/') ? base : `${base}/`;
    // Called unbound: the browser's fetch must not be called as a method of this object.
    // Same-origin credentials: the server's token cookie (`?token=` on the page) goes with
    // every request, as it does for the page's own scripts.
    this.fetchImpl = fetchImpl ?? ((url, opts) => fetch(url, { credentials: 'same-origin', ...opts }));
  }

  _url(...parts) {
    return `${this.base}api/runs/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;
  }

  /** A URL the server named (X-Basis: "/api/runs/..."), under this source's base: the
   * server does not know the prefix a proxy added, so its root-relative path is made
   * relative to the base. */
  _serverUrl(url) {
    return /^https?:/.test(url) ? url : `${this.base}${url.replace(/^\/+/, '')}`;
  }

  async _fetch(url, opts) {
    let res;
    try {
      res = await this.fetchImpl(url, opts);
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
    return { headers: res.headers, buf: await res.arrayBuffer() };
  }

  async runs() {
    return this._json(`${this.base}api/runs`);
  }

  async meta(runId) {
    // Re-read on every call: a run that is still training gains epochs.
    return this._json(this._url(runId, 'meta'));
  }

  async activations(runId, layer, epoch, split) {
    const { headers, buf } = await this._binary(this._url(runId, 'activations', layer, epoch, split));
    return wire.activationSlice(headers, buf, layer);
  }

  async labels(runId, split) {
    return wire.int16Vector((await this._binary(this._url(runId, 'labels', split))).buf);
  }

  async predictions(runId, epoch, split) {
    return wire.int16Vector((await this._binary(this._url(runId, 'predictions', epoch, split))).buf);
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
    const grid = wire.atlasGrid(res.headers);
    const bitmap = await createImageBitmap(await res.blob());
    return { bitmap, ...grid };
  }

  /**
   * The transition into `layer` from `source`, one of its inputs (default: its main
   * input), at `epoch`: float16 `start` then `end`, each n x k, its metadata, and the
   * orthogonal basis change(s) for re-basing the tour (`basis`, from the URL the server
   * gives in X-Basis).
   */
  async transition(runId, layer, epoch, split, source = null) {
    const url = this._url(runId, 'transition', layer, epoch, split) +
      (source == null ? '' : `?source=${encodeURIComponent(source)}`);
    const { headers, buf } = await this._binary(url);
    const t = wire.transitionSlices(headers, buf, layer);
    return { ...t, basis: await this._basis(t.basisUrl ? this._serverUrl(t.basisUrl) : `${url}/basis`) };
  }

  async _basis(url) {
    const { headers, buf } = await this._binary(url);
    return wire.bases(headers, buf);
  }

  async adversarial(runId, name) {
    return this._json(this._url(runId, 'adversarial', name));
  }

  async adversarialLayer(runId, name, layer) {
    const { headers, buf } = await this._binary(this._url(runId, 'adversarial', name, layer));
    return wire.adversarialSlice(headers, buf, `${name}/${layer}`);
  }

  async adversarialPredictions(runId, name) {
    const { headers, buf } = await this._binary(this._url(runId, 'adversarial', name, 'predictions'));
    return wire.adversarialPredictions(headers, buf);
  }
}
