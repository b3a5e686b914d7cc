"""Gunicorn entry point for the HTTP benchmark: ``BENCH_STACK=<stack> gunicorn --chdir benchmarks wsgi:app``."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))  # the repository's otel_monitor, before any installed one

from apps import build_app  # noqa: E402 - after the sys.path set-up above

app = build_app(os.environ.get("BENCH_STACK", "bare"))
