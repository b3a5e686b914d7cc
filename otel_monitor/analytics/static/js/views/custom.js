/* The custom metrics view (#custom): every instrument the app made itself, its latest points
 * per attribute set and a chart over the window.
 */

import { axisNumber, DASH, fixed, fmtCount, fmtUnit, isNum, unitLabel, attributesText } from "../format.js";
import { filterMetrics, histogramMean, isCustom } from "../series.js";
import { api } from "../ui/api.js";
import { chartCard, drawChart, hideTooltip } from "../ui/chart.js";
import { $, clear, debounce, el, emptyState } from "../ui/dom.js";
import { axisWindow, noteWindow, state } from "../ui/state.js";

const MAX_POINTS_SHOWN = 50;

export function load(gen) {
  return Promise.all([api("/metrics"), api("/metrics/series", { window: state.window })]).then(([data, series]) => {
    if (gen !== state.generation) return;
    state.customSeries = series || {};
    noteWindow(state.customSeries);
    state.custom = (Array.isArray(data.metrics) ? data.metrics : []).filter((m) => isCustom(m.name));
    state.rerender = render;
    render();
  });
}

export function bind() {
  $("custom-filter").addEventListener(
    "input",
    debounce(() => {
      state.customFilter = $("custom-filter").value.trim();
      render();
    }, 120),
  );
}

/** The chart of one custom instrument over the window: a counter's rate, a gauge's value. */
function chartSpec(m) {
  const all = state.customSeries && state.customSeries.series;
  const s = all && Object.prototype.hasOwnProperty.call(all, m.name) ? all[m.name] : null;
  if (!s || !Array.isArray(s.t)) return null;
  const perSecond = s.label === "per second";
  const fmt = perSecond ? (v) => (isNum(v) ? fixed(v, v < 10 ? 2 : 0) + "/s" : DASH) : (v) => fmtUnit(v, m.unit);
  return {
    title: m.type === "histogram" ? "Observations per second" : perSecond ? "Per second" : "Value",
    times: s.t,
    series: [{ label: s.label, values: s.values, cls: "c2" }],
    fmt,
    axisFmt: axisNumber,
    area: true,
    height: 120,
    windowS: axisWindow(state.customSeries),
    step: state.customSeries.step_s || 10,
    empty: "Two samples (10 s apart) are needed for a chart.",
  };
}

function pointsTable(m, points) {
  const table = el("table", "data-table compact");
  const thead = el("thead");
  const hr = el("tr");
  hr.appendChild(el("th", null, "Attributes"));
  const histogram = m.type === "histogram";
  for (const name of histogram ? ["Count", "Average", "Max"] : ["Value"]) hr.appendChild(el("th", "num", name));
  thead.appendChild(hr);
  table.appendChild(thead);
  const tbody = el("tbody");
  for (const p of points.slice(0, MAX_POINTS_SHOWN)) {
    const tr = el("tr");
    tr.appendChild(el("td", "attrs", attributesText(p.attributes)));
    if (histogram) {
      tr.appendChild(el("td", "num", fmtCount(p.count)));
      tr.appendChild(el("td", "num strong", fmtUnit(histogramMean(p), m.unit)));
      tr.appendChild(el("td", "num", fmtUnit(p.max, m.unit)));
    } else {
      tr.appendChild(el("td", "num strong", fmtUnit(p.value, m.unit)));
    }
    tbody.appendChild(tr);
  }
  table.appendChild(tbody);
  return table;
}

function metricCard(m, charts) {
  const card = el("div", "card metric-card");
  const head = el("div", "metric-head");
  head.appendChild(el("h2", "metric-name", m.name));
  head.appendChild(el("span", "type-badge", m.type || "metric"));
  card.appendChild(head);
  const unit = unitLabel(m.unit);
  const desc = [m.description, unit ? "unit: " + unit : ""].filter(Boolean).join(" · ");
  if (desc) card.appendChild(el("div", "metric-desc muted", desc));
  const points = Array.isArray(m.points) ? m.points : [];
  const spec = chartSpec(m);
  if (spec) {
    const chart = chartCard(spec);
    chart.classList.add("metric-chart");
    card.appendChild(chart);
    charts.push(chart);
  }
  if (points.length) card.appendChild(pointsTable(m, points));
  else card.appendChild(emptyState("No data points yet."));
  if (points.length > MAX_POINTS_SHOWN) {
    const more = points.length - MAX_POINTS_SHOWN;
    card.appendChild(el("div", "muted small", "and " + more + " more attribute sets (see /metrics)"));
  }
  return card;
}

function render() {
  const metrics = state.custom || [];
  const shown = filterMetrics(metrics, state.customFilter);
  const list = clear($("custom-list"));
  const frag = document.createDocumentFragment();
  const charts = [];
  hideTooltip();
  for (const m of shown) frag.appendChild(metricCard(m, charts));
  list.appendChild(frag);
  charts.forEach(drawChart);
  $("custom-count").textContent = metrics.length
    ? shown.length === metrics.length
      ? metrics.length + " instruments"
      : shown.length + " of " + metrics.length + " instruments"
    : "";
  const empty = $("custom-empty");
  if (!metrics.length) {
    clear(empty).appendChild(
      emptyState(
        "No custom metrics yet.",
        'Create one in your app: orders = monitor.counter("shop.orders.created", unit="{order}"), then orders.add(1). ' +
          "Instruments whose names do not start with http., system., process. or otel. show up here.",
      ),
    );
    empty.hidden = false;
  } else if (!shown.length) {
    clear(empty).appendChild(emptyState("No instrument matches this filter."));
    empty.hidden = false;
  } else {
    empty.hidden = true;
  }
}
