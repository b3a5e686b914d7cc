"""The ``otel-monitor`` command line: ``run``, ``doctor``, ``demo``.

Owns argument parsing and the sub-commands (:mod:`.commands`), the configuration and export checks
(:mod:`.doctor`), the demo's traffic (:mod:`._demo`) and the ``sitecustomize`` that ``run`` puts on
``PYTHONPATH`` (:mod:`._autoinstrument`).

May import anything in the package. Nothing in the package imports it.
"""

from .commands import main

__all__ = ["main"]
