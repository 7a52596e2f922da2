/**
 * EmbeddedDataSource: the data of an HTML export (`grandtour export RUN --html OUT.html`),
 * in the file itself: no network, so the page opens from file://.
 *
 * The table maps each URL the page asks for (`api/runs/...`, built as HttpDataSource
 * builds it) to the server's answer: `{s: status, h: headers, t: text}` for JSON or
 * `{s, h, b: base64}` for bytes (float16 slices, int16 vectors, float32 bases, PNG atlases:
 * the wire format of src/grandtour/server/wire.py). A URL the export left out (a layer,
 * epoch or split not chosen) is a 404 whose message says so.
 */

import { HttpDataSource } from '../datasource.js';
import { errorResponse, response } from './respond.js';

/** The bytes of base64 text. */
export function fromBase64(text) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(text);
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A fetch function answering from `data` (see above): `{u: table, b: {digest: base64}}`,
 * an entry `{s, h, r: digest}` naming a body that several URLs share; or the table alone. */
export function embeddedFetch(data) {
  const table = data.u ?? data;
  const blobs = data.b ?? {};
  return async (url) => {
    const key = String(url); // with its query: `?source=` names another transition
    const e = Object.hasOwn(table, key) ? table[key] : null;
    if (!e) return errorResponse(404, `this export does not include ${decodeURIComponent(key.replace(/^api\/runs\//, '').split('?')[0])}; export it with the layers, epochs and splits you want to see`);
    const b64 = e.b ?? (e.r !== undefined ? blobs[e.r] : undefined);
    return response(e.s, e.h, b64 !== undefined ? fromBase64(b64) : e.t);
  };
}

export class EmbeddedDataSource extends HttpDataSource {
  /** @param {object} data URL -> answer (see above) */
  constructor(data) {
    super('', { fetch: embeddedFetch(data) });
  }
}
