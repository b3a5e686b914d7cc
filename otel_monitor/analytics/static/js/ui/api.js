/* The analytics JSON API (docs/analytics-api.md): fetch with same-origin credentials; a 401
 * sends the browser to the login page once, however many fetches got it.
 *
 * Fleet mode (FLEET, analytics_source=prometheus) is a parameter of this module, not a patched
 * window.fetch: the health badge asks for the fleet's health (a bare /health stays the answering
 * instance's, for load balancers), and an endpoint's 503 from Prometheus is announced with a
 * FLEET_ERROR event on window (fleet.js shows it).
 */

import { API, FLEET, LOGIN_URL } from "./config.js";

/** The event fleet.js listens for: ``detail`` is Prometheus' error message. */
export const FLEET_ERROR = "otel-monitor:fleet-error";

function fleetParams(path, params) {
  if (!FLEET || path !== "/health" || (params && "scope" in params)) return params;
  return { ...(params || {}), scope: "fleet" };
}

function announceFleetError(path, response) {
  if (!FLEET || response.status !== 503 || path === "/health") return;
  response.clone().json().then((body) => {
    if (body && body.source === "prometheus") window.dispatchEvent(new CustomEvent(FLEET_ERROR, { detail: body.error }));
  }, () => {});
}

export class AuthRedirect extends Error {
  constructor() {
    super("authentication needed");
  }
}

let redirecting = false;

export function api(path, params) {
  const query = new URLSearchParams(fleetParams(path, params) || {}).toString();
  return fetch(API + path + (query ? "?" + query : ""), {
    credentials: "same-origin",
    cache: "no-store",
    // The marker makes the server answer an ended session with a challenge browsers do not
    // show a password dialog for (see dashboard.py): the page handles the 401 itself.
    headers: { "Accept": "application/json", "X-Requested-With": "otel-monitor-dashboard" },
  }).then((response) => {
    announceFleetError(path, response);
    if (response.status === 401) {
      if (!redirecting) {
        redirecting = true;
        window.location.assign(LOGIN_URL);
      }
      throw new AuthRedirect();
    }
    // /health answers 503 when unhealthy: that is data, not an error.
    if (response.ok || (response.status === 503 && path === "/health")) return response.json();
    if (response.status === 429) throw new Error("too many requests; waiting before the next refresh");
    throw new Error(path + " answered HTTP " + response.status);
  });
}

/** A state-changing JSON request (POST, DELETE) with the page's CSRF token (docs/analytics-api.md). */
export function apiSend(method, path, body) {
  const field = document.querySelector('input[name="csrf_token"]');
  const headers = { "Accept": "application/json", "X-Requested-With": "otel-monitor-dashboard" };
  if (field && field.value) headers["X-CSRF-Token"] = field.value;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(API + path, {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then((response) => {
    if (response.status === 401) {
      if (!redirecting) {
        redirecting = true;
        window.location.assign(LOGIN_URL);
      }
      throw new AuthRedirect();
    }
    return response.json().then((data) => {
      if (!response.ok) throw new Error((data && data.error) || path + " answered HTTP " + response.status);
      return data;
    });
  });
}
