// A signed exponential ("symlog") slider mapping: fine control near 0, reach to ±max.
//   scale(u) = sign(u) * linear * (exp(|u| * log1p(max / linear)) - 1),  u in [-1, 1]
// `linear` is the scale below which the mapping is nearly linear.

export const STEPS = 100; // slider positions on each side of 0

export function normaliseRange(range) {
  const max = Number(range && range.max) > 0 ? Number(range.max) : 100;
  let linear = Number(range && range.linear);
  if (!(linear > 0) || linear >= max) linear = max / 100;
  return { max, linear };
}

/** Slider position u in [-1, 1] -> steering scale. */
export function toScale(u, range) {
  const { max, linear } = normaliseRange(range);
  const x = Math.max(-1, Math.min(1, u));
  return Math.sign(x) * linear * Math.expm1(Math.abs(x) * Math.log1p(max / linear));
}

/** Steering scale -> slider position u in [-1, 1] (clamped). */
export function toPosition(scale, range) {
  const { max, linear } = normaliseRange(range);
  const s = Number(scale) || 0;
  const u = (Math.sign(s) * Math.log1p(Math.abs(s) / linear)) / Math.log1p(max / linear);
  return Math.max(-1, Math.min(1, u));
}

/** Round a scale to a precision that suits its magnitude (3 significant digits). */
export function roundScale(scale) {
  if (scale === 0) return 0;
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(scale))));
  const f = 10 ** digits;
  return Math.round(scale * f) / f;
}
