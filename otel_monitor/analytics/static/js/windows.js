/* The dashboard's time windows: their lengths, which one to use, and the note shown when the
 * data covers less than the window. Pure, no DOM.
 */

import { fmtSpan, isNum } from "./format.js";

/** Every window the page knows, in seconds (the page offers the history ones only with MONITORING_DB). */
export const WINDOW_S = Object.freeze({
  "1m": 60,
  "5m": 300,
  "15m": 900,
  "1h": 3600,
  "6h": 21600,
  "24h": 86400,
  "7d": 604800,
});

export const DEFAULT_WINDOW = "15m";

/** The window's length in seconds, or undefined for a name that is not a window. */
export function windowSeconds(name) {
  return Object.prototype.hasOwnProperty.call(WINDOW_S, name) ? WINDOW_S[name] : undefined;
}

/**
 * The window to use for `wanted` (say a remembered one) among the `offered` names: `wanted` when
 * it is a known window the page offers, else 15m when offered, else the first offered one
 * (a remembered "24h" is no choice when history is off); null when nothing is offered.
 */
export function chooseWindow(wanted, offered) {
  if (windowSeconds(wanted) !== undefined && offered.includes(wanted)) return wanted;
  if (offered.includes(DEFAULT_WINDOW)) return DEFAULT_WINDOW;
  return offered.length ? offered[0] : null;
}

/**
 * The banner text when an answer covers less than its window ({window_available: false,
 * covered_s}), else "". Windows longer than 15 minutes come from history, so the reason differs:
 * `history` says whether the page has a history database.
 */
export function windowNote(response, windowName, history) {
  if (!response || response.window_available !== false) return "";
  const long = (windowSeconds(windowName) || 0) > 900;
  const reason = long
    ? history
      ? "history does not go back further yet."
      : "longer windows need history (set MONITORING_DB)."
    : "the app started then.";
  return "Showing the last " + fmtSpan(response.covered_s) + " of the " + windowName + " window: " + reason;
}

/**
 * How many seconds a chart's time axis spans for a /timeseries-like answer: the whole window
 * when its points cover it (within two steps), else null, meaning "zoom to the points" (a
 * process younger than the window, an answer saying window_available: false, an unknown window).
 */
export function axisSeconds(response, windowName) {
  const length = windowSeconds(windowName);
  if (!response || response.window_available === false || length === undefined) return null;
  const points = Array.isArray(response.points) ? response.points : [];
  const step = response.step_s || 10;
  if (points.length && points[points.length - 1].t - points[0].t < length - 2 * step) return null;
  return length;
}

/** "in 15m", "since start" (the "all" window), or "in the last 49 s" when that is all a window covered. */
export function coveredText(response, windowName) {
  if (response && response.window_available === false && isNum(response.covered_s)) {
    return "in the last " + fmtSpan(response.covered_s);
  }
  return windowName === "all" ? "since start" : "in " + windowName;
}
