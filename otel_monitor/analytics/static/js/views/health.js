/* The health badge in the top bar and the health card of the overview (GET /health). */

import { fmtCheck, fmtCount, fmtUptime, plural } from "../format.js";
import { healthSummary, meterPct, METER_MARK_PCT, statusClass, statusTitle } from "../series.js";
import { $, clear, el } from "../ui/dom.js";

const CHECK_LABELS = {
  latency_avg_ms: "Average latency",
  latency_p95_ms: "p95 latency",
  error_rate_pct: "Error rate",
  memory_pct: "Host memory",
  cpu_pct: "Host CPU",
  disk_pct: "Disk",
  process_rss_bytes: "Process RSS",
  process_rss_max_bytes: "Process RSS",
};

export function updateHealthBadge(health) {
  const badge = $("health-badge");
  const status = health && health.status ? String(health.status) : "unknown";
  badge.className = "status-pill " + statusClass(status);
  badge.textContent = statusTitle(status);
}

export function renderHealth(container, health) {
  clear(container);
  const head = el("div", "health-head");
  const status = String(health.status || "unknown");
  head.appendChild(el("span", "status-pill status-large " + statusClass(status), statusTitle(status)));
  const checks = Array.isArray(health.checks) ? health.checks : [];
  const meta = el("div", "health-meta");
  meta.appendChild(el("div", "health-summary", healthSummary(checks)));
  meta.appendChild(
    el("div", "muted", "Up " + fmtUptime(health.uptime_s) + " · checks over the last " + (health.window || "5m")),
  );
  head.appendChild(meta);
  container.appendChild(head);

  const list = el("div", "checks");
  for (const check of checks) {
    const item = el("div", "check " + statusClass(check.status));
    const top = el("div", "check-top");
    top.appendChild(el("span", "check-name", CHECK_LABELS[check.name] || check.name));
    top.appendChild(el("span", "check-status", String(check.status || "")));
    item.appendChild(top);
    item.appendChild(el("div", "check-value", fmtCheck(check.value, check.unit)));
    const bar = el("div", "meter");
    const fill = el("div", "meter-fill");
    fill.style.width = meterPct(check.value, check.threshold).toFixed(1) + "%";
    bar.appendChild(fill);
    const mark = el("div", "meter-mark");
    mark.style.left = METER_MARK_PCT.toFixed(1) + "%";
    bar.appendChild(mark);
    item.appendChild(bar);
    item.appendChild(el("div", "check-threshold muted", "threshold " + fmtCheck(check.threshold, check.unit)));
    list.appendChild(item);
  }
  container.appendChild(list);
  const degraded = Array.isArray(health.degraded) ? health.degraded : [];
  if (degraded.length) {
    // Text only (textContent): the reasons are data, never markup.
    const modes = el("ul", "degraded-modes");
    for (const mode of degraded) {
      const item = el("li", "degraded-mode status-warn", String((mode && mode.detail) || (mode && mode.mode) || ""));
      item.dataset.mode = String((mode && mode.mode) || "");
      modes.appendChild(item);
    }
    container.appendChild(modes);
  }
  const telemetry = health.telemetry || {};
  for (const [key, noun] of [
    ["spans_lost", "span"],
    ["logs_lost", "log record"],
  ]) {
    const lost = telemetry[key];
    const reasons = lost && typeof lost === "object" ? Object.keys(lost).sort() : [];
    if (reasons.length) {
      const total = reasons.reduce((n, r) => n + (Number(lost[r]) || 0), 0);
      const detail = reasons.map((r) => r + ": " + fmtCount(lost[r])).join(", ");
      container.appendChild(el("div", "telemetry-lost", plural(total, noun) + " not exported (" + detail + ")"));
    }
  }
}
