/* The page's frame: the hash router, the refresh loop (one generation per load: an answer for
 * an older one is dropped), the banner, the status line and the top bar's controls.
 */

import { fmtClock, formatInterval } from "../format.js";
import { chooseWindow } from "../windows.js";
import { exportUrl, parseHash } from "../urls.js";
import * as alerts from "../views/alerts.js";
import * as custom from "../views/custom.js";
import * as endpoints from "../views/endpoints.js";
import * as errors from "../views/errors.js";
import * as heatmap from "../views/heatmap.js";
import { loadLinks } from "../views/links.js";
import * as overview from "../views/overview.js";
import * as system from "../views/system.js";
import * as traces from "../views/traces.js";
import * as users from "../views/users.js";
import * as versions from "../views/versions.js";
import { AuthRedirect } from "./api.js";
import { hideTooltip } from "./chart.js";
import { API, REFRESH_S } from "./config.js";
import { $, clear, debounce, el } from "./dom.js";
import { state } from "./state.js";

/** The views in the order of the tabs; the first is the default route. */
const VIEWS = { overview, endpoints, system, traces, errors, alerts, custom, versions, users, heatmap };
const NAMES = Object.keys(VIEWS);
const WINDOW_KEY = "otel_monitor.window";

function showView() {
  const route = parseHash(window.location.hash, NAMES);
  const changedView = route.view !== state.view;
  const changedTrace = route.traceId !== state.traceId;
  state.view = route.view;
  state.detail = route.detail;
  state.traceId = route.traceId;
  if (changedTrace || changedView) {
    state.traceShown = null;
    state.openSpans = {};
  }
  hideTooltip();
  for (const v of NAMES) {
    $("view-" + v).hidden = v !== state.view;
    const tab = document.querySelector('.tabs a[data-tab="' + v + '"]');
    if (!tab) continue;
    if (v === state.view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (state.view === "endpoints") {
    $("endpoint-detail").hidden = !state.detail;
    $("endpoint-list").hidden = Boolean(state.detail);
    if (state.detail) clear($("endpoint-detail")).appendChild(el("div", "muted loading", "Loading…"));
  }
  if (state.view === "traces") {
    $("trace-detail").hidden = !state.traceId;
    $("trace-list").hidden = Boolean(state.traceId);
    if (state.traceId && changedTrace) clear($("trace-detail")).appendChild(el("div", "muted loading", "Loading…"));
  }
  if (changedView || changedTrace) window.scrollTo(0, 0);
  refresh();
}

function setBanner(text, kind) {
  const banner = $("banner");
  if (!text) {
    banner.hidden = true;
    return;
  }
  banner.textContent = text;
  banner.className = "banner" + (kind ? " " + kind : "");
  banner.hidden = false;
}

function updateStatusLine() {
  const updated = $("updated");
  const when = state.lastUpdate ? "updated " + fmtClock(state.lastUpdate / 1000, true) : "loading…";
  updated.textContent = (state.paused ? "Paused · " : "Live · every " + formatInterval(REFRESH_S) + " · ") + when;
  updated.className = "updated" + (state.paused ? " paused" : "");
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = null;
  if (!state.paused && !document.hidden) state.timer = setTimeout(refresh, REFRESH_S * 1000);
}

export function refresh() {
  clearTimeout(state.timer);
  const gen = ++state.generation;
  const view = state.view;
  document.body.classList.add("is-loading");
  return VIEWS[view]
    .load(gen)
    .then(() => {
      if (gen !== state.generation) return;
      state.lastUpdate = Date.now();
      setBanner(state.note, "info");
      $("view-" + view).dataset.loaded = String(gen);
    })
    .catch((err) => {
      if (err instanceof AuthRedirect || gen !== state.generation) return;
      const reason = err && err.message ? err.message : "network error";
      setBanner("Could not load the data (" + reason + "). Retrying in " + formatInterval(REFRESH_S) + ".");
    })
    .then(() => {
      if (gen !== state.generation) return;
      document.body.classList.remove("is-loading");
      updateStatusLine();
      schedule();
    });
}

function setWindow(wanted) {
  const select = $("window-select");
  const w = chooseWindow(wanted, Array.from(select.options, (o) => o.value));
  if (w === null) return;
  state.window = w;
  select.value = w;
  try {
    window.localStorage.setItem(WINDOW_KEY, w);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
  $("export-csv").href = exportUrl(API, "csv", w);
  $("export-json").href = exportUrl(API, "json", w);
}

function setPaused(paused) {
  state.paused = paused;
  const button = $("pause-button");
  button.textContent = paused ? "Resume" : "Pause";
  button.setAttribute("aria-pressed", paused ? "true" : "false");
  updateStatusLine();
  if (paused) {
    clearTimeout(state.timer);
    state.timer = null;
  } else {
    refresh();
  }
}

export function start() {
  let stored = null;
  try {
    stored = window.localStorage.getItem(WINDOW_KEY);
  } catch {
    stored = null;
  }
  setWindow(stored || "15m");

  $("window-select").addEventListener("change", (event) => {
    hideTooltip();
    setWindow(event.target.value);
    refresh();
  });
  $("pause-button").addEventListener("click", () => setPaused(!state.paused));
  $("refresh-button").addEventListener("click", () => refresh());
  for (const view of Object.values(VIEWS)) if (view.bind) view.bind(refresh);

  window.addEventListener("hashchange", showView);
  window.addEventListener(
    "resize",
    debounce(() => {
      hideTooltip();
      if (state.rerender) state.rerender();
    }, 150),
  );
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(state.timer);
      state.timer = null;
    } else if (!state.paused) {
      refresh();
    }
  });

  state.view = null;
  showView();
  loadLinks();
}
