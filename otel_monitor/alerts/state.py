"""The state machine of one alert: inactive -> pending -> firing -> resolved, and when it was notified.

Pure functions over a frozen :class:`AlertState`; the engine keeps one per rule and persists them
(:mod:`.store`), so a restart neither forgets a firing alert nor pages for it again.

* over the threshold: inactive -> pending (``for`` starts), pending -> firing after ``for``;
* not over (or nothing to judge): pending -> inactive, firing -> inactive (``resolved_at`` set);
* notifications: :func:`decide` says what to send -- FIRING once when an alert fires (again only
  after ``repeat_s``, when it is set), RESOLVED once when an alert that was notified as firing
  resolves. A silenced alert is not notified; its state goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from .rules import Rule

__all__ = ["AlertState", "Status", "Event", "step", "decide", "mark_notified"]

Status = Literal["inactive", "pending", "firing"]
#: what to notify: a new or repeated FIRING, or a RESOLVED
Event = Literal["firing", "repeat", "resolved"]


@dataclass(frozen=True)
class AlertState:
    status: Status = "inactive"
    #: the value at the last evaluation (None: nothing to judge)
    value: float | None = None
    #: over the threshold since (pending or firing)
    active_since: float | None = None
    firing_since: float | None = None
    resolved_at: float | None = None
    #: what was last sent, and when
    notified: Literal["firing", "resolved"] | None = None
    notified_at: float | None = None
    evaluated_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "value": self.value,
            "active_since": self.active_since,
            "firing_since": self.firing_since,
            "resolved_at": self.resolved_at,
            "notified": self.notified,
            "notified_at": self.notified_at,
            "evaluated_at": self.evaluated_at,
        }

    @classmethod
    def from_json(cls, data: object) -> AlertState:
        """A stored state (anything unreadable becomes the inactive state)."""
        if not isinstance(data, dict):
            return cls()
        status = data.get("status")
        notified = data.get("notified")

        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        return cls(
            status=status if status in ("inactive", "pending", "firing") else "inactive",
            value=number("value"),
            active_since=number("active_since"),
            firing_since=number("firing_since"),
            resolved_at=number("resolved_at"),
            notified=notified if notified in ("firing", "resolved") else None,
            notified_at=number("notified_at"),
            evaluated_at=number("evaluated_at"),
        )


def step(state: AlertState, rule: Rule, value: float | None, now: float) -> AlertState:
    """The state after an evaluation that found ``value`` at ``now``."""
    over = value is not None and rule.over(value)
    if over:
        since = state.active_since if state.status != "inactive" and state.active_since is not None else now
        if state.status == "firing":
            return replace(state, value=value, evaluated_at=now)
        if now - since >= rule.for_s:
            return replace(state, status="firing", value=value, active_since=since, firing_since=now, evaluated_at=now)
        return replace(state, status="pending", value=value, active_since=since, evaluated_at=now)
    if state.status == "firing":
        return replace(state, status="inactive", value=value, active_since=None, resolved_at=now, evaluated_at=now)
    return replace(state, status="inactive", value=value, active_since=None, evaluated_at=now)


def decide(state: AlertState, now: float, repeat_s: float) -> Event | None:
    """What to notify for ``state`` (after :func:`step`): None, a FIRING, a repeat, a RESOLVED."""
    if state.status == "firing":
        if state.notified != "firing":
            return "firing"
        if repeat_s > 0 and state.notified_at is not None and now - state.notified_at >= repeat_s:
            return "repeat"
        return None
    if state.notified == "firing":
        return "resolved"
    return None


def mark_notified(state: AlertState, event: Event, now: float) -> AlertState:
    """The state once ``event`` was handed to delivery (or, silenced, deliberately not sent)."""
    return replace(state, notified="resolved" if event == "resolved" else "firing", notified_at=now)
