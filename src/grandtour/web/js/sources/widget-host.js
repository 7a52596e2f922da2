/**
 * The notebook widget's view (anywidget ESM; grandtour.widget.Viewer loads this file as
 * `_esm`). It puts the viewer page in an <iframe srcdoc> (its own document: the page's
 * ids and styles cannot meet the notebook's, and several viewers can share a notebook),
 * forwards the page's data requests over the widget's comm to the kernel and the answers
 * back (binary buffers, transferred), and keeps the model's traits and the page's state
 * in step (see bridge.js for the page side).
 *
 *   kernel -> view   {type: 'response', id, status, headers}, buffers [body]
 *   view -> kernel   {type: 'request', id, url}
 */

const TRAITS = ['layer', 'epoch', 'playing', 'matrix', 'selection', 'splits'];

function render({ model, el }) {
  const frame = document.createElement('iframe');
  // Scripts only: an opaque origin, so the page cannot reach the notebook's document.
  frame.setAttribute('sandbox', 'allow-scripts allow-downloads allow-popups');
  frame.setAttribute('allow', 'fullscreen; clipboard-write');
  frame.setAttribute('title', 'Grand Tour viewer');
  frame.className = 'grandtour-widget';
  frame.style.cssText = 'width: 100%; border: 0; display: block;';
  const size = () => { frame.style.height = `${model.get('height')}px`; };
  size();
  frame.srcdoc = model.get('_page');
  el.appendChild(frame);

  const toPage = (msg, transfer = []) => frame.contentWindow && frame.contentWindow.postMessage(msg, '*', transfer);
  let fromPage = false; // true while the model is set from what the page said: do not send it back
  let ready = false;

  const onKernel = (msg, buffers) => {
    if (!msg || msg.type !== 'response') return;
    let body = null;
    if (buffers && buffers.length) {
      const b = buffers[0];
      const view = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      body = view.slice().buffer; // a buffer of its own, transferred to the page
    } else if (msg.text != null) {
      body = new TextEncoder().encode(msg.text).buffer;
    }
    if (msg.error) toPage({ gt: 'response', id: msg.id, error: msg.error });
    else toPage({ gt: 'response', id: msg.id, status: msg.status, headers: msg.headers, body }, body ? [body] : []);
  };
  model.on('msg:custom', onKernel);

  const onMessage = (ev) => {
    if (ev.source !== frame.contentWindow) return;
    const m = ev.data;
    if (!m) return;
    if (m.gt === 'request') {
      model.send({ type: 'request', id: m.id, url: m.url });
    } else if (m.gt === 'state') {
      const want = {};
      if (m.ready) {
        ready = true;
        // What Python asked before the page was there: layer, epoch, ... (null: the page's choice).
        for (const k of TRAITS) {
          const v = model.get(k);
          if (v != null && !(Array.isArray(v) && !v.length) && !(k === 'selection' && !Object.keys(v).length)) want[k] = v;
        }
        if (Object.keys(want).length) toPage({ gt: 'set', ...want });
      }
      fromPage = true;
      try {
        for (const k of TRAITS) if (m[k] !== undefined && !(k in want)) model.set(k, m[k]);
        model.set('_first_frame_ms', model.get('_first_frame_ms') || Math.round(performance.now() - t0));
        model.save_changes();
      } finally {
        fromPage = false;
      }
    }
  };
  const t0 = performance.now();
  window.addEventListener('message', onMessage);

  const onTrait = (k) => () => {
    if (!fromPage && ready) toPage({ gt: 'set', [k]: model.get(k) });
  };
  const handlers = TRAITS.map((k) => [`change:${k}`, onTrait(k)]);
  for (const [ev, fn] of handlers) model.on(ev, fn);
  model.on('change:height', size);

  return () => {
    window.removeEventListener('message', onMessage);
    model.off('msg:custom', onKernel);
    for (const [ev, fn] of handlers) model.off(ev, fn);
    model.off('change:height', size);
  };
}

export default { render };
