// FeatureExplorer's view: a function of the store (the widget's traits).
import { h } from "../dom.js";
import { header, errorBanner } from "../chrome.js";
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

/** Render the explorer into `el`; returns a cleanup function. */
export function renderExplorer(el, store) {
  const parts = {
    header: header(store, "Feature explorer"),
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
