// The page's view of the recorded graph (web/js/graph.js): the main path, the path through
// a picked layer, and the diagram's lanes, on the graphs of tests/graph_models.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { inputIndices, layout, mainPath, pathThrough, viewMeta } from '../../src/grandtour/web/js/graph.js';

const layers = (graph) => Object.entries(graph).map(([name, inputs]) => ({ name, inputs, dim: 4 }));
const names = (ls, path) => path.map((i) => ls[i].name);

// Inception-like: two branches concatenated.
const INCEPTION = layers({
  input: [], 'a.0': ['input'], 'a.1': ['a.0'], 'b.0': ['input'], 'b.1': ['b.0'],
  cat: ['a.1', 'b.1'], head: ['cat'], softmax: ['head'],
});
// A residual block with a downsampling shortcut (conv + bn on the shortcut).
const RESNET = layers({
  input: [], stem: ['input'], relu: ['stem'], conv1: ['relu'], bn1: ['conv1'], act1: ['bn1'],
  conv2: ['act1'], bn2: ['conv2'], 'down.0': ['relu'], 'down.1': ['down.0'], add: ['bn2', 'down.1'],
  act2: ['add'], fc: ['act2'], softmax: ['fc'],
});

test('a run without edges is the chain of its layers', () => {
  const ls = [{ name: 'input' }, { name: 'fc' }, { name: 'softmax' }];
  assert.deepEqual(inputIndices(ls), [[], [0], [1]]);
  assert.deepEqual(mainPath(inputIndices(ls)), [0, 1, 2]);
  const v = viewMeta({ layers: ls });
  assert.deepEqual(v.layers, ls);
  assert.deepEqual(v.graph.path, [0, 1, 2]);
});

test('the main path follows first inputs back from the last layer', () => {
  assert.deepEqual(names(INCEPTION, mainPath(inputIndices(INCEPTION))), ['input', 'a.0', 'a.1', 'cat', 'head', 'softmax']);
  assert.deepEqual(names(RESNET, mainPath(inputIndices(RESNET))),
    ['input', 'stem', 'relu', 'conv1', 'bn1', 'act1', 'conv2', 'bn2', 'add', 'act2', 'fc', 'softmax']);
});

test('picking a layer off the path gives the path through it, keeping the rest', () => {
  const ins = inputIndices(INCEPTION);
  const main = mainPath(ins);
  const b0 = INCEPTION.findIndex((l) => l.name === 'b.0');
  const viaB = pathThrough(ins, main, b0);
  assert.deepEqual(names(INCEPTION, viaB), ['input', 'b.0', 'b.1', 'cat', 'head', 'softmax']);
  // Each layer of a path reads the one before it.
  for (let i = 1; i < viaB.length; i++) assert.ok(ins[viaB[i]].includes(viaB[i - 1]));
  // A layer on the path keeps it; going back to a.1 gives the main path again.
  assert.deepEqual(pathThrough(ins, viaB, viaB[3]), viaB);
  assert.deepEqual(pathThrough(ins, viaB, INCEPTION.findIndex((l) => l.name === 'a.1')), main);
  const rins = inputIndices(RESNET);
  const short = pathThrough(rins, mainPath(rins), RESNET.findIndex((l) => l.name === 'down.1'));
  assert.deepEqual(names(RESNET, short), ['input', 'stem', 'relu', 'down.0', 'down.1', 'add', 'act2', 'fc', 'softmax']);
});

test('the diagram puts branches side by side and the main path in the first lane', () => {
  const ins = inputIndices(INCEPTION);
  const { lanes, pos } = layout(ins, mainPath(ins));
  assert.equal(lanes, 2);
  const lane = Object.fromEntries(INCEPTION.map((l, i) => [l.name, pos[i].lane]));
  assert.deepEqual(lane, { input: 0, 'a.0': 0, 'a.1': 0, 'b.0': 1, 'b.1': 1, cat: 0, head: 0, softmax: 0 });
  // Rows follow the layers' order, one per layer: no two chips share a cell.
  const cells = new Set(pos.map((p) => `${p.lane},${p.row}`));
  assert.equal(cells.size, INCEPTION.length);
  const rins = inputIndices(RESNET);
  const r = layout(rins, mainPath(rins));
  assert.equal(r.lanes, 2);
  assert.equal(r.pos[RESNET.findIndex((l) => l.name === 'down.0')].lane, 1);
  assert.equal(r.pos[RESNET.findIndex((l) => l.name === 'down.1')].lane, 1);
});

test('the view along a path is that path\'s layers, the graph kept whole', () => {
  const meta = { layers: INCEPTION, epochs: [0] };
  const v = viewMeta(meta);
  assert.deepEqual(v.layers.map((l) => l.name), ['input', 'a.0', 'a.1', 'cat', 'head', 'softmax']);
  const viaB = pathThrough(v.graph.inputs, v.graph.path, 3);
  const w = viewMeta(v, viaB);
  assert.deepEqual(w.layers.map((l) => l.name), ['input', 'b.0', 'b.1', 'cat', 'head', 'softmax']);
  assert.equal(w.graph.layers, INCEPTION);
});
