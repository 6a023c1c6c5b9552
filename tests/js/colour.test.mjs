// Bar labels at least 4.5:1 on every state's colour (WCAG AA), the colours read from style.css.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { contrast, labelColour } from "../../dashboard/static/colour.js";

const css = readFileSync(new URL("../../dashboard/static/style.css", import.meta.url), "utf8");
const states = Object.fromEntries([...css.matchAll(/--(waiting|running|done|cut|rejected): (#[0-9a-f]{6})/g)]
  .map(([, state, colour]) => [state, colour]));

test("every state has a colour in style.css", () => {
  assert.deepEqual(Object.keys(states).sort(), ["cut", "done", "rejected", "running", "waiting"]);
});

for (const [state, colour] of Object.entries(states)) {
  test(`the label on a ${state} bar (${colour}) contrasts at least 4.5:1`, () => {
    assert.ok(contrast(colour, labelColour(colour)) >= 4.5, `${contrast(colour, labelColour(colour)).toFixed(2)}:1`);
  });
}

test("white on the old green was 3.49:1: black is chosen there", () => {
  assert.equal(contrast("#1f9d55", "#ffffff").toFixed(2), "3.49");
  assert.equal(labelColour("#1f9d55"), "#000000");
  assert.equal(labelColour("#2f6fdf"), "#ffffff");
});
