/**
 * The page's reader of the server's wire format (the one definition is
 * src/grandtour/server/wire.py): each function takes a response's headers (anything
 * with `get(name)`) and body (an ArrayBuffer) and returns what the page works with.
 * tests/js/wire.test.mjs feeds it the recorded responses of
 * tests/fixtures/wire_responses.json.
 *
 *   float16 slice   raw little-endian half floats, row-major, shape X-Shape; the value is
 *                   bits * X-Scale (a power of two); X-Nonfinite rows hold a NaN or inf
 *   int16 vector    labels and predictions (-1: not recorded), shape X-Shape
 *   float32 bases   row-major matrices, concatenated: X-Shape r,c,r,c; X-Basis-Names
 *   atlas           X-Atlas: cols,rows,cell_w,cell_h,n
 */

/** A request that failed, or a response that breaks the format: `status` is the HTTP
 * status (0 when the server was not reached or the response is malformed). */
export class DataSourceError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = 'DataSourceError';
    this.status = status;
  }
}

/** Non-negative integers of a comma-separated header (X-Shape, X-Atlas). */
export function ints(header, what) {
  if (header == null) throw new DataSourceError(`the server sent no ${what} header`);
  const v = header.split(',').map((s) => Number(s.trim()));
  if (v.some((x) => !Number.isInteger(x) || x < 0)) throw new DataSourceError(`bad ${what} header: ${header}`);
  return v;
}

function scaleOf(headers) {
  return Number(headers.get('X-Scale') ?? 1);
}

function nonfiniteOf(headers) {
  return Number(headers.get('X-Nonfinite') ?? 0);
}

/** `{data: Uint16Array (float16 bits, n x dim), n, dim, scale, nonfinite}` of an activation slice. */
export function activationSlice(headers, buf, what) {
  const [n, dim] = ints(headers.get('X-Shape'), 'X-Shape');
  const data = new Uint16Array(buf);
  if (data.length !== n * dim) throw new DataSourceError(`activations of ${what}: ${data.length} values for shape ${n} x ${dim}`);
  return { data, n, dim, scale: scaleOf(headers), nonfinite: nonfiniteOf(headers) };
}

/** Labels or predictions: Int16Array (n). */
export function int16Vector(buf) {
  return new Int16Array(buf);
}

/**
 * A transition: float16 `start` then `end` (each n x k, one scale) and its metadata:
 * the layer it starts from, the method, whether it is exact (and the note saying why
 * not), the relative residual of its check (X-Residual, or null), the variance each
 * side's reduction keeps, and which sides are reduced.
 */
export function transitionSlices(headers, buf, what) {
  const [n, k] = ints(headers.get('X-Shape'), 'X-Shape');
  const all = new Uint16Array(buf);
  if (all.length !== 2 * n * k) throw new DataSourceError(`transition into ${what}: ${all.length} values for 2 x ${n} x ${k}`);
  const list = (name) => (headers.get(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return {
    start: all.subarray(0, n * k),
    end: all.subarray(n * k),
    n, k,
    scale: scaleOf(headers),
    nonfinite: nonfiniteOf(headers),
    previous: headers.get('X-Previous') ?? '',
    method: headers.get('X-Method') ?? '',
    exact: headers.get('X-Exact') !== '0',
    note: headers.get('X-Note') ?? '',
    residual: headers.get('X-Residual') != null ? Number(headers.get('X-Residual')) : null,
    varianceKept: list('X-Variance-Kept').map(Number),
    reduced: list('X-Reduced').map((s) => s === '1'),
    basisUrl: headers.get('X-Basis'),
  };
}

/**
 * The basis changes of a transition: little-endian float32 matrices, row-major and
 * concatenated, their shapes in `X-Shape` (`d_prev,d_prev,d,d`) and their names in
 * `X-Basis-Names` (`basis_in,basis_out`: orthogonal, `start[:, :d_prev] = Z_prev
 * basis_in`, `end[:, :d] = Z basis_out`). Returns `{name: {rows, cols, data}}`.
 */
export function bases(headers, buf) {
  const shapeHeader = (headers.get('X-Shape') ?? '').trim();
  // "r,c;r,c" or "r,c,r,c": one (rows, cols) pair per matrix.
  const flat = shapeHeader ? ints(shapeHeader.replace(/;/g, ','), 'X-Shape') : [];
  if (flat.length % 2) throw new DataSourceError(`bad basis X-Shape: ${shapeHeader}`);
  const names = (headers.get('X-Basis-Names') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const values = new Float32Array(buf);
  const out = {};
  let offset = 0;
  for (let k = 0; k < flat.length; k += 2) {
    const [rows, cols] = [flat[k], flat[k + 1]];
    const data = Float64Array.from(values.subarray(offset, offset + rows * cols));
    if (data.length !== rows * cols) throw new DataSourceError(`basis ${k / 2}: too few values for ${rows} x ${cols}`);
    out[names[k / 2] ?? `basis${k / 2}`] = { rows, cols, data };
    offset += rows * cols;
  }
  return out;
}

/** `{data: Uint16Array (S+1, M, dim), steps1, m, dim, scale, nonfinite}` of an adversarial layer. */
export function adversarialSlice(headers, buf, what) {
  const [steps1, m, dim] = ints(headers.get('X-Shape'), 'X-Shape');
  const data = new Uint16Array(buf);
  if (data.length !== steps1 * m * dim) throw new DataSourceError(`adversarial ${what}: bad size`);
  return { data, steps1, m, dim, scale: scaleOf(headers), nonfinite: nonfiniteOf(headers) };
}

/** `{data: Int16Array (S+1, M), steps1, m}` of an adversarial record's predictions. */
export function adversarialPredictions(headers, buf) {
  const data = new Int16Array(buf);
  const shape = headers.get('X-Shape');
  const [steps1, m] = shape ? ints(shape, 'X-Shape') : [1, data.length];
  return { data, steps1, m };
}

/** `{cols, rows, cellW, cellH, n}`: the grid of a sprite atlas. */
export function atlasGrid(headers) {
  const [cols, rows, cellW, cellH, n] = ints(headers.get('X-Atlas'), 'X-Atlas');
  return { cols, rows, cellW, cellH, n };
}
