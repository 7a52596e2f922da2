/**
 * How a position (an epoch, a layer i + t, an adversarial step) moves towards its
 * target: by elapsed time, at a rate in units per second, through as many whole
 * segments as the time allows in one frame (a slow frame moves further, never less), and
 * stopping only at the start of a segment whose data is not loaded yet.
 */

export const RATES = {
  epochPlay: 3, // epochs per second while playing
  layerPlay: 0.6, // layers per second while playing (one transition in about 1.7 s)
  advPlay: 12, // adversarial steps per second while playing
};

const isInt = (x) => Number.isInteger(x);

/**
 * Move `pos` towards `target` for at most `dt` seconds at `rate`, within the segment it is
 * in (from a whole position: the next one).
 * @returns {{pos: number, left: number}} the new position and the seconds not used
 */
export function segmentStep(pos, target, rate, dt) {
  if (pos === target || !(dt > 0) || !(rate > 0)) return { pos, left: dt > 0 ? dt : 0 };
  const dir = Math.sign(target - pos);
  const end = isInt(pos) ? pos + dir : (dir > 0 ? Math.ceil(pos) : Math.floor(pos));
  const stop = dir > 0 ? Math.min(end, target) : Math.max(end, target);
  const need = Math.abs(stop - pos) / rate;
  if (need <= dt) return { pos: stop, left: dt - need };
  const next = pos + dir * rate * dt;
  return { pos: isInt(next) ? stop : next, left: 0 };
}

/**
 * `pos` after `dt` seconds towards `target` at `rate`, crossing whole positions while
 * `canEnter(from, to)` says the segment from one whole position to the next is loaded.
 */
export function advance(pos, target, rate, dt, canEnter) {
  let left = dt;
  for (let guard = 0; pos !== target && left > 1e-12 && guard < 1e5; guard++) {
    if (isInt(pos) && !canEnter(pos, pos + Math.sign(target - pos))) break;
    ({ pos, left } = segmentStep(pos, target, rate, left));
  }
  return pos;
}
