// The small dense helpers of linalg.js on hand-checked values.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  asSquare, checkOrthogonal, det, fromRows, identity, matmul, maxAbsDiff, norm, orthonormalFrame,
  principalAngles, svd2, toRows, transpose,
} from '../../src/grandtour/web/js/linalg.js';

test('matmul, transpose, identity on row-major {rows, cols, data}', () => {
  const A = fromRows([[1, 2, 3], [4, 5, 6]]);
  const B = fromRows([[1, 0], [0, 1], [2, -1]]);
  assert.deepEqual(toRows(matmul(A, B)), [[7, -1], [16, -1]]);
  assert.deepEqual(toRows(transpose(A)), [[1, 4], [2, 5], [3, 6]]);
  assert.deepEqual(toRows(matmul(identity(2), A)), toRows(A));
  assert.throws(() => matmul(A, A), RangeError);
  assert.equal(norm([3, 4]), 5);
});

test('det: sign and value', () => {
  assert.equal(det(fromRows([[0, 1], [1, 0]])), -1);
  assert.ok(Math.abs(det(fromRows([[2, 1, 0], [1, 3, 1], [0, 1, 4]])) - 18) < 1e-12);
  assert.equal(det(fromRows([[1, 2], [2, 4]])), 0);
});

test('checkOrthogonal accepts rotations and mirrors, rejects the rest with a message', () => {
  const c = Math.cos(0.3), s = Math.sin(0.3);
  checkOrthogonal([[c, -s], [s, c]]);
  checkOrthogonal([[1, 0], [0, -1]]);
  assert.throws(() => checkOrthogonal([[1, 0.01], [0, 1]]), /must be orthogonal/);
  assert.throws(() => checkOrthogonal([[1, 0, 0], [0, 1, 0]]), /square/);
  assert.throws(() => checkOrthogonal([[1]]), /at least 2 x 2/);
  assert.throws(() => asSquare([[1, NaN], [0, 1]]), /NaN/);
});

test('svd2 reconstructs M = U diag(s) V^T with s0 >= s1 >= 0', () => {
  for (const M of [[[1, 2], [3, 4]], [[0, -1], [1, 0]], [[2, 0], [0, -3]], [[0, 0], [0, 0]], [[1e-9, 5], [0, 1e9]]]) {
    const { U, s, V } = svd2(M);
    const US = fromRows([[U.data[0] * s[0], U.data[1] * s[1]], [U.data[2] * s[0], U.data[3] * s[1]]]);
    const scale = Math.max(1, ...M.flat().map(Math.abs));
    assert.ok(maxAbsDiff(matmul(US, transpose(V)), fromRows(M)) < 1e-12 * scale, JSON.stringify(M));
    assert.ok(s[0] >= s[1] && s[1] >= 0);
  }
});

test('principalAngles: right angles, a tiny angle, the same plane', () => {
  const e = identity(4).data;
  const E = (i, j) => fromRows([0, 1, 2, 3].map((r) => [e[r * 4 + i], e[r * 4 + j]]));
  assert.deepEqual(Array.from(principalAngles(E(0, 1), E(2, 3))), [Math.PI / 2, Math.PI / 2]);
  const t = 1e-9;
  const B = fromRows([[1, 0], [0, Math.cos(t)], [0, Math.sin(t)], [0, 0]]);
  const ang = principalAngles(E(0, 1), B);
  assert.ok(Math.abs(ang[1] - t) < 1e-20 && ang[0] === 0, `${ang}`);
  assert.ok(Math.hypot(...principalAngles(E(0, 1), E(1, 0))) < 1e-15);
});

test('orthonormalFrame: orthonormal basis of the same plane; dependent columns throw', () => {
  const Q = orthonormalFrame(fromRows([[1, 1], [0, 2], [0, 0]]));
  assert.deepEqual(toRows(Q), [[1, 0], [0, 1], [0, 0]]);
  assert.throws(() => orthonormalFrame(fromRows([[1, 2], [1, 2], [0, 0]])), /linearly independent/);
  assert.throws(() => orthonormalFrame(fromRows([[0, 1], [0, 0], [0, 0]])), /linearly independent/);
});
