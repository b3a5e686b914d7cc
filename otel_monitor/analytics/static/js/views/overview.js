/* The overview (#overview): health, the window's KPIs, the four charts, the ranked endpoints. */

import { axisMs, axisNumber, axisPct, fmtApdex, fmtCount, fmtMs, fmtPct, fmtRps, isNum, plural } from "../format.js";
import { column, fullSteps, totalRequests, windowStats } from "../series.js";
import { endpointHash } from "../urls.js";
import { api } from "../ui/api.js";
import { kpiCard, renderCharts } from "../ui/chart.js";
import { $, clear, el, emptyState, methodBadge } from "../ui/dom.js";
import { axisWindow, coveredText, NO_REQUESTS, noteWindow, state } from "../ui/state.js";
import { renderHealth, updateHealthBadge } from "./health.js";

export function load(gen) {
  const params = { window: state.window };
  return Promise.all([api("/health"), api("/performance", params), api("/timeseries", params)]).then(
    ([health, perf, ts]) => {
      if (gen !== state.generation) return;
      updateHealthBadge(health);
      noteWindow(perfWindow(perf) || ts);
      state.rerender = () => render(health, perf, ts);
      state.rerender();
    },
  );
}

function perfWindow(perf) {
  return perf && perf.windows && perf.windows[state.window] ? perf.windows[state.window] : null;
}

function render(health, perf, ts) {
  renderHealth($("overview-health"), health);
  const points = fullSteps(ts);
  const step = ts.step_s || 10;
  const stats = windowStats(perf, points, step, state.window);
  const latency = stats.latency || {};
  const kpis = clear($("overview-kpis"));
  const frag = document.createDocumentFragment();
  const covered = coveredText(perfWindow(perf) || ts);
  frag.appendChild(
    kpiCard(
      "Throughput",
      fmtRps(stats.rps),
      plural(stats.requests, "request") + " " + covered,
      column(points, "rps"),
      "c1",
    ),
  );
  frag.appendChild(
    kpiCard(
      "Error rate",
      fmtPct(stats.error_rate_pct),
      isNum(stats.errors) ? fmtCount(stats.errors) + " failed " + covered : "5xx and exceptions " + covered,
      column(points, "error_rate_pct"),
      "c-err",
    ),
  );
  frag.appendChild(
    kpiCard(
      "p95 latency",
      fmtMs(latency.p95_ms),
      isNum(latency.avg_ms)
        ? "avg " + fmtMs(latency.avg_ms) + " · p99 " + fmtMs(latency.p99_ms)
        : stats.approximate
          ? "approximate (from the time series)"
          : "95th percentile",
      column(points, "p95_ms"),
      "c3",
    ),
  );
  frag.appendChild(
    kpiCard("Apdex", fmtApdex(stats.apdex), "target T = " + fmtMs(perf && perf.apdex_t_ms), column(points, "apdex"), "c2"),
  );
  kpis.appendChild(frag);

  const charts = $("overview-charts");
  const lists = $("overview-lists");
  if (!totalRequests(points) && !(stats.requests > 0)) {
    clear(charts);
    const box = el("div", "card span-all");
    box.appendChild(
      emptyState(
        NO_REQUESTS,
        "Open a page of your app or call its API: requests to any of its routes show up here within seconds.",
      ),
    );
    charts.appendChild(box);
    clear(lists);
    return;
  }
  const common = { times: column(points, "t"), windowS: axisWindow(ts), step, empty: NO_REQUESTS };
  renderCharts(charts, [
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
      title: "Apdex",
      series: [{ label: "apdex", values: column(points, "apdex"), cls: "c2" }],
      fmt: fmtApdex,
      min: 0,
      max: 1,
      fixedMax: true,
      area: true,
      ...common,
    },
  ]);

  clear(lists);
  lists.appendChild(
    rankCard(
      "Slowest endpoints",
      perf && perf.slowest_endpoints,
      (e) => fmtMs(e.p95_ms) + " p95",
      (e) => plural(e.count, "request"),
      "No requests to rank in this window yet.",
    ),
  );
  lists.appendChild(
    rankCard(
      "Most failing endpoints",
      perf && perf.most_failing_endpoints,
      (e) => fmtPct(e.error_rate_pct),
      (e) => plural(e.errors, "error"),
      "No failed requests in this window.",
    ),
  );
}

function rankCard(title, items, main, sub, emptyText) {
  const card = el("div", "card rank-card");
  card.appendChild(el("h2", "card-title", title));
  const list = el("ol", "rank");
  for (const e of (items || []).slice(0, 5)) {
    const li = el("li");
    const link = el("a", "rank-route");
    link.href = endpointHash(e.method, e.route);
    link.appendChild(methodBadge(e.method));
    link.appendChild(el("span", "route-text", e.route));
    li.appendChild(link);
    const right = el("span", "rank-values");
    right.appendChild(el("span", "rank-main", main(e)));
    right.appendChild(el("span", "muted", sub(e)));
    li.appendChild(right);
    list.appendChild(li);
  }
  if (list.firstChild) card.appendChild(list);
  else card.appendChild(emptyState(emptyText));
  return card;
}
