// Feature picker: index box, search over top tokens / explanations, ranked lists.
import { h, replace, fmt, uid, editable } from "../dom.js";
import { watch } from "./store.js";

const METRIC_LABELS = { std: "std", skew: "skew", kurtosis: "kurtosis", enrichment: "enrichment" };

export function pickerPanel(store) {
  const indexId = uid("sw-index");
  const searchId = uid("sw-search");
  const rankId = uid("sw-rank");

  const index = h("input", {
    id: indexId,
    class: "sw-input sw-index",
    type: "number",
    min: 0,
    step: 1,
    inputmode: "numeric",
    "aria-describedby": `${indexId}-of`,
    on: {
      keydown(event) {
        if (event.key === "Enter") {
          event.preventDefault();
          submitIndex();
        }
      },
      change: submitIndex,
    },
  });
  const indexEdit = editable(index);
  const indexHint = h("span", { id: `${indexId}-of`, class: "sw-muted" });
  const step = (delta) => {
    const n = store.get("n_features") || 0;
    const current = store.get("feature");
    const next = Math.min(Math.max(0, (current === -1 ? 0 : current || 0) + delta), Math.max(0, n - 1));
    store.set("feature", next);
  };
  const prev = h("button", { class: "sw-button sw-icon", type: "button", title: "previous feature", "aria-label": "previous feature", on: { click: () => step(-1) } }, "‹");
  const next = h("button", { class: "sw-button sw-icon", type: "button", title: "next feature", "aria-label": "next feature", on: { click: () => step(1) } }, "›");

  const indexNote = h("div", { class: "sw-error-text sw-index-note", role: "alert" });
  indexNote.hidden = true;
  function submitIndex() {
    const text = index.value.trim(); // "" also when a number input cannot parse what was typed
    indexEdit.committed();
    if (!/^-?\d+$/.test(text)) {
      const n = store.get("n_features") || 0;
      const what = text ? `${JSON.stringify(text)} is not a feature index` : "no feature index typed";
      indexNote.textContent = `${what}: type a whole number from 0 to ${Math.max(0, n - 1)}`;
      indexNote.hidden = false;
      updateIndex(); // the box shows the feature in use, never a refused entry
      return;
    }
    indexNote.hidden = true;
    const value = Number.parseInt(text, 10);
    if (value !== store.get("feature")) store.set("feature", value);
  }

  let searchTimer = null;
  const search = h("input", {
    id: searchId,
    class: "sw-input",
    type: "search",
    placeholder: "token or explanation…",
    autocomplete: "off",
    spellcheck: "false",
    on: {
      input() {
        clearTimeout(searchTimer);
        searchTimer = setTimeout(() => store.set("search", search.value), 200);
      },
      keydown(event) {
        if (event.key === "Enter") {
          clearTimeout(searchTimer);
          store.set("search", search.value);
        }
      },
    },
  });
  const searchResults = h("ol", { class: "sw-list sw-search-results", "aria-label": "search results" });

  const rankSelect = h("select", {
    id: rankId,
    class: "sw-input",
    on: { change: () => store.set("rank_by", rankSelect.value) },
  });
  const rankList = h("ol", { class: "sw-list sw-ranking", "aria-label": "ranked features" });
  const progress = h("div", { class: "sw-progress", role: "status" });

  const node = h(
    "section",
    { class: "sw-panel sw-picker", "aria-label": "feature picker" },
    h("label", { class: "sw-label", for: indexId }, "Feature"),
    h("div", { class: "sw-row" }, prev, index, next, indexHint),
    indexNote,
    h("label", { class: "sw-label", for: searchId }, "Search"),
    search,
    searchResults,
    h("label", { class: "sw-label", for: rankId }, "Rank by"),
    rankSelect,
    progress,
    rankList,
  );

  function featureButton(feature, label, value) {
    const current = feature === store.get("feature");
    return h(
      "li",
      {},
      h(
        "button",
        {
          class: ["sw-item", current && "sw-current"],
          type: "button",
          "aria-current": current ? "true" : false,
          on: { click: () => store.set("feature", feature) },
        },
        h("span", { class: "sw-item-index" }, `#${feature}`),
        h("span", { class: "sw-item-label sw-token" }, label ?? ""),
        value === undefined ? null : h("span", { class: "sw-item-value" }, fmt(value)),
      ),
    );
  }

  function updateIndex() {
    const n = store.get("n_features") || 0;
    index.max = Math.max(0, n - 1);
    const feature = store.get("feature");
    indexEdit.show(feature === -1 ? "" : feature); // -1: a raw direction is shown, no feature index
    indexHint.textContent = feature === -1 ? `of ${n} (showing a direction)` : `of ${n}`;
  }

  function updateSearch() {
    const results = store.get("search_results") || [];
    const query = store.get("search") || "";
    if (document.activeElement !== search && search.value !== query) search.value = query;
    if (!query) return replace(searchResults);
    if (!results.length) return replace(searchResults, h("li", { class: "sw-muted sw-empty" }, "no match"));
    replace(searchResults, results.map(([feature, label]) => featureButton(feature, label)));
  }

  function updateRanking() {
    const rankings = store.get("rankings") || {};
    const metrics = Object.keys(rankings);
    const chosen = store.get("rank_by");
    const options = metrics.length ? metrics : [chosen].filter(Boolean);
    if (rankSelect.options.length !== options.length || [...rankSelect.options].some((o, i) => o.value !== options[i])) {
      replace(rankSelect, options.map((m) => h("option", { value: m }, METRIC_LABELS[m] || m)));
    }
    rankSelect.value = chosen;
    const entries = rankings[chosen] || [];
    const p = store.get("stats_progress") || {};
    const computing = Boolean(p.label);
    if (computing) {
      const bar = p.total
        ? h("progress", { max: p.total, value: p.done || 0, "aria-label": p.label })
        : h("progress", { "aria-label": p.label });
      const count = p.total ? ` ${p.done || 0}/${p.total}` : "…";
      replace(progress, bar, h("span", { class: "sw-muted" }, `${p.label}${count}`));
    } else replace(progress);
    if (!entries.length) {
      const why = computing
        ? "computing…"
        : chosen === "enrichment" && rankings.enrichment
          ? "enrichment ranks a single token class: pick one"
          : "no ranking yet";
      return replace(rankList, h("li", { class: "sw-muted sw-empty" }, why));
    }
    replace(rankList, entries.map(([feature, value, label]) => featureButton(feature, label, value)));
  }

  const stops = [
    watch(store, ["feature", "n_features"], () => { indexNote.hidden = true; updateIndex(); updateSearch(); updateRanking(); }),
    watch(store, ["search_results", "search"], updateSearch),
    watch(store, ["rankings", "rank_by", "stats_progress"], updateRanking),
  ];
  updateIndex();
  updateSearch();
  updateRanking();
  return { node, destroy: () => { clearTimeout(searchTimer); stops.forEach((s) => s()); } };
}
