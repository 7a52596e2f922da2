"""The renderer's two GPU projections (``gl/scatter.js``) against each other and the maths.

While the tour moves, the vertex shader projects; a redraw of the same frame and every
read-back of the positions use the projection pass (a float32 render target written a
chunk of dimensions at a time). Both must give ``x GT[:, :2]`` of the float16 data to
float32 rounding, for a narrow layer, one wider than a chunk, and one wider than the
uniform block (the frame as a texture), with two slices mixed, a non-finite row, and a
point count that does not fill the pass's square target. Without EXT_color_buffer_float
the renderer falls back to the vertex shader alone.
"""

from __future__ import annotations

import base64

import numpy as np

N = 300  # not a square: the pass's last row is partly empty
DIMS = [10, 130, 1030]  # one chunk; 2 chunks and a remainder (FRAG_T = 32 texels); > UBO_MAX_T texels
NAN_ROW = 7
F32 = 2.0**-24  # float32 unit roundoff

JS = """async ({cases, n, nanRow, hideExt}) => {
  if (hideExt) {
    const orig = WebGL2RenderingContext.prototype.getExtension;
    WebGL2RenderingContext.prototype.getExtension = function (name) {
      return name === 'EXT_color_buffer_float' ? null : orig.call(this, name);
    };
  }
  const { ScatterRenderer } = await import('./js/gl/scatter.js');
  const bits = (b64) => { const s = atob(b64); const u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new Uint16Array(u.buffer); };
  const flags = new Uint8Array(n).fill(1); flags[nanRow] = 0;
  const out = [];
  for (const c of cases) {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 64;
    const r = new ScatterRenderer(canvas, { projection: c.projection });
    r.setPoints('k', { labels: new Int16Array(n), flags });
    const A = { data: bits(c.a), n, dim: c.dim, scale: 1.5 }, B = { data: bits(c.b), n, dim: c.dim, scale: 0.5 };
    const view = { center: [0, 0], pxPerUnit: 10, width: 64, height: 64, dpr: 1 };
    const res = { projection: r.projection, modes: [] };
    for (const [key, item] of [['a', { key: 'k', A, mix: 0 }], ['mixed', { key: 'k', A, B, mix: 0.3 }]]) {
      const frame = Float64Array.from(c.frame), other = Float64Array.from(c.frame.map((v) => -v));
      const opts = { frame, dim: c.dim, view, sets: [item] };
      r.draw({ ...opts, frame: other }); res.modes.push(r.main.mode);  // a moving frame
      r.draw(opts); res.modes.push(r.main.mode);                      // a new frame
      r.draw(opts); res.modes.push(r.main.mode);                      // the same frame again
      res[key] = Array.from(r.readPositions(opts, item));
    }
    const err = r.gl.getError();
    res.glError = err;
    r.clearSlices();
    r.gl.getExtension('WEBGL_lose_context')?.loseContext();
    out.push(res);
  }
  return out;
}"""


def _case(rng, dim):
    a = (rng.standard_normal((N, dim)) * 2).astype(np.float16)
    b = (rng.standard_normal((N, dim)) + 1).astype(np.float16)
    a[NAN_ROW, 3] = np.nan
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    enc = {k: base64.b64encode(v.view(np.uint16).tobytes()).decode() for k, v in (("a", a), ("b", b))}
    return a.astype(np.float64), b.astype(np.float64), q, enc


def _run(page, cases_by_projection, hide_ext=False):
    cases = [{"projection": p, "dim": dim, "frame": q.ravel().tolist(), **enc}
             for p in cases_by_projection for dim, (_, _, q, enc) in cases_by_projection[p].items()]
    return page.evaluate(JS, {"cases": cases, "n": N, "nanRow": NAN_ROW, "hideExt": hide_ext})


def _check_maths(res, a, b, q, dim):
    ok = np.ones(N, bool)
    ok[NAN_ROW] = False
    want_a = 1.5 * (a @ q)
    want_m = 0.7 * want_a + 0.3 * (0.5 * (b @ q))
    bound_a = (dim + 4) * F32 * 1.5 * (np.abs(a) @ np.abs(q)) + 1e-7
    bound_m = 0.7 * bound_a + 0.3 * (dim + 4) * F32 * 0.5 * (np.abs(b) @ np.abs(q)) + 4 * F32 * np.abs(want_m)
    for key, want, bound in (("a", want_a, bound_a), ("mixed", want_m, bound_m)):
        got = np.array(res[key]).reshape(N, 2)
        assert np.all(np.abs(got[ok] - want[ok]) <= bound[ok]), f"{key}, dim {dim}: off the maths"
        assert np.all(got[~ok] == 0), "a non-finite point is not projected"
    return {k: np.array(res[k]).reshape(N, 2) for k in ("a", "mixed")}


def test_the_projection_pass_and_the_vertex_shader_give_the_same_positions(open_page):
    page = open_page("bench.html", wait=False)
    rng = np.random.default_rng(3)
    data = {dim: _case(rng, dim) for dim in DIMS}
    out = _run(page, {"vertex": data, "pass": data, "auto": data})
    by = {}
    for res, (proj, dim) in zip(out, [(p, d) for p in ("vertex", "pass", "auto") for d in DIMS]):
        assert res["glError"] == 0
        assert res["projection"] == proj
        a, b, q, _ = data[dim]
        by[proj, dim] = _check_maths(res, a, b, q, dim)
        vertex_mode = "ubo" if dim <= 1024 else "tex"
        want_modes = {"vertex": [vertex_mode] * 3, "pass": ["frag"] * 3,
                      "auto": [vertex_mode, vertex_mode, "frag"]}[proj]
        assert res["modes"] == want_modes * 2, f"{proj}, dim {dim}: drawn by {res['modes']}"
    for dim in DIMS:
        a, b, q, _ = data[dim]
        # Both sum the same products in the same order: float32 rounding of the sum at most.
        scale = (dim + 4) * F32 * 1.5 * np.nan_to_num(np.abs(a) + np.abs(b)) @ np.abs(q) + 1e-7
        for key in ("a", "mixed"):
            d = np.abs(by["pass", dim][key] - by["vertex", dim][key])
            assert np.all(d <= scale), f"dim {dim} {key}: the two projections differ by {d.max()}"
            np.testing.assert_array_equal(by["auto", dim][key], by["pass", dim][key])
    assert not page.errors, page.errors


def test_without_float_render_targets_the_renderer_falls_back_to_the_vertex_shader(open_page):
    page = open_page("bench.html", wait=False)
    rng = np.random.default_rng(4)
    dim = 130
    a, b, q, enc = _case(rng, dim)
    (res,) = _run(page, {"auto": {dim: (a, b, q, enc)}}, hide_ext=True)
    assert res["projection"] == "vertex"
    assert res["modes"] == ["ubo"] * 6
    assert res["glError"] == 0
    _check_maths(res, a, b, q, dim)
    assert not page.errors, page.errors
