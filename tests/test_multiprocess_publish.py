"""A pre-fork worker publishes only what changed, and the group merge redoes only what changed.

What is written is asserted (the files, their lines, the objects a merge keeps), never time.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from otel_monitor.metrics import multiprocess
from otel_monitor.metrics.metrics_view import Channel
from otel_monitor.testing import closing_client

from .conftest import build_app
from .test_gunicorn import get, gunicorn, request_total, send, settle  # noqa: F401 - gunicorn is a fixture


@pytest.fixture
def worker(tmp_path):
    """A pipeline switched to a worker view on a private directory (as a pre-fork worker would be)."""
    app, monitor = build_app()
    pipeline = monitor.pipeline
    view = multiprocess.worker_view(pipeline, str(tmp_path))
    pipeline.view = view
    yield app, pipeline, view, tmp_path
    view.close()
    monitor.shutdown(timeout=2)


def record(pipeline, route: str, times: int = 1) -> None:
    for _ in range(times):
        pipeline.request_metrics.record(("GET", "http", route, 200, None), 0.01, None, None)


def publish(view) -> None:
    """What the worker's background job does after requests (the gauges as last read)."""
    view.publish(view._last_sdk + view._requests())


def as_json(entries):
    return json.loads(json.dumps(entries, default=str))


def log_lines(directory, pid: int) -> list[dict]:
    logs = sorted(directory.glob(f"w-{pid}.*.log"))
    return [json.loads(line) for path in logs for line in path.read_text().splitlines()]


def files(directory) -> list[tuple[str, int, str]]:
    """The worker files (not its socket) with their modification times and text."""
    return sorted((p.name, p.stat().st_mtime_ns, p.read_text()) for p in directory.glob("w-*") if p.suffix != ".sock")


def changed_routes(line: dict) -> list[tuple[str, int]]:
    return [(point["a"]["http.route"], point["count"]) for _, changed in line["changes"] for _, point in changed]


def test_a_publish_after_one_request_appends_only_that_series_and_leaves_the_whole_file_alone(worker):
    app, pipeline, view, directory = worker
    for n in range(50):
        record(pipeline, f"/r{n}")
    view.publish(view._fresh()[1], whole=True)
    base = directory / f"w-{os.getpid()}.json"
    before = (base.stat().st_ino, base.stat().st_mtime_ns, base.read_text())
    assert log_lines(directory, os.getpid()) == []

    record(pipeline, "/r7")
    publish(view)
    record(pipeline, "/r7")
    record(pipeline, "/new")
    publish(view)
    publish(view)  # no series changed: at most the default registry's process numbers

    assert (base.stat().st_ino, base.stat().st_mtime_ns, base.read_text()) == before
    lines = log_lines(directory, os.getpid())
    assert [changed_routes(line) for line in lines][:2] == [[("/r7", 2)], [("/r7", 3), ("/new", 1)]]
    assert all(line["changes"] == [] for line in lines[2:])


def test_a_periodic_publish_after_one_request_looks_at_only_that_series(worker):
    app, pipeline, view, directory = worker
    metrics = pipeline.request_metrics
    for n in range(1000):
        record(pipeline, f"/r{n}")
    view.publish(view._fresh()[1], whole=True)
    first = view._published[-1]["points"]
    visited = metrics.series_visited

    record(pipeline, "/r7")
    publish(view)

    assert metrics.series_visited == visited + 1
    points = view._published[-1]["points"]
    assert [p["a"]["http.route"] for p in points] == [p["a"]["http.route"] for p in first]  # same places
    assert [i for i, (a, b) in enumerate(zip(first, points, strict=True)) if a is not b] == [7]
    assert points[7]["count"] == 2 and first[7]["count"] == 1
    assert changed_routes(log_lines(directory, os.getpid())[-1]) == [("/r7", 2)]


def test_a_publish_with_nothing_changed_writes_nothing(tmp_path):
    app, monitor = build_app(metrics_default_registry=False)
    view = multiprocess.worker_view(monitor.pipeline, str(tmp_path))
    try:
        record(monitor.pipeline, "/a")
        publish(view)
        written = files(tmp_path)
        publish(view)
        publish(view)
        assert files(tmp_path) == written
    finally:
        view.close()
        monitor.shutdown(timeout=2)


class _Encoded:
    """A shared value whose JSON encodings are counted (the worker file encodes it with default=str)."""

    def __init__(self, name: str, version: int, log: list[str]) -> None:
        self.name, self.version, self.log = name, version, log

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Encoded) and (other.name, other.version) == (self.name, self.version)

    def __str__(self) -> str:
        self.log.append(f"{self.name}{self.version}")
        return f"{self.name}{self.version}"


def test_a_publish_encodes_again_only_the_shared_values_that_changed_and_the_file_holds_them_all(worker):
    app, pipeline, view, directory = worker
    encoded: list[str] = []
    versions = {"a": 1, "b": 1}
    pipeline.share(Channel("test.a"), lambda: [_Encoded("a", versions["a"], encoded)])
    pipeline.share(Channel("test.b"), lambda: [_Encoded("b", versions["b"], encoded)])
    shared_file = directory / f"w-{os.getpid()}.shared.json"

    publish(view)
    assert sorted(encoded) == ["a1", "b1"]
    encoded.clear()
    written = (shared_file.stat().st_ino, shared_file.read_text())
    publish(view)
    assert encoded == []
    assert (shared_file.stat().st_ino, shared_file.read_text()) == written  # nothing changed: not rewritten

    versions["b"] = 2
    publish(view)
    assert encoded == ["b2"]
    shared = json.loads(shared_file.read_text())["shared"]
    assert (shared["test.a"], shared["test.b"]) == (["a1"], ["b2"])


def test_a_new_metric_and_a_series_that_changed_place_go_on_a_line_whole_not_in_a_new_file(worker):
    app, pipeline, view, directory = worker
    reader = multiprocess._Group(str(directory), None)
    view.publish([histogram({"/a": 1, "/b": 1})], whole=True)
    base = (directory / f"w-{os.getpid()}.json").read_text()
    gauge = {**histogram({"/a": 1}), "name": "g", "kind": "gauge", "points": [{"a": {"k": "v"}, "v": 3.0}]}
    steps = [
        [histogram({"/a": 2, "/b": 1})],  # one point
        [histogram({"/a": 2, "/b": 1}), gauge],  # a new metric: whole
        [histogram({"/b": 1, "/a": 2}), gauge],  # series in another order: that entry whole
        [histogram({"/b": 1, "/a": 2})],  # a metric gone
    ]
    for entries in steps:
        view.publish(entries)
        assert reader.load(os.getpid())["metrics"] == as_json(entries)
    assert (directory / f"w-{os.getpid()}.json").read_text() == base
    shapes, length = [], 1
    for line in log_lines(directory, os.getpid()):  # leaving out lines of only the default registry's numbers
        if line["changes"] or line["entries"] or line["n"] != length:
            shapes.append((line["n"], [i for i, _ in line["changes"]], [i for i, _ in line["entries"]]))
        length = line["n"]
    assert shapes == [(1, [0], []), (2, [], [1]), (2, [], [0]), (1, [], [])]


def test_another_worker_reads_the_whole_file_and_the_log_as_the_publishing_workers_entries(worker):
    app, pipeline, view, directory = worker
    reader = multiprocess._Group(str(directory), None)
    for n in range(20):
        record(pipeline, f"/r{n}")
    publish(view)
    first = reader.load(os.getpid())
    assert first["metrics"] == as_json(view._published)
    for round_ in range(5):
        record(pipeline, f"/r{round_}", times=round_ + 1)
        record(pipeline, f"/added{round_}")
        publish(view)
        payload = reader.load(os.getpid())
        assert payload["metrics"] == as_json(view._published)

    # a point that did not change since the first read is still the object the first read made
    # (the merge knows unchanged series by identity)
    def point(payload, route):
        (entry,) = [e for e in payload["metrics"] if e["name"] == "http.server.request.duration"]
        return next(p for p in entry["points"] if p["a"]["http.route"] == route)

    assert point(payload, "/r19") is point(first, "/r19")
    assert point(payload, "/r0") is not point(first, "/r0")


def test_a_long_log_is_folded_into_a_new_whole_file_and_a_reader_that_lagged_still_reads_everything(
    worker, monkeypatch
):
    app, pipeline, view, directory = worker
    monkeypatch.setattr(multiprocess, "LOG_LINES", 3)
    eager = multiprocess._Group(str(directory), None)
    lagging = multiprocess._Group(str(directory), None)
    record(pipeline, "/a")
    publish(view)
    assert lagging.load(os.getpid())["metrics"] == as_json(view._published)
    generations = set()
    for _ in range(12):
        record(pipeline, "/a")
        publish(view)
        generations.add(json.loads((directory / f"w-{os.getpid()}.json").read_text())["generation"])
        assert eager.load(os.getpid())["metrics"] == as_json(view._published)
    assert len(generations) >= 3  # the whole file was written again every 3 lines
    assert lagging.load(os.getpid())["metrics"] == as_json(view._published)
    # only the current generation's log and the one before stay (a reader of the previous file may still read it)
    logs = sorted(int(p.name.split(".")[1]) for p in directory.glob(f"w-{os.getpid()}.*.log"))
    assert logs and min(logs) >= view._generation - 1


def test_a_line_still_being_written_is_applied_only_once_it_is_whole(worker):
    app, pipeline, view, directory = worker
    record(pipeline, "/a")
    publish(view)
    reader = multiprocess._Group(str(directory), None)
    before = reader.load(os.getpid())["metrics"]
    record(pipeline, "/a", times=4)
    entries = view._last_sdk + view._requests()
    changes = multiprocess._changes(view._published, entries)
    written = {"time": 1.0, "registry": [], "n": changes.length, "changes": changes.points, "entries": changes.entries}
    line = json.dumps(written, default=str) + "\n"
    log = directory / f"w-{os.getpid()}.{view._generation}.log"
    with open(log, "a") as fh:
        fh.write(line[:25])
    assert reader.load(os.getpid())["metrics"] == before
    with open(log, "a") as fh:
        fh.write(line[25:])
    assert reader.load(os.getpid())["metrics"] == as_json(entries)


def test_a_damaged_line_is_skipped_and_the_lines_after_it_still_count(worker):
    app, pipeline, view, directory = worker
    record(pipeline, "/a")
    publish(view)
    reader = multiprocess._Group(str(directory), None)
    reader.load(os.getpid())
    log = directory / f"w-{os.getpid()}.{view._generation}.log"
    with open(log, "a") as fh:
        fh.write('{"n": 1, "changes": [[0, [[0, {"a"\n[1, 2]\n')  # a line cut short by a full disk, then garbage
    record(pipeline, "/a", times=2)
    publish(view)
    assert reader.load(os.getpid())["metrics"] == as_json(view._published)


def test_a_dead_workers_log_reaches_the_totals_and_all_its_files_are_removed(worker):
    app, pipeline, view, directory = worker
    closing_client(app).get("/users/1")
    entries = multiprocess.serialise(pipeline.reader.snapshot(extra=False)) + view._requests()
    dead = 999_999_999
    base = {"pid": dead, "generation": 1, "metrics": as_json(entries), "registry": []}
    (directory / f"w-{dead}.json").write_text(json.dumps(base))
    later = as_json(entries)
    (duration,) = [i for i, e in enumerate(later) if e["name"] == "http.server.request.duration"]
    point = dict(later[duration]["points"][0], count=5)
    line = {"time": 2.0, "registry": [], "changes": [[duration, [[0, point]]]]}
    (directory / f"w-{dead}.1.log").write_text(json.dumps(line) + "\n")
    (directory / f"w-{dead}.shared.json").write_text(json.dumps({"shared": {}}))

    body = closing_client(app).get("/metrics").get_data(as_text=True)

    pattern = r'^http_server_request_duration_seconds_count\{[^}]*"/users/<int:user_id>"[^}]*\} (\S+)$'
    counts = re.findall(pattern, body, re.M)
    assert sum(float(c) for c in counts) == 1 + 5  # ours and the dead worker's, its log included
    assert sorted(p.name for p in directory.glob(f"w-{dead}*")) == []


def test_a_reader_forgets_the_numbers_of_a_worker_that_another_worker_archived(worker):
    app, pipeline, view, directory = worker
    dead = 999_999_998
    (directory / f"w-{dead}.json").write_text(json.dumps({"pid": dead, "generation": 1, "metrics": [], "registry": []}))
    reader = multiprocess._Group(str(directory), None)
    assert reader.load(dead) is not None
    closing_client(app).get("/metrics")  # this worker's scrape archives the dead one
    assert not (directory / f"w-{dead}.json").exists()
    reader.others()
    assert dead not in reader._workers


def histogram(counts: dict[str, int]) -> dict:
    return {
        "scope": "s",
        "version": None,
        "name": "h",
        "description": "",
        "unit": "s",
        "kind": "histogram",
        "bounds": [1.0],
        "points": [
            {"a": {"route": route}, "start": 1, "count": n, "sum": float(n), "min": 0.5, "max": 0.5, "buckets": [n, 0]}
            for route, n in counts.items()
        ],
    }


def test_the_merge_keeps_the_merged_point_of_every_series_whose_points_are_the_same_objects():
    cache = multiprocess.MergeCache()
    own = [histogram({"/a": 1, "/b": 1, "/c": 1})]
    peer = [histogram({"/a": 2, "/b": 2, "/c": 2})]
    first = multiprocess.merge(own, 1, [(2, peer)], [], cache)
    # the peer's file read again: /b changed, the rest are the same objects (as _Group.load makes them)
    read_again = multiprocess._reuse_unchanged(peer, [histogram({"/a": 2, "/b": 7, "/c": 2})])
    second = multiprocess.merge(own, 1, [(2, read_again)], [], cache)
    assert second == multiprocess.merge(own, 1, [(2, read_again)], [])
    a, b, c = second[0]["points"]
    assert a is first[0]["points"][0] and c is first[0]["points"][2]
    assert b is not first[0]["points"][1] and b["count"] == 8


def by_series(entries: list[dict]) -> dict:
    return {
        (e["name"], multiprocess._attrs_key(p["a"])): {k: v for k, v in p.items() if k != "a"}
        for e in entries
        for p in e["points"]
    }


def test_a_merge_that_redoes_only_the_changed_series_equals_a_whole_merge_through_random_changes():
    import random

    rng = random.Random(26)
    cache = multiprocess.MergeCache()
    workers: dict[int, dict[str, int]] = {pid: {f"/r{i}": 1 for i in range(8)} for pid in (1, 2, 3)}
    archive: list[dict] = []
    parsed: dict[int, list[dict]] = {}
    for _ in range(200):
        pid = rng.choice(list(workers))
        action = rng.random()
        if action < 0.6:  # a request
            route = rng.choice(list(workers[pid]))
            workers[pid][route] += 1
        elif action < 0.75:  # a new series
            workers[pid][f"/n{rng.randrange(50)}"] = 1
        elif action < 0.85 and len(workers[pid]) > 1:  # a series gone (another version of the code)
            del workers[pid][rng.choice(list(workers[pid]))]
        elif action < 0.9 and len(workers) > 1:  # a worker died: its counts go to the archive
            archive = multiprocess.merge([], -1, [], archive + [histogram(workers.pop(pid))])
            parsed.pop(pid, None)
        elif action < 0.95:  # a worker was started
            new_pid = max(workers) + 1
            workers[new_pid] = {"/r0": 1}
        # every worker's numbers read again, keeping the objects of what did not change
        for worker, counts in workers.items():
            read = [histogram(counts)]
            parsed[worker] = multiprocess._reuse_unchanged(parsed.get(worker, []), read)
        own_pid = min(workers)
        live = [(worker, parsed[worker]) for worker in workers if worker != own_pid]
        cached = multiprocess.merge(parsed[own_pid], own_pid, live, archive, cache)
        assert by_series(cached) == by_series(multiprocess.merge(parsed[own_pid], own_pid, live, archive))


def test_the_sdk_points_of_unchanged_series_are_kept_from_one_merge_to_the_next():
    cache = multiprocess.MergeCache()
    own = [histogram({"/a": 1, "/b": 1})]
    entries = multiprocess.merge(own, 1, [], [], cache)
    first = multiprocess.deserialise(entries, None, None, None, cache)
    changed = multiprocess._reuse_unchanged(own, [histogram({"/a": 1, "/b": 3})])
    entries = multiprocess.merge(changed, 1, [], [], cache)
    second = multiprocess.deserialise(entries, None, None, None, cache)

    def points(data):
        return data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points

    assert points(second)[0] is points(first)[0]
    assert points(second)[1] is not points(first)[1] and points(second)[1].count == 3


@pytest.mark.integration
def test_four_gunicorn_workers_report_every_request_exactly_while_they_publish_by_log_lines(gunicorn, tmp_path):  # noqa: F811 - gunicorn is the imported fixture
    directory = tmp_path / "group"
    base, master = gunicorn(workers=4, env={"OTEL_MONITOR_MULTIPROCESS_DIR": str(directory)})
    sent = 0
    for round_ in range(6):
        send(base, sent, 25 + round_)
        sent += 25 + round_
        settle(base, sent)  # a worker slower than the scrape's wait (busy machine) catches up, never overshoots
        totals = [request_total(get(base + "/metrics")) for _ in range(3)]
        assert totals == [sent] * 3
    assert list(directory.glob("w-*.*.log")), "the workers published what changed as log lines"
