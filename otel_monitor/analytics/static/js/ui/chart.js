/* Charts drawn as our own SVG: the chart card with axes and a hover tooltip, the sparkline, the
 * KPI card. The maths (domains, ticks, paths, downsampling) is in ../scale.js; this module only
 * turns its numbers into elements.
 */

import { fmtClock, fmtDay, isNum } from "../format.js";
import {
  downsample,
  lastValue,
  nearestIndex,
  seriesPath,
  sparkPath,
  tickLabel,
  timeDomain,
  timeTicks,
  valueDomain,
  valueTicks,
} from "../scale.js";
import { $, clear, el, emptyState, svgEl } from "./dom.js";

let tooltip = null;

export function showTooltip(x, y, lines) {
  tooltip = tooltip || $("tooltip");
  clear(tooltip);
  lines.forEach((line, i) => {
    const row = el("div", i === 0 ? "tooltip-title" : "tooltip-row");
    if (line.cls) row.appendChild(el("span", "swatch " + line.cls));
    row.appendChild(el("span", "tooltip-label", line.label));
    if (line.value !== undefined) row.appendChild(el("span", "tooltip-value", line.value));
    tooltip.appendChild(row);
  });
  tooltip.hidden = false;
  const w = tooltip.offsetWidth;
  const h = tooltip.offsetHeight;
  const left = Math.min(window.innerWidth - w - 8, Math.max(8, x + 14));
  const top = y - h - 12 < 8 ? y + 16 : y - h - 12;
  tooltip.style.left = left + "px"; // CSSOM, allowed by the CSP (no style attribute parsed)
  tooltip.style.top = top + "px";
}

export function hideTooltip() {
  if (tooltip) tooltip.hidden = true;
}

/**
 * A chart card: title, latest value(s), legend, and a box for the SVG line/area chart.
 * spec: {title, times: [unix s], series: [{label, values, cls, agg}], fmt, axisFmt, min, max,
 *        fixedMax, minRange, area, height, windowS, step, empty}
 * Call drawChart(card) once it is in the document (it measures its width).
 */
export function chartCard(spec) {
  const card = el("div", "card chart-card");
  const head = el("div", "chart-head");
  head.appendChild(el(spec.heading || "h3", "chart-title", spec.title));
  const legend = el("div", "chart-legend");
  for (const s of spec.series) {
    const item = el("span", "legend-item");
    item.appendChild(el("span", "swatch " + s.cls));
    if (spec.series.length > 1) item.appendChild(el("span", "legend-label", s.label));
    item.appendChild(el("span", "legend-value", spec.fmt(lastValue(s.values))));
    legend.appendChild(item);
  }
  head.appendChild(legend);
  card.appendChild(head);
  const box = el("div", "chart-box");
  card.appendChild(box);
  card._spec = spec;
  card._box = box;
  return card;
}

export function drawChart(card) {
  const spec = card._spec;
  const box = clear(card._box);
  const hasData = spec.series.some((s) => s.values.some(isNum));
  if (!hasData || !spec.times.length) {
    box.appendChild(emptyState(spec.empty || "No data in this window yet."));
    box.classList.add("chart-empty");
    return;
  }
  box.classList.remove("chart-empty");
  const width = Math.max(240, Math.floor(box.clientWidth || 600));
  const height = spec.height || (width < 420 ? 150 : 180);
  const m = { l: 58, r: 14, t: 10, b: 24 };
  const iw = width - m.l - m.r;
  const ih = height - m.t - m.b;
  const { times, series } = downsample(spec.times, spec.series, Math.max(20, Math.floor(iw / 2)));
  const { t0, t1 } = timeDomain(times, spec.windowS, spec.step);
  const { lo, hi, step } = valueDomain(series, {
    min: spec.min,
    max: spec.max,
    fixedMax: spec.fixedMax,
    minRange: spec.minRange,
    ticks: height < 170 ? 3 : 4,
  });
  const X = (t) => m.l + ((t - t0) / (t1 - t0)) * iw;
  const Y = (v) => m.t + ih - ((v - lo) / (hi - lo)) * ih;

  const root = svgEl("svg", {
    class: "chart",
    viewBox: "0 0 " + width + " " + height,
    width,
    height,
    role: "img",
    "aria-label": spec.title + ", latest " + spec.fmt(lastValue(spec.series[0].values)),
  });
  const grid = svgEl("g", { class: "grid" });
  const axis = svgEl("g", { class: "axis" });
  for (const v of valueTicks(lo, hi, step)) {
    const y = Math.round(Y(v)) + 0.5;
    grid.appendChild(svgEl("line", { x1: m.l, x2: m.l + iw, y1: y, y2: y }));
    const label = svgEl("text", { x: m.l - 8, y: y + 4, "text-anchor": "end" });
    label.textContent = (spec.axisFmt || spec.fmt)(v);
    axis.appendChild(label);
  }
  const tt = timeTicks(t0, t1, Math.max(2, Math.floor(iw / 90)));
  for (const t of tt.ticks) {
    const x = Math.round(X(t)) + 0.5;
    grid.appendChild(svgEl("line", { class: "vgrid", x1: x, x2: x, y1: m.t, y2: m.t + ih }));
    const label = svgEl("text", { x, y: height - 6, "text-anchor": "middle" });
    label.textContent = tickLabel(t, tt.step, tt.span);
    axis.appendChild(label);
  }
  root.appendChild(grid);
  root.appendChild(axis);
  root.appendChild(svgEl("line", { class: "baseline", x1: m.l, x2: m.l + iw, y1: Y(lo), y2: Y(lo) }));

  const plot = svgEl("g", { class: "plot" });
  series.forEach((s, idx) => {
    const path = seriesPath(times, s.values, X, Y, lo, hi, Boolean(spec.area) && idx === 0);
    if (path.area) plot.appendChild(svgEl("path", { class: "area " + s.cls, d: path.area }));
    plot.appendChild(svgEl("path", { class: "line " + s.cls, d: path.line, "data-points": String(path.points) }));
  });
  root.appendChild(plot);

  // Hover: a crosshair and a tooltip with every series' value at the nearest time.
  const hover = svgEl("g", { class: "hover" });
  const cross = svgEl("line", { class: "crosshair", y1: m.t, y2: m.t + ih, x1: 0, x2: 0 });
  hover.appendChild(cross);
  const dots = series.map((s) => {
    const dot = svgEl("circle", { class: "dot " + s.cls, r: 3.5, cx: 0, cy: 0 });
    hover.appendChild(dot);
    return dot;
  });
  hover.setAttribute("visibility", "hidden");
  root.appendChild(hover);
  const capture = svgEl("rect", { class: "capture", x: m.l, y: m.t, width: iw, height: ih });
  root.appendChild(capture);

  function onMove(event) {
    const rect = root.getBoundingClientRect();
    const px = (event.clientX - rect.left) * (width / rect.width);
    const i = nearestIndex(times, t0 + ((px - m.l) / iw) * (t1 - t0));
    if (i < 0) return;
    const x = X(times[i]);
    cross.setAttribute("x1", x);
    cross.setAttribute("x2", x);
    const lines = [{ label: fmtClock(times[i], true) + (tt.span > 86400 ? " · " + fmtDay(times[i]) : "") }];
    series.forEach((s, j) => {
      const value = s.values[i];
      if (isNum(value)) {
        dots[j].setAttribute("cx", x);
        dots[j].setAttribute("cy", Y(Math.min(hi, Math.max(lo, value))));
        dots[j].setAttribute("visibility", "visible");
      } else {
        dots[j].setAttribute("visibility", "hidden");
      }
      lines.push({ label: s.label, value: spec.fmt(value), cls: s.cls });
    });
    hover.setAttribute("visibility", "visible");
    showTooltip(event.clientX, event.clientY, lines);
  }

  capture.addEventListener("pointermove", onMove);
  capture.addEventListener("pointerdown", onMove);
  capture.addEventListener("pointerleave", () => {
    hover.setAttribute("visibility", "hidden");
    hideTooltip();
  });
  box.appendChild(root);
}

/** A small trend line (no axes). */
export function sparkline(values, cls, width = 96, height = 24) {
  const root = svgEl("svg", {
    class: "spark " + (cls || ""),
    viewBox: "0 0 " + width + " " + height,
    width,
    height,
    "aria-hidden": "true",
  });
  const path = sparkPath(values || [], width, height);
  if (!path) {
    root.appendChild(svgEl("line", { class: "spark-zero", x1: 1, x2: width - 1, y1: height - 2, y2: height - 2 }));
    return root;
  }
  root.appendChild(svgEl("path", { class: "spark-area", d: path.area }));
  root.appendChild(svgEl("path", { class: "spark-line", d: path.line, "data-points": String(path.points) }));
  return root;
}

/**
 * Put chart cards into a grid and draw them (one layout read for all). Their titles are `heading`s:
 * h2 right under a view's h1, h3 under a detail's h2 (a heading structure screen readers can walk).
 */
export function renderCharts(container, specs, heading = "h2") {
  hideTooltip(); // it points into the charts being replaced
  clear(container);
  const cards = specs.map((spec) => chartCard({ heading, ...spec }));
  const frag = document.createDocumentFragment();
  for (const c of cards) frag.appendChild(c);
  container.appendChild(frag);
  cards.forEach(drawChart);
}

/** A headline number with its label, a sub-line and an optional sparkline. */
export function kpiCard(label, value, sub, spark, cls) {
  const card = el("div", "card kpi");
  card.appendChild(el("div", "kpi-label", label));
  card.appendChild(el("div", "kpi-value", value));
  const foot = el("div", "kpi-foot");
  foot.appendChild(el("span", "muted", sub || ""));
  if (spark) foot.appendChild(sparkline(spark, cls, 88, 26));
  card.appendChild(foot);
  return card;
}
