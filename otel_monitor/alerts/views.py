"""The alerts' JSON endpoints on the analytics blueprint (authenticated by its guard).

* ``GET <prefix>/alerts``: the rules and their state, the silences, the destinations (masked)
  with their health, the last notifications and their outcomes;
* ``GET <prefix>/alerts/silences``, ``POST <prefix>/alerts/silences`` (JSON
  ``{"rule": name|"*", "duration": "1h", "comment": "..."}``), ``DELETE <prefix>/alerts/silences/<id>``.

State-changing requests must be JSON (a cross-site form cannot send it), from this origin, and --
when the caller signs in with the session cookie -- carry the CSRF token (``X-CSRF-Token``),
as the dashboard's other state-changing requests do. Any worker answers: the state is read from
the store the evaluator writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from flask import Blueprint, Response, request

from ..analytics._json import json_response
from .destinations import Destination
from .rules import Rule
from .silences import new_silence, with_state

if TYPE_CHECKING:
    from werkzeug.wrappers import Request
from .state import AlertState
from .store import StateStore, Stored

__all__ = ["AlertsViews", "register"]


class CsrfCheck(Protocol):
    """The part of :class:`~otel_monitor.analytics.auth.Auth` the views need."""

    @property
    def enabled(self) -> bool: ...

    def verify_csrf(self, request: Request) -> bool: ...


def _json(body: object, status: int = 200) -> Response:
    return json_response(body, status)


@dataclass(frozen=True)
class AlertsViews:
    rules: tuple[Rule, ...]
    store: StateStore
    destinations: tuple[Destination, ...]
    auth: CsrfCheck
    interval_s: float
    repeat_s: float
    schedule: str | None
    clock: Callable[[], float]

    def body(self, doc: Stored) -> dict[str, Any]:
        now = self.clock()
        alerts = []
        for rule in self.rules:
            state = AlertState.from_json(doc["alerts"].get(rule.name))
            alerts.append({**rule.as_json(), "state": state.as_json()})
        order = {"firing": 0, "pending": 1, "inactive": 2}
        alerts.sort(key=lambda a: (order[a["state"]["status"]], a["name"]))
        health = doc["destinations"]
        return {
            "time": now,
            "interval_s": self.interval_s,
            "repeat_interval_s": self.repeat_s,
            "report_schedule": self.schedule,
            "state_store": self.store.where,
            "firing": sum(1 for a in alerts if a["state"]["status"] == "firing"),
            "alerts": alerts,
            "silences": with_state(doc["silences"], now),
            "destinations": [
                {
                    "name": d.name,
                    "target": d.target,
                    "ok": health.get(d.name, {}).get("ok"),
                    "since": health.get(d.name, {}).get("since"),
                    "last_error": health.get(d.name, {}).get("last_error"),
                }
                for d in self.destinations
            ],
            "notifications": list(reversed(doc["notifications"])),
        }

    # -- views -----------------------------------------------------------------------------------

    def overview(self) -> Response:
        return _json(self.body(self.store.load()))

    def list_silences(self) -> Response:
        return _json({"silences": with_state(self.store.load()["silences"], self.clock())})

    def _refused(self) -> Response | None:
        if not (request.mimetype == "application/json"):
            return _json({"error": "send JSON (Content-Type: application/json)"}, 415)
        source = request.headers.get("Origin") or request.headers.get("Referer")
        if source is not None:
            try:
                netloc = urlsplit(source).netloc.lower()
            except ValueError:
                netloc = ""
            if not netloc or netloc != (request.host or "").lower():
                return _json({"error": "cross-origin request refused"}, 403)
        if self.auth.enabled and not request.headers.get("Authorization") and not self.auth.verify_csrf(request):
            return _json({"error": "missing or wrong CSRF token (X-CSRF-Token)"}, 403)
        return None

    def create_silence(self) -> Response:
        refused = self._refused()
        if refused is not None:
            return refused
        try:
            raw = json.loads(request.get_data(cache=False, as_text=True) or "null")
        except ValueError:
            return _json({"error": "the body is not valid JSON"}, 400)
        try:
            silence = new_silence(raw, self.clock(), (r.name for r in self.rules), _caller())
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)

        def change(doc: Stored) -> None:
            doc["silences"] = [*doc["silences"], silence]

        self.store.update(change)
        return _json({"silence": with_state([silence], self.clock())[0]}, 201)

    def delete_silence(self, silence_id: str) -> Response:
        refused = self._refused() if request.mimetype else self._refused_without_body()
        if refused is not None:
            return refused
        found: list[dict[str, Any]] = []

        def change(doc: Stored) -> None:
            found.extend(s for s in doc["silences"] if s.get("id") == silence_id)
            doc["silences"] = [s for s in doc["silences"] if s.get("id") != silence_id]

        self.store.update(change)
        if not found:
            return _json({"error": "no such silence"}, 404)
        return _json({"deleted": silence_id})

    def _refused_without_body(self) -> Response | None:
        # DELETE has no body: a cross-site form cannot send DELETE at all, so only the CSRF token counts.
        if self.auth.enabled and not request.headers.get("Authorization") and not self.auth.verify_csrf(request):
            return _json({"error": "missing or wrong CSRF token (X-CSRF-Token)"}, 403)
        return None


def _caller() -> str:
    auth = request.authorization
    if auth is not None and auth.username:
        return str(auth.username)
    return "dashboard" if request.cookies else "api"


def register(bp: Blueprint, views: AlertsViews) -> None:
    bp.add_url_rule("/alerts", "alerts", views.overview, methods=["GET"])
    bp.add_url_rule("/alerts/silences", "alerts_silences", views.list_silences, methods=["GET"])
    bp.add_url_rule("/alerts/silences", "alerts_silence_create", views.create_silence, methods=["POST"])
    bp.add_url_rule("/alerts/silences/<silence_id>", "alerts_silence_delete", views.delete_silence, methods=["DELETE"])
