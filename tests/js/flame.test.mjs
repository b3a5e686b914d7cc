// Specifications of otel_monitor/analytics/static/js/flame.js (node --test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as f from "../../otel_monitor/analytics/static/js/flame.js";

const PROFILE = {
  samples: 10,
  interval_ms: 10,
  frames: [
    { function: "main", file: "/srv/app/server.py", line: 1 },
    { function: "view", file: "/srv/app/views.py", line: 20 },
    { function: "sleepy_helper", file: "/srv/app/helpers.py", line: 7 },
    { function: "render", file: "/srv/app/views.py", line: 30 },
  ],
  stacks: [
    { frames: [0, 1, 2], count: 7 },
    { frames: [0, 3], count: 2 },
    { frames: [0], count: 1 },
  ],
};

describe("frameLabel", () => {
  it("names the function, the file and the line; short keeps the file's last two parts", () => {
    assert.equal(f.frameLabel(PROFILE.frames[2]), "sleepy_helper (/srv/app/helpers.py:7)");
    assert.equal(f.frameLabel(PROFILE.frames[2], true), "sleepy_helper (app/helpers.py:7)");
    assert.equal(f.frameLabel({ function: "<lambda>", file: "", line: 0 }), "<lambda>");
  });
});

describe("flameTree", () => {
  it("merges the stacks into a tree counting every sample under each frame, heaviest first", () => {
    const root = f.flameTree(PROFILE);
    assert.equal(root.count, 10);
    const [main] = root.children;
    assert.equal(main.frame.function, "main");
    assert.equal(main.count, 10);
    assert.equal(main.self, 1);
    assert.deepEqual(
      main.children.map((c) => [c.frame.function, c.count]),
      [
        ["view", 7],
        ["render", 2],
      ],
    );
    assert.equal(main.children[0].children[0].self, 7);
  });
  it("ignores stacks with bad counts or frame ids instead of throwing", () => {
    const root = f.flameTree({ frames: [{ function: "a" }], stacks: [{ frames: [0, 9], count: 2 }, { frames: [0], count: -1 }, null, { count: 3 }] });
    assert.equal(root.count, 2);
    assert.equal(root.children[0].self, 2); // the walk stops at the unknown id
    assert.equal(f.flameTree(null).count, 0);
  });
});

describe("flameLayout", () => {
  it("gives each frame a rectangle as wide as its share of the samples, parents first", () => {
    const rects = f.flameLayout(f.flameTree(PROFILE), []);
    const byLabel = Object.fromEntries(rects.map((r) => [r.label, r]));
    assert.deepEqual(
      rects.map((r) => [r.label, r.depth]),
      [
        ["all", 0],
        ["main (app/server.py:1)", 1],
        ["view (app/views.py:20)", 2],
        ["sleepy_helper (app/helpers.py:7)", 3],
        ["render (app/views.py:30)", 2],
      ],
    );
    assert.equal(byLabel["view (app/views.py:20)"].w, 0.7);
    assert.equal(byLabel["render (app/views.py:30)"].x, 0.7);
    assert.ok(Math.abs(byLabel["render (app/views.py:30)"].w - 0.2) < 1e-12);
    assert.equal(byLabel["sleepy_helper (app/helpers.py:7)"].pct, 70);
    assert.deepEqual(byLabel["sleepy_helper (app/helpers.py:7)"].path, [0, 1, 2]);
  });
  it("zooms: the focused frame spans the width, its ancestors above it, the rest left out", () => {
    const rects = f.flameLayout(f.flameTree(PROFILE), [0, 3]);
    assert.deepEqual(
      rects.map((r) => [r.label, r.x, r.w, r.depth]),
      [
        ["all", 0, 1, 0],
        ["main (app/server.py:1)", 0, 1, 1],
        ["render (app/views.py:30)", 0, 1, 2],
      ],
    );
    assert.equal(rects[2].pct, 20); // still of all samples
  });
  it("leaves out frames narrower than minWidth and rows past maxDepth", () => {
    const rects = f.flameLayout(f.flameTree(PROFILE), [], { minWidth: 0.25, maxDepth: 3 });
    assert.deepEqual(
      rects.map((r) => r.label),
      ["all", "main (app/server.py:1)", "view (app/views.py:20)"],
    );
    assert.deepEqual(f.flameLayout(f.flameTree({ frames: [], stacks: [] }), []), []);
  });
  it("keeps hostile names as plain text in the labels", () => {
    const rects = f.flameLayout(f.flameTree({ frames: [{ function: "<img src=x onerror=alert(1)>", file: "a.py", line: 1 }], stacks: [{ frames: [0], count: 1 }] }), []);
    assert.equal(rects[1].label, "<img src=x onerror=alert(1)> (a.py:1)");
  });
});

describe("hotFrames", () => {
  it("lists where the samples end, heaviest first, with their share", () => {
    const hot = f.hotFrames(f.flameTree(PROFILE), 2);
    assert.deepEqual(
      hot.map((h) => [h.frame.function, h.count, h.pct]),
      [
        ["sleepy_helper", 7, 70],
        ["render", 2, 20],
      ],
    );
  });
});

describe("samplesText", () => {
  it("says how many samples the profile rests on and how much time they cover", () => {
    assert.equal(f.samplesText(PROFILE), "10 samples, one every 10 ms (about 100 ms of stacks)");
    assert.equal(f.samplesText({ samples: 1 }), "1 sample");
    assert.equal(f.samplesText({ samples: 1200, interval_ms: 10 }), "1,200 samples, one every 10 ms (about 12.0 s of stacks)");
  });
});
