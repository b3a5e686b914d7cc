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
 * The view and endpoint a location hash names: "#endpoints/GET%20%2Fusers" is
 * {view: "endpoints", detail: "GET /users"}. An unknown view is the first of `views`; a detail
 * only exists for "endpoints", and only as "METHOD route" (a bad escape or no method is none).
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
  return { view, detail };
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
