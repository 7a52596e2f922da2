// colors.js reads web/palette.json (an import attribute Node and the browser both take) and
// derives the renderer's palette from it. Python's copy is checked in tests/browser/test_palette.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { CORRECT, WRONG, classColor, classCss, palette } from '../../src/grandtour/web/js/colors.js';

const table = JSON.parse(readFileSync(new URL('../../src/grandtour/web/palette.json', import.meta.url)));

test('up to ten classes take the table in order, and wrap around it', () => {
  for (const count of [1, 3, 10]) {
    for (let c = 0; c < count; c++) assert.deepEqual(classColor(c, count), table.classes[c]);
  }
  assert.deepEqual(classColor(12, 10), table.classes[2]);
  assert.equal(classCss(2), `rgb(${table.classes[2].join(', ')})`);
});

test('beyond ten classes every class gets its own hue, class 0 red', () => {
  const colours = Array.from({ length: 13 }, (_, c) => classColor(c, 13).join());
  assert.equal(new Set(colours).size, 13);
  const [r, g, b] = classColor(0, 13);
  assert.ok(r > g && g === b, `class 0 of 13 is ${[r, g, b]}`);
});

test('the renderer palette holds 4 bytes per class, alpha 0 for a hidden class', () => {
  const p = palette(13, new Set([4]));
  assert.equal(p.length, (2 * 13 + 3) * 4);
  assert.deepEqual(Array.from(p.subarray(0, 3)), classColor(0, 13));
  assert.equal(p[4 * 4 + 3], 0);
  assert.equal(p[5 * 4 + 3], 217);
  // Then correct, wrong, not drawn; then the classes again, never hidden (predictions).
  assert.deepEqual(Array.from(p.subarray(4 * 13, 4 * 13 + 4)), [...CORRECT, 217]);
  assert.deepEqual(Array.from(p.subarray(4 * 14, 4 * 14 + 4)), [...WRONG, 217]);
  assert.equal(p[4 * 15 + 3], 0);
  assert.deepEqual(Array.from(p.subarray(4 * (16 + 4), 4 * (16 + 4) + 4)), [...classColor(4, 13), 217]);
  // The opacity is every entry's alpha.
  assert.equal(palette(13, new Set(), 0.5)[5 * 4 + 3], 128);
});
