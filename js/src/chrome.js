// The parts every saewidgets view shares: its header (name, subtitle, busy spinner) and its
// dismissible error banner. Texts are set as text, never as HTML.
import { h } from "./dom.js";
import { watch } from "./explorer/store.js";

/**
 * The view's header: `name` in bold, then a subtitle, then a "working…" spinner while `busy`.
 * `subtitle(store)` gives the subtitle text (default: the `title` trait); `keys` are the traits
 * it reads besides `busy`.
 */
export function header(store, name, { subtitle = (s) => s.get("title") || "", keys = ["title"] } = {}) {
  const title = h("span", { class: "sw-header-title" });
  const busy = h("span", { class: "sw-busy", role: "status", "aria-live": "polite" });
  const node = h("header", { class: "sw-header" }, h("strong", {}, name), title, busy);
  function update() {
    title.textContent = subtitle(store);
    const isBusy = Boolean(store.get("busy"));
    busy.dataset.busy = String(isBusy);
    busy.replaceChildren(...(isBusy ? [h("span", { class: "sw-spinner", "aria-hidden": "true" }), "working…"] : []));
  }
  const stop = watch(store, [...keys, "busy"], update);
  update();
  return { node, destroy: stop };
}

/** The `error` trait as a banner with a dismiss button (which clears the trait). */
export function errorBanner(store) {
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
