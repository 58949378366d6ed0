// Training more MELBO vectors from the view: how many, a button, a progress bar, stop.
import { h, fmt, uid } from "../dom.js";
import { watch } from "../explorer/store.js";

export function trainingPanel(store) {
  const id = uid("sw-train");
  const count = h("input", { id, class: "sw-input sw-number", type: "number", min: 1, step: 1,
    "aria-label": "number of vectors to train",
    on: { change: () => {
      const n = Number.parseInt(count.value, 10);
      if (Number.isInteger(n) && n >= 1) store.set("n_train", n);
      else count.value = String(store.get("n_train"));
    } } });
  const train = h("button", { class: "sw-button sw-melbo-train", type: "button",
    on: { click: () => store.send({ type: "train", n: store.get("n_train") }) } }, "Train more");
  const stop = h("button", { class: "sw-button sw-melbo-stop", type: "button",
    on: { click: () => store.send({ type: "stop" }) } }, "Stop");
  const bar = h("progress", { class: "sw-melbo-progress", max: 1, value: 0, "aria-label": "training progress" });
  const text = h("span", { class: "sw-muted sw-melbo-progress-text", role: "status", "aria-live": "polite" });
  const node = h("section", { class: "sw-panel sw-melbo-training", "aria-label": "training" },
    h("label", { class: "sw-label", for: id }, "Vectors"), count, train, stop, bar, text);

  function update() {
    const t = store.get("training") || {};
    const running = t.status === "running";
    if (document.activeElement !== count) count.value = String(store.get("n_train") ?? 4);
    train.disabled = running || !store.live;
    stop.hidden = !running;
    bar.hidden = !t.status;
    node.dataset.status = t.status || "idle";
    const total = t.total || 0;
    bar.max = Math.max(1, total);
    bar.value = Math.min(total, t.done || 0);
    if (running) {
      const step = t.step === undefined ? "" : ` · step ${t.step}/${t.steps}`;
      const objective = t.objective === undefined ? "" : ` · objective ${fmt(t.objective, 4)}`;
      text.textContent = `training vector ${t.vector + 1} of ${t.n_vectors}${step}${objective}`;
    } else if (t.status === "done") text.textContent = `trained ${t.trained} vector${t.trained === 1 ? "" : "s"}`;
    else if (t.status === "stopped") text.textContent = `stopped: ${t.trained} finished (a checkpoint of the next is saved)`;
    else if (t.status === "error") text.textContent = "training failed (see the message above)";
    else text.textContent = store.live ? "" : "no kernel: training needs one";
  }
  const stops = [watch(store, ["training", "n_train"], update), store.onLive(update)];
  update();
  return { node, destroy: () => stops.forEach((s) => s()) };
}
