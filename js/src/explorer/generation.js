// Baseline and steered completions side by side, token by token, as they stream in.
import { h, replace, fmt } from "../dom.js";
import { watch } from "./store.js";
import { visibleParts } from "./visible.js";

function describeFeatures(features) {
  if (!features || !features.length) return "no features";
  return features.map(([feature, scale]) => `#${feature} × ${fmt(scale)}`).join(", ");
}

/** Token spans; `reference` marks positions where this side differs from the other. */
function tokenSpans(side, reference) {
  const tokens = side?.tokens || [];
  const logprobs = side?.logprobs || [];
  return tokens.map((token, i) => {
    const differs = reference && reference.tokens && i < reference.tokens.length && reference.tokens[i] !== token;
    const eos = side.ended && i === tokens.length - 1;
    const lp = logprobs[i] === undefined || logprobs[i] === null ? "" : `  log p = ${fmt(logprobs[i])}`;
    const title = `${JSON.stringify(String(token))}${eos ? " (end of text)" : ""}${lp}`;
    return h("span", { class: ["sw-tok", differs && "sw-diff", eos && "sw-eos"], title }, visibleParts(String(token)));
  });
}

export function generationPanel(store) {
  const column = (role, heading) => {
    const title = h("h4", { class: "sw-col-title" }, heading);
    const text = h("p", { class: "sw-text", dataset: { role }, "aria-live": role === "steered" ? "polite" : "off" });
    return { title, text, node: h("div", { class: ["sw-col", `sw-${role}`] }, title, text) };
  };
  const baseline = column("baseline", "Baseline");
  const steered = column("steered", "Steered");
  const status = h("div", { class: "sw-muted sw-gen-status", role: "status" });
  const node = h(
    "section",
    { class: "sw-panel sw-generation", "aria-label": "generations" },
    h("div", { class: "sw-columns" }, baseline.node, steered.node),
    status,
  );

  function update() {
    const gen = store.get("generation") || {};
    node.dataset.status = gen.status || "empty";
    node.dataset.request = String(gen.id ?? "");
    const running = gen.status === "running";
    const prompt = gen.prompt ?? "";
    const fill = (col, side, other) => {
      replace(
        col.text,
        h("span", { class: "sw-prompt-text" }, visibleParts(String(prompt))),
        tokenSpans(side, other),
        running ? h("span", { class: "sw-caret", "aria-hidden": "true" }) : null,
      );
      col.text.dataset.done = String(!running && gen.status === "done");
    };
    fill(baseline, gen.baseline, null);
    fill(steered, gen.steered, gen.baseline);
    const extra = gen.direction ? [`${String(gen.direction.name)} × ${fmt(gen.direction.scale)}`] : [];
    const features = gen.features && gen.features.length ? [describeFeatures(gen.features)] : [];
    steered.title.textContent = `Steered · ${[...extra, ...features].join(", ") || "nothing"}`;
    if (!gen.status) status.textContent = store.live ? "waiting for the kernel…" : "no generation saved";
    else if (running) status.textContent = "generating…";
    else if (gen.status === "done") {
      const n = gen.steered?.tokens?.length ?? 0;
      const took = gen.cached ? " (again: cached)" : gen.seconds === undefined ? "" : ` in ${fmt(gen.seconds, 2)} s`;
      status.textContent = `${n} tokens${took}${gen.temperature ? `, temperature ${fmt(gen.temperature)}, seed ${gen.seed}` : ", greedy"}`;
    } else status.textContent = gen.status;
  }

  const stops = [watch(store, ["generation"], update), store.onLive(update)];
  update();
  return { node, destroy: () => stops.forEach((s) => s()) };
}
