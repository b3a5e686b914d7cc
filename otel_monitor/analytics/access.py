"""The analytics state of each pipeline, kept here rather than hung on the pipeline.

One :class:`~otel_monitor.analytics.AnalyticsState` per pipeline (a forked worker builds its own
pipeline and its own state); held weakly, so a retired pipeline takes its state with it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..monitor import Monitor
    from ..telemetry.pipeline import Pipeline
    from . import AnalyticsState

__all__ = ["analytics_of", "state_of", "keep"]

_states: weakref.WeakKeyDictionary[Pipeline, AnalyticsState] = weakref.WeakKeyDictionary()


def keep(pipeline: Pipeline, state: AnalyticsState) -> None:
    """Record ``state`` as ``pipeline``'s analytics (once, when the pipeline is set up)."""
    _states[pipeline] = state


def state_of(pipeline: Pipeline) -> AnalyticsState | None:
    """``pipeline``'s analytics state (None when the analytics are off)."""
    return _states.get(pipeline)


def analytics_of(monitor: Monitor) -> AnalyticsState | None:
    """The analytics state of ``monitor``'s current pipeline (None when disabled)."""
    pipeline = monitor.pipeline
    return state_of(pipeline) if pipeline is not None else None
