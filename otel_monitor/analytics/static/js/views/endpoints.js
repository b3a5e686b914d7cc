/* The endpoints (#endpoints): the sortable, filterable route table, and one route's detail
 * (#endpoints/<METHOD route>) with its charts and status codes.
 */

import { axisMs, axisNumber, axisPct, fmtAgo, fmtCount, fmtMs, fmtPct, fmtRps, isNum, plural } from "../format.js";
import {
  column,
  compare,
  endpointKey,
  filterEndpoints,
  fullSteps,
  methodChoices,
  routeCountText,
  splitEndpointKey,
  statusBreakdown,
  statusFamily,
} from "../series.js";
import { endpointHash } from "../urls.js";
import { api } from "../ui/api.js";
import { kpiCard, renderCharts, sparkline } from "../ui/chart.js";
import { $, clear, debounce, el, emptyState, methodBadge } from "../ui/dom.js";
import { flameCard } from "../ui/flame.js";
import { axisWindow, NO_REQUESTS, noteWindow, state } from "../ui/state.js";

export function load(gen) {
  const calls = [api("/endpoints", { window: state.window, limit: 1000 }), api("/timeseries", { window: state.window })];
  if (state.detail) {
    const { method, route } = splitEndpointKey(state.detail);
    calls.push(api("/timeseries", { window: state.window, method, route }));
    // The route's profile; an older server without /profiles leaves the card out.
    calls.push(api("/profiles", { window: state.window, method, route }).catch(() => null));
  }
  return Promise.all(calls).then(([list, ts, routeTs, profile]) => {
    if (gen !== state.generation) return;
    noteWindow(list);
    state.endpoints = { list: Array.isArray(list.endpoints) ? list.endpoints : [], ts };
    state.rerender = () => {
      if (state.detail && routeTs) renderDetail(state.detail, routeTs, profile);
      else renderTable();
    };
    state.rerender();
  });
}

/** The table's controls: sorting headers, the route filter, the method choice, row clicks. */
export function bind() {
  // A click on a header sorts by it (numbers descending first), a second click flips.
  for (const button of document.querySelectorAll("#endpoint-table th[data-sort] button")) {
    button.addEventListener("click", () => {
      const key = button.parentNode.getAttribute("data-sort");
      if (state.sort.key === key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
      else state.sort = { key, dir: key === "route" ? "asc" : "desc" };
      renderTable();
    });
  }
  $("endpoint-filter").addEventListener(
    "input",
    debounce(() => {
      state.filter = $("endpoint-filter").value.trim();
      renderTable();
    }, 120),
  );
  $("endpoint-method").addEventListener("change", (event) => {
    state.method = event.target.value;
    renderTable();
  });
  // A click anywhere on a row opens that route (the route cell is a real link for keyboards).
  $("endpoint-rows").addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    const tr = event.target.closest("tr");
    if (tr && tr.dataset.key) window.location.hash = "#endpoints/" + encodeURIComponent(tr.dataset.key);
  });
}

function renderMethodChoices(list) {
  const select = $("endpoint-method");
  const choices = methodChoices(list, state.method);
  const current = Array.from(select.options, (o) => o.value).slice(1);
  if (current.join(" ") === choices.join(" ")) return; // unchanged: keep an open <select> open
  clear(select);
  const all = el("option", null, "All methods");
  all.value = "";
  select.appendChild(all);
  for (const m of choices) {
    const option = el("option", null, m);
    option.value = m;
    select.appendChild(option);
  }
  select.value = state.method;
}

function renderTable() {
  $("endpoint-detail").hidden = true;
  $("endpoint-list").hidden = false;
  const data = state.endpoints || { list: [], ts: {} };
  const routes = (data.ts && data.ts.routes) || {};
  renderMethodChoices(data.list);
  const rows = filterEndpoints(data.list, state.filter, state.method);
  rows.sort(compare(state.sort.key, state.sort.dir));

  for (const th of document.querySelectorAll("#endpoint-table th[data-sort]")) {
    const key = th.getAttribute("data-sort");
    const sorted = state.sort.dir === "asc" ? "ascending" : "descending";
    th.setAttribute("aria-sort", key === state.sort.key ? sorted : "none");
  }

  const frag = document.createDocumentFragment();
  for (const row of rows) frag.appendChild(endpointRow(row, routes));
  clear($("endpoint-rows")).appendChild(frag);
  $("endpoint-count").textContent = routeCountText(rows.length, data.list.length);

  const empty = $("endpoint-empty");
  if (!data.list.length) {
    clear(empty).appendChild(emptyState(NO_REQUESTS, "Every route of your app gets a row here after its first request."));
    empty.hidden = false;
  } else if (!rows.length) {
    clear(empty).appendChild(
      emptyState("No route matches this filter.", "Clear the filter to see all " + data.list.length + " routes."),
    );
    empty.hidden = false;
  } else {
    empty.hidden = true;
  }
  $("endpoint-table").hidden = !rows.length;
}

function endpointRow(e, routes) {
  const key = endpointKey(e.method, e.route);
  const tr = el("tr", "clickable");
  tr.dataset.key = key;
  const routeCell = el("td", "col-route");
  const link = el("a", "route-link");
  link.href = endpointHash(e.method, e.route);
  link.appendChild(methodBadge(e.method));
  const placeholder = e.route === "(unmatched)" || e.route === "(other)";
  link.appendChild(el("span", placeholder ? "route-text muted" : "route-text", e.route));
  routeCell.appendChild(link);
  tr.appendChild(routeCell);
  tr.appendChild(el("td", "num", fmtCount(e.count)));
  tr.appendChild(el("td", "num opt", fmtRps(e.rps)));
  tr.appendChild(el("td", "num" + (e.error_rate_pct > 0 ? " bad" : ""), fmtPct(e.error_rate_pct)));
  tr.appendChild(el("td", "num opt", fmtMs(e.p50_ms)));
  tr.appendChild(el("td", "num strong", fmtMs(e.p95_ms)));
  tr.appendChild(el("td", "num opt", fmtMs(e.p99_ms)));
  tr.appendChild(el("td", "num opt", fmtMs(e.max_ms)));
  const sparkCell = el("td", "col-spark opt");
  sparkCell.appendChild(sparkline(routes[key] || [], e.error_rate_pct >= 50 ? "c-err" : "c1", 96, 24));
  tr.appendChild(sparkCell);
  const seen = el("td", "num muted opt", fmtAgo(e.last_seen));
  if (isNum(e.last_seen)) seen.title = new Date(e.last_seen * 1000).toLocaleString();
  tr.appendChild(seen);
  return tr;
}

function renderDetail(key, ts, profile) {
  $("endpoint-list").hidden = true;
  const box = clear($("endpoint-detail"));
  box.hidden = false;
  const list = (state.endpoints && state.endpoints.list) || [];
  const e = list.find((row) => endpointKey(row.method, row.route) === key) || null;
  const { method, route } = splitEndpointKey(key);

  const head = el("div", "detail-head");
  const back = el("a", "back-link", "← All endpoints");
  back.href = "#endpoints";
  head.appendChild(back);
  const title = el("h2", "detail-title");
  title.appendChild(methodBadge(method));
  title.appendChild(el("span", "route-text", route));
  head.appendChild(title);
  box.appendChild(head);

  if (!e) {
    const card = el("div", "card");
    card.appendChild(
      emptyState(
        "No requests to this route in the last " + state.window + ".",
        "Pick a longer window, or go back to all endpoints.",
      ),
    );
    box.appendChild(card);
    return;
  }

  const kpis = el("div", "kpis");
  kpis.appendChild(kpiCard("Requests", fmtCount(e.count), fmtRps(e.rps)));
  kpis.appendChild(kpiCard("Error rate", fmtPct(e.error_rate_pct), plural(e.errors, "error")));
  kpis.appendChild(kpiCard("p95 latency", fmtMs(e.p95_ms), "p50 " + fmtMs(e.p50_ms) + " · p99 " + fmtMs(e.p99_ms)));
  kpis.appendChild(kpiCard("Max latency", fmtMs(e.max_ms), "avg " + fmtMs(e.avg_ms)));
  box.appendChild(kpis);

  const grid = el("div", "chart-grid");
  box.appendChild(grid);
  const points = fullSteps(ts);
  const common = {
    times: column(points, "t"),
    windowS: axisWindow(ts),
    step: ts.step_s || 10,
    empty: "No requests to this route in this window.",
  };
  renderCharts(grid, [
    {
      title: "Latency",
      series: [
        { label: "p95", values: column(points, "p95_ms"), cls: "c3", agg: "max" },
        { label: "average", values: column(points, "avg_ms"), cls: "c1" },
      ],
      fmt: fmtMs,
      axisFmt: axisMs,
      ...common,
    },
    {
      title: "Requests per second",
      series: [{ label: "req/s", values: column(points, "rps"), cls: "c1" }],
      fmt: fmtRps,
      axisFmt: axisNumber,
      area: true,
      ...common,
    },
    {
      title: "Error rate",
      series: [{ label: "errors", values: column(points, "error_rate_pct"), cls: "c-err" }],
      fmt: fmtPct,
      axisFmt: axisPct,
      area: true,
      minRange: 1,
      ...common,
    },
  ]);
  grid.appendChild(statusCard(e.status_codes));
  if (profile && profile.profiling) {
    const note = plural(profile.requests || 0, "slow request") + " (window " + state.window + ")";
    box.appendChild(flameCard(profile, "Where the time of slow requests went", note, "route:" + key));
  }
}

/** Status codes: a stacked bar plus a list, most frequent first. */
function statusCard(codes) {
  const { rows } = statusBreakdown(codes);
  const card = el("div", "card status-card");
  card.appendChild(el("h3", "card-title", "Status codes"));
  if (!rows.length) {
    card.appendChild(emptyState("No responses recorded."));
    return card;
  }
  const bar = el("div", "stacked");
  for (const r of rows) {
    const part = el("div", "stacked-part " + statusFamily(r.code));
    part.style.width = r.pct.toFixed(2) + "%";
    part.title = r.code + ": " + r.count;
    bar.appendChild(part);
  }
  card.appendChild(bar);
  const table = el("table", "data-table compact");
  const tbody = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    const codeCell = el("td");
    codeCell.appendChild(el("span", "code-badge " + statusFamily(r.code), r.code));
    tr.appendChild(codeCell);
    tr.appendChild(el("td", "num", fmtCount(r.count)));
    tr.appendChild(el("td", "num muted", fmtPct(r.pct)));
    tbody.appendChild(tr);
  }
  table.appendChild(tbody);
  card.appendChild(table);
  return card;
}
