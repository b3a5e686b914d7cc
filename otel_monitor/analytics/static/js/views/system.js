/* The system view (#system): host CPU, memory, disk, network and this process (psutil gauges). */

import { axisBps, axisBytes, axisNumber, axisPct, DASH, fixed, fmtBps, fmtBytes, fmtPct, isNum } from "../format.js";
import { lastValue } from "../scale.js";
import { column, fullSteps } from "../series.js";
import { api } from "../ui/api.js";
import { kpiCard, renderCharts } from "../ui/chart.js";
import { $, clear, el, emptyState } from "../ui/dom.js";
import { axisWindow, state } from "../ui/state.js";
import { updateHealthBadge } from "./health.js";

export function load(gen) {
  return Promise.all([api("/health"), api("/timeseries", { window: state.window })]).then(([health, ts]) => {
    if (gen !== state.generation) return;
    updateHealthBadge(health);
    state.note = "";
    state.rerender = () => render(health, ts);
    state.rerender();
  });
}

function threads(v) {
  return isNum(v) ? fixed(v, 0) + " threads" : DASH;
}

function render(health, ts) {
  const sys = (health && health.system) || {};
  const mem = sys.memory || {};
  const cpu = sys.cpu || {};
  const disk = sys.disk || {};
  const proc = sys.process || {};
  const points = fullSteps(ts);
  const cards = clear($("system-cards"));
  const frag = document.createDocumentFragment();
  frag.appendChild(
    kpiCard("CPU", fmtPct(cpu.system_pct), "this process " + fmtPct(cpu.process_pct), column(points, "cpu_pct"), "c1"),
  );
  frag.appendChild(
    kpiCard(
      "Memory",
      fmtPct(mem.used_pct),
      fmtBytes(mem.used_bytes) + " of " + fmtBytes(mem.total_bytes),
      column(points, "memory_pct"),
      "c2",
    ),
  );
  frag.appendChild(
    kpiCard(
      "Disk",
      fmtPct(disk.used_pct),
      fmtBytes(disk.free_bytes) + " free on " + (disk.mountpoint || "/"),
      column(points, "disk_pct"),
      "c4",
    ),
  );
  // The card shows the charts' latest reading (one source of truth: the card and the "Process
  // threads" chart agreed on neither the moment nor the number); the live reading until there is one.
  const latestThreads = lastValue(column(points, "process_threads"));
  const shownThreads = isNum(latestThreads) ? latestThreads : proc.threads;
  const procSub =
    threads(shownThreads) +
    " · pid " +
    (proc.pid || DASH) +
    (proc.workers > 1 ? " · " + proc.workers + " workers" : "");
  frag.appendChild(kpiCard("Process", fmtBytes(proc.rss_bytes), procSub, column(points, "process_rss_bytes"), "c3"));
  cards.appendChild(frag);

  const charts = $("system-charts");
  const hasSystem = ["cpu_pct", "memory_pct", "process_rss_bytes"].some((k) => column(points, k).some(isNum));
  if (!hasSystem && !isNum(mem.used_pct)) {
    clear(charts);
    const box = el("div", "card span-all");
    box.appendChild(
      emptyState(
        "No system metrics yet.",
        "They appear within seconds when system metrics are on (OTEL_MONITOR_SYSTEM_METRICS=true, the default).",
      ),
    );
    charts.appendChild(box);
    return;
  }
  const common = {
    times: column(points, "t"),
    windowS: axisWindow(ts),
    step: ts.step_s || 10,
    empty: "No samples in this window yet.",
  };
  const pct = { fmt: fmtPct, axisFmt: axisPct, min: 0, max: 100, fixedMax: true, area: true };
  renderCharts(charts, [
    { title: "CPU", series: [{ label: "host CPU", values: column(points, "cpu_pct"), cls: "c1" }], ...pct, ...common },
    {
      title: "Memory",
      series: [{ label: "host memory", values: column(points, "memory_pct"), cls: "c2" }],
      ...pct,
      ...common,
    },
    { title: "Disk", series: [{ label: "disk used", values: column(points, "disk_pct"), cls: "c4" }], ...pct, ...common },
    {
      title: "Network",
      series: [
        { label: "received", values: column(points, "net_recv_bps"), cls: "c1" },
        { label: "sent", values: column(points, "net_sent_bps"), cls: "c3" },
      ],
      fmt: fmtBps,
      axisFmt: axisBps,
      ...common,
    },
    {
      title: "Process memory (RSS)",
      series: [{ label: "RSS", values: column(points, "process_rss_bytes"), cls: "c3", agg: "max" }],
      fmt: fmtBytes,
      axisFmt: axisBytes,
      area: true,
      minRange: 1e6,
      ...common,
    },
    {
      title: "Process threads",
      series: [{ label: "threads", values: column(points, "process_threads"), cls: "c2", agg: "max" }],
      fmt: threads,
      axisFmt: axisNumber,
      minRange: 4,
      ...common,
    },
  ]);
}
