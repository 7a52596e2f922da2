// The comparison panel's pure helpers (web/js/compare.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { chooseEpochs, completeFrame } from '../../src/grandtour/web/js/compare.js';

test('completeFrame keeps a confusion frame as the first two columns of an orthogonal matrix', () => {
  const r = Math.sqrt(2 / 3);
  const P = [[0, 0], [0, r], [-r * Math.sqrt(3) / 2, -r / 2], [0, 0], [r * Math.sqrt(3) / 2, -r / 2]];
  const M = completeFrame(P), n = P.length;
  for (let i = 0; i < n; i++) for (let j = 0; j < 2; j++) assert.ok(Math.abs(M.data[i * n + j] - P[i][j]) < 1e-12);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += M.data[i * n + a] * M.data[i * n + b];
      assert.ok(Math.abs(d - (a === b ? 1 : 0)) < 1e-12, `columns ${a}, ${b}: ${d}`);
    }
  }
});

test('chooseEpochs picks the stored epoch at or before the current one and the one before it', () => {
  assert.deepEqual(chooseEpochs([5, 0, 1, 2], 3), [1, 2]);
  assert.deepEqual(chooseEpochs([0, 1, 2, 5], 9), [2, 5]);
  assert.deepEqual(chooseEpochs([3, 4], 0), [3, 4]);
  assert.deepEqual(chooseEpochs([7], 7), [7]);
});
