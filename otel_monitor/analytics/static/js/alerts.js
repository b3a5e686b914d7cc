/* Pure helpers of the Alerts view: what a rule checks, how a state reads, outcome classes.
 * No DOM here (tests/js/alerts.test.mjs).
 */

const UNITS = {
  p50_ms: " ms",
  p90_ms: " ms",
  p95_ms: " ms",
  p99_ms: " ms",
  avg_ms: " ms",
  error_rate_pct: " %",
  cpu_pct: " %",
  memory_pct: " %",
  disk_pct: " %",
  process_cpu_pct: " %",
  requests_per_s: " req/s",
};

/** 90 -> "90s", 300 -> "5m", 5400 -> "1h30m". */
export function durationText(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds === 0) return "0s";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.round((seconds % 60) * 10) / 10;
  return (h ? h + "h" : "") + (m ? m + "m" : "") + (s ? s + "s" : "");
}

/** A number with the metric's unit: 812.4 -> "812.4 ms"; null -> "no data". */
export function valueText(metric, value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "no data";
  const rounded = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 100) / 100;
  const unit = Object.prototype.hasOwnProperty.call(UNITS, metric) ? UNITS[metric] : "";
  return String(rounded) + unit;
}

/** "p95_ms > 500 ms on GET /checkout, over 5m, for 2m" */
export function conditionText(rule) {
  let text = rule.metric + " " + rule.op + " " + valueText(rule.metric, rule.threshold);
  if (rule.route) text += " on " + (rule.method ? rule.method + " " : "") + rule.route;
  else if (rule.method) text += " on " + rule.method;
  if (rule.metric in UNITS && !/^(cpu|memory|disk|process)/.test(rule.metric)) text += ", over " + durationText(rule.window_s);
  if (rule.for_s) text += ", for " + durationText(rule.for_s);
  return text;
}

/** "firing" | "pending" | "ok" | "silenced" for an alert of GET /alerts and the active silences. */
export function stateName(alert, silences) {
  const status = alert && alert.state ? alert.state.status : "inactive";
  const silenced = (silences || []).some((s) => s.active && (s.rule === "*" || s.rule === alert.name));
  if (status === "firing") return silenced ? "silenced" : "firing";
  if (status === "pending") return "pending";
  return "ok";
}

/** The alerts split for the view: firing (and silenced firing) first, then pending, then the rest. */
export function splitAlerts(alerts, silences) {
  const result = { firing: [], pending: [], ok: [] };
  for (const alert of alerts || []) {
    const name = stateName(alert, silences);
    (name === "firing" || name === "silenced" ? result.firing : name === "pending" ? result.pending : result.ok).push(alert);
  }
  return result;
}

/** CSS class of a notification outcome: sent -> "ok", failed/dropped -> "fail". */
export function outcomeClass(outcome) {
  return outcome === "sent" ? "ok" : "fail";
}
