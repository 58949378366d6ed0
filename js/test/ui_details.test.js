// The slider box's checks, the snapshot's keyboard stepping and the control-character escapes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { boxText, checkTyped, beyondNote, toScale, STEPS, roundScale } from "../src/explorer/symlog.js";
import { gridStep, nearest } from "../src/standalone/snapshot.js";
import { escapeControl, visibleText } from "../src/explorer/visible.js";

const LIMITS = JSON.parse(readFileSync(new URL("../../saewidgets/engine/limits.json", import.meta.url)));
const LIMIT = LIMITS.scale.max_abs;
const RANGE = { max: 100, linear: 1 };

test("the scale box shows at most 6 significant digits", () => {
  assert.equal(boxText(3.4963912345), "3.49639");
  assert.equal(boxText(-123456.789), "-123457");
  assert.equal(boxText(0), "0");
  assert.equal(boxText(2.5), "2.5");
});

test("typed scales: refused beyond the shared limit, kept (and marked) beyond the slider", () => {
  assert.deepEqual(checkTyped("2.5", RANGE, LIMIT), { ok: true, value: 2.5, beyond: false });
  assert.deepEqual(checkTyped(" -500 ", RANGE, LIMIT), { ok: true, value: -500, beyond: true });
  assert.deepEqual(checkTyped(String(LIMIT), RANGE, LIMIT), { ok: true, value: LIMIT, beyond: true });
  const far = checkTyped("1e9", RANGE, LIMIT);
  assert.equal(far.ok, false);
  assert.match(far.message, /1\.00e\+9 is beyond the steering limit ±1,000,000/);
  for (const bad of ["", "  ", "abc", "NaN", "Infinity", "1e999"]) assert.equal(checkTyped(bad, RANGE, LIMIT).ok, false, bad);
  assert.equal(beyondNote(50, RANGE), "");
  assert.match(beyondNote(-1234.5678, RANGE), /^-1234\.57 is beyond this slider's ±100: .* steering uses -1234\.57$/);
});

test("the snapshot's grid: arrow keys step to the next grid scale instead of snapping back", () => {
  const grid = [-100, -20.7, -3.66, 0, 3.66, 20.7, 100];
  const oneStep = roundScale(toScale(1 / STEPS, RANGE)); // what ArrowRight at 0 asks for
  assert.equal(nearest(grid, oneStep), 3); // nearest alone snaps back to 0
  assert.equal(gridStep(grid, oneStep, 0), 4);
  assert.equal(gridStep(grid, -oneStep, 0), 2);
  assert.equal(gridStep(grid, 21, 20.7), 6);
  assert.equal(gridStep(grid, 99, 100), 5);
  assert.equal(gridStep(grid, 100.5, 100), 6); // the top stays the top
  assert.equal(gridStep(grid, 50, 0), 5); // a far move goes to the nearest
  assert.equal(gridStep(grid, 3.66, 3.66), 4);
  assert.equal(gridStep(grid, 5, NaN), 4); // no previous scale: the nearest
});

test("control characters become visible escapes; newlines, tabs and text stay", () => {
  assert.equal(escapeControl("\x01"), "\\x01");
  assert.equal(escapeControl("\u202e"), "\\u202e");
  assert.equal(visibleText("a\x00b\x7f\x9f\u200b\ufeff"), "a\\x00b\\x7f\\x9f\\u200b\\ufeff");
  assert.equal(visibleText("line\nnext\tcol é 猫 <b>"), "line\nnext\tcol é 猫 <b>");
});
