"""The one view of metrics every consumer reads: ``/metrics``, the metrics port, the analytics, ``/health``.

A pipeline gets its view when it is built (:func:`otel_monitor.telemetry.pipeline.build_pipeline` and the
runtime's pre-fork detection): :class:`LocalView` in a single process; under a pre-fork server a
worker's or the master's view from :mod:`otel_monitor.metrics.multiprocess`. Consumers never ask which.

* ``scrape()``: what ``/metrics`` shows -- the freshest, exact totals (under pre-fork: every live
  worker's numbers right now, plus those of workers that died).
* ``scrape_with_registry()``: the scrape, and prometheus_client's default registry of the same
  round (under pre-fork: every worker's, merged by :mod:`otel_monitor.metrics._default_registry`; None:
  this process's own).
* ``read()``: the same data for in-process readers (analytics, ``/health``), as cheap as one
  process's snapshot: it never writes files and may be up to one background tick old for the
  other workers.
* ``gather(key)``: the values every live worker published under ``key`` with
  :meth:`otel_monitor.telemetry.pipeline.Pipeline.share` (the analytics' recent traces), one per worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from opentelemetry.sdk.metrics.export import MetricsData

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric as PrometheusMetric

__all__ = ["MetricsView", "LocalView", "Channel"]

T = TypeVar("T")


@dataclass(frozen=True)
class Channel(Generic[T]):
    """A value every worker publishes for the others, registered with ``Pipeline.share(channel,
    produce)`` and read with ``Pipeline.gather(channel)``: ``T`` is what this process's producer
    returns (JSON-able); ``name`` is its key in the worker files. What the other workers published
    comes back as their JSON, so ``gather`` returns ``list[Any]``."""

    name: str


class MetricsView(Protocol):
    def scrape(self) -> MetricsData | None: ...

    def scrape_with_registry(self) -> tuple[MetricsData | None, list[PrometheusMetric] | None]: ...

    def read(self) -> MetricsData | None: ...

    def gather(self, key: str) -> list[Any]: ...

    def close(self) -> None: ...


class LocalView:
    """One process: every read is a fresh snapshot of this process's reader."""

    def __init__(
        self,
        snapshot: Callable[[], MetricsData | None],
        shared: dict[str, Callable[[], Any]],
        own_only: bool = False,
    ) -> None:
        self._snapshot = snapshot
        #: key -> producer of the value (owned by the pipeline: it outlives a change of view)
        self.shared = shared
        #: a pre-fork worker that could not join its group (``/health``: metrics from this worker only)
        self.own_only = own_only

    def scrape(self) -> MetricsData | None:
        return self._snapshot()

    def scrape_with_registry(self) -> tuple[MetricsData | None, list[PrometheusMetric] | None]:
        return self._snapshot(), None

    def read(self) -> MetricsData | None:
        return self._snapshot()

    def gather(self, key: str) -> list[Any]:
        produce = self.shared.get(key)
        return [produce()] if produce is not None else []

    def close(self) -> None:
        pass
