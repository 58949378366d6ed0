// A Vega-Lite spec from Python (the package's charts), drawn with the bundled vega-embed in the
// page's theme. Nothing is fetched: the data is inline, the loader refuses URLs.
import embed from "vega-embed";
import { h, replace } from "./dom.js";
import { escapeText, vegaConfig } from "./explorer/histogram.js";
import { onThemeChange, themeColours } from "./explorer/theme.js";

/** The spec in the page's theme (the theme wins for colours and fonts). Pure. */
export function themedChartSpec(spec, colours) {
  const copy = JSON.parse(JSON.stringify(spec || {}));
  const theme = vegaConfig(colours);
  const config = copy.config || {};
  copy.config = { ...config, ...theme, axis: { ...(config.axis || {}), ...theme.axis }, legend: { ...(config.legend || {}), ...theme.legend } };
  copy.background = "transparent";
  recolourBlack(copy, colours.text1); // rules drawn in black (the chosen scale) follow the theme's text colour
  return copy;
}

function recolourBlack(node, colour) {
  if (Array.isArray(node)) node.forEach((child) => recolourBlack(child, colour));
  else if (node && typeof node === "object") {
    if (node.mark && typeof node.mark === "object" && node.mark.color === "black") node.mark.color = colour;
    Object.values(node).forEach((child) => recolourBlack(child, colour));
  }
}

export function renderChart(el, store) {
  const target = h("div", { class: "sw-chart-view", role: "img", "aria-label": "chart" });
  const root = h("div", { class: "sw-root sw-chart-root" }, target);
  el.replaceChildren(root);
  let finalize = null;
  let ticket = 0;
  async function draw() {
    const mine = ++ticket;
    const node = h("div");
    try {
      const result = await embed(node, themedChartSpec(store.get("spec"), themeColours(root)), {
        renderer: "svg",
        actions: false,
        tooltip: { theme: "custom", sanitize: escapeText },
        loader: { load: () => Promise.reject(new Error("saewidgets loads no external data")) },
      });
      if (mine !== ticket) return result.finalize();
      finalize?.();
      finalize = () => result.finalize();
      replace(target, node);
    } catch (error) {
      if (mine === ticket) replace(target, h("p", { class: "sw-error-text" }, `chart failed: ${error.message}`));
    }
    return undefined;
  }
  store.on("spec", draw);
  const stopTheme = onThemeChange(() => draw());
  requestAnimationFrame(draw);
  return () => {
    store.off("spec", draw);
    stopTheme();
    finalize?.();
  };
}
