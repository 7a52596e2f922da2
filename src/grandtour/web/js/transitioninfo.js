/**
 * What a layer transition is, as the page says it: exact (an aligned map, checked
 * against the recorded data) or a least-squares fit, with its method, residual and the
 * server's note (X-Method, X-Exact, X-Note; the residual from X-Residual, or, until the
 * server sends that, from the note).
 */

/**
 * What a transition is, for the page to say: `{from, method, exact, residual, note}`
 * pooled over the shown splits (exact only if every split's is; the largest residual).
 */
export function transitionInfo(parts) {
  const infos = parts.map((p) => p.info ?? {});
  const residuals = infos.map((i) => i.residual).filter((r) => Number.isFinite(r));
  const first = infos[0] ?? {};
  return {
    from: first.previous ?? '',
    method: first.method ?? '',
    exact: infos.every((i) => i.exact !== false),
    residual: residuals.length ? Math.max(...residuals) : null,
    note: first.note ?? '',
  };
}

/** The method names the server sends (X-Method), as the page says them. */
const METHODS = {
  svd: 'SVD-aligned', coordinatewise: 'coordinate-wise', identity: 'identity', maxpool: 'max-pool as average-pool',
  lstsq: 'least squares',
};

/**
 * How the page labels a transition: `{text: 'exact' | 'fit', what (a sentence: method,
 * residual), title (with the note)}`, or null for none.
 */
export function describeTransition(tr) {
  if (!tr) return null;
  const method = METHODS[tr.method] ?? (tr.method || 'unknown method');
  const residual = Number.isFinite(tr.residual) ? `relative residual ${tr.residual.toPrecision(2)}` : '';
  const what = tr.exact ? `exact (${method})` : `fit (${method}${residual ? `, ${residual}` : ''})`;
  return { text: tr.exact ? 'exact' : 'fit', what, title: `${tr.from ? `${tr.from} → ` : ''}${what}${tr.note ? `: ${tr.note}` : ''}` };
}
