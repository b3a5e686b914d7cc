/* Shaping the analytics API's answers for the views: columns of a time series, the window's
 * totals, the endpoint table's order and filters, status codes, custom metrics. Pure, no DOM.
 * The shapes are those of docs/analytics-api.md.
 */

import { isNum } from "./format.js";

/** One field of every point, as a column; anything not a finite number becomes null (a gap). */
export function column(points, key) {
  const out = new Array(points.length);
  for (let i = 0; i < points.length; i++) {
    const v = points[i][key];
    out[i] = isNum(v) ? v : null;
  }
  return out;
}

/**
 * A /timeseries answer's points without its last bucket when that bucket is under half a step:
 * it runs from the newest sample to "now", so its rates are noise (a dip to 0 at the right edge).
 */
export function fullSteps(ts) {
  const points = ts && Array.isArray(ts.points) ? ts.points : [];
  const n = points.length;
  if (n < 3) return points;
  const last = points[n - 1].t - points[n - 2].t;
  const typical = points[n - 2].t - points[n - 3].t;
  return isNum(last) && isNum(typical) && last < typical / 2 ? points.slice(0, n - 1) : points;
}

/** The sum of the points' request counts (points without one count as none). */
export function totalRequests(points) {
  let n = 0;
  for (const p of points) if (isNum(p.requests)) n += p.requests;
  return n;
}

/**
 * The overview's numbers for a window: /performance's own window when it has one, else
 * (history windows) totals from the time series' points, each `step` seconds long.
 *
 * The fallback's error rate is exact (errors over requests); its p95 and apdex are request-
 * weighted means of the per-point values, which is not a p95: the result says
 * `approximate: true` so the page can say so. The exact fix is /performance serving history
 * windows (review, section 3, bug 1).
 */
export function windowStats(perf, points, step, windowName) {
  const w = perf && perf.windows && perf.windows[windowName];
  if (w && isNum(w.requests)) return w;
  const requests = totalRequests(points);
  let errorsWeighted = 0;
  let p95Weighted = 0;
  let apdexWeighted = 0;
  for (const p of points) {
    const n = isNum(p.requests) ? p.requests : 0;
    if (isNum(p.error_rate_pct)) errorsWeighted += p.error_rate_pct * n;
    if (isNum(p.p95_ms)) p95Weighted += p.p95_ms * n;
    if (isNum(p.apdex)) apdexWeighted += p.apdex * n;
  }
  const seconds = Math.max(1, points.length * (step || 10));
  return {
    requests,
    rps: requests / seconds,
    error_rate_pct: requests ? errorsWeighted / requests : null,
    latency: { p95_ms: requests ? p95Weighted / requests : null },
    apdex: requests ? apdexWeighted / requests : null,
    approximate: true,
  };
}

// -- endpoints ----------------------------------------------------------------------------------

/** "GET /users/<id>": how the page names an endpoint (in the URL hash and the sparkline map). */
export function endpointKey(method, route) {
  return String(method || "") + " " + String(route || "");
}

/** The inverse of endpointKey: {method, route}, split at the first space (routes may hold spaces). */
export function splitEndpointKey(key) {
  const text = String(key || "");
  const space = text.indexOf(" ");
  return space === -1 ? { method: text, route: "" } : { method: text.slice(0, space), route: text.slice(space + 1) };
}

function cmp(x, y) {
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Compare one text field of two rows (a missing field is ""). */
function cmpText(a, b, field) {
  return cmp(String(a[field] ?? ""), String(b[field] ?? ""));
}

/**
 * A comparator for endpoint rows by `key` in `dir` ("asc" or "desc"), in the server's order
 * (GET /endpoints?sort=): by (value, route, method), the whole tuple reversed for "desc"; rows
 * without a number for `key` last, by (route, method), either way. Equal rows compare as 0.
 *
 * Today's dashboard.js broke ties by route only, ascending whatever the direction, and never
 * answered 0, so one route with two methods and equal values could swap places on every refresh
 * (review, section 3, bug 2).
 */
export function compare(key, dir) {
  const sign = dir === "asc" ? 1 : -1;
  const byName = (a, b) => cmpText(a, b, "route") || cmpText(a, b, "method");
  if (key === "route" || key === "method") {
    const other = key === "route" ? "method" : "route";
    return (a, b) => sign * (cmpText(a, b, key) || cmpText(a, b, other)) || 0;
  }
  return (a, b) => {
    const xn = isNum(a[key]);
    const yn = isNum(b[key]);
    if (!xn || !yn) return xn ? -1 : yn ? 1 : byName(a, b);
    return sign * (cmp(a[key], b[key]) || byName(a, b)) || 0; // "|| 0": no -0 from a descending tie
  };
}

/** The rows whose route contains `query` (case-insensitive) and whose method is `method` (when given). */
export function filterEndpoints(list, query, method) {
  const q = String(query || "").toLowerCase();
  return list.filter(
    (e) => (!q || String(e.route).toLowerCase().includes(q)) && (!method || e.method === method),
  );
}

/**
 * The method filter's choices: the methods of `list`, sorted, plus `selected` when it has left
 * the data (so the current choice stays visible). The page rebuilds the <select> from this: it
 * used to only ever add options, so methods that left the window stayed listed (review, section
 * 3, bug 3).
 */
export function methodChoices(list, selected) {
  const methods = new Set();
  for (const e of list) if (e.method) methods.add(String(e.method));
  if (selected) methods.add(String(selected));
  return [...methods].sort();
}

/** "2 routes", "1 route", "3 of 12 routes": the count above the endpoint table. */
export function routeCountText(shown, total) {
  return shown === total ? total + (total === 1 ? " route" : " routes") : shown + " of " + total + " routes";
}

// -- status -------------------------------------------------------------------------------------

const STATUS_CLASSES = { healthy: "ok", ok: "ok", degraded: "warn", warn: "warn", unhealthy: "fail", fail: "fail" };

/** The CSS class for a health or check status: status-ok, status-warn, status-fail or status-unknown. */
export function statusClass(status) {
  const known = Object.prototype.hasOwnProperty.call(STATUS_CLASSES, status);
  return "status-" + (known ? STATUS_CLASSES[status] : "unknown");
}

/** "Healthy" from "healthy"; "Unknown" for no status. */
export function statusTitle(status) {
  const text = status ? String(status) : "unknown";
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The CSS class of an HTTP status code's family: s2, s3, s4, s5, or sx for anything else. */
export function statusFamily(code) {
  const c = String(code).charAt(0);
  return c === "2" ? "s2" : c === "3" ? "s3" : c === "4" ? "s4" : c === "5" ? "s5" : "sx";
}

/**
 * An endpoint's status_codes ({"200": 90, "500": 10}) as rows for the bar and the table, most
 * frequent first (then by code): {rows: [{code, count, pct}], total}.
 */
export function statusBreakdown(codes) {
  const rows = [];
  let total = 0;
  for (const [code, count] of Object.entries(codes || {})) {
    if (!isNum(count) || count <= 0) continue;
    rows.push({ code, count });
    total += count;
  }
  rows.sort((a, b) => b.count - a.count || cmp(a.code, b.code));
  return { rows: rows.map((r) => ({ ...r, pct: (r.count / total) * 100 })), total };
}

/** The health card's headline: "All 5 checks pass", "1 check needs attention", ... */
export function healthSummary(checks) {
  const failing = checks.filter((c) => c.status !== "ok").length;
  if (failing) return failing + (failing === 1 ? " check needs attention" : " checks need attention");
  return checks.length === 1 ? "The check passes" : "All " + checks.length + " checks pass";
}

/**
 * How full a check's meter is, in percent of its width (0 to 100): the threshold sits at two
 * thirds of the bar (METER_MARK_PCT), so a value at 1.5 times the threshold fills it.
 */
export const METER_SPAN = 1.5;
export const METER_MARK_PCT = 100 / METER_SPAN;

export function meterPct(value, threshold) {
  if (!isNum(value) || !isNum(threshold) || threshold <= 0) return 0;
  return Math.max(0, Math.min(100, (value / (threshold * METER_SPAN)) * 100));
}

// -- custom metrics -----------------------------------------------------------------------------

/** Instruments the monitoring makes itself; every other name is the app's own ("custom"). */
export const BUILTIN_PREFIXES = ["http.", "system.", "process.", "otel.", "otel_monitor."];

export function isCustom(name) {
  const text = String(name || "");
  return text.length > 0 && !BUILTIN_PREFIXES.some((prefix) => text.startsWith(prefix));
}

/** The custom metrics to show: sorted by name, those whose name contains `query` (case-insensitive). */
export function filterMetrics(metrics, query) {
  const q = String(query || "").toLowerCase();
  return metrics
    .slice()
    .sort((a, b) => cmp(String(a.name), String(b.name)))
    .filter((m) => !q || String(m.name).toLowerCase().includes(q));
}

/** A histogram point's mean (sum over count), or null without a count. */
export function histogramMean(point) {
  return point && isNum(point.count) && point.count > 0 && isNum(point.sum) ? point.sum / point.count : null;
}
