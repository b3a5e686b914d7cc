/* The users view (#users): requests per user (enduser.id) over the window, most first, with
 * errors and p95; requests with no user as one total; client addresses when they are counted.
 */

import { fmtCount, fmtMs, fmtPct, plural } from "../format.js";
import { api } from "../ui/api.js";
import { $, clear, el, emptyState, labelled } from "../ui/dom.js";
import { state } from "../ui/state.js";

export function load(gen) {
  const params = { window: state.window, limit: 100 };
  return api("/users", params)
    .then((u) =>
      // Client addresses are counted only with analytics_client_addresses (off by default).
      u.clients_counted ? api("/clients", params).then((c) => [u, c]) : [u, null],
    )
    .then(([u, c]) => {
      if (gen !== state.generation) return;
      state.note = "";
      state.rerender = () => render(u, c);
      state.rerender();
    });
}

function render(users, clients) {
  fill("users", users, users.users, "user", "No signed-in users in this window.",
    "Pass enduser_id= to Monitor (for example lambda: current_user.get_id()) or call otel_monitor.set_enduser(id) in a view.");
  const box = $("clients-card");
  box.hidden = !clients;
  if (clients) fill("clients", clients, clients.clients, "client address", "No requests in this window.", "");
}

function fill(kind, data, rows, noun, emptyTitle, emptyHint) {
  rows = Array.isArray(rows) ? rows : [];
  const body = clear($(kind + "-rows"));
  for (const r of rows) {
    const tr = el("tr");
    tr.appendChild(labelled("td", "col-id", noun, r.id));
    tr.appendChild(labelled("td", "num", "Requests", fmtCount(r.requests) + (r.overcount ? " (≤ +" + fmtCount(r.overcount) + ")" : "")));
    tr.appendChild(labelled("td", "num", "Errors", fmtCount(r.errors)));
    tr.appendChild(labelled("td", "num opt", "Error rate", fmtPct(r.error_rate_pct)));
    tr.appendChild(labelled("td", "num", "p95", fmtMs(r.p95_ms)));
    body.appendChild(tr);
  }
  $(kind + "-table").hidden = !rows.length;
  const empty = $(kind + "-empty");
  empty.hidden = Boolean(rows.length);
  if (!rows.length) clear(empty).appendChild(emptyState(emptyTitle, emptyHint));
  const total = data["total_" + kind] || 0;
  const parts = [plural(total, noun)];
  if (kind === "users") parts.push(plural(data.anonymous_requests || 0, "request") + " without a user");
  if (data.hashed) parts.push("ids are keyed hashes");
  parts.push(
    data.exact
      ? "exact counts"
      : "busiest " + fmtCount(data.kept_per_endpoint) + " per endpoint and time bucket kept; counts may be high by the amount shown",
  );
  $(kind + "-summary").textContent = parts.join(" · ");
}
