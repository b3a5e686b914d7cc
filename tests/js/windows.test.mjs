// Specifications of otel_monitor/analytics/static/js/windows.js (node --test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as w from "../../otel_monitor/analytics/static/js/windows.js";

describe("windows", () => {
  it("knows every window's length in seconds, and nothing else", () => {
    assert.deepEqual(w.WINDOW_S, { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 });
    assert.equal(w.windowSeconds("24h"), 86400);
    assert.equal(w.windowSeconds("2h"), undefined);
    assert.equal(w.windowSeconds("toString"), undefined);
  });
  it("cannot be changed by a caller", () => {
    assert.equal(Object.isFrozen(w.WINDOW_S), true);
  });
});

describe("chooseWindow", () => {
  const short = ["1m", "5m", "15m"];
  it("keeps a known window the page offers", () => {
    assert.equal(w.chooseWindow("5m", short), "5m");
  });
  it("falls back to 15m for a window not offered (a remembered 24h without history) or unknown", () => {
    assert.equal(w.chooseWindow("24h", short), "15m");
    assert.equal(w.chooseWindow("2h", [...short, "2h"]), "15m");
    assert.equal(w.chooseWindow(null, short), "15m");
  });
  it("falls back to the first offered window when 15m is not offered, and to null for none", () => {
    assert.equal(w.chooseWindow("24h", ["1m", "5m"]), "1m");
    assert.equal(w.chooseWindow("5m", []), null);
  });
});

describe("windowNote", () => {
  it("says nothing when the window is covered, or the answer does not say", () => {
    assert.equal(w.windowNote({ window_available: true, covered_s: 10 }, "15m", false), "");
    assert.equal(w.windowNote({}, "15m", false), "");
    assert.equal(w.windowNote(null, "15m", false), "");
  });
  it("blames a young process for a short window", () => {
    assert.equal(
      w.windowNote({ window_available: false, covered_s: 240 }, "15m", false),
      "Showing the last 4 min of the 15m window: the app started then.",
    );
  });
  it("asks for history, or says it is too short, for a long window", () => {
    const response = { window_available: false, covered_s: 5400 };
    assert.equal(w.windowNote(response, "6h", false), "Showing the last 1.5 h of the 6h window: longer windows need history (set MONITORING_DB).");
    assert.equal(w.windowNote(response, "6h", true), "Showing the last 1.5 h of the 6h window: history does not go back further yet.");
  });
  it("shows a dash for an unknown coverage", () => {
    assert.equal(w.windowNote({ window_available: false }, "1m", false), "Showing the last — of the 1m window: the app started then.");
  });
});

describe("axisSeconds", () => {
  const points = (n, step) => Array.from({ length: n }, (_, i) => ({ t: 1000 + i * step }));
  it("spans the whole window when the points cover it", () => {
    assert.equal(w.axisSeconds({ step_s: 10, points: points(90, 10) }, "15m"), 900);
    assert.equal(w.axisSeconds({ step_s: 10, points: points(89, 10) }, "15m"), 900); // within two steps
  });
  it("zooms to the points (null) when they cover less, or the answer says the window is not covered", () => {
    assert.equal(w.axisSeconds({ step_s: 10, points: points(80, 10) }, "15m"), null);
    assert.equal(w.axisSeconds({ window_available: false, step_s: 10, points: points(90, 10) }, "15m"), null);
  });
  it("uses a 10 s step when the answer gives none, and null for no answer or an unknown window", () => {
    assert.equal(w.axisSeconds({ points: points(6, 10) }, "1m"), 60);
    assert.equal(w.axisSeconds(null, "15m"), null);
    assert.equal(w.axisSeconds({ points: points(6, 10) }, "all"), null);
  });
  it("spans the window when there are no points yet (the chart shows its empty state)", () => {
    assert.equal(w.axisSeconds({ points: [] }, "5m"), 300);
    assert.equal(w.axisSeconds({}, "5m"), 300);
  });
});

describe("coveredText", () => {
  it("names the window, or since start", () => {
    assert.equal(w.coveredText({ window_available: true, covered_s: 900 }, "15m"), "in 15m");
    assert.equal(w.coveredText(null, "1h"), "in 1h");
    assert.equal(w.coveredText(null, "all"), "since start");
  });
  it("says how much a window not covered holds", () => {
    assert.equal(w.coveredText({ window_available: false, covered_s: 49 }, "15m"), "in the last 49 s");
    assert.equal(w.coveredText({ window_available: false, covered_s: null }, "15m"), "in 15m");
  });
});
