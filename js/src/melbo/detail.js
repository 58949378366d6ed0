// The selected vector: its continuations on every prompt (baseline vs steered) at the
// slider's multiple of R, its SAE features, logit lens, self-explanation, and a button
// that opens it in a FeatureExplorer.
import { h, replace, fmt, uid, visibleToken } from "../dom.js";
import { watch } from "../explorer/store.js";

function nearestIndex(grid, value) {
  let best = 0;
  for (let i = 1; i < grid.length; i++) if (Math.abs(grid[i] - value) < Math.abs(grid[best] - value)) best = i;
  return best;
}

function radiusSlider(store) {
  const id = uid("sw-radius");
  const slider = h("input", { id, class: "sw-slider sw-melbo-radius", type: "range", min: 0, step: 1,
    "aria-label": "multiple of R",
    on: {
      input: () => show(Number(slider.value)),
      change: () => store.set("multiple", (store.get("multiples") || [1])[Number(slider.value)]),
    } });
  const text = h("span", { class: "sw-range sw-melbo-multiple" });
  const node = h("div", { class: "sw-row sw-scale-row" }, h("label", { class: "sw-label", for: id }, "Strength"),
    h("div", { class: "sw-scale" }, slider, text));
  function show(position) {
    const grid = store.get("multiples") || [1];
    const radius = (store.get("settings") || {}).radius || 1;
    const m = grid[Math.min(position, grid.length - 1)];
    text.textContent = `${fmt(m)} × R (norm ${fmt(m * radius)})`;
    slider.setAttribute("aria-valuetext", `${fmt(m)} times R`);
    return m;
  }
  function update() {
    const grid = store.get("multiples") || [1];
    slider.max = String(grid.length - 1);
    const position = nearestIndex(grid, store.get("multiple") ?? 1);
    slider.value = String(position);
    show(position);
  }
  return { node, update, shown: () => show(Number(slider.value)) };
}

function generationTable(store, slider) {
  const body = h("tbody");
  const status = h("p", { class: "sw-muted sw-gen-status", role: "status" });
  const table = h("table", { class: "sw-table sw-melbo-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "prompt"), h("th", {}, "baseline"), h("th", { class: "sw-melbo-steered-head" }, "steered"))),
    body);
  function update() {
    const gen = store.get("generations") || {};
    const grid = gen.multiples || store.get("multiples") || [1];
    const position = nearestIndex(grid, slider.shown());
    table.dataset.status = gen.status || "empty";
    table.dataset.multiple = String(grid[position]);
    replace(body, (gen.rows || []).map((row) => {
      const steered = (row.steered || [])[position];
      return h("tr", { dataset: { split: String(row.split) } },
        h("td", { class: "sw-melbo-prompt" }, String(row.prompt),
          row.split === "held_out" ? h("span", { class: "sw-kind sw-melbo-held" }, "held-out") : null),
        h("td", { class: "sw-text sw-melbo-baseline" }, String(row.baseline) || "(ends at once)"),
        h("td", { class: "sw-text sw-melbo-steered" }, steered === undefined ? "…" : String(steered) || "(ends at once)"));
    }));
    if (gen.status === "running") status.textContent = "generating…";
    else if (gen.status === "error") status.textContent = String(gen.message || "generation failed");
    else if (gen.status === "done") status.textContent = `greedy, ${(gen.rows || []).length} prompts; the vector is added at every position`;
    else status.textContent = store.live ? "" : "no generations saved";
  }
  return { node: h("div", { class: "sw-melbo-generations" }, table, status), update };
}

function featureList(c) {
  const items = (c.features || []).map((f) => h("li", {},
    h("span", { class: "sw-item-index" }, `#${f.feature}`),
    h("span", { class: "sw-num sw-muted" }, ` ${fmt(f.weight)} `),
    h("span", {}, (f.tokens || []).map((t) => visibleToken(t)).join(" "))));
  return h("div", { class: "sw-melbo-code" },
    h("div", { class: "sw-label" }, "SAE code of its effect"),
    h("ol", { class: "sw-melbo-feature-list" }, items),
    h("div", { class: "sw-muted" }, `cosine ${fmt(c.cosine)} with the effect`));
}

function lensList(c) {
  const list = (tokens) => h("div", { class: "sw-melbo-tokens" },
    (tokens || []).map((t) => h("span", { class: "sw-token sw-melbo-tok" }, visibleToken(t))));
  return h("div", { class: "sw-melbo-lens" },
    h("div", { class: "sw-label" }, "Logit lens of its effect"), list(c.top_tokens),
    h("div", { class: "sw-label" }, "suppressed"), list(c.bottom_tokens));
}

function explanationBlock(store) {
  const node = h("div", { class: "sw-melbo-explain" });
  function update() {
    const e = store.get("explanation") || {};
    const parts = [h("div", { class: "sw-label" }, "Self-explanation")];
    if (e.status === "done") {
      parts.push(h("p", { class: "sw-se-current" }, h("span", { class: "sw-se-quote" }, String(e.explanation || "(none)"))));
      if ((e.best || []).length > 1) parts.push(h("p", { class: "sw-muted" }, `also: ${e.best.slice(1).join(" · ")}`));
      if (e.failed) parts.push(h("p", { class: "sw-se-failed" }, "weak evidence: low self-similarity"));
    } else if (e.status === "running") parts.push(h("p", { class: "sw-muted" }, "explaining…"));
    else if (e.status === "error") parts.push(h("p", { class: "sw-error-text" }, String(e.message || "failed")));
    else parts.push(h("button", { class: "sw-button sw-melbo-explain-button", type: "button", disabled: !store.live,
      on: { click: () => store.send({ type: "explain" }) } }, "Explain"));
    node.dataset.status = e.status || "off";
    replace(node, parts);
  }
  return { node, update };
}

export function detailPanel(store) {
  const title = h("h3", { class: "sw-title" });
  const open = h("button", { class: "sw-button sw-melbo-open", type: "button",
    on: { click: () => store.send({ type: "open", index: store.get("selected") }) } }, "Open in FeatureExplorer");
  const slider = radiusSlider(store);
  const table = generationTable(store, slider);
  const side = h("div", { class: "sw-melbo-side" });
  const explain = explanationBlock(store);
  const body = h("div", { class: "sw-melbo-detail-body" }, h("div", { class: "sw-melbo-main" }, slider.node, table.node),
    h("div", { class: "sw-melbo-aside" }, side, explain.node));
  const empty = h("p", { class: "sw-muted sw-empty" }, "pick a vector");
  const node = h("section", { class: "sw-panel sw-melbo-detail", "aria-label": "selected vector" },
    h("div", { class: "sw-feature-head" }, title, open), body, empty);

  function update() {
    const index = store.get("selected");
    const c = (store.get("cards") || []).find((x) => x.index === index);
    const has = index !== undefined && index >= 0;
    body.hidden = !has;
    open.hidden = !has;
    empty.hidden = has;
    node.dataset.index = String(index);
    title.textContent = c ? `${c.name} · objective ${fmt(c.objective, 4)} · norm ${fmt(c.norm)}` : has ? `vector ${index}` : "";
    open.disabled = !store.live;
    replace(side, c ? [featureList(c), lensList(c)] : []);
    slider.update();
    table.update();
    explain.update();
  }
  const stops = [
    watch(store, ["selected", "cards", "multiples", "settings"], update),
    watch(store, ["generations", "multiple"], () => { slider.update(); table.update(); }),
    watch(store, ["explanation"], explain.update),
    store.onLive(update),
  ];
  slider.node.querySelector("input").addEventListener("input", table.update);
  update();
  return { node, destroy: () => stops.forEach((s) => s()) };
}
