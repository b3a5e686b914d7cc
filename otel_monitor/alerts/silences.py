"""Silences: an alert (by rule name, or ``*`` for all) is not notified until the silence ends.

Posted through ``POST <prefix>/alerts/silences`` and kept with the alerts' state (:mod:`.store`),
so every worker and a restarted app see them. An expired silence is kept a day for the record.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from .rules import parse_duration

__all__ = ["new_silence", "is_silenced", "prune", "MAX_SILENCES"]

MAX_SILENCES = 100
KEEP_EXPIRED_S = 86400.0
MAX_COMMENT = 500


def new_silence(raw: object, now: float, rule_names: Iterable[str], created_by: str) -> dict[str, Any]:
    """A silence from a request's JSON ``{"rule": name|"*", "duration": "1h", "comment": "..."}``.

    Raises ValueError (naming the field) for anything else; ``ends_at`` (Unix seconds) may replace
    ``duration``.
    """
    if not isinstance(raw, Mapping):
        raise ValueError('expected a JSON object such as {"rule": "high error rate", "duration": "1h"}')
    rule = raw.get("rule")
    names = set(rule_names)
    if not isinstance(rule, str) or (rule != "*" and rule not in names):
        raise ValueError("rule: expected the name of a rule, or * for all of them")
    if "ends_at" in raw:
        ends_at = raw["ends_at"]
        if isinstance(ends_at, bool) or not isinstance(ends_at, (int, float)) or not now < ends_at <= now + 7 * 86400:
            raise ValueError("ends_at: expected a Unix time within the next 7 days")
        ends = float(ends_at)
    else:
        try:
            seconds = parse_duration(raw.get("duration", "1h"))
        except ValueError as exc:
            raise ValueError(f"duration: {exc}") from None
        if seconds <= 0:
            raise ValueError("duration: must be longer than 0 s")
        ends = now + seconds
    comment = raw.get("comment", "")
    if not isinstance(comment, str):
        raise ValueError("comment: expected a text")
    return {
        "id": secrets.token_hex(8),
        "rule": rule,
        "starts_at": now,
        "ends_at": ends,
        "comment": comment[:MAX_COMMENT],
        "created_by": created_by[:100],
    }


def _active(silence: Mapping[str, Any], now: float) -> bool:
    ends = silence.get("ends_at")
    starts = silence.get("starts_at")
    return isinstance(ends, (int, float)) and isinstance(starts, (int, float)) and starts <= now < ends


def is_silenced(rule: str, silences: Iterable[Mapping[str, Any]], now: float) -> bool:
    return any(s.get("rule") in (rule, "*") and _active(s, now) for s in silences)


def prune(silences: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Drop silences that ended more than a day ago; keep at most :data:`MAX_SILENCES` (newest)."""
    kept = [s for s in silences if isinstance(s.get("ends_at"), (int, float)) and s["ends_at"] > now - KEEP_EXPIRED_S]
    return kept[-MAX_SILENCES:]


def with_state(silences: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """The silences as the API shows them: each with ``active``."""
    return [{**s, "active": _active(s, now)} for s in silences]
