// A signed exponential ("symlog") slider mapping: fine control near 0, reach to ±max.
//   scale(u) = sign(u) * linear * (exp(|u| * log1p(max / linear)) - 1),  u in [-1, 1]
// `linear` is the scale below which the mapping is nearly linear.
import { fmt } from "../dom.js";

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

/** The scale as the number box shows it: at most 6 significant digits (the exact value in its title). */
export function boxText(scale) {
  const value = Number(scale) || 0;
  return String(Number(value.toPrecision(6)));
}

/**
 * What a typed scale means for a slider spanning ±range.max: `{ok: false, message}` when it is
 * refused (not a number, or beyond the shared limit ±limit: limits.json), else `{ok: true, value, beyond}`
 * (`beyond`: outside the slider's own range; the value is kept as typed and the slider stays at its
 * end). Pure.
 */
export function checkTyped(text, range, limit) {
  const limitText = limit.toLocaleString("en-US");
  const trimmed = String(text ?? "").trim();
  const value = Number(trimmed);
  if (!trimmed) return { ok: false, message: "type a number, such as 2.5 or -10 (the scale in use is kept)" };
  if (!Number.isFinite(value)) return { ok: false, message: `${JSON.stringify(trimmed)} is not a number: type a scale such as 2.5 or -10` };
  if (Math.abs(value) > limit) {
    return { ok: false, message: `${fmt(value)} is beyond the steering limit ±${limitText}: type a scale within it` };
  }
  return { ok: true, value, beyond: Math.abs(value) > normaliseRange(range).max };
}

/** The note for a scale beyond the slider's range (empty when within it). */
export function beyondNote(scale, range) {
  const { max } = normaliseRange(range);
  if (!(Math.abs(Number(scale)) > max)) return "";
  return `${boxText(scale)} is beyond this slider's ±${fmt(max, 2)}: the slider stays at its end; steering uses ${boxText(scale)}`;
}
