/**
 * PostMessageDataSource: the viewer inside the notebook widget's iframe asks the page that
 * holds the iframe (the widget's view, widget.js) for each URL; that page forwards the
 * request over the widget's comm to the kernel, which answers with the server's own bytes
 * (grandtour.widget.Viewer, through grandtour.export.local.LocalApi). No HTTP server.
 *
 * Messages (window.postMessage, structured clone; the body ArrayBuffer is transferred):
 *   to the parent     {gt: 'request', id, url}
 *   from the parent   {gt: 'response', id, status, headers, body} or {gt: 'response', id, error}
 */

import { HttpDataSource } from '../datasource.js';
import { response } from './respond.js';

export class PostMessageDataSource extends HttpDataSource {
  /** @param {Window} [target] the window that answers (default: the parent page) */
  constructor(target = window.parent) {
    const pending = new Map();
    let next = 0;
    const ask = (url) => new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject });
      target.postMessage({ gt: 'request', id, url: String(url) }, '*');
    });
    super('', { fetch: ask });
    window.addEventListener('message', (ev) => {
      const m = ev.data;
      if (ev.source !== target || !m || m.gt !== 'response' || !pending.has(m.id)) return;
      const { resolve, reject } = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) reject(new Error(m.error));
      else resolve(response(m.status, m.headers, m.body));
    });
  }
}
