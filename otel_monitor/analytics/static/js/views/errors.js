/* The errors view (#errors): failed requests grouped by exception type, route and the app's
 * innermost frame, with a timeline and the latest traces of each group.
 */

import { fmtAgo, fmtClock, fmtCount, plural } from "../format.js";
import { traceHref } from "../urls.js";
import { api } from "../ui/api.js";
import { sparkline } from "../ui/chart.js";
import { $, clear, el, emptyState, methodBadge } from "../ui/dom.js";
import { state } from "../ui/state.js";

export function load(gen) {
  return api("/errors", { limit: 100 }).then((data) => {
    if (gen !== state.generation) return;
    state.note = "";
    state.rerender = () => render(data);
    state.rerender();
  });
}

function render(data) {
  const groups = Array.isArray(data.groups) ? data.groups : [];
  const box = clear($("error-groups"));
  $("error-count").textContent = groups.length
    ? plural(groups.length, "group") + " · " + plural(data.total || 0, "failed request") + " since the app started"
    : "";
  if (!groups.length) {
    const card = el("div", "card");
    card.appendChild(
      emptyState(
        "No failed requests yet.",
        "Requests answering 5xx or raising an exception are grouped here by exception type, route and the line of your code that raised.",
      ),
    );
    box.appendChild(card);
    return;
  }
  for (const g of groups) box.appendChild(groupCard(g));
}

function groupCard(g) {
  const card = el("div", "card error-group");
  card.dataset.group = String(g.id || "");
  const top = el("div", "error-top");
  const what = el("div", "error-what");
  const h = el("h2", "exception-title");
  h.appendChild(el("span", "exception-type", g.exception_type || "error"));
  if (g.message) h.appendChild(el("span", "exception-message", ": " + g.message));
  what.appendChild(h);
  const where = el("div", "error-where");
  where.appendChild(methodBadge(g.method));
  where.appendChild(el("span", "route-text", g.route || ""));
  if (g.frame) where.appendChild(el("code", "error-frame", g.frame));
  what.appendChild(where);
  top.appendChild(what);
  const count = el("div", "error-count");
  count.appendChild(el("div", "kpi-value", fmtCount(g.count)));
  count.appendChild(el("div", "muted small", g.count === 1 ? "time" : "times"));
  top.appendChild(count);
  card.appendChild(top);
  const foot = el("div", "error-foot");
  const timeline = el("div", "error-timeline");
  timeline.appendChild(sparkline((g.timeline || []).map((p) => p.count), "c-err", 180, 28));
  timeline.appendChild(el("span", "muted small", plural(g.last_hour || 0, "time") + " in the last hour"));
  foot.appendChild(timeline);
  foot.appendChild(el("span", "muted small", "first " + fmtAgo(g.first_seen) + " · last " + fmtAgo(g.last_seen)));
  const examples = el("div", "error-examples");
  examples.appendChild(el("span", "muted small", "Latest:"));
  for (const e of g.examples || []) {
    const id = String(e.trace_id || "");
    if (e.detail) {
      const a = el("a", "trace-id", id.slice(0, 8) + "…");
      a.href = traceHref(e.trace_id);
      a.title = "Trace " + id + " at " + fmtClock(e.time, true);
      examples.appendChild(a);
    } else {
      const c = el("code", "trace-id", id.slice(0, 8) + "…");
      c.title = "Trace " + id + " (spans not kept)";
      examples.appendChild(c);
    }
  }
  foot.appendChild(examples);
  card.appendChild(foot);
  return card;
}
