"""The alerts wired into a monitor: which rules and destinations apply, the engine per pipeline,
its endpoints on the analytics blueprint, the test notice of ``otel-monitor doctor``."""

from __future__ import annotations

import functools
import os
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..analytics.access import state_of
from ..settings import Settings
from .delivery import NOTIFICATIONS_METRIC, Delivery
from .destinations import Destination, destinations_for
from .digest import Schedule, parse_schedule
from .engine import Engine, EngineConfig, Links, record_outcome
from .rules import Rule, rules_for
from .store import EvaluatorLock, StateStore, open_store
from .views import AlertsViews, CsrfCheck, register

if TYPE_CHECKING:
    from flask import Blueprint

    from ..telemetry._runtime import Runtime
    from ..telemetry.pipeline import Pipeline

__all__ = ["enabled", "attach", "AlertsSetup", "setup_for", "engine_of", "send_test_notice", "TestResult"]

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_by_pipeline: weakref.WeakKeyDictionary[Pipeline, Engine] = weakref.WeakKeyDictionary()
_fork_hook_installed = False


def enabled(settings: Settings) -> bool:
    """``alerts=on``, or ``auto`` (the default) with a destination or custom rules configured."""
    if settings.alerts == "off":
        return False
    if settings.alerts == "on":
        return True
    return bool(
        settings.alerts_slack_webhook_url
        or settings.alerts_webhook_url
        or (settings.alerts_email_to and settings.alerts_smtp_host)
        or settings.alerts_rules
    )


@dataclass(frozen=True)
class AlertsSetup:
    """Everything about one app's alerts that does not depend on the process."""

    rules: tuple[Rule, ...]
    destinations: tuple[Destination, ...]
    store: StateStore
    config: EngineConfig
    interval_s: float
    schedule_text: str | None


def setup_for(settings: Settings, service_name: str) -> AlertsSetup:
    """Rules, destinations, store and engine settings from ``settings`` (raises ValueError for bad rules)."""
    rules = rules_for(settings)
    schedule: Schedule | None = (
        parse_schedule(settings.alerts_report_schedule) if settings.alerts_report_schedule else None
    )
    prefix = settings.analytics_prefix.rstrip("/")
    base = (settings.alerts_external_url or "").rstrip("/") + prefix
    config = EngineConfig(
        service=service_name,
        repeat_s=settings.alerts_repeat_interval_s,
        apdex_t=settings.apdex_t_ms / 1000.0,
        links=Links(base),
        schedule=schedule,
    )
    store = open_store(settings.alerts_state_file, settings.analytics_db, service_name)
    return AlertsSetup(
        rules,
        tuple(destinations_for(settings)),
        store,
        config,
        settings.alerts_interval_s,
        settings.alerts_report_schedule,
    )


def attach(blueprint: Blueprint, runtime: Runtime, settings: Settings, auth: CsrfCheck) -> AlertsSetup:
    """Add the alerts' endpoints to the analytics ``blueprint`` and an evaluator to every pipeline of ``runtime``."""
    setup = setup_for(settings, runtime.service_name)
    views = AlertsViews(
        setup.rules,
        setup.store,
        setup.destinations,
        auth,
        setup.interval_s,
        setup.config.repeat_s,
        setup.schedule_text,
        time.time,
    )
    register(blueprint, views)
    runtime.setup_hooks.append(functools.partial(_setup_pipeline, setup))
    _install_fork_hook()
    return setup


def _setup_pipeline(setup: AlertsSetup, pipeline: Pipeline) -> None:
    """Per pipeline (each worker after the fork): the evaluator, its delivery thread, its counter."""
    counter = pipeline.meter.create_counter(
        NOTIFICATIONS_METRIC,
        unit="{notification}",
        description="Alert notifications by destination and outcome (sent, failed, dropped).",
    )
    delivery = Delivery(setup.destinations, counter, record_outcome(setup.store))

    def collect_custom() -> list[Mapping[str, Any]]:
        from ..analytics.reports import metrics_json

        return [dict(m) for m in metrics_json(pipeline.collect_all())]

    engine = Engine(
        setup.rules,
        setup.config,
        lambda: state_of(pipeline),
        collect_custom,
        setup.store,
        EvaluatorLock(setup.store.lock_path),
        delivery,
    )
    _engines.add(engine)
    _by_pipeline[pipeline] = engine
    pipeline.scheduler.every(setup.interval_s, engine.tick, "alerts evaluation")
    pipeline.shutdown_hooks.append(engine.close)


def engine_of(pipeline: Pipeline) -> Engine | None:
    """The alerts evaluator of ``pipeline`` (tests, ``doctor``)."""
    return _by_pipeline.get(pipeline)


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    _fork_hook_installed = True
    os.register_at_fork(after_in_parent=_after_fork_in_parent)


def _after_fork_in_parent() -> None:
    """A server's master (gunicorn's arbiter, uWSGI's master) that just forked a worker stops
    evaluating: the workers read the requests."""
    engines = [e for e in list(_engines) if not e.stood_down]
    if not engines:
        return
    from ..prefork import is_master

    if is_master():
        for engine in engines:
            engine.stand_down()


@dataclass(frozen=True)
class TestResult:
    destination: str
    #: masked
    target: str
    #: None: delivered
    error: str | None


def send_test_notice(setup: AlertsSetup, now: float | None = None) -> list[TestResult]:
    """``doctor --test-alert``: a TEST notice to every destination, now, in this thread (one attempt each)."""
    from .destinations import DeliveryError
    from .notices import Notice

    notice = Notice(
        kind="test",
        service=setup.config.service,
        lines=(f"{len(setup.rules)} rule(s) in force; this destination works.",),
        dashboard_url=setup.config.links.alerts,
        created=time.time() if now is None else now,
    )
    results = []
    for destination in setup.destinations:
        try:
            destination.send(notice)
        except DeliveryError as exc:
            results.append(TestResult(destination.name, destination.target, str(exc)))
        else:
            results.append(TestResult(destination.name, destination.target, None))
    return results
