/**
 * The recorded network as a graph, for the page: each layer's direct inputs (the meta's
 * `inputs`, main path first; a run without them is the chain of its layers), the path
 * layer play follows, and where each layer sits in the network diagram.
 *
 * A *path* is a list of indices into the run's layers, from the input to the last layer
 * (the logits or softmax), each layer reading the one before it. The *main path* follows
 * each layer's first input back from the last layer: the transitions `grandtour align`
 * stores as each layer's own. Picking a layer off the path gives the path through it
 * that keeps as much of the current one as it can (`pathThrough`).
 *
 * The page shows one path at a time: `viewMeta` gives the run's meta with `layers` the
 * path's layers (what the layer slider, the layer index and every panel read) and the
 * whole graph under `graph` (`{layers, inputs, path}`, what the diagram draws).
 */

/** The inputs of every layer, as arrays of indices into `layers` (unknown names dropped). */
export function inputIndices(layers) {
  const index = new Map(layers.map((L, i) => [L.name, i]));
  const listed = layers.some((L) => Array.isArray(L.inputs) && L.inputs.length);
  return layers.map((L, i) => {
    if (!listed) return i === 0 ? [] : [i - 1]; // a run written before the graph: the chain
    return (L.inputs ?? []).map((n) => index.get(n)).filter((j) => j !== undefined && j !== i);
  });
}

/** The layers reading each layer, in layer order. */
export function consumers(inputs) {
  const out = inputs.map(() => []);
  inputs.forEach((ins, i) => { for (const j of ins) out[j].push(i); });
  return out;
}

/** The main path: from the last layer back along first inputs, as indices (input first). */
export function mainPath(inputs) {
  const path = [];
  const seen = new Set();
  for (let i = inputs.length - 1; i >= 0 && !seen.has(i); i = inputs[i][0] ?? -1) {
    seen.add(i);
    path.push(i);
  }
  return path.reverse();
}

/**
 * The path through layer `k`: back from `k` along the input on the current `path`
 * when there is one (else the first input), forward along the consumer on `path` when
 * there is one (else the first that reaches the last layer), ending at the last layer.
 */
export function pathThrough(inputs, path, k) {
  const on = new Map(path.map((i, at) => [i, at]));
  if (on.has(k)) return path.slice();
  const last = inputs.length - 1;
  const outs = consumers(inputs);
  // Which layers reach the last one (so a forward step never walks into a dead end).
  const reaches = new Array(inputs.length).fill(false);
  reaches[last] = true;
  for (let i = last; i >= 0; i--) if (reaches[i]) for (const j of inputs[i]) reaches[j] = true;
  if (!reaches[k]) return path.slice();
  const back = [k];
  let i = k;
  while (!on.has(i) && inputs[i].length && back.length <= inputs.length) {
    i = inputs[i].find((j) => on.has(j)) ?? inputs[i][0];
    back.push(i);
  }
  const head = on.has(i) ? [...path.slice(0, on.get(i)), ...back.reverse()] : back.reverse();
  const tail = [];
  i = k;
  while (i !== last && tail.length <= inputs.length) {
    const next = outs[i].filter((j) => reaches[j]);
    i = next.find((j) => on.has(j)) ?? next[0];
    if (on.has(i)) {
      tail.push(...path.slice(on.get(i)));
      break;
    }
    tail.push(i);
  }
  return [...head, ...tail];
}

/** The run's meta as the page shows it along `path` (see the module's comment). */
export function viewMeta(meta, path = null) {
  const graph = meta.graph ?? { layers: meta.layers, inputs: inputIndices(meta.layers) };
  const p = path ?? mainPath(graph.inputs);
  return { ...meta, layers: p.map((i) => graph.layers[i]), graph: { ...graph, path: p } };
}

/**
 * Where each layer sits in the diagram: `{lane, row}` per layer, and the number of
 * lanes. Rows follow the layers' (execution) order; the main path is lane 0 and every
 * branch continues its input's lane or opens the leftmost lane free over its rows, so
 * branches stand side by side and meet where they merge.
 */
export function layout(inputs, path) {
  const n = inputs.length;
  const outs = consumers(inputs);
  const onMain = new Set(path);
  const lane = new Array(n).fill(-1);
  const busy = []; // lane -> [[from, to] row intervals]
  const free = (l, a, b) => !(busy[l] ?? []).some(([x, y]) => a <= y && x <= b);
  const take = (l, a, b) => { (busy[l] ??= []).push([a, b]); };
  const lastUse = (i) => Math.max(i, ...outs[i]);
  for (const i of path) lane[i] = 0;
  take(0, 0, n - 1);
  const continued = new Set();
  for (let i = 0; i < n; i++) {
    if (lane[i] >= 0) continue;
    const u = inputs[i][0];
    const from = u === undefined ? i : u + 1;
    if (u !== undefined && !onMain.has(u) && !continued.has(u)) {
      continued.add(u);
      lane[i] = lane[u];
      take(lane[i], from, lastUse(i));
      continue;
    }
    let l = 1;
    while (!free(l, from, lastUse(i))) l++;
    lane[i] = l;
    take(l, from, lastUse(i));
    if (u !== undefined) continued.add(u);
  }
  return { lanes: Math.max(1, ...lane.map((l) => l + 1)), pos: lane.map((l, row) => ({ lane: l, row })) };
}
