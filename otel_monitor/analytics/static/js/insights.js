/* Pure helpers of the versions, users and week views: comparing two versions' endpoints,
 * describing a regression, a test's p-value, and the heatmap's colour levels. No DOM.
 */

/** The two versions compared by default: the one before the newest, and the newest. */
export function defaultPair(versions) {
  const names = (Array.isArray(versions) ? versions : []).map((v) => String(v.version));
  if (!names.length) return [null, null];
  if (names.length === 1) return [names[0], names[0]];
  return [names[names.length - 2], names[names.length - 1]];
}

function byEndpoint(version) {
  const map = new Map();
  for (const e of (version && Array.isArray(version.endpoints) ? version.endpoints : [])) {
    map.set(e.method + " " + e.route, e);
  }
  return map;
}

/** Relative change in percent from `a` to `b` (null when either is missing or `a` is 0). */
export function changePct(a, b) {
  if (typeof a !== "number" || typeof b !== "number" || !Number.isFinite(a) || !Number.isFinite(b) || a === 0) {
    return null;
  }
  return ((b - a) / a) * 100;
}

/**
 * Every endpoint of either version with both versions' figures, the biggest p95 growth first
 * (endpoints only one version has come last, by route).
 */
export function compareVersions(versions, fromName, toName) {
  const list = Array.isArray(versions) ? versions : [];
  const from = byEndpoint(list.find((v) => String(v.version) === fromName));
  const to = byEndpoint(list.find((v) => String(v.version) === toName));
  const keys = new Set([...from.keys(), ...to.keys()]);
  const rows = [];
  for (const key of keys) {
    const a = from.get(key) || null;
    const b = to.get(key) || null;
    const any = a || b;
    rows.push({
      route: any.route,
      method: any.method,
      from: a,
      to: b,
      p95ChangePct: a && b ? changePct(a.p95_ms, b.p95_ms) : null,
    });
  }
  rows.sort((x, y) => {
    const cx = x.p95ChangePct;
    const cy = y.p95ChangePct;
    if (cx !== null && cy !== null && cx !== cy) return cy - cx;
    if ((cx === null) !== (cy === null)) return cx === null ? 1 : -1;
    return x.route < y.route ? -1 : x.route > y.route ? 1 : x.method < y.method ? -1 : x.method > y.method ? 1 : 0;
  });
  return rows;
}

/** A version's name for a column header: at most `n` characters (an ellipsis for the rest). */
export function shortLabel(text, n = 16) {
  const s = String(text === null || text === undefined ? "" : text);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

/** "p < 0.0001", "p = 0.0031". */
export function pValueText(p) {
  if (typeof p !== "number" || !Number.isFinite(p)) return "p = —";
  if (p < 0.0001) return "p < 0.0001";
  return "p = " + (p < 0.01 ? p.toPrecision(2) : p.toFixed(3));
}

/** What got worse, as the regression entry names it: the metric's name and both values. */
export function regressionFigures(r) {
  if (r.metric === "error_rate") {
    return { label: "error rate", from: r.from && r.from.error_rate_pct, to: r.to && r.to.error_rate_pct, unit: "%" };
  }
  return { label: "p95", from: r.from && r.from.p95_ms, to: r.to && r.to.p95_ms, unit: "ms" };
}

/** The colour level of a heatmap cell: 0 for no data, else 1 (lowest) to `levels` (the maximum). */
export function heatLevel(value, max, levels = 5) {
  if (typeof value !== "number" || !Number.isFinite(value)) return 0;
  if (typeof max !== "number" || !(max > 0)) return 1;
  const level = Math.ceil((Math.max(0, value) / max) * levels);
  return Math.min(levels, Math.max(1, level));
}

/** The week's rows: one per day (its date and weekday), each with 24 cells (value and level). */
export function heatRows(body, levels = 5) {
  const days = body && Array.isArray(body.days) ? body.days : [];
  const cells = body && Array.isArray(body.cells) ? body.cells : [];
  const max = body ? body.max : null;
  return days.map((day, i) => {
    const row = Array.isArray(cells[i]) ? cells[i] : [];
    const parts = String(day).split("-").map(Number);
    const weekday =
      parts.length === 3 && parts.every(Number.isFinite)
        ? ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][new Date(Date.UTC(parts[0], parts[1] - 1, parts[2])).getUTCDay()]
        : "";
    const hours = [];
    for (let h = 0; h < 24; h++) {
      const value = typeof row[h] === "number" ? row[h] : null;
      hours.push({ hour: h, value, level: heatLevel(value, max, levels) });
    }
    return { day: String(day), weekday, hours };
  });
}
