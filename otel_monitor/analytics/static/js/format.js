/* Numbers, units and times as the dashboard shows them: pure functions, no DOM.
 *
 * Every formatter answers "—" for a value that is not a finite number (null, undefined, NaN,
 * Infinity, a string), so a gap in the data never prints "NaN ms". Numbers use en-US grouping
 * ("1,234"), whatever the browser's locale, so the page reads the same everywhere.
 */

export const DASH = "—";

/** A finite number (typeof check first: isFinite("3") is true, and "3" is not a measurement). */
export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

export function fixed(v, digits) {
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtCount(v) {
  if (!isNum(v)) return DASH;
  if (Math.abs(v) >= 1e6) return fixed(v / 1e6, 2) + " M";
  if (Math.abs(v) >= 1e4) return fixed(v / 1e3, 1) + " k";
  return Math.round(v) === v ? v.toLocaleString("en-US") : fixed(v, 2);
}

export function fmtMs(v) {
  if (!isNum(v)) return DASH;
  // Thresholds where the rounded text changes length: 999.6 ms would print "1,000 ms" and
  // 9.996 ms "10.00 ms", so they take the next, shorter form ("1.00 s", "10.0 ms").
  if (v >= 999.5) return fixed(v / 1000, v >= 9995 ? 1 : 2) + " s";
  if (v >= 99.95) return fixed(v, 0) + " ms";
  if (v >= 9.995) return fixed(v, 1) + " ms";
  return fixed(v, 2) + " ms";
}

export function fmtPct(v) {
  if (!isNum(v)) return DASH;
  if (v === 0) return "0 %";
  if (Math.abs(v) < 10) return fixed(v, 2) + " %";
  return fixed(v, 1) + " %";
}

export function fmtRps(v) {
  if (!isNum(v)) return DASH;
  if (v === 0) return "0 req/s";
  if (v < 0.1) return fixed(v, 3) + " req/s";
  if (v < 10) return fixed(v, 2) + " req/s";
  return fixed(v, 1) + " req/s";
}

export const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/** Decimal units (kB = 1000 B), as OpenTelemetry's "By" and psutil's totals are plain bytes. */
export function fmtBytes(v) {
  if (!isNum(v)) return DASH;
  const last = BYTE_UNITS.length - 1;
  let i = 0;
  let n = Math.abs(v);
  while (n >= 1000 && i < last) {
    n /= 1000;
    i++;
  }
  // 999.7 B would print as "1,000 B" (and 999.96 kB as "1,000 kB"): carry to the next unit.
  if (i < last && Math.round(n) >= 1000) {
    n /= 1000;
    i++;
  }
  const sign = v < 0 ? "-" : "";
  return sign + (i === 0 ? fixed(n, 0) : fixed(n, n >= 99.95 ? 0 : 1)) + " " + BYTE_UNITS[i];
}

export function fmtBps(v) {
  return isNum(v) ? fmtBytes(v) + "/s" : DASH;
}

export function fmtApdex(v) {
  return isNum(v) ? fixed(v, 2) : DASH;
}

/** "1 request", "2 requests" (the count formatted by fmtCount). */
export function plural(n, word) {
  return fmtCount(n) + " " + word + (n === 1 ? "" : "s");
}

export function fmtUptime(s) {
  if (!isNum(s)) return DASH;
  if (s < 60) return Math.floor(s) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

/** How much of a window the data covers: "45 s", "12 min", "1.5 h", "3.0 days". */
export function fmtSpan(s) {
  if (!isNum(s)) return DASH;
  if (s < 90) return Math.max(1, Math.round(s)) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return fixed(s / 3600, s < 36000 ? 1 : 0) + " h";
  return fixed(s / 86400, 1) + " days";
}

/** The refresh interval: "30 s", "2 min", "1.5 s". */
export function formatInterval(s) {
  return s >= 60 && s % 60 === 0 ? s / 60 + " min" : Math.round(s * 10) / 10 + " s";
}

export function pad2(n) {
  return n < 10 ? "0" + n : String(n);
}

/** "14:05" (or "14:05:09" with seconds) in the browser's time zone, from unix seconds. */
export function fmtClock(t, seconds) {
  if (!isNum(t)) return DASH;
  const d = new Date(t * 1000);
  return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + (seconds ? ":" + pad2(d.getSeconds()) : "");
}

export const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** "Tue 14" in the browser's time zone, from unix seconds. */
export function fmtDay(t) {
  if (!isNum(t)) return DASH;
  const d = new Date(t * 1000);
  return DAYS[d.getDay()] + " " + d.getDate();
}

/** "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago"; `now` in unix seconds (default: the clock). */
export function fmtAgo(t, now = Date.now() / 1000) {
  if (!isNum(t)) return DASH;
  const s = now - t;
  if (s < 5) return "just now";
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

/** A value in an OpenTelemetry unit ("s", "ms", "By", "{order}", "1", "%"). */
export function fmtUnit(v, unit) {
  if (!isNum(v)) return DASH;
  switch (unit) {
    case "s":
      return fmtMs(v * 1000);
    case "ms":
      return fmtMs(v);
    case "By":
      return fmtBytes(v);
    case "By/s":
      return fmtBps(v);
    case "%":
      return fmtPct(v);
    case "1":
    case "":
    case undefined:
    case null:
      return fmtCount(v);
    default:
      // "{order}" is an annotation (the card says "unit: order"); "req", "MiBy", ... are shown.
      return /^\{.*\}$/.test(String(unit)) ? fmtCount(v) : fmtCount(v) + " " + unit;
  }
}

const UNIT_WORDS = { s: "seconds", ms: "milliseconds", By: "bytes", "%": "percent" };

/** The unit in words for a metric card ("" for dimensionless "1"; "{order}" becomes "order"). */
export function unitLabel(unit) {
  if (!unit || unit === "1") return "";
  if (Object.prototype.hasOwnProperty.call(UNIT_WORDS, unit)) return UNIT_WORDS[unit];
  return String(unit).replace(/^\{(.*)\}$/, "$1");
}

/** A health check's value or threshold, in the unit /health gives ("ms", "%", "bytes", other). */
export function fmtCheck(value, unit) {
  if (!isNum(value)) return "no data";
  if (unit === "ms") return fmtMs(value);
  if (unit === "%") return fmtPct(value);
  if (unit === "bytes") return fmtBytes(value);
  return fmtCount(value) + (unit ? " " + unit : "");
}

/** A custom metric point's attributes: "a=1, b=x" sorted by key, or "(no attributes)". */
export function attributesText(attrs) {
  const keys = Object.keys(attrs || {}).sort();
  if (!keys.length) return "(no attributes)";
  return keys.map((k) => k + "=" + String(attrs[k])).join(", ");
}

// Axis labels are shorter than the legend's: as many decimals as the tick needs (0.25 stays
// 0.25), at most three, no grouping.

export function short(v) {
  return String(Math.round(v * 1000) / 1000);
}

export function axisNumber(v) {
  return v >= 1000 ? short(v / 1000) + "k" : short(v);
}

export function axisPct(v) {
  return short(v) + "%";
}

export function axisMs(v) {
  return v >= 1000 ? short(v / 1000) + " s" : short(v) + " ms";
}

export function axisBytes(v) {
  return v === 0 ? "0" : fmtBytes(v);
}

export function axisBps(v) {
  return v === 0 ? "0" : fmtBps(v);
}
