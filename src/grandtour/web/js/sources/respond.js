/**
 * What the page's data source reads (a fetch `Response`) made from an answer that did not
 * come over HTTP: the widget's messages and an HTML export's embedded table carry the
 * server's own status, headers and body (src/grandtour/export/local.py), so
 * `HttpDataSource` and wire.js read them unchanged.
 */

/** A fetch Response of `body` (ArrayBuffer, typed array, string or null). */
export function response(status, headers, body) {
  return new Response(body ?? null, { status, headers: headers ?? {} });
}

/** A JSON error response, as the server answers one (`{"error": message}`). */
export function errorResponse(status, message) {
  return response(status, { 'content-type': 'application/json' }, JSON.stringify({ error: message }));
}
