/* otel_monitor dashboard: the fleet view (analytics_source=prometheus).
 *
 * Loaded before dashboard.js only when the analytics read Prometheus. The dashboard itself needs no
 * second code path (the JSON shapes are the same); this file adds what only a fleet has:
 *   - (the health badge's /health?scope=fleet and the 503 announcements are the dashboard's API
 *     module in fleet mode, js/ui/api.js; this file listens for its "otel-monitor:fleet-error" event);
 *   - a "Fleet" card above the overview: one row per instance Prometheus scrapes (up, requests,
 *     rate, errors, p95, CPU, memory), refreshed with the dashboard;
 *   - a clear state when Prometheus does not answer (the endpoints answer 503 with the reason);
 *   - a note on the traces view: recent traces are this instance's, the fleet's are in the trace backend.
 * Everything is built with textContent (never innerHTML): instance names come from Prometheus.
 */
(function () {
  "use strict";

  var lastError = null;

  window.addEventListener("otel-monitor:fleet-error", function (event) { showError(event.detail); });

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function num(v, digits) {
    return typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "–";
  }

  function card() {
    var existing = document.getElementById("fleet-card");
    if (existing) return existing;
    var overview = document.getElementById("view-overview");
    if (!overview) return null;
    var node = el("div", "card fleet-card");
    node.id = "fleet-card";
    overview.insertBefore(node, overview.firstChild);
    return node;
  }

  function showError(message) {
    lastError = message || "Prometheus did not answer";
    var node = card();
    if (!node) return;
    node.textContent = "";
    node.appendChild(el("h2", "card-title", "Fleet"));
    var p = el("p", "fleet-error", "Fleet data unavailable: " + lastError + ". Retrying with the next refresh.");
    p.setAttribute("role", "alert");
    node.appendChild(p);
    node.dataset.state = "error";
  }

  function render(data) {
    var node = card();
    if (!node) return;
    lastError = null;
    node.textContent = "";
    node.dataset.state = "ok";
    var title = el("h2", "card-title", "Fleet: " + data.instances.length + " instance" + (data.instances.length === 1 ? "" : "s"));
    node.appendChild(title);
    node.appendChild(el("p", "muted", "From Prometheus (" + data.selector + "), window " + data.window + "."));
    var table = el("table", "fleet-table");
    var head = el("tr");
    ["Instance", "Up", "Requests", "Req/s", "Errors", "Error rate", "p95", "CPU", "Memory"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    var thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var tbody = el("tbody");
    data.instances.forEach(function (row) {
      var tr = el("tr", row.up === false ? "fleet-down" : null);
      tr.dataset.instance = row.instance;
      tr.appendChild(el("td", "fleet-instance", row.instance));
      tr.appendChild(el("td", null, row.up === null ? "?" : row.up ? "up" : "down"));
      tr.appendChild(el("td", "num fleet-requests", row.requests));
      tr.appendChild(el("td", "num", num(row.rps, 2)));
      tr.appendChild(el("td", "num fleet-errors", row.errors));
      tr.appendChild(el("td", "num" + (row.error_rate_pct > 0 ? " bad" : ""), num(row.error_rate_pct, 1) + " %"));
      tr.appendChild(el("td", "num", num(row.latency && row.latency.p95_ms, 1) + " ms"));
      tr.appendChild(el("td", "num", num(row.cpu_pct, 0) + " %"));
      tr.appendChild(el("td", "num", num(row.memory_pct, 0) + " %"));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    node.appendChild(table);
    tracesNote(data.traces);
  }

  function tracesNote(traces) {
    var view = document.getElementById("view-traces");
    if (!view || !traces || document.getElementById("fleet-traces-note")) return;
    var note = el("p", "card muted", traces.note + " ");
    note.id = "fleet-traces-note";
    if (traces.trace_viewer_url && /^https?:\/\//.test(traces.trace_viewer_url)) {
      var link = el("a", null, "Open the trace viewer");
      link.href = traces.trace_viewer_url;
      link.rel = "noopener";
      note.appendChild(link);
    }
    view.insertBefore(note, view.firstChild);
  }

  function windowName() {
    var select = document.getElementById("window-select");
    return (select && select.value) || "5m";
  }

  function load() {
    var api = document.body.dataset.api || "";
    return window.fetch(api + "/instances?window=" + encodeURIComponent(windowName()), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Accept": "application/json", "X-Requested-With": "otel-monitor-dashboard" }
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.ok) render(body);
        else showError(body && body.error);
      });
    }).catch(function (err) { showError(err && err.message); });
  }

  function start() {
    // The page's footer describes the in-process source.
    var footer = document.querySelector("footer.footer span");
    if (footer) footer.textContent = "Data from Prometheus: every instance it scrapes for this service (per instance above).";
    var refresh = parseFloat(document.body.dataset.refreshS || "30") || 30;
    load();
    window.setInterval(load, refresh * 1000);
    var select = document.getElementById("window-select");
    if (select) select.addEventListener("change", load);
    var button = document.getElementById("refresh-button");
    if (button) button.addEventListener("click", load);
  }

  // DOMContentLoaded comes after every deferred script: dashboard.js has restored the chosen window by then.
  if (document.readyState === "complete") start();
  else document.addEventListener("DOMContentLoaded", start);
})();
