// FeatureExplorer's view: a function of the store (the widget's traits).
import { h } from "../dom.js";
import { watch } from "./store.js";
import { pickerPanel } from "./picker.js";
import { featurePanel } from "./feature.js";
import { steeringPanel } from "./steering.js";
import { generationPanel } from "./generation.js";
import { selfExplainPanel } from "./selfexplain.js";
import { examplesPanel } from "./examples.js";
import { featureTable } from "./table.js";

/** "All features": the atlas's table, asked from the kernel when first opened. */
function allFeatures(store) {
  const table = featureTable(store, { request: () => store.send({ type: "table" }) });
  const details = h(
    "details",
    { class: "sw-panel sw-all-features", on: { toggle: () => details.open && table.open() } },
    h("summary", { class: "sw-section-title" }, "All features"),
    table.node,
  );
  const update = () => {
    details.hidden = !(store.get("examples") || {}).status;
  };
  const stop = watch(store, ["examples"], update);
  update();
  return { node: details, destroy: () => { stop(); table.destroy(); } };
}

function header(store) {
  const title = h("span", { class: "sw-header-title" });
  const busy = h("span", { class: "sw-busy", role: "status", "aria-live": "polite" });
  const node = h("header", { class: "sw-header" }, h("strong", {}, "Feature explorer"), title, busy);
  function update() {
    title.textContent = store.get("title") || "";
    const isBusy = Boolean(store.get("busy"));
    busy.dataset.busy = String(isBusy);
    busy.replaceChildren(...(isBusy ? [h("span", { class: "sw-spinner", "aria-hidden": "true" }), "working…"] : []));
  }
  const stop = watch(store, ["title", "busy"], update);
  update();
  return { node, destroy: stop };
}

function errorBanner(store) {
  const message = h("span", { class: "sw-error-message" });
  const dismiss = h(
    "button",
    { class: "sw-button sw-icon", type: "button", "aria-label": "dismiss error", on: { click: () => store.set("error", "") } },
    "×",
  );
  const node = h("div", { class: "sw-error", role: "alert" }, message, dismiss);
  function update() {
    const error = store.get("error") || "";
    message.textContent = error;
    node.hidden = !error;
  }
  const stop = watch(store, ["error"], update);
  update();
  return { node, destroy: stop };
}

/** Render the explorer into `el`; returns a cleanup function. */
export function renderExplorer(el, store) {
  const parts = {
    header: header(store),
    error: errorBanner(store),
    picker: pickerPanel(store),
    feature: featurePanel(store),
    examples: examplesPanel(store),
    steering: steeringPanel(store),
    generation: generationPanel(store),
    selfExplain: selfExplainPanel(store),
    allFeatures: allFeatures(store),
  };
  const root = h(
    "div",
    { class: "sw-root sw-explorer" },
    parts.header.node,
    parts.error.node,
    h(
      "div",
      { class: "sw-layout" },
      parts.picker.node,
      h(
        "div",
        { class: "sw-main" },
        parts.feature.node,
        parts.examples.node,
        parts.steering.node,
        parts.generation.node,
        parts.selfExplain.node,
        parts.allFeatures.node,
      ),
    ),
  );
  el.replaceChildren(root);
  // Tell the kernel a view is showing: from now on it generates in the background.
  store.send({ type: "ready" });
  return () => Object.values(parts).forEach((part) => part.destroy());
}
