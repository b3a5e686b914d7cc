"""otel-monitor doctor, one module per job: the scrape read with prometheus_client's parser, and
links to the online documentation (docs/ is not in the wheel)."""

from __future__ import annotations

from otel_monitor.cli import commands as cli
from otel_monitor.cli.doctor import check_metric_names, parse_exposition
from otel_monitor.cli.doctor._links import DOCS_URL, docs_url


def test_the_scrape_is_read_as_prometheus_reads_it_escapes_and_types_included():
    text = (
        "# HELP shop_orders_total Orders.\n"
        "# TYPE shop_orders_total counter\n"
        'shop_orders_total{path="C:\\\\shop",note="say \\"hi\\"\\nthere"} 3\n'
        "# TYPE latency_seconds histogram\n"
        'latency_seconds_bucket{le="+Inf"} 2\n'
        "latency_seconds_count 2\n"
        "latency_seconds_sum 0.5\n"
        "untyped_total 1\n"
    )
    served = parse_exposition(text)
    assert served.labels["shop_orders_total"] == {"path": {"C:\\shop"}, "note": {'say "hi"\nthere'}}
    assert served.names == {
        "shop_orders_total",
        "latency_seconds_bucket",
        "latency_seconds_count",
        "latency_seconds_sum",
        "untyped_total",
    }
    assert served.types == {"shop_orders": "counter", "latency_seconds": "histogram"}
    assert check_metric_names([("q", "latency_seconds")], served, set()) == [
        "q: metric latency_seconds is not served on /metrics (latency_seconds is a histogram: "
        "query latency_seconds_bucket, latency_seconds_sum or latency_seconds_count)"
    ]
    assert check_metric_names([("q", 'shop_orders_total{note="x"}')], served, set()) == [
        "q: metric shop_orders_total never has note='x' (served values: say \"hi\"\nthere)"
    ]


def test_the_alerts_line_points_to_the_online_docs_of_the_installed_distribution(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # an installed package: no docs/ next to it
    assert cli.main(["doctor", "--skip-metrics-check"]) == 0
    out = capsys.readouterr().out
    assert docs_url("alerts.md") == DOCS_URL + "/alerts.md"  # pyproject's Documentation URL
    assert f"see {DOCS_URL}/alerts.md)" in out
    assert "see docs/alerts.md" not in out
