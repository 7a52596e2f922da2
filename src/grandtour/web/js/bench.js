/**
 * Frame-time benchmark of the scatter renderer (used by benchmarks/bench_viewer.py).
 *
 * "Ours": each frame advances the viewer's Grand Tour (tours.js) by 1/60 s (or not: the
 * "still" variants), uploads its frame GT[:, :2] and draws n points of `dim` float16
 * dimensions projected on the GPU (gl/scatter.js, exactly as the viewer does, or forced to
 * one of its two projections). "Floor": the same canvas draws n precomputed 2-D points (a
 * Float32Array of positions) with a trivial vertex shader and the same fragment shader
 * and point size. Each frame is timed to completion (a 1-pixel readPixels waits for the
 * GPU), so the figures are per-frame costs, not rAF intervals.
 */

import { ScatterRenderer } from './gl/scatter.js';
import { TourManager } from './tours.js';
import { floatToHalf, halfTable } from './float16.js';
import { makeSlice } from './slices.js';
import { palette } from './colors.js';

/** Deterministic clustered data: n x dim float16 bits, labels in 0..9. */
function makeData(n, dim, seed = 1) {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const centres = Array.from({ length: 10 }, () => Float32Array.from({ length: dim }, () => rand() * 4 - 2));
  // Encode a table of noisy values once per class and dimension bucket: encoding 10^7
  // values one by one would dominate the set-up time.
  const table = new Uint16Array(10 * dim * 64);
  for (let c = 0; c < 10; c++) {
    for (let j = 0; j < dim; j++) {
      for (let k = 0; k < 64; k++) table[(c * dim + j) * 64 + k] = floatToHalf(centres[c][j] + (rand() - 0.5));
    }
  }
  const bits = new Uint16Array(n * dim);
  const labels = new Int16Array(n);
  for (let p = 0; p < n; p++) {
    const c = p % 10;
    labels[p] = c;
    const o = p * dim, t = c * dim * 64;
    for (let j = 0; j < dim; j++) bits[o + j] = table[t + j * 64 + ((rand() * 64) | 0)];
  }
  return { bits, labels };
}

/**
 * Set up one configuration (n points x dim dims) on `canvas`. Returns {setup_ms, phase,
 * close}: `phase(name, frames)` draws `frames` frames of one variant and returns their
 * times (ms, each to completion):
 *   floor:  precomputed 2-D points, trivial vertex shader;
 *   auto:   the viewer's renderer, the tour advancing every frame (projected in the
 *           vertex shader);
 *   vertex: the same, the renderer's fall-back (always projected in the vertex shader);
 *   pass:   the same, always by the projection pass;
 *   still:  the viewer's renderer, the frame unchanged (a zoom, a hover or a brush
 *           redraws: the positions of the projection pass are kept);
 *   still-vertex: the fall-back with the frame unchanged (it projects every draw).
 */
export function setupBenchmark(canvas, { n, dim, pointSize = 2 }) {
  const t0 = performance.now();
  const renderer = new ScatterRenderer(canvas);
  // The same WebGL context (getContext returns the canvas's one), the other projection.
  const vertex = new ScatterRenderer(canvas, { projection: 'vertex' });
  const pass = new ScatterRenderer(canvas, { projection: 'pass' });
  const { width, height, dpr } = renderer.resize();
  const { bits, labels } = makeData(n, dim);
  const slice = makeSlice(bits, n, dim, 1);
  const flags = slice.mask; // bit 0: finite
  for (const r of [renderer, vertex, pass]) {
    r.setPalette(palette(10));
    r.setPoints('genuine', { labels, flags });
  }
  const tours = new TourManager({ speed: 0.5 }); // the viewer's tour
  tours.use('bench', dim);
  const stats = slice.stats;
  const view = { center: [0, 0], pxPerUnit: (0.45 * Math.min(width, height)) / stats.radius, width, height, dpr };
  const px = new Uint8Array(4);
  const gl = renderer.gl;
  const sync = () => gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  const frameOut = tours.frame();
  const drawWith = (r, advance) => () => {
    if (advance) {
      tours.step(1 / 60);
      tours.frame();
    }
    r.draw({ frame: frameOut.data, dim, view, sets: [{ key: 'genuine', A: slice, mix: 0, pointSize }], highlight: -1 });
    sync();
  };
  // The floor's positions: this data projected once (on the CPU, outside the timing).
  const positions = new Float32Array(2 * n);
  const f = frameOut.data, x = new Float32Array(dim);
  const table = halfTable();
  for (let p = 0; p < n; p++) {
    for (let j = 0; j < dim; j++) x[j] = table[bits[p * dim + j]];
    let a = 0, b = 0;
    for (let j = 0; j < dim; j++) { a += x[j] * f[2 * j]; b += x[j] * f[2 * j + 1]; }
    positions[2 * p] = a;
    positions[2 * p + 1] = b;
  }
  const variants = {
    floor: () => {
      renderer.drawFloor(positions, view, pointSize);
      sync();
    },
    auto: drawWith(renderer, true),
    vertex: drawWith(vertex, true),
    pass: drawWith(pass, true),
    still: drawWith(renderer, false),
    'still-vertex': drawWith(vertex, false),
  };
  for (const fn of Object.values(variants)) fn(); // compile and upload outside the timing
  return {
    setup_ms: performance.now() - t0,
    phase(name, frames) {
      const fn = variants[name];
      const out = [];
      for (let k = 0; k < frames; k++) {
        const a = performance.now();
        fn();
        out.push(performance.now() - a);
      }
      return out;
    },
    close() {
      renderer.clearSlices();
      vertex.clearSlices();
      pass.clearSlices();
      gl.getExtension('WEBGL_lose_context')?.loseContext();
    },
  };
}
