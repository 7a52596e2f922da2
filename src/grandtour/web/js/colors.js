/**
 * Class colours, read from ../palette.json: the one table the figures of
 * grandtour.render read too, so class k looks the same on the page and in a GIF.
 * It is the page's Tableau 10 (2014) rather than matplotlib's tab10 because the viewer
 * is what people look at, and its softer hues keep ten overlapping classes readable.
 * Beyond ten classes, evenly spaced hues (the same rule as grandtour/palette.py).
 */

import table from '../palette.json' with { type: 'json' };

const CLASSES = table.classes;
const { saturation: S, lightness: L } = table.many;

/** Colour of the edges between points (a hypercube's), as [r, g, b] bytes. */
export const NEUTRAL = table.neutral;
/** Colour of the axis handles and their labels, as [r, g, b] bytes. */
export const HANDLE = table.handle;
/** Colours of the points when coloured by correctness: prediction = label, or not. */
export const CORRECT = table.correct;
export const WRONG = table.wrong;
/** The default opacity of a point drawn once (the palette's alpha). */
export const DEFAULT_OPACITY = 0.85;

function hsl(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** The colour of class `c` among `count` classes, as [r, g, b] bytes. */
export function classColor(c, count = 10) {
  if (count <= CLASSES.length) return CLASSES[c % CLASSES.length];
  return hsl((360 * c) / count, S, L);
}

/** A CSS colour string for class `c`. */
export function classCss(c, count = 10) {
  const [r, g, b] = classColor(c, count);
  return `rgb(${r}, ${g}, ${b})`;
}

/**
 * The renderer's palette, 4 bytes per entry (see pointcolors.js for the indices):
 * [0, C) the classes (alpha 0 for hidden ones: the labels of the genuine points in
 * "colour by label", and of the adversarial points); C correct, C + 1 wrong, C + 2 not
 * drawn; [C + 3, 2 C + 3) the classes never hidden (predictions, coloured by the class
 * predicted while the hidden classes are those of the labels). Alpha: `opacity`.
 */
export function palette(count, hidden = new Set(), opacity = DEFAULT_OPACITY) {
  const C = Math.max(1, count);
  const out = new Uint8Array((2 * C + 3) * 4);
  const a = Math.round(255 * Math.max(0.05, Math.min(1, opacity)));
  for (let c = 0; c < count; c++) {
    const [r, g, b] = classColor(c, count);
    out.set([r, g, b, hidden.has(c) ? 0 : a], 4 * c);
    out.set([r, g, b, a], 4 * (C + 3 + c));
  }
  out.set([...CORRECT, a], 4 * C);
  out.set([...WRONG, a], 4 * (C + 1));
  out.set([0, 0, 0, 0], 4 * (C + 2));
  return out;
}
