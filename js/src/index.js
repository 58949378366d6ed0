// anywidget entry point for every saewidgets widget: the `_kind` trait picks the view.
import "./styles.css";
import { renderExplorer } from "./explorer/view.js";
import { widgetStore } from "./explorer/store.js";

const VIEWS = { explorer: renderExplorer };

function render({ model, el }) {
  const kind = model.get("_kind");
  const view = VIEWS[kind];
  if (!view) {
    el.textContent = `saewidgets: no view named ${JSON.stringify(String(kind))}`;
    return undefined;
  }
  return view(el, widgetStore(model));
}

export { renderExplorer, VIEWS };
export default { render };
