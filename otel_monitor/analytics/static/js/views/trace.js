/* One request's trace (#traces/<trace id>): its facts, its exception, and the waterfall of its
 * spans, each opening a panel with its attributes and events.
 */

import { axisMs, fmtAgo, fmtBytes, fmtClock, fmtCount, fmtMs, isNum, plural } from "../format.js";
import { statusFamily } from "../series.js";
import { safeHttpUrl } from "../urls.js";
import { api } from "../ui/api.js";
import { $, backLink, clear, el, emptyState, methodBadge } from "../ui/dom.js";
import { flameCard } from "../ui/flame.js";
import { state } from "../ui/state.js";

export function loadTrace(gen, traceId) {
  // A kept trace does not change: the auto-refresh leaves it (and the spans opened) as it is.
  if (state.traceShown === traceId) return Promise.resolve();
  return api("/traces/" + encodeURIComponent(traceId)).then(
    (tree) => {
      if (gen !== state.generation) return;
      state.note = "";
      state.rerender = () => render(tree);
      state.rerender();
    },
    (err) => {
      if (gen !== state.generation || !(err instanceof Error) || !/HTTP 404$/.test(err.message)) throw err;
      const box = clear($("trace-detail"));
      box.appendChild(backLink("#traces", "All traces"));
      const card = el("div", "card");
      card.appendChild(
        emptyState(
          "This trace is not kept any more.",
          "Only the latest failed, slow and a sample of other requests keep their spans in process.",
        ),
      );
      box.appendChild(card);
    },
  );
}

export function externalTraceLink(href) {
  const a = el("a", "trace-link", "Open in trace viewer ↗");
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function render(tree) {
  state.traceShown = tree.trace_id;
  const box = clear($("trace-detail"));
  const spans = Array.isArray(tree.spans) ? tree.spans : [];
  const head = el("div", "detail-head");
  head.appendChild(backLink("#traces", "All traces"));
  const title = el("h2", "detail-title");
  title.appendChild(methodBadge(tree.method));
  title.appendChild(el("span", "route-text", tree.route || tree.name || ""));
  if (tree.status_code !== null && tree.status_code !== undefined) {
    title.appendChild(el("span", "code-badge " + statusFamily(tree.status_code), tree.status_code));
  }
  head.appendChild(title);
  const facts = el("div", "trace-facts muted");
  facts.appendChild(el("span", "", fmtMs(tree.duration_ms)));
  facts.appendChild(el("span", "", fmtClock(tree.time, true) + " (" + fmtAgo(tree.time) + ")"));
  const dropped = tree.dropped_spans ? " (" + fmtCount(tree.dropped_spans) + " more not kept)" : "";
  facts.appendChild(el("span", "", plural(spans.length, "span") + dropped));
  const idLine = el("span", "");
  idLine.appendChild(document.createTextNode("trace "));
  idLine.appendChild(el("code", "trace-id full-id", tree.trace_id || ""));
  facts.appendChild(idLine);
  const href = tree.link ? safeHttpUrl(tree.link, window.location.href) : null;
  if (href) facts.appendChild(externalTraceLink(href));
  head.appendChild(facts);
  box.appendChild(head);

  if (tree.exception) box.appendChild(exceptionCard(tree.exception));
  box.appendChild(waterfallCard(spans, tree.duration_ms));
  if (tree.profile) {
    const after = isNum(tree.profile.after_ms) ? "sampled once the request was " + fmtMs(tree.profile.after_ms) + " old" : "";
    box.appendChild(flameCard(tree.profile, "Where the time went", after, "trace:" + tree.trace_id));
  }
  if (tree.context) box.appendChild(contextCard(tree.context));
}

/** What an outlier keeps: its request's headers and query (redacted), the machine at the time. */
function contextCard(context) {
  const card = el("div", "card context-card");
  card.appendChild(el("h3", "chart-title", "Request context"));
  const request = context.request;
  if (request) {
    const query = request.query ? "?" + request.query : "";
    card.appendChild(el("div", "traceback", String(request.method || "") + " " + String(request.path || "") + query));
    const headers = request.headers || {};
    const names = Object.keys(headers).sort();
    card.appendChild(el("div", "wf-panel-title", names.length ? "Headers (credentials redacted)" : "No headers"));
    if (names.length) card.appendChild(attributeTable(names.map((k) => [k, headers[k]])));
  }
  const sys = context.system;
  if (sys) {
    card.appendChild(el("div", "wf-panel-title", "The machine at " + fmtClock(sys.at, true)));
    card.appendChild(
      attributeTable([
        ["process CPU", isNum(sys.process_cpu_pct) ? sys.process_cpu_pct + " %" : null],
        ["process memory (RSS)", isNum(sys.process_rss_bytes) ? fmtBytes(sys.process_rss_bytes) : null],
        ["host CPU", isNum(sys.host_cpu_pct) ? sys.host_cpu_pct + " %" : null],
        ["host memory", isNum(sys.host_memory_pct) ? sys.host_memory_pct + " % of " + fmtBytes(sys.host_memory_total_bytes) : null],
      ]),
    );
  }
  return card;
}

function exceptionCard(exc) {
  const card = el("div", "card exception-card");
  const h = el("h3", "exception-title");
  h.appendChild(el("span", "exception-type", exc["exception.type"] || "Exception"));
  if (exc["exception.message"]) h.appendChild(el("span", "exception-message", ": " + exc["exception.message"]));
  card.appendChild(h);
  if (exc["exception.stacktrace"]) card.appendChild(el("pre", "traceback", exc["exception.stacktrace"]));
  return card;
}

function pctOf(value, end) {
  return Math.max(0, Math.min(100, (value / end) * 100));
}

function waterfallCard(spans, total) {
  const card = el("div", "card waterfall-card");
  card.appendChild(el("h3", "chart-title", "Spans"));
  let end = isNum(total) && total > 0 ? total : 0;
  for (const s of spans) if (isNum(s.offset_ms) && isNum(s.duration_ms)) end = Math.max(end, s.offset_ms + s.duration_ms);
  end = end || 1;
  const wf = el("div", "waterfall");
  wf.setAttribute("role", "list");
  const axis = el("div", "wf-row wf-axis");
  axis.appendChild(el("div", "wf-name muted", "Span"));
  const ticks = el("div", "wf-track");
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const tick = el("span", "wf-tick", axisMs(Math.round(end * f * 100) / 100));
    tick.style.left = f * 100 + "%";
    if (f === 1) tick.classList.add("wf-tick-end");
    ticks.appendChild(tick);
  }
  axis.appendChild(ticks);
  axis.appendChild(el("div", "wf-dur muted", "Duration"));
  wf.appendChild(axis);
  for (const s of spans) wf.appendChild(spanItem(s, end));
  card.appendChild(wf);
  card.appendChild(el("div", "muted small", "Click a span for its attributes and events."));
  return card;
}

function spanItem(s, end) {
  const item = el("div", "wf-item");
  item.setAttribute("role", "listitem");
  const row = el("button", "wf-row wf-span status-" + (s.status === "error" ? "error" : "ok"));
  row.type = "button";
  const name = el("div", "wf-name");
  name.style.paddingLeft = Math.min(12, s.depth || 0) * 14 + "px";
  const kind = String(s.kind || "internal");
  name.appendChild(el("span", "wf-kind kind-" + kind, kind));
  name.appendChild(el("span", "wf-label", s.name || ""));
  name.title = String(s.name || "");
  row.appendChild(name);
  const track = el("div", "wf-track");
  const bar = el("span", "wf-bar");
  const left = pctOf(s.offset_ms || 0, end);
  bar.style.left = left + "%";
  bar.style.width = Math.max(0.4, Math.min(100 - left, ((s.duration_ms || 0) / end) * 100)) + "%";
  track.appendChild(bar);
  for (const e of s.events || []) {
    if (!isNum(e.offset_ms)) continue;
    const mark = el("span", "wf-event" + (e.name === "exception" ? " wf-exception" : ""));
    mark.style.left = pctOf(e.offset_ms, end) + "%";
    mark.title = String(e.name || "");
    track.appendChild(mark);
  }
  row.appendChild(track);
  row.appendChild(el("div", "wf-dur", fmtMs(s.duration_ms)));
  const panel = spanPanel(s);
  panel.hidden = !state.openSpans[s.span_id];
  row.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
  row.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    state.openSpans[s.span_id] = !panel.hidden;
    row.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
  });
  item.appendChild(row);
  item.appendChild(panel);
  return item;
}

function spanPanel(s) {
  const panel = el("div", "wf-panel");
  const status = s.status + (s.status_message ? ": " + s.status_message : "");
  const facts = [
    ["span id", s.span_id],
    ["kind", s.kind],
    ["status", status],
    ["starts at", fmtMs(s.offset_ms)],
    ["scope", s.scope],
  ];
  panel.appendChild(attributeTable(facts));
  const attrs = s.attributes || {};
  const keys = Object.keys(attrs).sort();
  panel.appendChild(el("div", "wf-panel-title", keys.length ? "Attributes" : "No attributes"));
  if (keys.length) panel.appendChild(attributeTable(keys.map((k) => [k, attrs[k]])));
  for (const e of s.events || []) {
    panel.appendChild(el("div", "wf-panel-title", "Event: " + String(e.name || "") + " at " + fmtMs(e.offset_ms)));
    const ea = e.attributes || {};
    const rows = Object.keys(ea)
      .sort()
      .filter((k) => k !== "exception.stacktrace");
    if (rows.length) panel.appendChild(attributeTable(rows.map((k) => [k, ea[k]])));
    if (ea["exception.stacktrace"]) panel.appendChild(el("pre", "traceback", ea["exception.stacktrace"]));
  }
  return panel;
}

function attributeTable(pairs) {
  const table = el("table", "data-table compact attr-table");
  const tb = el("tbody");
  for (const [key, value] of pairs) {
    if (value === null || value === undefined) continue;
    const tr = el("tr");
    tr.appendChild(el("td", "attr-key", key));
    tr.appendChild(el("td", "attr-value", Array.isArray(value) ? value.join(", ") : String(value)));
    tb.appendChild(tr);
  }
  table.appendChild(tb);
  return table;
}
