// Precomputed results for views with no kernel (saved notebooks, exported HTML).
//
// `explorer.snapshot(...)` (saewidgets/export/snapshot.py) stores, in the `precomputed`
// (JSON) and `precomputed_data` (packed numbers) traits, what Python would answer for a
// grid of scales and a set of features. `snapshotModel(model)` wraps an anywidget model:
// while a kernel answers, it only passes calls through; when there is none (a saved
// page's model says `offline`; in JupyterLab or nbconvert's widget manager, a model
// restored from saved state has no live comm), it answers the view's requests from the
// snapshot: the slider snaps to the
// grid, a feature outside the snapshot is refused with a message, and inputs that only
// a kernel could follow (prompt, tokens, ...) are put back.
import { h } from "../dom.js";
import { asDataView, unpack } from "./packing.js";

const FIXED_INPUTS = ["prompt", "max_new_tokens", "temperature", "seed", "steering"];

export function nearest(grid, value) {
  let best = 0;
  for (let i = 1; i < grid.length; i++) if (Math.abs(grid[i] - value) < Math.abs(grid[best] - value)) best = i;
  return best;
}

/** The decoded snapshot of a model, or null when it has none. */
export function readSnapshot(model) {
  const raw = model.get("precomputed");
  if (!raw || !raw.items || !Object.keys(raw.items).length) return null;
  return unpack(raw, asDataView(model.get("precomputed_data")));
}

function describe(snapshot) {
  const features = Object.keys(snapshot.items).map(Number);
  const counts = features.map((f) => (snapshot.items[f].scales || []).length);
  const scales = Math.max(0, ...counts);
  const name = (f) => (f === -1 ? "the direction" : `#${f}`);
  const list = features.length <= 8 ? features.map(name).join(", ") : `${features.length} features`;
  const prompt = snapshot.inputs && snapshot.inputs.prompt;
  return `${list} × ${scales} scales${prompt ? ` for the prompt ${JSON.stringify(prompt)}` : ""}`;
}

/**
 * The widget manager's own model behind an anywidget model proxy (which hides it), found
 * by the identity of its `precomputed` object; null when the manager does not say.
 */
async function managerModel(model) {
  const models = model.widget_manager && model.widget_manager._models;
  const marker = model.get("precomputed");
  if (!models || !marker || typeof marker !== "object") return null;
  for (const promise of Object.values(models)) {
    try {
      const candidate = await promise;
      if (candidate && typeof candidate.get === "function" && candidate.get("precomputed") === marker) return candidate;
    } catch {
      // a model that failed to load is not ours
    }
  }
  return null;
}

/**
 * Wrap `model` so that, without a kernel, precomputed results answer the view.
 * Returns {model, attach(el), detach()}: `attach` adds the "precomputed" note.
 */
export function snapshotModel(model) {
  let offline = Boolean(model.offline);
  let snapshot = readSnapshot(model);
  const pending = new Map(); // input -> previous value, since the last save_changes
  const listeners = [];
  const offlineListeners = new Set(); // told when `offline` changes (the view hides kernel-only controls)
  let note = null;

  function setOffline(value) {
    if (offline === value) return;
    offline = value;
    for (const callback of offlineListeners) callback(offline);
  }

  const error = (message) => model.set("error", message);

  function item(feature) {
    return snapshot && snapshot.items[String(feature)];
  }

  function generation(entry, index) {
    const steering = (model.get("steering") || []).filter((e) => e.feature !== entry.feature);
    const raw = entry.feature === -1; // a direction explorer: its raw direction at the grid scale
    const direction = raw ? { name: (model.get("direction_info") || {}).name || "direction", scale: entry.scales[index] } : null;
    return {
      id: `snapshot-${entry.feature}-${index}`,
      status: "done",
      prompt: snapshot.inputs.prompt,
      direction,
      features: [...steering.map((e) => [e.feature, e.scale]), ...(raw ? [] : [[entry.feature, entry.scales[index]]])],
      max_new_tokens: snapshot.inputs.max_new_tokens,
      temperature: snapshot.inputs.temperature,
      seed: snapshot.inputs.seed,
      baseline: snapshot.baseline,
      steered: entry.steered[index],
      precomputed: true,
    };
  }

  function showScale(entry) {
    const index = nearest(entry.scales, Number(model.get("scale")) || 0);
    if (model.get("scale") !== entry.scales[index]) model.set("scale", entry.scales[index]);
    model.set("generation", generation(entry, index));
    if (entry.self_explanation) model.set("self_explanation", entry.self_explanation[index] ?? entry.self_explanation);
  }

  function showFeature(entry) {
    for (const [name, value] of Object.entries(entry.traits || {})) model.set(name, value);
    showHistogram(entry, model.get("token_class"));
    showScale(entry);
  }

  /** `feature_info` for a token class: stored once per feature, with per-class statistics. */
  function classInfo(entry, tokenClass) {
    if (entry.infos && entry.infos[tokenClass]) return entry.infos[tokenClass];
    if (!entry.info) return null;
    const stats = entry.class_stats && entry.class_stats[tokenClass];
    return stats ? { ...entry.info, stats } : entry.info;
  }

  function showHistogram(entry, tokenClass) {
    const histograms = entry.histograms || {};
    const key = tokenClass in histograms ? tokenClass : Object.keys(histograms)[0];
    if (key === undefined) return;
    model.set("histogram", histograms[key]);
    const info = classInfo(entry, key);
    if (info) model.set("feature_info", info);
  }

  function search(query) {
    const needle = String(query || "").trim().toLowerCase();
    if (!needle) return model.set("search_results", []);
    const hits = [];
    for (const [feature, entry] of Object.entries(snapshot.items)) {
      const info = entry.info || {};
      const words = [info.explanation || "", ...(info.top_positive || []).map(([t]) => String(t))];
      const hit = words.find((w) => w.toLowerCase().includes(needle));
      if (hit !== undefined) hits.push([Number(feature), hit]);
    }
    model.set("search_results", hits);
  }

  /** Answer the inputs changed since the last sync from the snapshot. */
  function answer() {
    const changed = new Map(pending);
    pending.clear();
    if (changed.has("feature")) {
      const entry = item(model.get("feature"));
      if (!entry) {
        const wanted = model.get("feature");
        model.set("feature", changed.get("feature"));
        error(`Not connected to a kernel: feature ${wanted} was not precomputed. This saved view has ${describe(snapshot)}.`);
        return;
      }
      showFeature(entry);
    } else if (changed.has("scale")) {
      const entry = item(model.get("feature"));
      if (entry) showScale(entry);
    }
    if (changed.has("token_class")) {
      const entry = item(model.get("feature"));
      const histograms = (entry && entry.histograms) || {};
      if (!(model.get("token_class") in histograms)) {
        const wanted = model.get("token_class");
        model.set("token_class", changed.get("token_class"));
        error(`Not connected to a kernel: the histogram for token class ${JSON.stringify(String(wanted))} was not precomputed.`);
      } else showHistogram(entry, model.get("token_class"));
    }
    if (changed.has("search")) search(model.get("search"));
    const refused = FIXED_INPUTS.filter((name) => changed.has(name));
    if (refused.length) {
      for (const name of refused) model.set(name, changed.get(name));
      error(`Not connected to a kernel: changing ${refused.join(", ")} needs a running kernel; this saved view shows precomputed results only.`);
    }
  }

  const wrapped = {
    get: (name) => model.get(name),
    set(name, value) {
      const changes = typeof name === "object" && name !== null ? name : { [name]: value };
      for (const key of Object.keys(changes)) if (!pending.has(key)) pending.set(key, model.get(key));
      model.set(name, value);
    },
    save_changes() {
      if (!offline) {
        try {
          model.save_changes();
          pending.clear();
          return;
        } catch (err) {
          // A model with no comm at all cannot sync: treat it as kernel-less.
          if (!snapshot) throw err;
          setOffline(true);
          updateNote();
        }
      }
      if (snapshot) answer();
      else pending.clear();
    },
    send(message) {
      if (!offline) return model.send(message);
      return undefined;
    },
    on: (name, callback) => model.on(name, callback),
    off: (name, callback) => model.off(name, callback),
    get offline() {
      return offline;
    },
    onOffline(callback) {
      offlineListeners.add(callback);
      return () => offlineListeners.delete(callback);
    },
    widget_manager: model.widget_manager,
  };

  /** Once offline: fill what the saved state lacks for the current feature (its self-explanation). */
  function prime() {
    const entry = item(model.get("feature"));
    const current = model.get("self_explanation") || {};
    if (entry && entry.self_explanation && !current.explanation) {
      const index = nearest(entry.scales, Number(model.get("scale")) || 0);
      model.set("self_explanation", entry.self_explanation[index] ?? entry.self_explanation);
    }
  }

  function updateNote() {
    if (!note) return;
    note.hidden = !snapshot && !offline;
    note.dataset.offline = String(offline);
    if (!snapshot) {
      if (offline) {
        note.replaceChildren(
          h("strong", {}, "Not connected to a kernel"),
          " · this saved view has no precomputed results, so it shows what it showed when saved" +
            " (explorer.snapshot() before saving keeps the slider and the feature picker working).",
        );
      }
      return;
    }
    note.replaceChildren(
      h("strong", {}, offline ? "Not connected to a kernel · precomputed results" : "Precomputed results saved"),
      ` ${describe(snapshot)}`,
      offline ? ": the slider snaps to the precomputed scales." : " (shown when this view is opened without a kernel).",
    );
  }

  function onSnapshot() {
    snapshot = readSnapshot(model);
    updateNote();
  }
  model.on("change:precomputed", onSnapshot);
  model.on("change:precomputed_data", onSnapshot);
  listeners.push(["change:precomputed", onSnapshot], ["change:precomputed_data", onSnapshot]);

  // A model restored from a saved notebook has no live comm: nothing will answer it.
  if (!offline) {
    managerModel(model).then((real) => {
      if (!real || !("comm_live" in real)) return;
      const follow = () => {
        setOffline(!real.comm_live);
        if (offline && snapshot) prime();
        updateNote();
      };
      model.on("comm_live_update", follow);
      listeners.push(["comm_live_update", follow]);
      follow();
    });
  }

  return {
    model: wrapped,
    attach(el) {
      if (offline && snapshot) prime();
      note = h("div", {
        class: "sw-snapshot-note",
        role: "note",
        style: {
          margin: "0 0 8px",
          padding: "4px 8px",
          borderRadius: "4px",
          borderLeft: "3px solid var(--sw-accent, #1976d2)",
          background: "var(--sw-bg2, #f3f3f3)",
          color: "var(--sw-fg, #1f1f1f)",
        },
      });
      const root = el.querySelector(".sw-root");
      const header = root && root.querySelector(".sw-header");
      if (header) header.after(note);
      else el.prepend(note);
      updateNote();
      return note;
    },
    detach() {
      for (const [name, callback] of listeners) model.off(name, callback);
      note?.remove();
    },
  };
}
