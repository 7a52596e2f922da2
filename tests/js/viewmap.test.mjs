// The drawing map (viewmap.js): one map for points and handles, a scale the tour cannot
// change, zoom toward a point, geometric interpolation. Each test fails if its property breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { encode, finiteRows } from '../../src/grandtour/web/js/float16.js';
import {
  extentEpochs, geometric, handleUnit, normQuantile, panelMap, toScreen, zoomAbout,
} from '../../src/grandtour/web/js/viewmap.js';
import { residualOf } from '../../src/grandtour/web/js/slices.js';
import { describeTransition, transitionInfo } from '../../src/grandtour/web/js/transitioninfo.js';

function slice(rows) {
  const n = rows.length, dim = rows[0].length;
  const data = encode(rows.flat());
  return { data, n, dim, scale: 1, mask: finiteRows(data, n, dim).mask };
}

test('a one-hot point lands on its handle and a 50/50 point halfway, for any pan and zoom', () => {
  const f = [0.6, 0.1, -0.2, 0.7, 0.5, -0.4]; // a frame GT[:, :2] of 3 axes, row-major
  for (const [zoom, pan] of [[1, [0, 0]], [2.5, [0.3, -0.7]], [0.4, [-2, 1]]]) {
    const v = panelMap({ width: 800, height: 500, extent: 1.3, handle: 1, zoom, pan });
    const handle = (i) => toScreen(v, v.handleUnit * f[2 * i], v.handleUnit * f[2 * i + 1]);
    const point = (x) => toScreen(v, x.reduce((a, xi, i) => a + xi * f[2 * i], 0), x.reduce((a, xi, i) => a + xi * f[2 * i + 1], 0));
    assert.deepEqual(point([0, 1, 0]), handle(1));
    const mid = point([0.5, 0, 0.5]), h0 = handle(0), h2 = handle(2);
    assert.ok(Math.hypot(mid[0] - (h0[0] + h2[0]) / 2, mid[1] - (h0[1] + h2[1]) / 2) < 1e-9);
    assert.deepEqual(point([0, 0, 0]), v.origin); // the origin is drawn at c
  }
});

test('the extent is a row-norm quantile: rotating the rows leaves it unchanged', () => {
  const rows = Array.from({ length: 200 }, (_, k) => [Math.sin(k) * 3, Math.cos(3 * k), (k % 7) - 3]);
  const c = Math.cos(0.7), s = Math.sin(0.7);
  const turned = rows.map(([a, b, z]) => [c * a - s * b, s * a + c * b, z]);
  const r = normQuantile(slice(rows)), q = normQuantile(slice(turned));
  assert.ok(Math.abs(r - q) / r < 2e-3, `${r} vs ${q}`); // float16 rounding only
  const norms = rows.map((x) => Math.hypot(...x)).sort((a, b) => a - b);
  assert.ok(Math.abs(r - norms[Math.floor(0.99 * 199)]) / r < 2e-3);
});

test('zoomAbout keeps the point under the cursor in place and scales the rest about it', () => {
  const v0 = panelMap({ width: 600, height: 400, extent: 2, zoom: 1.5, pan: [0.2, 0.1] });
  const q = [0.4, -0.3]; // plot radii from the centre, y down
  const z = zoomAbout(1.5, [0.2, 0.1], 1.7, ...q);
  const v1 = panelMap({ width: 600, height: 400, extent: 2, zoom: z.zoom, pan: z.pan });
  const cursor = [300 + q[0] * v0.plotRadius, 200 + q[1] * v0.plotRadius];
  for (const [x, y] of [[0, 0], [1, -2], [-0.5, 0.7]]) {
    const a = toScreen(v0, x, y), b = toScreen(v1, x, y);
    for (const k of [0, 1]) assert.ok(Math.abs((b[k] - cursor[k]) - 1.7 * (a[k] - cursor[k])) < 1e-9);
  }
});

test('geometric interpolation: a constant rate of zoom, exact at both ends', () => {
  assert.equal(geometric(2, 50, 0), 2);
  assert.equal(geometric(2, 50, 1), 50);
  const r = [0, 0.25, 0.5, 0.75, 1].map((t) => geometric(2, 50, t));
  for (let k = 1; k < r.length - 1; k++) assert.ok(Math.abs(r[k] / r[k - 1] - r[k + 1] / r[k]) < 1e-12);
});

test('a handle stands for one unit on unit-scale layers, else for a round number near the extent', () => {
  assert.equal(handleUnit(1), 1);
  assert.equal(handleUnit(0.6), 1);
  assert.equal(handleUnit(37), 20);
  assert.equal(handleUnit(0.013), 0.01);
  assert.equal(handleUnit(7.2), 5);
});

test('extent epochs: all while they fit the budget, else an even sample with both ends', () => {
  assert.deepEqual(extentEpochs(5, 10, 1000), [0, 1, 2, 3, 4]);
  const e = extentEpochs(100, 10, 100);
  assert.equal(e.length, 10);
  assert.equal(e[0], 0);
  assert.equal(e[e.length - 1], 99);
});

test('transitions: a fit is labelled a fit, with its residual, from the header or the note', () => {
  assert.equal(residualOf({ residual: 0.25, note: '' }), 0.25);
  assert.equal(residualOf({ note: "least-squares linear fit from 'a' (relative residual 0.0123): why" }), 0.0123);
  assert.equal(residualOf({ note: '' }), null);
  const info = transitionInfo([{ info: { previous: 'a', method: 'lstsq', exact: false, residual: 0.1, note: 'n' } },
    { info: { previous: 'a', method: 'lstsq', exact: true, residual: 0.3, note: 'n' } }]);
  assert.deepEqual(info, { from: 'a', method: 'lstsq', exact: false, residual: 0.3, note: 'n' });
  const d = describeTransition(info);
  assert.equal(d.text, 'fit');
  assert.match(d.what, /least squares, relative residual 0\.30/);
  assert.equal(describeTransition({ ...info, exact: true, method: 'svd' }).text, 'exact');
  assert.equal(describeTransition(null), null);
});
