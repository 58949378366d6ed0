// Colours from JupyterLab's theme variables (--jp-*), with fallbacks for other hosts.
const VARS = {
  text1: ["--jp-ui-font-color1", "#1f1f1f"],
  text2: ["--jp-ui-font-color2", "#616161"],
  background: ["--jp-layout-color1", "#ffffff"],
  border: ["--jp-border-color1", "#bdbdbd"],
  grid: ["--jp-border-color3", "#eeeeee"],
  accent: ["--jp-brand-color1", "#1976d2"],
  muted: ["--jp-layout-color4", "#9e9e9e"],
  warn: ["--jp-warn-color1", "#f57c00"],
  good: ["--jp-success-color1", "#388e3c"],
  font: ["--jp-ui-font-family", "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"],
};

export function themeColours(node) {
  const style = getComputedStyle(node);
  const out = {};
  for (const [key, [name, fallback]] of Object.entries(VARS)) {
    out[key] = style.getPropertyValue(name).trim() || fallback;
  }
  return out;
}

/** Call `callback` when JupyterLab switches theme (light/dark); returns a disconnect function. */
export function onThemeChange(callback) {
  const observer = new MutationObserver(callback);
  observer.observe(document.body, {
    attributes: true,
    attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"],
  });
  return () => observer.disconnect();
}
