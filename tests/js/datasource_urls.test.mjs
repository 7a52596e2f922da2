// Every URL the page's data source asks for is relative to the page (no leading "/"), so
// the viewer works under whatever path prefix a proxy puts it at (/proxy/8787/), the basis
// URL the server names in X-Basis ("/api/runs/...") included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { HttpDataSource } from '../../src/grandtour/web/js/datasource.js';

const FIX = JSON.parse(readFileSync(new URL('../fixtures/wire_responses.json', import.meta.url), 'utf8'));
const byUrl = new Map(FIX.cases.map((c) => [c.url, c]));
const PAGE = 'https://hub.example.org/user/me/proxy/8787/';

globalThis.createImageBitmap = async () => ({ bitmap: true });

/** Resolves each URL against PAGE as a browser would, answers it from the fixture by the
 * path below the prefix, and logs both. */
function prefixedFetch(log) {
  return async (url) => {
    const full = new URL(url, PAGE);
    log.push({ url, full: full.href });
    const prefix = new URL(PAGE).pathname;
    assert.ok(full.pathname.startsWith(prefix), `${url} escapes the page's prefix: ${full.href}`);
    const c = byUrl.get(`/${full.pathname.slice(prefix.length)}`);
    if (!c) return new Response('{"error": "not recorded"}', { status: 404 });
    const r = c.response;
    const body = r.body == null ? new Uint8Array(0) : Buffer.from(r.body, 'base64');
    return new Response(r.status === 304 ? null : body, { status: r.status, headers: new Headers(r.headers) });
  };
}

const calls = FIX.cases.filter((c) => c.call && c.response.status === 200);

test('the fixture has calls to replay, a transition among them', () => {
  assert.ok(calls.length > 5);
  assert.ok(calls.some((c) => c.call[0] === 'transition'));
});

for (const c of calls) {
  const [method, ...args] = c.call;
  test(`${method}(${args.join(', ')}) asks only for page-relative URLs`, async () => {
    const log = [];
    const ds = new HttpDataSource('', { fetch: prefixedFetch(log) });
    await ds[method](...args);
    assert.ok(log.length >= 1);
    for (const { url, full } of log) {
      assert.ok(!url.startsWith('/') && !/^[a-z]+:/.test(url), `not page-relative: ${url}`);
      assert.ok(full.startsWith(`${PAGE}api/runs`), full);
    }
    if (method === 'transition') assert.equal(log.length, 2); // the data, then the basis it named
  });
}

test('an explicit base is used as given, with or without its trailing slash', async () => {
  for (const base of ['http://127.0.0.1:8787', 'http://127.0.0.1:8787/']) {
    const seen = [];
    const ds = new HttpDataSource(base, { fetch: async (url) => { seen.push(url); return new Response('[]'); } });
    await ds.runs();
    assert.deepEqual(seen, ['http://127.0.0.1:8787/api/runs']);
  }
});
