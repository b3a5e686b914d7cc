"""The ``/metrics`` endpoint: Prometheus text (0.0.4) and OpenMetrics 1.0, written from the SDK's data.

Why our own writer: going through prometheus_client's metric families builds one Python object per
sample and re-formats every label set on every scrape (the stock exporter's scrape of 500 request
series took as long as the requests' own monitoring for a minute). Here the label text of each
series is formatted once and reused while the series lives (the SDK and the request histograms
keep one attributes object per series), and a histogram line is a string join.

Naming follows the OpenTelemetry-to-Prometheus compatibility rules as the stock exporter applies
them (``.`` -> ``_``, unit suffix, ``_total`` for monotonic sums, non-monotonic sums as gauges),
so dashboards built on the stock names keep working. Unlike the stock exporter, an attribute a
data point does not have is left out, not written as an empty label (``error_type=""``).

The process's prometheus_client default registry (``process_*``, ``python_*``, the app's own
prometheus_client metrics) is appended unless ``metrics_default_registry`` is off; a family name
both sides use is shown once, ours (see :func:`_default_registry_text`).
"""

from __future__ import annotations

import gzip
import hmac
import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute, sanitize_full_name
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import Gauge, Histogram, HistogramDataPoint, Metric, MetricsData, Sum
from opentelemetry.util.types import Attributes

from ._metrics_data import iter_metrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from prometheus_client.metrics_core import Metric as PrometheusMetric

    from .metrics_view import MetricsView

__all__ = ["PROMETHEUS_RENAMES", "TextWriter", "metrics_app_for", "metrics_wsgi_app", "OPENMETRICS", "TEXT"]

_logger = logging.getLogger("otel_monitor")

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: Semantic-convention names ending in ``.count`` that are not histograms: in the Prometheus
#: text format ``_count`` belongs to histograms and summaries (``promtool check metrics``
#: rejects it elsewhere), so these are exposed under the names Prometheus users know.
PROMETHEUS_RENAMES = {
    "process.thread.count": "process.threads",
    "process.unix.file_descriptor.count": "process.open_fds",
    "system.cpu.logical.count": "system.cpu.logical_cpus",
}

#: prometheus_client's own process/platform/GC collectors report some of what our process.*
#: gauges report, under the same names; ours (with ``process_pid``) are shown, theirs dropped.
_STANDARD_DEFAULT_FAMILIES = frozenset(
    {"process_open_fds", "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"}
)


def metric_name(name: str, unit: str) -> str:
    """The Prometheus family name of an OpenTelemetry metric (without ``_total``).

    The rules are the stock OpenTelemetry Prometheus exporter's own (its name mapping is called,
    not copied), so a family is named exactly as a stock set-up names it; a name is computed once
    per family and a label once per series (the writer caches both).
    """
    name = sanitize_full_name(PROMETHEUS_RENAMES.get(name, name))
    suffix = map_unit(unit or "")
    if suffix and not name.endswith("_" + suffix):
        name = f"{name}_{suffix}"
    return name


def label_name(key: str) -> str:
    return sanitize_attribute(key)


def _label_value(value: object) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        import json

        text = json.dumps(list(value) if isinstance(value, tuple) else value, default=str)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(attributes: Attributes) -> str:
    """``a="x",b="y"`` (sorted by label name; absent attributes are simply not there)."""
    if not attributes:
        return ""
    pairs: dict[str, str] = {}
    for key, value in attributes.items():
        pairs[label_name(key)] = _label_value(value)
    return ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items()))


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    return repr(float(value))


def _help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


class TextWriter:
    """Writes MetricsData as Prometheus text or OpenMetrics; keeps label text per live series.

    One writer per endpoint; ``render`` may be called from several threads (one at a time).
    """

    def __init__(self, target_info: bool = True) -> None:
        self.target_info = target_info
        self._lock = threading.Lock()
        #: id(attributes) -> (attributes, label text); rebuilt each render, so only live series stay
        self._labels: dict[int, tuple[Attributes, str]] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._bounds: dict[tuple[float, ...], list[str]] = {}
        #: (family, id(attributes)) -> (attributes, count, sum, start, lines) of a histogram series:
        #: a series whose count, sum and start did not change since the last render has the same
        #: lines (kept only for renders without exemplars; rebuilt each render like the labels, so
        #: only live series stay)
        self._blocks: dict[tuple[str, int], tuple[Attributes, int, float, int, str]] = {}
        self._blocks_used: dict[tuple[str, int], tuple[Attributes, int, float, int, str]] = {}
        #: the family names of the last render (for the default-registry clash check)
        self.families: set[str] = set()

    def render(self, data: MetricsData | None, openmetrics: bool = False, exemplars: bool = False) -> str:
        with self._lock:
            return self._render(data, openmetrics, exemplars and openmetrics)

    def _label(self, attributes: Attributes, used: dict[int, tuple[Attributes, str]]) -> str:
        key = id(attributes)
        entry = self._labels.get(key)
        if entry is None or entry[0] is not attributes:
            entry = (attributes, labels_text(attributes))
        used[key] = entry
        return entry[1]

    def _name(self, name: str, unit: str) -> str:
        key = (name, unit)
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = metric_name(name, unit)
        return found

    def _le(self, bounds: Sequence[float]) -> list[str]:
        key = tuple(bounds)
        found = self._bounds.get(key)
        if found is None:
            found = self._bounds[key] = [f'le="{number(float(b))}"' for b in key] + ['le="+Inf"']
        return found

    def _render(self, data: MetricsData | None, openmetrics: bool, exemplars: bool) -> str:
        out: list[str] = []
        used: dict[int, tuple[Attributes, str]] = {}
        families: set[str] = set()
        # One target_info, of the first resource (a collection has one), ahead of the metrics.
        resources = [rm.resource for rm in data.resource_metrics if rm.resource is not None] if data else []
        if self.target_info and resources:
            families.add("target")
            families.add("target_info")
            if openmetrics:
                out.append("# HELP target Target metadata\n# TYPE target info\n")
            else:
                out.append("# HELP target_info Target metadata\n# TYPE target_info gauge\n")
            labels = self._label(resources[0].attributes, used)
            out.append(f"target_info{{{labels}}} 1\n")
        self._blocks_used = {}
        for metric in iter_metrics(data):
            self._metric(metric, out, used, families, openmetrics, exemplars)
        self._labels = used
        self._blocks = self._blocks_used
        self.families = families
        return "".join(out)

    def _metric(
        self,
        metric: Metric,
        out: list[str],
        used: dict[int, tuple[Attributes, str]],
        families: set[str],
        openmetrics: bool,
        exemplars: bool,
    ) -> None:
        base = self._name(metric.name, metric.unit or "")
        data = metric.data
        if isinstance(data, Histogram):
            kind = "histogram"
        elif isinstance(data, Sum) and data.is_monotonic:
            kind = "counter"
            if base.endswith("_total"):
                base = base[: -len("_total")]
        elif isinstance(data, (Sum, Gauge)):
            kind = "gauge"
        else:
            return  # exponential histograms have no text-format form
        if not data.data_points:
            return
        family = base + "_total" if kind == "counter" and not openmetrics else base
        if family in families:
            return  # a second scope with the same name: the first one wins (two TYPE lines are invalid)
        families.add(family)
        if kind == "counter":
            families.add(base + "_total")
        text = _help(metric.description or "", openmetrics)
        out.append(f"# HELP {family} {text}\n# TYPE {family} {kind}\n")
        if isinstance(data, Histogram):
            self._histogram(base, data.data_points, out, used, exemplars)
            return
        sample = base + "_total" if kind == "counter" else base
        for point in data.data_points:
            labels = self._label(point.attributes, used)
            if labels:
                out.append(f"{sample}{{{labels}}} {number(point.value)}\n")
            else:
                out.append(f"{sample} {number(point.value)}\n")

    def _histogram(
        self,
        base: str,
        points: Iterable[HistogramDataPoint],
        out: list[str],
        used: dict[int, tuple[Attributes, str]],
        exemplars: bool,
    ) -> None:
        bucket = base + "_bucket{"
        blocks, blocks_used = self._blocks, self._blocks_used
        for point in points:
            attributes = point.attributes
            key = (base, id(attributes))
            marks = _exemplar_marks(point, exemplars)
            if marks is None:
                cached = blocks.get(key)
                if (
                    cached is not None
                    and cached[0] is attributes
                    and cached[1] == point.count
                    and cached[2] == point.sum
                    and cached[3] == point.start_time_unix_nano
                ):
                    self._label(attributes, used)  # keeps the label entry alive
                    blocks_used[key] = cached
                    out.append(cached[4])
                    continue
            labels = self._label(attributes, used)
            prefix = bucket + labels + "," if labels else bucket
            les = self._le(point.explicit_bounds)
            lines = []
            cumulative = 0
            for i, count in enumerate(point.bucket_counts):
                cumulative += count
                line = f"{prefix}{les[i]}}} {cumulative}"
                if marks is not None and i in marks:
                    line += marks[i]
                lines.append(line)
            if labels:
                lines.append(f"{base}_count{{{labels}}} {point.count}\n{base}_sum{{{labels}}} {number(point.sum)}\n")
            else:
                lines.append(f"{base}_count {point.count}\n{base}_sum {number(point.sum)}\n")
            block = "\n".join(lines)
            if marks is None:
                blocks_used[key] = (attributes, point.count, point.sum, point.start_time_unix_nano, block)
            out.append(block)


def _exemplar_marks(point: HistogramDataPoint, wanted: bool) -> dict[int, str] | None:
    """bucket index -> `` # {trace_id="..",span_id=".."} value timestamp`` (the newest per bucket)."""
    if not wanted or not point.exemplars:
        return None
    bounds = point.explicit_bounds
    newest: dict[int, Exemplar] = {}
    for exemplar in point.exemplars:
        if not exemplar.trace_id:
            continue
        index = bisect_left(bounds, exemplar.value)
        current = newest.get(index)
        if current is None or exemplar.time_unix_nano > current.time_unix_nano:
            newest[index] = exemplar
    return {
        index: (
            f' # {{trace_id="{e.trace_id:032x}",span_id="{e.span_id:016x}"}} '
            f"{number(e.value)} {e.time_unix_nano / 1e9:.3f}"
        )
        for index, e in newest.items()
    }


# -- the default registry -----------------------------------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _family_name(metric: PrometheusMetric, openmetrics: bool) -> str:
    """``metric``: a prometheus_client ``Metric`` family."""
    name = str(metric.name)
    if metric.type == "counter" and not openmetrics:
        return name + "_total"
    if metric.type == "info" and not openmetrics:
        return name + "_info"
    return name


def _default_registry_text(ours: set[str], openmetrics: bool, merged: list[PrometheusMetric] | None = None) -> str:
    """prometheus_client's default registry without the families we already wrote.

    ``merged``: the group's families (:mod:`otel_monitor.metrics._default_registry`) under a pre-fork
    server; None: this process's default registry.

    A clash with one of our names is logged once (naming the setting that turns the default
    registry off), except for the process_* gauges prometheus_client's own collectors report too.
    """
    from prometheus_client import REGISTRY
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    class _Without:
        def collect(self) -> Iterable[PrometheusMetric]:
            for metric in REGISTRY.collect() if merged is None else merged:
                name = _family_name(metric, openmetrics)
                if name in ours or metric.name in ours:
                    _warn_clash(name)
                    continue
                yield metric

    text = (generate_openmetrics if openmetrics else generate_latest)(_Without()).decode("utf-8")
    if openmetrics and text.endswith("# EOF\n"):
        text = text[: -len("# EOF\n")]
    return text


def _warn_clash(name: str) -> None:
    if name in _STANDARD_DEFAULT_FAMILIES:
        return
    with _warned_lock:
        if name in _warned:
            return
        _warned.add(name)
    _logger.warning(
        "otel_monitor: the prometheus_client default registry has a metric %r that otel_monitor also "
        "exposes; /metrics shows otel_monitor's. Rename yours, or set metrics_default_registry=False "
        "(OTEL_MONITOR_METRICS_DEFAULT_REGISTRY=false) to leave the default registry out.",
        name,
    )


# -- the WSGI app -------------------------------------------------------------------------------


#: gzip level of a compressed scrape: level 1 takes a third of level 6's time for a text that
#: compresses ~20x either way (Prometheus asks for gzip on every scrape)
GZIP_LEVEL = 1


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (``gzip;q=0`` refuses it)."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() not in ("gzip", "x-gzip"):
            continue
        quality = params.strip()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def wants_openmetrics(accept: str) -> bool:
    return any(part.strip().startswith("application/openmetrics-text") for part in accept.split(","))


def metrics_wsgi_app(
    source: Callable[[], tuple[MetricsData | None, list[PrometheusMetric] | None]],
    token: str | None = None,
    *,
    target_info: bool = True,
    default_registry: bool = True,
) -> WSGIApplication:
    """A WSGI app serving ``source()`` in the Prometheus text format (OpenMetrics when asked).

    ``source()`` returns the metrics and the default registry's families to append (None: this
    process's default registry; see :meth:`otel_monitor.metrics.metrics_view.MetricsView.scrape_with_registry`).

    With ``token``, requests must carry ``Authorization: Bearer <token>`` (compared in constant
    time); others get 401. Exemplars (trace ids of sampled requests) appear in OpenMetrics only.
    """
    expected = ("Bearer " + token).encode() if token else None
    writer = TextWriter(target_info=target_info)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if expected is not None:
            given = environ.get("HTTP_AUTHORIZATION", "").encode("utf-8", "surrogateescape")[:1024]
            if not hmac.compare_digest(given, expected):
                start_response(
                    "401 Unauthorized",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("WWW-Authenticate", 'Bearer realm="metrics"'),
                        ("Cache-Control", "no-store"),
                    ],
                )
                return [b"metrics require a bearer token\n"]
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"method not allowed\n"]
        openmetrics = wants_openmetrics(environ.get("HTTP_ACCEPT", ""))
        try:
            data, registry = source()
            text = writer.render(data, openmetrics=openmetrics, exemplars=True)
            if default_registry:
                text += _default_registry_text(writer.families, openmetrics, registry)
            if openmetrics:
                text += "# EOF\n"
            body = text.encode("utf-8")
        except Exception:  # noqa: BLE001 - a broken callback must not take the endpoint down
            from .._safe_log import log_internal_error

            log_internal_error("collecting metrics for /metrics")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"metrics collection failed; see the application log\n"]
        content_type = OPENMETRICS if openmetrics else TEXT
        headers = [("Content-Type", content_type), ("Vary", "Accept-Encoding"), ("Cache-Control", "no-store")]
        if accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app


class _Scraped(Protocol):
    """What ``/metrics`` reads of a pipeline: its view (see :mod:`otel_monitor.metrics.metrics_view`)."""

    @property
    def view(self) -> MetricsView | None: ...


class _MetricsSettings(Protocol):
    @property
    def metrics_token(self) -> str | None: ...

    @property
    def metrics_target_info(self) -> bool: ...

    @property
    def metrics_default_registry(self) -> bool: ...


def metrics_app_for(get_pipeline: Callable[[], _Scraped], settings: _MetricsSettings) -> WSGIApplication:
    """``/metrics`` for the pipeline ``get_pipeline()`` returns (after a fork: the child's)."""

    def scrape() -> tuple[MetricsData | None, list[PrometheusMetric] | None]:
        view = get_pipeline().view
        if view is None:
            raise RuntimeError("the pipeline has no metrics view")
        return view.scrape_with_registry()

    return metrics_wsgi_app(
        scrape,
        settings.metrics_token,
        target_info=settings.metrics_target_info,
        default_registry=settings.metrics_default_registry,
    )
