/**
 * Small dense linear algebra for the Grand Tour: the entry point, re-exporting the
 * modules under linalg/ (mirror of the numpy helpers that tour.py and manipulate.py use).
 *
 * Convention: a matrix is a plain object `{rows, cols, data}` where `data` is a
 * row-major Float64Array of length `rows * cols`: entry (i, j) is
 * `data[i * cols + j]`. Data points are row vectors and a map acts on the right,
 * `X @ M` (Li, Zhao, Scheidegger, Distill 2020). Inputs are never modified; an `out`
 * argument, where offered, is written and returned (nothing allocated per frame).
 *
 * - linalg/matrix.js: construction, checks, transpose, products, norms, det.
 * - linalg/kernels.js: the row kernels `rowDots`, `rowCombine` (all the O(n^3) work).
 * - linalg/orthogonality.js: `checkOrthogonal` and the errors it measures
 *   (tour.py `check_orthogonal`).
 * - linalg/svd2.js: the closed-form 2 x 2 SVD (tour.py `svd2`).
 * - linalg/planes.js: orthonormal frames and principal angles between planes
 *   (tour.py `principal_angles`, `_principal_pairs`).
 * - linalg/householder.js: blocked Householder QR, for random rotations (used by
 *   tour/random.js; not re-exported).
 */

export {
  asMatrix, asSquare, asVector, det, dot, frobeniusNorm, fromRows, identity, matmul,
  matrix, maxAbs, maxAbsDiff, norm, toRows, transpose,
} from './linalg/matrix.js';
export { rowCombine, rowDots } from './linalg/kernels.js';
export {
  EXACT_ORTHOGONALITY_MAX_N, ORTHOGONALITY_PROBES, checkOrthogonal, orthogonalityError,
  orthogonalityErrorEstimate,
} from './linalg/orthogonality.js';
export { svd2 } from './linalg/svd2.js';
export { orthonormalFrame, principalAngles, principalPairs } from './linalg/planes.js';
