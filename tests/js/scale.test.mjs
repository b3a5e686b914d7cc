// Specifications of otel_monitor/analytics/static/js/scale.js (node --test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as s from "../../otel_monitor/analytics/static/js/scale.js";

process.env.TZ = "UTC";

/** Run `fn` with the process in time zone `tz` (Node re-reads TZ when it is assigned). */
function inZone(tz, fn) {
  const before = process.env.TZ;
  process.env.TZ = tz;
  try {
    return fn();
  } finally {
    process.env.TZ = before;
  }
}

const utc = (...parts) => Date.UTC(...parts) / 1000;

describe("downsample", () => {
  it("returns the input as it is when it has no more points than asked", () => {
    const times = [1, 2, 3];
    const series = [{ values: [1, 2, 3] }];
    const out = s.downsample(times, series, 3);
    assert.equal(out.times, times);
    assert.equal(out.series, series);
  });
  it("averages each bucket and keeps the bucket's first time", () => {
    const out = s.downsample([0, 10, 20, 30, 40], [{ label: "a", values: [1, 3, 5, 7, 9], cls: "c1" }], 2);
    assert.deepEqual(out.times, [0, 30]);
    assert.deepEqual(out.series, [{ label: "a", values: [3, 8], cls: "c1" }]);
  });
  it("takes the maximum of each bucket for an agg: max series", () => {
    const out = s.downsample([0, 1, 2, 3], [{ values: [5, 1, 2, 8], agg: "max" }], 2);
    assert.deepEqual(out.series[0].values, [5, 8]);
  });
  it("skips missing values in a bucket and leaves an all-missing bucket a gap", () => {
    const out = s.downsample([0, 1, 2, 3, 4, 5], [{ values: [null, 4, NaN, null, 6, undefined] }], 3);
    assert.deepEqual(out.series[0].values, [4, null, 6]);
  });
  it("handles several series at once and does not change its input", () => {
    const input = [{ values: [1, 2, 3, 4] }, { values: [10, 20, 30, 40], agg: "max" }];
    const out = s.downsample([0, 1, 2, 3], input, 2);
    assert.deepEqual(out.series.map((x) => x.values), [[1.5, 3.5], [20, 40]]);
    assert.deepEqual(input[0].values, [1, 2, 3, 4]);
  });
  it("handles an empty series", () => {
    assert.deepEqual(s.downsample([], [{ values: [] }], 10), { times: [], series: [{ values: [] }] });
  });
});

describe("niceStep", () => {
  it("picks 1, 2, 2.5, 5 or 10 times a power of ten", () => {
    assert.equal(s.niceStep(10, 4), 2.5);
    assert.equal(s.niceStep(100, 4), 25);
    assert.equal(s.niceStep(1, 4), 0.25);
    assert.equal(s.niceStep(7, 4), 2);
    assert.equal(s.niceStep(3, 3), 1);
    assert.equal(s.niceStep(16, 4), 5);
    assert.equal(s.niceStep(32, 4), 10);
  });
  it("scales to huge and tiny ranges", () => {
    assert.equal(s.niceStep(4e12, 4), 1e12);
    assert.equal(s.niceStep(0.004, 4), 0.001);
  });
  it("treats a count under one as one", () => {
    assert.equal(s.niceStep(10, 0), 10);
  });
  it("answers 1 for a range with no step (zero, negative, NaN, infinite), so tick loops end", () => {
    for (const range of [0, -5, NaN, Infinity, undefined]) assert.equal(s.niceStep(range, 4), 1, String(range));
  });
});

describe("timeTicks", () => {
  it("picks the smallest step that keeps the ticks within maxTicks", () => {
    assert.equal(s.timeTicks(0, 900, 6).step, 300); // 15 minutes, 6 ticks: every 5 min
    assert.equal(s.timeTicks(0, 60, 6).step, 10);
    assert.equal(s.timeTicks(0, 60, 5).step, 15);
    assert.equal(s.timeTicks(0, 7 * 86400, 7).step, 86400);
  });
  it("puts ticks on multiples of the step from midnight, within [t0, t1]", () => {
    const t0 = utc(2024, 0, 10, 12, 3, 20);
    const out = s.timeTicks(t0, t0 + 900, 6);
    assert.deepEqual(out.ticks, [utc(2024, 0, 10, 12, 5), utc(2024, 0, 10, 12, 10), utc(2024, 0, 10, 12, 15)]);
    assert.equal(out.span, 900);
  });
  it("includes a tick exactly at t0 and at t1", () => {
    const t0 = utc(2024, 0, 10, 12, 0);
    assert.deepEqual(s.timeTicks(t0, t0 + 600, 2).ticks, [t0, t0 + 300, t0 + 600]);
  });
  it("uses the largest step (2 days) when even it gives too many ticks", () => {
    const out = s.timeTicks(0, 30 * 86400, 3);
    assert.equal(out.step, 172800);
    assert.equal(out.ticks.length, 16);
  });
  it("treats a span under a second as one second", () => {
    assert.equal(s.timeTicks(100, 100, 5).span, 1);
  });
  it("gives no ticks for a missing or reversed time range", () => {
    assert.deepEqual(s.timeTicks(NaN, 100, 5).ticks, []);
    assert.deepEqual(s.timeTicks(0, null, 5).ticks, []);
    assert.deepEqual(s.timeTicks(1000, 0, 5).ticks, []);
  });
  it("aligns to local midnight in the browser's zone (UTC+5:30 has no DST)", () => {
    inZone("Asia/Kolkata", () => {
      const t0 = utc(2024, 0, 10, 0, 0); // 05:30 local
      const out = s.timeTicks(t0, t0 + 86400, 4);
      assert.equal(out.step, 21600);
      // 06:00, 12:00, 18:00, 00:00 local = 00:30, 06:30, 12:30, 18:30 UTC
      assert.deepEqual(out.ticks, [utc(2024, 0, 10, 0, 30), utc(2024, 0, 10, 6, 30), utc(2024, 0, 10, 12, 30), utc(2024, 0, 10, 18, 30)]);
    });
  });
  it("keeps ticks on local midnight across a daylight-saving change", () => {
    inZone("Europe/Berlin", () => {
      // Berlin moved from UTC+1 to UTC+2 on 31 March 2024 at 02:00 local time.
      const t0 = utc(2024, 2, 28, 12);
      const out = s.timeTicks(t0, t0 + 7 * 86400, 7);
      assert.equal(out.step, 86400);
      const hours = out.ticks.map((t) => new Date(t * 1000).getHours());
      assert.deepEqual(hours, [0, 0, 0, 0, 0, 0, 0]);
      assert.equal(out.ticks[0], utc(2024, 2, 28, 23)); // Fri 29 March, 00:00 at UTC+1
      assert.equal(out.ticks[3], utc(2024, 2, 31, 22)); // Mon 1 April, 00:00 at UTC+2
    });
  });
  it("keeps 6-hour ticks on 00/06/12/18 local after the clocks go back", () => {
    inZone("Europe/Berlin", () => {
      // Back from UTC+2 to UTC+1 on 27 October 2024 at 03:00 local time.
      const t0 = utc(2024, 9, 26, 12);
      const out = s.timeTicks(t0, t0 + 86400, 4);
      const hours = out.ticks.map((t) => new Date(t * 1000).getHours());
      assert.deepEqual(hours, [18, 0, 6, 12]);
      const gaps = out.ticks.slice(1).map((t, i) => t - out.ticks[i]);
      assert.deepEqual(gaps, [21600, 25200, 21600]); // the night with the extra hour is 7 h long
    });
  });
});

describe("tickLabel", () => {
  const t = utc(2024, 2, 5, 7, 4, 9);
  it("shows the clock on axes up to two days, with seconds under a minute's step", () => {
    assert.equal(s.tickLabel(t, 300, 3600), "07:04");
    assert.equal(s.tickLabel(t, 15, 60), "07:04:09");
  });
  it("shows the day on longer axes, and the clock too below a day's step", () => {
    assert.equal(s.tickLabel(t, 86400, 7 * 86400), "Tue 5");
    assert.equal(s.tickLabel(t, 43200, 3 * 86400), "Tue 5 07:04");
  });
});

describe("lastValue", () => {
  it("returns the last finite value, skipping trailing gaps", () => {
    assert.equal(s.lastValue([1, 2, null, NaN]), 2);
    assert.equal(s.lastValue([0]), 0);
  });
  it("returns null for an empty or all-missing series", () => {
    assert.equal(s.lastValue([]), null);
    assert.equal(s.lastValue([null, undefined]), null);
  });
});

describe("nearestIndex", () => {
  const times = [0, 10, 20, 30];
  it("finds the nearest time, the earlier one on a tie", () => {
    assert.equal(s.nearestIndex(times, 12), 1);
    assert.equal(s.nearestIndex(times, 16), 2);
    assert.equal(s.nearestIndex(times, 15), 1);
    assert.equal(s.nearestIndex(times, 30), 3);
  });
  it("clamps to the ends outside the range", () => {
    assert.equal(s.nearestIndex(times, -100), 0);
    assert.equal(s.nearestIndex(times, 1e9), 3);
  });
  it("handles one point and no points", () => {
    assert.equal(s.nearestIndex([5], 100), 0);
    assert.equal(s.nearestIndex([], 100), -1);
  });
  it("finds every point of a long series exactly", () => {
    const long = Array.from({ length: 1001 }, (_, i) => i * 60);
    for (const i of [0, 1, 499, 500, 999, 1000]) assert.equal(s.nearestIndex(long, i * 60 + 1), i);
  });
});

describe("timeDomain", () => {
  it("spans from the first to the last point without a window", () => {
    assert.deepEqual(s.timeDomain([100, 200, 300]), { t0: 100, t1: 300 });
  });
  it("reaches back a whole window (its newest bucket starting at the last point)", () => {
    assert.deepEqual(s.timeDomain([800, 900, 1000], 900, 10), { t0: 110, t1: 1000 });
  });
  it("never cuts points off when they span more than the window", () => {
    assert.deepEqual(s.timeDomain([0, 1000], 60, 10), { t0: 0, t1: 1000 });
  });
  it("widens a single point to at least one step, or ten seconds", () => {
    assert.deepEqual(s.timeDomain([500]), { t0: 490, t1: 500 });
    assert.deepEqual(s.timeDomain([500], undefined, 60), { t0: 440, t1: 500 });
  });
});

describe("valueDomain", () => {
  const series = (...values) => [{ values }];
  it("runs from zero to the max rounded up to a nice step", () => {
    assert.deepEqual(s.valueDomain(series(3, 7.2, null)), { lo: 0, hi: 8, step: 2 });
  });
  it("keeps a max that already is a multiple of the step", () => {
    assert.deepEqual(s.valueDomain(series(10)), { lo: 0, hi: 10, step: 2.5 });
  });
  it("gives a flat or empty series a range of minRange (default 1)", () => {
    assert.deepEqual(s.valueDomain(series(0, 0)), { lo: 0, hi: 1, step: 0.25 });
    assert.deepEqual(s.valueDomain([]), { lo: 0, hi: 1, step: 0.25 });
    assert.deepEqual(s.valueDomain(series(null), { minRange: 1e6 }), { lo: 0, hi: 1e6, step: 250000 });
  });
  it("honours a fixed scale (0 to 100 percent) whatever the data", () => {
    assert.deepEqual(s.valueDomain(series(12), { min: 0, max: 100, fixedMax: true }), { lo: 0, hi: 100, step: 25 });
    assert.deepEqual(s.valueDomain(series(140), { min: 0, max: 100, fixedMax: true }), { lo: 0, hi: 100, step: 25 });
  });
  it("treats a max without fixedMax as a floor for hi", () => {
    assert.deepEqual(s.valueDomain(series(0.2), { max: 1 }), { lo: 0, hi: 1, step: 0.25 });
    assert.deepEqual(s.valueDomain(series(3), { max: 1 }), { lo: 0, hi: 3, step: 1 });
  });
  it("uses fewer steps when asked (short charts)", () => {
    assert.deepEqual(s.valueDomain(series(9), { ticks: 3 }), { lo: 0, hi: 10, step: 5 });
  });
  it("scales huge values", () => {
    assert.deepEqual(s.valueDomain(series(3.3e12)), { lo: 0, hi: 4e12, step: 1e12 });
  });
  it("keeps negative data out of a chart that starts at zero", () => {
    assert.deepEqual(s.valueDomain(series(-5, -1)), { lo: 0, hi: 1, step: 0.25 });
  });
});

describe("valueTicks", () => {
  it("counts from lo to hi inclusive", () => {
    assert.deepEqual(s.valueTicks(0, 8, 2), [0, 2, 4, 6, 8]);
  });
  it("does not lose the last tick to float sums", () => {
    const ticks = s.valueTicks(0, 1, 0.1);
    assert.equal(ticks.length, 11);
    assert.ok(Math.abs(ticks[10] - 1) < 1e-12);
  });
  it("gives no ticks for a step that is not positive", () => {
    assert.deepEqual(s.valueTicks(0, 1, 0), []);
    assert.deepEqual(s.valueTicks(0, 1, NaN), []);
  });
});

describe("seriesPath", () => {
  const x = (t) => t * 10;
  const y = (v) => 100 - v;
  it("draws one line through finite points, one decimal per coordinate", () => {
    assert.deepEqual(s.seriesPath([0, 1, 2], [0, 50, 25], x, y, 0, 100, false), {
      line: "M0.0,100.0L10.0,50.0L20.0,75.0",
      area: "",
      points: 3,
    });
  });
  it("breaks the line at a missing value instead of dropping to zero", () => {
    const out = s.seriesPath([0, 1, 2, 3], [10, null, 20, 30], x, y, 0, 100, false);
    assert.equal(out.line, "M0.0,90.0h0.1M20.0,80.0L30.0,70.0");
    assert.equal(out.points, 3);
  });
  it("clamps values to the scale", () => {
    const out = s.seriesPath([0, 1], [-5, 500], x, y, 0, 100, false);
    assert.equal(out.line, "M0.0,100.0L10.0,0.0");
  });
  it("closes an area down to the baseline for each segment", () => {
    const out = s.seriesPath([0, 1, 2], [10, 20, null], x, y, 0, 100, true);
    assert.equal(out.area, "M0.0,100.0L0.0,90.0L10.0,80.0L10.0,100.0Z");
  });
  it("draws nothing for an empty or all-missing series", () => {
    assert.deepEqual(s.seriesPath([], [], x, y, 0, 1, true), { line: "", area: "", points: 0 });
    assert.deepEqual(s.seriesPath([0, 1], [null, NaN], x, y, 0, 1, true), { line: "", area: "", points: 0 });
  });
});

describe("sparkPath", () => {
  it("scales from zero to the largest value inside a one-pixel margin", () => {
    assert.deepEqual(s.sparkPath([0, 5, 10], 12, 24), {
      line: "M1.0,22.0L6.0,12.0L11.0,2.0",
      area: "M1.0,22.0L6.0,12.0L11.0,2.0L11,23L1,23Z",
      points: 3,
    });
  });
  it("puts missing values and an all-zero series on the baseline", () => {
    assert.equal(s.sparkPath([0, null, 0], 12, 24).line, "M1.0,22.0L6.0,22.0L11.0,22.0");
  });
  it("averages down to at most half the width in points (buckets of ceil(n / max) points)", () => {
    const out = s.sparkPath(Array.from({ length: 500 }, (_, i) => i), 96, 24);
    assert.equal(out.points, 46); // 500 points, at most 48: buckets of 11
  });
  it("gives null under two points (the caller draws a flat line)", () => {
    assert.equal(s.sparkPath([], 96, 24), null);
    assert.equal(s.sparkPath([3], 96, 24), null);
    assert.equal(s.sparkPath(null, 96, 24), null);
  });
});
