"""prometheus_client's default registry across the workers of a group: merged like our own metrics.

The default registry holds prometheus_client's process, platform and GC collectors
(``process_cpu_seconds_total``, ``python_gc_*_total``, ...) and whatever the app defines with
prometheus_client. Each worker has its own copy, so a scrape that showed the answering worker's
copy went backwards whenever another worker answered. Here each worker publishes its collected
families in its worker file (:mod:`otel_monitor.metrics.multiprocess`), and a scrape merges them:

* counters, histograms, summaries and gauge histograms: samples with the same name and labels are
  summed over the live workers plus the dead workers' last values (the group's archive), so they
  never go backwards; ``*_created`` samples keep the earliest;
* gauges (and untyped metrics): one series per live worker, told apart by a ``pid`` label (the
  label prometheus_client's own multiprocess mode uses); a dead worker's gauges go with it (as
  ``mark_process_dead`` does for the ``live*`` modes);
* info and state sets (and gauges named ``*_info``, as ``python_info``): the answering worker's
  (they describe the code, the same in every worker).

Why not prometheus_client's multiprocess mode: it needs ``PROMETHEUS_MULTIPROC_DIR`` set (and
wiped) before the app imports prometheus_client and ``mark_process_dead`` in the server's
child-exit hook, and it drops the process and GC collectors. This needs nothing from the user and
shows what a scrape through any worker reports at the same instant as our own metrics. An app
that does use the multiprocess mode stays exact: each worker's collected values are its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["collect", "merge", "families", "COUNTING_TYPES"]

#: types whose samples add up across workers (and survive a worker's death)
COUNTING_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
#: types describing the code or the host: one copy, the answering worker's
_SINGLE_TYPES = frozenset({"info", "stateset"})
#: the label a per-worker gauge series carries
PID_LABEL = "pid"

#: one family in the worker-file format: {"n": name, "t": type, "d": help, "u": unit, "s": [[name, labels, value]]}
Family = dict[str, Any]


def collect(registry: CollectorRegistry | None = None) -> list[Family]:
    """The families of ``registry`` (the default registry) in the worker-file format."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    result: list[Family] = []
    for metric in registry.collect():
        samples = [[s.name, dict(s.labels), float(s.value)] for s in metric.samples]
        result.append({"n": metric.name, "t": metric.type, "d": metric.documentation, "u": metric.unit, "s": samples})
    return result


def _exact_partials(values: Iterable[float]) -> list[float]:
    """Non-overlapping floats whose sum is exactly the sum of ``values`` (Shewchuk's algorithm,
    the one behind :func:`math.fsum`)."""
    partials: list[float] = []
    for x in values:
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]
    return partials


def merge(
    own: list[Family],
    own_pid: int | None,
    live: Iterable[tuple[int, list[Family]]],
    archive: list[Family],
    exact: bool = False,
) -> list[Family]:
    """Merge the answering worker's families, the other live workers' and the archive (see the module docstring).

    ``own_pid`` None: no answering worker (the master's metrics port, or folding the archive).
    ``exact`` (folding the archive): a summed value is kept as the list of floats whose exact sum
    it is, not rounded: a scrape sums the archive's floats with the live workers' values in one
    correctly rounded ``fsum``, so a worker's value moving from the live workers into the archive
    (it died, or was recycled) can never change the total by a rounding step (2.43 read
    2.4299999999999997 after a ``max_requests`` recycle: a decrease).
    """
    merged: dict[str, dict[str, Any]] = {}

    def add(families: list[Family], pid: int | None, alive: bool) -> None:
        for family in families:
            kind = family["t"]
            counting = kind in COUNTING_TYPES
            if not alive and not counting:
                continue
            single = kind in _SINGLE_TYPES or (kind == "gauge" and family["n"].endswith("_info"))  # python_info
            target = merged.get(family["n"])
            if target is None:
                target = merged[family["n"]] = {**family, "s": {}}
            elif single or target["t"] != kind:
                continue  # the first copy wins; a worker running other code keeps the first layout
            samples = target["s"]
            per_worker = not counting and not single and pid is not None
            for name, labels, value in family["s"]:
                if per_worker and PID_LABEL not in labels:
                    labels = {**labels, PID_LABEL: str(pid)}
                key = (name, tuple(sorted(labels.items())))
                existing = samples.get(key)
                parts = value if isinstance(value, list) else [value]  # an exact archived sum: its floats
                if existing is None:
                    samples[key] = [name, labels, list(parts)]
                elif name.endswith("_created"):
                    existing[2][0] = min(existing[2][0], *parts)
                elif counting:
                    existing[2].extend(parts)

    add(own, own_pid, True)
    for pid, families_of_worker in live:
        add(families_of_worker, pid, True)
    add(archive, None, False)

    # fsum: the correctly rounded sum, whatever order the workers came in (a plain sum of
    # 1.82 CPU seconds read 1.8199999999999998 when another worker answered: a decrease)
    def total(family: dict[str, Any], name: str, values: list[float]) -> float | list[float]:
        if exact and family["t"] in COUNTING_TYPES and not name.endswith("_created"):
            return _exact_partials(values)
        return math.fsum(values)

    return [
        {**family, "s": [[name, labels, total(family, name, values)] for name, labels, values in family["s"].values()]}
        for family in merged.values()
    ]


def families(entries: list[Family]) -> list[Metric]:
    """Merged entries as prometheus_client ``Metric`` objects, for its exposition functions."""
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

    result = []
    for entry in entries:
        try:
            metric = Metric(entry["n"], entry["d"], entry["t"], entry["u"])
        except ValueError:
            continue  # a family prometheus_client itself would not build (it collected it, so never)
        metric.samples = [Sample(name, labels, value, None, None) for name, labels, value in entry["s"]]
        result.append(metric)
    return result
