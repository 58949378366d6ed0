// Control characters in model text, made visible: they would show as empty boxes (or nothing).
// Newlines and tabs stay as they are (the panels wrap text as written); every other C0/C1
// control, and the invisible format characters that reorder or hide text (bidi overrides,
// zero-width spaces, BOM), become a muted escape such as \x01 or \u202e, as Python's repr writes them.
import { h } from "../dom.js";

const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** The escape text of one control character: \xNN below U+0100, else \uNNNN. Pure. */
export function escapeControl(ch) {
  const code = ch.codePointAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `text` with control characters replaced by their escapes, as plain text. Pure. */
export function visibleText(text) {
  return String(text).replace(CONTROLS, escapeControl);
}

/** `text` as DOM children: strings, and a muted span (class sw-ctrl) for each escaped control. */
export function visibleParts(text) {
  const value = String(text);
  const parts = [];
  let last = 0;
  for (const match of value.matchAll(CONTROLS)) {
    if (match.index > last) parts.push(value.slice(last, match.index));
    parts.push(h("span", { class: "sw-ctrl", title: `control character U+${match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}` }, escapeControl(match[0])));
    last = match.index + match[0].length;
  }
  if (last < value.length) parts.push(value.slice(last));
  return parts;
}
