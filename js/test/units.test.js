// Unit tests of the front end's pure functions, against what the Python side computes
// (js/test/fixtures.json, written by tools/js_fixtures.py). Run: node --test js/test
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { toScale, toPosition, roundScale, normaliseRange, STEPS } from "../src/explorer/symlog.js";
import { unpack, asDataView } from "../src/standalone/packing.js";
import { nearest } from "../src/standalone/snapshot.js";
import { histogramRows, themedHistogramSpec, escapeText, DATASET } from "../src/explorer/histogram.js";
import { rowFor } from "../src/explorer/selfexplain.js";

const F = JSON.parse(readFileSync(new URL("./fixtures.json", import.meta.url)));

test("histogram rows are Python's rows", () => {
  assert.deepEqual(histogramRows(F.histogram), F.histogram_rows);
});

test("the drawn histogram spec is Python's spec, with its rows and a theme", () => {
  const colours = { text1: "#111", text2: "#222", border: "#333", grid: "#444", background: "#000", font: "serif" };
  const spec = themedHistogramSpec(F.histogram, colours, { width: 300 });
  for (const key of ["mark", "encoding", "data", "height"]) assert.deepEqual(spec[key], F.histogram.spec[key]);
  assert.equal(spec.width, 300);
  assert.deepEqual(spec.datasets[DATASET], F.histogram_rows);
  assert.equal(spec.config.axis.labelColor, "#222");
  assert.equal(spec.encoding.y.title, "tokens (square-root scale)");
});

test("packed arrays unpack to Python's values", () => {
  const bytes = Buffer.from(F.packed.data, "base64");
  const view = asDataView(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  for (const [code, ref] of Object.entries(F.packed.refs)) {
    const got = unpack(ref, view).map((v) => (Number.isNaN(v) ? null : v));
    assert.deepEqual(got, F.packed.values[code], code);
  }
  assert.throws(() => unpack({ $a: [0, 1, "x9"] }, view), /unknown packed array type/);
});

test("scales round as Python rounds them", () => {
  for (const [value, rounded] of F.round_scale) assert.equal(roundScale(value), rounded, String(value));
});

test("the symlog slider maps the grid's points back and forth", () => {
  for (const { range, n, grid } of F.symlog_grids) {
    const u = Array.from({ length: n }, (_, i) => -1 + (2 * i) / (n - 1));
    const ours = [...new Set(u.map((x) => roundScale(toScale(x, range))))].sort((a, b) => a - b);
    assert.deepEqual(ours, grid);
    for (const s of grid) assert.ok(Math.abs(toScale(toPosition(s, range), range) - s) <= 1e-9 * Math.max(1, Math.abs(s)));
  }
  assert.equal(toPosition(1e9, { max: 100, linear: 1 }), 1); // clamped at the end of the slider
  assert.deepEqual(normaliseRange({ max: -3 }), { max: 100, linear: 1 });
  assert.equal(STEPS, 100);
});

test("snapshot lookup picks the nearest grid scale", () => {
  const grid = [-10, -2, 0, 2, 10];
  assert.equal(nearest(grid, 0.9), 2);
  assert.equal(nearest(grid, 1.1), 3);
  assert.equal(nearest(grid, -100), 0);
  assert.equal(nearest(grid, 6.1), 4);
});

test("the self-explanation row follows the slider as in Python", () => {
  for (const [slider, index] of F.self_explanation.picks) assert.equal(rowFor(F.self_explanation.panel, slider), index, String(slider));
  assert.equal(rowFor({ rows: [] }, 1), -1);
});

test("tooltip text is escaped", () => {
  assert.equal(escapeText(`<img src=x onerror="a">&'`), "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;");
});
