// The pure parts of the researcher's tools (issue 9): which palette entry each point is
// drawn with (pointcolors.js), the softmax confidence of a row, the handle labels placed
// without overlaps (overlay.js), and the frame squeezed inside a transition into a narrower
// layer (tours.js), which at its end is the re-based frame exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { colorIndices, confidence, drawnIndex, projectRow } from '../../src/grandtour/web/js/pointcolors.js';
import { placeLabels } from '../../src/grandtour/web/js/overlay.js';
import { rebasedMatrix, squeezeFrame, squeezeOf } from '../../src/grandtour/web/js/tours.js';
import { encode } from '../../src/grandtour/web/js/float16.js';
import { matrix } from '../../src/grandtour/web/js/linalg.js';

const labels = Int16Array.from([0, 1, 2, 1]);
const preds = Int16Array.from([0, 2, 2, -1]);

test('colour by label, prediction or correctness; only the misclassified; hidden classes', () => {
  const C = 3;
  assert.deepEqual(Array.from(colorIndices(labels, preds, { count: C })), [0, 1, 2, 1]);
  assert.deepEqual(Array.from(colorIndices(labels, preds, { count: C, colorBy: 'prediction' })), [6, 8, 8, 7]);
  // Not recorded (-1): neither correct nor wrong, not drawn in correctness.
  assert.deepEqual(Array.from(colorIndices(labels, preds, { count: C, colorBy: 'correctness' })), [3, 4, 3, 5]);
  assert.deepEqual(Array.from(colorIndices(labels, preds, { count: C, onlyMisclassified: true })), [5, 1, 5, 5]);
  // A hidden class is not drawn in any mode (its label is what is hidden).
  const hidden = new Set([1]);
  assert.deepEqual(Array.from(colorIndices(labels, preds, { count: C, colorBy: 'prediction', hidden })), [6, 5, 8, 5]);
  assert.equal(drawnIndex(1, C, hidden), false);
  assert.equal(drawnIndex(C + 3 + 1, C, hidden), true);
  assert.equal(drawnIndex(C + 2, C, new Set()), false);
});

function slice(rows, scale = 1) {
  const n = rows.length, dim = rows[0].length;
  return { data: encode(rows.flat()), n, dim, scale, mask: Uint8Array.from(rows, (r) => (r.every(Number.isFinite) ? 1 : 0)) };
}

test('confidence: the top class and its probability when a row is probabilities, else null', () => {
  const S = slice([[0.25, 0.5, 0.25], [2, -1, 0], [NaN, 0, 1]]);
  const c = confidence(S, 0);
  assert.equal(c.cls, 1);
  assert.equal(c.prob, 0.5);
  assert.equal(confidence(S, 1), null);
  assert.equal(confidence(S, 2), null);
});

test('projectRow mixes two slices like the shader', () => {
  const A = slice([[1, 0], [0, 1]]), B = slice([[0, 2], [1, 1]]);
  const frame = { data: Float64Array.from([1, 0, 0, 1]) };
  assert.deepEqual(projectRow({ A, B, mix: 0.25 }, 0, frame), [0.75, 0.5]);
  assert.deepEqual(projectRow({ A }, 1, frame), [0, 1]);
});

test('handle labels never overlap, stay inside, and moved ones get a leader line', () => {
  // Eight handles nearly on one ray: their labels would all sit on one another.
  const axes = Int32Array.from({ length: 8 }, (_, i) => i);
  const at = (i) => [200 + 60 * Math.cos(0.02 * i), 150 - 60 * Math.sin(0.02 * i)];
  const labs = placeLabels(axes, at, [200, 150], axes.map((i) => `class ${i}`), (t) => 7 * t.length, { width: 400, height: 300 });
  assert.equal(labs.length, 8);
  for (let i = 0; i < labs.length; i++) {
    const a = labs[i].box;
    assert.ok(a[0] >= 0 && a[2] <= 400 && a[1] >= 0 && a[3] <= 300, `label ${i} inside`);
    for (let j = i + 1; j < labs.length; j++) {
      const b = labs[j].box;
      assert.ok(!(a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]), `labels ${labs[i].text} and ${labs[j].text} overlap`);
    }
    if (labs[i].leader) assert.deepEqual(labs[i].leader.slice(0, 2), at(labs[i].axis));
  }
  assert.ok(labs.some((l) => l.leader));
});

test('the squeezed frame is orthonormal, the tour frame at the wide end and the re-based frame at the narrow end', () => {
  const k = 5, d = 3;
  // A random orthogonal GT (k x k) by Gram-Schmidt of a fixed matrix.
  const G = matrix(k, k, Float64Array.from({ length: k * k }, (_, i) => Math.sin(1 + 7 * i)));
  const I = matrix(k, k, Float64Array.from({ length: k * k }, (_, i) => (i % (k + 1) === 0 ? 1 : 0)));
  const GT = rebasedMatrix(G, I);
  const F = matrix(k, 2, Float64Array.from({ length: 2 * k }, (_, i) => GT.data[Math.floor(i / 2) * k + (i % 2)]));
  assert.deepEqual(squeezeOf(k, 5, 3, 0.25), { from: 3, w: 0.25 });
  assert.deepEqual(squeezeOf(k, 3, 5, 0.25), { from: 3, w: 0.75 });
  assert.equal(squeezeOf(k, 5, 5, 0.5), null);
  const same = squeezeFrame(F, d, 0);
  for (let i = 0; i < 2 * k; i++) assert.ok(Math.abs(same.data[i] - F.data[i]) < 1e-12);
  const half = squeezeFrame(F, d, 0.5).data;
  let n1 = 0, n2 = 0, dot = 0;
  for (let i = 0; i < k; i++) { n1 += half[2 * i] ** 2; n2 += half[2 * i + 1] ** 2; dot += half[2 * i] * half[2 * i + 1]; }
  assert.ok(Math.abs(n1 - 1) < 1e-12 && Math.abs(n2 - 1) < 1e-12 && Math.abs(dot) < 1e-12);
  // At w = 1: the frame of the re-base into the narrow layer, B GT with B = [I_d 0].
  const B = matrix(d, k, Float64Array.from({ length: d * k }, (_, i) => (i % (k + 1) === 0 ? 1 : 0)));
  const R = rebasedMatrix(GT, B);
  const end = squeezeFrame(F, d, 1).data;
  for (let i = 0; i < d; i++) {
    assert.ok(Math.abs(end[2 * i] - R.data[i * d]) < 1e-12 && Math.abs(end[2 * i + 1] - R.data[i * d + 1]) < 1e-12);
  }
  for (let i = d; i < k; i++) assert.ok(end[2 * i] === 0 && end[2 * i + 1] === 0);
});
