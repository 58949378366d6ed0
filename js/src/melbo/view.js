// MelboExplorer's view: training controls, groups, a gallery of vector cards, and the
// selected vector's continuations (baseline vs steered, a slider over multiples of R),
// SAE features, logit lens and self-explanation. Every model string is set as text.
import { h, replace, fmt } from "../dom.js";
import { watch } from "../explorer/store.js";
import { trainingPanel } from "./training.js";
import { galleryPanel, groupsPanel } from "./gallery.js";
import { detailPanel } from "./detail.js";

function header(store) {
  const title = h("span", { class: "sw-header-title" });
  const busy = h("span", { class: "sw-busy", role: "status", "aria-live": "polite" });
  const node = h("header", { class: "sw-header" }, h("strong", {}, "MELBO explorer"), title, busy);
  function update() {
    const s = store.get("settings") || {};
    const n = (store.get("cards") || []).length;
    const prompts = (store.get("prompts") || []).length;
    const where = s.source_layer === undefined ? "" : `resid_pre[${s.source_layer}] → resid_pre[${s.target_layer}]`;
    title.textContent = [store.get("title"), where, s.radius === undefined ? "" : `R = ${fmt(s.radius)}`,
      `${n} vector${n === 1 ? "" : "s"}`, `${prompts} prompt${prompts === 1 ? "" : "s"}`].filter(Boolean).join(" · ");
    const isBusy = Boolean(store.get("busy"));
    busy.dataset.busy = String(isBusy);
    busy.replaceChildren(...(isBusy ? [h("span", { class: "sw-spinner", "aria-hidden": "true" }), "working…"] : []));
  }
  const stop = watch(store, ["title", "busy", "settings", "cards", "prompts"], update);
  update();
  return { node, destroy: stop };
}

function errorBanner(store) {
  const message = h("span", { class: "sw-error-message" });
  const dismiss = h("button", { class: "sw-button sw-icon", type: "button", "aria-label": "dismiss error",
    on: { click: () => store.set("error", "") } }, "×");
  const node = h("div", { class: "sw-error", role: "alert" }, message, dismiss);
  function update() {
    message.textContent = store.get("error") || "";
    node.hidden = !store.get("error");
  }
  const stop = watch(store, ["error"], update);
  update();
  return { node, destroy: stop };
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
    header: header(store),
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
