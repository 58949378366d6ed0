// The chosen feature: explanation, statistics, logit histogram by token class,
// top promoted and suppressed tokens.
import { h, replace, fmt, uid, visibleToken } from "../dom.js";
import { watch } from "./store.js";
import { drawHistogram } from "./histogram.js";
import { onThemeChange, themeColours } from "./theme.js";
import { visibleParts } from "./visible.js";

/** One line about a raw direction: where it comes from and what it is made of (text only). */
export function describeDirection(direction) {
  const parts = [];
  const method = direction.provenance && direction.provenance.method;
  if (method) parts.push(String(method).replace(/_/g, " "));
  const features = direction.features || [];
  if (features.length) parts.push(`features ${features.slice(0, 6).map(([f, w]) => `#${f} × ${fmt(w)}`).join(", ")}`);
  if (direction.vectors) parts.push(`${direction.vectors} raw vector${direction.vectors > 1 ? "s" : ""}`);
  if (direction.layer !== null && direction.layer !== undefined) parts.push(`at ${direction.site || "resid_pre"}[${direction.layer}]`);
  parts.push(`norm ${fmt(direction.norm)}`);
  return `${parts.join(" · ")}. Not an SAE feature: rankings and feature search pick features.`;
}

/**
 * The token-class menu's form for a class of your own words: a name and comma-separated words,
 * sent to the kernel ({type: "add_class"}: FeatureExplorer.add_class, which checks them) and
 * answered in the `class_message` trait. Needs a kernel: hidden in a saved view.
 */
function classAdder(store) {
  const formId = uid("sw-class-form");
  let pending = null;
  let requests = 0;
  const name = h("input", {
    class: "sw-input sw-class-name", type: "text", maxlength: 64, placeholder: "class name", "aria-label": "name of the new token class",
    autocomplete: "off", spellcheck: "false",
  });
  const words = h("input", {
    class: "sw-input sw-class-words", type: "text", placeholder: "words, comma-separated: red, green, blue",
    "aria-label": "words of the new token class, comma-separated", autocomplete: "off", spellcheck: "false",
  });
  // Enter submits (said explicitly: a notebook's own key handling can keep the browser's implicit submit from running)
  const onEnter = (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      submit();
    }
  };
  name.addEventListener("keydown", onEnter);
  words.addEventListener("keydown", onEnter);
  const status = h("div", { class: "sw-class-status", role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    { id: formId, class: "sw-class-form", "aria-label": "add a token class", on: { submit: (event) => { event.preventDefault(); submit(); } } },
    name,
    words,
    h("button", { class: "sw-button", type: "submit" }, "Add class"),
    status,
  );
  form.hidden = true;
  const toggle = h(
    "button",
    {
      class: "sw-button sw-class-toggle", type: "button", title: "add a token class of your own words", "aria-expanded": "false", "aria-controls": formId,
      on: {
        click() {
          form.hidden = !form.hidden;
          toggle.setAttribute("aria-expanded", String(!form.hidden));
          if (!form.hidden) name.focus();
        },
      },
    },
    "+ class",
  );
  function show(state, text) {
    form.dataset.status = state;
    status.textContent = text;
    status.classList.toggle("sw-error-text", state === "error");
    status.classList.toggle("sw-muted", state !== "error");
  }
  function submit() {
    const label = name.value.trim();
    if (!label) return show("error", "type a name for the class");
    if (!words.value.split(",").some((w) => w.trim())) return show("error", "type at least one word (comma-separated)");
    requests += 1;
    pending = `${Date.now().toString(36)}-${requests}`;
    show("pending", `adding ${JSON.stringify(label)}…`);
    store.send({ type: "add_class", id: pending, name: label, words: words.value });
    return undefined;
  }
  function answered() {
    const message = store.get("class_message") || {};
    if (!pending || message.id !== pending) return;
    pending = null;
    show(message.status === "added" ? "added" : "error", String(message.text || ""));
    if (message.status === "added") {
      name.value = "";
      words.value = "";
    }
  }
  const showLive = () => {
    toggle.hidden = !store.live;
    if (!store.live) form.hidden = true;
  };
  showLive();
  const stops = [watch(store, ["class_message"], answered), store.onLive(showLive)];
  return { toggle, node: form, destroy: () => stops.forEach((s) => s()) };
}

export function featurePanel(store) {
  const classId = uid("sw-class");
  const title = h("h3", { class: "sw-title" });
  const kind = h("span", { class: "sw-kind", title: "feature kind from skew and kurtosis of its logit weights" });
  const explanation = h("p", { class: "sw-explanation" });
  const stats = h("div", { class: "sw-stats" });
  const classSelect = h("select", {
    id: classId,
    class: "sw-input",
    on: { change: () => store.set("token_class", classSelect.value) },
  });
  const classForm = classAdder(store);
  const chart = h("div", { class: "sw-chart", role: "img", "aria-label": "logit weight histogram" });
  const promoted = h("tbody");
  const suppressed = h("tbody");
  const table = (caption, body) =>
    h(
      "table",
      { class: "sw-table" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "token"), h("th", { scope: "col" }, "weight"))),
      body,
    );

  const node = h(
    "section",
    { class: "sw-panel sw-feature", "aria-label": "feature" },
    h("div", { class: "sw-feature-head" }, title, kind, explanation),
    stats,
    h(
      "div",
      { class: "sw-feature-body" },
      h(
        "div",
        { class: "sw-histogram" },
        h("div", { class: "sw-row" }, h("label", { class: "sw-label", for: classId }, "Token class"), classSelect, classForm.toggle),
        classForm.node,
        chart,
      ),
      h("div", { class: "sw-top-tokens" }, table("Promoted", promoted), table("Suppressed", suppressed)),
    ),
  );

  function updateInfo() {
    const info = store.get("feature_info") || {};
    const direction = info.direction || null;
    title.textContent = direction
      ? `Direction: ${String(direction.name || "raw vector")}`
      : info.feature === undefined || info.feature === null
        ? "Feature"
        : `Feature ${info.feature}`;
    node.dataset.target = direction ? "direction" : "feature";
    kind.textContent = info.kind && info.kind !== "none" ? info.kind : "";
    kind.hidden = !kind.textContent;
    explanation.textContent = direction ? describeDirection(direction) : info.explanation || "";
    explanation.hidden = !explanation.textContent;
    const entries = Object.entries(info.stats || {});
    replace(
      stats,
      entries.map(([name, value]) =>
        h("span", { class: "sw-stat" }, h("span", { class: "sw-stat-name" }, name), h("span", { class: "sw-stat-value" }, fmt(value))),
      ),
    );
    const rows = (list) =>
      (list || []).map(([token, value]) =>
        h(
          "tr",
          {},
          h("td", { class: "sw-token", title: JSON.stringify(String(token)) }, visibleParts(visibleToken(token))),
          h("td", { class: "sw-num" }, fmt(value)),
        ),
      );
    replace(promoted, rows(info.top_positive));
    replace(suppressed, rows(info.top_negative));
  }

  function updateClasses() {
    const names = store.get("class_names") || [];
    if (classSelect.options.length !== names.length || [...classSelect.options].some((o, i) => o.value !== names[i])) {
      replace(classSelect, names.map((name) => h("option", { value: name }, name)));
    }
    classSelect.value = store.get("token_class");
  }

  let finalize = null;
  let drawing = 0;
  async function updateChart() {
    const histogram = store.get("histogram") || {};
    const ticket = ++drawing;
    if (!histogram.edges || !histogram.edges.length) {
      finalize?.();
      finalize = null;
      return replace(chart, h("p", { class: "sw-muted" }, "no histogram"));
    }
    const width = Math.max(240, Math.min(520, (chart.clientWidth || 420) - 70));
    const target = h("div");
    try {
      const done = await drawHistogram(target, histogram, themeColours(chart), { width });
      if (ticket !== drawing) return done();
      finalize?.();
      finalize = done;
      replace(chart, target);
      chart.dataset.feature = String(histogram.feature ?? "");
      chart.dataset.tokenClass = String(histogram.class ?? "");
    } catch (error) {
      if (ticket === drawing) replace(chart, h("p", { class: "sw-error-text" }, `chart failed: ${error.message}`));
    }
  }

  const stops = [
    watch(store, ["feature_info"], updateInfo),
    watch(store, ["class_names", "token_class"], updateClasses),
    watch(store, ["histogram"], updateChart),
  ];
  // The new theme's stylesheet may apply a moment after the attribute changes: draw twice.
  let themeTimer = null;
  const stopTheme = onThemeChange(() => {
    updateChart();
    clearTimeout(themeTimer);
    themeTimer = setTimeout(updateChart, 400);
  });
  updateInfo();
  updateClasses();
  // Draw once the node is in the page so the chart can size itself.
  requestAnimationFrame(updateChart);
  return {
    node,
    destroy() {
      stops.forEach((s) => s());
      classForm.destroy();
      stopTheme();
      clearTimeout(themeTimer);
      finalize?.();
    },
  };
}
