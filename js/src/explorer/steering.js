// Steering controls: a symlog scale slider whose range follows the feature,
// extra (feature, scale) entries, prompt, number of tokens, temperature, seed.
import { h, replace, fmt, uid, editable } from "../dom.js";
import { watch } from "./store.js";
import { STEPS, toScale, toPosition, roundScale, normaliseRange, boxText, checkTyped, beyondNote } from "./symlog.js";
import LIMITS from "../../../saewidgets/engine/limits.json";

const LIMIT = LIMITS.scale.max_abs; // the shared limit: Python's checks.check_scale refuses beyond it
const LIMIT_TEXT = LIMIT.toLocaleString("en-US"); // 1,000,000
const TICKS = [-1, -0.5, 0, 0.5, 1]; // slider positions (u) that get a label: the symlog mapping, shown

/**
 * A symlog slider with tick labels and a number box. `onCommit(scale)` runs on release, on
 * arrow keys and on Enter in the box; `onPreview(scale)` while dragging. The box refuses (inline
 * message, previous scale kept) what is not a number or beyond the shared limit ±LIMIT; a scale
 * beyond the slider's own range is kept as typed: the slider stays at its end and a note says so.
 */
export function scaleSlider({ label, onCommit, onPreview = () => {}, caption = false, live = () => true }) {
  const id = uid("sw-scale");
  let range = normaliseRange(null);
  let current = 0;
  let shown = ""; // the box's text for `current` (Enter on it commits nothing)
  const fromSlider = () => roundScale(toScale(slider.value / STEPS, range));
  const slider = h("input", {
    id,
    class: "sw-slider",
    type: "range",
    min: -STEPS,
    max: STEPS,
    step: 1,
    "aria-label": label,
    "aria-describedby": `${id}-ticks`,
    on: {
      input: () => {
        const scale = fromSlider();
        box.value = boxText(scale);
        slider.setAttribute("aria-valuetext", String(scale));
        onPreview(scale);
      },
      change: () => {
        say("");
        onCommit(fromSlider());
      },
    },
  });
  const box = h("input", {
    class: "sw-input sw-scale-box",
    type: "number",
    step: "any",
    min: -LIMIT,
    max: LIMIT,
    "aria-label": `${label} value`,
    "aria-describedby": `${id}-note`,
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
  const note = h("div", { id: `${id}-note`, class: "sw-scale-note", role: "status", "aria-live": "polite" });
  let refusal = "";
  function say(message) {
    refusal = message;
    showNote();
  }
  function showNote() {
    const beyond = beyondNote(current, range);
    note.textContent = refusal || beyond;
    note.classList.toggle("sw-error-text", Boolean(refusal));
    note.hidden = !note.textContent;
    node.dataset.beyond = String(Boolean(beyond));
  }
  function commitBox() {
    if (box.value === shown && !refusal) return; // nothing typed
    const result = checkTyped(box.value, range, LIMIT); // "" also when a number input cannot parse the text
    boxEdit.committed();
    if (!result.ok) {
      say(result.message);
      box.value = shown; // the box shows the scale in use, never a refused one
      return;
    }
    say("");
    if (result.value === current) box.value = shown;
    else onCommit(result.value);
  }
  const zero = h("button", { class: "sw-button sw-icon", type: "button", title: "scale 0", "aria-label": `${label}: set to 0`, on: { click: () => { say(""); onCommit(0); } } }, "0");
  const ticks = h("div", { id: `${id}-ticks`, class: "sw-ticks" });
  const captionText = h("div", { class: "sw-muted sw-scale-caption" });
  captionText.hidden = !caption;
  const track = h("div", { class: "sw-track" }, slider, ticks);
  const node = h("div", { class: "sw-scale" }, track, box, zero, note, captionText);
  showNote();
  return {
    node,
    slider,
    set(scale, newRange) {
      const changed = scale !== current;
      range = normaliseRange(newRange);
      current = Number(scale) || 0;
      shown = boxText(current);
      boxEdit.show(shown);
      box.title = `scale ${current}`;
      slider.value = String(Math.round(toPosition(current, range) * STEPS));
      slider.setAttribute("aria-valuetext", String(current));
      replace(
        ticks,
        TICKS.map((u) =>
          h("span", { class: "sw-tick", style: { left: `calc(8px + ${((u + 1) / 2).toFixed(4)} * (100% - 16px))` } }, fmt(roundScale(toScale(u, range)), 2)),
        ),
      );
      const mapping = `symlog: fine steps below ±${fmt(range.linear, 2)}, reaching ±${fmt(range.max, 2)}`;
      captionText.textContent = live()
        ? `${mapping}; the box takes any scale up to ±${LIMIT_TEXT}`
        : `${mapping}; without a kernel, the precomputed scales only`;
      slider.title = mapping;
      if (changed) refusal = "";
      showNote();
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
  const main = scaleSlider({ label: "steering scale", caption: true, live: () => store.live, onCommit: (s) => store.set("scale", s) });
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
    main.set(store.get("scale"), store.get("scale_range"));
  };
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
  showLive();
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
