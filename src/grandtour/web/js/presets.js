/**
 * Presets: the current view (run, layer, epoch, splits, tour matrix, selection, hidden
 * classes, display, zoom and pan, "fit each epoch", adversarial step) as JSON, saved to a file or to the URL
 * hash (`#view=...`), and loaded back, so a finding can be shared exactly.
 *
 * The tour matrix is kept exactly: as base64 of its float64 entries (row-major). For a
 * layer wider than 64 dimensions the URL keeps only the frame GT[:, :2] (what the
 * picture depends on); the JSON file always keeps the whole matrix.
 */

export const PRESET_VERSION = 1;
const URL_MATRIX_MAX = 64;

export function f64ToBase64(values) {
  const bytes = new Uint8Array(Float64Array.from(values).buffer);
  let s = '';
  for (let k = 0; k < bytes.length; k += 0x8000) s += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return btoa(s);
}

export function base64ToF64(text) {
  const s = atob(text);
  const bytes = new Uint8Array(s.length);
  for (let k = 0; k < s.length; k++) bytes[k] = s.charCodeAt(k);
  if (bytes.length % 8) throw new Error('a preset matrix must be float64 values');
  return new Float64Array(bytes.buffer);
}

/** Encode a preset for the URL hash: base64url of its JSON. */
export function encodeHash(preset) {
  const p = { ...preset, tour: { ...preset.tour } };
  if (p.tour.dim > URL_MATRIX_MAX && p.tour.matrix) {
    p.tour.frame = p.tour.frame ?? frameOf(p.tour.matrix, p.tour.dim);
    delete p.tour.matrix;
  }
  const json = JSON.stringify(p);
  const b64 = btoa(unescape(encodeURIComponent(json))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `view=${b64}`;
}

function frameOf(matrixB64, n) {
  const m = base64ToF64(matrixB64);
  const f = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    f[2 * i] = m[i * n];
    f[2 * i + 1] = m[i * n + 1];
  }
  return f64ToBase64(f);
}

/** The preset in a URL hash (`#view=...`), or null. Throws on a damaged one. */
export function decodeHash(hash) {
  const m = /(?:^#?|&)view=([A-Za-z0-9_-]+)/.exec(hash || '');
  if (!m) return null;
  const b64 = m[1].replace(/-/g, '+').replace(/_/g, '/');
  const json = decodeURIComponent(escape(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))));
  return checkPreset(JSON.parse(json));
}

/** Check a preset's shape (from a file or a URL); returns it or throws a readable error. */
export function checkPreset(p) {
  if (!p || typeof p !== 'object') throw new Error('a preset must be a JSON object');
  if (p.version !== PRESET_VERSION) throw new Error(`unknown preset version ${p.version} (this page reads version ${PRESET_VERSION})`);
  if (typeof p.layer !== 'string') throw new Error('a preset needs a layer name');
  if (!Number.isInteger(p.epoch)) throw new Error('a preset needs an epoch number');
  if (p.pan !== undefined && !(Array.isArray(p.pan) && p.pan.length === 2 && p.pan.every(Number.isFinite))) {
    throw new Error('a preset pan must be two numbers');
  }
  if (p.tour && !(Number.isInteger(p.tour.dim) && (typeof p.tour.matrix === 'string' || typeof p.tour.frame === 'string'))) {
    throw new Error('a preset tour needs dim and a base64 matrix or frame');
  }
  return p;
}

/** Offer a preset as a JSON file download. */
/** Save `blob` as a file called `name` (the browser's download). */
export function downloadBlob(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export function downloadPreset(preset, filename) {
  downloadBlob(new Blob([JSON.stringify(preset, null, 1)], { type: 'application/json' }), filename);
}

/** Read a preset from a File. */
export async function readPresetFile(file) {
  let p;
  try {
    p = JSON.parse(await file.text());
  } catch (err) {
    throw new Error(`${file.name} is not a JSON preset: ${err.message}`);
  }
  return checkPreset(p);
}
