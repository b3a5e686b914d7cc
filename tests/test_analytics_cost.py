"""The analytics cannot starve the app (issue 22, item 4): each window's summary is computed once per
sample tick and shared by every caller, heavy requests are capped (503 with Retry-After beyond the
cap, the health probes never), and exports stream. Structure only: the timing is benchmarks/analytics_load.py.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import threading
import time
import zipfile

import pytest

from otel_monitor.analytics import STALE_S, analytics_of
from otel_monitor.analytics.blueprint import CSV_TABLES, UNCAPPED, VIEWS
from otel_monitor.analytics.gate import RETRY_AFTER_S, Gate
from otel_monitor.testing import closing_client

TOKEN = "cost-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"
#: every heavy endpoint the dashboard and scripts call, with the windows each one summarises
CALLS = (
    "/performance",  # 1m, 5m, 15m, all (+ the ranked 15m)
    "/performance?window=1h",
    "/endpoints?window=5m&sort=p95_ms",
    "/endpoints?window=5m&sort=route&order=asc&q=user",
    "/endpoints?window=15m&limit=2",
    "/timeseries?window=15m",
    "/timeseries?window=15m&route=/users/<int:user_id>&method=GET",
    "/export?format=json&window=1h",
    "/export?format=csv&window=1h&table=endpoints",
    "/health",
)
WINDOWS_ASKED = {"1m", "5m", "15m", "all", "1h"}


def make(monitors, **settings):
    settings.setdefault("analytics_token", TOKEN)
    app, monitor = monitors.app(**settings)
    state = analytics_of(monitor)
    monitor.pipeline.scheduler.stop()  # the tests take the samples (ticks) themselves
    client = closing_client(app)
    for i in range(30):
        assert client.get(f"/users/{i}").status_code == 200
    client.get("/fail")
    client.get("/no/such/page")
    return app, state, client


def count_windows(monkeypatch, state, delay: float = 0.0) -> list[str]:
    """The names of the windows ``state`` computes from now on (optionally slowly, to overlap callers)."""
    computed: list[str] = []
    original = state.compute_window

    def counting(name, now):
        computed.append(name)
        if delay:
            time.sleep(delay)
        return original(name, now)

    monkeypatch.setattr(state, "compute_window", counting)
    return computed


def read_all(response) -> bytes:
    with response:
        return b"".join(response.response)


# -- once per tick ---------------------------------------------------------------------------------


def test_each_window_is_summarised_once_per_tick_whatever_the_endpoints_and_callers(monitors, monkeypatch):
    app, state, client = make(monitors)
    state.sample()
    computed = count_windows(monkeypatch, state)
    for _ in range(3):  # three rounds of every endpoint: the windows are computed in the first only
        for call in CALLS:
            response = client.get(PREFIX + call, headers=AUTH)
            assert response.status_code == 200, (call, response.get_data(as_text=True)[:200])
            read_all(response)
        assert state.window("5m") is state.summaries.window("5m").window  # the public method shares it too
    assert sorted(computed) == sorted(WINDOWS_ASKED)

    state.sample()  # the next tick: each window once more
    for call in CALLS:
        read_all(client.get(PREFIX + call, headers=AUTH))
    assert sorted(computed) == sorted([*WINDOWS_ASKED, *WINDOWS_ASKED])
    assert state.summaries.computed["window"] == 2 * len(WINDOWS_ASKED)
    assert state.summaries.computed["steps"] == 2 * 2  # the 15m and 1h charts' steps, once per tick


def test_concurrent_callers_of_one_window_wait_for_one_computation(monitors, monkeypatch):
    app, state, client = make(monitors)
    state.sample()
    computed = count_windows(monkeypatch, state, delay=0.2)  # slow enough that all 8 callers overlap
    start = threading.Barrier(8)
    answers: list[int] = []

    def caller() -> None:
        start.wait(timeout=60)
        answers.append(state.summaries.window("5m").figures["requests"])

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert computed == ["5m"]
    assert answers == [32] * 8  # 30 + /fail + the unmatched URL


def test_the_figures_are_those_of_the_newest_sample_until_the_next_tick(monitors):
    app, state, client = make(monitors)
    now = [1_800_000_000.0]
    state.use_clock(lambda: now[0])

    def requests() -> int:
        return client.get(PREFIX + "/performance", headers=AUTH).get_json()["windows"]["all"]["requests"]

    assert requests() == 32  # no sample yet: the first reader takes one
    first = state.tick()
    client.get("/users/1")
    now[0] += 5
    assert requests() == 32 and state.tick() is first  # the same tick
    state.sample()
    assert requests() == 33
    client.get("/users/2")
    now[0] += STALE_S + 1  # the background job is late: the next reader samples
    assert requests() == 34
    assert state.tick().number == first.number + 2


def test_sorting_and_filtering_endpoints_reuse_one_order_per_tick(monitors, monkeypatch):
    app, state, client = make(monitors)
    state.sample()
    computed = count_windows(monkeypatch, state)
    by_p95 = [get(client, "/endpoints?sort=p95_ms&limit=1000")["endpoints"] for _ in range(3)]
    assert by_p95[0] == by_p95[1] == by_p95[2]
    summary = state.summaries.window("5m")
    assert summary.sorted_rows("p95_ms", True) is summary.sorted_rows("p95_ms", True)
    filtered = get(client, "/endpoints?sort=count&q=USERS&method=get")
    assert [r["route"] for r in filtered["endpoints"]] == ["/users/<int:user_id>"] and filtered["total"] == 1
    assert computed == ["5m"]


def get(client, path: str) -> dict:
    response = client.get(PREFIX + path, headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)[:200]
    return response.get_json()


# -- the cap ---------------------------------------------------------------------------------------


def test_the_gate_admits_its_limit_lets_as_many_wait_and_refuses_the_rest():
    gate = Gate(1, wait_s=30.0)
    assert gate.enter()
    waiter_in = threading.Event()

    def waiter() -> None:
        if gate.enter():
            waiter_in.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 60
    while gate.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.waiting == 1
    assert not gate.enter()  # no slot, no waiting place: refused at once
    assert gate.refused == 1
    gate.leave()  # the waiter gets the slot
    thread.join(timeout=60)
    assert waiter_in.is_set() and gate.running == 1
    gate.leave()
    assert gate.running == 0


def test_a_cap_of_zero_admits_everyone():
    gate = Gate(0)
    assert all(gate.enter() for _ in range(100))
    assert gate.refused == 0


def test_a_gate_that_waits_in_vain_refuses():
    gate = Gate(1, wait_s=0.05)
    assert gate.enter()
    assert not gate.enter()
    assert gate.refused == 1 and gate.waiting == 0


def test_beyond_the_cap_heavy_requests_get_503_with_retry_after_and_the_health_probes_never(monitors, monkeypatch):
    app, state, client = make(monitors, analytics_max_concurrent=1, health_ready_thresholds=True)
    state.sample()
    for name in ("5m", "1m", "15m", "all"):  # what /health and /performance need, before the slot is blocked
        state.summaries.window(name)
    release = threading.Event()
    blocked = threading.Event()
    original = state.compute_window

    def slow(name, now):
        if name == "1h":
            blocked.set()
            release.wait(timeout=60)
        return original(name, now)

    monkeypatch.setattr(state, "compute_window", slow)
    results: dict[str, int] = {}

    def call(name: str, path: str) -> None:
        response = client.get(PREFIX + path, headers=AUTH)
        results[name] = response.status_code
        read_all(response)

    holder = threading.Thread(target=call, args=("holder", "/endpoints?window=1h"))
    holder.start()
    assert blocked.wait(timeout=60)
    waiter = threading.Thread(target=call, args=("waiter", "/performance"))
    waiter.start()
    deadline = time.monotonic() + 60
    while "waiter" not in results and time.monotonic() < deadline:  # until it waits for the slot
        refused = client.get(PREFIX + "/timeseries?window=15m", headers=AUTH)
        if refused.status_code == 503:
            break
        time.sleep(0.01)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert refused.get_json() == {"error": "the analytics are busy (too many requests at once); retry later"}
    assert refused.headers["Cache-Control"] == "no-store"
    for probe in ("/health", "/health/live", "/health/ready", "/dashboard"):
        assert client.get(PREFIX + probe, headers=AUTH).status_code == 200, probe
    assert client.get(PREFIX + "/performance").status_code == 401  # authentication comes first
    release.set()
    holder.join(timeout=60)
    waiter.join(timeout=60)
    assert results["holder"] == 200
    assert results["waiter"] in (200, 503)  # it waited up to 2 s for the slot
    assert client.get(PREFIX + "/performance", headers=AUTH).status_code == 200  # the slot is free again


def test_only_the_probes_and_the_links_list_are_uncapped():
    assert UNCAPPED == {"health", "health_live", "health_ready", "dashboards"}
    assert UNCAPPED <= {endpoint for _, endpoint, _ in VIEWS}


def test_a_bad_cap_fails_at_start_up_naming_the_setting(monitors):
    from otel_monitor.settings import SettingsError

    with pytest.raises(SettingsError, match="analytics_max_concurrent"):
        monitors.app(analytics_max_concurrent=-1)


# -- streamed exports ------------------------------------------------------------------------------


def _cell(value):
    """The CSV cell as the export writes it (formula guard, ``200=25;404=5``, empty for null)."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else value


def expected_csv(fields, records) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow([_cell(record.get(f)) for f in fields])
    return out.getvalue()


def test_exports_stream_and_their_csv_is_the_data_of_the_json_export(monitors):
    app, state, client = make(monitors, analytics_max_concurrent=1)
    state.sample()
    bodies = {}
    for name, query in (
        ("json", "format=json"),
        ("endpoints", "format=csv&table=endpoints"),
        ("timeseries", "format=csv&table=timeseries"),
        ("zip", "format=csv"),
    ):  # one after the other: each holds the only slot until it is read
        response = client.get(PREFIX + f"/export?window=15m&{query}", headers=AUTH, buffered=False)
        assert response.status_code == 200
        assert response.is_streamed and response.content_length is None, name
        assert not isinstance(response.response, (list, tuple, bytes, str)), name  # a generator
        assert response.headers["Content-Disposition"].startswith("attachment; filename=")
        bodies[name] = read_all(response)
    data = json.loads(bodies["json"])
    assert bodies["json"].decode() == json.dumps(data, separators=(",", ":"))  # compact, as before
    assert [r["route"] for r in data["endpoints"]] == ["/users/<int:user_id>", "(unmatched)", "/fail"]
    assert data["endpoints"][2]["status_codes"] == {"500": 1}
    endpoints_csv = expected_csv(CSV_TABLES["endpoints"], data["endpoints"])
    timeseries_csv = expected_csv(CSV_TABLES["timeseries"], data["timeseries"]["points"])
    assert bodies["endpoints"].decode() == endpoints_csv
    assert bodies["timeseries"].decode() == timeseries_csv
    assert "500=1" in endpoints_csv
    with zipfile.ZipFile(io.BytesIO(bodies["zip"])) as archive:
        assert archive.testzip() is None
        assert archive.read("otel-monitor-15m-endpoints.csv").decode() == endpoints_csv
        assert archive.read("otel-monitor-15m-timeseries.csv").decode() == timeseries_csv
    # Each stream gave its slot back (a cap of 1): the next heavy request is served.
    assert client.get(PREFIX + "/performance", headers=AUTH).status_code == 200
    # The tick's second download of a file replays the chunks formatted for the first.
    again = client.get(PREFIX + "/export?window=15m&format=csv&table=endpoints", headers=AUTH, buffered=False)
    assert again.is_streamed and read_all(again) == bodies["endpoints"]
    assert state.summaries.computed["export"] == 4


def test_a_long_export_streams_in_chunks(monitors, monkeypatch):
    from otel_monitor.analytics import blueprint

    monkeypatch.setattr(blueprint, "CHUNK_ROWS", 1)
    app, state, client = make(monitors)
    state.sample()
    response = client.get(PREFIX + "/export?format=csv&window=15m&table=endpoints", headers=AUTH, buffered=False)
    with response:
        chunks = list(response.response)
    assert len(chunks) >= 4  # the header and three rows, one chunk each (and the rest)
    assert b"".join(chunks).decode().splitlines()[0].startswith("route,method,count,")


def test_an_export_dropped_unread_gives_its_slot_back(monitors):
    app, state, client = make(monitors, analytics_max_concurrent=1)
    state.sample()
    response = client.get(PREFIX + "/export?format=csv&window=15m", headers=AUTH, buffered=False)
    assert response.status_code == 200 and response.is_streamed
    del response
    gc.collect()
    assert client.get(PREFIX + "/performance", headers=AUTH).status_code == 200


def test_a_failure_while_streaming_ends_the_file_and_never_raises(monitors, monkeypatch):
    from otel_monitor.analytics import blueprint

    app, state, client = make(monitors)
    state.sample()

    def broken(value):
        raise RuntimeError("a bug in formatting")

    monkeypatch.setattr(blueprint, "_cell", broken)
    response = client.get(PREFIX + "/export?format=csv&window=15m&table=endpoints", headers=AUTH)
    assert response.status_code == 200
    body = read_all(response).decode()
    assert body.splitlines() == [",".join(CSV_TABLES["endpoints"])]  # the header, then the stream ended
    assert client.get(PREFIX + "/performance", headers=AUTH).status_code == 200


def test_history_windows_read_the_file_once_a_minute_however_many_ticks(monitors, tmp_path):
    app, state, client = make(monitors, analytics_db=str(tmp_path / "history.db"))
    now = [1_800_000_030.0]
    state.use_clock(lambda: now[0])
    state.history.clock = lambda: now[0]
    state.write_history()
    reads = state.summaries.computed

    def hour() -> int:
        return get(client, "/performance?window=1h")["windows"]["1h"]["requests"]

    assert hour() == 32 and reads["history_minutes"] == 1
    for _ in range(3):  # three more ticks in the same minute: no new read of the file
        now[0] += 5
        state.sample()
        assert hour() == 32
        read_all(client.get(PREFIX + "/export?format=csv&window=1h&table=timeseries", headers=AUTH))
    assert reads["history_minutes"] == reads["history_requests"] == 1
    assert reads["window"] == 4 * 5  # the windows themselves, once per tick: 1m, 5m, 15m, all and 1h
    now[0] += 60  # the next minute: read again
    state.sample()
    assert hour() == 32 and reads["history_minutes"] == 2


def test_a_tick_keeps_a_bounded_number_of_results(monitors):
    from otel_monitor.analytics.summaries import MAX_ENTRIES

    app, state, client = make(monitors)
    tick = state.tick()
    kept = [state.summaries.memo(("filter", i), lambda t, i=i: [i] * 100, tick) for i in range(MAX_ENTRIES + 50)]
    assert [k[0] for k in kept] == list(range(MAX_ENTRIES + 50))  # every caller gets its answer
    assert state.summaries.computed["filter"] == MAX_ENTRIES + 50
    again = state.summaries.memo(("filter", MAX_ENTRIES + 10), lambda t: ["recomputed"], tick)
    assert again == ["recomputed"]  # beyond the bound: answered, not kept
    assert state.summaries.memo(("filter", 3), lambda t: ["recomputed"], tick) == [3] * 100  # kept
