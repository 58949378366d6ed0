// The state the view reads and writes. An anywidget model already has this
// shape (get / set / save_changes / on / off); `staticStore` wraps plain saved
// state for pages without a kernel (standalone export).

/**
 * Wrap an anywidget model: `set` also syncs to Python. `live` is true while a kernel
 * answers (the model's `offline` flag, set by the snapshot layer for saved views, is
 * false); `onLive(callback)` is told when that changes.
 */
export function widgetStore(model) {
  return {
    get: (name) => model.get(name),
    set(name, value) {
      model.set(name, value);
      model.save_changes();
    },
    on: (name, callback) => model.on(`change:${name}`, callback),
    off: (name, callback) => model.off(`change:${name}`, callback),
    send: (message) => model.send(message),
    get live() {
      return !model.offline;
    },
    onLive: (callback) => (model.onOffline ? model.onOffline(() => callback()) : () => {}),
  };
}

/** A store over a plain object of traits (no kernel: changes stay in the page). */
export function staticStore(state) {
  const values = { ...state };
  const listeners = new Map();
  return {
    get: (name) => values[name],
    set(name, value) {
      values[name] = value;
      for (const callback of listeners.get(name) || []) callback();
    },
    on(name, callback) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(callback);
    },
    off: (name, callback) => listeners.get(name)?.delete(callback),
    send: () => {},
    live: false,
    onLive: () => () => {},
  };
}

/** Subscribe `callback` to several traits; returns an unsubscribe function. */
export function watch(store, names, callback) {
  for (const name of names) store.on(name, callback);
  return () => names.forEach((name) => store.off(name, callback));
}
