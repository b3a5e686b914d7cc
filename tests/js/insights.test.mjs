import { test } from "node:test";
import assert from "node:assert/strict";

import {
  changePct,
  compareVersions,
  defaultPair,
  heatLevel,
  heatRows,
  pValueText,
  regressionFigures,
  shortLabel,
} from "../../otel_monitor/analytics/static/js/insights.js";

const VERSIONS = [
  {
    version: "1.0",
    endpoints: [
      { route: "/a", method: "GET", requests: 40, p50_ms: 1, p95_ms: 2, error_rate_pct: 0 },
      { route: "/b", method: "GET", requests: 40, p50_ms: 1, p95_ms: 2, error_rate_pct: 0 },
      { route: "/gone", method: "POST", requests: 3, p50_ms: 5, p95_ms: 9, error_rate_pct: 0 },
    ],
  },
  {
    version: "2.0",
    endpoints: [
      { route: "/a", method: "GET", requests: 40, p50_ms: 1, p95_ms: 2.2, error_rate_pct: 0 },
      { route: "/b", method: "GET", requests: 40, p50_ms: 31, p95_ms: 40, error_rate_pct: 0 },
      { route: "/new", method: "GET", requests: 1, p50_ms: 1, p95_ms: 1, error_rate_pct: 0 },
    ],
  },
];

test("the default pair is the version before the newest and the newest", () => {
  assert.deepEqual(defaultPair(VERSIONS), ["1.0", "2.0"]);
  assert.deepEqual(defaultPair([{ version: "x" }]), ["x", "x"]);
  assert.deepEqual(defaultPair([]), [null, null]);
  assert.deepEqual(defaultPair(undefined), [null, null]);
});

test("comparing two versions lists every endpoint, the biggest p95 growth first", () => {
  const rows = compareVersions(VERSIONS, "1.0", "2.0");
  assert.deepEqual(
    rows.map((r) => r.method + " " + r.route),
    ["GET /b", "GET /a", "POST /gone", "GET /new"],
  );
  assert.equal(rows[0].p95ChangePct, 1900);
  assert.equal(Math.round(rows[1].p95ChangePct), 10);
  assert.equal(rows[2].to, null);
  assert.equal(rows[2].p95ChangePct, null);
  assert.equal(rows[3].from, null);
});

test("a change needs two numbers and a non-zero start", () => {
  assert.equal(changePct(2, 3), 50);
  assert.equal(changePct(0, 3), null);
  assert.equal(changePct(null, 3), null);
  assert.equal(changePct(2, NaN), null);
});

test("p-values are shown with the precision that matters", () => {
  assert.equal(pValueText(1e-23), "p < 0.0001");
  assert.equal(pValueText(0.0031), "p = 0.0031");
  assert.equal(pValueText(0.2429), "p = 0.243");
  assert.equal(pValueText(undefined), "p = —");
});

test("a regression names its metric and both values", () => {
  assert.deepEqual(regressionFigures({ metric: "latency", from: { p95_ms: 2 }, to: { p95_ms: 40 } }), {
    label: "p95",
    from: 2,
    to: 40,
    unit: "ms",
  });
  assert.deepEqual(
    regressionFigures({ metric: "error_rate", from: { error_rate_pct: 0 }, to: { error_rate_pct: 20 } }).label,
    "error rate",
  );
});

test("heat levels: 0 for no data, the maximum at the top level, small values at level 1", () => {
  assert.equal(heatLevel(null, 10), 0);
  assert.equal(heatLevel(10, 10), 5);
  assert.equal(heatLevel(0.1, 10), 1);
  assert.equal(heatLevel(0, 10), 1);
  assert.equal(heatLevel(5, 10), 3);
  assert.equal(heatLevel(3, 0), 1);
});

test("heat rows carry the weekday of each date and 24 hours", () => {
  const rows = heatRows({ days: ["2026-03-03", "2026-03-04"], cells: [[null, 6], []], max: 6 });
  assert.deepEqual(rows.map((r) => r.weekday), ["Tue", "Wed"]);
  assert.equal(rows[0].hours.length, 24);
  assert.deepEqual(rows[0].hours[1], { hour: 1, value: 6, level: 5 });
  assert.deepEqual(rows[1].hours[0], { hour: 0, value: null, level: 0 });
  assert.deepEqual(heatRows(null), []);
});

test("a long version name is cut for a column header", () => {
  assert.equal(shortLabel("1.0"), "1.0");
  assert.equal(shortLabel("0123456789abcdef0123", 8), "0123456…");
  assert.equal(shortLabel(null), "");
});
