// Activation examples from the atlas (sw.collect_activations): top contexts with per-token
// highlighting, quantile groups, the density histogram, similar features, a label box.
// Tokens are model text: every one is a text node (textContent), never HTML.
import { h, replace, fmt, uid, editable } from "../dom.js";
import { watch } from "./store.js";
import { drawHistogram } from "./histogram.js";
import { onThemeChange, themeColours } from "./theme.js";

/** A token as shown inside a context: newlines and tabs made visible, spaces kept. */
function shownToken(token) {
  return String(token).replace(/\n/g, "↵").replace(/\t/g, "→");
}

/** Background alpha for an activation relative to the feature's max (0 stays clear). */
export function shade(act, max) {
  if (!(act > 0) || !(max > 0)) return 0;
  return Math.min(1, 0.15 + 0.75 * (act / max));
}

/** One context: a button whose click puts its text into the steering prompt. */
function exampleRow(example, max, store) {
  const tokens = example.tokens || [];
  const acts = example.acts || [];
  const spans = tokens.map((token, i) => {
    const act = acts[i] || 0;
    const alpha = shade(act, max);
    return h(
      "span",
      {
        class: ["sw-atok", i === example.peak && "sw-atok-peak"],
        title: `${JSON.stringify(String(token))}: ${fmt(act)}`,
        style: alpha ? { backgroundColor: `rgba(242, 142, 43, ${alpha.toFixed(3)})` } : {},
        dataset: { act: String(act) },
      },
      shownToken(token),
    );
  });
  const text = tokens.join("");
  return h(
    "li",
    {},
    h(
      "button",
      {
        class: "sw-example",
        type: "button",
        title: "use this text as the steering prompt",
        dataset: { value: String(example.value), doc: String(example.doc) },
        on: {
          click: () => {
            if (text.trim()) store.set("prompt", text);
          },
        },
      },
      h("span", { class: "sw-example-text" }, spans),
      h("span", { class: "sw-example-value sw-num" }, fmt(example.value)),
    ),
  );
}

function featureList(caption, rows, store, valueOf) {
  return h(
    "div",
    { class: "sw-similar-list" },
    h("div", { class: "sw-label" }, caption),
    rows.length
      ? h(
          "ol",
          { class: "sw-list" },
          rows.map((row) =>
            h(
              "li",
              {},
              h(
                "button",
                { class: "sw-item", type: "button", on: { click: () => store.set("feature", row[0]) } },
                h("span", { class: "sw-item-index" }, `#${row[0]}`),
                h("span", { class: "sw-item-label" }, row[row.length - 1] || ""),
                h("span", { class: "sw-item-value" }, valueOf(row)),
              ),
            ),
          ),
        )
      : h("p", { class: "sw-muted" }, "none"),
  );
}

function frequencyText(stats) {
  const f = stats.frequency;
  if (!(f > 0)) return "never fired on the corpus";
  const oneIn = 1 / f;
  return `fires on ${fmt(100 * f)}% of tokens (1 in ${oneIn >= 10 ? Math.round(oneIn).toLocaleString() : fmt(oneIn)})`;
}

export function examplesPanel(store) {
  const labelId = uid("sw-label");
  const summary = h("p", { class: "sw-muted sw-examples-summary" });
  const labelBox = h("input", {
    id: labelId,
    class: "sw-input sw-label-box",
    type: "text",
    placeholder: "your label for this feature…",
    maxlength: 10000,
    spellcheck: "false",
    on: {
      keydown(event) {
        if (event.key === "Enter") {
          event.preventDefault();
          commitLabel();
        }
      },
      change: () => commitLabel(),
    },
  });
  const labelEdit = editable(labelBox);
  const saved = h("span", { class: "sw-muted sw-label-saved", role: "status" });
  function commitLabel() {
    labelEdit.committed();
    if (labelBox.value !== (store.get("label") || "")) {
      store.set("label", labelBox.value);
      saved.textContent = store.live ? "saved to the atlas" : "not saved: no kernel";
    }
  }
  const top = h("ol", { class: "sw-examples-list", "aria-label": "top activating examples" });
  const quantiles = h("div", { class: "sw-quantiles", "aria-label": "examples by activation interval" });
  const chart = h("div", { class: "sw-chart sw-density", role: "img", "aria-label": "activation density histogram" });
  const similar = h("div", { class: "sw-similar" });
  const tokens = h("p", { class: "sw-muted sw-fires-on" });

  const node = h(
    "section",
    { class: "sw-panel sw-examples", "aria-label": "activation examples" },
    h("div", { class: "sw-feature-head" }, h("h3", { class: "sw-section-title" }, "Activation examples"), summary),
    h("div", { class: "sw-row sw-label-row" }, h("label", { class: "sw-label", for: labelId }, "Label"), labelBox, saved),
    h(
      "div",
      { class: "sw-examples-body" },
      h("div", { class: "sw-examples-main" }, h("div", { class: "sw-label" }, "Top activations (click one to steer on its text)"), top, quantiles),
      h("div", { class: "sw-examples-side" }, h("div", { class: "sw-label" }, "Activation density"), chart, tokens, similar),
    ),
  );

  function update() {
    const data = store.get("examples") || {};
    node.hidden = !data.status;
    node.dataset.feature = String(data.feature ?? "");
    if (!data.status) return;
    if (data.status === "direction") {
      summary.textContent = "A raw direction has no activation examples: pick a feature.";
      replace(top);
      replace(quantiles);
      replace(similar);
      tokens.textContent = "";
      labelBox.disabled = true;
      return;
    }
    labelBox.disabled = false;
    const stats = data.stats || {};
    const max = stats.max_act || 0;
    summary.textContent = [
      frequencyText(stats),
      `max ${fmt(stats.max_act)}`,
      `mean ${fmt(stats.mean_act)}`,
      `${(data.n_tokens || 0).toLocaleString()} tokens in ${data.atlas || "the atlas"}`,
    ].join(" · ");
    labelEdit.show(store.get("label") || "");
    const examples = data.top || [];
    replace(top, examples.length ? examples.map((e) => exampleRow(e, max, store)) : h("li", { class: "sw-muted" }, "no activations"));
    replace(
      quantiles,
      (data.quantiles || []).map((group, i) =>
        h(
          "details",
          { class: "sw-quantile", open: i < 2 },
          h("summary", {}, `${fmt(group.low)} – ${fmt(group.high)}`, h("span", { class: "sw-muted" }, ` · ${(group.count || 0).toLocaleString()} tokens`)),
          h("ol", { class: "sw-examples-list" }, (group.examples || []).map((e) => exampleRow(e, max, store))),
        ),
      ),
    );
    const fires = data.tokens || [];
    tokens.textContent = fires.length ? `fires most on ${fires.map(([t, n]) => `${JSON.stringify(String(t))} ×${n}`).join(", ")}` : "";
    replace(
      similar,
      featureList("Similar decoder direction", data.similar || [], store, (r) => `cos ${fmt(r[1], 2)}`),
      (data.coactivation || []).length
        ? featureList("Fires together with", data.coactivation || [], store, (r) => `${fmt(100 * r[2], 2)}%`)
        : null,
    );
    drawChart();
  }

  let finalize = null;
  let drawing = 0;
  async function drawChart() {
    const density = (store.get("examples") || {}).density || {};
    const ticket = ++drawing;
    if (!density.edges || !density.edges.length) {
      finalize?.();
      finalize = null;
      return replace(chart, h("p", { class: "sw-muted" }, "no activations"));
    }
    const target = h("div");
    try {
      const width = Math.max(200, Math.min(340, (chart.clientWidth || 300) - 60));
      const done = await drawHistogram(target, density, themeColours(chart), { width });
      if (ticket !== drawing) return done();
      finalize?.();
      finalize = done;
      replace(chart, target);
    } catch (error) {
      if (ticket === drawing) replace(chart, h("p", { class: "sw-error-text" }, `chart failed: ${error.message}`));
    }
  }

  const stops = [watch(store, ["examples"], update), watch(store, ["label"], () => labelEdit.show(store.get("label") || ""))];
  let themeTimer = null;
  const stopTheme = onThemeChange(() => {
    drawChart();
    clearTimeout(themeTimer);
    themeTimer = setTimeout(drawChart, 400);
  });
  requestAnimationFrame(update);
  update();
  return {
    node,
    destroy() {
      stops.forEach((s) => s());
      stopTheme();
      clearTimeout(themeTimer);
      finalize?.();
    },
  };
}
