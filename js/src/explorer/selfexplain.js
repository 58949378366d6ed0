// Slot for the self-explanation panel (explanation at the slider's scale,
// metric curves against scale, best explanations). It renders the
// `self_explanation` trait; empty until the kernel side fills it.
import { h, replace } from "../dom.js";
import { watch } from "./store.js";

export function selfExplainPanel(store) {
  const body = h("div", { class: "sw-selfexplain-body" });
  const node = h(
    "section",
    { class: "sw-panel sw-selfexplain", "aria-label": "self-explanation" },
    h("h4", { class: "sw-col-title" }, "Self-explanation"),
    body,
  );
  function update() {
    const state = store.get("self_explanation") || {};
    node.hidden = !state.explanation && !(state.rows && state.rows.length);
    replace(body, state.explanation ? h("p", { class: "sw-text" }, String(state.explanation)) : null);
  }
  const stop = watch(store, ["self_explanation"], update);
  update();
  return { node, destroy: stop };
}
