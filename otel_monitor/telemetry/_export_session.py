"""The HTTP session of our OTLP/HTTP exporters: it tells the export accounting how each POST ended.

``SpanExporter.export`` answers only SUCCESS or FAILURE; the status code, a collector's
``Retry-After`` and the transport's exception stay inside the SDK's HTTP client. The OTLP/HTTP
exporters take a ``requests.Session`` as their public ``session=`` argument, so the pipeline gives
them an :class:`ExportSession`: each response (or exception) of ``send`` is written to the
:class:`~._export_accounting.ExportOutcome` that the accounting wrapper opened for the export
running on this thread (:func:`~._export_accounting.observed_export`). Outside an accounted
export it is a plain ``requests.Session``.

Imported only when an OTLP/HTTP exporter is configured (``requests`` is not imported otherwise).
"""

from __future__ import annotations

import email.utils
import math
import os
import time
from typing import Any

import requests

from ._export_accounting import current_outcome

__all__ = ["ExportSession", "export_session", "retry_after_s"]

#: the SDK's variables that give the OTLP/HTTP exporters a session of their own (a credential
#: provider): with one set, that session is used and the accounting goes without response details
_CREDENTIAL_PROVIDERS = ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",)
_SIGNAL_CREDENTIAL_PROVIDER = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER"
#: the statuses whose Retry-After holds back the next export (the SDK retries on these)
_RETRY_AFTER_STATUSES = (429, 503)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            at = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if at.tzinfo is None:
            return None
        seconds = at.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


class ExportSession(requests.Session):
    """A ``requests.Session`` that records each response's status and ``Retry-After`` (or the
    exception) in the accounted export running on this thread."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        outcome = current_outcome()
        timeout = kwargs.get("timeout")
        if isinstance(timeout, (int, float)) and timeout <= 0:
            # The SDK's retry passes max(deadline - now, 0): its deadline passed while it backed off
            # (a busy machine wakes late), and requests refuses a zero timeout with a ValueError. It is
            # a timeout, and the export is lost to what its attempts met (the 503, the refused
            # connection), which this attempt, never sent, does not overwrite.
            if outcome is not None and outcome.status is None and outcome.error is None:
                outcome.responded(None, "Timeout", None)
            raise requests.Timeout("the export's deadline passed before this attempt was sent")
        try:
            response = super().send(request, **kwargs)
        except Exception as exc:
            if outcome is not None:
                outcome.responded(None, type(exc).__qualname__, None)
            raise
        if outcome is not None:
            status = response.status_code
            wait = retry_after_s(response.headers.get("Retry-After")) if status in _RETRY_AFTER_STATUSES else None
            outcome.responded(status, None, wait)
        return response


def export_session(signal: str, environ: dict[str, str] | None = None) -> ExportSession | None:
    """A session for the OTLP/HTTP exporter of ``signal`` (traces, metrics, logs); None when the SDK
    is told to use a credential provider's session instead (left to the exporter, as without us)."""
    env = os.environ if environ is None else environ
    names = (*_CREDENTIAL_PROVIDERS, _SIGNAL_CREDENTIAL_PROVIDER.format(signal=signal.upper()))
    if any(env.get(name, "").strip() for name in names):
        return None
    return ExportSession()
