"""``python -m otel_monitor``: the ``otel-monitor`` command (run, demo, doctor)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
