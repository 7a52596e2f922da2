/**
 * Class colours. Ten distinct hues for the usual ten classes (Tableau 10, the
 * palette of the article's figures is of the same family), then evenly spaced hues.
 */

const TABLEAU10 = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
];

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
  if (count <= TABLEAU10.length) return TABLEAU10[c % TABLEAU10.length];
  return hsl((360 * c) / count, 0.62, 0.5);
}

/** A CSS colour string for class `c`. */
export function classCss(c, count = 10) {
  const [r, g, b] = classColor(c, count);
  return `rgb(${r}, ${g}, ${b})`;
}

/** The renderer's palette: 4 bytes per class, alpha 0 for hidden classes. */
export function palette(count, hidden = new Set()) {
  const out = new Uint8Array(Math.max(1, count) * 4);
  for (let c = 0; c < count; c++) {
    const [r, g, b] = classColor(c, count);
    out.set([r, g, b, hidden.has(c) ? 0 : 217], 4 * c);
  }
  return out;
}
