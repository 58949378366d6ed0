// Vega-Lite charts of the task explorer. Their specs are built in Python (saewidgets/tasks/charts.py)
// and drawn here unchanged but for the page's theme (`config`, background), the width and the rows
// of their named dataset. Labels are drawn by Vega as SVG text; tooltips are escaped.
import embed from "vega-embed";
import { escapeText, vegaConfig } from "../explorer/histogram.js";

/** Python's spec with its rows, in the page's theme. Pure. */
export function themedSpec(spec, dataset, rows, colours, { width } = {}) {
  const out = JSON.parse(JSON.stringify(spec || {}));
  if (width) {
    if (Array.isArray(out.vconcat)) out.vconcat.forEach((panel) => (panel.width = width));
    else out.width = width;
  }
  out.background = "transparent";
  out.config = { ...vegaConfig(colours), ...(out.config || {}) };
  out.datasets = { ...(out.datasets || {}), [dataset]: rows || [] };
  return out;
}

/**
 * Draw `spec` with `rows` into `container`; returns {view, finalize}. `onClick(datum)` is called
 * with the data row under a click (if any).
 */
export async function drawSpec(container, spec, dataset, rows, colours, { width, onClick } = {}) {
  const result = await embed(container, themedSpec(spec, dataset, rows, colours, { width }), {
    renderer: "svg",
    actions: false,
    tooltip: { theme: "custom", sanitize: escapeText },
    // Nothing is loaded by URL: the data is inline. A loader that refuses keeps it offline.
    loader: { load: () => Promise.reject(new Error("saewidgets loads no external data")) },
  });
  if (onClick) {
    result.view.addEventListener("click", (_event, item) => {
      if (item && item.datum && item.datum.feature !== undefined) onClick(item.datum);
    });
  }
  return { view: result.view, finalize: () => result.finalize() };
}
