// Every feature of an atlas in one table: sortable, filterable, smooth at 65k rows (only the
// rows in sight are in the DOM). Columns arrive packed (saewidgets/widgets/table.py); labels
// and explanations are user / model text, set as text nodes.
import { h, replace, fmt, uid } from "../dom.js";
import { watch } from "./store.js";
import { asDataView, unpack } from "../standalone/packing.js";

const ROW = 26; // px per row
const COLUMNS = [
  ["feature", "#", (v) => String(v)],
  ["frequency", "frequency", (v) => (v > 0 ? `${fmt(100 * v, 3)}%` : "0")],
  ["max_act", "max act", (v) => fmt(v)],
  ["mean_act", "mean act", (v) => fmt(v)],
  ["std", "logit std", (v) => fmt(v)],
  ["skew", "skew", (v) => fmt(v)],
  ["kurtosis", "kurtosis", (v) => fmt(v)],
  ["kind", "kind", (v) => v],
  ["label", "label", (v) => v],
];
const ALIASES = { freq: "frequency", max: "max_act", mean: "mean_act", std: "std", skew: "skew", kurt: "kurtosis", kurtosis: "kurtosis" };

/** Decode the table trait into columns of plain arrays (+ kind names and label strings). */
export function decodeTable(table, data) {
  if (!table || !table.columns) return null;
  const columns = unpack(table.columns, asDataView(data));
  const n = table.n || 0;
  const kinds = table.kinds || [];
  const labels = table.labels || {};
  const explanations = table.explanations || {};
  return {
    n,
    get(name, i) {
      if (name === "kind") return kinds[columns.kind[i]] || "";
      if (name === "label") return labels[String(columns.feature[i])] || "";
      if (name === "explanation") return explanations[String(columns.feature[i])] || "";
      return columns[name][i];
    },
  };
}

/** Row indices of `rows` passing `query`: words match label / explanation / kind, `#12` an index,
 * `freq>0.01`, `max<2` ... compare a column. */
export function filterRows(rows, query) {
  const out = [];
  const terms = String(query || "").trim().toLowerCase().split(/\s+/).filter(Boolean);
  const tests = terms.map((term) => {
    const cmp = term.match(/^([a-z_]+)\s*(<=|>=|<|>|=)\s*(-?[\d.e-]+)$/);
    if (cmp && (ALIASES[cmp[1]] || COLUMNS.some(([n]) => n === cmp[1]))) {
      const column = ALIASES[cmp[1]] || cmp[1];
      const value = Number(cmp[3]);
      const op = cmp[2];
      return (i) => {
        const v = rows.get(column, i);
        if (typeof v !== "number" || Number.isNaN(v)) return false;
        return op === "<" ? v < value : op === ">" ? v > value : op === "<=" ? v <= value : op === ">=" ? v >= value : v === value;
      };
    }
    if (/^#\d+$/.test(term)) return (i) => String(rows.get("feature", i)) === term.slice(1);
    return (i) =>
      rows.get("label", i).toLowerCase().includes(term) ||
      rows.get("explanation", i).toLowerCase().includes(term) ||
      rows.get("kind", i) === term;
  });
  for (let i = 0; i < rows.n; i++) if (tests.every((t) => t(i))) out.push(i);
  return out;
}

/** Sort row indices by a column (NaN and empty last). */
export function sortRows(rows, order, column, descending) {
  const key = (i) => rows.get(column, i);
  const numeric = column !== "kind" && column !== "label";
  order.sort((a, b) => {
    const x = key(a);
    const y = key(b);
    if (numeric) {
      const xn = Number.isNaN(x) || x === null;
      const yn = Number.isNaN(y) || y === null;
      if (xn || yn) return xn === yn ? a - b : xn ? 1 : -1;
      return (descending ? y - x : x - y) || a - b;
    }
    if (!x || !y) return !x === !y ? a - b : !x ? 1 : -1;
    return (descending ? String(y).localeCompare(String(x)) : String(x).localeCompare(String(y))) || a - b;
  });
  return order;
}

/**
 * The table, bound to `store` traits `table` / `table_data` and `feature`. `request()` asks the
 * kernel for the data (the explorer sends it when the table is first opened).
 */
export function featureTable(store, { request = null, height = 320 } = {}) {
  const filterId = uid("sw-filter");
  let rows = null;
  let order = [];
  let sortBy = "frequency";
  let descending = true;
  const filter = h("input", {
    id: filterId,
    class: "sw-input sw-table-filter",
    type: "search",
    placeholder: "filter: label, kind, #12, freq>0.001, max<2 …",
    spellcheck: "false",
    autocomplete: "off",
    on: { input: () => schedule() },
  });
  const count = h("span", { class: "sw-muted sw-table-count", role: "status" });
  const headRow = h("div", { class: "sw-vrow sw-vhead", role: "row" });
  const spacer = h("div", { class: "sw-vspacer" });
  const body = h("div", { class: "sw-vbody", role: "rowgroup" });
  const viewport = h("div", { class: "sw-viewport", style: { height: `${height}px` }, on: { scroll: () => draw() } }, spacer, body);
  const node = h(
    "div",
    { class: "sw-feature-table", role: "table", "aria-label": "all features" },
    h("div", { class: "sw-row" }, h("label", { class: "sw-label", for: filterId }, "Filter"), filter, count),
    headRow,
    viewport,
  );

  function header() {
    replace(
      headRow,
      COLUMNS.map(([name, title]) =>
        h(
          "button",
          {
            class: ["sw-vcell", `sw-tc-${name}`, name === sortBy && "sw-sorted"],
            type: "button",
            role: "columnheader",
            "aria-sort": name === sortBy ? (descending ? "descending" : "ascending") : "none",
            on: {
              click: () => {
                if (sortBy === name) descending = !descending;
                else {
                  sortBy = name;
                  descending = name !== "feature" && name !== "label" && name !== "kind";
                }
                refilter();
              },
            },
          },
          title,
          name === sortBy ? (descending ? " ▾" : " ▴") : "",
        ),
      ),
    );
  }

  let timer = null;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refilter, 120);
  }

  function refilter() {
    header();
    if (!rows) return draw();
    order = sortRows(rows, filterRows(rows, filter.value), sortBy, descending);
    count.textContent = `${order.length.toLocaleString()} of ${rows.n.toLocaleString()} features`;
    spacer.style.height = `${order.length * ROW}px`;
    draw(true);
  }

  let drawn = "";
  function draw(force = false) {
    if (!rows) {
      const why = !request ? "no table" : store.live === false ? "not connected to a kernel: this saved view has no table" : "loading the table…";
      replace(body, h("div", { class: "sw-muted sw-vempty" }, why));
      return;
    }
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 5);
    const last = Math.min(order.length, first + Math.ceil(height / ROW) + 10);
    const current = store.get("feature");
    const key = `${first}:${last}:${current}`;
    if (!force && key === drawn) return;
    drawn = key;
    body.style.transform = `translateY(${first * ROW}px)`;
    const out = [];
    for (let k = first; k < last; k++) {
      const i = order[k];
      const feature = rows.get("feature", i);
      out.push(
        h(
          "div",
          {
            class: ["sw-vrow", feature === current && "sw-current"],
            role: "row",
            tabindex: 0,
            dataset: { feature: String(feature) },
            on: {
              click: () => store.set("feature", feature),
              keydown: (event) => event.key === "Enter" && store.set("feature", feature),
            },
          },
          COLUMNS.map(([name, , format]) => {
            const value = rows.get(name, i);
            return h("span", { class: ["sw-vcell", `sw-tc-${name}`], role: "cell", title: name === "label" ? value : null }, format(value));
          }),
        ),
      );
    }
    replace(body, out);
  }

  function load() {
    rows = decodeTable(store.get("table"), store.get("table_data"));
    refilter();
  }

  let asked = false;
  function open() {
    if (!store.get("table")?.columns && request && !asked) {
      asked = true;
      request();
    }
    load();
  }

  const stops = [watch(store, ["table", "table_data"], load), watch(store, ["feature"], () => draw(true))];
  header();
  return {
    node,
    open,
    destroy() {
      clearTimeout(timer);
      stops.forEach((s) => s());
    },
  };
}

/** The FeatureTable widget's own view. */
export function renderTable(el, store) {
  const table = featureTable(store, { height: 420 });
  const root = h("div", { class: "sw-root sw-table-widget" }, h("header", { class: "sw-header" }, h("strong", {}, "Features"), h("span", { class: "sw-header-title" }, store.get("table")?.atlas || "")), table.node);
  el.replaceChildren(root);
  table.open();
  return () => table.destroy();
}
