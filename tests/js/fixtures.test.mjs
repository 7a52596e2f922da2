// The JS tour maths agrees with the Python reference on every case of
// tests/fixtures/tour_vectors.json (written by scripts/make_js_fixtures.py) to 1e-9,
// wherever the values are defined; where they are not (the principal vectors of equal
// angles) the JS results are held to the invariants the tour relies on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  checkOrthogonal, fromRows, identity, matmul, matrix, principalAngles, principalPairs, svd2, transpose,
} from '../../src/grandtour/web/js/linalg.js';
import { GeodesicTour, GrandTour, givensStages } from '../../src/grandtour/web/js/tour.js';
import {
  FLIP_MARGIN, SUBSTEP, axisDrag, centroid, gramSchmidtRows, pointDrag,
} from '../../src/grandtour/web/js/manipulate.js';

const FIX = JSON.parse(readFileSync(new URL('../fixtures/tour_vectors.json', import.meta.url), 'utf8'));
const TOL = FIX.tolerance;

/** The fixture's special strings back to numbers ("NaN", "Infinity", "-Infinity"). */
function num(x) {
  if (Array.isArray(x)) return x.map(num);
  return typeof x === 'string' && ['NaN', 'Infinity', '-Infinity'].includes(x) ? Number(x) : x;
}

const M = (rows) => fromRows(num(rows));

function flat(x) {
  if (typeof x === 'number') return [x];
  if (x != null && x.data != null) return Array.from(x.data);
  if (ArrayBuffer.isView(x)) return Array.from(x);
  return num(x).flat(Infinity);
}

/** max |actual - expected| <= TOL, with the shapes equal. */
function close(actual, expected, what) {
  const a = flat(actual), e = flat(expected);
  assert.equal(a.length, e.length, `${what}: ${a.length} values, Python has ${e.length}`);
  let d = 0;
  for (let k = 0; k < a.length; k++) d = Math.max(d, Math.abs(a[k] - e[k]));
  assert.ok(d <= TOL, `${what}: max |JS - Python| = ${d} > ${TOL}`);
}

test('constants agree', () => {
  assert.equal(FLIP_MARGIN, FIX.flip_margin);
  assert.equal(SUBSTEP, FIX.substep);
});

for (const c of FIX.grand_tour) {
  test(`GrandTour n=${c.n}: stages, steps (dt of both signs), matrix, set matrix, rebase`, () => {
    assert.deepEqual(givensStages(c.n).map((s) => Array.from(s)), c.stages);
    const t = new GrandTour({
      ndim: c.n, angularVelocity: c.angular_velocity, phase: c.phase, base: M(c.base), right: M(c.right),
    });
    close(t.angles, c.initial.angles, 'initial angles');
    close(t.frame(), c.initial.frame, 'initial frame');
    c.steps.forEach((s, k) => {
      t.step(s.dt);
      close(t.frame(), s.frame, `frame after step ${k} (dt=${s.dt})`);
      close(t.time, s.time, `time after step ${k}`);
    });
    close(t.angles, c.final_angles, 'angles after the steps');
    // The angle update and its wrap mirror numpy operation for operation: same bits.
    assert.ok(Array.from(t.angles).every((a, k) => Object.is(a, c.final_angles[k])), 'angles bit for bit');
    close(t.matrix, c.matrix, 'matrix after the steps');
    close(t.project(M(c.project.X)), c.project.Y, 'project');
    close(t.handles(), t.frame(), 'handles');
    t.matrix = M(c.set_matrix.GT);
    close(t.frame(), c.set_matrix.frame, 'frame after matrix =');
    close(t.matrix, c.set_matrix.matrix, 'matrix after matrix =');
    close(t.step(0.25).frame(), c.set_matrix.frame_after_step, 'frame after matrix = and a step');
    t.rebase(M(c.rebase.P));
    close(t.frame(), c.rebase.frame, 'frame after rebase');
    close(t.matrix, c.rebase.matrix, 'matrix after rebase');
    close(t.step(-0.1).frame(), c.rebase.frame_after_step, 'frame after rebase and a step');
    close(t.time, c.rebase.time, 'time');
  });
}

function checkState(g, s, what) {
  close(g.frame(), s.frame, `${what}: frame`);
  close(g.progress, s.progress, `${what}: progress`);
  close(g.segmentLength, s.segment_length, `${what}: segment length`);
  assert.equal(g.targetsReached, s.targets_reached, `${what}: targets reached`);
  close(g.time, s.time, `${what}: time`);
}

for (const c of FIX.geodesic_tour) {
  test(`GeodesicTour n=${c.n} speed=${c.speed}: steps across targets, matrix =, rebase`, () => {
    let used = 0;
    const targets = () => {
      assert.ok(used < c.targets.length, 'the JS tour asked for more targets than the Python one');
      return M(c.targets[used++]);
    };
    const g = new GeodesicTour({ ndim: c.n, speed: c.speed, targets, start: c.start ? M(c.start) : undefined });
    checkState(g, c.initial, 'initial');
    c.steps.forEach((s, k) => checkState(g.step(s.dt), s, `step ${k} (dt=${s.dt})`));
    close(g.matrix, c.matrix, 'matrix after the steps');
    g.matrix = M(c.set_matrix.GT);
    checkState(g, c.set_matrix, 'after matrix =');
    close(g.matrix, c.set_matrix.matrix, 'matrix after matrix =');
    c.set_matrix.steps.forEach((s, k) => checkState(g.step(s.dt), s, `step ${k} after matrix =`));
    g.rebase(M(c.rebase.P));
    checkState(g, c.rebase, 'after rebase');
    close(g.matrix, c.rebase.matrix, 'matrix after rebase');
    c.rebase.steps.forEach((s, k) => checkState(g.step(s.dt), s, `step ${k} after rebase`));
    close(g.matrix, c.final_matrix, 'final matrix');
    assert.equal(used, c.targets.length, 'both tours used the same number of targets');
  });
}

test('svd2: same factors, signs included', () => {
  FIX.svd2.forEach((c, k) => {
    const { U, s, V } = svd2(M(c.M));
    close(U, c.U, `case ${k}: U`);
    close(s, c.s, `case ${k}: s`);
    close(V, c.V, `case ${k}: V`);
  });
});

/** `P diag(cos theta) + G diag(sin theta)`: the partners, in span T, of the principal vectors P. */
function partners(P, G, theta) {
  const W = matrix(P.rows, 2);
  for (let i = 0; i < P.rows; i++) {
    for (let k = 0; k < 2; k++) {
      W.data[2 * i + k] = P.data[2 * i + k] * Math.cos(theta[k]) + G.data[2 * i + k] * Math.sin(theta[k]);
    }
  }
  return W;
}

const gram = (X) => matmul(transpose(X), X);
const projector = (X) => matmul(X, transpose(X));

test('principalAngles and principal pairs', () => {
  FIX.principal_angles.forEach((c, k) => {
    const A = M(c.A), B = M(c.B);
    close(principalAngles(A, B), c.angles, `case ${k}: angles`);
    const { P, G, theta, U } = principalPairs(A, B);
    close(theta, c.theta, `case ${k}: theta`);
    if (c.pairs_defined) {
      close(P, c.P, `case ${k}: P`);
      close(G, c.G, `case ${k}: G`);
      close(U, c.U, `case ${k}: U`);
      return;
    }
    // Equal angles: the principal vectors are any rotation of each other (the fixture does
    // not record them), but what the geodesic tour builds on them is defined.
    close(gram(U), identity(2), `case ${k}: U orthogonal`);
    close(P, matmul(A, U), `case ${k}: P = A U`);
    close(gram(P), identity(2), `case ${k}: P orthonormal`);
    close(matmul(transpose(A), G), matrix(2, 2), `case ${k}: G orthogonal to span A`);
    close(gram(G), fromRows([[theta[0] > 0 ? 1 : 0, 0], [0, theta[1] > 0 ? 1 : 0]]), `case ${k}: G^T G`);
    const W = partners(P, G, theta);
    close(gram(W), identity(2), `case ${k}: partners orthonormal`);
    close(projector(W), projector(B), `case ${k}: partners span B`);
  });
});

test('gramSchmidtRows: generic, nearly dependent and completed rows', () => {
  FIX.gram_schmidt_rows.forEach((c, k) => {
    close(gramSchmidtRows(M(c.M), c.first), c.Q, `case ${k} (first=${c.first})`);
  });
});

test('axisDrag: small, large, split through the origin, zero', () => {
  FIX.axis_drag.forEach((c, k) => {
    close(axisDrag(M(c.GT), c.i, c.dx, c.dy), c.result, `case ${k} (i=${c.i}, D=(${c.dx}, ${c.dy}))`);
  });
});

test('pointDrag: generic and degenerate cases', () => {
  FIX.point_drag.forEach((c, k) => {
    close(pointDrag(M(c.GT), c.c, c.dx, c.dy), c.result, `case ${k} (${c.note})`);
  });
});

test('centroid: all, mask, indices (negative, repeated), non-finite rows left out', () => {
  FIX.centroid.forEach((c, k) => {
    close(centroid(M(c.X), c.selection ?? undefined), c.c, `case ${k}`);
  });
});

const CALLS = {
  grand_tour: (a) => gt(a).frame(),
  grand_tour_step: (a) => gt(a).step(a.dt),
  grand_tour_set_matrix: (a) => { gt(a).matrix = M(a.GT); },
  grand_tour_rebase: (a) => gt(a).rebase(M(a.P)),
  geodesic_tour: (a) => geo(a),
  geodesic_step: (a) => geo(a).step(a.dt),
  check_orthogonal: (a) => checkOrthogonal(M(a.GT)),
  svd2: (a) => svd2(M(a.M)),
  gram_schmidt_rows: (a) => gramSchmidtRows(M(a.M), a.first),
  axis_drag: (a) => axisDrag(M(a.GT), a.i, a.dx, a.dy),
  point_drag: (a) => pointDrag(M(a.GT), a.c, a.dx, a.dy),
  centroid: (a) => centroid(M(a.X), a.selection),
};

function gt(a) {
  return new GrandTour({
    ndim: a.ndim, seed: 0, angularVelocity: a.angular_velocity, phase: a.phase,
    base: a.base && M(a.base), right: a.right && M(a.right),
  });
}

function geo(a) {
  return new GeodesicTour({ ndim: a.ndim, seed: 0, speed: a.speed ?? 0.5, targets: a.target && (() => M(a.target)) });
}

test('error cases: JS throws exactly where Python raises', () => {
  for (const c of FIX.errors) {
    const args = Object.fromEntries(Object.entries(c.args).map(([k, v]) => [k, num(v)]));
    const what = `${c.fn}(${JSON.stringify(c.args)})`;
    if (c.raises) {
      assert.throws(() => CALLS[c.fn](args), Error, `${what} should throw (Python: ${c.error})`);
    } else {
      assert.doesNotThrow(() => CALLS[c.fn](args), `${what} should not throw`);
    }
  }
});
