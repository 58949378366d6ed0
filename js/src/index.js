// anywidget entry point for every saewidgets widget: the `_kind` trait picks the view.
import "./styles.css";
import { renderExplorer } from "./explorer/view.js";
import { renderTasks } from "./tasks/view.js";
import { renderChart } from "./chart.js";
import { renderMelbo } from "./melbo/view.js";
import { widgetStore } from "./explorer/store.js";
import { snapshotModel } from "./standalone/snapshot.js";
import { renderTable } from "./explorer/table.js";

const VIEWS = { explorer: renderExplorer, chart: renderChart, table: renderTable, tasks: renderTasks, melbo: renderMelbo };

function render({ model, el }) {
  const kind = model.get("_kind");
  const view = VIEWS[kind];
  if (!view) {
    el.textContent = `saewidgets: no view named ${JSON.stringify(String(kind))}`;
    return undefined;
  }
  if (kind !== "explorer") return view(el, widgetStore(model)); // charts draw their spec, nothing to answer
  // Precomputed results (explorer.snapshot) answer the view when no kernel does.
  const snapshot = snapshotModel(model);
  const cleanup = view(el, widgetStore(snapshot.model));
  snapshot.attach(el);
  return () => {
    snapshot.detach();
    cleanup?.();
  };
}

export { renderExplorer, renderMelbo, VIEWS };
export default { render };
