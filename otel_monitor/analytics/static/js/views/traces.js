/* The traces view (#traces): the latest slow and failed requests; #traces/<trace id> shows one
 * request's spans (./trace.js).
 */

import { fmtAgo, fmtClock, fmtMs } from "../format.js";
import { statusFamily } from "../series.js";
import { safeHttpUrl, traceHref } from "../urls.js";
import { api } from "../ui/api.js";
import { SLOW_MS } from "../ui/config.js";
import { $, clear, el, emptyState, labelled, methodBadge } from "../ui/dom.js";
import { state } from "../ui/state.js";
import { externalTraceLink, loadTrace } from "./trace.js";

export function load(gen) {
  if (state.traceId) return loadTrace(gen, state.traceId);
  return api("/traces", { kind: state.traceKind, limit: 100 }).then((data) => {
    if (gen !== state.generation) return;
    state.note = "";
    state.rerender = () => render(data);
    state.rerender();
  });
}

/** The kind buttons (all, slow, failed) and row clicks; `refresh` reloads the view. */
export function bind(refresh) {
  $("trace-rows").addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    const tr = event.target.closest("tr");
    if (tr && tr.dataset.trace) window.location.hash = traceHref(tr.dataset.trace);
  });
  const buttons = document.querySelectorAll(".segmented [data-kind]");
  for (const button of buttons) {
    button.addEventListener("click", () => {
      state.traceKind = button.getAttribute("data-kind");
      for (const b of buttons) b.setAttribute("aria-pressed", b === button ? "true" : "false");
      refresh();
    });
  }
}

function render(data) {
  const traces = Array.isArray(data.traces) ? data.traces : [];
  const frag = document.createDocumentFragment();
  for (const t of traces) frag.appendChild(traceRow(t));
  clear($("trace-rows")).appendChild(frag);
  $("trace-table").hidden = !traces.length;
  $("trace-count").textContent = traces.length ? traces.length + (traces.length === 1 ? " request" : " requests") : "";
  const empty = $("trace-empty");
  if (!traces.length) {
    const slow = SLOW_MS !== null ? " slower than " + fmtMs(SLOW_MS) : " that are slow";
    const title =
      state.traceKind === "failed"
        ? "No failed requests. "
        : state.traceKind === "slow"
          ? "No slow requests."
          : "No slow or failed requests yet.";
    clear(empty).appendChild(
      emptyState(title, "Requests" + slow + ", answering 5xx or raising an exception are listed here with their trace id."),
    );
    empty.hidden = false;
  } else {
    empty.hidden = true;
  }
}

function traceRow(t) {
  const tr = el("tr");
  const time = labelled("td", "nowrap", "Time", fmtClock(t.time, true));
  time.title = fmtAgo(t.time);
  tr.appendChild(time);
  const kind = t.kind === "failed" ? "failed" : "slow";
  const kindCell = labelled("td", "", "Kind");
  kindCell.appendChild(el("span", "kind-badge kind-" + kind, kind));
  tr.appendChild(kindCell);
  const req = labelled("td", "col-route", "Request");
  req.appendChild(methodBadge(t.method));
  req.appendChild(el("span", "route-text", t.route || t.name || ""));
  tr.appendChild(req);
  const statusCell = labelled("td", "num", "Status");
  if (t.status_code !== null && t.status_code !== undefined) {
    statusCell.appendChild(el("span", "code-badge " + statusFamily(t.status_code), t.status_code));
  } else {
    statusCell.textContent = "—";
  }
  tr.appendChild(statusCell);
  tr.appendChild(labelled("td", "num strong", "Duration", fmtMs(t.duration_ms)));
  const errorCell = labelled("td", "error-text", "Error", t.error || "");
  if (t.error) errorCell.title = String(t.error);
  tr.appendChild(errorCell);
  const traceCell = labelled("td", "trace-cell", "Trace");
  if (t.detail) {
    const open = el("a", "trace-id trace-open", String(t.trace_id || ""));
    open.href = traceHref(t.trace_id);
    open.title = "Show this request's spans";
    traceCell.appendChild(open);
    tr.classList.add("clickable");
    tr.dataset.trace = String(t.trace_id || "");
  } else {
    const id = el("code", "trace-id", String(t.trace_id || ""));
    id.title = "Not kept in process (only the latest failed, slow and sampled requests are)";
    traceCell.appendChild(id);
  }
  const href = t.link ? safeHttpUrl(t.link, window.location.href) : null;
  if (href) traceCell.appendChild(externalTraceLink(href));
  tr.appendChild(traceCell);
  return tr;
}
