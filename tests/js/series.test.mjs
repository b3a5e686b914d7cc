// Specifications of otel_monitor/analytics/static/js/series.js (node --test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as s from "../../otel_monitor/analytics/static/js/series.js";

describe("column", () => {
  it("takes one field of every point, with null for anything not a finite number", () => {
    const points = [{ rps: 1 }, { rps: null }, {}, { rps: NaN }, { rps: "2" }, { rps: 0 }];
    assert.deepEqual(s.column(points, "rps"), [1, null, null, null, null, 0]);
  });
  it("gives an empty column for no points", () => assert.deepEqual(s.column([], "t"), []));
});

describe("fullSteps", () => {
  const pts = (...ts) => ts.map((t) => ({ t }));
  it("drops a last bucket shorter than half a step", () => {
    assert.deepEqual(s.fullSteps({ points: pts(0, 10, 20, 24) }), pts(0, 10, 20));
  });
  it("keeps a last bucket of half a step or more", () => {
    assert.deepEqual(s.fullSteps({ points: pts(0, 10, 20, 25) }), pts(0, 10, 20, 25));
  });
  it("keeps series too short to judge (under three points)", () => {
    assert.deepEqual(s.fullSteps({ points: pts(0, 1) }), pts(0, 1));
  });
  it("gives no points for a missing or malformed answer", () => {
    assert.deepEqual(s.fullSteps(null), []);
    assert.deepEqual(s.fullSteps({}), []);
    assert.deepEqual(s.fullSteps({ points: "x" }), []);
  });
});

describe("totalRequests", () => {
  it("sums request counts, points without one counting as none", () => {
    assert.equal(s.totalRequests([{ requests: 3 }, { requests: null }, {}, { requests: 4 }]), 7);
    assert.equal(s.totalRequests([]), 0);
  });
});

describe("windowStats", () => {
  it("uses /performance's own window when it has one", () => {
    const w = { requests: 10, rps: 1, error_rate_pct: 0 };
    assert.equal(s.windowStats({ windows: { "15m": w } }, [], 10, "15m"), w);
  });
  it("otherwise sums the points: requests, rate over the points' time, request-weighted means", () => {
    const points = [
      { requests: 30, error_rate_pct: 10, p95_ms: 100, apdex: 1 },
      { requests: 10, error_rate_pct: 50, p95_ms: 500, apdex: 0.5 },
      { requests: 0, error_rate_pct: null, p95_ms: null, apdex: null },
      { requests: null },
    ];
    assert.deepEqual(s.windowStats({ windows: {} }, points, 60, "1h"), {
      requests: 40,
      rps: 40 / 240,
      error_rate_pct: 20,
      latency: { p95_ms: 200 },
      apdex: 0.875,
      approximate: true,
    });
  });
  it("falls back when the window's entry has no request count", () => {
    const out = s.windowStats({ windows: { "1h": { requests: null } } }, [{ requests: 2 }], 10, "1h");
    assert.equal(out.requests, 2);
    assert.equal(out.approximate, true);
  });
  it("has no rates or means without requests, and no division by zero without points", () => {
    assert.deepEqual(s.windowStats(null, [], undefined, "24h"), {
      requests: 0,
      rps: 0,
      error_rate_pct: null,
      latency: { p95_ms: null },
      apdex: null,
      approximate: true,
    });
  });
});

describe("endpoint keys", () => {
  it("joins method and route with a space, and splits at the first space", () => {
    assert.equal(s.endpointKey("GET", "/a b"), "GET /a b");
    assert.deepEqual(s.splitEndpointKey("GET /a b"), { method: "GET", route: "/a b" });
  });
  it("turns missing parts into empty strings", () => {
    assert.equal(s.endpointKey(null, undefined), " ");
    assert.deepEqual(s.splitEndpointKey("GET"), { method: "GET", route: "" });
    assert.deepEqual(s.splitEndpointKey(null), { method: "", route: "" });
  });
});

describe("compare (the endpoint table's order, as the server's GET /endpoints?sort=)", () => {
  const row = (route, method, count, p95_ms) => ({ route, method, count, p95_ms });
  const order = (rows, key, dir) => rows.slice().sort(s.compare(key, dir)).map((r) => r.method + " " + r.route);

  it("sorts numbers descending or ascending", () => {
    const rows = [row("/a", "GET", 5), row("/b", "GET", 9), row("/c", "GET", 1)];
    assert.deepEqual(order(rows, "count", "desc"), ["GET /b", "GET /a", "GET /c"]);
    assert.deepEqual(order(rows, "count", "asc"), ["GET /c", "GET /a", "GET /b"]);
  });
  it("breaks ties by route then method, the whole order reversed for descending", () => {
    const rows = [row("/b", "GET", 5), row("/a", "POST", 5), row("/a", "GET", 5), row("/z", "GET", 9)];
    assert.deepEqual(order(rows, "count", "asc"), ["GET /a", "POST /a", "GET /b", "GET /z"]);
    assert.deepEqual(order(rows, "count", "desc"), ["GET /z", "GET /b", "POST /a", "GET /a"]);
  });
  it("gives the same order whatever the input order (a stable table between refreshes)", () => {
    const rows = [row("/a", "GET", 5), row("/a", "POST", 5), row("/a", "PUT", 5), row("/b", "GET", 5)];
    const expected = order(rows, "count", "desc");
    assert.deepEqual(order(rows.slice().reverse(), "count", "desc"), expected);
    assert.deepEqual(order([rows[2], rows[0], rows[3], rows[1]], "count", "desc"), expected);
  });
  it("says 0 for rows that are equal in every sort field", () => {
    assert.equal(s.compare("count", "desc")(row("/a", "GET", 1), row("/a", "GET", 1)), 0);
    assert.equal(s.compare("route", "desc")(row("/a", "GET"), row("/a", "GET")), 0);
    assert.equal(s.compare("p95_ms", "desc")(row("/a", "GET", 1), row("/a", "GET", 1)), 0);
    assert.equal(s.compare("p95_ms", "asc")(row("/a", "GET", 1), row("/a", "GET", 1)), 0);
  });
  it("puts rows without a value last either way, by route then method", () => {
    const rows = [row("/b", "GET", 1, null), row("/a", "GET", 1, 50), row("/a", "POST", 1, undefined), row("/c", "GET", 1, 10)];
    assert.deepEqual(order(rows, "p95_ms", "desc"), ["GET /a", "GET /c", "POST /a", "GET /b"]);
    assert.deepEqual(order(rows, "p95_ms", "asc"), ["GET /c", "GET /a", "POST /a", "GET /b"]);
  });
  it("sorts by route (then method) in either direction", () => {
    const rows = [row("/b", "GET"), row("/a", "POST"), row("/a", "GET")];
    assert.deepEqual(order(rows, "route", "asc"), ["GET /a", "POST /a", "GET /b"]);
    assert.deepEqual(order(rows, "route", "desc"), ["GET /b", "POST /a", "GET /a"]);
  });
  it("sorts by method (then route)", () => {
    const rows = [row("/b", "POST"), row("/b", "GET"), row("/a", "GET")];
    assert.deepEqual(order(rows, "method", "asc"), ["GET /a", "GET /b", "POST /b"]);
  });
});

describe("filterEndpoints and methodChoices", () => {
  const list = [
    { method: "GET", route: "/Users/<id>" },
    { method: "POST", route: "/users" },
    { method: "GET", route: "/health" },
  ];
  it("filters by a case-insensitive part of the route and by method", () => {
    assert.deepEqual(s.filterEndpoints(list, "USER", "").map((e) => e.method + " " + e.route), ["GET /Users/<id>", "POST /users"]);
    assert.deepEqual(s.filterEndpoints(list, "user", "POST").map((e) => e.route), ["/users"]);
    assert.equal(s.filterEndpoints(list, "", "").length, 3);
    assert.equal(s.filterEndpoints(list, "nope", "").length, 0);
  });
  it("offers the methods in the data, sorted and once each", () => {
    assert.deepEqual(s.methodChoices(list, ""), ["GET", "POST"]);
  });
  it("drops methods that left the data, but keeps the one selected", () => {
    assert.deepEqual(s.methodChoices([{ method: "GET" }], ""), ["GET"]);
    assert.deepEqual(s.methodChoices([{ method: "GET" }], "DELETE"), ["DELETE", "GET"]);
    assert.deepEqual(s.methodChoices([], ""), []);
  });
  it("counts routes in words", () => {
    assert.equal(s.routeCountText(1, 1), "1 route");
    assert.equal(s.routeCountText(0, 0), "0 routes");
    assert.equal(s.routeCountText(3, 12), "3 of 12 routes");
  });
});

describe("status", () => {
  it("maps health and check statuses to three classes, anything else to unknown", () => {
    assert.deepEqual(
      ["healthy", "ok", "degraded", "warn", "unhealthy", "fail", "bogus", undefined, "constructor"].map(s.statusClass),
      ["status-ok", "status-ok", "status-warn", "status-warn", "status-fail", "status-fail", "status-unknown", "status-unknown", "status-unknown"],
    );
  });
  it("capitalises a status for its badge", () => {
    assert.equal(s.statusTitle("degraded"), "Degraded");
    assert.equal(s.statusTitle(""), "Unknown");
    assert.equal(s.statusTitle(null), "Unknown");
  });
  it("groups HTTP codes by their first digit, numbers or strings", () => {
    assert.deepEqual([200, "301", 404, "503", 101, "abc", null].map(s.statusFamily), ["s2", "s3", "s4", "s5", "sx", "sx", "sx"]);
  });
  it("breaks status codes down, most frequent first, then by code, with percentages", () => {
    assert.deepEqual(s.statusBreakdown({ 500: 10, 200: 30, 404: 10 }), {
      rows: [
        { code: "200", count: 30, pct: 60 },
        { code: "404", count: 10, pct: 20 },
        { code: "500", count: 10, pct: 20 },
      ],
      total: 50,
    });
  });
  it("leaves out codes without a positive count and has no rows without data", () => {
    assert.deepEqual(s.statusBreakdown({ 200: 0, 500: null }), { rows: [], total: 0 });
    assert.deepEqual(s.statusBreakdown(undefined), { rows: [], total: 0 });
  });
  it("sums up health checks in one sentence", () => {
    assert.equal(s.healthSummary([{ status: "ok" }, { status: "ok" }]), "All 2 checks pass");
    assert.equal(s.healthSummary([{ status: "ok" }]), "The check passes");
    assert.equal(s.healthSummary([{ status: "warn" }, { status: "ok" }]), "1 check needs attention");
    assert.equal(s.healthSummary([{ status: "warn" }, { status: "fail" }]), "2 checks need attention");
    assert.equal(s.healthSummary([]), "All 0 checks pass");
  });
  it("fills a check's meter so that the threshold sits at two thirds", () => {
    assert.equal(s.METER_MARK_PCT, 100 / 1.5);
    assert.equal(s.meterPct(75, 100), 50);
    assert.equal(s.meterPct(150, 100), 100);
    assert.equal(s.meterPct(1e9, 100), 100);
    assert.equal(s.meterPct(-5, 100), 0);
  });
  it("leaves a meter empty without a value or a positive threshold", () => {
    assert.equal(s.meterPct(null, 100), 0);
    assert.equal(s.meterPct(50, 0), 0);
    assert.equal(s.meterPct(50, NaN), 0);
  });
});

describe("custom metrics", () => {
  it("counts every name but the monitoring's own prefixes as custom", () => {
    assert.equal(s.isCustom("shop.orders.created"), true);
    assert.equal(s.isCustom("httpx.calls"), true); // a prefix is "http.", with the dot
    for (const name of ["http.server.request.duration", "system.cpu.utilization", "process.memory.usage", "otel.sdk.x", "otel_monitor.alerts.notifications"]) {
      assert.equal(s.isCustom(name), false, name);
    }
  });
  it("does not count a nameless instrument", () => {
    assert.equal(s.isCustom(""), false);
    assert.equal(s.isCustom(null), false);
  });
  it("sorts metrics by name and filters by a case-insensitive part of it", () => {
    const metrics = [{ name: "b.x" }, { name: "A.orders" }, { name: "c.orders" }];
    assert.deepEqual(s.filterMetrics(metrics, "").map((m) => m.name), ["A.orders", "b.x", "c.orders"]);
    assert.deepEqual(s.filterMetrics(metrics, "ORDERS").map((m) => m.name), ["A.orders", "c.orders"]);
    assert.deepEqual(metrics.map((m) => m.name), ["b.x", "A.orders", "c.orders"]); // input untouched
  });
  it("gives a histogram point's mean, or null without a count", () => {
    assert.equal(s.histogramMean({ count: 4, sum: 10 }), 2.5);
    assert.equal(s.histogramMean({ count: 0, sum: 0 }), null);
    assert.equal(s.histogramMean({ count: 2, sum: null }), null);
    assert.equal(s.histogramMean(undefined), null);
  });
});
