"""How a view reaches the analytics state: through the monitor's current pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..monitor import Monitor
    from . import AnalyticsState

__all__ = ["analytics_of"]


def analytics_of(monitor: Monitor) -> AnalyticsState | None:
    """The analytics state of ``monitor``'s current pipeline (None when disabled)."""
    pipeline = monitor.pipeline
    return pipeline.analytics if pipeline is not None else None
