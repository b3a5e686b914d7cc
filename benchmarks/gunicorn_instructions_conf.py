"""gunicorn settings for ``gunicorn_instructions.py``: the exiting worker exports the spans it queued
on its own main thread, then writes its threads' names."""

import json
import os
import threading


def worker_exit(server: object, worker: object) -> None:
    """Export every queued span here, on the main thread (the batch processor exported none during
    the run: its batch is larger than the run), so that callgrind's thread 1 holds all of the
    per-request work; then [worker pid, each live thread's name in creation order]."""
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()
    threads = sorted((t.native_id or 0, t.name) for t in threading.enumerate())
    with open(os.environ["BENCH_THREAD_NAMES"], "w") as fh:
        json.dump([os.getpid(), *(name for _, name in threads)], fh)
