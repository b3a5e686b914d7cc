/* otel_monitor built-in dashboard: the entry module (<script type="module">).
 *
 * Reads the analytics JSON API (docs/analytics-api.md) under the prefix given by the page's
 * data-api attribute, and draws everything itself: tables with textContent, charts as hand-made
 * SVG. The code is native ES modules, no build step (docs/dashboard-modules.md):
 *   js/*.js        pure functions (format, scale, series, windows, urls), specified by tests/js;
 *   js/ui/*.js     the DOM helpers, the API layer, the charts, the state and the router;
 *   js/views/*.js  one module per view (overview, endpoints, system, traces, trace, errors, custom).
 * Rules kept throughout: data never goes through innerHTML; no inline style attributes (the CSP
 * forbids them; positions and widths go through the CSSOM); fetch with same-origin credentials and
 * a 401 sends the browser to the login page.
 */

import { start } from "./js/ui/app.js";

// A module runs after the document is parsed (modules are deferred), so the DOM is there.
start();
