"""The evaluator: every ``alerts_interval_s``, in the one process of the group that holds the lock.

Each tick reads the analytics' cumulative snapshot (all workers merged), measures every rule
(:mod:`.evaluate`), steps its state (:mod:`.state`), persists the states (:mod:`.store`), and
hands the FIRING and RESOLVED notices -- one of each at most, grouping the alerts of the tick --
to the delivery thread (:mod:`.delivery`). It also sends the scheduled report (:mod:`.digest`).
Nothing here runs on a request; a failing tick is logged (rate-limited) by the scheduler.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..analytics.summary import Key, Sample, Series
from .delivery import Delivery, Outcome
from .digest import Schedule, digest_lines, latest_due
from .evaluate import Readings, Snapshot, custom_totals, measure
from .notices import AlertItem, Notice
from .rules import Rule
from .silences import is_silenced, prune
from .state import AlertState, Event, decide, mark_notified, step
from .store import MAX_NOTIFICATIONS, EvaluatorLock, StateStore, Stored

__all__ = ["Engine", "EngineConfig", "AlertSource", "Links"]

#: readings kept past the longest window (one evaluation may come late)
_SPAN_MARGIN_S = 60.0


class HistoryLike(Protocol):
    @property
    def usable(self) -> bool: ...

    def requests(self, since: float, until: float) -> dict[Key, Series]: ...


class AlertSource(Protocol):
    """The part of :class:`~otel_monitor.analytics.AnalyticsState` the alerts read."""

    bounds: tuple[float, ...]
    started: float
    clock: Callable[[], float]

    @property
    def history(self) -> HistoryLike | None: ...  # read-only: a state's History satisfies it

    def read(self) -> Sample: ...

    def collect(self) -> Sample: ...

    def traces(self) -> list[dict[str, object]]: ...

    def error_groups(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Links:
    """The dashboard's absolute (with ``alerts_external_url``) or path-only URLs."""

    base: str

    @property
    def alerts(self) -> str:
        return f"{self.base}/#alerts"

    def trace(self, trace_id: str) -> str:
        return f"{self.base}/#traces/{trace_id}"


@dataclass(frozen=True)
class EngineConfig:
    service: str
    repeat_s: float
    apdex_t: float
    links: Links
    schedule: Schedule | None = None


class Engine:
    """One process's evaluator for one monitored app (made per pipeline, so per worker)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        config: EngineConfig,
        source: Callable[[], AlertSource | None],
        collect_custom: Callable[[], list[Mapping[str, Any]]],
        store: StateStore,
        lock: EvaluatorLock,
        delivery: Delivery,
    ) -> None:
        self.rules = tuple(rules)
        self.config = config
        #: the analytics state (made by the analytics' own pipeline hook: looked up at each tick)
        self._source = source
        self._collect_custom = collect_custom
        self.store = store
        self.lock = lock
        self.delivery = delivery
        self.states: dict[str, AlertState] = {}
        self.readings = Readings(max((r.window_s for r in self.rules), default=300.0) + _SPAN_MARGIN_S)
        self._leading = False
        #: evaluations done by this process (while it held the lock)
        self.evaluations = 0
        #: set in a gunicorn master after it forked its workers: they evaluate, it does not
        self.stood_down = False
        self._pid = os.getpid()

    @property
    def leading(self) -> bool:
        return self._leading and self.lock.held

    def stand_down(self) -> None:
        self.stood_down = True
        self._leading = False
        self.lock.release()

    def close(self) -> None:
        """At shutdown: deliver what is queued (bounded), then let another process evaluate."""
        if os.getpid() != self._pid:
            return
        self.delivery.stop()
        self.lock.release()
        self._leading = False

    # -- the tick ------------------------------------------------------------------------------

    def tick(self) -> None:
        if self.stood_down or os.getpid() != self._pid:
            return
        source = self._source()
        if source is None:
            return
        if not self.lock.acquire():
            self._leading = False
            return
        if not self._leading:
            # Just took over (start-up, or the previous evaluator died): its states, not a fresh page.
            stored = self.store.load()
            self.states = {name: AlertState.from_json(raw) for name, raw in stored["alerts"].items()}
            self._leading = True
        now = source.clock()
        # A fresh cumulative snapshot (all workers), not the analytics' 10 s tick: a rule's window
        # and `for` may be seconds long. One collect per evaluation interval, off the request path.
        sample = source.collect()
        custom = custom_totals(self._collect_custom()) if any(r.is_custom for r in self.rules) else {}
        snapshot = Snapshot(sample, custom)
        stored = self.store.load()
        silences = stored["silences"]
        firing: list[AlertItem] = []
        resolved: list[AlertItem] = []
        traces: list[dict[str, object]] | None = None
        for rule in self.rules:
            value = measure(rule, snapshot, self.readings, source.bounds, self.config.apdex_t, source.started)
            state = step(self.states.get(rule.name, AlertState()), rule, value, now)
            event = decide(state, now, self.config.repeat_s)
            if event is not None:
                if is_silenced(rule.name, silences, now):
                    if event == "resolved":  # never notified as firing again: nothing to resolve
                        state = mark_notified(state, event, now)
                else:
                    if traces is None and event != "resolved":
                        traces = _traces(source)
                    item = self._item(rule, state, event, traces or [], now)
                    (resolved if event == "resolved" else firing).append(item)
                    state = mark_notified(state, event, now)
            self.states[rule.name] = state
        self.readings.add(snapshot)
        report = self._report_due(source, now, stored["report_last"])
        self._persist(now, report is not None)
        if firing:
            self.delivery.submit(self._notice("firing", firing, now))
        if resolved:
            self.delivery.submit(self._notice("resolved", resolved, now))
        if report is not None:
            self.delivery.submit(report)
        self.evaluations += 1

    def _item(
        self, rule: Rule, state: AlertState, event: Event, traces: list[dict[str, object]], now: float
    ) -> AlertItem:
        labels = {"alertname": rule.name, "severity": rule.severity, **rule.labels}
        if rule.route:
            labels["route"] = rule.route
        if rule.method:
            labels["method"] = rule.method
        trace_url = None
        if event != "resolved":
            trace_id = _recent_trace(rule, traces)
            trace_url = self.config.links.trace(trace_id) if trace_id else None
        return AlertItem(
            rule=rule.name,
            status="resolved" if event == "resolved" else "firing",
            value=state.value,
            threshold=rule.threshold,
            op=rule.op,
            metric=rule.metric,
            severity=rule.severity,
            labels=labels,
            summary=rule.description,
            starts_at=state.active_since or state.firing_since or state.resolved_at or now,
            ends_at=state.resolved_at if event == "resolved" else None,
            dashboard_url=self.config.links.alerts,
            trace_url=trace_url,
            route=rule.route,
            method=rule.method,
        )

    def _notice(self, kind: str, items: list[AlertItem], now: float) -> Notice:
        return Notice(
            kind="firing" if kind == "firing" else "resolved",
            service=self.config.service,
            alerts=tuple(items),
            dashboard_url=self.config.links.alerts,
            created=now,
        )

    def _persist(self, now: float, report_sent: bool) -> None:
        states = {name: state.as_json() for name, state in self.states.items()}
        known = {r.name for r in self.rules}

        def change(doc: Stored) -> None:
            doc["alerts"] = {name: raw for name, raw in states.items() if name in known}
            doc["silences"] = prune(doc["silences"], now)
            if report_sent or doc["report_last"] is None:
                doc["report_last"] = now

        self.store.update(change)

    # -- reports -------------------------------------------------------------------------------

    def _report_due(self, source: AlertSource, now: float, last: float | None) -> Notice | None:
        schedule = self.config.schedule
        if schedule is None:
            return None
        if last is None or latest_due(schedule, now) <= last:
            return None
        return self.report(source, now)

    def report(self, source: AlertSource, now: float) -> Notice:
        """The digest for the period ending ``now``."""
        schedule = self.config.schedule or Schedule(None, 0, 0)
        lines = digest_lines(_DigestAdapter(source), schedule, now, self.config.apdex_t)
        return Notice(
            kind="report",
            service=self.config.service,
            title=f"{schedule.name} digest",
            lines=tuple(lines),
            dashboard_url=self.config.links.alerts.rsplit("#", 1)[0],
            created=now,
        )


def _traces(source: AlertSource) -> list[dict[str, object]]:
    try:
        return source.traces()
    except Exception:  # noqa: BLE001 - the notice goes out without a trace link
        return []


def _recent_trace(rule: Rule, traces: list[dict[str, object]]) -> str | None:
    """The newest failed (error rate) or slow (latency) request of the rule's endpoint."""
    if rule.metric == "error_rate_pct":
        kind = "failed"
    elif rule.metric in ("avg_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "apdex"):
        kind = "slow"
    else:
        return None
    found = [
        t
        for t in traces
        if t.get("kind") == kind
        and (rule.route is None or t.get("route") == rule.route)
        and (rule.method is None or t.get("method") == rule.method)
        and isinstance(t.get("trace_id"), str)
    ]
    if not found:
        return None
    return str(max(found, key=_time)["trace_id"])


def _time(trace: Mapping[str, object]) -> float:
    time = trace.get("time")
    return time if isinstance(time, (int, float)) else 0


class _DigestAdapter:
    """The analytics state as a :class:`~.digest.DigestSource`."""

    def __init__(self, source: AlertSource) -> None:
        self._source = source
        self.bounds = source.bounds

    def requests_between(self, start: float, end: float) -> Mapping[Key, Series] | None:
        history = self._source.history
        if history is not None and history.usable:
            return history.requests(start, end)
        if end >= self._source.clock() - 60 and start <= self._source.started:
            return self._source.read().requests  # no history: everything since this process started
        return None

    def error_groups(self) -> list[dict[str, Any]]:
        return self._source.error_groups()

    def version_regressions(self) -> Sequence[str]:
        return ()


def record_outcome(store: StateStore) -> Callable[[Outcome], None]:
    """The delivery's ``on_outcome``: the last notifications and each destination's health, in the store."""

    def record(outcome: Outcome) -> None:
        entry = {
            "time": outcome.time,
            "destination": outcome.destination,
            "outcome": outcome.outcome,
            "kind": outcome.kind,
            "headline": outcome.headline,
            "alerts": list(outcome.alerts),
            "attempts": outcome.attempts,
            "error": outcome.error,
        }

        def change(doc: Stored) -> None:
            doc["notifications"] = (doc["notifications"] + [entry])[-MAX_NOTIFICATIONS:]
            health = doc["destinations"].get(outcome.destination, {})
            ok = outcome.outcome == "sent"
            if ok != health.get("ok") or not health:
                health = {"ok": ok, "since": outcome.time}
            health.update(last_error=outcome.error, last_time=outcome.time, target=outcome.target)
            doc["destinations"][outcome.destination] = health

        store.update(change)

    return record
