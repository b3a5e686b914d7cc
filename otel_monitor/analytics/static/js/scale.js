/* Chart maths: scales, ticks, downsampling, path data and the nearest point. Pure, no DOM: the
 * chart module turns these numbers and strings into SVG elements.
 *
 * Times are unix seconds; a series is {values: [number|null], agg: "avg"|"max", ...}; a missing
 * value (null, NaN) is a gap, never a zero.
 */

import { fmtClock, fmtDay, isNum } from "./format.js";

/** Merge neighbouring points so that a series has at most `max` points (avg, or max, per bucket). */
export function downsample(times, series, max) {
  const n = times.length;
  if (n <= max) return { times, series };
  const size = Math.ceil(n / max);
  const outTimes = [];
  const outSeries = series.map(() => []);
  for (let start = 0; start < n; start += size) {
    const end = Math.min(n, start + size);
    outTimes.push(times[start]);
    for (let s = 0; s < series.length; s++) {
      const values = series[s].values;
      const useMax = series[s].agg === "max";
      let acc = null;
      let count = 0;
      for (let i = start; i < end; i++) {
        const v = values[i];
        if (!isNum(v)) continue;
        acc = acc === null ? v : useMax ? Math.max(acc, v) : acc + v;
        count++;
      }
      outSeries[s].push(acc === null ? null : useMax ? acc : acc / count);
    }
  }
  return { times: outTimes, series: series.map((s, idx) => ({ ...s, values: outSeries[idx] })) };
}

/**
 * A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) that cuts `range` into about `count`
 * parts. A range that is zero, negative or not a number has no such step: the answer is 1, so a
 * tick loop over it still ends.
 */
export function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const n = raw / mag;
  const step = n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10;
  return step * mag;
}

/** The steps a time axis may use, in seconds (10 s to 2 days). */
export const TIME_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800];

function offsetS(t) {
  // Date.getTimezoneOffset is UTC minus local time, in minutes, at that instant.
  return new Date(t * 1000).getTimezoneOffset() * 60;
}

/**
 * Ticks for a time axis from t0 to t1 (unix seconds), at most about `maxTicks` of them, on
 * round local times: multiples of the step counted from local midnight, so a 6 h step falls on
 * 00:00, 06:00, 12:00, 18:00 in the browser's time zone, also across a daylight-saving change.
 * Returns {ticks, step, span}.
 */
export function timeTicks(t0, t1, maxTicks) {
  const span = Math.max(1, t1 - t0);
  let step = TIME_STEPS[TIME_STEPS.length - 1];
  if (!isNum(t0) || !isNum(t1)) return { ticks: [], step, span: NaN };
  for (const candidate of TIME_STEPS) {
    if (span / candidate <= maxTicks) {
      step = candidate;
      break;
    }
  }
  // Walk in local "wall clock" seconds, and map each tick back to UTC with the offset at that
  // tick: one offset for the whole axis puts every tick after a DST change an hour off.
  const localFirst = Math.ceil((t0 - offsetS(t0)) / step) * step;
  const ticks = [];
  for (let local = localFirst; ; local += step) {
    let t = local + offsetS(local + offsetS(t0));
    t = local + offsetS(t);
    if (t > t1 + 1e-6) break;
    // A wall-clock time the change skips maps onto a neighbour's instant: keep one of them.
    if (t >= t0 - 1e-6 && (!ticks.length || t > ticks[ticks.length - 1])) ticks.push(t);
  }
  return { ticks, step, span };
}

/** A time tick's label: the clock ("14:00", with seconds under a minute's step), the day on long axes. */
export function tickLabel(t, step, span) {
  if (span > 2 * 86400) return step >= 86400 ? fmtDay(t) : fmtDay(t) + " " + fmtClock(t);
  return fmtClock(t, step < 60);
}

/** The last finite value of a series, or null. */
export function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) if (isNum(values[i])) return values[i];
  return null;
}

/**
 * The index in sorted `times` nearest to `t` (the earlier one on a tie); -1 for no times.
 * Binary search: the crosshair asks on every pointer move.
 */
export function nearestIndex(times, t) {
  if (!times.length) return -1;
  let a = 0;
  let b = times.length - 1;
  while (b - a > 1) {
    const mid = (a + b) >> 1;
    if (times[mid] < t) a = mid;
    else b = mid;
  }
  return Math.abs(times[a] - t) <= Math.abs(times[b] - t) ? a : b;
}

/**
 * The time range a chart spans: from the first point (or earlier, to show the whole window of
 * `windowS` seconds whose newest bucket starts at the last point and lasts `step`) to the last
 * point; at least `max(10, step)` seconds wide. Returns {t0, t1}.
 */
export function timeDomain(times, windowS, step) {
  const t1 = times[times.length - 1];
  let t0 = times[0];
  if (windowS) t0 = Math.min(t0, t1 - windowS + (step || 0));
  if (t1 - t0 < 1) t0 = t1 - Math.max(10, step || 10);
  return { t0, t1 };
}

/**
 * The value range of a chart and its tick step: {lo, hi, step}.
 * opts: min (default 0), max, fixedMax (hi is exactly max), minRange (the smallest hi - lo when
 * the data is flat, default 1), ticks (about how many steps, default 4).
 */
export function valueDomain(series, opts = {}) {
  const lo = isNum(opts.min) ? opts.min : 0;
  let hi = -Infinity;
  for (const s of series) for (const v of s.values) if (isNum(v) && v > hi) hi = v;
  if (isNum(opts.max)) hi = Math.max(opts.max, opts.fixedMax ? 0 : hi);
  if (!Number.isFinite(hi) || hi <= lo) hi = lo + (opts.minRange || 1);
  const step = niceStep(hi - lo, opts.ticks || 4);
  hi = opts.fixedMax && isNum(opts.max) ? opts.max : Math.ceil((hi - 1e-9) / step) * step;
  return { lo, hi, step };
}

/** The y axis ticks from lo to hi (inclusive, within float noise) every `step`. */
export function valueTicks(lo, hi, step) {
  const ticks = [];
  if (!(step > 0)) return ticks;
  // Counted, not accumulated: adding 0.1 ten times is not 1.
  for (let k = 0; lo + k * step <= hi + step / 1000; k++) ticks.push(lo + k * step);
  return ticks;
}

function point(p) {
  return p[0].toFixed(1) + "," + p[1].toFixed(1);
}

/**
 * SVG path data for one series: {line, area, points}. x(t) and y(v) map to pixels; values are
 * clamped to [lo, hi] and a missing value breaks the line (a gap, not a drop to zero). A lone
 * point gets a tiny segment so round caps still show it. `area` (when withArea) closes each
 * segment down to y(lo). `points` counts the finite values drawn.
 */
export function seriesPath(times, values, x, y, lo, hi, withArea) {
  let line = "";
  let area = "";
  let points = 0;
  let segment = [];
  const base = y(lo).toFixed(1);
  const flush = () => {
    if (!segment.length) return;
    let part = segment.map((p, j) => (j ? "L" : "M") + point(p)).join("");
    if (segment.length === 1) part += "h0.1";
    line += part;
    if (withArea) {
      const first = segment[0][0].toFixed(1);
      const last = segment[segment.length - 1][0].toFixed(1);
      area += "M" + first + "," + base + part.replace(/^M/, "L") + "L" + last + "," + base + "Z";
    }
    segment = [];
  };
  for (let i = 0; i < times.length; i++) {
    const v = values[i];
    if (isNum(v)) {
      segment.push([x(times[i]), y(Math.min(hi, Math.max(lo, v)))]);
      points++;
    } else {
      flush();
    }
  }
  flush();
  return { line, area, points };
}

/**
 * A sparkline's path data in a width x height box: {line, area, points}, or null with fewer
 * than two points (the caller draws a flat baseline). Scaled from 0 to the largest value;
 * missing values sit on the baseline; more points than half the width are averaged down.
 */
export function sparkPath(values, width, height) {
  let data = values || [];
  if (data.length > width / 2) {
    const ds = downsample(
      data.map((_, i) => i),
      [{ values: data, agg: "avg" }],
      Math.floor(width / 2),
    );
    data = ds.series[0].values;
  }
  if (data.length < 2) return null;
  let max = 0;
  for (const v of data) if (isNum(v) && v > max) max = v;
  const dx = (width - 2) / (data.length - 1);
  let line = "";
  data.forEach((v, i) => {
    const y = max > 0 && isNum(v) ? height - 2 - (v / max) * (height - 4) : height - 2;
    line += (i ? "L" : "M") + (1 + i * dx).toFixed(1) + "," + y.toFixed(1);
  });
  const area = line + "L" + (width - 1) + "," + (height - 1) + "L1," + (height - 1) + "Z";
  return { line, area, points: data.length };
}
