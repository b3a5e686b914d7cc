/* The week view (#heatmap): requests, errors or p95 per hour of day and day, over 7 days, in the
 * browser's time zone. Each cell carries its value as text (hidden) and in its title.
 */

import { fmtCount, fmtMs, plural } from "../format.js";
import { heatRows } from "../insights.js";
import { api } from "../ui/api.js";
import { $, clear, el, emptyState } from "../ui/dom.js";
import { state } from "../ui/state.js";

const LEVELS = 5;

function zone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export function load(gen) {
  const params = { window: "7d", metric: state.heatMetric || "requests", tz: zone() };
  return api("/heatmap", params)
    .catch(() => api("/heatmap", { ...params, tz: "UTC" })) // a zone the server does not know
    .then((data) => {
      if (gen !== state.generation) return;
      state.note = "";
      state.rerender = () => render(data);
      state.rerender();
    });
}

export function bind(refresh) {
  const buttons = document.querySelectorAll("#view-heatmap [data-metric]");
  for (const button of buttons) {
    button.addEventListener("click", () => {
      state.heatMetric = button.getAttribute("data-metric");
      for (const b of buttons) b.setAttribute("aria-pressed", b === button ? "true" : "false");
      refresh();
    });
  }
}

function show(value, metric) {
  if (value === null) return "";
  return metric === "p95" ? fmtMs(value) : fmtCount(value);
}

function render(data) {
  const metric = data.metric || "requests";
  const rows = heatRows(data, LEVELS);
  const table = clear($("heatmap-table"));
  const head = el("thead");
  const headRow = el("tr");
  headRow.appendChild(el("th", "heat-day", "Day"));
  for (let h = 0; h < 24; h++) {
    const th = el("th", "heat-hour", h % 3 === 0 ? String(h) : "");
    th.title = String(h).padStart(2, "0") + ":00";
    headRow.appendChild(th);
  }
  head.appendChild(headRow);
  table.appendChild(head);
  const body = el("tbody");
  let any = false;
  for (const row of rows) {
    const tr = el("tr");
    tr.appendChild(el("th", "heat-day", row.weekday + " " + row.day.slice(5)));
    for (const cell of row.hours) {
      const td = el("td", "heat-cell heat-" + cell.level);
      const text = show(cell.value, metric);
      td.title = row.day + " " + String(cell.hour).padStart(2, "0") + ":00 — " + (text || "no requests");
      td.appendChild(el("span", "visually-hidden", text));
      if (cell.value !== null) any = true;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  table.appendChild(body);
  const label = metric === "p95" ? "p95 latency" : metric === "errors" ? "failed requests" : "requests";
  $("heatmap-summary").textContent =
    label + " per hour · " + plural(rows.length, "day") + " · time zone " + String(data.timezone || "UTC") +
    (data.max !== null && data.max !== undefined ? " · darkest: " + show(data.max, metric) : "");
  const empty = $("heatmap-empty");
  empty.hidden = any;
  if (!any) {
    clear(empty).appendChild(
      emptyState("No requests in the last 7 days.", "With a history file (MONITORING_DB) the week survives restarts."),
    );
  }
}
