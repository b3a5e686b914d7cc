"""Logging for otel_monitor's own failures: rate-limited, and safe for values taken from requests."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time

_logger = logging.getLogger("otel_monitor")
_lock = threading.Lock()
_last: dict[str, float] = {}
#: at most one log line per kind of failure in this many seconds
INTERVAL = 60.0
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x9b]")


def neutralise(value: object, limit: int = 200) -> str:
    """Text safe for one log line: control characters (CR, LF, ANSI escapes) escaped, length capped."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def should_log(what: str) -> bool:
    now = time.monotonic()
    with _lock:
        last = _last.get(what)
        if last is not None and now - last < INTERVAL:
            return False
        _last[what] = now
        return True


def log_internal_error(what: str) -> None:
    """Log the exception being handled, at most once per INTERVAL for each ``what``.

    One WARNING line with the exception's type and its message neutralised (the message may
    carry request data: CR/LF/ANSI must not forge log lines); the traceback at DEBUG.
    """
    if not should_log(what):
        return
    exc = sys.exc_info()[1]
    detail = f"{type(exc).__name__}: {neutralise(exc)}" if exc is not None else "unknown error"
    _logger.warning(
        "otel_monitor: error while %s (%s); the request is unaffected "
        "(further errors of this kind are not logged for %ds)",
        neutralise(what),
        detail,
        int(INTERVAL),
    )
    if _logger.isEnabledFor(logging.DEBUG):
        _logger.debug("otel_monitor: traceback of the error while %s", neutralise(what), exc_info=True)
