// Steering controls: a symlog scale slider whose range follows the feature,
// extra (feature, scale) entries, prompt, number of tokens, temperature, seed.
import { h, replace, fmt, uid, editable } from "../dom.js";
import { watch } from "./store.js";
import { STEPS, toScale, toPosition, roundScale, normaliseRange } from "./symlog.js";
import LIMITS from "../../../saewidgets/engine/limits.json";

/**
 * A slider with a number box. `onCommit(scale)` runs on release, on arrow keys
 * and on Enter in the box; `onPreview(scale)` while dragging.
 */
export function scaleSlider({ label, onCommit, onPreview = () => {} }) {
  const id = uid("sw-scale");
  let range = normaliseRange(null);
  const slider = h("input", {
    id,
    class: "sw-slider",
    type: "range",
    min: -STEPS,
    max: STEPS,
    step: 1,
    "aria-label": label,
    on: {
      input: () => {
        const scale = roundScale(toScale(slider.value / STEPS, range));
        box.value = scale;
        slider.setAttribute("aria-valuetext", String(scale));
        onPreview(scale);
      },
      change: () => onCommit(roundScale(toScale(slider.value / STEPS, range))),
    },
  });
  const box = h("input", {
    class: "sw-input sw-scale-box",
    type: "number",
    step: "any",
    "aria-label": `${label} value`,
    on: {
      keydown(event) {
        if (event.key === "Enter") {
          event.preventDefault();
          commitBox();
        }
      },
      change: () => commitBox(),
    },
  });
  const boxEdit = editable(box);
  function commitBox() {
    const value = Number.parseFloat(box.value);
    if (!Number.isFinite(value)) {
      box.setCustomValidity("type a number");
      box.reportValidity();
      return;
    }
    box.setCustomValidity("");
    boxEdit.committed();
    onCommit(value);
  }
  const zero = h("button", { class: "sw-button sw-icon", type: "button", title: "scale 0", "aria-label": `${label}: set to 0`, on: { click: () => onCommit(0) } }, "0");
  const rangeText = h("span", { class: "sw-muted sw-range" });
  const node = h("div", { class: "sw-scale" }, slider, box, zero, rangeText);
  return {
    node,
    slider,
    set(scale, newRange) {
      range = normaliseRange(newRange);
      boxEdit.show(scale);
      slider.value = String(Math.round(toPosition(scale, range) * STEPS));
      slider.setAttribute("aria-valuetext", String(scale));
      rangeText.textContent = `±${fmt(range.max, 2)}`;
    },
  };
}

function numberField(label, props, onCommit) {
  const id = uid("sw-field");
  const input = h("input", {
    id,
    class: "sw-input sw-number",
    type: "number",
    ...props,
    on: {
      change: () => {
        const value = Number(input.value);
        if (input.value.trim() === "" || !Number.isFinite(value)) {
          input.setCustomValidity("type a number");
          input.reportValidity();
          return;
        }
        input.setCustomValidity("");
        edit.committed();
        onCommit(value);
      },
      keydown: (event) => event.key === "Enter" && input.dispatchEvent(new Event("change")),
    },
  });
  const edit = editable(input);
  return { node: h("div", { class: "sw-field" }, h("label", { class: "sw-label", for: id }, label), input), input, edit };
}

export function steeringPanel(store) {
  const main = scaleSlider({ label: "steering scale", onCommit: (s) => store.set("scale", s) });
  const mainLabel = h("span", { class: "sw-label" });

  const entriesList = h("ul", { class: "sw-entries", "aria-label": "more steering features" });
  const pin = h(
    "button",
    {
      class: "sw-button",
      type: "button",
      title: "keep steering with this feature while you pick another",
      on: {
        click() {
          const feature = store.get("feature");
          const entries = (store.get("steering") || []).filter((e) => e.feature !== feature);
          const range = store.get("scale_range") || {};
          store.set("steering", [...entries, { feature, scale: store.get("scale"), ...range }]);
        },
      },
    },
    "+ keep this feature",
  );

  const promptId = uid("sw-prompt");
  const prompt = h("textarea", {
    id: promptId,
    class: "sw-input sw-prompt",
    rows: 2,
    spellcheck: "false",
    on: {
      keydown(event) {
        if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          commitPrompt();
        }
      },
      change: () => commitPrompt(),
    },
  });
  const promptEdit = editable(prompt);
  function commitPrompt() {
    promptEdit.committed();
    if (prompt.value !== store.get("prompt")) store.set("prompt", prompt.value);
    else promptEdit.show(store.get("prompt"));
  }
  const tokens = numberField("tokens", { min: LIMITS.max_new_tokens.min, max: LIMITS.max_new_tokens.max, step: 1 }, (v) =>
    store.set("max_new_tokens", Math.round(v)),
  );
  const temperature = numberField("temperature", { min: LIMITS.temperature.min, max: LIMITS.temperature.max, step: 0.1 }, (v) =>
    store.set("temperature", v),
  );
  const seed = numberField("seed", { min: LIMITS.seed.min, max: LIMITS.seed.max, step: 1 }, (v) => store.set("seed", Math.round(v)));
  const regenerate = h(
    "button",
    { class: "sw-button", type: "button", on: { click: () => store.send({ type: "regenerate" }) } },
    "Regenerate",
  );
  const showLive = () => {
    regenerate.hidden = !store.live; // a saved view has no kernel to regenerate with
  };
  showLive();
  const stopLive = store.onLive(showLive);

  const node = h(
    "section",
    { class: "sw-panel sw-steering", "aria-label": "steering" },
    h("div", { class: "sw-row sw-scale-row" }, mainLabel, main.node, pin),
    entriesList,
    h("label", { class: "sw-label", for: promptId }, "Prompt"),
    prompt,
    h("div", { class: "sw-row sw-fields" }, tokens.node, temperature.node, seed.node, regenerate),
  );

  let entrySliders = [];
  function updateEntries() {
    const entries = store.get("steering") || [];
    entrySliders = entries.map((entry, i) => {
      const slider = scaleSlider({
        label: `scale of feature ${entry.feature}`,
        onCommit(scale) {
          const next = (store.get("steering") || []).map((e, j) => (j === i ? { ...e, scale } : e));
          store.set("steering", next);
        },
      });
      slider.set(entry.scale, entry);
      return { entry, slider };
    });
    replace(
      entriesList,
      entrySliders.map(({ entry, slider }, i) =>
        h(
          "li",
          { class: "sw-entry" },
          h(
            "button",
            { class: "sw-link", type: "button", title: "show this feature", on: { click: () => store.set("feature", entry.feature) } },
            `#${entry.feature}`,
          ),
          slider.node,
          h(
            "button",
            {
              class: "sw-button sw-icon",
              type: "button",
              title: "stop steering with this feature",
              "aria-label": `remove feature ${entry.feature}`,
              on: { click: () => store.set("steering", (store.get("steering") || []).filter((_, j) => j !== i)) },
            },
            "×",
          ),
        ),
      ),
    );
  }

  function updateMain() {
    const direction = store.get("direction_info") || {};
    const raw = store.get("feature") === -1;
    mainLabel.textContent = raw ? `Steer ${String(direction.name || "direction")}` : `Steer #${store.get("feature")}`;
    pin.hidden = raw; // kept entries are SAE features; a raw direction is steered through the slider
    main.set(store.get("scale"), store.get("scale_range"));
  }
  function updateFields() {
    promptEdit.show(store.get("prompt"));
    for (const [field, name] of [[tokens, "max_new_tokens"], [temperature, "temperature"], [seed, "seed"]]) {
      field.edit.show(store.get(name));
    }
  }

  const stops = [
    watch(store, ["scale", "scale_range", "feature", "direction_info"], updateMain),
    watch(store, ["steering"], updateEntries),
    watch(store, ["prompt", "max_new_tokens", "temperature", "seed"], updateFields),
  ];
  updateMain();
  updateEntries();
  updateFields();
  return {
    node,
    destroy() {
      stops.forEach((s) => s());
      stopLive();
    },
  };
}
