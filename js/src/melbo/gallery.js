// The gallery: one card per vector (objective, top SAE features of its effect, logit lens of
// its effect, the words it adds, a sample continuation), and groups of similar vectors.
import { h, replace, fmt, visibleToken } from "../dom.js";
import { watch } from "../explorer/store.js";

function tokens(list, n = 6) {
  return (list || []).slice(0, n).map((t) => h("span", { class: "sw-token sw-melbo-tok" }, visibleToken(t)));
}

function card(store, c, selected) {
  const features = (c.features || []).slice(0, 3).map((f) =>
    h("li", { class: "sw-melbo-feature", title: `weight ${fmt(f.weight)}` },
      h("span", { class: "sw-item-index" }, `#${f.feature}`),
      h("span", { class: "sw-muted" }, ` ${(f.tokens || []).map((t) => String(t).trim() || visibleToken(t)).join(" ")}`)));
  const sample = c.sample
    ? h("p", { class: "sw-melbo-sample" }, h("span", { class: "sw-prompt-text" }, String(c.sample.prompt)),
      h("span", { class: "sw-melbo-steered-text" }, String(c.sample.steered) || "(ends at once)"))
    : null;
  return h(
    "button",
    { class: ["sw-melbo-card", selected && "sw-current"], type: "button", dataset: { index: String(c.index) },
      "aria-pressed": String(selected), on: { click: () => store.set("selected", c.index) } },
    h("div", { class: "sw-melbo-card-head" }, h("strong", {}, String(c.name)),
      h("span", { class: "sw-muted sw-num", title: "objective: how far it moves the target layer" }, fmt(c.objective, 4))),
    h("div", { class: "sw-label" }, "SAE features"),
    h("ul", { class: "sw-melbo-features" }, features),
    h("div", { class: "sw-label" }, "says"),
    h("div", { class: "sw-melbo-tokens" }, tokens(c.top_tokens)),
    c.added_words && c.added_words.length
      ? h("div", { class: "sw-muted sw-melbo-added", title: "words its continuations add over the baselines" },
        `+ ${c.added_words.slice(0, 5).join(" ")}`)
      : null,
    c.explanation ? h("p", { class: "sw-melbo-card-explain", title: "self-explanation" }, `“${String(c.explanation)}”`) : null,
    sample,
  );
}

export function galleryPanel(store) {
  const grid = h("div", { class: "sw-melbo-grid" });
  const empty = h("p", { class: "sw-muted sw-empty" });
  const node = h("section", { class: "sw-panel sw-melbo-gallery", "aria-label": "vectors" }, grid, empty);
  function update() {
    const cards = store.get("cards") || [];
    const selected = store.get("selected");
    replace(grid, cards.map((c) => card(store, c, c.index === selected)));
    empty.hidden = cards.length > 0;
    empty.textContent = store.live ? "no vectors yet: train some" : "no vectors saved";
  }
  const stops = [watch(store, ["cards", "selected"], update), store.onLive(update)];
  update();
  return { node, destroy: () => stops.forEach((s) => s()) };
}

export function groupsPanel(store) {
  const list = h("ul", { class: "sw-melbo-groups" });
  const node = h("section", { class: "sw-panel sw-melbo-groups-panel", "aria-label": "groups" },
    h("span", { class: "sw-label" }, "Similar behaviour"), list);
  function update() {
    const groups = (store.get("groups") || []).filter((g) => (g.members || []).length > 1);
    node.hidden = groups.length === 0;
    replace(list, groups.map((g) => h("li", {},
      h("button", { class: "sw-link", type: "button", on: { click: () => store.set("selected", g.members[0]) } },
        g.members.map((m) => `#${m}`).join(" ")),
      h("span", { class: "sw-muted" }, ` ${String(g.label || "")}`))));
  }
  const stop = watch(store, ["groups"], update);
  update();
  return { node, destroy: stop };
}
