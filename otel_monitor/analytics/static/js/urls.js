/* URLs the dashboard builds or follows: the hash routes, links from the API, export links.
 * Pure, no DOM: the page passes window.location's parts in.
 */

import { endpointKey } from "./series.js";

/**
 * `text` as an absolute URL when it is http: or https: (resolved against `base`), else null: a
 * link from the API (a trace link, a Grafana URL) never becomes javascript:, data: or file:.
 */
export function safeHttpUrl(text, base) {
  try {
    const url = new URL(String(text), base);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The view, endpoint and trace a location hash names: "#endpoints/GET%20%2Fusers" is
 * {view: "endpoints", detail: "GET /users", traceId: null}. An unknown view is the first of
 * `views`; a detail only exists for "endpoints", and only as "METHOD route" (a bad escape or no
 * method is none); a traceId only for "traces", as 32 hex digits (lower-cased).
 */
export function parseHash(hash, views) {
  const text = String(hash || "").replace(/^#\/?/, "");
  const slash = text.indexOf("/");
  let view = slash === -1 ? text : text.slice(0, slash);
  const arg = slash === -1 ? null : text.slice(slash + 1);
  if (!views.includes(view)) view = views[0];
  let detail = null;
  if (view === "endpoints" && arg) {
    try {
      detail = decodeURIComponent(arg);
    } catch {
      detail = null;
    }
    if (detail && detail.indexOf(" ") <= 0) detail = null;
  }
  const traceId = view === "traces" && arg && TRACE_ID.test(arg) ? arg.toLowerCase() : null;
  return { view, detail, traceId };
}

const TRACE_ID = /^[0-9a-fA-F]{32}$/;

/** The hash that opens a trace's waterfall. */
export function traceHref(id) {
  return "#traces/" + encodeURIComponent(String(id || ""));
}

/** The hash that opens an endpoint's detail. */
export function endpointHash(method, route) {
  return "#endpoints/" + encodeURIComponent(endpointKey(method, route));
}

/** The export link for a format ("csv" or "json") and window, under the API prefix. */
export function exportUrl(api, format, windowName) {
  return api + "/export?format=" + encodeURIComponent(format) + "&window=" + encodeURIComponent(windowName);
}

/** Whether `href` is the page itself (`origin` + `pathname`), a trailing slash aside. */
export function isSamePage(href, origin, pathname) {
  return String(href).replace(/\/$/, "") === (origin + pathname).replace(/\/$/, "");
}
