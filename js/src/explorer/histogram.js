// The logit-weight histogram: a Vega-Lite spec built from pre-binned counts
// (Python sends edges and counts per token class, never raw logits), drawn with
// vega-embed into SVG. Labels (class names) are drawn by Vega as SVG text;
// the tooltip handler escapes its content.
import embed from "vega-embed";

/** Rows for Vega-Lite from {edges, series: [{name, counts}]}. */
export function histogramRows(histogram) {
  const rows = [];
  const edges = histogram.edges || [];
  (histogram.series || []).forEach((series, order) => {
    series.counts.forEach((count, i) => {
      if (count > 0) rows.push({ start: edges[i], end: edges[i + 1], group: String(series.name), count, order });
    });
  });
  return rows;
}

/** A Vega-Lite spec for the histogram; pure function of the data and the colours. */
export function histogramSpec(histogram, colours, { width = 360, height = 170 } = {}) {
  const names = (histogram.series || []).map((s) => String(s.name));
  const palette = seriesColours(names, colours);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width,
    height,
    background: "transparent",
    data: { values: histogramRows(histogram) },
    // Classes are layered, not stacked: each bar starts at 0, so every class reads on the
    // square-root axis (Vega-Lite cannot stack on a non-linear scale). In each bin the
    // larger count is drawn first and the smaller in front of it.
    mark: { type: "bar", binSpacing: 0, stroke: colours.background, strokeWidth: 0.5, opacity: 0.9 },
    encoding: {
      x: {
        field: "start",
        type: "quantitative",
        bin: { binned: true },
        title: histogram.xlabel || "logit weight",
        axis: { tickCount: 6 },
      },
      x2: { field: "end" },
      y: {
        field: "count",
        type: "quantitative",
        stack: null,
        title: "tokens",
        scale: { type: histogram.yscale || "sqrt" },
      },
      color: {
        field: "group",
        type: "nominal",
        scale: { domain: names, range: palette.slice(0, names.length) },
        legend: { orient: "top", title: null, labelLimit: 220 },
      },
      order: { field: "count", type: "quantitative", sort: "descending" },
      tooltip: [
        { field: "group", type: "nominal", title: "class" },
        { field: "start", type: "quantitative", title: "from", format: ".3g" },
        { field: "end", type: "quantitative", title: "to", format: ".3g" },
        { field: "count", type: "quantitative", title: "tokens" },
      ],
    },
    config: vegaConfig(colours),
  };
}

// Tableau 10, readable on light and dark backgrounds.
const CATEGORICAL = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
const GREY = "#9aa0a6";

/** In/out splits: the theme's accent against grey; more labels: a categorical palette, "other" grey. */
export function seriesColours(names, colours) {
  if (names.length === 2) return [colours.accent, GREY];
  let next = 0;
  return names.map((name) => (/^(other|not |no )/.test(name) ? GREY : CATEGORICAL[next++ % CATEGORICAL.length]));
}

export function vegaConfig(colours) {
  const font = colours.font;
  return {
    font,
    view: { stroke: null },
    axis: {
      labelColor: colours.text2,
      titleColor: colours.text1,
      domainColor: colours.border,
      tickColor: colours.border,
      gridColor: colours.grid,
      labelFont: font,
      titleFont: font,
      titleFontWeight: "normal",
    },
    legend: { labelColor: colours.text1, titleColor: colours.text1, labelFont: font, symbolType: "square" },
  };
}

/** Escape text for the tooltip (vega-tooltip puts the result into innerHTML). */
export function escapeText(value) {
  return String(value)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/**
 * Draw `histogram` into `container`; returns a finalize function. `colours` come from
 * `themeColours(node)` of a node that is in the page (a detached node has no theme).
 */
export async function drawHistogram(container, histogram, colours, options = {}) {
  const spec = histogramSpec(histogram, colours, options);
  const result = await embed(container, spec, {
    renderer: "svg",
    actions: false,
    tooltip: { theme: "custom", sanitize: escapeText },
    // Nothing is loaded by URL: the data is inline. A loader that refuses keeps it offline.
    loader: { load: () => Promise.reject(new Error("saewidgets loads no external data")) },
  });
  return () => result.finalize();
}
