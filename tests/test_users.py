"""Users and client addresses: ``enduser.id`` on the SERVER span, and ``/users`` / ``/clients``
as bounded top-k counts per endpoint (never a metric label)."""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Flask, request

import otel_monitor
from otel_monitor.analytics import analytics_of
from otel_monitor.request._enduser import client_address
from otel_monitor.testing import Telemetry, closing_client

TOKEN = "users-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/otel-monitor"


def users_app(monitors, **settings):
    """A Flask app whose user is the ``X-User`` header (as ``current_user.get_id()`` would be)."""
    app = Flask("accounts")

    @app.get("/orders")
    def orders():
        return "orders"

    @app.get("/cart")
    def cart():
        return "cart"

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    @app.get("/told")
    def told():
        with otel_monitor.get_monitor().tracer.start_as_current_span("inner work"):
            otel_monitor.set_enduser(request.args["who"])  # from inside a child span
        return "told"

    settings.setdefault("enduser_id", lambda: request.headers.get("X-User"))
    monitor = monitors(app, analytics_token=TOKEN, system_metrics=False, **settings)
    return app, monitor, closing_client(app)


def test_three_users_come_in_order_of_requests_with_their_counts(monitors):
    app, monitor, client = users_app(monitors)
    for user, n in (("carol", 10), ("alice", 100), ("bob", 30)):
        for _ in range(n):
            client.get("/orders", headers={"X-User": user})
    for _ in range(7):
        client.get("/orders")  # nobody signed in
    for _ in range(2):
        client.get("/boom", headers={"X-User": "bob"})
    body = client.get(PREFIX + "/users?window=15m", headers=AUTH).get_json()
    assert [(u["id"], u["requests"]) for u in body["users"]] == [("alice", 100), ("bob", 32), ("carol", 10)]
    bob = body["users"][1]
    assert bob["errors"] == 2 and bob["error_rate_pct"] == 6.25 and bob["overcount"] == 0
    assert all(u["p95_ms"] is not None for u in body["users"])
    assert body["anonymous_requests"] == 7 and body["total_users"] == 3
    assert body["exact"] is True and body["kept_per_endpoint"] == 100

    one = client.get(PREFIX + "/users?window=15m&route=/boom", headers=AUTH).get_json()
    assert [(u["id"], u["requests"], u["errors"]) for u in one["users"]] == [("bob", 2, 2)]
    assert one["anonymous_requests"] == 0 and one["route"] == "/boom"


def test_the_user_goes_on_the_server_span_not_into_any_metric_label(monitors):
    app, monitor, client = users_app(monitors)
    telemetry = Telemetry(monitor)
    client.get("/orders", headers={"X-User": "alice"})
    client.get("/told?who=dave")
    spans = {s.name: s for s in telemetry.spans()}
    assert spans["GET /orders"].attributes["enduser.id"] == "alice"
    assert spans["GET /told"].attributes["enduser.id"] == "dave"  # set_enduser wins over enduser_id
    assert "enduser.id" not in spans["inner work"].attributes
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "alice" not in exposition and "dave" not in exposition and "enduser" not in exposition


def test_a_failing_enduser_callable_never_reaches_the_request(monitors, caplog):
    def broken():
        raise LookupError("no user store")

    app, monitor, client = users_app(monitors, enduser_id=broken)
    with caplog.at_level(logging.WARNING, "otel_monitor"):
        response = client.get("/orders")
    assert response.status_code == 200 and response.get_data() == b"orders"
    assert "enduser_id" in caplog.text
    body = client.get(PREFIX + "/users?window=15m", headers=AUTH).get_json()
    assert body["users"] == [] and body["anonymous_requests"] == 1


def test_hashed_ids_are_a_keyed_hmac_and_the_raw_id_is_shown_nowhere(monitors):
    app, monitor, client = users_app(monitors, enduser_id_hash=True, enduser_id_hash_key="k" * 32)
    telemetry = Telemetry(monitor)
    client.get("/orders", headers={"X-User": "alice@example.com"})
    expected = hmac.new(b"k" * 32, b"alice@example.com", hashlib.sha256).hexdigest()[:16]
    assert telemetry.spans()[0].attributes["enduser.id"] == expected
    body = client.get(PREFIX + "/users?window=15m", headers=AUTH)
    assert "alice" not in body.get_data(as_text=True)
    assert body.get_json()["users"][0]["id"] == expected and body.get_json()["hashed"] is True


def test_the_top_k_bound_keeps_the_heavy_users_and_says_the_counts_are_not_exact(monitors):
    app, monitor, client = users_app(monitors, analytics_users_kept=3)
    for user, n in (("heavy", 50), ("middle", 20), *((f"once-{i}", 1) for i in range(8))):
        for _ in range(n):
            client.get("/cart", headers={"X-User": user})
    body = client.get(PREFIX + "/users?window=15m", headers=AUTH).get_json()
    assert body["exact"] is False and body["total_users"] <= 2 * 3  # cut to the busiest 3 when 6 are counted
    assert [u["id"] for u in body["users"][:2]] == ["heavy", "middle"]
    assert body["users"][0]["requests"] == 50 and body["users"][0]["overcount"] == 0


def test_windows_use_minute_buckets_then_hours(monitors):
    app, monitor, client = users_app(monitors)
    state = analytics_of(monitor)
    now = [1_700_000_000.0]
    state.use_clock(lambda: now[0])
    for _ in range(4):
        client.get("/orders", headers={"X-User": "early"})
    now[0] += 20 * 60  # 20 minutes later: the early minute is folded into its hour
    state.identities.users.fold()
    client.get("/orders", headers={"X-User": "late"})
    recent = client.get(PREFIX + "/users?window=15m", headers=AUTH).get_json()
    assert [(u["id"], u["requests"]) for u in recent["users"]] == [("late", 1)]
    day = client.get(PREFIX + "/users?window=24h", headers=AUTH).get_json()
    assert [(u["id"], u["requests"]) for u in day["users"]] == [("early", 4), ("late", 1)]


def test_set_enduser_works_in_a_plain_wsgi_app(monitors):
    def application(environ, start_response):
        otel_monitor.set_enduser(environ.get("HTTP_X_USER"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = monitors.wrap(application, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    from werkzeug.test import Client

    Client(wrapped).get("/", headers={"X-User": "erin"})
    assert telemetry.spans()[0].attributes["enduser.id"] == "erin"


def test_set_enduser_outside_a_request_does_nothing():
    otel_monitor.set_enduser("nobody")  # no error, nothing recorded


# -- client addresses ------------------------------------------------------------------------------


def test_client_addresses_are_off_by_default(monitors):
    app, monitor, client = users_app(monitors)
    response = client.get(PREFIX + "/clients", headers=AUTH)
    assert response.status_code == 404 and "analytics_client_addresses" in response.get_json()["error"]


def test_client_addresses_are_counted_behind_trusted_proxies_only(monitors):
    app, monitor, client = users_app(monitors, analytics_client_addresses=True, trusted_proxies="10.0.0.0/8")
    telemetry = Telemetry(monitor)
    proxy = {"REMOTE_ADDR": "10.1.2.3"}
    for _ in range(3):  # through the proxy: the client it saw
        client.get("/cart", environ_base=proxy, headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.9"})
    # straight from the internet: a forged header is not believed
    client.get("/cart", environ_base={"REMOTE_ADDR": "198.51.100.7"}, headers={"X-Forwarded-For": "10.9.9.9"})
    body = client.get(PREFIX + "/clients?window=15m", headers=AUTH).get_json()
    assert [(c["id"], c["requests"]) for c in body["clients"]] == [("203.0.113.9", 3), ("198.51.100.7", 1)]
    span = telemetry.spans()[0]
    assert span.attributes["client.address"] == "203.0.113.9"
    assert span.attributes["network.peer.address"] == "10.1.2.3"


def test_x_forwarded_for_is_read_right_to_left_skipping_trusted_hops():
    import ipaddress

    proxies = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 5.5.5.5, 10.0.0.2"}
    assert client_address(environ, proxies) == "5.5.5.5"
    assert client_address({**environ, "HTTP_X_FORWARDED_FOR": "garbage, 10.0.0.2"}, proxies) == "10.0.0.1"
    assert client_address({**environ, "REMOTE_ADDR": "::1", "HTTP_X_FORWARDED_FOR": "[2001:db8::1]:443"}, proxies) == (
        "2001:db8::1"
    )
    assert client_address({"REMOTE_ADDR": "7.7.7.7", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, proxies) == "7.7.7.7"
    assert client_address(environ, ()) == "10.0.0.1"


def test_a_bad_trusted_proxy_fails_at_start_up_naming_the_setting(monitors):
    import pytest

    from otel_monitor import SettingsError

    with pytest.raises(SettingsError, match="trusted_proxies"):
        users_app(monitors, trusted_proxies="10.0.0.0/8,not-a-network")


# -- the bound: Space-Saving with lazy eviction -------------------------------------------------------

from hypothesis import given, settings  # noqa: E402 - the property tests of the table, kept together here
from hypothesis import strategies as st  # noqa: E402

from otel_monitor.analytics.users import SpaceSaving  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(1, 8),
    streams=st.lists(st.lists(st.integers(0, 40), max_size=200), min_size=1, max_size=4),
)
def test_counts_are_never_low_and_high_by_at_most_their_overcount_also_after_merging(k, streams):
    truth: dict[str, int] = {}
    tables = []
    for stream in streams:
        table = SpaceSaving(k)
        for n in stream:
            identity = f"user-{n}"
            truth[identity] = truth.get(identity, 0) + 1
            table.add(identity, False, 0, 1)
        assert len(table.entries) <= 2 * k
        tables.append(table)
    merged = SpaceSaving(k)
    for table in tables:
        merged.merge(table.entries, table.evicted, table.floor)
    for identity, counts in merged.entries.items():
        assert counts[0] - counts[2] <= truth[identity] <= counts[0]
    for identity, n in truth.items():
        if identity not in merged.entries:
            assert n <= merged.floor  # whoever was cut had no more than the floor
    if sum(len(set(s)) > 2 * k for s in streams) == 0 and len(truth) <= 2 * k:
        assert all(counts[2] == 0 for counts in merged.entries.values())  # small: exact


def test_without_a_hash_key_the_flask_secret_key_keys_the_hash(monitors):
    app = Flask("keyed")
    app.secret_key = "flask-secret-" + "x" * 20

    @app.get("/")
    def index():
        otel_monitor.set_enduser(42)
        return "ok"

    monitor = monitors(app, enduser_id_hash=True, system_metrics=False, analytics_token=TOKEN)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    expected = hmac.new(app.secret_key.encode(), b"42", hashlib.sha256).hexdigest()[:16]
    assert telemetry.spans()[0].attributes["enduser.id"] == expected


def test_a_view_that_fails_after_naming_its_user_still_names_it(monitors):
    app = Flask("failing")

    @app.get("/pay")
    def pay():
        with otel_monitor.get_monitor().tracer.start_as_current_span("charge"):
            otel_monitor.set_enduser("frank")
            raise RuntimeError("card declined")

    monitor = monitors(app, system_metrics=False, analytics_token=TOKEN)
    telemetry = Telemetry(monitor)
    assert closing_client(app).get("/pay").status_code == 500
    [server] = [s for s in telemetry.spans() if s.name == "GET /pay"]
    assert server.attributes["enduser.id"] == "frank" and server.attributes["error.type"] == "RuntimeError"
    body = closing_client(app).get(PREFIX + "/users?window=15m", headers=AUTH).get_json()
    assert [(u["id"], u["requests"], u["errors"]) for u in body["users"]] == [("frank", 1, 1)]


def test_set_enduser_names_the_contrib_instrumentations_server_span_too(monitors):
    import pytest

    pytest.importorskip("opentelemetry.instrumentation.flask")
    app = Flask("contrib")

    @app.get("/")
    def index():
        otel_monitor.set_enduser("gina")
        return "ok"

    monitor = monitors(app, flask_instrumentation="contrib", system_metrics=False, analytics_token=TOKEN)
    telemetry = Telemetry(monitor)
    closing_client(app).get("/")
    [server] = [s for s in telemetry.spans() if s.kind.name == "SERVER"]
    assert server.attributes["enduser.id"] == "gina"


class _Ended:
    """An ended SERVER span as processors read it (the fields IdentityCounts reads)."""

    def __init__(self, attributes):
        from opentelemetry.trace import SpanKind, Status

        self.kind = SpanKind.SERVER
        self.attributes = attributes
        self.start_time, self.end_time = 0, 1_000_000
        self.status = Status()


def test_anonymous_requests_land_in_the_minute_of_the_clock_as_it_moves_on_and_back_and_after_a_fold():
    from otel_monitor.analytics.users import IdentityCounts

    now = [600.0]
    counts = IdentityCounts("enduser.id", 10, (0.1, 1.0), lambda: now[0], exclude_prefix="/otel-monitor")
    span = _Ended({"http.route": "/orders", "http.request.method": "GET"})

    def anonymous_by_minute():
        return {b["t"]: b["anonymous"] for b in counts.snapshot() if b["span"] == 60}

    for t in (600.0, 659.999, 660.0, 719.0, 605.0, 720.0):  # on, across, back into an earlier minute
        now[0] = t
        counts.on_end(span)
    assert anonymous_by_minute() == {
        600: [["/orders", "GET", 3]],
        660: [["/orders", "GET", 2]],
        720: [["/orders", "GET", 1]],
    }
    now[0] = 720.0 + 20 * 60  # the three minutes are folded into their hour
    counts.fold()
    now[0] = 720.0  # a clock set back into a folded minute: counted in a fresh bucket, not lost
    counts.on_end(span)
    assert anonymous_by_minute() == {720: [["/orders", "GET", 1]]}
    excluded = _Ended({"http.route": "/otel-monitor/api", "http.request.method": "GET"})
    counts.on_end(excluded)
    counts.on_end(excluded)
    assert anonymous_by_minute() == {720: [["/orders", "GET", 1]]}


def test_the_users_and_client_addresses_counts_read_the_clock_they_are_given_and_a_tests_clock_after_use_clock():
    import time

    from otel_monitor.analytics.users import Identities
    from otel_monitor.settings import resolve_settings

    identities = Identities(resolve_settings({"analytics_client_addresses": True}), (0.1, 1.0), time.time)
    assert identities.clients is not None
    assert [counts.clock for counts in identities.counts] == [time.time, time.time]  # no wrapper per request
    now = [600.0]
    identities.use_clock(lambda: now[0])
    span = _Ended({"http.route": "/orders", "http.request.method": "GET", "client.address": "10.0.0.1"})
    for counts in identities.counts:
        counts.on_end(span)
    assert [b["t"] for b in identities.users.snapshot() if b["span"] == 60] == [600]
    assert [b["t"] for b in identities.clients.snapshot() if b["span"] == 60] == [600]
