"""Per-span cost of OTLP span encoding: the official encoder vs otel_monitor.telemetry._otlp_encode.

``python benchmarks/otlp_encode.py [--batch 512] [--rounds 9]``: a batch of SERVER spans as
otel_monitor records them (the HTTP semantic-convention attributes, our resource and scope) is
encoded by both in alternating rounds; the fastest round of each is reported (noise on a shared
machine only adds time) with the ratio. Both produce the same bytes (checked first).

Instructions (not time) per request span, the measure used for issue 26: ``--passes K`` builds 512
request spans through the real monitored app (``apps.build_app("otel_monitor_100")``) and encodes
them K times with our encoder, nothing else; run it under callgrind for two K and divide the
difference by 512 × ΔK::

    for k in 2 12; do PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/enc-$k.out \
        python benchmarks/otlp_encode.py --passes $k [--varied] 2>&1 | grep refs; done

``--varied``: every pass first gives each span a new ``url.path`` and ``client.address`` (as real
traffic, where no span repeats the last one's values); that rewrite is part of the difference
(measure it with ``--passes K --varied --no-encode`` and subtract). A fixed PYTHONHASHSEED: the
hash seed moves the figure by about 2,000 instructions. The objects that exist before the passes are
frozen out of the garbage collector's generations (``gc.freeze()``).
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


def request_spans(count: int, varied: bool) -> list:
    """Request spans as the monitored app ends them (the light structure), captured in memory."""
    import os

    from apps import build_app
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from worker import Caller, make_environ

    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "600000"  # the app's own batch processor stays idle
    app = build_app("otel_monitor_100")
    memory = InMemorySpanExporter()
    app.extensions["otel_monitor"].tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    caller = Caller(app)
    for n in range(count):
        environ = make_environ(f"/users/{n}" if varied else "/users/42")
        if varied:
            environ["REMOTE_ADDR"] = f"127.0.{n // 200}.{n % 200 + 1}"
        caller.once(environ)
    return list(memory.get_finished_spans()[-count:])


def passes(count: int, varied: bool, encode: bool) -> None:
    import gc

    spans = request_spans(512, varied)
    encoder = SpanEncoder()
    # the app's objects out of the collector's way: a full collection in one of the two runs only
    # would move the figure by thousands of instructions per span
    gc.collect()
    gc.freeze()
    owns = [span._attributes for span in spans]
    # made before the passes, so that only the rewrite itself is in the difference
    fresh = [[(f"/users/{n}/{k}", f"127.{k + 1}.{n // 200}.{n % 200 + 1}") for n in range(512)] for k in range(count)]
    for k in range(count):
        if varied:
            for own, (path, client) in zip(owns, fresh[k], strict=True):
                own["url.path"], own["client.address"] = path, client
        if encode:
            encoder.encode(spans)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=512, help="spans per batch (the batch processor's default)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--passes", type=int, default=0, help="instructions mode: encode 512 request spans this often")
    ap.add_argument("--varied", action="store_true", help="instructions mode: new url.path/client.address per pass")
    ap.add_argument("--no-encode", action="store_true", help="instructions mode: only the --varied rewrite")
    args = ap.parse_args()
    if args.passes:
        passes(args.passes, args.varied, not args.no_encode)
        return
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
