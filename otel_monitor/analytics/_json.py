"""JSON answers of the analytics (and the alerts' routes): NaN and infinities become null."""

from __future__ import annotations

import json
import math

from flask import Response

__all__ = ["clean", "json_text", "json_response"]


def clean(value: object) -> object:
    """``value`` with every NaN or infinite float replaced by None and every key a string."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def json_text(body: object) -> str:
    return json.dumps(clean(body), separators=(",", ":"), allow_nan=False)


def json_response(body: object, status: int = 200) -> Response:
    return Response(json_text(body), status, mimetype="application/json")
