/* otel_monitor built-in dashboard.
 *
 * Reads the analytics JSON API (docs/analytics-api.md) under the prefix given by the page's
 * data-api attribute, and draws everything itself: tables with textContent, charts as hand-made SVG.
 * Rules kept throughout: data never goes through innerHTML; no inline style attributes (the CSP
 * forbids them; positions and widths go through the CSSOM); fetch with same-origin credentials and
 * a 401 sends the browser to the login page.
 */
(function () {
  "use strict";

  var SVGNS = "http://www.w3.org/2000/svg";
  var body = document.body;
  var API = body.dataset.api || "";
  var LOGIN_URL = body.dataset.loginUrl || (API + "/login");
  var REFRESH_S = Math.max(1, parseFloat(body.dataset.refreshS) || 30);
  var WINDOW_S = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
  var VIEWS = ["overview", "endpoints", "system", "traces", "errors", "custom"];
  var BUILTIN_PREFIXES = ["http.", "system.", "process.", "otel."];

  var state = {
    view: "overview",
    detail: null,            // "METHOD route" of the endpoint shown in detail, or null
    window: "15m",
    paused: false,
    timer: null,
    generation: 0,
    loading: false,
    lastUpdate: null,
    sort: { key: "count", dir: "desc" },
    filter: "",
    method: "",
    traceKind: "all",
    traceId: null,           // trace shown as a waterfall (#traces/<32 hex>), or null
    traceShown: null,        // the trace id the waterfall was drawn for
    openSpans: {},           // span id -> its attributes panel is open
    customFilter: "",
    endpoints: null,         // last /endpoints + /timeseries for the table (re-sorted without refetch)
    custom: null,
    customSeries: null,      // last /metrics/series (the custom instruments over the window)
    rerender: null           // redraws the current view from the last data (on resize)
  };

  // ---------------------------------------------------------------------------------------------
  // DOM helpers: text only, never markup

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVGNS, tag);
    if (attrs) {
      for (var key in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, key)) node.setAttribute(key, String(attrs[key]));
      }
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function emptyState(title, hint) {
    var box = el("div", "empty");
    box.appendChild(el("div", "empty-title", title));
    if (hint) box.appendChild(el("div", "empty-hint", hint));
    return box;
  }

  // ---------------------------------------------------------------------------------------------
  // Numbers with units

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fixed(v, digits) {
    return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function fmtCount(v) {
    if (!isNum(v)) return "—";
    if (Math.abs(v) >= 1e6) return fixed(v / 1e6, 2) + " M";
    if (Math.abs(v) >= 1e4) return fixed(v / 1e3, 1) + " k";
    return Math.round(v) === v ? v.toLocaleString("en-US") : fixed(v, 2);
  }

  function fmtMs(v) {
    if (!isNum(v)) return "—";
    if (v >= 1000) return fixed(v / 1000, v >= 10000 ? 1 : 2) + " s";
    if (v >= 100) return fixed(v, 0) + " ms";
    if (v >= 10) return fixed(v, 1) + " ms";
    return fixed(v, 2) + " ms";
  }

  function fmtPct(v) {
    if (!isNum(v)) return "—";
    if (v === 0) return "0 %";
    if (Math.abs(v) < 10) return fixed(v, 2) + " %";
    return fixed(v, 1) + " %";
  }

  function fmtRps(v) {
    if (!isNum(v)) return "—";
    if (v === 0) return "0 req/s";
    if (v < 0.1) return fixed(v, 3) + " req/s";
    if (v < 10) return fixed(v, 2) + " req/s";
    return fixed(v, 1) + " req/s";
  }

  var BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

  function fmtBytes(v) {
    if (!isNum(v)) return "—";
    var i = 0;
    var n = Math.abs(v);
    while (n >= 1000 && i < BYTE_UNITS.length - 1) { n /= 1000; i++; }
    var sign = v < 0 ? "-" : "";
    return sign + (i === 0 ? fixed(n, 0) : fixed(n, n >= 100 ? 0 : 1)) + " " + BYTE_UNITS[i];
  }

  /** "1 request", "2 requests" (counts formatted as above). */
  function plural(n, word) { return fmtCount(n) + " " + word + (n === 1 ? "" : "s"); }

  function fmtBps(v) { return isNum(v) ? fmtBytes(v) + "/s" : "—"; }

  function fmtApdex(v) { return isNum(v) ? fixed(v, 2) : "—"; }

  function fmtUptime(s) {
    if (!isNum(s)) return "—";
    if (s < 60) return Math.floor(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function pad2(n) { return n < 10 ? "0" + n : String(n); }

  function fmtClock(t, seconds) {
    if (!isNum(t)) return "—";
    var d = new Date(t * 1000);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + (seconds ? ":" + pad2(d.getSeconds()) : "");
  }

  var DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

  function fmtDay(t) {
    var d = new Date(t * 1000);
    return DAYS[d.getDay()] + " " + d.getDate();
  }

  function fmtAgo(t) {
    if (!isNum(t)) return "—";
    var s = Date.now() / 1000 - t;
    if (s < 5) return "just now";
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  /** A value in an OpenTelemetry unit ("s", "ms", "By", "{order}", "1", "%"). */
  function fmtUnit(v, unit) {
    if (!isNum(v)) return "—";
    switch (unit) {
      case "s": return fmtMs(v * 1000);
      case "ms": return fmtMs(v);
      case "By": return fmtBytes(v);
      case "By/s": return fmtBps(v);
      case "%": return fmtPct(v);
      case "1": case "": case undefined: case null: return fmtCount(v);
      default:
        // "{order}" is an annotation (the card says "unit: order"); "req", "MiBy", ... are shown.
        return /^\{.*\}$/.test(String(unit)) ? fmtCount(v) : fmtCount(v) + " " + unit;
    }
  }

  function unitLabel(unit) {
    if (!unit || unit === "1") return "";
    var map = { s: "seconds", ms: "milliseconds", By: "bytes", "%": "percent" };
    return map[unit] || String(unit).replace(/^\{(.*)\}$/, "$1");
  }

  // ---------------------------------------------------------------------------------------------
  // The API

  function AuthRedirect() { this.message = "authentication needed"; }
  var redirecting = false;  // several fetches may get the 401: navigate once

  function api(path, params) {
    var query = new URLSearchParams(params || {}).toString();
    return fetch(API + path + (query ? "?" + query : ""), {
      credentials: "same-origin",
      cache: "no-store",
      // The marker makes the server answer an ended session with a challenge browsers do not
      // show a password dialog for (see dashboard.py): the page handles the 401 itself.
      headers: { "Accept": "application/json", "X-Requested-With": "otel-monitor-dashboard" }
    }).then(function (response) {
      if (response.status === 401) {
        if (!redirecting) {
          redirecting = true;
          window.location.assign(LOGIN_URL);
        }
        throw new AuthRedirect();
      }
      // /health answers 503 when unhealthy: that is data, not an error.
      if (response.ok || (response.status === 503 && path === "/health")) return response.json();
      if (response.status === 429) throw new Error("too many requests; waiting before the next refresh");
      throw new Error(path + " answered HTTP " + response.status);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Charts: our own SVG

  /** Merge neighbouring points so that a series has at most `max` points (avg or max per bucket). */
  function downsample(times, series, max) {
    var n = times.length;
    if (n <= max) return { times: times, series: series };
    var size = Math.ceil(n / max);
    var outTimes = [];
    var outSeries = series.map(function () { return []; });
    for (var start = 0; start < n; start += size) {
      var end = Math.min(n, start + size);
      outTimes.push(times[start]);
      for (var s = 0; s < series.length; s++) {
        var values = series[s].values;
        var useMax = series[s].agg === "max";
        var acc = null;
        var count = 0;
        for (var i = start; i < end; i++) {
          var v = values[i];
          if (!isNum(v)) continue;
          if (acc === null) acc = v;
          else acc = useMax ? Math.max(acc, v) : acc + v;
          count++;
        }
        outSeries[s].push(acc === null ? null : (useMax ? acc : acc / count));
      }
    }
    return {
      times: outTimes,
      series: series.map(function (s, idx) { return Object.assign({}, s, { values: outSeries[idx] }); })
    };
  }

  function niceStep(range, count) {
    var raw = range / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var n = raw / mag;
    var step = n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10;
    return step * mag;
  }

  var TIME_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800];

  function timeTicks(t0, t1, maxTicks) {
    var span = Math.max(1, t1 - t0);
    var step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) {
      if (span / TIME_STEPS[i] <= maxTicks) { step = TIME_STEPS[i]; break; }
    }
    var offset = new Date(t0 * 1000).getTimezoneOffset() * 60; // align ticks to local midnight
    var first = Math.ceil((t0 - offset) / step) * step + offset;
    var ticks = [];
    for (var t = first; t <= t1 + 1e-6; t += step) ticks.push(t);
    return { ticks: ticks, step: step, span: span };
  }

  function tickLabel(t, step, span) {
    if (span > 2 * 86400) return step >= 86400 ? fmtDay(t) : fmtDay(t) + " " + fmtClock(t);
    return fmtClock(t, step < 60);
  }

  var tooltip = null;

  function showTooltip(x, y, lines) {
    tooltip = tooltip || $("tooltip");
    clear(tooltip);
    lines.forEach(function (line, i) {
      var row = el("div", i === 0 ? "tooltip-title" : "tooltip-row");
      if (line.cls) row.appendChild(el("span", "swatch " + line.cls));
      row.appendChild(el("span", "tooltip-label", line.label));
      if (line.value !== undefined) row.appendChild(el("span", "tooltip-value", line.value));
      tooltip.appendChild(row);
    });
    tooltip.hidden = false;
    var w = tooltip.offsetWidth;
    var h = tooltip.offsetHeight;
    var left = Math.min(window.innerWidth - w - 8, Math.max(8, x + 14));
    var top = y - h - 12 < 8 ? y + 16 : y - h - 12;
    tooltip.style.left = left + "px";     // CSSOM, allowed by the CSP (no style attribute parsed)
    tooltip.style.top = top + "px";
  }

  function hideTooltip() { if (tooltip) tooltip.hidden = true; }

  /**
   * A chart card: title, latest value(s), legend, and an SVG line/area chart with axes.
   * spec: {title, times: [unix s], series: [{label, values, cls, agg}], fmt, axisFmt, min, max,
   *        area, height, windowS, step, empty}
   * Returns the card; call draw(card) after it is in the document (it measures its width).
   */
  function chartCard(spec) {
    var card = el("div", "card chart-card");
    var head = el("div", "chart-head");
    head.appendChild(el("h3", "chart-title", spec.title));
    var legend = el("div", "chart-legend");
    spec.series.forEach(function (s) {
      var item = el("span", "legend-item");
      item.appendChild(el("span", "swatch " + s.cls));
      if (spec.series.length > 1) item.appendChild(el("span", "legend-label", s.label));
      item.appendChild(el("span", "legend-value", spec.fmt(lastValue(s.values))));
      legend.appendChild(item);
    });
    head.appendChild(legend);
    card.appendChild(head);
    var box = el("div", "chart-box");
    card.appendChild(box);
    card._spec = spec;
    card._box = box;
    return card;
  }

  function lastValue(values) {
    for (var i = values.length - 1; i >= 0; i--) if (isNum(values[i])) return values[i];
    return null;
  }

  function drawChart(card) {
    var spec = card._spec;
    var box = clear(card._box);
    var hasData = spec.series.some(function (s) { return s.values.some(isNum); });
    if (!hasData || !spec.times.length) {
      box.appendChild(emptyState(spec.empty || "No data in this window yet."));
      box.classList.add("chart-empty");
      return;
    }
    box.classList.remove("chart-empty");
    var width = Math.max(240, Math.floor(box.clientWidth || 600));
    var height = spec.height || (width < 420 ? 150 : 180);
    var m = { l: 58, r: 14, t: 10, b: 24 };
    var iw = width - m.l - m.r;
    var ih = height - m.t - m.b;
    var ds = downsample(spec.times, spec.series, Math.max(20, Math.floor(iw / 2)));
    var times = ds.times;
    var series = ds.series;

    var tLast = times[times.length - 1];
    var t1 = tLast;
    var t0 = times[0];
    if (spec.windowS) t0 = Math.min(t0, t1 - spec.windowS + (spec.step || 0));
    if (t1 - t0 < 1) t0 = t1 - Math.max(10, spec.step || 10);

    var lo = isNum(spec.min) ? spec.min : 0;
    var hi = -Infinity;
    series.forEach(function (s) { s.values.forEach(function (v) { if (isNum(v) && v > hi) hi = v; }); });
    if (isNum(spec.max)) hi = Math.max(spec.max, spec.fixedMax ? 0 : hi);
    if (!isFinite(hi) || hi <= lo) hi = lo + (spec.minRange || 1);
    var yStep = niceStep(hi - lo, height < 170 ? 3 : 4);
    hi = spec.fixedMax ? spec.max : Math.ceil((hi - 1e-9) / yStep) * yStep;

    function X(t) { return m.l + (t - t0) / (t1 - t0) * iw; }
    function Y(v) { return m.t + ih - (v - lo) / (hi - lo) * ih; }

    var root = svgEl("svg", {
      "class": "chart", viewBox: "0 0 " + width + " " + height, width: width, height: height,
      role: "img", "aria-label": spec.title + ", latest " + spec.fmt(lastValue(spec.series[0].values))
    });
    var grid = svgEl("g", { "class": "grid" });
    var axis = svgEl("g", { "class": "axis" });
    for (var v = lo; v <= hi + yStep / 1000; v += yStep) {
      var y = Math.round(Y(v)) + 0.5;
      grid.appendChild(svgEl("line", { x1: m.l, x2: m.l + iw, y1: y, y2: y }));
      var label = svgEl("text", { x: m.l - 8, y: y + 4, "text-anchor": "end" });
      label.textContent = (spec.axisFmt || spec.fmt)(v);
      axis.appendChild(label);
    }
    var tt = timeTicks(t0, t1, Math.max(2, Math.floor(iw / 90)));
    tt.ticks.forEach(function (t) {
      var x = Math.round(X(t)) + 0.5;
      grid.appendChild(svgEl("line", { "class": "vgrid", x1: x, x2: x, y1: m.t, y2: m.t + ih }));
      var label = svgEl("text", { x: x, y: height - 6, "text-anchor": "middle" });
      label.textContent = tickLabel(t, tt.step, tt.span);
      axis.appendChild(label);
    });
    root.appendChild(grid);
    root.appendChild(axis);
    root.appendChild(svgEl("line", { "class": "baseline", x1: m.l, x2: m.l + iw, y1: Y(lo), y2: Y(lo) }));

    var plot = svgEl("g", { "class": "plot" });
    series.forEach(function (s, idx) {
      var line = "";
      var area = "";
      var segment = [];
      function flush() {
        if (!segment.length) return;
        var part = segment.map(function (p, j) { return (j ? "L" : "M") + p[0].toFixed(1) + "," + p[1].toFixed(1); }).join("");
        if (segment.length === 1) part += "h0.1"; // a lone point still shows (round caps)
        line += part;
        if (spec.area && idx === 0) {
          area += "M" + segment[0][0].toFixed(1) + "," + Y(lo).toFixed(1) + part.replace(/^M/, "L") +
            "L" + segment[segment.length - 1][0].toFixed(1) + "," + Y(lo).toFixed(1) + "Z";
        }
        segment = [];
      }
      for (var i = 0; i < times.length; i++) {
        var value = s.values[i];
        if (isNum(value)) segment.push([X(times[i]), Y(Math.min(hi, Math.max(lo, value)))]);
        else flush();
      }
      flush();
      if (area) plot.appendChild(svgEl("path", { "class": "area " + s.cls, d: area }));
      plot.appendChild(svgEl("path", { "class": "line " + s.cls, d: line, "data-points": String(s.values.filter(isNum).length) }));
    });
    root.appendChild(plot);

    // Hover: a crosshair and a tooltip with every series' value at the nearest time.
    var hover = svgEl("g", { "class": "hover" });
    var cross = svgEl("line", { "class": "crosshair", y1: m.t, y2: m.t + ih, x1: 0, x2: 0 });
    hover.appendChild(cross);
    var dots = series.map(function (s) {
      var dot = svgEl("circle", { "class": "dot " + s.cls, r: 3.5, cx: 0, cy: 0 });
      hover.appendChild(dot);
      return dot;
    });
    hover.setAttribute("visibility", "hidden");
    root.appendChild(hover);
    var capture = svgEl("rect", { "class": "capture", x: m.l, y: m.t, width: iw, height: ih });
    root.appendChild(capture);

    function nearest(t) {
      var a = 0;
      var b = times.length - 1;
      while (b - a > 1) {
        var mid = (a + b) >> 1;
        if (times[mid] < t) a = mid; else b = mid;
      }
      return Math.abs(times[a] - t) <= Math.abs(times[b] - t) ? a : b;
    }

    function onMove(event) {
      var rect = root.getBoundingClientRect();
      var px = (event.clientX - rect.left) * (width / rect.width);
      var i = nearest(t0 + (px - m.l) / iw * (t1 - t0));
      var x = X(times[i]);
      cross.setAttribute("x1", x);
      cross.setAttribute("x2", x);
      var lines = [{ label: fmtClock(times[i], true) + (tt.span > 86400 ? " · " + fmtDay(times[i]) : "") }];
      series.forEach(function (s, j) {
        var value = s.values[i];
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
    capture.addEventListener("pointerleave", function () {
      hover.setAttribute("visibility", "hidden");
      hideTooltip();
    });
    box.appendChild(root);
  }

  /** A small trend line (no axes). */
  function sparkline(values, cls, width, height) {
    width = width || 96;
    height = height || 24;
    var root = svgEl("svg", { "class": "spark " + (cls || ""), viewBox: "0 0 " + width + " " + height,
      width: width, height: height, "aria-hidden": "true" });
    var data = values || [];
    if (data.length > width / 2) {
      var ds = downsample(data.map(function (_, i) { return i; }), [{ values: data, agg: "avg" }], Math.floor(width / 2));
      data = ds.series[0].values;
    }
    var max = 0;
    data.forEach(function (v) { if (isNum(v) && v > max) max = v; });
    if (data.length < 2) {
      root.appendChild(svgEl("line", { "class": "spark-zero", x1: 1, x2: width - 1, y1: height - 2, y2: height - 2 }));
      return root;
    }
    var dx = (width - 2) / (data.length - 1);
    var d = "";
    data.forEach(function (v, i) {
      var y = max > 0 && isNum(v) ? height - 2 - (v / max) * (height - 4) : height - 2;
      d += (i ? "L" : "M") + (1 + i * dx).toFixed(1) + "," + y.toFixed(1);
    });
    root.appendChild(svgEl("path", { "class": "spark-area", d: d + "L" + (width - 1) + "," + (height - 1) + "L1," + (height - 1) + "Z" }));
    root.appendChild(svgEl("path", { "class": "spark-line", d: d, "data-points": String(data.length) }));
    return root;
  }

  /** Put chart cards into a grid and draw them (one layout read for all). */
  function renderCharts(container, specs) {
    hideTooltip();  // it points into the charts being replaced
    clear(container);
    var cards = specs.map(chartCard);
    var frag = document.createDocumentFragment();
    cards.forEach(function (c) { frag.appendChild(c); });
    container.appendChild(frag);
    cards.forEach(drawChart);
  }

  // ---------------------------------------------------------------------------------------------
  // Time series helpers

  function column(points, key) {
    var out = new Array(points.length);
    for (var i = 0; i < points.length; i++) {
      var v = points[i][key];
      out[i] = isNum(v) ? v : null;
    }
    return out;
  }

  /**
   * The API's last bucket runs from the newest sample to "now" and is usually a fraction of a
   * step: its rates are noise (a dip to 0 at the right edge). Drop it when it is under half a step.
   */
  function fullSteps(ts) {
    var points = ts && Array.isArray(ts.points) ? ts.points : [];
    var n = points.length;
    if (n < 3) return points;
    var last = points[n - 1].t - points[n - 2].t;
    var typical = points[n - 2].t - points[n - 3].t;
    return isNum(last) && isNum(typical) && last < typical / 2 ? points.slice(0, n - 1) : points;
  }

  /** The time axis: the whole window, or only the covered part when the app is younger than it. */
  function axisWindow(response) {
    var length = WINDOW_S[state.window];
    if (!response || response.window_available === false) return null;
    var points = Array.isArray(response.points) ? response.points : [];
    var step = response.step_s || 10;
    if (length && points.length && points[points.length - 1].t - points[0].t < length - 2 * step) return null;
    return length;
  }

  /** "in the last 49 s" when that is all a window covered, else "in 15m". */
  function coveredText(w) {
    if (w && w.window_available === false && isNum(w.covered_s)) return "in the last " + fmtSpan(w.covered_s);
    return state.window === "all" ? "since start" : "in " + state.window;
  }

  function totalRequests(points) {
    var n = 0;
    for (var i = 0; i < points.length; i++) if (isNum(points[i].requests)) n += points[i].requests;
    return n;
  }

  function noRequestsHint() {
    return "No requests yet — send some traffic to your app.";
  }

  // ---------------------------------------------------------------------------------------------
  // Overview

  var CHECK_LABELS = {
    latency_avg_ms: "Average latency",
    latency_p95_ms: "p95 latency",
    error_rate_pct: "Error rate",
    memory_pct: "Host memory",
    cpu_pct: "Host CPU",
    disk_pct: "Disk",
    process_rss_bytes: "Process RSS",
    process_rss_max_bytes: "Process RSS"
  };

  function fmtCheck(value, unit) {
    if (!isNum(value)) return "no data";
    if (unit === "ms") return fmtMs(value);
    if (unit === "%") return fmtPct(value);
    if (unit === "bytes") return fmtBytes(value);
    return fmtCount(value) + (unit ? " " + unit : "");
  }

  function statusClass(status) {
    return "status-" + ({ healthy: "ok", ok: "ok", degraded: "warn", warn: "warn", unhealthy: "fail", fail: "fail" }[status] || "unknown");
  }

  function updateHealthBadge(health) {
    var badge = $("health-badge");
    var status = health && health.status ? String(health.status) : "unknown";
    badge.className = "status-pill " + statusClass(status);
    badge.textContent = status.charAt(0).toUpperCase() + status.slice(1);
  }

  function renderHealth(container, health) {
    clear(container);
    var head = el("div", "health-head");
    var status = String(health.status || "unknown");
    var pill = el("span", "status-pill status-large " + statusClass(status), status.charAt(0).toUpperCase() + status.slice(1));
    head.appendChild(pill);
    var checks = Array.isArray(health.checks) ? health.checks : [];
    var failing = checks.filter(function (c) { return c.status !== "ok"; }).length;
    var summary = failing ? failing + (failing === 1 ? " check needs attention" : " checks need attention") :
      checks.length === 1 ? "The check passes" : "All " + checks.length + " checks pass";
    var meta = el("div", "health-meta");
    meta.appendChild(el("div", "health-summary", summary));
    meta.appendChild(el("div", "muted", "Up " + fmtUptime(health.uptime_s) + " · checks over the last " + (health.window || "5m")));
    head.appendChild(meta);
    container.appendChild(head);

    var list = el("div", "checks");
    checks.forEach(function (check) {
      var item = el("div", "check " + statusClass(check.status));
      var top = el("div", "check-top");
      top.appendChild(el("span", "check-name", CHECK_LABELS[check.name] || check.name));
      top.appendChild(el("span", "check-status", String(check.status || "")));
      item.appendChild(top);
      item.appendChild(el("div", "check-value", fmtCheck(check.value, check.unit)));
      var bar = el("div", "meter");
      var fill = el("div", "meter-fill");
      var ratio = isNum(check.value) && isNum(check.threshold) && check.threshold > 0 ? check.value / (check.threshold * 1.5) : 0;
      fill.style.width = Math.max(0, Math.min(100, ratio * 100)).toFixed(1) + "%";
      bar.appendChild(fill);
      var mark = el("div", "meter-mark");
      mark.style.left = (100 / 1.5).toFixed(1) + "%";
      bar.appendChild(mark);
      item.appendChild(bar);
      item.appendChild(el("div", "check-threshold muted", "threshold " + fmtCheck(check.threshold, check.unit)));
      list.appendChild(item);
    });
    container.appendChild(list);
    var lost = health.telemetry && health.telemetry.spans_lost;
    var reasons = lost && typeof lost === "object" ? Object.keys(lost).sort() : [];
    if (reasons.length) {
      var total = reasons.reduce(function (n, r) { return n + (Number(lost[r]) || 0); }, 0);
      container.appendChild(el("div", "telemetry-lost", plural(total, "span") + " not exported (" +
        reasons.map(function (r) { return r + ": " + fmtCount(lost[r]); }).join(", ") + ")"));
    }
  }

  function kpiCard(label, value, sub, spark, cls) {
    var card = el("div", "card kpi");
    card.appendChild(el("div", "kpi-label", label));
    card.appendChild(el("div", "kpi-value", value));
    var foot = el("div", "kpi-foot");
    foot.appendChild(el("span", "muted", sub || ""));
    if (spark) foot.appendChild(sparkline(spark, cls, 88, 26));
    card.appendChild(foot);
    return card;
  }

  function windowStats(perf, points, step) {
    var w = perf && perf.windows && perf.windows[state.window];
    if (w && isNum(w.requests)) return w;
    // No summary for this window (an older server): counts add up over the time series, but a
    // percentile of a window is not an average of per-step percentiles, so none is shown.
    var requests = totalRequests(points);
    var errorsWeighted = 0;
    points.forEach(function (p) {
      var n = p.requests || 0;
      if (isNum(p.error_rate_pct)) errorsWeighted += p.error_rate_pct * n;
    });
    var seconds = Math.max(1, points.length * (step || 10));
    return {
      requests: requests,
      rps: requests / seconds,
      error_rate_pct: requests ? errorsWeighted / requests : null,
      latency: { p95_ms: null },
      apdex: null,
      approximate: true
    };
  }

  function loadOverview(gen) {
    return Promise.all([api("/health"), api("/performance", { window: state.window }), api("/timeseries", { window: state.window })])
      .then(function (r) {
        if (gen !== state.generation) return;
        var health = r[0];
        var perf = r[1];
        var ts = r[2];
        updateHealthBadge(health);
        noteWindow(perf && perf.windows && perf.windows[state.window] ? perf.windows[state.window] : ts);
        state.rerender = function () { renderOverview(health, perf, ts); };
        state.rerender();
      });
  }

  function renderOverview(health, perf, ts) {
    renderHealth($("overview-health"), health);
    var points = fullSteps(ts);
    var step = ts.step_s || 10;
    var stats = windowStats(perf, points, step);
    var latency = stats.latency || {};
    var kpis = $("overview-kpis");
    clear(kpis);
    var frag = document.createDocumentFragment();
    var covered = coveredText(perf && perf.windows && perf.windows[state.window] ? perf.windows[state.window] : ts);
    frag.appendChild(kpiCard("Throughput", fmtRps(stats.rps), plural(stats.requests, "request") + " " + covered,
      column(points, "rps"), "c1"));
    frag.appendChild(kpiCard("Error rate", fmtPct(stats.error_rate_pct),
      isNum(stats.errors) ? fmtCount(stats.errors) + " failed " + covered : "5xx and exceptions " + covered, column(points, "error_rate_pct"), "c-err"));
    frag.appendChild(kpiCard("p95 latency", fmtMs(latency.p95_ms),
      isNum(latency.avg_ms) ? "avg " + fmtMs(latency.avg_ms) + " · p99 " + fmtMs(latency.p99_ms) : "95th percentile",
      column(points, "p95_ms"), "c3"));
    frag.appendChild(kpiCard("Apdex", fmtApdex(stats.apdex), "target T = " + fmtMs(perf && perf.apdex_t_ms),
      column(points, "apdex"), "c2"));
    kpis.appendChild(frag);

    var charts = $("overview-charts");
    var lists = $("overview-lists");
    if (!totalRequests(points) && !(stats.requests > 0)) {
      clear(charts);
      var box = el("div", "card span-all");
      box.appendChild(emptyState(noRequestsHint(),
        "Open a page of your app or call its API: requests to any of its routes show up here within seconds."));
      charts.appendChild(box);
      clear(lists);
      return;
    }
    var times = column(points, "t");
    var common = { times: times, windowS: axisWindow(ts), step: step, empty: noRequestsHint() };
    renderCharts(charts, [
      Object.assign({ title: "Requests per second", series: [{ label: "req/s", values: column(points, "rps"), cls: "c1" }],
        fmt: fmtRps, axisFmt: axisNumber, area: true }, common),
      Object.assign({ title: "Error rate", series: [{ label: "errors", values: column(points, "error_rate_pct"), cls: "c-err" }],
        fmt: fmtPct, axisFmt: axisPct, area: true, minRange: 1 }, common),
      Object.assign({ title: "Latency", series: [
        { label: "p95", values: column(points, "p95_ms"), cls: "c3", agg: "max" },
        { label: "average", values: column(points, "avg_ms"), cls: "c1" }],
        fmt: fmtMs, axisFmt: axisMs }, common),
      Object.assign({ title: "Apdex", series: [{ label: "apdex", values: column(points, "apdex"), cls: "c2" }],
        fmt: fmtApdex, min: 0, max: 1, fixedMax: true, area: true }, common)
    ]);

    clear(lists);
    lists.appendChild(rankCard("Slowest endpoints", perf && perf.slowest_endpoints, function (e) { return fmtMs(e.p95_ms) + " p95"; },
      function (e) { return plural(e.count, "request"); }, "No requests to rank in this window yet."));
    lists.appendChild(rankCard("Most failing endpoints", perf && perf.most_failing_endpoints,
      function (e) { return fmtPct(e.error_rate_pct); },
      function (e) { return plural(e.errors, "error"); }, "No failed requests in this window."));
  }

  /** Axis labels: as many decimals as the tick needs (0.25 stays 0.25), at most three. */
  function short(v) { return String(Math.round(v * 1000) / 1000); }
  function axisNumber(v) { return v >= 1000 ? short(v / 1000) + "k" : short(v); }
  function axisPct(v) { return short(v) + "%"; }
  function axisMs(v) { return v >= 1000 ? short(v / 1000) + " s" : short(v) + " ms"; }

  function rankCard(title, items, main, sub, emptyText) {
    var card = el("div", "card rank-card");
    card.appendChild(el("h3", "card-title", title));
    var list = el("ol", "rank");
    (items || []).slice(0, 5).forEach(function (e) {
      var li = el("li");
      var link = el("a", "rank-route");
      link.href = "#endpoints/" + encodeURIComponent(endpointKey(e.method, e.route));
      link.appendChild(el("span", "method method-" + String(e.method || "").toLowerCase(), e.method || ""));
      link.appendChild(el("span", "route-text", e.route));
      li.appendChild(link);
      var right = el("span", "rank-values");
      right.appendChild(el("span", "rank-main", main(e)));
      right.appendChild(el("span", "muted", sub(e)));
      li.appendChild(right);
      list.appendChild(li);
    });
    if (list.firstChild) card.appendChild(list);
    else card.appendChild(emptyState(emptyText));
    return card;
  }

  // ---------------------------------------------------------------------------------------------
  // Endpoints

  function endpointKey(method, route) { return String(method || "") + " " + String(route || ""); }

  function loadEndpoints(gen) {
    var calls = [api("/endpoints", { window: state.window, limit: 1000 }), api("/timeseries", { window: state.window })];
    var detail = state.detail;
    if (detail) {
      var space = detail.indexOf(" ");
      calls.push(api("/timeseries", { window: state.window, method: detail.slice(0, space), route: detail.slice(space + 1) }));
    }
    return Promise.all(calls).then(function (r) {
      if (gen !== state.generation) return;
      noteWindow(r[0]);
      state.endpoints = { list: Array.isArray(r[0].endpoints) ? r[0].endpoints : [], ts: r[1] };
      var routeTs = r[2];
      state.rerender = function () {
        if (state.detail && routeTs) renderEndpointDetail(state.detail, routeTs);
        else renderEndpointTable();
      };
      state.rerender();
    });
  }

  function compare(key, dir) {
    var sign = dir === "asc" ? 1 : -1;
    return function (a, b) {
      var x = a[key];
      var y = b[key];
      if (key === "route") {
        x = String(x || "");
        y = String(y || "");
        return x < y ? -sign : x > y ? sign : String(a.method) < String(b.method) ? -1 : 1;
      }
      var xn = isNum(x);
      var yn = isNum(y);
      if (!xn && !yn) return 0;
      if (!xn) return 1;            // no value: last either way
      if (!yn) return -1;
      return x === y ? (a.route < b.route ? -1 : 1) : (x - y) * sign;
    };
  }

  function renderEndpointTable() {
    $("endpoint-detail").hidden = true;
    $("endpoint-list").hidden = false;
    var data = state.endpoints || { list: [], ts: {} };
    var routes = (data.ts && data.ts.routes) || {};

    // Method filter choices from the data.
    var methodSelect = $("endpoint-method");
    var methods = {};
    data.list.forEach(function (e) { methods[e.method] = true; });
    var known = {};
    Array.prototype.forEach.call(methodSelect.options, function (o) { known[o.value] = true; });
    Object.keys(methods).sort().forEach(function (m) {
      if (!known[m]) {
        var option = el("option", null, m);
        option.value = m;
        methodSelect.appendChild(option);
      }
    });

    var q = state.filter.toLowerCase();
    var rows = data.list.filter(function (e) {
      return (!q || String(e.route).toLowerCase().indexOf(q) !== -1) && (!state.method || e.method === state.method);
    });
    rows.sort(compare(state.sort.key, state.sort.dir));

    Array.prototype.forEach.call(document.querySelectorAll("#endpoint-table th[data-sort]"), function (th) {
      var key = th.getAttribute("data-sort");
      th.setAttribute("aria-sort", key === state.sort.key ? (state.sort.dir === "asc" ? "ascending" : "descending") : "none");
    });

    var tbody = $("endpoint-rows");
    var frag = document.createDocumentFragment();
    for (var i = 0; i < rows.length; i++) frag.appendChild(endpointRow(rows[i], routes));
    clear(tbody).appendChild(frag);
    $("endpoint-count").textContent = rows.length === data.list.length ?
      data.list.length + (data.list.length === 1 ? " route" : " routes") :
      rows.length + " of " + data.list.length + " routes";

    var empty = $("endpoint-empty");
    if (!data.list.length) {
      clear(empty).appendChild(emptyState(noRequestsHint(), "Every route of your app gets a row here after its first request."));
      empty.hidden = false;
    } else if (!rows.length) {
      clear(empty).appendChild(emptyState("No route matches this filter.", "Clear the filter to see all " + data.list.length + " routes."));
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
    $("endpoint-table").hidden = !rows.length;
  }

  function endpointRow(e, routes) {
    var key = endpointKey(e.method, e.route);
    var tr = el("tr", "clickable");
    tr.dataset.key = key;
    var routeCell = el("td", "col-route");
    var link = el("a", "route-link");
    link.href = "#endpoints/" + encodeURIComponent(key);
    link.appendChild(el("span", "method method-" + String(e.method || "").toLowerCase(), e.method || ""));
    link.appendChild(el("span", e.route === "(unmatched)" || e.route === "(other)" ? "route-text muted" : "route-text", e.route));
    routeCell.appendChild(link);
    tr.appendChild(routeCell);
    tr.appendChild(el("td", "num", fmtCount(e.count)));
    tr.appendChild(el("td", "num opt", fmtRps(e.rps)));
    var errCell = el("td", "num" + (e.error_rate_pct > 0 ? " bad" : ""), fmtPct(e.error_rate_pct));
    tr.appendChild(errCell);
    tr.appendChild(el("td", "num opt", fmtMs(e.p50_ms)));
    tr.appendChild(el("td", "num strong", fmtMs(e.p95_ms)));
    tr.appendChild(el("td", "num opt", fmtMs(e.p99_ms)));
    tr.appendChild(el("td", "num opt", fmtMs(e.max_ms)));
    var sparkCell = el("td", "col-spark opt");
    sparkCell.appendChild(sparkline(routes[key] || [], e.error_rate_pct >= 50 ? "c-err" : "c1", 96, 24));
    tr.appendChild(sparkCell);
    var seen = el("td", "num muted opt", fmtAgo(e.last_seen));
    if (isNum(e.last_seen)) seen.title = new Date(e.last_seen * 1000).toLocaleString();
    tr.appendChild(seen);
    return tr;
  }

  function statusFamily(code) {
    var c = String(code).charAt(0);
    return c === "2" ? "s2" : c === "3" ? "s3" : c === "4" ? "s4" : c === "5" ? "s5" : "sx";
  }

  function renderEndpointDetail(key, ts) {
    $("endpoint-list").hidden = true;
    var box = clear($("endpoint-detail"));
    box.hidden = false;
    var list = (state.endpoints && state.endpoints.list) || [];
    var e = null;
    for (var i = 0; i < list.length; i++) if (endpointKey(list[i].method, list[i].route) === key) { e = list[i]; break; }
    var space = key.indexOf(" ");
    var method = key.slice(0, space);
    var route = key.slice(space + 1);

    var head = el("div", "detail-head");
    var back = el("a", "back-link", "← All endpoints");
    back.href = "#endpoints";
    head.appendChild(back);
    var title = el("h2", "detail-title");
    title.appendChild(el("span", "method method-" + method.toLowerCase(), method));
    title.appendChild(el("span", "route-text", route));
    head.appendChild(title);
    box.appendChild(head);

    if (!e) {
      var card = el("div", "card");
      card.appendChild(emptyState("No requests to this route in the last " + state.window + ".",
        "Pick a longer window, or go back to all endpoints."));
      box.appendChild(card);
      return;
    }

    var kpis = el("div", "kpis");
    kpis.appendChild(kpiCard("Requests", fmtCount(e.count), fmtRps(e.rps)));
    kpis.appendChild(kpiCard("Error rate", fmtPct(e.error_rate_pct), plural(e.errors, "error")));
    kpis.appendChild(kpiCard("p95 latency", fmtMs(e.p95_ms), "p50 " + fmtMs(e.p50_ms) + " · p99 " + fmtMs(e.p99_ms)));
    kpis.appendChild(kpiCard("Max latency", fmtMs(e.max_ms), "avg " + fmtMs(e.avg_ms)));
    box.appendChild(kpis);

    var grid = el("div", "chart-grid");
    box.appendChild(grid);
    var points = fullSteps(ts);
    var common = { times: column(points, "t"), windowS: axisWindow(ts), step: ts.step_s || 10,
      empty: "No requests to this route in this window." };
    renderCharts(grid, [
      Object.assign({ title: "Latency", series: [
        { label: "p95", values: column(points, "p95_ms"), cls: "c3", agg: "max" },
        { label: "average", values: column(points, "avg_ms"), cls: "c1" }], fmt: fmtMs, axisFmt: axisMs }, common),
      Object.assign({ title: "Requests per second", series: [{ label: "req/s", values: column(points, "rps"), cls: "c1" }],
        fmt: fmtRps, axisFmt: axisNumber, area: true }, common),
      Object.assign({ title: "Error rate", series: [{ label: "errors", values: column(points, "error_rate_pct"), cls: "c-err" }],
        fmt: fmtPct, axisFmt: axisPct, area: true, minRange: 1 }, common)
    ]);

    // Status code breakdown: a stacked bar plus a list.
    var codes = e.status_codes || {};
    var total = 0;
    var entries = Object.keys(codes).map(function (code) { total += codes[code]; return [code, codes[code]]; });
    entries.sort(function (a, b) { return b[1] - a[1]; });
    var statusCard = el("div", "card status-card");
    statusCard.appendChild(el("h3", "card-title", "Status codes"));
    if (!entries.length) {
      statusCard.appendChild(emptyState("No responses recorded."));
    } else {
      var bar = el("div", "stacked");
      entries.forEach(function (entry) {
        var part = el("div", "stacked-part " + statusFamily(entry[0]));
        part.style.width = (entry[1] / total * 100).toFixed(2) + "%";
        part.title = entry[0] + ": " + entry[1];
        bar.appendChild(part);
      });
      statusCard.appendChild(bar);
      var table = el("table", "data-table compact");
      var tbody = el("tbody");
      entries.forEach(function (entry) {
        var tr = el("tr");
        var codeCell = el("td");
        codeCell.appendChild(el("span", "code-badge " + statusFamily(entry[0]), entry[0]));
        tr.appendChild(codeCell);
        tr.appendChild(el("td", "num", fmtCount(entry[1])));
        tr.appendChild(el("td", "num muted", fmtPct(entry[1] / total * 100)));
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      statusCard.appendChild(table);
    }
    grid.appendChild(statusCard);
  }

  // ---------------------------------------------------------------------------------------------
  // System

  function loadSystem(gen) {
    return Promise.all([api("/health"), api("/timeseries", { window: state.window })]).then(function (r) {
      if (gen !== state.generation) return;
      updateHealthBadge(r[0]);
      windowNote = "";
      state.rerender = function () { renderSystem(r[0], r[1]); };
      state.rerender();
    });
  }

  function renderSystem(health, ts) {
    var sys = (health && health.system) || {};
    var mem = sys.memory || {};
    var cpu = sys.cpu || {};
    var disk = sys.disk || {};
    var net = sys.network || {};
    var proc = sys.process || {};
    var points = fullSteps(ts);
    var cards = clear($("system-cards"));
    var frag = document.createDocumentFragment();
    frag.appendChild(kpiCard("CPU", fmtPct(cpu.system_pct), "this process " + fmtPct(cpu.process_pct), column(points, "cpu_pct"), "c1"));
    frag.appendChild(kpiCard("Memory", fmtPct(mem.used_pct), fmtBytes(mem.used_bytes) + " of " + fmtBytes(mem.total_bytes),
      column(points, "memory_pct"), "c2"));
    frag.appendChild(kpiCard("Disk", fmtPct(disk.used_pct), fmtBytes(disk.free_bytes) + " free on " + (disk.mountpoint || "/"),
      column(points, "disk_pct"), "c4"));
    frag.appendChild(kpiCard("Process", fmtBytes(proc.rss_bytes), (isNum(proc.threads) ? proc.threads + " threads" : "—") +
      " · pid " + (proc.pid || "—") + (proc.workers > 1 ? " · " + proc.workers + " workers" : ""), column(points, "process_rss_bytes"), "c3"));
    cards.appendChild(frag);

    var charts = $("system-charts");
    var hasSystem = ["cpu_pct", "memory_pct", "process_rss_bytes"].some(function (k) { return column(points, k).some(isNum); });
    if (!hasSystem && !isNum(mem.used_pct)) {
      clear(charts);
      var box = el("div", "card span-all");
      box.appendChild(emptyState("No system metrics yet.",
        "They appear within seconds when system metrics are on (OTEL_MONITOR_SYSTEM_METRICS=true, the default)."));
      charts.appendChild(box);
      return;
    }
    var common = { times: column(points, "t"), windowS: axisWindow(ts), step: ts.step_s || 10,
      empty: "No samples in this window yet." };
    renderCharts(charts, [
      Object.assign({ title: "CPU", series: [{ label: "host CPU", values: column(points, "cpu_pct"), cls: "c1" }],
        fmt: fmtPct, axisFmt: axisPct, min: 0, max: 100, fixedMax: true, area: true }, common),
      Object.assign({ title: "Memory", series: [{ label: "host memory", values: column(points, "memory_pct"), cls: "c2" }],
        fmt: fmtPct, axisFmt: axisPct, min: 0, max: 100, fixedMax: true, area: true }, common),
      Object.assign({ title: "Disk", series: [{ label: "disk used", values: column(points, "disk_pct"), cls: "c4" }],
        fmt: fmtPct, axisFmt: axisPct, min: 0, max: 100, fixedMax: true, area: true }, common),
      Object.assign({ title: "Network", series: [
        { label: "received", values: column(points, "net_recv_bps"), cls: "c1" },
        { label: "sent", values: column(points, "net_sent_bps"), cls: "c3" }], fmt: fmtBps, axisFmt: axisBps }, common),
      Object.assign({ title: "Process memory (RSS)", series: [{ label: "RSS", values: column(points, "process_rss_bytes"), cls: "c3", agg: "max" }],
        fmt: fmtBytes, axisFmt: axisBytes, area: true, minRange: 1e6 }, common),
      Object.assign({ title: "Process threads", series: [{ label: "threads", values: column(points, "process_threads"), cls: "c2", agg: "max" }],
        fmt: function (v) { return isNum(v) ? fixed(v, 0) + " threads" : "—"; }, axisFmt: axisNumber, minRange: 4 }, common)
    ]);
  }

  function axisBytes(v) { return v === 0 ? "0" : fmtBytes(v); }
  function axisBps(v) { return v === 0 ? "0" : fmtBps(v); }

  // ---------------------------------------------------------------------------------------------
  // Traces

  function safeHttpUrl(text) {
    try {
      var url = new URL(String(text), window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function traceHref(id) { return "#traces/" + encodeURIComponent(String(id || "")); }

  function loadTraces(gen) {
    if (state.traceId) return loadTraceDetail(gen, state.traceId);
    return api("/traces", { kind: state.traceKind, limit: 100 }).then(function (data) {
      if (gen !== state.generation) return;
      windowNote = "";
      state.rerender = function () { renderTraces(data); };
      state.rerender();
    });
  }

  /** A cell with the column's name kept for the phone layout (each row becomes a card there). */
  function labelled(tag, className, label, text) {
    var cell = el(tag, className, text);
    cell.dataset.label = label;
    return cell;
  }

  function renderTraces(data) {
    var traces = Array.isArray(data.traces) ? data.traces : [];
    var tbody = $("trace-rows");
    var frag = document.createDocumentFragment();
    traces.forEach(function (t) {
      var tr = el("tr");
      var time = labelled("td", "nowrap", "Time", fmtClock(t.time, true));
      time.title = fmtAgo(t.time);
      tr.appendChild(time);
      var kindCell = labelled("td", "", "Kind");
      kindCell.appendChild(el("span", "kind-badge kind-" + (t.kind === "failed" ? "failed" : "slow"), t.kind === "failed" ? "failed" : "slow"));
      tr.appendChild(kindCell);
      var req = labelled("td", "col-route", "Request");
      req.appendChild(el("span", "method method-" + String(t.method || "").toLowerCase(), t.method || ""));
      req.appendChild(el("span", "route-text", t.route || t.name || ""));
      tr.appendChild(req);
      var statusCell = labelled("td", "num", "Status");
      if (t.status_code !== null && t.status_code !== undefined) {
        statusCell.appendChild(el("span", "code-badge " + statusFamily(t.status_code), t.status_code));
      } else {
        statusCell.textContent = "—";
      }
      tr.appendChild(statusCell);
      tr.appendChild(labelled("td", "num strong", "Duration", fmtMs(t.duration_ms)));
      var errorCell = labelled("td", "error-text", "Error", t.error || "");
      if (t.error) errorCell.title = String(t.error);
      tr.appendChild(errorCell);
      var traceCell = labelled("td", "trace-cell", "Trace");
      if (t.detail) {
        var open = el("a", "trace-id trace-open", String(t.trace_id || ""));
        open.href = traceHref(t.trace_id);
        open.title = "Show this request's spans";
        traceCell.appendChild(open);
        tr.classList.add("clickable");
        tr.dataset.trace = String(t.trace_id || "");
      } else {
        var id = el("code", "trace-id", String(t.trace_id || ""));
        id.title = "Not kept in process (only the latest failed, slow and sampled requests are)";
        traceCell.appendChild(id);
      }
      var href = t.link ? safeHttpUrl(t.link) : null;
      if (href) traceCell.appendChild(externalTraceLink(href));
      tr.appendChild(traceCell);
      frag.appendChild(tr);
    });
    clear(tbody).appendChild(frag);
    $("trace-table").hidden = !traces.length;
    $("trace-count").textContent = traces.length ? traces.length + (traces.length === 1 ? " request" : " requests") : "";
    var empty = $("trace-empty");
    if (!traces.length) {
      var slow = body.dataset.slowMs ? " slower than " + fmtMs(parseFloat(body.dataset.slowMs)) : " that are slow";
      clear(empty).appendChild(emptyState(
        state.traceKind === "failed" ? "No failed requests. " : state.traceKind === "slow" ? "No slow requests." : "No slow or failed requests yet.",
        "Requests" + slow + ", answering 5xx or raising an exception are listed here with their trace id."));
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
  }

  function externalTraceLink(href) {
    var a = el("a", "trace-link", "Open in trace viewer ↗");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  // ---------------------------------------------------------------------------------------------
  // Trace detail: the waterfall of one request's spans

  function loadTraceDetail(gen, traceId) {
    // A kept trace does not change: the auto-refresh leaves it (and the spans opened) as it is.
    if (state.traceShown === traceId) return Promise.resolve();
    return api("/traces/" + encodeURIComponent(traceId)).then(function (tree) {
      if (gen !== state.generation) return;
      windowNote = "";
      state.rerender = function () { renderTraceDetail(tree); };
      state.rerender();
    }, function (err) {
      if (gen !== state.generation || !(err instanceof Error) || !/HTTP 404$/.test(err.message)) throw err;
      var box = clear($("trace-detail"));
      box.appendChild(backLink("#traces", "All traces"));
      var card = el("div", "card");
      card.appendChild(emptyState("This trace is not kept any more.",
        "Only the latest failed, slow and a sample of other requests keep their spans in process."));
      box.appendChild(card);
    });
  }

  function backLink(href, text) {
    var a = el("a", "back-link", "← " + text);
    a.href = href;
    return a;
  }

  function renderTraceDetail(tree) {
    state.traceShown = tree.trace_id;
    var box = clear($("trace-detail"));
    var spans = Array.isArray(tree.spans) ? tree.spans : [];
    var head = el("div", "detail-head");
    head.appendChild(backLink("#traces", "All traces"));
    var title = el("h2", "detail-title");
    title.appendChild(el("span", "method method-" + String(tree.method || "").toLowerCase(), tree.method || ""));
    title.appendChild(el("span", "route-text", tree.route || tree.name || ""));
    if (tree.status_code !== null && tree.status_code !== undefined) {
      title.appendChild(el("span", "code-badge " + statusFamily(tree.status_code), tree.status_code));
    }
    head.appendChild(title);
    var facts = el("div", "trace-facts muted");
    facts.appendChild(el("span", "", fmtMs(tree.duration_ms)));
    facts.appendChild(el("span", "", fmtClock(tree.time, true) + " (" + fmtAgo(tree.time) + ")"));
    facts.appendChild(el("span", "", plural(spans.length, "span") + (tree.dropped_spans ? " (" + fmtCount(tree.dropped_spans) + " more not kept)" : "")));
    var idLine = el("span", "");
    idLine.appendChild(document.createTextNode("trace "));
    idLine.appendChild(el("code", "trace-id full-id", tree.trace_id || ""));
    facts.appendChild(idLine);
    var href = tree.link ? safeHttpUrl(tree.link) : null;
    if (href) facts.appendChild(externalTraceLink(href));
    head.appendChild(facts);
    box.appendChild(head);

    if (tree.exception) box.appendChild(exceptionCard(tree.exception));
    box.appendChild(waterfallCard(spans, tree.duration_ms));
  }

  function exceptionCard(exc) {
    var card = el("div", "card exception-card");
    var h = el("h3", "exception-title");
    h.appendChild(el("span", "exception-type", exc["exception.type"] || "Exception"));
    if (exc["exception.message"]) h.appendChild(el("span", "exception-message", ": " + exc["exception.message"]));
    card.appendChild(h);
    if (exc["exception.stacktrace"]) card.appendChild(el("pre", "traceback", exc["exception.stacktrace"]));
    return card;
  }

  function waterfallCard(spans, total) {
    var card = el("div", "card waterfall-card");
    card.appendChild(el("h3", "chart-title", "Spans"));
    var end = isNum(total) && total > 0 ? total : 0;
    spans.forEach(function (s) { if (isNum(s.offset_ms) && isNum(s.duration_ms)) end = Math.max(end, s.offset_ms + s.duration_ms); });
    end = end || 1;
    var wf = el("div", "waterfall");
    wf.setAttribute("role", "list");
    var axis = el("div", "wf-row wf-axis");
    axis.appendChild(el("div", "wf-name muted", "Span"));
    var ticks = el("div", "wf-track");
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var tick = el("span", "wf-tick", axisMs(Math.round(end * f * 100) / 100));
      tick.style.left = (f * 100) + "%";
      if (f === 1) tick.classList.add("wf-tick-end");
      ticks.appendChild(tick);
    });
    axis.appendChild(ticks);
    axis.appendChild(el("div", "wf-dur muted", "Duration"));
    wf.appendChild(axis);
    spans.forEach(function (s) {
      var item = el("div", "wf-item");
      item.setAttribute("role", "listitem");
      var row = el("button", "wf-row wf-span status-" + (s.status === "error" ? "error" : "ok"));
      row.type = "button";
      row.setAttribute("aria-expanded", "false");
      var name = el("div", "wf-name");
      name.style.paddingLeft = (Math.min(12, s.depth || 0) * 14) + "px";
      name.appendChild(el("span", "wf-kind kind-" + String(s.kind || "internal"), String(s.kind || "internal")));
      name.appendChild(el("span", "wf-label", s.name || ""));
      name.title = String(s.name || "");
      row.appendChild(name);
      var track = el("div", "wf-track");
      var bar = el("span", "wf-bar");
      var left = Math.max(0, Math.min(100, (s.offset_ms || 0) / end * 100));
      bar.style.left = left + "%";
      bar.style.width = Math.max(0.4, Math.min(100 - left, (s.duration_ms || 0) / end * 100)) + "%";
      track.appendChild(bar);
      (s.events || []).forEach(function (e) {
        if (!isNum(e.offset_ms)) return;
        var mark = el("span", "wf-event" + (e.name === "exception" ? " wf-exception" : ""));
        mark.style.left = Math.max(0, Math.min(100, e.offset_ms / end * 100)) + "%";
        mark.title = String(e.name || "");
        track.appendChild(mark);
      });
      row.appendChild(track);
      row.appendChild(el("div", "wf-dur", fmtMs(s.duration_ms)));
      var panel = spanPanel(s);
      panel.hidden = !state.openSpans[s.span_id];
      row.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
      row.addEventListener("click", function () {
        panel.hidden = !panel.hidden;
        state.openSpans[s.span_id] = !panel.hidden;
        row.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
      });
      item.appendChild(row);
      item.appendChild(panel);
      wf.appendChild(item);
    });
    card.appendChild(wf);
    card.appendChild(el("div", "muted small", "Click a span for its attributes and events."));
    return card;
  }

  function spanPanel(s) {
    var panel = el("div", "wf-panel");
    var facts = [["span id", s.span_id], ["kind", s.kind], ["status", s.status + (s.status_message ? ": " + s.status_message : "")],
      ["starts at", fmtMs(s.offset_ms)], ["scope", s.scope]];
    panel.appendChild(attributeTable(facts));
    var attrs = s.attributes || {};
    var keys = Object.keys(attrs).sort();
    panel.appendChild(el("div", "wf-panel-title", keys.length ? "Attributes" : "No attributes"));
    if (keys.length) panel.appendChild(attributeTable(keys.map(function (k) { return [k, attrs[k]]; })));
    (s.events || []).forEach(function (e) {
      panel.appendChild(el("div", "wf-panel-title", "Event: " + String(e.name || "") + " at " + fmtMs(e.offset_ms)));
      var ea = e.attributes || {};
      var rows = Object.keys(ea).sort().filter(function (k) { return k !== "exception.stacktrace"; });
      if (rows.length) panel.appendChild(attributeTable(rows.map(function (k) { return [k, ea[k]]; })));
      if (ea["exception.stacktrace"]) panel.appendChild(el("pre", "traceback", ea["exception.stacktrace"]));
    });
    return panel;
  }

  function attributeTable(pairs) {
    var table = el("table", "data-table compact attr-table");
    var tb = el("tbody");
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined) return;
      var tr = el("tr");
      tr.appendChild(el("td", "attr-key", p[0]));
      tr.appendChild(el("td", "attr-value", Array.isArray(p[1]) ? p[1].join(", ") : String(p[1])));
      tb.appendChild(tr);
    });
    table.appendChild(tb);
    return table;
  }

  // ---------------------------------------------------------------------------------------------
  // Errors grouped by exception type, route and the app's innermost frame

  function loadErrors(gen) {
    return api("/errors", { limit: 100 }).then(function (data) {
      if (gen !== state.generation) return;
      windowNote = "";
      state.rerender = function () { renderErrors(data); };
      state.rerender();
    });
  }

  function renderErrors(data) {
    var groups = Array.isArray(data.groups) ? data.groups : [];
    var box = clear($("error-groups"));
    $("error-count").textContent = groups.length
      ? plural(groups.length, "group") + " · " + plural(data.total || 0, "failed request") + " since the app started"
      : "";
    if (!groups.length) {
      var card = el("div", "card");
      card.appendChild(emptyState("No failed requests yet.",
        "Requests answering 5xx or raising an exception are grouped here by exception type, route and the line of your code that raised."));
      box.appendChild(card);
      return;
    }
    groups.forEach(function (g) { box.appendChild(errorGroupCard(g)); });
  }

  function errorGroupCard(g) {
    var card = el("div", "card error-group");
    card.dataset.group = String(g.id || "");
    var top = el("div", "error-top");
    var what = el("div", "error-what");
    var h = el("h3", "exception-title");
    h.appendChild(el("span", "exception-type", g.exception_type || "error"));
    if (g.message) h.appendChild(el("span", "exception-message", ": " + g.message));
    what.appendChild(h);
    var where = el("div", "error-where");
    where.appendChild(el("span", "method method-" + String(g.method || "").toLowerCase(), g.method || ""));
    where.appendChild(el("span", "route-text", g.route || ""));
    if (g.frame) where.appendChild(el("code", "error-frame", g.frame));
    what.appendChild(where);
    top.appendChild(what);
    var count = el("div", "error-count");
    count.appendChild(el("div", "kpi-value", fmtCount(g.count)));
    count.appendChild(el("div", "muted small", g.count === 1 ? "time" : "times"));
    top.appendChild(count);
    card.appendChild(top);
    var foot = el("div", "error-foot");
    var timeline = el("div", "error-timeline");
    timeline.appendChild(sparkline((g.timeline || []).map(function (p) { return p.count; }), "c-err", 180, 28));
    timeline.appendChild(el("span", "muted small", plural(g.last_hour || 0, "time") + " in the last hour"));
    foot.appendChild(timeline);
    foot.appendChild(el("span", "muted small", "first " + fmtAgo(g.first_seen) + " · last " + fmtAgo(g.last_seen)));
    var examples = el("div", "error-examples");
    examples.appendChild(el("span", "muted small", "Latest:"));
    (g.examples || []).forEach(function (e) {
      if (e.detail) {
        var a = el("a", "trace-id", String(e.trace_id || "").slice(0, 8) + "…");
        a.href = traceHref(e.trace_id);
        a.title = "Trace " + String(e.trace_id || "") + " at " + fmtClock(e.time, true);
        examples.appendChild(a);
      } else {
        var c = el("code", "trace-id", String(e.trace_id || "").slice(0, 8) + "…");
        c.title = "Trace " + String(e.trace_id || "") + " (spans not kept)";
        examples.appendChild(c);
      }
    });
    foot.appendChild(examples);
    card.appendChild(foot);
    return card;
  }

  // ---------------------------------------------------------------------------------------------
  // Custom metrics

  function isCustom(name) {
    name = String(name || "");
    for (var i = 0; i < BUILTIN_PREFIXES.length; i++) if (name.indexOf(BUILTIN_PREFIXES[i]) === 0) return false;
    return name.length > 0;
  }

  function loadCustom(gen) {
    return Promise.all([api("/metrics"), api("/metrics/series", { window: state.window })]).then(function (r) {
      if (gen !== state.generation) return;
      var data = r[0];
      state.customSeries = r[1] || {};
      noteWindow(state.customSeries);
      state.custom = (Array.isArray(data.metrics) ? data.metrics : []).filter(function (m) { return isCustom(m.name); });
      state.rerender = renderCustom;
      renderCustom();
    });
  }

  /** The chart of one custom instrument over the window: a counter's rate, a gauge's value. */
  function customChartSpec(m) {
    var all = state.customSeries && state.customSeries.series;
    var s = all && all[m.name];
    if (!s || !Array.isArray(s.t)) return null;
    var perSecond = s.label === "per second";
    var fmt = perSecond ? function (v) { return isNum(v) ? fixed(v, v < 10 ? 2 : 0) + "/s" : "—"; }
      : function (v) { return fmtUnit(v, m.unit); };
    return {
      title: m.type === "histogram" ? "Observations per second" : perSecond ? "Per second" : "Value",
      times: s.t, series: [{ label: s.label, values: s.values, cls: "c2" }], fmt: fmt, axisFmt: axisNumber,
      area: true, height: 120, windowS: axisWindow(state.customSeries), step: state.customSeries.step_s || 10,
      empty: "Two samples (10 s apart) are needed for a chart."
    };
  }

  function attributesText(attrs) {
    var keys = Object.keys(attrs || {}).sort();
    if (!keys.length) return "(no attributes)";
    return keys.map(function (k) { return k + "=" + String(attrs[k]); }).join(", ");
  }

  var MAX_POINTS_SHOWN = 50;

  function renderCustom() {
    var metrics = (state.custom || []).slice().sort(function (a, b) { return a.name < b.name ? -1 : 1; });
    var q = state.customFilter.toLowerCase();
    var shown = metrics.filter(function (m) { return !q || String(m.name).toLowerCase().indexOf(q) !== -1; });
    var list = clear($("custom-list"));
    var frag = document.createDocumentFragment();
    var charts = [];
    hideTooltip();
    shown.forEach(function (m) {
      var card = el("div", "card metric-card");
      var head = el("div", "metric-head");
      head.appendChild(el("h3", "metric-name", m.name));
      head.appendChild(el("span", "type-badge", m.type || "metric"));
      card.appendChild(head);
      var desc = [m.description, unitLabel(m.unit) ? "unit: " + unitLabel(m.unit) : ""].filter(Boolean).join(" · ");
      if (desc) card.appendChild(el("div", "metric-desc muted", desc));
      var points = Array.isArray(m.points) ? m.points : [];
      var table = el("table", "data-table compact");
      var thead = el("thead");
      var hr = el("tr");
      hr.appendChild(el("th", null, "Attributes"));
      if (m.type === "histogram") {
        hr.appendChild(el("th", "num", "Count"));
        hr.appendChild(el("th", "num", "Average"));
        hr.appendChild(el("th", "num", "Max"));
      } else {
        hr.appendChild(el("th", "num", "Value"));
      }
      thead.appendChild(hr);
      table.appendChild(thead);
      var tbody = el("tbody");
      points.slice(0, MAX_POINTS_SHOWN).forEach(function (p) {
        var tr = el("tr");
        tr.appendChild(el("td", "attrs", attributesText(p.attributes)));
        if (m.type === "histogram") {
          tr.appendChild(el("td", "num", fmtCount(p.count)));
          tr.appendChild(el("td", "num strong", p.count ? fmtUnit(p.sum / p.count, m.unit) : "—"));
          tr.appendChild(el("td", "num", fmtUnit(p.max, m.unit)));
        } else {
          tr.appendChild(el("td", "num strong", fmtUnit(p.value, m.unit)));
        }
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      var spec = customChartSpec(m);
      if (spec) {
        var chart = chartCard(spec);
        chart.classList.add("metric-chart");
        card.appendChild(chart);
        charts.push(chart);
      }
      if (points.length) card.appendChild(table);
      else card.appendChild(emptyState("No data points yet."));
      if (points.length > MAX_POINTS_SHOWN) {
        card.appendChild(el("div", "muted small", "and " + (points.length - MAX_POINTS_SHOWN) + " more attribute sets (see /metrics)"));
      }
      frag.appendChild(card);
    });
    list.appendChild(frag);
    charts.forEach(drawChart);
    $("custom-count").textContent = metrics.length ? (shown.length === metrics.length ? metrics.length + " instruments" :
      shown.length + " of " + metrics.length + " instruments") : "";
    var empty = $("custom-empty");
    if (!metrics.length) {
      clear(empty).appendChild(emptyState("No custom metrics yet.",
        "Create one in your app: orders = monitor.counter(\"shop.orders.created\", unit=\"{order}\"), then orders.add(1). " +
        "Instruments whose names do not start with http., system., process. or otel. show up here."));
      empty.hidden = false;
    } else if (!shown.length) {
      clear(empty).appendChild(emptyState("No instrument matches this filter."));
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Links to the other dashboards (Grafana, Prometheus, Jaeger), once

  function loadLinks() {
    api("/dashboard").then(function (data) {
      var box = clear($("links"));
      (Array.isArray(data.dashboards) ? data.dashboards : []).forEach(function (d) {
        var href = safeHttpUrl(d.url);
        if (!href || href.replace(/\/$/, "") === (window.location.origin + window.location.pathname).replace(/\/$/, "")) return;
        var a = el("a", null, d.name);
        a.href = href;
        a.rel = "noopener noreferrer";
        if (new URL(href).origin !== window.location.origin) a.target = "_blank";
        box.appendChild(a);
      });
    }).catch(function () { /* optional */ });
  }

  // ---------------------------------------------------------------------------------------------
  // Routing, refresh, controls

  var LOADERS = { overview: loadOverview, endpoints: loadEndpoints, system: loadSystem, traces: loadTraces, errors: loadErrors, custom: loadCustom };

  function parseHash() {
    var hash = window.location.hash.replace(/^#\/?/, "");
    var slash = hash.indexOf("/");
    var view = slash === -1 ? hash : hash.slice(0, slash);
    var arg = slash === -1 ? null : hash.slice(slash + 1);
    if (VIEWS.indexOf(view) === -1) view = "overview";
    var detail = null;
    if (view === "endpoints" && arg) {
      try { detail = decodeURIComponent(arg); } catch (e) { detail = null; }
      if (detail && detail.indexOf(" ") <= 0) detail = null;
    }
    var traceId = view === "traces" && arg && /^[0-9a-fA-F]{32}$/.test(arg) ? arg.toLowerCase() : null;
    return { view: view, detail: detail, traceId: traceId };
  }

  function showView() {
    var route = parseHash();
    var changedView = route.view !== state.view;
    state.view = route.view;
    state.detail = route.detail;
    var changedTrace = route.traceId !== state.traceId;
    state.traceId = route.traceId;
    if (changedTrace || changedView) { state.traceShown = null; state.openSpans = {}; }
    hideTooltip();
    VIEWS.forEach(function (v) {
      $("view-" + v).hidden = v !== state.view;
      var tab = document.querySelector('.tabs a[data-tab="' + v + '"]');
      if (tab) {
        if (v === state.view) tab.setAttribute("aria-current", "page");
        else tab.removeAttribute("aria-current");
      }
    });
    if (state.view === "endpoints") {
      $("endpoint-detail").hidden = !state.detail;
      $("endpoint-list").hidden = !!state.detail;
      if (state.detail) clear($("endpoint-detail")).appendChild(el("div", "muted loading", "Loading…"));
    }
    if (state.view === "traces") {
      $("trace-detail").hidden = !state.traceId;
      $("trace-list").hidden = !!state.traceId;
      if (state.traceId && changedTrace) clear($("trace-detail")).appendChild(el("div", "muted loading", "Loading…"));
    }
    if (changedView || changedTrace) window.scrollTo(0, 0);
    refresh();
  }

  function setBanner(text, kind) {
    var banner = $("banner");
    if (!text) { banner.hidden = true; return; }
    banner.textContent = text;
    banner.className = "banner" + (kind ? " " + kind : "");
    banner.hidden = false;
  }

  var windowNote = "";

  function fmtSpan(s) {
    if (!isNum(s)) return "—";
    if (s < 90) return Math.max(1, Math.round(s)) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return fixed(s / 3600, s < 36000 ? 1 : 0) + " h";
    return fixed(s / 86400, 1) + " days";
  }

  /** Say so when a window covers less than its length (a young process, or history too short). */
  function noteWindow(response) {
    windowNote = "";
    if (!response || response.window_available !== false) return;
    var covered = response.covered_s;
    var long = (WINDOW_S[state.window] || 0) > 900;
    windowNote = "Showing the last " + fmtSpan(covered) + " of the " + state.window + " window: " +
      (long ? (body.dataset.history === "true" ? "history does not go back further yet"
        : "longer windows need history (set MONITORING_DB)") : "the app started then") +
      " — the charts' time axis is zoomed to that.";
  }

  function updateStatusLine() {
    var updated = $("updated");
    var when = state.lastUpdate ? "updated " + fmtClock(state.lastUpdate / 1000, true) : "loading…";
    updated.textContent = (state.paused ? "Paused · " : "Live · every " + formatInterval(REFRESH_S) + " · ") + when;
    updated.className = "updated" + (state.paused ? " paused" : "");
  }

  function formatInterval(s) { return s >= 60 && s % 60 === 0 ? (s / 60) + " min" : (Math.round(s * 10) / 10) + " s"; }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if (!state.paused && !document.hidden) state.timer = setTimeout(refresh, REFRESH_S * 1000);
  }

  function refresh() {
    clearTimeout(state.timer);
    var gen = ++state.generation;
    var view = state.view;
    body.classList.add("is-loading");
    return LOADERS[view](gen).then(function () {
      if (gen !== state.generation) return;
      state.lastUpdate = Date.now();
      setBanner(windowNote, "info");
      $("view-" + view).dataset.loaded = String(gen);
    }).catch(function (err) {
      if (err instanceof AuthRedirect || gen !== state.generation) return;
      setBanner("Could not load the data (" + (err && err.message ? err.message : "network error") +
        "). Retrying in " + formatInterval(REFRESH_S) + ".");
    }).then(function () {
      if (gen !== state.generation) return;
      body.classList.remove("is-loading");
      updateStatusLine();
      schedule();
    });
  }

  function offered(w) {
    return Array.prototype.some.call($("window-select").options, function (o) { return o.value === w; });
  }

  function setWindow(w) {
    // Only a window the page offers (a remembered "24h" is not one when history is off).
    if (!WINDOW_S[w] || !offered(w)) w = offered("15m") ? "15m" : $("window-select").options[0].value;
    state.window = w;
    $("window-select").value = w;
    try { window.localStorage.setItem("otel_monitor.window", state.window); } catch (e) { /* private mode */ }
    $("export-csv").href = API + "/export?format=csv&window=" + encodeURIComponent(state.window);
    $("export-json").href = API + "/export?format=json&window=" + encodeURIComponent(state.window);
  }

  function setPaused(paused) {
    state.paused = paused;
    var button = $("pause-button");
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    updateStatusLine();
    if (paused) { clearTimeout(state.timer); state.timer = null; } else { refresh(); }
  }

  function debounce(fn, ms) {
    var t = null;
    return function () {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  function init() {
    var stored = null;
    try { stored = window.localStorage.getItem("otel_monitor.window"); } catch (e) { stored = null; }
    setWindow(stored || "15m");

    $("window-select").addEventListener("change", function (event) { hideTooltip(); setWindow(event.target.value); refresh(); });
    $("pause-button").addEventListener("click", function () { setPaused(!state.paused); });
    $("refresh-button").addEventListener("click", function () { refresh(); });

    // Sorting: a click on a header sorts by it (numbers descending first), a second click flips.
    Array.prototype.forEach.call(document.querySelectorAll("#endpoint-table th[data-sort] button"), function (button) {
      button.addEventListener("click", function () {
        var key = button.parentNode.getAttribute("data-sort");
        if (state.sort.key === key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
        else state.sort = { key: key, dir: key === "route" ? "asc" : "desc" };
        renderEndpointTable();
      });
    });
    $("endpoint-filter").addEventListener("input", debounce(function () {
      state.filter = $("endpoint-filter").value.trim();
      renderEndpointTable();
    }, 120));
    $("endpoint-method").addEventListener("change", function (event) {
      state.method = event.target.value;
      renderEndpointTable();
    });
    // A click anywhere on a row opens that route (the route cell is a real link for keyboards).
    $("endpoint-rows").addEventListener("click", function (event) {
      if (event.target.closest("a")) return;
      var tr = event.target.closest("tr");
      if (tr && tr.dataset.key) window.location.hash = "#endpoints/" + encodeURIComponent(tr.dataset.key);
    });

    $("trace-rows").addEventListener("click", function (event) {
      if (event.target.closest("a")) return;
      var tr = event.target.closest("tr");
      if (tr && tr.dataset.trace) window.location.hash = traceHref(tr.dataset.trace);
    });

    Array.prototype.forEach.call(document.querySelectorAll(".segmented [data-kind]"), function (button) {
      button.addEventListener("click", function () {
        state.traceKind = button.getAttribute("data-kind");
        Array.prototype.forEach.call(document.querySelectorAll(".segmented [data-kind]"), function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        refresh();
      });
    });
    $("custom-filter").addEventListener("input", debounce(function () {
      state.customFilter = $("custom-filter").value.trim();
      renderCustom();
    }, 120));

    window.addEventListener("hashchange", showView);
    window.addEventListener("resize", debounce(function () {
      hideTooltip();
      if (state.rerender) state.rerender();
    }, 150));
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { clearTimeout(state.timer); state.timer = null; } else if (!state.paused) refresh();
    });

    state.view = null;
    showView();
    loadLinks();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
