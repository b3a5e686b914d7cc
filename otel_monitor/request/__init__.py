"""The request path: everything that runs per request, and nothing else.

Owns the WSGI middleware (:mod:`._request_path`), W3C Trace Context and the configured propagators
(:mod:`._tracecontext`, :mod:`._propagation`), route templates of other frameworks
(:mod:`._frameworks`), header capture, ``enduser.id`` and ``client.address`` (:mod:`._enduser`), the
request histograms (:mod:`._request_metrics`) and the choice between our middleware and contrib's
``FlaskInstrumentor`` (:mod:`._coexistence`, :mod:`._contrib_flask`).

May import: :mod:`otel_monitor.settings`, :mod:`otel_monitor.prefork`, :mod:`otel_monitor._safe_log`,
:mod:`otel_monitor._redaction`, and (``_contrib_flask`` only) the fork-aware providers of
:mod:`otel_monitor.telemetry`. Never the read side (``metrics``, ``analytics``, ``alerts``), and the
read side never imports this package's private names: it is a leaf (``tests/test_layout.py``).
"""
