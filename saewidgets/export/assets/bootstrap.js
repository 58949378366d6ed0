// saewidgets offline bootstrap: renders saved widget states in a page with no kernel and no network.
//
// The page holds inert script elements: the module source of each widget class
// (attribute data-saewidgets-esm=ID; a JSON string, or with data-encoding=gzip-base64 the
// gzip-compressed source in base64, inflated here by the browser's DecompressionStream) and
// one element per view (type application/vnd.saewidgets.view+json: model_id, state, buffers).
// For every view this script builds an anywidget-compatible model from the saved state
// (binary buffers decoded to DataViews, as ipywidgets delivers them) and calls the widget
// module's own initialize/render on an element placed right after the view's script.
// Modules load from blob: URLs made from the inline source; nothing is fetched.
(() => {
  if (window.__saewidgetsOffline) return;
  window.__saewidgetsOffline = true;

  const VIEW = 'script[type="application/vnd.saewidgets.view+json"]';

  function base64Bytes(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function putBuffers(state, buffers) {
    for (const { path, data } of buffers || []) {
      let node = state;
      for (const key of path.slice(0, -1)) node = node[key];
      const bytes = base64Bytes(data);
      node[path[path.length - 1]] = new DataView(bytes.buffer);
    }
    return state;
  }

  /** An anywidget model (get/set/on/off/save_changes/send) over a saved state, with no kernel. */
  function offlineModel(view) {
    const state = putBuffers(view.state || {}, view.buffers);
    const listeners = new Map();
    const emit = (name, ...args) => {
      for (const callback of [...(listeners.get(name) || [])]) callback(...args);
    };
    const model = {
      get: (key) => state[key],
      set(key, value) {
        const changes = typeof key === "object" && key !== null ? key : { [key]: value };
        const changed = Object.keys(changes).filter((k) => state[k] !== changes[k]);
        for (const k of changed) state[k] = changes[k];
        for (const k of changed) emit(`change:${k}`, model, state[k], {});
        if (changed.length) emit("change", model, {});
      },
      save_changes() {},
      send() {},
      on(name, callback) {
        for (const event of String(name).split(/\s+/)) {
          if (!listeners.has(event)) listeners.set(event, []);
          listeners.get(event).push(callback);
        }
      },
      off(name, callback) {
        const events = name ? String(name).split(/\s+/) : [...listeners.keys()];
        for (const event of events) {
          const kept = (listeners.get(event) || []).filter((cb) => callback && cb !== callback);
          listeners.set(event, kept);
        }
      },
      widget_manager: {
        async get_model(id) {
          throw new Error(`model ${id} is not available offline`);
        },
      },
      // Marks the model as kernel-less for widgets that want to know.
      offline: true,
    };
    return model;
  }

  async function moduleSource(node) {
    if (node.dataset.encoding !== "gzip-base64") return JSON.parse(node.textContent);
    if (typeof DecompressionStream === "undefined") {
      throw new Error("this browser cannot inflate the saved module (no DecompressionStream): use a current browser");
    }
    const packed = new Blob([base64Bytes(node.textContent.trim())]);
    return new Response(packed.stream().pipeThrough(new DecompressionStream("gzip"))).text();
  }

  async function loadModule(node) {
    const url = URL.createObjectURL(new Blob([await moduleSource(node)], { type: "text/javascript" }));
    try {
      const mod = await import(url);
      const def = typeof mod.default === "function" ? await mod.default() : mod.default;
      return def || { render: mod.render };
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  const modules = new Map();
  function widgetModule(id) {
    if (!modules.has(id)) {
      const node = [...document.querySelectorAll("script[data-saewidgets-esm]")].find(
        (n) => n.dataset.saewidgetsEsm === id,
      );
      if (!node) return Promise.reject(new Error(`no inline module for ${id}`));
      modules.set(id, loadModule(node));
    }
    return modules.get(id);
  }

  function styles(id) {
    const node = [...document.querySelectorAll("script[data-saewidgets-css]")].find(
      (n) => n.dataset.saewidgetsCss === id,
    );
    if (!node || document.querySelector(`style[data-saewidgets-css-for="${CSS.escape(id)}"]`)) return;
    const style = document.createElement("style");
    style.dataset.saewidgetsCssFor = id;
    style.textContent = JSON.parse(node.textContent);
    document.head.append(style);
  }

  async function mount(node) {
    if (node.dataset.mounted) return;
    node.dataset.mounted = "1";
    const view = JSON.parse(node.textContent);
    const id = (view.state && view.state._anywidget_id) || "";
    const el = document.createElement("div");
    el.className = "saewidgets-offline-view";
    node.after(el);
    try {
      styles(id);
      const widget = await widgetModule(id);
      const model = offlineModel(view);
      const experimental = {
        invoke: async () => {
          throw new Error("no kernel: this is a saved view");
        },
      };
      const signal = new AbortController().signal;
      await widget.initialize?.({ model, experimental, signal });
      await widget.render?.({ model, el, experimental, signal });
      el.dataset.ready = "1";
    } catch (error) {
      el.dataset.error = String(error);
      el.textContent = `This saved view could not be shown: ${error}`;
      console.error(error);
    }
  }

  async function mountAll() {
    for (const node of document.querySelectorAll(VIEW)) await mount(node);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
