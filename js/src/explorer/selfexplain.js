// The self-explanation panel: the model describes the feature itself (sw.self_explain).
// It renders the `self_explanation` trait: the sweep's rows (scale, explanation, composite
// score), the chosen row (`explanation`, `scale`), the best explanations and a Vega-Lite
// spec of the metric curves.
// The row for the slider's scale is picked here as in Python (explorer_selfexplain.select),
// so a saved view without a kernel follows its slider too. Model text is set as text only.
import embed from "vega-embed";
import { h, replace, fmt, uid } from "../dom.js";
import { watch } from "./store.js";
import { escapeText, vegaConfig } from "./histogram.js";
import { onThemeChange, themeColours } from "./theme.js";
import { visibleParts } from "./visible.js";

export const CURRENT_DATA = "sw_current"; // the chart's dataset for the slider's row

/** Index of the sweep row for `sliderScale`: the scale nearest |slider| x factor. */
export function rowFor(state, sliderScale) {
  const rows = (state && state.rows) || [];
  if (!rows.length) return -1;
  const target = Math.abs(Number(sliderScale) || 0) * (Number(state.factor) || 1);
  let best = 0;
  for (let i = 1; i < rows.length; i++) if (Math.abs(rows[i][0] - target) < Math.abs(rows[best][0] - target)) best = i;
  return best;
}

function walk(node, visit) {
  if (Array.isArray(node)) node.forEach((child) => walk(child, visit));
  else if (node && typeof node === "object") {
    visit(node);
    Object.values(node).forEach((child) => walk(child, visit));
  }
}

/** The Python-made spec in the page's theme, with the slider's row at `currentScale`. */
export function themedSpec(spec, colours, currentScale) {
  const copy = JSON.parse(JSON.stringify(spec));
  walk(copy, (node) => {
    const mark = node.mark;
    if (mark && typeof mark === "object" && mark.type === "rule" && mark.color === "black") mark.color = colours.text1;
    // the legend's scale of the rules (the chosen scale's is black): the theme's text colour
    const range = node.scale && node.scale.range;
    if (Array.isArray(range)) node.scale.range = range.map((c) => (c === "black" ? colours.text1 : c));
  });
  copy.background = "transparent";
  copy.padding = 4;
  copy.config = {
    ...(copy.config || {}),
    ...vegaConfig(colours),
    line: { color: colours.accent, strokeWidth: 1.5 },
    point: { color: colours.accent, size: 12 },
    concat: { spacing: 12 },
    title: { color: colours.text1, font: colours.font, fontWeight: "normal" },
    axis: { ...vegaConfig(colours).axis, titleFontSize: 10, labelFontSize: 9 },
    legend: { ...vegaConfig(colours).legend, labelFontSize: 10 },
  };
  copy.datasets = { ...(copy.datasets || {}), [CURRENT_DATA]: Number.isFinite(currentScale) ? [{ scale: currentScale }] : [] };
  return copy;
}

function quoted(text) {
  // control characters show as escapes (\x01), not as empty boxes
  return text ? h("span", { class: "sw-se-quote" }, visibleParts(String(text))) : h("span", { class: "sw-muted" }, "(no text: the model stopped at once)");
}

function parameters(n) {
  if (!Number.isFinite(n)) return "?";
  return n >= 1e9 ? `${fmt(n / 1e9, 3)}B` : n >= 1e6 ? `${fmt(n / 1e6, 3)}M` : String(n);
}

export function selfExplainPanel(store) {
  const autoId = uid("sw-se-auto");
  const auto = h("input", {
    id: autoId,
    type: "checkbox",
    on: { change: () => store.set("auto_self_explain", auto.checked) },
  });
  const explain = h(
    "button",
    { class: "sw-button sw-se-explain", type: "button", on: { click: () => store.send({ type: "self_explain" }) } },
    "Explain this feature",
  );
  const controls = h(
    "div",
    { class: "sw-row sw-se-controls" },
    h("label", { class: "sw-se-auto", for: autoId, title: "run a self-explanation sweep for each feature you open" }, auto, "explain each feature"),
    explain,
  );
  const status = h("div", { class: "sw-muted sw-se-status", role: "status" });

  const current = h("p", { class: "sw-se-current", "aria-live": "polite" });
  const where = h("div", { class: "sw-muted sw-se-where" });
  const failed = h("p", { class: "sw-se-failed" });
  const chosen = h("p", { class: "sw-se-chosen" });
  const best = h("ol", { class: "sw-se-best" });
  const unpatched = h("p", { class: "sw-se-unpatched" });
  const method = h("p", { class: "sw-muted sw-se-method" });
  const chart = h("div", { class: "sw-se-chart", role: "img", "aria-label": "self-explanation metrics against scale" });
  const body = h(
    "div",
    { class: "sw-se-body" },
    h(
      "div",
      { class: "sw-se-text" },
      h("div", { class: "sw-label" }, "At the slider's scale"),
      current,
      where,
      failed,
      h("div", { class: "sw-label" }, "Chosen scale"),
      chosen,
      h("div", { class: "sw-label" }, "Best explanations"),
      best,
      h("div", { class: "sw-label", title: "what the prompt answers with nothing patched in: never counted as an explanation" }, "Default answers (never counted as explanations)"),
      unpatched,
    ),
    chart,
  );
  const node = h(
    "section",
    { class: "sw-panel sw-selfexplain", "aria-label": "self-explanation" },
    h("div", { class: "sw-se-head" }, h("h4", { class: "sw-col-title" }, "Self-explanation"), controls),
    status,
    body,
    method,
  );

  let view = null; // the drawn chart's vega view
  let finalize = null;
  let drawnKey = null;
  let drawing = 0;

  function state() {
    return store.get("self_explanation") || {};
  }

  function currentScale(s) {
    const i = rowFor(s, store.get("scale"));
    return i < 0 ? NaN : s.rows[i][0];
  }

  async function drawChart(force = false) {
    const s = state();
    const key = s.status === "done" && s.chart ? `${s.feature}|${JSON.stringify(s.chart)}` : null;
    if (!force && key === drawnKey) return moveRule();
    const ticket = ++drawing;
    if (!key) {
      finalize?.();
      finalize = view = null;
      drawnKey = null;
      replace(chart);
      chart.dataset.feature = "";
      return undefined;
    }
    const target = h("div");
    try {
      const result = await embed(target, themedSpec(s.chart, themeColours(chart), currentScale(s)), {
        renderer: "svg",
        actions: false,
        tooltip: { theme: "custom", sanitize: escapeText },
        loader: { load: () => Promise.reject(new Error("saewidgets loads no external data")) },
      });
      if (ticket !== drawing) return result.finalize();
      finalize?.();
      finalize = () => result.finalize();
      view = result.view;
      drawnKey = key;
      replace(chart, target);
      chart.dataset.feature = String(s.feature);
      return moveRule();
    } catch (error) {
      if (ticket === drawing) replace(chart, h("p", { class: "sw-error-text" }, `chart failed: ${error.message}`));
      return undefined;
    }
  }

  /** Move the slider's rule on the drawn chart (no new chart). */
  function moveRule() {
    if (!view) return undefined;
    const scale = currentScale(state());
    chart.dataset.current = Number.isFinite(scale) ? String(scale) : "";
    return view.data(CURRENT_DATA, Number.isFinite(scale) ? [{ scale }] : []).runAsync();
  }

  function showControls() {
    const live = store.live;
    const s = state();
    controls.hidden = !live;
    auto.checked = Boolean(store.get("auto_self_explain"));
    explain.hidden = !live || s.status === "done" || s.status === "running";
    explain.textContent = s.feature === undefined ? "Explain this feature" : `Explain feature ${s.feature}`;
    node.hidden = !live && s.status !== "done";
  }

  function update() {
    const s = state();
    node.dataset.status = s.status || "empty";
    node.dataset.feature = String(s.feature ?? "");
    showControls();
    const done = s.status === "done" && Array.isArray(s.rows) && s.rows.length > 0;
    body.hidden = !done;
    method.hidden = !done;
    status.classList.toggle("sw-error-text", s.status === "error");
    if (s.status === "running") {
      replace(
        status,
        h("span", { class: "sw-spinner", "aria-hidden": "true" }),
        ` explaining feature ${s.feature}: one batched generation over the sweep's scales…`,
      );
    } else if (s.status === "off") {
      status.textContent =
        s.parameters > s.limit
          ? `Not explained automatically: this model has ${parameters(s.parameters)} parameters ` +
            `(automatic up to ${parameters(s.limit)}). A sweep holds the model while it runs, so steering waits for it.`
          : "Automatic self-explanation is off: tick the box, or explain just this feature.";
    } else if (s.status === "error") {
      status.textContent = s.message || "self-explanation failed";
    } else if (!s.status) {
      status.textContent = store.live ? "waiting for the kernel…" : "";
    } else status.textContent = "";
    status.hidden = !status.textContent;
    if (!done) {
      drawChart();
      return;
    }
    showRow(s);
    const onlyDefault = !(s.best || []).length;
    replace(
      chosen,
      onlyDefault ? h("span", { class: "sw-muted" }, "none: every scale gives the unpatched answer") : quoted(s.explanation),
      onlyDefault ? null : h("span", { class: "sw-muted" }, ` at scale ${fmt(s.scale)} (highest composite score)`),
    );
    replace(best, (s.best || []).map((text) => h("li", {}, quoted(text))));
    replace(
      unpatched,
      s.unpatched ? quoted(s.unpatched) : h("span", { class: "sw-muted" }, "(empty)"),
      h("span", { class: "sw-muted" }, " with nothing patched in"),
      ...(s.zero && s.zero !== s.unpatched ? [h("br"), quoted(s.zero), h("span", { class: "sw-muted" }, " with the zero vector")] : []),
    );
    failed.hidden = !s.failed;
    failed.textContent = !s.failed
      ? ""
      : onlyDefault
        ? "No explanation: at every scale the model answers as it does with nothing patched in."
        : "Low confidence: the patched direction barely reaches the later layer (self-similarity stays low at every scale).";
    const matched =
      s.matched_by === "relative size"
        ? `the row shown is the one whose patch is as large, relative to the residual stream where it goes: sweep scale = |slider| × ${fmt(s.factor)}.`
        : "the row shown is the sweep scale nearest the slider's value.";
    method.textContent =
      `How: in the prompt “${String(s.prompt || "")}”, the residual entering block ${s.layer} at X is replaced by ` +
      `scale × the feature's decoder direction${s.mapped ? " (mapped to that block)" : ""} and the model continues ` +
      `(self-similarity is read at block ${s.probe_layer}). Sweep scales count the same direction as the slider, but ` +
      `steering adds it at every token at ${s.hook}; ${matched}`;
    drawChart();
  }

  function showRow(s) {
    const i = rowFor(s, store.get("scale"));
    if (i < 0) return;
    const [scale, text, , isDefault] = s.rows[i];
    replace(
      current,
      isDefault
        ? h("span", { class: "sw-muted sw-se-default" }, "no explanation here: the model gives its unpatched answer ", quoted(text))
        : quoted(text),
    );
    const slider = Number(store.get("scale")) || 0;
    const target = Math.abs(slider) * (Number(s.factor) || 1);
    const last = s.rows[s.rows.length - 1][0];
    const notes = [];
    if (slider < 0) notes.push("negative: the sweep explains +direction, this is the row of the same size");
    if (target > last * 1.05) notes.push("beyond the sweep: its last row");
    where.textContent = `slider ${fmt(slider)} → sweep scale ${fmt(scale)} (row ${i + 1} of ${s.rows.length})${notes.length ? ` · ${notes.join("; ")}` : ""}`;
    node.dataset.row = String(i);
  }

  function onScale() {
    const s = state();
    if (s.status !== "done" || !s.rows) return;
    showRow(s);
    moveRule();
  }

  const stops = [
    watch(store, ["self_explanation"], update),
    watch(store, ["auto_self_explain"], showControls),
    watch(store, ["scale"], onScale),
    store.onLive(update),
  ];
  let themeTimer = null;
  const stopTheme = onThemeChange(() => {
    drawChart(true);
    clearTimeout(themeTimer);
    themeTimer = setTimeout(() => drawChart(true), 400);
  });
  update();
  requestAnimationFrame(() => drawChart(true));
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
