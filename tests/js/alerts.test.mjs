import { test } from "node:test";
import assert from "node:assert/strict";

import {
  conditionText,
  durationText,
  outcomeClass,
  splitAlerts,
  stateName,
  valueText,
} from "../../otel_monitor/analytics/static/js/alerts.js";

test("durations read as the rules write them", () => {
  assert.equal(durationText(90), "1m30s");
  assert.equal(durationText(300), "5m");
  assert.equal(durationText(5400), "1h30m");
  assert.equal(durationText(0), "0s");
  assert.equal(durationText(null), "—");
});

test("values carry the metric's unit, and a missing one says so", () => {
  assert.equal(valueText("p95_ms", 812.44), "812 ms");
  assert.equal(valueText("error_rate_pct", 1.234), "1.23 %");
  assert.equal(valueText("apdex", 0.91), "0.91");
  assert.equal(valueText("custom:x", null), "no data");
  assert.equal(valueText("constructor", 3), "3");
});

test("a condition names the metric, the threshold, the route, the window and the for", () => {
  const rule = { metric: "p95_ms", op: ">", threshold: 500, route: "/checkout", method: "GET", window_s: 300, for_s: 120 };
  assert.equal(conditionText(rule), "p95_ms > 500 ms on GET /checkout, over 5m, for 2m");
  assert.equal(conditionText({ metric: "memory_pct", op: ">", threshold: 80, window_s: 300, for_s: 300 }), "memory_pct > 80 %, for 5m");
});

test("a firing alert under an active silence reads as silenced; pending and ok as such", () => {
  const firing = { name: "a", state: { status: "firing" } };
  assert.equal(stateName(firing, []), "firing");
  assert.equal(stateName(firing, [{ rule: "*", active: true }]), "silenced");
  assert.equal(stateName(firing, [{ rule: "a", active: false }]), "firing");
  assert.equal(stateName({ name: "b", state: { status: "pending" } }, []), "pending");
  assert.equal(stateName({ name: "c", state: { status: "inactive" } }, []), "ok");
  const split = splitAlerts([firing, { name: "c", state: { status: "inactive" } }], []);
  assert.deepEqual([split.firing.length, split.pending.length, split.ok.length], [1, 0, 1]);
});

test("outcomes map to the ok and fail classes", () => {
  assert.equal(outcomeClass("sent"), "ok");
  assert.equal(outcomeClass("failed"), "fail");
  assert.equal(outcomeClass("dropped"), "fail");
});
