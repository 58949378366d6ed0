// TaskExplorer's view: a function of the store (the widget's traits). Python computes everything
// (saewidgets/sessions/tasks.py); the view picks the task, toggles features, opens a feature, and
// draws what comes back. Model and tokenizer text is set as text, never as HTML.
import "./tasks.css";
import { h, replace, fmt, uid } from "../dom.js";
import { watch } from "../explorer/store.js";
import { header, errorBanner } from "../chrome.js";
import { onThemeChange, themeColours } from "../explorer/theme.js";
import { drawSpec } from "./charts.js";

const ROLE_TEXT = {
  executor: "executor: inserting it does the task, or the code fails without it",
  detector: "detector: fires on the few-shot examples",
  both: "detector and executor",
  other: "neither measure passes 0.5",
};

const percent = (value) => (value === null || value === undefined ? "–" : `${Math.round(100 * value)}%`);

/** Choose a task, or type one as `x -> y` lines. */
function taskPanel(store) {
  const selectId = uid("sw-task");
  const select = h("select", { id: selectId, class: "sw-input sw-tk-select", on: { change: () => store.set("task", select.value) } });
  const name = h("input", { class: "sw-input sw-tk-name", type: "text", placeholder: "name", value: "custom", "aria-label": "task name" });
  const text = h("textarea", {
    class: "sw-input sw-tk-pairs",
    rows: 3,
    placeholder: "one pair a line:\nhot -> cold\nbig -> small\nfast -> slow",
    "aria-label": "task pairs, one 'x -> y' a line",
  });
  const use = h(
    "button",
    {
      class: "sw-button sw-tk-use",
      type: "button",
      on: { click: () => store.send({ type: "custom", name: name.value, text: text.value }) },
    },
    "Use these pairs",
  );
  const node = h(
    "section",
    { class: "sw-panel sw-tk-task", "aria-label": "task" },
    h("div", { class: "sw-row" }, h("label", { class: "sw-label", for: selectId }, "Task"), select),
    h("details", { class: "sw-tk-custom" }, h("summary", {}, "Type a task"), text, h("div", { class: "sw-row" }, name, use)),
  );
  function update() {
    const names = store.get("task_names") || [];
    if (select.options.length !== names.length || [...select.options].some((o, i) => o.value !== names[i])) {
      replace(select, names.map((n) => h("option", { value: n }, n)));
    }
    select.value = store.get("task") || "";
  }
  const stop = watch(store, ["task_names", "task"], update);
  update();
  return { node, destroy: stop };
}

/** Zero-shot, few-shot, task-vector and cleaned accuracy; the pipeline's progress. */
function overviewPanel(store) {
  const cards = h("div", { class: "sw-tk-cards" });
  const progress = h("progress", { class: "sw-tk-progress-bar", max: 1, value: 0 });
  const stage = h("span", { class: "sw-tk-stage sw-muted" });
  const status = h("div", { class: "sw-tk-status", "aria-live": "polite" }, stage, progress);
  const node = h("section", { class: "sw-panel sw-tk-overview", "aria-label": "overview" }, cards, status);
  const card = (key, label, value, detail) =>
    h(
      "div",
      { class: "sw-tk-card", dataset: { key } },
      h("span", { class: "sw-tk-card-label" }, label),
      h("span", { class: "sw-tk-card-value" }, value),
      h("span", { class: "sw-tk-card-detail sw-muted" }, detail),
    );
  function update() {
    const o = store.get("overview") || {};
    const f = store.get("features") || {};
    const s = store.get("status") || {};
    const ready = o.task && o.task === store.get("task");
    const at = ready ? `resid_pre[${o.layer}]` : "";
    const nll = (entry) => (entry ? `NLL ${fmt(entry.nll)}` : "");
    replace(
      cards,
      card("zero_shot", "zero-shot", ready ? percent(o.zero_shot.accuracy) : "…", ready ? `${o.n_eval} prompts · ${nll(o.zero_shot)}` : ""),
      card("few_shot", `${ready ? o.shots : ""}-shot`, ready ? percent(o.few_shot.accuracy) : "…", ready ? `${o.n_prompts} prompts · ${nll(o.few_shot)}` : ""),
      card("task_vector", "task vector", ready ? percent(o.task_vector.accuracy) : "…", ready ? `${o.insert} at ${at} · ${nll(o.task_vector)}` : ""),
      card(
        "cleanup",
        "cleaned features",
        f.task === store.get("task") ? percent(f.accuracy) : "…",
        f.task === store.get("task") ? `${f.l0} of ${f.initial_l0 ?? "?"} features · ${f.steps} steps` : "",
      ),
    );
    node.dataset.task = ready ? o.task : "";
    const running = s.stage && s.stage !== "done" && s.stage !== "error";
    status.hidden = !running;
    stage.textContent = running
      ? `${s.label || s.stage}${s.total ? ` · step ${s.done} of at most ${s.total} · L0 ${s.l0} · NLL ${fmt(s.nll)}` : ""}…`
      : "";
    progress.hidden = !s.total;
    progress.value = s.total ? s.done / s.total : 0;
  }
  const stop = watch(store, ["overview", "features", "status", "task"], update);
  update();
  return { node, destroy: stop };
}

/** A chart panel that redraws when its trait or the theme changes. */
function chartPanel(store, trait, { cls, title, note, dataset, onClick, width }) {
  const chart = h("div", { class: `sw-tk-chart ${cls}-chart`, role: "img", "aria-label": title });
  const caption = h("p", { class: "sw-tk-note sw-muted" });
  const node = h("section", { class: `sw-panel ${cls}`, "aria-label": title }, h("h3", { class: "sw-tk-title" }, title), chart, caption);
  let finalize = null;
  let drawing = 0;
  async function draw() {
    const value = store.get(trait) || {};
    const ticket = ++drawing;
    caption.textContent = value.spec ? note(value) : "";
    if (!value.spec || value.task !== store.get("task")) {
      finalize?.();
      finalize = null;
      chart.dataset.task = "";
      return replace(chart, h("p", { class: "sw-muted sw-empty" }, value.spec ? "…" : "computing…"));
    }
    const target = h("div");
    try {
      const rows = typeof value.rowsFor === "function" ? value.rowsFor() : value.rows;
      const drawn = await drawSpec(target, value.spec, dataset(value), rows, themeColours(chart), {
        width: width(chart),
        onClick,
      });
      if (ticket !== drawing) return drawn.finalize();
      finalize?.();
      finalize = drawn.finalize;
      replace(chart, target);
      chart.dataset.task = value.task;
    } catch (error) {
      if (ticket === drawing) replace(chart, h("p", { class: "sw-error-text" }, `chart failed: ${error.message}`));
    }
  }
  return { node, chart, draw, destroy: () => finalize?.() };
}

/** The cleaned features: toggles, roles, open buttons. */
function featureList(store) {
  const list = h("ul", { class: "sw-tk-chips" });
  const all = h("button", { class: "sw-button", type: "button", on: { click: () => setAll(true) } }, "all");
  const none = h("button", { class: "sw-button", type: "button", on: { click: () => setAll(false) } }, "none");
  const node = h("div", { class: "sw-tk-list" }, h("div", { class: "sw-row" }, h("span", { class: "sw-label" }, "Insert"), all, none), list);
  function rows() {
    const f = store.get("features") || {};
    return f.task === store.get("task") ? f.rows || [] : [];
  }
  function setAll(on) {
    store.set("selected", on ? rows().map((r) => r.feature) : []);
  }
  function toggle(feature, on) {
    const current = new Set(store.get("selected") || []);
    if (on) current.add(feature);
    else current.delete(feature);
    store.set("selected", [...current].sort((a, b) => a - b));
  }
  function update() {
    const selected = new Set(store.get("selected") || []);
    replace(
      list,
      rows().map((r) => {
        const box = h("input", {
          type: "checkbox",
          checked: selected.has(r.feature),
          "aria-label": `insert feature ${r.feature}`,
          on: { change: () => toggle(r.feature, box.checked) },
        });
        return h(
          "li",
          { class: "sw-tk-chip", dataset: { feature: String(r.feature), role: r.role } },
          h("label", { class: "sw-tk-chip-toggle" }, box, h("span", { class: "sw-item-index" }, `#${r.feature}`)),
          h("span", { class: "sw-tk-role", title: ROLE_TEXT[r.role] || "" }, r.role),
          h("span", { class: "sw-item-label", title: r.label || "" }, r.label || ""),
          h("span", { class: "sw-item-value" }, fmt(r.weight)),
          h(
            "button",
            {
              class: "sw-link sw-tk-open",
              type: "button",
              title: "open in the feature explorer",
              on: { click: () => store.send({ type: "open", feature: r.feature }) },
            },
            "open",
          ),
        );
      }),
    );
  }
  const stop = watch(store, ["features", "selected", "task"], update);
  update();
  return { node, destroy: stop };
}

/** Zero-shot completions with the selected features inserted. */
function completionsPanel(store) {
  const summary = h("p", { class: "sw-tk-summary" });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "sw-table sw-tk-table" },
    h(
      "thead",
      {},
      h("tr", {}, ...["prompt", "expected", "completion", ""].map((c) => h("th", { scope: "col" }, c))),
    ),
    body,
  );
  const node = h(
    "section",
    { class: "sw-panel sw-tk-completions", "aria-label": "zero-shot completions" },
    h("h3", { class: "sw-tk-title" }, "Zero-shot completions with the switched-on features inserted"),
    summary,
    table,
  );
  function update() {
    const c = store.get("completions") || {};
    const s = store.get("status") || {};
    const current = c.task && c.task === store.get("task");
    node.dataset.selected = current ? (c.selected || []).join(",") : "";
    node.dataset.accuracy = current ? String(c.accuracy) : "";
    node.dataset.steering = String(Boolean(s.steering));
    summary.textContent = current
      ? `${(c.selected || []).length} feature${(c.selected || []).length === 1 ? "" : "s"} inserted: ${percent(c.accuracy)} of ${c.n_eval} zero-shot prompts answered · NLL ${fmt(c.nll)}${s.steering ? " · updating…" : ""}`
      : "computing…";
    replace(
      body,
      (current ? c.rows || [] : []).map((r) =>
        h(
          "tr",
          { dataset: { correct: String(r.correct) } },
          h("td", { class: "sw-token" }, r.prompt),
          h("td", { class: "sw-token" }, r.answer),
          h("td", { class: "sw-token sw-tk-completion" }, r.completion),
          h("td", { class: r.correct ? "sw-tk-ok" : "sw-tk-bad", "aria-label": r.correct ? "correct" : "wrong" }, r.correct ? "✓" : "✗"),
        ),
      ),
    );
  }
  const stop = watch(store, ["completions", "status", "task"], update);
  update();
  return { node, destroy: stop };
}

/** Render the task explorer into `el`; returns a cleanup function. */
export function renderTasks(el, store) {
  const width = (chart) => Math.max(180, Math.min(420, (chart.clientWidth || 400) - 250));
  const sweep = chartPanel(store, "sweep", {
    cls: "sw-tk-sweep",
    title: "Layer sweep: extract at a layer, insert at the same layer",
    dataset: () => "sweep",
    width: (chart) => Math.max(220, Math.min(420, (chart.clientWidth || 400) - 90)),
    note: (v) =>
      `Zero-shot prompts with each vector written at the last separator of the residual entering the block; SAE methods at the SAE's layer (${v.sae_layer}). Dashed: zero-shot and few-shot.`,
  });
  // the bars follow the toggles without a kernel round trip
  const featureValue = () => {
    const value = store.get("features") || {};
    const selected = new Set(store.get("selected") || []);
    return { ...value, rowsFor: () => (value.rows || []).map((r) => ({ ...r, selected: selected.has(r.feature) })) };
  };
  const originalGet = store.get;
  const featureStore = { ...store, get: (name) => (name === "features" ? featureValue() : originalGet(name)) };
  const featureChart = chartPanel(featureStore, "features", {
    cls: "sw-tk-features",
    title: "Cleaned task features",
    dataset: (v) => v.dataset || "features",
    width,
    onClick: (datum) => store.send({ type: "open", feature: datum.feature }),
    note: featuresNote,
  });
  function featuresNote(v) {
    return (
      `Gradient cleanup of the task vector: ${v.l0} of ${v.initial_l0 ?? "?"} features after ${v.steps} steps, ${percent(v.accuracy)} zero-shot accuracy when all are inserted.` +
      (v.topk_relu ? " TopK SAE: cleanup uses the ReLU of the pre-activations, so L0 is not capped at k." : "") +
      " Click a bar to open the feature; faded bars are switched off."
    );
  }
  const parts = {
    header: header(store, "Task explorer"),
    error: errorBanner(store),
    task: taskPanel(store),
    overview: overviewPanel(store),
    list: featureList(store),
    completions: completionsPanel(store),
  };
  featureChart.node.append(parts.list.node);
  const root = h(
    "div",
    { class: "sw-root sw-tasks" },
    parts.header.node,
    parts.error.node,
    parts.task.node,
    parts.overview.node,
    h("div", { class: "sw-tk-grid" }, sweep.node, featureChart.node),
    parts.completions.node,
  );
  function updateRoot() {
    const s = store.get("status") || {};
    root.dataset.task = store.get("task") || "";
    root.dataset.stage = s.task === store.get("task") ? s.stage || "" : "";
  }
  const redraw = () => {
    sweep.draw();
    featureChart.draw();
  };
  const stops = [
    watch(store, ["status", "task"], updateRoot),
    watch(store, ["sweep", "task"], sweep.draw),
    watch(store, ["features", "selected", "task"], featureChart.draw),
  ];
  let themeTimer = null;
  const stopTheme = onThemeChange(() => {
    redraw();
    clearTimeout(themeTimer);
    themeTimer = setTimeout(redraw, 400);
  });
  updateRoot();
  el.replaceChildren(root);
  requestAnimationFrame(redraw);
  store.send({ type: "ready" });
  return () => {
    stops.forEach((s) => s());
    stopTheme();
    clearTimeout(themeTimer);
    sweep.destroy();
    featureChart.destroy();
    Object.values(parts).forEach((part) => part.destroy());
  };
}
