// Small DOM helpers. Every string becomes a text node or an attribute value:
// model and tokenizer output is untrusted, so nothing here ever parses HTML.

const FORM_CONTROLS = new Set(["input", "textarea", "select"]);

/**
 * Create an element. `props` keys: `class`, `text`, `on` ({event: handler}),
 * `style` (object), `dataset` (object); any other key becomes an attribute
 * (`false`/`null` skip it, `true` sets it empty). Children are nodes or strings
 * (strings become text nodes); arrays are flattened, null/false skipped.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  // Keys typed into a form control belong to it: JupyterLab's shortcuts (Lumino) would
  // otherwise take arrow keys from a slider, or letters from a text box, in command mode.
  if (FORM_CONTROLS.has(tag)) node.setAttribute("data-lm-suppress-shortcuts", "true");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (key === "style") Object.assign(node.style, value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Append children (nodes, strings as text nodes, nested arrays). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace all children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Format a number compactly for tables and labels. */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

/** Make whitespace in a token visible: leading/trailing spaces as "·", newlines as "↵", tabs as "→". */
export function visibleToken(token) {
  return String(token).replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→");
}

let counter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = "sw") {
  counter += 1;
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}-${counter}`;
}

/**
 * Track whether the user is typing in `input` (between an `input` event and the next
 * commit) so that kernel updates do not overwrite unfinished text. Returns
 * `{show(value), committed()}`: `show` writes the value unless the user is typing;
 * call `committed()` when the input's value has been sent.
 */
export function editable(input) {
  let typing = false;
  input.addEventListener("input", () => {
    typing = true;
  });
  input.addEventListener("blur", () => {
    typing = false;
  });
  return {
    show(value) {
      if (!typing) input.value = value ?? "";
    },
    committed() {
      typing = false;
    },
  };
}
