// Specifications of otel_monitor/analytics/static/js/urls.js (node --test).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as u from "../../otel_monitor/analytics/static/js/urls.js";

const BASE = "http://127.0.0.1:5000/otel-monitor/";
const VIEWS = ["overview", "endpoints", "system", "traces", "custom"];

describe("safeHttpUrl", () => {
  it("accepts http and https URLs, normalised", () => {
    assert.equal(u.safeHttpUrl("https://grafana.example/d/x?a=1", BASE), "https://grafana.example/d/x?a=1");
    assert.equal(u.safeHttpUrl("HTTP://Jaeger.Example:16686", BASE), "http://jaeger.example:16686/");
  });
  it("resolves a relative link against the page", () => {
    assert.equal(u.safeHttpUrl("/metrics", BASE), "http://127.0.0.1:5000/metrics");
    assert.equal(u.safeHttpUrl("traces/abc", BASE), "http://127.0.0.1:5000/otel-monitor/traces/abc");
  });
  it("refuses every other scheme, however it is spelled", () => {
    for (const link of ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd", "vbscript:x", "ftp://x/"]) {
      assert.equal(u.safeHttpUrl(link, BASE), null, link);
    }
  });
  it("refuses what is not a URL", () => {
    assert.equal(u.safeHttpUrl("http://", BASE), null);
    assert.equal(u.safeHttpUrl("//", undefined), null);
    assert.equal(u.safeHttpUrl("x", undefined), null); // relative without a base
  });
});

describe("parseHash", () => {
  it("reads the view, with or without a slash after the #", () => {
    assert.deepEqual(u.parseHash("#system", VIEWS), { view: "system", detail: null, traceId: null });
    assert.deepEqual(u.parseHash("#/traces", VIEWS), { view: "traces", detail: null, traceId: null });
  });
  it("opens the first view for an empty or unknown hash", () => {
    assert.deepEqual(u.parseHash("", VIEWS), { view: "overview", detail: null, traceId: null });
    assert.deepEqual(u.parseHash("#nope/GET%20%2F", VIEWS), { view: "overview", detail: null, traceId: null });
    assert.deepEqual(u.parseHash(undefined, VIEWS), { view: "overview", detail: null, traceId: null });
  });
  it("reads an endpoint's detail as METHOD route, decoded", () => {
    assert.deepEqual(u.parseHash("#endpoints/GET%20%2Fusers%2F%3Cid%3E", VIEWS), { view: "endpoints", detail: "GET /users/<id>", traceId: null });
  });
  it("ignores a detail without a method, with a bad escape, or on another view", () => {
    assert.deepEqual(u.parseHash("#endpoints/%2Fusers", VIEWS), { view: "endpoints", detail: null, traceId: null });
    assert.deepEqual(u.parseHash("#endpoints/%20%2Fusers", VIEWS), { view: "endpoints", detail: null, traceId: null });
    assert.deepEqual(u.parseHash("#endpoints/%E0%A4%A", VIEWS), { view: "endpoints", detail: null, traceId: null });
    assert.deepEqual(u.parseHash("#system/GET%20%2F", VIEWS), { view: "system", detail: null, traceId: null });
  });
  it("round-trips endpointHash", () => {
    const hash = u.endpointHash("GET", "/a b/<id>?x#y");
    assert.equal(hash, "#endpoints/GET%20%2Fa%20b%2F%3Cid%3E%3Fx%23y");
    assert.deepEqual(u.parseHash(hash, VIEWS), { view: "endpoints", detail: "GET /a b/<id>?x#y", traceId: null });
  });
  it("reads a trace id of 32 hex digits on the traces view, lower-cased", () => {
    const id = "0AF7651916CD43DD8448EB211C80319C";
    assert.deepEqual(u.parseHash("#traces/" + id, VIEWS), { view: "traces", detail: null, traceId: id.toLowerCase() });
    assert.deepEqual(u.parseHash(u.traceHref(id.toLowerCase()), VIEWS).traceId, id.toLowerCase());
  });
  it("ignores a trace id that is not 32 hex digits, or on another view", () => {
    assert.equal(u.parseHash("#traces/0af7651916cd43dd8448eb211c80319", VIEWS).traceId, null);
    assert.equal(u.parseHash("#traces/0af7651916cd43dd8448eb211c80319cz", VIEWS).traceId, null);
    assert.equal(u.parseHash("#traces/%30af7651916cd43dd8448eb211c80319c", VIEWS).traceId, null);
    assert.equal(u.parseHash("#endpoints/0af7651916cd43dd8448eb211c80319c", VIEWS).traceId, null);
  });
});

describe("traceHref", () => {
  it("links a trace's waterfall, escaped", () => {
    assert.equal(u.traceHref("abc"), "#traces/abc");
    assert.equal(u.traceHref("a/b#c"), "#traces/a%2Fb%23c");
    assert.equal(u.traceHref(undefined), "#traces/");
  });
});

describe("exportUrl and isSamePage", () => {
  it("builds an export link under the API prefix, escaped", () => {
    assert.equal(u.exportUrl("/otel-monitor", "csv", "15m"), "/otel-monitor/export?format=csv&window=15m");
    assert.equal(u.exportUrl("", "json", "a&b"), "/export?format=json&window=a%26b");
  });
  it("recognises the page itself, a trailing slash aside", () => {
    assert.equal(u.isSamePage("http://h:1/otel-monitor/", "http://h:1", "/otel-monitor"), true);
    assert.equal(u.isSamePage("http://h:1/otel-monitor", "http://h:1", "/otel-monitor/"), true);
    assert.equal(u.isSamePage("http://h:1/grafana/", "http://h:1", "/otel-monitor/"), false);
  });
});
