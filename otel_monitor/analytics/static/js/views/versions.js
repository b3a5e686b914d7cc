/* The versions view (#versions): the app's versions over the window, the regressions between
 * consecutive versions with their tests, and every endpoint of two chosen versions side by side.
 */

import { fmtAgo, fmtClock, fmtCount, fmtDay, fmtMs, fmtPct, plural } from "../format.js";
import { compareVersions, defaultPair, pValueText, regressionFigures, shortLabel } from "../insights.js";
import { api } from "../ui/api.js";
import { HISTORY } from "../ui/config.js";
import { $, clear, el, emptyState, labelled, methodBadge } from "../ui/dom.js";
import { state } from "../ui/state.js";

/** The versions compared in the endpoints table (null: the default pair). */
const chosen = { from: null, to: null };

export function load(gen) {
  return api("/versions", { window: state.window }).then((data) => {
    if (gen !== state.generation) return;
    state.note = "";
    state.rerender = () => render(data);
    state.rerender();
  });
}

export function bind() {
  for (const id of ["compare-from", "compare-to"]) {
    $(id).addEventListener("change", () => {
      chosen.from = $("compare-from").value;
      chosen.to = $("compare-to").value;
      if (state.rerender) state.rerender();
    });
  }
}

function render(data) {
  const versions = Array.isArray(data.versions) ? data.versions : [];
  renderRegressions(Array.isArray(data.regressions) ? data.regressions : [], data);
  renderTable(versions);
  renderCompare(versions);
  const count = $("versions-count");
  const older = versions.length === 1 && HISTORY ? " · a longer window (top right) reaches older versions" : "";
  count.textContent = versions.length
    ? plural(versions.length, "version") +
      " in " +
      state.window +
      (data.source === "prometheus" ? " · from Prometheus" : "") +
      older
    : "";
}

function renderRegressions(regressions, data) {
  const box = clear($("versions-regressions"));
  box.appendChild(el("h2", "card-title", "Regressions"));
  if (!regressions.length) {
    const criteria = data.criteria || {};
    box.appendChild(
      emptyState(
        "No endpoint got slower or failed more often from one version to the next.",
        "Each endpoint with at least " +
          (criteria.min_requests || 30) +
          " requests in both versions is compared: a one-sided Mann–Whitney U test on its latency histograms and a two-proportion test of its error rate, at " +
          (criteria.alpha || 0.01) +
          " across all endpoints, and only a large enough change counts.",
      ),
    );
    return;
  }
  const list = el("ul", "regression-list");
  for (const r of regressions) list.appendChild(regressionItem(r));
  box.appendChild(list);
}

function regressionItem(r) {
  const item = el("li", "regression");
  const head = el("div", "regression-head");
  head.appendChild(methodBadge(r.method));
  head.appendChild(el("span", "route-text", r.route));
  head.appendChild(el("span", "kind-badge kind-failed", r.metric === "error_rate" ? "error rate" : "latency"));
  item.appendChild(head);
  const figures = regressionFigures(r);
  const show = (v) => (figures.unit === "%" ? fmtPct(v) : fmtMs(v));
  const what = el("div", "regression-what");
  what.appendChild(el("span", "version-name", r.from_version));
  what.appendChild(el("span", "muted", " → "));
  what.appendChild(el("span", "version-name", r.to_version));
  what.appendChild(el("span", "", ": " + figures.label + " " + show(figures.from) + " → "));
  what.appendChild(el("strong", "bad-text", show(figures.to)));
  item.appendChild(what);
  const test = r.test || {};
  const requests = r.requests || {};
  item.appendChild(
    el(
      "div",
      "muted small",
      String(test.name || "test") +
        ", " +
        pValueText(test.p_value) +
        " (level " +
        (typeof test.level === "number" ? test.level.toPrecision(2) : "—") +
        "), effect " +
        String(test.effect_size) +
        " (" +
        String(test.effect_size_name || "") +
        ") · " +
        fmtCount(requests.from) +
        " vs " +
        fmtCount(requests.to) +
        " requests",
    ),
  );
  return item;
}

function renderTable(versions) {
  const body = clear($("versions-rows"));
  $("versions-table").hidden = !versions.length;
  const empty = $("versions-empty");
  empty.hidden = Boolean(versions.length);
  if (!versions.length) {
    clear(empty).appendChild(
      emptyState(
        "No requests in this window.",
        "Each request is counted for the app's version: the service_version setting, service.version in OTEL_RESOURCE_ATTRIBUTES, or the checkout's git commit.",
      ),
    );
    return;
  }
  for (const v of [...versions].reverse()) {
    const tr = el("tr");
    const name = labelled("td", "", "Version");
    name.appendChild(el("span", "version-name", v.version));
    if (v.current) name.appendChild(el("span", "kind-badge current-badge", "running"));
    tr.appendChild(name);
    const first = labelled("td", "nowrap opt", "First seen", v.first_seen ? fmtDay(v.first_seen) + " " + fmtClock(v.first_seen) : "—");
    first.title = v.first_seen ? fmtAgo(v.first_seen) : "";
    tr.appendChild(first);
    const last = labelled("td", "nowrap opt", "Last seen", v.last_seen ? fmtAgo(v.last_seen) : "—");
    tr.appendChild(last);
    tr.appendChild(labelled("td", "num", "Requests", fmtCount(v.requests)));
    tr.appendChild(labelled("td", "num", "Errors", fmtPct(v.error_rate_pct)));
    tr.appendChild(labelled("td", "num", "p50", fmtMs(v.p50_ms)));
    tr.appendChild(labelled("td", "num", "p95", fmtMs(v.p95_ms)));
    body.appendChild(tr);
  }
}

function fillSelect(select, names, value) {
  clear(select);
  for (const name of names) {
    const option = el("option", "", name);
    option.value = name;
    select.appendChild(option);
  }
  select.value = value;
}

function renderCompare(versions) {
  const names = versions.map((v) => String(v.version));
  const section = $("versions-compare");
  section.hidden = !names.length;
  if (!names.length) return;
  const [defaultFrom, defaultTo] = defaultPair(versions);
  const from = names.includes(chosen.from) ? chosen.from : defaultFrom;
  const to = names.includes(chosen.to) ? chosen.to : defaultTo;
  fillSelect($("compare-from"), names, from);
  fillSelect($("compare-to"), names, to);
  const head = clear($("compare-head"));
  const headRow = el("tr");
  const a = shortLabel(from);
  const b = shortLabel(to);
  const columns = [
    ["Endpoint", "col-route", null],
    ["Requests · " + a, "num opt", from],
    ["Requests · " + b, "num opt", to],
    ["p95 · " + a, "num", from],
    ["p95 · " + b, "num", to],
    ["p95 change", "num", null],
    ["Errors · " + a, "num opt", from],
    ["Errors · " + b, "num opt", to],
  ];
  for (const [text, className, version] of columns) {
    const th = el("th", className, text);
    if (version !== null) th.title = "Version " + version; // the whole name (the header may cut it)
    headRow.appendChild(th);
  }
  head.appendChild(headRow);
  const body = clear($("compare-rows"));
  for (const row of compareVersions(versions, from, to)) {
    const tr = el("tr");
    const route = labelled("td", "col-route", "Endpoint");
    route.appendChild(methodBadge(row.method));
    route.appendChild(el("span", "route-text", row.route));
    tr.appendChild(route);
    tr.appendChild(labelled("td", "num opt", "Requests " + a, row.from ? fmtCount(row.from.requests) : "—"));
    tr.appendChild(labelled("td", "num opt", "Requests " + b, row.to ? fmtCount(row.to.requests) : "—"));
    tr.appendChild(labelled("td", "num", "p95 " + a, row.from ? fmtMs(row.from.p95_ms) : "—"));
    tr.appendChild(labelled("td", "num", "p95 " + b, row.to ? fmtMs(row.to.p95_ms) : "—"));
    const change = row.p95ChangePct;
    const cell = labelled("td", "num" + (change !== null && change >= 10 ? " bad" : ""), "p95 change");
    cell.textContent = change === null ? "—" : (change > 0 ? "+" : "") + fmtPct(change);
    tr.appendChild(cell);
    tr.appendChild(labelled("td", "num opt", "Errors " + a, row.from ? fmtPct(row.from.error_rate_pct) : "—"));
    tr.appendChild(labelled("td", "num opt", "Errors " + b, row.to ? fmtPct(row.to.error_rate_pct) : "—"));
    body.appendChild(tr);
  }
}
