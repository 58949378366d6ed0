// MelboExplorer's view: training controls, groups, a gallery of vector cards, and the
// selected vector's continuations (baseline vs steered, a slider over multiples of R),
// SAE features, logit lens and self-explanation. Every model string is set as text.
import { h, replace, fmt } from "../dom.js";
import { watch } from "../explorer/store.js";
import { header, errorBanner } from "../chrome.js";
import { trainingPanel } from "./training.js";
import { galleryPanel, groupsPanel } from "./gallery.js";
import { detailPanel } from "./detail.js";

function subtitle(store) {
  const s = store.get("settings") || {};
  const n = (store.get("cards") || []).length;
  const prompts = (store.get("prompts") || []).length;
  const where = s.source_layer === undefined ? "" : `resid_pre[${s.source_layer}] → resid_pre[${s.target_layer}]`;
  return [store.get("title"), where, s.radius === undefined ? "" : `R = ${fmt(s.radius)}`,
    `${n} vector${n === 1 ? "" : "s"}`, `${prompts} prompt${prompts === 1 ? "" : "s"}`].filter(Boolean).join(" · ");
}

function savedNote(store) {
  const node = h("p", { class: "sw-muted sw-melbo-saved" });
  function update() {
    const path = store.get("saved_path");
    replace(node, path ? ["vectors saved in ", h("code", {}, String(path))] : "vectors not saved (path=False)");
  }
  const stop = watch(store, ["saved_path"], update);
  update();
  return { node, destroy: stop };
}

/** Render the MELBO explorer into `el`; returns a cleanup function. */
export function renderMelbo(el, store) {
  const parts = {
    header: header(store, "MELBO explorer", { subtitle, keys: ["title", "settings", "cards", "prompts"] }),
    error: errorBanner(store),
    training: trainingPanel(store),
    saved: savedNote(store),
    groups: groupsPanel(store),
    gallery: galleryPanel(store),
    detail: detailPanel(store),
  };
  const root = h(
    "div",
    { class: "sw-root sw-melbo" },
    parts.header.node,
    parts.error.node,
    h("div", { class: "sw-row sw-melbo-top" }, parts.training.node, parts.saved.node),
    parts.groups.node,
    h("div", { class: "sw-melbo-layout" }, parts.gallery.node, parts.detail.node),
  );
  el.replaceChildren(root);
  store.send({ type: "ready" });
  return () => Object.values(parts).forEach((part) => part.destroy());
}
