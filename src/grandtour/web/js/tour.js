/**
 * Tours: smooth paths through the linear 2-D views of n-dimensional data.
 * The JavaScript mirror of `grandtour/tour.py`, function for function; both are tested
 * against the same vectors (tests/fixtures/tour_vectors.json) to 1e-9. This is the
 * entry point: it re-exports the modules under tour/, one concept each.
 *
 * Conventions (Li, Zhao, Scheidegger, Distill 2020): data points are row vectors; the
 * state is an n x n orthogonal matrix GT; the screen position of x is the first two
 * entries of x GT; the handle of axis i is row i of GT, first two entries. Time is in
 * seconds of elapsed time and speeds in radians per second (the same on 60 and 144 Hz).
 * Matrices are `{rows, cols, data}` with row-major Float64Array data (see linalg.js).
 *
 * - tour/interface.js, `Tour` (tour.py `Tour`): `frame`, `matrix`, `step`, `rebase`;
 *   `project`, `handles`, `path` follow from them.
 * - tour/torus.js, `GrandTour` (tour.py `GrandTour`): the torus method,
 *   GT(t) = L T(phi + omega t) W, T a product of n(n-1)/2 Givens rotations in 2n-3
 *   stages of disjoint adjacent planes (Sameh-Kuck order), L and W random orthogonal.
 *   `step` advances the angles, O(n^2); `frame` rotates the two columns T W[:, :2] and
 *   multiplies by L, O(n^2); only `.matrix` costs O(n^3).
 * - tour/givens.js (tour.py `givens_stages`, `GrandTour._apply_T`): the stages, and T
 *   applied to the rows of an array.
 * - tour/angles.js: angles modulo 2 pi (`modTau`), and their sines and cosines at once.
 * - tour/geodesic.js, `GeodesicTour` (tour.py `GeodesicTour`): from the current plane
 *   to a target plane along the geodesic, at a constant principal-angle arc length per
 *   second (tourr's grand tour).
 * - tour/random.js (tour.py `random_rotation`, `random_frame`): the seeded `Rng`, and
 *   Haar-random rotations and frames.
 *
 * Hot path: `tour.step(dt).frame(out)` with a reused `out` (an n x 2 matrix) allocates
 * nothing.
 */

export { Tour } from './tour/interface.js';
export { GrandTour } from './tour/torus.js';
export { GeodesicTour } from './tour/geodesic.js';
export { givensStages } from './tour/givens.js';
export { TAU, modTau, sinCos } from './tour/angles.js';
export { Rng, randomFrame, randomRotation } from './tour/random.js';
