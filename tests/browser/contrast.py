"""WCAG contrast of the text a page shows, computed in the browser from the rendered colours.

For every visible piece of text inside a root element (text nodes, form controls' values, SVG
text), the text colour and the background behind it are read from the computed styles; colours
with alpha are composited over what lies behind them (the ancestors' backgrounds, across shadow
roots, over the page's canvas), and the WCAG 2 contrast ratio of the two is computed. AA asks
for 4.5:1 for normal text.
"""

from __future__ import annotations

from typing import Any

AA = 4.5

CONTRASTS_JS = r"""
(root) => {
  const parse = (text) => {
    const c = String(text).trim();
    let m = c.match(/^rgba?\(([^)]*)\)$/);
    if (m) {
      const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    }
    m = c.match(/^color\(srgb\s+([^)]*)\)$/);
    if (m) {
      const p = m[1].split(/[\s\/]+/).filter(Boolean).map(Number);
      return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
    }
    if (c === "transparent") return [0, 0, 0, 0];
    return null;
  };
  const over = (top, base) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + base[i] * (1 - a)).concat([1]);
  };
  const parentOf = (el) => el.parentElement || (el.getRootNode && el.getRootNode().host) || null;
  const canvas = () => {
    const html = parse(getComputedStyle(document.documentElement).backgroundColor);
    const body = document.body ? parse(getComputedStyle(document.body).backgroundColor) : null;
    let base = [255, 255, 255, 1];
    if (html && html[3] > 0) base = over(html, base);
    else if (body && body[3] > 0) base = over(body, base);
    return base;
  };
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = parentOf(node)) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg[3] > 0) {
        layers.push(bg);
        if (bg[3] >= 1) break;
      }
    }
    let base = canvas();
    for (const layer of layers.reverse()) base = over(layer, base);
    return base;
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  const visible = (el) => {
    if (el.closest && el.closest("[aria-hidden=true]")) return false;
    if (el.checkVisibility && !el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const name = (el) => {
    const cls = (el.getAttribute("class") || "").split(/\s+/).filter(Boolean).slice(0, 2).join(".");
    return el.tagName.toLowerCase() + (cls ? "." + cls : "");
  };
  const out = [];
  const seen = new Set();
  const add = (el, text, colour) => {
    const bg = background(el);
    const fg = over(colour, bg);
    const key = name(el) + "|" + hex(fg) + "|" + hex(bg);
    const r = ratio(fg, bg);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ element: name(el), text: text.slice(0, 40), fg: hex(fg), bg: hex(bg), ratio: Math.round(r * 100) / 100 });
  };
  const walk = (node) => {
    for (const el of node.querySelectorAll("*")) {
      if (el.shadowRoot) walk(el.shadowRoot);
      const tag = el.tagName.toLowerCase();
      if (!visible(el)) continue;
      if (tag === "text" || tag === "tspan") {
        const fill = parse(getComputedStyle(el).fill);
        const opacity = Number(getComputedStyle(el).fillOpacity || 1) * Number(getComputedStyle(el).opacity || 1);
        if (fill && el.textContent.trim()) add(el, el.textContent.trim(), [fill[0], fill[1], fill[2], fill[3] * opacity]);
        continue;
      }
      if ((tag === "input" && !["range", "checkbox", "radio", "hidden"].includes(el.type)) || tag === "textarea" || tag === "select") {
        const value = tag === "select" ? (el.selectedOptions[0] || {}).textContent || "" : el.value;
        if (value && value.trim()) add(el, value.trim(), parse(getComputedStyle(el).color));
        continue;
      }
      if (el.closest("svg")) continue;
      const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join("").trim();
      if (own) add(el, own, parse(getComputedStyle(el).color));
    }
  };
  walk(root);
  return out;
}
"""


def text_contrasts(locator: Any) -> list[dict]:
    """One row per distinct (element kind, text colour, background) shown under ``locator``:
    ``{element, text, fg, bg, ratio}`` (colours as composited on screen)."""
    return locator.evaluate(CONTRASTS_JS)


def below_aa(rows: list[dict], minimum: float = AA) -> list[dict]:
    return [row for row in rows if row["ratio"] < minimum]
