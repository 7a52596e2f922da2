/**
 * GLSL (ES 3.00) of the scatter renderer.
 *
 * The projection happens here, on the GPU: each point's activations live in an
 * RGBA16F texture (4 dimensions per texel, the point's texels side by side in one
 * row); the tour frame GT[:, :2] is a uniform block (up to 4 UBO_MAX_T dimensions) or,
 * wider, a small RGBA32F texture (row 0: first column, row 1: second column, 4
 * dimensions per texel). A vertex is a probe index (gl_VertexID): it fetches its
 * texels and takes two dot products per texel; when two slices are mixed (epochs, a
 * layer transition, adversarial steps) it does both in one pass and mixes:
 * (1 - t) x GT + t y GT = ((1 - t) x + t y) GT.
 *
 * A redraw with the frame unchanged (a zoom, a hover, a brush, the tour paused) need not
 * project again: the *projection pass* (`projectFS`) writes each point's x GT[:, :2] into
 * an RG32F texture (one texel per point; EXT_color_buffer_float), a chunk of FRAG_T
 * texels per draw whose frame values are uniforms read at constant indices (SwiftShader
 * turns a dynamic index into a per-fragment gather with bounds checks); each chunk adds
 * to the sum of the chunks before in the order of `project` below, so both give the same
 * float32 numbers. The scatter shader `scatterVS('frag')` then reads one texel per point.
 */

/** Texels (4 dimensions each) of the frame in the uniform block: up to 1024 dimensions. */
export const UBO_MAX_T = 256;

/** Texels (4 dimensions each) per draw of the projection pass. */
export const FRAG_T = 32;

/**
 * The vertex shader. `mode` 'ubo': it projects, the frame a uniform block (cheaper to read
 * than a texture on many GPUs and on SwiftShader); 'tex': it projects, the frame an
 * RGBA32F texture of any width; 'frag': it reads the positions of the projection pass.
 */
export function scatterVS(mode) {
  return `#version 300 es
#define PROJ_TEX ${mode === 'frag' ? 1 : 0}
#define FRAME_UBO ${mode === 'ubo' ? 1 : 0}
#define MAX_T ${UBO_MAX_T}
precision highp float;
precision highp int;
precision highp sampler2D;
${VS_BODY}`;
}

const VS_BODY = `
#if PROJ_TEX
uniform sampler2D u_posA;       // slice A projected (RG32F, point p at (p % u_posW, p / u_posW))
uniform sampler2D u_posB;       // slice B projected (same layout), used when u_interp
uniform int u_posW;
#else
uniform sampler2D u_A;          // slice A: RGBA16F, texels per point u_T
uniform sampler2D u_B;          // slice B (same layout), used when u_interp
#endif
#if PROJ_TEX
#elif FRAME_UBO
// u_f[2k], u_f[2k + 1]: the frame's first and second columns for dimensions 4k..4k+3.
layout(std140) uniform Frame { vec4 u_f[2 * MAX_T]; };
#define FX(k) u_f[2 * (k)]
#define FY(k) u_f[2 * (k) + 1]
#else
uniform sampler2D u_frame;      // RGBA32F, u_T x 2: frame columns packed 4 per texel
#define FX(k) texelFetch(u_frame, ivec2(k, 0), 0)
#define FY(k) texelFetch(u_frame, ivec2(k, 1), 0)
#endif
uniform sampler2D u_palette;    // RGBA8, classes x 1: colour, alpha 0 = class hidden
uniform int u_T;                // texels per point = ceil(dim / 4)
uniform int u_ppr;              // points per texture row
uniform bool u_interp;
uniform float u_mix;            // t in [0, 1]
uniform float u_scaleA, u_scaleB;
uniform vec2 u_center;          // data-space point drawn at the middle of the view
uniform float u_pxPerUnit;      // CSS pixels per data unit (zoom included)
uniform vec2 u_viewport;        // CSS pixels
uniform float u_dpr;
uniform float u_pointSize;      // CSS pixels
uniform int u_highlight;        // class highlighted (-1: none)
uniform int u_pass;             // 0: every point, 1: only emphasised ones (drawn on top)
uniform bool u_capture;         // transform feedback read-back: compute every finite point
uniform int u_mode;             // 0: dots, 1: thumbnails
uniform int u_atlasCols;

layout(location = 0) in int a_label;
layout(location = 1) in int a_flags; // bit 0: finite, bit 1: selected, bit 2: adversarial (bit 3, out: off-panel),
                                     // bit 4: emphasised as the legend's class (not selected: no ring)

out vec2 v_data;                // projected data coordinates, x GT[:, :2] (read back by tests)
flat out vec4 v_color;
flat out int v_flags;
flat out ivec2 v_cell;

#if !PROJ_TEX
vec2 project(sampler2D S, int p) {
  int row = p / u_ppr;
  int x0 = (p - row * u_ppr) * u_T;
  vec2 acc = vec2(0.0);
  for (int k = 0; k < u_T; k++) {
    vec4 a = texelFetch(S, ivec2(x0 + k, row), 0);
    acc += vec2(dot(a, FX(k)), dot(a, FY(k)));
  }
  return acc;
}

// Both slices in one pass: the frame is read once per texel.
vec2 projectMixed(int p) {
  int row = p / u_ppr;
  int x0 = (p - row * u_ppr) * u_T;
  vec2 accA = vec2(0.0), accB = vec2(0.0);
  for (int k = 0; k < u_T; k++) {
    ivec2 at = ivec2(x0 + k, row);
    vec4 a = texelFetch(u_A, at, 0), b = texelFetch(u_B, at, 0);
    vec4 fx = FX(k), fy = FY(k);
    accA += vec2(dot(a, fx), dot(a, fy));
    accB += vec2(dot(b, fx), dot(b, fy));
  }
  return mix(accA * u_scaleA, accB * u_scaleB, u_mix);
}
#endif

void main() {
  int p = gl_VertexID;
  v_flags = a_flags;
  v_data = vec2(0.0);
  v_cell = ivec2(p % max(u_atlasCols, 1), p / max(u_atlasCols, 1));
  gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume: not drawn
  gl_PointSize = 0.0;
  if ((a_flags & 1) == 0) return;          // non-finite: counted, never drawn
  vec4 color = texelFetch(u_palette, ivec2(a_label, 0), 0);
  bool emphasised = (u_highlight >= 0 && a_label == u_highlight) || (a_flags & 18) != 0;
  if (!u_capture) {
    if (color.a == 0.0) return;            // class hidden in the legend
    if (u_pass == 1 && !emphasised) return;
  }
#if PROJ_TEX
  ivec2 q = ivec2(p % u_posW, p / u_posW);
  vec2 pA = texelFetch(u_posA, q, 0).rg;
  vec2 pos = u_interp ? mix(pA * u_scaleA, texelFetch(u_posB, q, 0).rg * u_scaleB, u_mix) : pA * u_scaleA;
#else
  vec2 pos = u_interp ? projectMixed(p) : project(u_A, p) * u_scaleA;
#endif
  v_data = pos;
  if (u_highlight >= 0 && a_label != u_highlight && (a_flags & 18) == 0) {
    color = vec4(mix(color.rgb, vec3(0.82), 0.8), 0.35);
  }
  v_color = color;
  vec2 px = (pos - u_center) * u_pxPerUnit;
  // A point beyond the panel is drawn at its edge, as a ring (never silently clipped).
  vec2 edge = 0.5 * u_viewport - vec2(0.5 * max(u_pointSize, 6.0));
  vec2 inside = clamp(px, -edge, edge);
  if (!u_capture && inside != px) v_flags = a_flags | 8;
  gl_Position = vec4(inside / (0.5 * u_viewport), 0.0, 1.0);
  float size = u_mode == 1 ? u_pointSize : u_pointSize * (((a_flags & 6) != 0) ? 1.8 : 1.0);
  if ((v_flags & 8) != 0) size = max(size, 6.0);
  gl_PointSize = size * u_dpr;
}
`;

/** The full-screen triangle of the projection pass. */
export const QUAD_VS = `#version 300 es
void main() {
  vec2 c = vec2(float((gl_VertexID & 1) << 2), float((gl_VertexID & 2) << 1)) - 1.0;
  gl_Position = vec4(c, 0.0, 1.0);
}
`;

/**
 * The projection pass over texels u_k0 .. u_k0 + t - 1 (t <= FRAG_T) of every point: the
 * fragment at (x, y) is point y u_W + x; it adds their two dot products to the running
 * sum u_prev (the chunks before; none for the first) and writes the sum.
 */
export function projectFS(t) {
  const sums = [];
  for (let k = 0; k < t; k++) {
    sums.push(`  a = texelFetch(u_data, ivec2(x0 + ${k}, row), 0);`);
    sums.push(`  acc += vec2(dot(a, u_fx[${k}]), dot(a, u_fy[${k}]));`);
  }
  return `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
uniform sampler2D u_data;       // the slice: RGBA16F, u_T texels per point, u_ppr points per row
uniform sampler2D u_prev;       // RG32F: the sum of the chunks before
uniform bool u_first;
uniform int u_T, u_ppr, u_W, u_k0;
uniform vec4 u_fx[${t}];
uniform vec4 u_fy[${t}];
out vec4 outColor;
void main() {
  ivec2 q = ivec2(gl_FragCoord.xy);
  int p = q.y * u_W + q.x;
  vec2 acc = u_first ? vec2(0.0) : texelFetch(u_prev, q, 0).rg;
  int row = p / u_ppr;
  int x0 = (p - row * u_ppr) * u_T + u_k0;
  vec4 a;
${sums.join('\n')}
  outColor = vec4(acc, 0.0, 1.0);
}
`;
}

export const SCATTER_FS = `#version 300 es
precision highp float;
precision highp int;
uniform int u_mode;
uniform sampler2D u_atlas;
uniform vec2 u_cellUV;          // size of one atlas cell in texture coordinates
uniform bool u_tint;            // grey thumbnails: strokes in the class colour
flat in vec4 v_color;
flat in int v_flags;
flat in ivec2 v_cell;
out vec4 outColor;

void main() {
  vec2 q = gl_PointCoord * 2.0 - 1.0;
  if ((v_flags & 8) != 0) {                 // off the panel: a ring at the edge
    float r = dot(q, q);
    if (r > 1.0 || r < 0.3) discard;
    outColor = vec4(v_color.rgb, 1.0);
    return;
  }
  bool adversarial = (v_flags & 4) != 0;
  bool selected = (v_flags & 2) != 0;
  if (u_mode == 1 && !adversarial) {
    vec2 uv = (vec2(v_cell) + gl_PointCoord) * u_cellUV;
    vec4 t = texture(u_atlas, uv);
    float edge = max(abs(q.x), abs(q.y));
    if (edge > 0.86) { outColor = vec4(v_color.rgb, v_color.a); return; }  // class frame
    if (u_tint) {
      float lum = dot(t.rgb, vec3(0.299, 0.587, 0.114));
      outColor = vec4(v_color.rgb * lum + vec3(1.0) * (1.0 - lum), 0.92 * v_color.a);
    } else {
      outColor = vec4(t.rgb, v_color.a);
    }
    return;
  }
  if (adversarial) {                        // a diamond with a dark outline
    float d = abs(q.x) + abs(q.y);
    if (d > 1.0) discard;
    outColor = d > 0.72 ? vec4(0.07, 0.07, 0.07, 1.0) : vec4(v_color.rgb, 1.0);
    return;
  }
  float r2 = dot(q, q);
  if (r2 > 1.0) discard;
  if (selected && r2 > 0.45) { outColor = vec4(0.07, 0.07, 0.07, 1.0); return; }  // a ring
  float aa = 1.0 - smoothstep(0.75, 1.0, r2);
  outColor = vec4(v_color.rgb, v_color.a * aa);
}
`;

/** The floor for the benchmark: precomputed 2-D points, the same fragment work. */
export const FLOOR_VS = `#version 300 es
precision highp float;
in vec2 a_pos;
uniform vec2 u_viewport;
uniform float u_pxPerUnit;
uniform float u_pointSize;
uniform float u_dpr;
flat out vec4 v_color;
flat out int v_flags;
flat out ivec2 v_cell;
void main() {
  v_color = vec4(0.12, 0.47, 0.71, 0.8);
  v_flags = 1;
  v_cell = ivec2(0);
  gl_Position = vec4(a_pos * u_pxPerUnit / (0.5 * u_viewport), 0.0, 1.0);
  gl_PointSize = u_pointSize * u_dpr;
}
`;
