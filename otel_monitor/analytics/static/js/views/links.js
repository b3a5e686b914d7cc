/* The footer's links to the other dashboards (Grafana, Prometheus, Jaeger), loaded once. */

import { isSamePage, safeHttpUrl } from "../urls.js";
import { api } from "../ui/api.js";
import { $, clear, el } from "../ui/dom.js";

export function loadLinks() {
  return api("/dashboard")
    .then((data) => {
      const box = clear($("links"));
      const here = window.location;
      for (const d of Array.isArray(data.dashboards) ? data.dashboards : []) {
        const href = safeHttpUrl(d.url, here.href);
        if (!href || isSamePage(href, here.origin, here.pathname)) continue;
        const a = el("a", null, d.name);
        a.href = href;
        a.rel = "noopener noreferrer";
        if (new URL(href).origin !== here.origin) a.target = "_blank";
        box.appendChild(a);
      }
    })
    .catch(() => {
      /* optional: the page works without them */
    });
}
