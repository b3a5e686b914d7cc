/* The alerts view (#alerts): what fires now, every rule and its state, the destinations and the
 * last notifications with their outcomes (GET /alerts, docs/alerts.md). Text only, never markup.
 */

import { conditionText, durationText, outcomeClass, splitAlerts, stateName, valueText } from "../alerts.js";
import { fmtAgo, fmtClock, plural } from "../format.js";
import { api, apiSend } from "../ui/api.js";
import { $, clear, el, emptyState } from "../ui/dom.js";
import { state } from "../ui/state.js";

export function load(gen) {
  return api("/alerts").then(
    (data) => {
      if (gen !== state.generation) return;
      state.note = "";
      state.rerender = () => render(data);
      state.rerender();
    },
    (error) => {
      if (gen !== state.generation) return;
      if (String(error && error.message).endsWith("HTTP 404")) {
        state.rerender = renderOff;
        state.rerender();
        return;
      }
      throw error;
    },
  );
}

/** The silence buttons: "Silence 1 h" on a firing alert, "End" on a silence. */
export function bind(refresh) {
  $("alerts-body").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    const done = () => refresh();
    const failed = (error) => {
      button.disabled = false;
      $("alerts-count").textContent = "Could not change the silence: " + (error && error.message ? error.message : error);
    };
    if (button.dataset.action === "silence") {
      apiSend("POST", "/alerts/silences", { rule: button.dataset.rule, duration: "1h", comment: "from the dashboard" }).then(done, failed);
    } else if (button.dataset.action === "end-silence") {
      apiSend("DELETE", "/alerts/silences/" + encodeURIComponent(button.dataset.silence)).then(done, failed);
    }
  });
}

function renderOff() {
  const box = clear($("alerts-body"));
  $("alerts-count").textContent = "";
  const card = el("div", "card");
  card.appendChild(
    emptyState(
      "Alerts are off.",
      "Set a destination (alerts_slack_webhook_url, alerts_webhook_url or alerts_email_to) or alerts=on: see docs/alerts.md.",
    ),
  );
  box.appendChild(card);
}

function render(data) {
  const alerts = Array.isArray(data.alerts) ? data.alerts : [];
  const silences = Array.isArray(data.silences) ? data.silences : [];
  const split = splitAlerts(alerts, silences);
  $("alerts-count").textContent =
    (split.firing.length ? plural(split.firing.length, "alert") + " firing" : "nothing firing") +
    " · " + plural(alerts.length, "rule") + " · evaluated every " + durationText(data.interval_s);
  const box = clear($("alerts-body"));
  box.appendChild(firingCard(split.firing, silences));
  box.appendChild(rulesCard(alerts, silences));
  const active = silences.filter((s) => s.active);
  if (active.length) box.appendChild(silencesCard(active));
  box.appendChild(destinationsCard(Array.isArray(data.destinations) ? data.destinations : []));
  box.appendChild(notificationsCard(Array.isArray(data.notifications) ? data.notifications : []));
}

function card(title) {
  const c = el("div", "card alerts-card");
  c.appendChild(el("h2", "card-title", title));
  return c;
}

function firingCard(firing, silences) {
  const c = card("Firing now");
  c.id = "alerts-firing";
  if (!firing.length) {
    c.appendChild(emptyState("Nothing is firing.", "An alert fires when its rule stays broken for its 'for' duration."));
    return c;
  }
  for (const alert of firing) {
    const row = el("div", "alert-row alert-" + stateName(alert, silences));
    row.dataset.rule = alert.name;
    row.appendChild(el("span", "alert-badge", stateName(alert, silences) === "silenced" ? "SILENCED" : "FIRING"));
    row.appendChild(el("strong", "alert-name", alert.name));
    row.appendChild(el("span", "alert-value", valueText(alert.metric, alert.state.value)));
    row.appendChild(el("span", "muted", conditionText(alert)));
    const since = alert.state.firing_since;
    row.appendChild(el("span", "muted", "since " + fmtClock(since, true) + " (" + fmtAgo(since) + ")"));
    if (stateName(alert, silences) === "firing") {
      const button = el("button", "button alert-silence", "Silence 1 h");
      button.type = "button";
      button.dataset.action = "silence";
      button.dataset.rule = alert.name;
      row.appendChild(button);
    }
    c.appendChild(row);
  }
  return c;
}

function table(headers) {
  const wrap = el("div", "table-scroll");
  const t = el("table", "data-table stack-on-phone");
  const head = el("tr");
  for (const h of headers) head.appendChild(el("th", "", h));
  const thead = el("thead");
  thead.appendChild(head);
  t.appendChild(thead);
  const body = el("tbody");
  t.appendChild(body);
  wrap.appendChild(t);
  return { wrap, body };
}

function cell(tr, label, text, cls) {
  const td = el("td", cls || "", text);
  td.setAttribute("data-label", label);
  tr.appendChild(td);
  return td;
}

function rulesCard(alerts, silences) {
  const c = card("Rules");
  const { wrap, body } = table(["State", "Rule", "Condition", "Value", "Last change", "Severity"]);
  body.id = "alerts-rules";
  for (const alert of alerts) {
    const tr = el("tr");
    tr.dataset.rule = alert.name;
    const name = stateName(alert, silences);
    const badge = cell(tr, "State", "");
    badge.appendChild(el("span", "alert-badge alert-" + name, name));
    cell(tr, "Rule", alert.name + (alert.default ? " (default)" : ""));
    cell(tr, "Condition", conditionText(alert));
    cell(tr, "Value", valueText(alert.metric, alert.state ? alert.state.value : null), "num");
    cell(tr, "Last change", lastChange(alert.state), "nowrap");
    cell(tr, "Severity", alert.severity || "");
    body.appendChild(tr);
  }
  c.appendChild(wrap);
  return c;
}

function silencesCard(silences) {
  const c = card("Silences");
  const { wrap, body } = table(["Rule", "Until", "Comment", ""]);
  body.id = "alerts-silences";
  for (const s of silences) {
    const tr = el("tr");
    cell(tr, "Rule", s.rule === "*" ? "all rules" : s.rule);
    cell(tr, "Until", fmtClock(s.ends_at, true));
    cell(tr, "Comment", s.comment || "");
    const end = cell(tr, "", "");
    const button = el("button", "button", "End");
    button.type = "button";
    button.dataset.action = "end-silence";
    button.dataset.silence = s.id;
    end.appendChild(button);
    body.appendChild(tr);
  }
  c.appendChild(wrap);
  return c;
}

function lastChange(s) {
  if (!s) return "";
  if (s.status === "firing") return "firing since " + fmtClock(s.firing_since, true);
  if (s.status === "pending") return "pending since " + fmtClock(s.active_since, true);
  if (s.resolved_at) return "resolved " + fmtClock(s.resolved_at, true);
  return "";
}

function destinationsCard(destinations) {
  const c = card("Destinations");
  if (!destinations.length) {
    c.appendChild(emptyState("No destination configured.", "Alerts show here only; see docs/alerts.md to send them."));
    return c;
  }
  const { wrap, body } = table(["Destination", "Target", "Status", "Last error"]);
  body.id = "alerts-destinations";
  for (const d of destinations) {
    const tr = el("tr");
    cell(tr, "Destination", d.name);
    cell(tr, "Target", d.target);
    const status = d.ok === null || d.ok === undefined ? "not used yet" : d.ok ? "working" : "down since " + fmtClock(d.since, true);
    cell(tr, "Status", status, d.ok === false ? "fail" : d.ok ? "ok" : "");
    cell(tr, "Last error", d.last_error || "");
    body.appendChild(tr);
  }
  c.appendChild(wrap);
  return c;
}

function notificationsCard(notifications) {
  const c = card("Last notifications");
  if (!notifications.length) {
    c.appendChild(emptyState("No notification sent yet.", "Each alert is notified when it fires and when it resolves."));
    return c;
  }
  const { wrap, body } = table(["Time", "Destination", "Notice", "Outcome"]);
  body.id = "alerts-notifications";
  for (const n of notifications.slice(0, 50)) {
    const tr = el("tr");
    cell(tr, "Time", fmtClock(n.time, true));
    cell(tr, "Destination", n.destination);
    cell(tr, "Notice", n.headline);
    const outcome = n.outcome + (n.attempts > 1 ? " after " + n.attempts + " attempts" : "") + (n.error ? ": " + n.error : "");
    cell(tr, "Outcome", outcome, outcomeClass(n.outcome));
    body.appendChild(tr);
  }
  c.appendChild(wrap);
  return c;
}
