/* What the page shows now (view, window, filters, the last data) and the window helpers every
 * view shares. One mutable object: the router writes it, the views read it.
 */

import { axisSeconds, coveredText as windowCovered, windowNote } from "../windows.js";
import { HISTORY } from "./config.js";

export const state = {
  view: null,
  detail: null, // "METHOD route" of the endpoint shown in detail, or null
  window: "15m",
  paused: false,
  timer: null,
  generation: 0,
  lastUpdate: null,
  note: "", // the banner's "window not covered" text for the view just loaded
  sort: { key: "count", dir: "desc" },
  filter: "",
  method: "",
  traceKind: "all",
  traceId: null, // trace shown as a waterfall (#traces/<32 hex>), or null
  traceShown: null, // the trace id the waterfall was drawn for
  openSpans: {}, // span id -> its attributes panel is open
  customFilter: "",
  endpoints: null, // last /endpoints + /timeseries for the table (re-sorted without refetch)
  custom: null,
  customSeries: null, // last /metrics/series (the custom instruments over the window)
  rerender: null, // redraws the current view from the last data (on resize)
};

/** Say so in the banner when a window covers less than its length (a young process, short history). */
export function noteWindow(response) {
  const text = windowNote(response, state.window, HISTORY);
  state.note = text ? text + " The charts' time axis is zoomed to that." : "";
}

/** The time axis' length in seconds for an answer over the current window (null: zoom to its points). */
export function axisWindow(response) {
  return axisSeconds(response, state.window);
}

/** "in 15m", or "in the last 49 s" when that is all the current window covered. */
export function coveredText(response) {
  return windowCovered(response, state.window);
}

export const NO_REQUESTS = "No requests yet — send some traffic to your app.";
