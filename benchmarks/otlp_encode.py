"""Per-span cost of OTLP span encoding: the official encoder vs otel_monitor.telemetry._otlp_encode.

``python benchmarks/otlp_encode.py [--batch 512] [--rounds 9]``: a batch of SERVER spans as
otel_monitor records them (the HTTP semantic-convention attributes, our resource and scope) is
encoded by both in alternating rounds; the fastest round of each is reported (noise on a shared
machine only adds time) with the ratio. Both produce the same bytes (checked first).
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_monitor.settings import resolve_settings
from otel_monitor.telemetry._otlp_encode import SpanEncoder
from otel_monitor.telemetry.pipeline import SCHEMA_URL, SCOPE, build_resource


def server_spans(count: int) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=build_resource(resolve_settings(environ={}), "bench", "instance-1"))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(SCOPE, "1.0", SCHEMA_URL)
    for n in range(count):
        attributes = {
            "http.request.method": "GET",
            "url.scheme": "http",
            "url.path": f"/users/{n % 100}",
            "http.route": "/users/<int:user_id>",
            "server.address": "127.0.0.1",
            "server.port": 8000,
            "network.protocol.version": "1.1",
            "client.address": "127.0.0.1",
            "user_agent.original": "wrk/4.2.0",
            "http.response.status_code": 200,
        }
        with tracer.start_as_current_span("GET /users/<int:user_id>", kind=SpanKind.SERVER, attributes=attributes):
            pass
    return list(memory.get_finished_spans())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=512, help="spans per batch (the batch processor's default)")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    spans = server_spans(args.batch)
    encoder = SpanEncoder()
    assert encoder.encode(spans) == encode_spans(spans).SerializePartialToString()
    sides = {
        "official encode_spans(...).SerializePartialToString()": lambda: encode_spans(spans).SerializePartialToString(),
        "otel_monitor SpanEncoder.encode": lambda: encoder.encode(spans),
    }
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(args.rounds):
        for name, encode in sides.items():
            start = time.process_time()
            for _ in range(5):
                encode()
            best[name] = min(best[name], (time.process_time() - start) / 5 / len(spans) * 1e6)
    official, ours = best.values()
    print(f"| encoder | CPU µs per span (batch of {args.batch}, fastest of {args.rounds} rounds) |")
    print("| --- | --- |")
    for name, us in best.items():
        print(f"| {name} | {us:.1f} |")
    print(f"\nratio ours / official: {ours / official:.2f}")


if __name__ == "__main__":
    main()
