"""Auto-instrumentation for ``otel-monitor run``.

``otel-monitor run -- COMMAND`` puts this directory first on ``PYTHONPATH`` and sets
``OTEL_MONITOR_AUTOINSTRUMENT=1``; Python then imports :mod:`sitecustomize` from here at start-up,
which chains to any other ``sitecustomize`` on the path and patches ``flask.Flask`` when (and if)
Flask is imported. Nothing in this package is imported by ``otel_monitor`` itself.
"""

import os

#: the directory ``otel-monitor run`` prepends to PYTHONPATH
DIRECTORY = os.path.dirname(os.path.abspath(__file__))
