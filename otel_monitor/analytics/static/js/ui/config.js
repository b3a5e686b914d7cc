/* The page's settings, from the data-* attributes the server renders on <body>. */

const data = document.body.dataset;

export const API = data.api || "";
export const LOGIN_URL = data.loginUrl || API + "/login";
export const REFRESH_S = Math.max(1, parseFloat(data.refreshS) || 30);
export const HISTORY = data.history === "true";
/** analytics_source=prometheus: /health asks for the fleet, and Prometheus failures are announced. */
export const FLEET = data.fleet === "true";
export const SLOW_MS = data.slowMs ? parseFloat(data.slowMs) : null;
