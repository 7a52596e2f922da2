// The guided tour climbs its projection-pursuit index (web/js/tour/guided.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { GuidedTour, ldaIndex } from '../../src/grandtour/web/js/tour/guided.js';
import { Rng } from '../../src/grandtour/web/js/tour/random.js';

function classes(N, n, seed) {
  const rng = new Rng(seed), X = new Float64Array(N * n), labels = new Int32Array(N);
  for (let p = 0; p < N; p++) {
    labels[p] = p % 4;
    for (let i = 0; i < n; i++) X[p * n + i] = rng.normal();
    X[p * n + 6] += 2.5 * labels[p]; // the classes differ along axes 6 and 8 only
    X[p * n + 8] += 3 * (labels[p] % 2);
  }
  return { X, labels };
}

test('the LDA index increases along the guided tour, target after target', () => {
  const N = 160, n = 10;
  const { X, labels } = classes(N, n, 5);
  const tour = new GuidedTour({ X, N, labels, classes: [0, 1, 2, 3], seed: 3, speed: 1 });
  const first = tour.index();
  const targets = [ldaIndex(tour.target, tour.W, tour.B)];
  for (let k = 0; k < 300; k++) {
    const before = tour.targetsReached;
    tour.step(0.05);
    if (tour.targetsReached !== before) targets.push(ldaIndex(tour.target, tour.W, tour.B));
  }
  assert.ok(targets.length > 5, `only ${targets.length} targets`);
  for (let k = 1; k < targets.length; k++) assert.ok(targets[k] >= targets[k - 1], `target ${k} fell`);
  assert.ok(tour.index() > first + 0.5 && tour.index() > 0.8, `index ${first} -> ${tour.index()}`);
  const F = tour.frame().data;
  assert.ok(F[12] ** 2 + F[13] ** 2 + F[16] ** 2 + F[17] ** 2 > 1.6); // spanned by axes 6 and 8
});

test('a guided tour needs two classes to separate', () => {
  const { X, labels } = classes(8, 10, 1);
  assert.throws(() => new GuidedTour({ X, N: 8, labels, classes: [2] }), /at least 2 classes/);
});
