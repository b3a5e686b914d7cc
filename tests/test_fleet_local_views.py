"""Under ``analytics_source=prometheus`` what Prometheus cannot hold -- spans, error groups, the
custom metrics -- is answered from this process, with Prometheus unreachable or not."""

from __future__ import annotations

from otel_monitor.testing import closing_client

from .conftest import free_port


def fleet_app(monitors):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    return monitors.app(
        analytics_source="prometheus",
        analytics_prometheus_url=url,
        analytics_auth=False,
        service_name="shop",
    )


def test_traces_errors_and_custom_metrics_are_this_process_s_under_the_fleet_source(monitors):
    app, monitor = fleet_app(monitors)
    client = closing_client(app)
    assert client.get("/fail").status_code == 500
    assert client.get("/otel-monitor/performance").status_code == 503  # the request figures are Prometheus's

    traces = client.get("/otel-monitor/traces")
    assert traces.status_code == 200
    failed = [t for t in traces.json["traces"] if t["kind"] == "failed"]
    assert [t["route"] for t in failed] == ["/fail"]
    assert failed[0]["detail"] is True

    detail = client.get(f"/otel-monitor/traces/{failed[0]['trace_id']}")
    assert detail.status_code == 200
    assert detail.json["trace_id"] == failed[0]["trace_id"]

    errors = client.get("/otel-monitor/errors")
    assert errors.status_code == 200
    assert errors.json["total"] == 1

    assert client.get("/otel-monitor/metrics/series").status_code == 200
    names = {m["name"] for m in client.get("/otel-monitor/metrics").json["metrics"]}
    assert "http.server.request.duration" in names
