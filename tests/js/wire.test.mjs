// The page's data source reads the server's recorded responses (tests/fixtures/
// wire_responses.json, written by scripts/make_wire_fixtures.py from the real app) to
// exactly the values the Python side decoded from the same bytes: shapes, scales,
// non-finite entries, transition metadata and bases, error statuses and messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { DataSourceError, HttpDataSource } from '../../src/grandtour/web/js/datasource.js';
import { decode } from '../../src/grandtour/web/js/float16.js';

const FIX = JSON.parse(readFileSync(new URL('../fixtures/wire_responses.json', import.meta.url), 'utf8'));
const BASE = 'http://127.0.0.1:8787';
const byUrl = new Map(FIX.cases.map((c) => [c.url, c]));

/** The fixture's special strings back to numbers ("NaN", "Infinity", "-Infinity"). */
function num(x) {
  if (Array.isArray(x)) return x.map(num);
  return typeof x === 'string' && ['NaN', 'Infinity', '-Infinity'].includes(x) ? Number(x) : x;
}

const flat = (x) => num(x).flat(Infinity);

/** A fetch that answers each recorded URL with its recorded response, and logs the URLs. */
function recordedFetch(log) {
  return async (url) => {
    assert.ok(url.startsWith(BASE), `request outside the base URL: ${url}`);
    const path = url.slice(BASE.length);
    log.push(path);
    const c = byUrl.get(path);
    if (!c) throw new TypeError(`no recorded response for ${path}`);
    const r = c.response;
    const body = r.body == null ? new Uint8Array(0) : Buffer.from(r.body, 'base64');
    const headers = new Headers(r.headers);
    if (r.etag) headers.set('ETag', '"recorded"');
    return new Response(r.status === 304 ? null : body, { status: r.status, headers });
  };
}

// The PNG's pixels are checked on the Python side; here only the grid matters.
globalThis.createImageBitmap = async (blob) => ({ bitmap: true, type: blob.type });

function source(log = []) {
  return new HttpDataSource(`${BASE}/`, { fetch: recordedFetch(log) });
}

/** Float16 bits decoded the way the page does, against the recorded values. */
function assertValues(bits, scale, expected, what) {
  const got = Array.from(decode(bits, scale));
  const want = flat(expected);
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((v, i) => assert.ok(Object.is(v, want[i]) || v === want[i], `${what}[${i}]: ${v} != ${want[i]}`));
}

const calls = FIX.cases.filter((c) => c.call);

test('the fixture calls every data-source method', () => {
  const methods = Object.getOwnPropertyNames(HttpDataSource.prototype)
    .filter((m) => m !== 'constructor' && !m.startsWith('_'));
  assert.deepEqual(new Set(calls.map((c) => c.call[0])), new Set(methods));
});

for (const c of calls) {
  const [method, ...args] = c.call;
  test(`${method}(${args.join(', ')}) reads ${c.url}`, async () => {
    const log = [];
    const ds = source(log);
    const d = c.decoded;
    if (c.response.status !== 200) {
      if (method === 'images' && c.response.status === 404) {
        assert.equal(await ds.images(...args), null); // a run without thumbnails
        return;
      }
      await assert.rejects(ds[method](...args), (err) => {
        assert.ok(err instanceof DataSourceError);
        assert.equal(err.status, c.response.status);
        assert.equal(err.message, d.error);
        return true;
      });
      return;
    }
    const out = await ds[method](...args);
    assert.equal(log[0], c.url);
    switch (c.kind) {
      case 'json':
        assert.deepEqual(out, d);
        break;
      case 'float16':
        assert.deepEqual([out.n, out.dim, out.scale, out.nonfinite], [d.n, d.dim, d.scale, d.nonfinite]);
        assert.ok(out.data instanceof Uint16Array);
        assert.deepEqual(Array.from(out.data), flat(d.data));
        assertValues(out.data, out.scale, d.values, c.url);
        break;
      case 'adv_layer':
        assert.deepEqual([out.steps1, out.m, out.dim, out.scale, out.nonfinite],
          [d.steps1, d.m, d.dim, d.scale, d.nonfinite]);
        assert.deepEqual(Array.from(out.data), flat(d.data));
        assertValues(out.data, out.scale, d.values, c.url);
        break;
      case 'int16':
        assert.ok(out instanceof Int16Array);
        assert.deepEqual(Array.from(out), d.data);
        break;
      case 'adv_predictions':
        assert.deepEqual([out.steps1, out.m, Array.from(out.data)], [d.steps1, d.m, d.data]);
        break;
      case 'atlas':
        assert.deepEqual({ cols: out.cols, rows: out.rows, cellW: out.cellW, cellH: out.cellH, n: out.n },
          { cols: d.cols, rows: d.rows, cellW: d.cellW, cellH: d.cellH, n: d.n });
        assert.deepEqual(out.bitmap, { bitmap: true, type: 'image/png' });
        break;
      case 'transition': {
        for (const key of ['n', 'k', 'scale', 'nonfinite', 'previous', 'method', 'exact', 'note', 'residual', 'varianceKept', 'reduced']) {
          assert.deepEqual(out[key], d[key], `${c.url}: ${key}`);
        }
        assert.deepEqual(Array.from(out.start), flat(d.start));
        assert.deepEqual(Array.from(out.end), flat(d.end));
        assertValues(out.start, out.scale, d.start_values, `${c.url} start`);
        assertValues(out.end, out.scale, d.end_values, `${c.url} end`);
        // The basis comes from the URL the server named, decoded to its recorded values.
        assert.equal(log[1], d.basisUrl);
        const basis = byUrl.get(d.basisUrl).decoded;
        assert.deepEqual(Object.keys(out.basis), Object.keys(basis));
        for (const [name, b] of Object.entries(basis)) {
          assert.deepEqual([out.basis[name].rows, out.basis[name].cols], [b.rows, b.cols]);
          assert.deepEqual(Array.from(out.basis[name].data), b.data);
        }
        break;
      }
      default:
        assert.fail(`unknown kind ${c.kind}`);
    }
  });
}

test('a response whose body does not match X-Shape is refused', async () => {
  const c = byUrl.get(`/api/runs/${FIX.run}/activations/fc/0/train`);
  const fetchShort = async () => new Response(new Uint8Array(6), { status: 200, headers: new Headers(c.response.headers) });
  const ds = new HttpDataSource(BASE, { fetch: fetchShort });
  await assert.rejects(ds.activations(FIX.run, 'fc', 0, 'train'), /3 values for shape 6 x 4/);
});
