// The logit-weight histogram. Its Vega-Lite spec is built in Python (saewidgets/logit_lens/charts.py,
// `histogram.spec`) and drawn here unchanged but for the page's theme (`config`, background) and
// its data: the named dataset `bins`, whose rows `histogramRows` computes from the pre-binned counts
// exactly as Python's `histogram_rows` does (counts travel compactly; raw logits never do).
// Labels (class names) are drawn by Vega as SVG text; the tooltip handler escapes its content.
import embed from "vega-embed";

export const DATASET = "bins";

/** Rows for Vega-Lite from {edges, series: [{name, counts}]} (Python: charts.histogram_rows). */
export function histogramRows(histogram) {
  const rows = [];
  const edges = histogram.edges || [];
  (histogram.series || []).forEach((series, order) => {
    (series.counts || []).forEach((count, i) => {
      if (count > 0) rows.push({ start: edges[i], end: edges[i + 1], group: String(series.name), count, order });
    });
  });
  return rows;
}

/** The theme's Vega-Lite config (Python: charts.theme_config, with the page's CSS colours). */
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
    title: { color: colours.text1, font, fontWeight: "normal" },
    bar: { stroke: colours.background },
  };
}

/** Python's spec, sized to the panel, in the page's theme, with its rows. Pure. */
export function themedHistogramSpec(histogram, colours, { width } = {}) {
  const spec = JSON.parse(JSON.stringify(histogram.spec || {}));
  if (width) spec.width = width;
  spec.background = "transparent";
  spec.config = { ...vegaConfig(colours), ...(spec.config || {}) };
  spec.datasets = { ...(spec.datasets || {}), [DATASET]: histogramRows(histogram) };
  return spec;
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
  if (!histogram.spec) throw new Error("the histogram has no chart spec (an older saved view?)");
  const result = await embed(container, themedHistogramSpec(histogram, colours, options), {
    renderer: "svg",
    actions: false,
    tooltip: { theme: "custom", sanitize: escapeText },
    // Nothing is loaded by URL: the data is inline. A loader that refuses keeps it offline.
    loader: { load: () => Promise.reject(new Error("saewidgets loads no external data")) },
  });
  return () => result.finalize();
}
