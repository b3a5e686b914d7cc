// Specifications of otel_monitor/analytics/static/js/format.js (node --test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as f from "../../otel_monitor/analytics/static/js/format.js";

process.env.TZ = "UTC"; // fmtClock and fmtDay show local time: the tests pin the zone

const NOT_NUMBERS = [null, undefined, NaN, Infinity, -Infinity, "12", {}, []];
const FORMATTERS = ["fmtCount", "fmtMs", "fmtPct", "fmtRps", "fmtBytes", "fmtBps", "fmtApdex", "fmtUptime", "fmtSpan", "fmtClock", "fmtDay", "fmtAgo"];

describe("isNum", () => {
  it("accepts finite numbers only, not numeric strings, NaN or infinities", () => {
    assert.deepEqual([0, -1.5, 1e300].map(f.isNum), [true, true, true]);
    assert.deepEqual(NOT_NUMBERS.map(f.isNum), NOT_NUMBERS.map(() => false));
  });
});

describe("every formatter", () => {
  for (const name of FORMATTERS) {
    it(`${name} shows a dash for anything that is not a finite number`, () => {
      for (const v of NOT_NUMBERS) assert.equal(f[name](v), "—", `${name}(${String(v)})`);
    });
  }
  it("fmtUnit shows a dash for a missing value whatever the unit", () => {
    for (const unit of ["s", "By", "%", "{order}", undefined]) assert.equal(f.fmtUnit(null, unit), "—");
  });
  it("fmtCheck says 'no data' for a missing value", () => {
    assert.equal(f.fmtCheck(null, "ms"), "no data");
    assert.equal(f.fmtCheck(NaN, "%"), "no data");
  });
});

describe("fmtCount", () => {
  it("groups whole numbers under ten thousand in en-US style", () => {
    assert.equal(f.fmtCount(0), "0");
    assert.equal(f.fmtCount(7), "7");
    assert.equal(f.fmtCount(9999), "9,999");
    assert.equal(f.fmtCount(-42), "-42");
  });
  it("shows two decimals for a fraction", () => {
    assert.equal(f.fmtCount(0.5), "0.50");
    assert.equal(f.fmtCount(3.14159), "3.14");
  });
  it("switches to k at ten thousand and to M at a million, negatives included", () => {
    assert.equal(f.fmtCount(10000), "10.0 k");
    assert.equal(f.fmtCount(123456), "123.5 k");
    assert.equal(f.fmtCount(1e6), "1.00 M");
    assert.equal(f.fmtCount(-2.5e6), "-2.50 M");
  });
  it("keeps huge values in M, grouped", () => {
    assert.equal(f.fmtCount(1e12), "1,000,000.00 M");
  });
});

describe("fmtMs", () => {
  it("shows small durations with two decimals, then one, then none", () => {
    assert.equal(f.fmtMs(0), "0.00 ms");
    assert.equal(f.fmtMs(1.234), "1.23 ms");
    assert.equal(f.fmtMs(12.34), "12.3 ms");
    assert.equal(f.fmtMs(123.4), "123 ms");
  });
  it("shows a second and more in seconds, with one decimal from ten seconds", () => {
    assert.equal(f.fmtMs(1000), "1.00 s");
    assert.equal(f.fmtMs(2500), "2.50 s");
    assert.equal(f.fmtMs(12345), "12.3 s");
    assert.equal(f.fmtMs(3.6e6), "3,600.0 s");
  });
  it("takes the next form where rounding would grow the text (999.6 ms is 1.00 s, not 1,000 ms)", () => {
    assert.equal(f.fmtMs(999.4), "999 ms");
    assert.equal(f.fmtMs(999.6), "1.00 s");
    assert.equal(f.fmtMs(99.96), "100 ms");
    assert.equal(f.fmtMs(9.996), "10.0 ms");
    assert.equal(f.fmtMs(9996), "10.0 s");
  });
});

describe("fmtPct", () => {
  it("shows zero without decimals", () => assert.equal(f.fmtPct(0), "0 %"));
  it("shows two decimals under ten percent and one from ten, negatives by magnitude", () => {
    assert.equal(f.fmtPct(0.123), "0.12 %");
    assert.equal(f.fmtPct(9.5), "9.50 %");
    assert.equal(f.fmtPct(10), "10.0 %");
    assert.equal(f.fmtPct(100), "100.0 %");
    assert.equal(f.fmtPct(-5), "-5.00 %");
    assert.equal(f.fmtPct(-50), "-50.0 %");
  });
});

describe("fmtRps", () => {
  it("shows zero as '0 req/s' and more decimals for slower rates", () => {
    assert.equal(f.fmtRps(0), "0 req/s");
    assert.equal(f.fmtRps(0.0123), "0.012 req/s");
    assert.equal(f.fmtRps(0.5), "0.50 req/s");
    assert.equal(f.fmtRps(12.34), "12.3 req/s");
    assert.equal(f.fmtRps(12345.6), "12,345.6 req/s");
  });
});

describe("fmtBytes and fmtBps", () => {
  it("uses decimal units (1 kB = 1000 B)", () => {
    assert.equal(f.fmtBytes(0), "0 B");
    assert.equal(f.fmtBytes(999), "999 B");
    assert.equal(f.fmtBytes(1000), "1.0 kB");
    assert.equal(f.fmtBytes(1536), "1.5 kB");
    assert.equal(f.fmtBytes(250e6), "250 MB");
    assert.equal(f.fmtBytes(8.2e9), "8.2 GB");
  });
  it("keeps the sign of a negative amount", () => {
    assert.equal(f.fmtBytes(-1500), "-1.5 kB");
  });
  it("stops at PB for huge values", () => {
    assert.equal(f.fmtBytes(5e18), "5,000 PB");
  });
  it("carries to the next unit where rounding would print 1,000 (999.7 B is 1.0 kB)", () => {
    assert.equal(f.fmtBytes(999.7), "1.0 kB");
    assert.equal(f.fmtBytes(999600), "1.0 MB");
  });
  it("appends /s for rates", () => {
    assert.equal(f.fmtBps(2048), "2.0 kB/s");
  });
});

describe("fmtApdex and plural", () => {
  it("shows an apdex score with two decimals", () => {
    assert.equal(f.fmtApdex(1), "1.00");
    assert.equal(f.fmtApdex(0.876), "0.88");
  });
  it("pluralises every count but exactly one", () => {
    assert.equal(f.plural(1, "request"), "1 request");
    assert.equal(f.plural(0, "request"), "0 requests");
    assert.equal(f.plural(12000, "error"), "12.0 k errors");
  });
});

describe("durations", () => {
  it("fmtUptime counts down from the largest whole unit", () => {
    assert.equal(f.fmtUptime(0), "0 s");
    assert.equal(f.fmtUptime(59.9), "59 s");
    assert.equal(f.fmtUptime(60), "1 min");
    assert.equal(f.fmtUptime(3600 + 125), "1 h 2 min");
    assert.equal(f.fmtUptime(2 * 86400 + 3 * 3600 + 59), "2 d 3 h");
  });
  it("fmtSpan rounds to the unit a window is read in", () => {
    assert.equal(f.fmtSpan(0.2), "1 s");
    assert.equal(f.fmtSpan(45), "45 s");
    assert.equal(f.fmtSpan(90), "2 min");
    assert.equal(f.fmtSpan(5400), "1.5 h");
    assert.equal(f.fmtSpan(40000), "11 h");
    assert.equal(f.fmtSpan(3 * 86400), "3.0 days");
  });
  it("formatInterval shows whole minutes as minutes and anything else in seconds", () => {
    assert.equal(f.formatInterval(30), "30 s");
    assert.equal(f.formatInterval(120), "2 min");
    assert.equal(f.formatInterval(90), "90 s");
    assert.equal(f.formatInterval(1.25), "1.3 s");
  });
});

describe("clock and day (UTC here)", () => {
  const t = Date.UTC(2024, 2, 5, 7, 4, 9) / 1000; // Tue 5 March 2024, 07:04:09 UTC
  it("fmtClock pads hours and minutes, and shows seconds when asked", () => {
    assert.equal(f.fmtClock(t), "07:04");
    assert.equal(f.fmtClock(t, true), "07:04:09");
    assert.equal(f.fmtClock(0, true), "00:00:00");
  });
  it("fmtDay names the weekday and the day of the month", () => {
    assert.equal(f.fmtDay(t), "Tue 5");
    assert.equal(f.fmtDay(0), "Thu 1");
  });
  it("fmtAgo counts back from the given now", () => {
    const now = 1_700_000_000;
    assert.equal(f.fmtAgo(now, now), "just now");
    assert.equal(f.fmtAgo(now - 4.9, now), "just now");
    assert.equal(f.fmtAgo(now - 5, now), "5 s ago");
    assert.equal(f.fmtAgo(now - 61, now), "1 min ago");
    assert.equal(f.fmtAgo(now - 7200, now), "2 h ago");
    assert.equal(f.fmtAgo(now - 3 * 86400, now), "3 d ago");
    assert.equal(f.fmtAgo(now + 60, now), "just now"); // a clock a little ahead is not "-60 s ago"
  });
});

describe("OpenTelemetry units", () => {
  it("fmtUnit formats time, bytes and percent units, and counts for dimensionless ones", () => {
    assert.equal(f.fmtUnit(0.25, "s"), "250 ms");
    assert.equal(f.fmtUnit(12.5, "ms"), "12.5 ms");
    assert.equal(f.fmtUnit(2048, "By"), "2.0 kB");
    assert.equal(f.fmtUnit(2048, "By/s"), "2.0 kB/s");
    assert.equal(f.fmtUnit(12, "%"), "12.0 %");
    for (const unit of ["1", "", undefined, null]) assert.equal(f.fmtUnit(3, unit), "3");
  });
  it("fmtUnit drops {annotations} but shows other units after the number", () => {
    assert.equal(f.fmtUnit(3, "{order}"), "3");
    assert.equal(f.fmtUnit(3, "req"), "3 req");
    assert.equal(f.fmtUnit(20000, "MiBy"), "20.0 k MiBy");
  });
  it("unitLabel names units in words and unwraps annotations", () => {
    assert.equal(f.unitLabel("s"), "seconds");
    assert.equal(f.unitLabel("By"), "bytes");
    assert.equal(f.unitLabel("{order}"), "order");
    assert.equal(f.unitLabel("req"), "req");
    assert.equal(f.unitLabel("1"), "");
    assert.equal(f.unitLabel(undefined), "");
    assert.equal(f.unitLabel("toString"), "toString"); // not Object.prototype's
  });
  it("fmtCheck formats a health check in the unit /health gives", () => {
    assert.equal(f.fmtCheck(250, "ms"), "250 ms");
    assert.equal(f.fmtCheck(85, "%"), "85.0 %");
    assert.equal(f.fmtCheck(5e8, "bytes"), "500 MB");
    assert.equal(f.fmtCheck(3, "workers"), "3 workers");
    assert.equal(f.fmtCheck(3, ""), "3");
  });
});

describe("attributesText", () => {
  it("lists attributes sorted by key", () => {
    assert.equal(f.attributesText({ b: 2, a: "x", c: true }), "a=x, b=2, c=true");
  });
  it("says so when there are none", () => {
    assert.equal(f.attributesText({}), "(no attributes)");
    assert.equal(f.attributesText(null), "(no attributes)");
  });
});

describe("axis labels", () => {
  it("short keeps up to three decimals and no trailing zeros", () => {
    assert.equal(f.short(0.25), "0.25");
    assert.equal(f.short(0.1 + 0.2), "0.3");
    assert.equal(f.short(1 / 3), "0.333");
    assert.equal(f.short(2), "2");
  });
  it("axis formatters abbreviate thousands and add the unit", () => {
    assert.equal(f.axisNumber(500), "500");
    assert.equal(f.axisNumber(2500), "2.5k");
    assert.equal(f.axisPct(12.5), "12.5%");
    assert.equal(f.axisMs(250), "250 ms");
    assert.equal(f.axisMs(1500), "1.5 s");
  });
  it("byte axes show a bare zero and units elsewhere", () => {
    assert.equal(f.axisBytes(0), "0");
    assert.equal(f.axisBytes(2e6), "2.0 MB");
    assert.equal(f.axisBps(0), "0");
    assert.equal(f.axisBps(2e3), "2.0 kB/s");
  });
});
