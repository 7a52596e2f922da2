// The data sources of the widget and the HTML export answer HttpDataSource's requests from
// the server's own status, headers and body (src/grandtour/export/local.py).
import test from 'node:test';
import assert from 'node:assert/strict';

import { EmbeddedDataSource, fromBase64 } from '../../src/grandtour/web/js/sources/embedded.js';

const f16 = Uint16Array.of(0x3c00, 0x4000, 0xc000, 0x0000, 0x3800, 0x7c00); // 1, 2, -2, 0, 0.5, inf
const b64 = Buffer.from(f16.buffer).toString('base64');
const table = {
  'api/runs': { s: 200, h: { 'content-type': 'application/json' }, t: '[{"id":"r","name":"r","epochs":[0],"live":false}]' },
  'api/runs/r/activations/a%2Fb/0/train': {
    s: 200, h: { 'content-type': 'application/octet-stream', 'x-shape': '3,2', 'x-scale': '2.0', 'x-nonfinite': '1' }, b: b64,
  },
  'api/runs/r/labels/train': { s: 200, h: { 'x-shape': '3' }, b: Buffer.from(Int16Array.of(0, 1, -1).buffer).toString('base64') },
};

test('base64 decodes to the bytes', () => {
  assert.deepEqual(Array.from(fromBase64(b64)), Array.from(new Uint8Array(f16.buffer)));
});

test('embedded answers are read by the page reader unchanged', async () => {
  const src = new EmbeddedDataSource(table);
  assert.deepEqual(await src.runs(), [{ id: 'r', name: 'r', epochs: [0], live: false }]);
  const a = await src.activations('r', 'a/b', 0, 'train'); // the layer name is URL-encoded as the page does
  assert.equal(a.n, 3);
  assert.equal(a.dim, 2);
  assert.equal(a.scale, 2);
  assert.equal(a.nonfinite, 1);
  assert.deepEqual(Array.from(a.data), Array.from(f16));
  assert.deepEqual(Array.from(await src.labels('r', 'train')), [0, 1, -1]);
});

test('what the export left out is a 404 that says so', async () => {
  const src = new EmbeddedDataSource(table);
  await assert.rejects(src.activations('r', 'other', 0, 'train'), (err) => err.status === 404 && /does not include r\/activations\/other/.test(err.message));
});

test('a body several URLs share is stored once and answers each of them', async () => {
  const h = { 'x-shape': '3' };
  const labels = Buffer.from(Int16Array.of(2, 0, 1).buffer).toString('base64');
  const src = new EmbeddedDataSource({
    u: { 'api/runs/r/labels/train': { s: 200, h, r: 'k' }, 'api/runs/r/labels/test': { s: 200, h, r: 'k' } },
    b: { k: labels },
  });
  assert.deepEqual(Array.from(await src.labels('r', 'train')), [2, 0, 1]);
  assert.deepEqual(Array.from(await src.labels('r', 'test')), [2, 0, 1]);
});
