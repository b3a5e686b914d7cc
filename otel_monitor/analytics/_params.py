"""The query parameters every analytics view parses the same way: ``window`` and ``limit``.

A value a view cannot use raises :class:`BadRequest`; the blueprint answers it with 400 and the
message (``{"error": "..."}``). Read from the current Flask request.
"""

from __future__ import annotations

from flask import request

from .summary import WINDOWS

__all__ = ["BadRequest", "MAX_LIMIT", "window_param", "limit_param"]

#: the largest ``limit`` any view accepts
MAX_LIMIT = 1000


class BadRequest(ValueError):
    """A query parameter we cannot use: 400 with the message."""


def window_param(default: str, allowed: tuple[str, ...] = tuple(WINDOWS)) -> str:
    """``?window=``: one of ``allowed`` (every window by default), else ``default`` when absent."""
    name = request.args.get("window", default)
    if name not in allowed:
        raise BadRequest(f"window must be one of {', '.join(allowed)}")
    return name


def limit_param(default: int) -> int:
    """``?limit=``: a whole number from 1 to :data:`MAX_LIMIT`, else ``default`` when absent."""
    text = request.args.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a number from 1 to {MAX_LIMIT}")
    return int(text)
