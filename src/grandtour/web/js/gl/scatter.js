/**
 * The WebGL2 scatter renderer: projects float16 activations on the GPU and draws
 * them as dots or thumbnails.
 *
 * A *slice* is `{data: Uint16Array (float16 bits, n x dim row-major), n, dim, scale}`
 * (one layer, epoch and split; or a transition's start or end; or one adversarial
 * step). It is uploaded once, as an RGBA16F texture, the first time it is drawn, and
 * kept (least recently used first out) while it fits the memory budget. Each frame
 * uploads only the tour frame GT[:, :2] (dim x 2 numbers). While the frame moves, the
 * vertex shader projects; a redraw with the frame unchanged (zoom, hover, brush, the tour
 * paused) runs the projection pass once (shaders.js) and then only reads each point's
 * position, as does every read-back of the positions.
 *
 * A *point set* (`key`) holds the per-point attributes that do not depend on the slice:
 * class labels and flags (finite, selected, adversarial).
 */

import { FLOOR_VS, FRAG_T, QUAD_VS, SCATTER_FS, UBO_MAX_T, projectFS, scatterVS } from './shaders.js';

const MEMORY_BUDGET = 768 * 2 ** 20; // bytes of slice textures kept on the GPU

function compile(gl, type, src) {
  const sh = gl.createShader(type);
  gl.shaderSource(sh, src);
  gl.compileShader(sh);
  if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) {
    throw new Error(`shader compile failed: ${gl.getShaderInfoLog(sh)}`);
  }
  return sh;
}

function link(gl, vs, fs, feedback) {
  const prog = gl.createProgram();
  gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, vs));
  gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, fs));
  if (feedback) gl.transformFeedbackVaryings(prog, feedback, gl.INTERLEAVED_ATTRIBS);
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`program link failed: ${gl.getProgramInfoLog(prog)}`);
  const uniforms = {};
  const count = gl.getProgramParameter(prog, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < count; i++) {
    const name = gl.getActiveUniform(prog, i).name;
    uniforms[name] = gl.getUniformLocation(prog, name);
  }
  return { prog, uniforms };
}

export class ScatterRenderer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} [opts] `preserveDrawingBuffer` (for pixel read-back in tests);
   *   `projection`: 'auto' (the default: projected in the vertex shader while the frame
   *   moves, by the projection pass once it stops), 'pass' (always the projection pass) or
   *   'vertex' (always the vertex shader: the fall-back, chosen where the projection pass
   *   cannot render float32, i.e. without EXT_color_buffer_float).
   */
  constructor(canvas, { preserveDrawingBuffer = false, projection = 'auto' } = {}) {
    // Opaque (every frame is cleared to an opaque background): the compositor then copies
    // the canvas instead of blending it, a third of a frame's cost at 1,000 points under
    // SwiftShader (BENCHMARKS.md, page speed).
    const gl = canvas.getContext('webgl2', { antialias: false, alpha: false, preserveDrawingBuffer });
    if (!gl) throw new Error('WebGL2 is not available in this browser: the viewer needs it (try a recent Chrome or Firefox)');
    this.canvas = canvas;
    this.gl = gl;
    this.maxTex = gl.getParameter(gl.MAX_TEXTURE_SIZE);
    // Two programs: the frame as a uniform block (up to 4 UBO_MAX_T dims), or as a texture.
    this._uboOk = gl.getParameter(gl.MAX_UNIFORM_BLOCK_SIZE) >= UBO_MAX_T * 2 * 16;
    const passOk = !!gl.getExtension('EXT_color_buffer_float') &&
      gl.getParameter(gl.MAX_FRAGMENT_UNIFORM_VECTORS) >= 2 * FRAG_T + 8;
    /** How points are projected: 'auto', 'pass' or 'vertex' (see above). */
    this.projection = passOk ? projection : 'vertex';
    this._programs = {};
    this.main = this._program(this._uboOk ? 'ubo' : 'tex');
    this._lastFrame = null; // the frame of the last draw (Float64Array, dim x 2)
    this._f32 = null; // the frame's columns for the projection pass: [fx (4T), fy (4T)]
    this._passScratch = null; // two RG32F targets: the running sums of the pass's chunks
    this._frameUbo = gl.createBuffer();
    this._floor = null;
    this._slices = new Map(); // slice object -> {tex, T, ppr, bytes, used}
    this._bytes = 0;
    this._sets = new Map(); // key -> {vao, labelBuf, flagBuf, n}
    this._frameTex = gl.createTexture();
    this._frameT = -1;
    this._frameData = null;
    this._tick = 0;
    this._palette = gl.createTexture();
    this.setPalette(new Uint8Array([0, 0, 0, 255]));
    this._atlas = null;
    this._atlasInfo = null;
    this._tf = gl.createTransformFeedback();
    this._tfBuf = gl.createBuffer();
    this._tfBytes = 0;
    this._empty = gl.createTexture(); // bound where a sampler has nothing to read
    gl.bindTexture(gl.TEXTURE_2D, this._empty);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA16F, 1, 1, 0, gl.RGBA, gl.HALF_FLOAT, new Uint16Array(4));
  }

  /** The scatter program of `mode` ('ubo', 'tex' or 'frag'; see scatterVS), compiled on first use. */
  _program(mode) {
    if (!this._programs[mode]) {
      const gl = this.gl;
      const p = link(gl, scatterVS(mode), SCATTER_FS, ['v_data']);
      if (mode === 'ubo') gl.uniformBlockBinding(p.prog, gl.getUniformBlockIndex(p.prog, 'Frame'), 0);
      p.ubo = mode === 'ubo';
      p.mode = mode;
      this._programs[mode] = p;
    }
    return this._programs[mode];
  }

  /** The projection pass's program over `t` texels (compiled on first use). */
  _passProgram(t) {
    const key = `pass${t}`;
    if (!this._programs[key]) this._programs[key] = link(this.gl, QUAD_VS, projectFS(t));
    return this._programs[key];
  }

  /** An RG32F W x H texture and a framebuffer drawing into it. */
  _target(W, H) {
    const gl = this.gl;
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RG32F, W, H, 0, gl.RG, gl.FLOAT, null);
    this._noFilter();
    const fbo = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    return { tex, fbo, W, H };
  }

  _dropTarget(t) {
    this.gl.deleteTexture(t.tex);
    this.gl.deleteFramebuffer(t.fbo);
  }

  /**
   * Project slice `g` by the frame (`this._f32`) into its RG32F target, one draw per
   * chunk of FRAG_T texels (shaders.js projectFS), unless it holds this frame's already.
   */
  _projectPass(g) {
    const gl = this.gl;
    const f = this._f32;
    if (g.frame && g.frame.length === f.length && g.frame.every((v, i) => v === f[i])) return;
    const T = g.T;
    if (!g.target) { // about square: the fragments are shaded in 2 x 2 quads
      const W = Math.min(this.maxTex, Math.max(2, 2 * Math.ceil(Math.sqrt(g.n) / 2)));
      g.target = this._target(W, Math.max(1, Math.ceil(g.n / W)));
      const bytes = g.target.W * g.target.H * 8;
      g.bytes += bytes;
      this._bytes += bytes;
    }
    const { W, H } = g.target;
    const chunks = Math.ceil(T / FRAG_T);
    const s = this._passScratch;
    if (chunks > 1 && (!s || s[0].W !== W || s[0].H !== H)) {
      if (s) s.forEach((t) => this._dropTarget(t));
      this._passScratch = [this._target(W, H), this._target(W, H)];
    }
    const blend = gl.isEnabled(gl.BLEND);
    gl.disable(gl.BLEND);
    gl.viewport(0, 0, W, H);
    gl.bindVertexArray(null);
    let prev = null;
    for (let c = 0; c < chunks; c++) {
      const k0 = c * FRAG_T, t = Math.min(FRAG_T, T - k0);
      const prog = this._passProgram(t), u = prog.uniforms;
      gl.useProgram(prog.prog);
      const out = c === chunks - 1 ? g.target : this._passScratch[c % 2];
      gl.bindFramebuffer(gl.FRAMEBUFFER, out.fbo);
      gl.activeTexture(gl.TEXTURE5);
      gl.bindTexture(gl.TEXTURE_2D, g.tex);
      gl.activeTexture(gl.TEXTURE6);
      gl.bindTexture(gl.TEXTURE_2D, prev ? prev.tex : this._empty);
      gl.uniform1i(u.u_data, 5);
      if (u.u_prev) gl.uniform1i(u.u_prev, 6);
      gl.uniform1i(u.u_first, prev ? 0 : 1);
      gl.uniform1i(u.u_T, T);
      gl.uniform1i(u.u_ppr, g.ppr);
      gl.uniform1i(u.u_W, W);
      gl.uniform1i(u.u_k0, k0);
      gl.uniform4fv(u['u_fx[0]'], f, 4 * k0, 4 * t);
      gl.uniform4fv(u['u_fy[0]'], f, 4 * (T + k0), 4 * t);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      prev = out;
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    if (blend) gl.enable(gl.BLEND);
    gl.useProgram(this.main.prog);
    g.frame = Float32Array.from(f);
  }

  /** Resize the drawing buffer to the canvas's CSS size times devicePixelRatio. */
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    return { width: this.canvas.clientWidth, height: this.canvas.clientHeight, dpr };
  }

  /** Class colours: `rgba` is a Uint8Array of 4 bytes per class; alpha 0 hides the class. */
  setPalette(rgba) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this._palette);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, rgba.length / 4, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
    this._noFilter();
  }

  /** The probe thumbnails: an ImageBitmap atlas of `cols` columns of `cellW x cellH` cells. */
  setAtlas(atlas) {
    const gl = this.gl;
    if (!atlas) {
      this._atlasInfo = null;
      return;
    }
    if (!this._atlas) this._atlas = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this._atlas);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, atlas.bitmap);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    const w = atlas.bitmap.width, h = atlas.bitmap.height;
    this._atlasInfo = { cols: atlas.cols, cellU: atlas.cellW / w, cellV: atlas.cellH / h, tint: !!atlas.grey };
  }

  _noFilter() {
    const gl = this.gl;
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  }

  /** The point set `key`: labels (Int16Array, n) and flags (Uint8Array, n; see shaders.js). */
  setPoints(key, { labels, flags }) {
    const gl = this.gl;
    let set = this._sets.get(key);
    if (!set) {
      set = { vao: gl.createVertexArray(), labelBuf: gl.createBuffer(), flagBuf: gl.createBuffer(), n: 0, labels: null, flags: null };
      this._sets.set(key, set);
      gl.bindVertexArray(set.vao);
      const locL = 0, locF = 1; // layout(location = ...) in the vertex shader
      gl.bindBuffer(gl.ARRAY_BUFFER, set.labelBuf);
      gl.enableVertexAttribArray(locL);
      gl.vertexAttribIPointer(locL, 1, gl.SHORT, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, set.flagBuf);
      gl.enableVertexAttribArray(locF);
      gl.vertexAttribIPointer(locF, 1, gl.BYTE, 0, 0); // flags < 128: signed bytes match `in int`
      gl.bindVertexArray(null);
    }
    if (labels && labels !== set.labels) {
      gl.bindBuffer(gl.ARRAY_BUFFER, set.labelBuf);
      gl.bufferData(gl.ARRAY_BUFFER, labels, gl.STATIC_DRAW);
      set.labels = labels;
      set.n = labels.length;
    }
    if (flags && flags !== set.flags) {
      gl.bindBuffer(gl.ARRAY_BUFFER, set.flagBuf);
      gl.bufferData(gl.ARRAY_BUFFER, flags, gl.DYNAMIC_DRAW);
      set.flags = flags;
    }
  }

  /** Forget a point set (e.g. the adversarial points when their record is closed). */
  dropPoints(key) {
    const set = this._sets.get(key);
    if (!set) return;
    const gl = this.gl;
    gl.deleteVertexArray(set.vao);
    gl.deleteBuffer(set.labelBuf);
    gl.deleteBuffer(set.flagBuf);
    this._sets.delete(key);
  }

  /** The texture of a slice, uploaded on first use (RGBA16F, dims padded to 4). */
  _gpuSlice(slice) {
    let g = this._slices.get(slice);
    if (g) {
      g.used = ++this._tick;
      return g;
    }
    const gl = this.gl;
    const { n, dim, data } = slice;
    const T = Math.ceil(dim / 4);
    if (T > this.maxTex) throw new Error(`a layer of ${dim} dimensions exceeds this GPU's texture size (${this.maxTex * 4} max)`);
    const ppr = Math.max(1, Math.floor(this.maxTex / T));
    const rows = Math.max(1, Math.ceil(n / ppr));
    if (rows > this.maxTex) throw new Error(`${n} points x ${dim} dimensions exceed this GPU's texture size`);
    const width = Math.min(n, ppr) * T || T;
    const padded = new Uint16Array(width * rows * 4);
    if (dim === 4 * T) {
      padded.set(data);
    } else { // pad each row to a multiple of 4 with zeros
      for (let p = 0; p < n; p++) padded.set(data.subarray(p * dim, p * dim + dim), p * T * 4);
    }
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA16F, width, rows, 0, gl.RGBA, gl.HALF_FLOAT, padded);
    this._noFilter();
    g = { tex, n, T, ppr, bytes: padded.byteLength, used: ++this._tick, target: null, frame: null };
    this._slices.set(slice, g);
    this._bytes += g.bytes;
    this._evict(slice);
    return g;
  }

  _evict(keep) {
    if (this._bytes <= MEMORY_BUDGET) return;
    const entries = [...this._slices.entries()].sort((a, b) => a[1].used - b[1].used);
    for (const [s, g] of entries) {
      if (this._bytes <= MEMORY_BUDGET) break;
      if (s === keep) continue;
      this.gl.deleteTexture(g.tex);
      if (g.target) this._dropTarget(g.target);
      this._slices.delete(s);
      this._bytes -= g.bytes;
    }
  }

  /** Drop every slice texture (e.g. when another run is opened). */
  clearSlices() {
    for (const g of this._slices.values()) {
      this.gl.deleteTexture(g.tex);
      if (g.target) this._dropTarget(g.target);
    }
    this._slices.clear();
    this._bytes = 0;
  }

  /** Upload the frame GT[:, :2] (Float32Array or Float64Array, dim x 2 row-major). */
  _uploadFrame(frame, dim, ubo) {
    const gl = this.gl;
    const T = Math.ceil(dim / 4);
    if (ubo) { // std140 vec4 u_f[2 MAX_T]: u_f[2k] = first column, u_f[2k + 1] = second
      if (!this._uboData) this._uboData = new Float32Array(UBO_MAX_T * 8);
      const f = this._uboData;
      f.fill(0, 0, T * 8);
      for (let i = 0; i < dim; i++) {
        const k = i >> 2, j = i & 3;
        f[8 * k + j] = frame[2 * i];
        f[8 * k + 4 + j] = frame[2 * i + 1];
      }
      gl.bindBuffer(gl.UNIFORM_BUFFER, this._frameUbo);
      if (!this._uboSized) {
        gl.bufferData(gl.UNIFORM_BUFFER, f.byteLength, gl.DYNAMIC_DRAW);
        this._uboSized = true;
      }
      gl.bufferSubData(gl.UNIFORM_BUFFER, 0, f, 0, T * 8);
      gl.bindBufferBase(gl.UNIFORM_BUFFER, 0, this._frameUbo);
      return;
    }
    if (!this._frameData || this._frameData.length !== T * 8) this._frameData = new Float32Array(T * 8);
    const f = this._frameData;
    f.fill(0);
    for (let i = 0; i < dim; i++) {
      f[i] = frame[2 * i];
      f[4 * T + i] = frame[2 * i + 1];
    }
    gl.bindTexture(gl.TEXTURE_2D, this._frameTex);
    if (this._frameT !== T) {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, T, 2, 0, gl.RGBA, gl.FLOAT, f);
      this._noFilter();
      this._frameT = T;
    } else {
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, T, 2, gl.RGBA, gl.FLOAT, f);
    }
  }

  /** The frame as float32 columns padded to texels (`this._f32`): the pass's uniforms. */
  _frameColumns(frame, dim) {
    const T = Math.ceil(dim / 4);
    if (!this._f32 || this._f32.length !== 8 * T) this._f32 = new Float32Array(8 * T);
    const f = this._f32;
    f.fill(0);
    for (let i = 0; i < dim; i++) {
      f[i] = frame[2 * i];
      f[4 * T + i] = frame[2 * i + 1];
    }
  }

  _bindSet(item, opts) {
    const gl = this.gl, u = this.main.uniforms;
    const A = this._gpuSlice(item.A);
    const B = item.B && item.mix > 0 ? this._gpuSlice(item.B) : null;
    if (B && (B.T !== A.T || B.ppr !== A.ppr)) throw new Error('mixed slices must have the same shape');
    if (this.main.mode === 'frag') { // the projected positions, by the projection pass
      this._projectPass(A);
      if (B) this._projectPass(B);
      if (B && (B.target.W !== A.target.W)) throw new Error('mixed slices must have the same shape');
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, A.target.tex);
      gl.activeTexture(gl.TEXTURE1);
      gl.bindTexture(gl.TEXTURE_2D, (B ?? A).target.tex);
      gl.uniform1i(u.u_posW, A.target.W);
    } else {
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, A.tex);
      gl.activeTexture(gl.TEXTURE1);
      gl.bindTexture(gl.TEXTURE_2D, B ? B.tex : this._empty);
    }
    gl.uniform1i(u.u_T, A.T);
    gl.uniform1i(u.u_ppr, A.ppr);
    gl.uniform1i(u.u_interp, B ? 1 : 0);
    gl.uniform1f(u.u_mix, B ? item.mix : 0);
    gl.uniform1f(u.u_scaleA, item.A.scale ?? 1);
    gl.uniform1f(u.u_scaleB, B ? (item.B.scale ?? 1) : 1);
    gl.uniform1f(u.u_pointSize, item.pointSize ?? opts.pointSize ?? 4);
    const atlas = this._atlasInfo;
    const mode = item.mode === 'images' && atlas ? 1 : 0;
    gl.uniform1i(u.u_mode, mode);
  }

  _common(opts, capture) {
    const gl = this.gl;
    const { frame, dim } = opts;
    const last = this._lastFrame;
    const still = !!last && last.length === 2 * dim && last.every((v, i) => v === frame[i]);
    if (!capture && !still) {
      if (!last || last.length !== 2 * dim) this._lastFrame = new Float64Array(2 * dim);
      for (let i = 0; i < 2 * dim; i++) this._lastFrame[i] = frame[i];
    }
    // The projection pass for a read-back and for a redraw of the same frame (see above).
    const pass = this.projection === 'pass' || (this.projection === 'auto' && (capture || still));
    if (pass) {
      this.main = this._program('frag');
      this._frameColumns(frame, dim);
    } else {
      this.main = this._program(this._uboOk && Math.ceil(dim / 4) <= UBO_MAX_T ? 'ubo' : 'tex');
    }
    const u = this.main.uniforms;
    gl.useProgram(this.main.prog);
    if (!pass) this._uploadFrame(frame, dim, this.main.ubo);
    gl.activeTexture(gl.TEXTURE2);
    gl.bindTexture(gl.TEXTURE_2D, this._frameTex);
    gl.activeTexture(gl.TEXTURE3);
    gl.bindTexture(gl.TEXTURE_2D, this._palette);
    gl.activeTexture(gl.TEXTURE4);
    gl.bindTexture(gl.TEXTURE_2D, this._atlas ?? this._palette);
    if (u.u_A) gl.uniform1i(u.u_A, 0);
    if (u.u_B) gl.uniform1i(u.u_B, 1);
    if (u.u_posA) gl.uniform1i(u.u_posA, 0);
    if (u.u_posB) gl.uniform1i(u.u_posB, 1);
    if (u.u_frame) gl.uniform1i(u.u_frame, 2);
    gl.uniform1i(u.u_palette, 3);
    if (u.u_atlas) gl.uniform1i(u.u_atlas, 4);
    const atlas = this._atlasInfo;
    gl.uniform1i(u.u_atlasCols, atlas ? atlas.cols : 1);
    if (u.u_cellUV) gl.uniform2f(u.u_cellUV, atlas ? atlas.cellU : 0, atlas ? atlas.cellV : 0);
    if (u.u_tint) gl.uniform1i(u.u_tint, atlas && atlas.tint ? 1 : 0);
    gl.uniform1i(u.u_capture, capture ? 1 : 0);
    gl.uniform1i(u.u_highlight, opts.highlight ?? -1);
    const view = opts.view ?? { center: [0, 0], pxPerUnit: 1, width: 1, height: 1, dpr: 1 };
    gl.uniform2f(u.u_center, view.center[0], view.center[1]);
    gl.uniform1f(u.u_pxPerUnit, view.pxPerUnit);
    gl.uniform2f(u.u_viewport, view.width, view.height);
    gl.uniform1f(u.u_dpr, view.dpr ?? 1);
  }

  /**
   * Draw one frame.
   * @param {object} opts
   *   frame: GT[:, :2] as a flat (dim x 2) array; dim: the data dimension;
   *   view: {center: [x, y] (data units), pxPerUnit, width, height (CSS px), dpr};
   *   sets: [{key, A, B, mix, pointSize, mode: 'points'|'images', emphasis: bool}];
   *   highlight: class index or -1; background: [r, g, b] (opaque: the canvas has no alpha).
   */
  draw(opts) {
    const gl = this.gl;
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    const bg = opts.background ?? [1, 1, 1];
    gl.clearColor(bg[0], bg[1], bg[2], 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!opts.sets || opts.sets.length === 0) return;
    gl.enable(gl.BLEND);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    this._common(opts, false);
    const u = this.main.uniforms;
    for (const item of opts.sets) {
      const set = this._sets.get(item.key);
      if (!set || !item.A || set.n === 0) continue;
      this._bindSet(item, opts);
      gl.bindVertexArray(set.vao);
      gl.uniform1i(u.u_pass, 0);
      gl.drawArrays(gl.POINTS, 0, Math.min(set.n, item.A.n));
      if (item.emphasis) { // highlighted class and selection on top of the rest
        gl.uniform1i(u.u_pass, 1);
        gl.drawArrays(gl.POINTS, 0, Math.min(set.n, item.A.n));
      }
    }
    gl.bindVertexArray(null);
  }

  /**
   * The projected data coordinates `x GT[:, :2]` of every point of one set, computed
   * by the same vertex shader as the drawing and read back by transform feedback.
   * @returns {Float32Array} 2n values (points in order; non-finite points give 0, 0).
   */
  readPositions(opts, item) {
    const gl = this.gl;
    const set = this._sets.get(item.key);
    if (!set) throw new Error(`no point set ${item.key}`);
    const n = Math.min(set.n, item.A.n);
    this._common(opts, true);
    this._bindSet(item, opts);
    const bytes = n * 8;
    gl.bindBuffer(gl.TRANSFORM_FEEDBACK_BUFFER, this._tfBuf);
    if (this._tfBytes < bytes) {
      gl.bufferData(gl.TRANSFORM_FEEDBACK_BUFFER, bytes, gl.STREAM_READ);
      this._tfBytes = bytes;
    }
    gl.bindBuffer(gl.TRANSFORM_FEEDBACK_BUFFER, null);
    gl.bindVertexArray(set.vao);
    gl.enable(gl.RASTERIZER_DISCARD);
    gl.bindTransformFeedback(gl.TRANSFORM_FEEDBACK, this._tf);
    gl.bindBufferBase(gl.TRANSFORM_FEEDBACK_BUFFER, 0, this._tfBuf);
    gl.beginTransformFeedback(gl.POINTS);
    gl.drawArrays(gl.POINTS, 0, n);
    gl.endTransformFeedback();
    gl.bindBufferBase(gl.TRANSFORM_FEEDBACK_BUFFER, 0, null);
    gl.bindTransformFeedback(gl.TRANSFORM_FEEDBACK, null);
    gl.disable(gl.RASTERIZER_DISCARD);
    gl.bindVertexArray(null);
    const out = new Float32Array(2 * n);
    gl.bindBuffer(gl.COPY_READ_BUFFER, this._tfBuf);
    gl.getBufferSubData(gl.COPY_READ_BUFFER, 0, out);
    gl.bindBuffer(gl.COPY_READ_BUFFER, null);
    return out;
  }

  /**
   * The benchmark floor: draw `n` precomputed 2-D points (`positions`, a Float32Array
   * of 2n) with a trivial vertex shader and the same fragment shader.
   */
  drawFloor(positions, view, pointSize) {
    const gl = this.gl;
    if (!this._floor) {
      this._floor = link(gl, FLOOR_VS, SCATTER_FS);
      this._floor.vao = gl.createVertexArray();
      this._floor.buf = gl.createBuffer();
    }
    const f = this._floor, u = f.uniforms;
    gl.useProgram(f.prog);
    gl.bindVertexArray(f.vao);
    if (f.positions !== positions) {
      gl.bindBuffer(gl.ARRAY_BUFFER, f.buf);
      gl.bufferData(gl.ARRAY_BUFFER, positions, gl.STATIC_DRAW);
      const loc = gl.getAttribLocation(f.prog, 'a_pos');
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
      f.positions = positions;
    }
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.uniform2f(u.u_viewport, view.width, view.height);
    gl.uniform1f(u.u_pxPerUnit, view.pxPerUnit);
    gl.uniform1f(u.u_pointSize, pointSize);
    gl.uniform1f(u.u_dpr, view.dpr ?? 1);
    if (u.u_mode) gl.uniform1i(u.u_mode, 0);
    gl.drawArrays(gl.POINTS, 0, positions.length / 2);
    gl.bindVertexArray(null);
  }
}
