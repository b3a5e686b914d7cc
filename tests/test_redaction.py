"""One redaction (otel_monitor._redaction) for every place a request's text appears.

Query names are compared as the app will read them (percent-decoded, ``+`` as a space, spaces
around them ignored, any case, also in brackets, ``&`` or ``;`` between parameters); URLs lose
their user information; free text loses every URL's secrets, sensitive ``name=value`` pairs and
``Authorization``/``Cookie`` lines. The request span, the traces list, trace details, error groups,
the exports and exported log records all show the same redacted text.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.trace import Status, StatusCode

from otel_monitor._redaction import REDACTED, Redactor
from otel_monitor.analytics import analytics_of
from otel_monitor.settings import resolve_settings
from otel_monitor.telemetry._log_redaction import RedactingLogExporter
from otel_monitor.testing import Telemetry, closing_client

DEFAULT = Redactor(resolve_settings({}).sensitive_query_params)
SECRET = "S3CRETx9"


@pytest.mark.parametrize(
    "query, redacted",
    [
        ("password=s3cret&x=1", "password=REDACTED&x=1"),
        ("Password=s3cret", "Password=REDACTED"),
        ("%70assword=s3cret", "%70assword=REDACTED"),  # percent-encoded name
        ("pass%77ord=s3cret", "pass%77ord=REDACTED"),
        ("PASS%57ORD=s3cret", "PASS%57ORD=REDACTED"),
        ("client%5Fsecret=s3cret", "client%5Fsecret=REDACTED"),
        ("x-api-key=s3cret", "x-api-key=REDACTED"),
        ("password[]=s3cret", "password[]=REDACTED"),
        ("user[password]=s3cret", "user[password]=REDACTED"),
        ("user%5Bpassword%5D=s3cret", "user%5Bpassword%5D=REDACTED"),
        ("password+=s3cret", "password+=REDACTED"),  # "password " to the app, which strips it
        ("password%20=s3cret", "password%20=REDACTED"),
        ("+password=s3cret", "+password=REDACTED"),
        (";password=s3cret", ";password=REDACTED"),  # ``;`` separates parameters too
        ("a=1;password=s3cret;b=2", "a=1;password=REDACTED;b=2"),
        ("a=1&amp;password=s3cret", "a=1&amp;password=REDACTED"),  # an HTML-escaped link
        ("page=2&sort=name", "page=2&sort=name"),
        ("passwordless=1", "passwordless=1"),  # a different name stays
        ("%zz=1&%=2", "%zz=1&%=2"),  # malformed escapes are just names
        ("password", "password"),  # no value, nothing to hide
    ],
)
def test_sensitive_names_are_matched_as_the_app_decodes_them(query, redacted):
    assert DEFAULT.query(query) == redacted


@pytest.mark.parametrize(
    "name",
    [
        "client_secret",
        "refresh_token",
        "id_token",
        "access_token",
        "access-token",
        "auth_token",
        "private_token",
        "jwt",
        "x-api-key",
        "api-key",
        "passphrase",
        "credentials",
        "client_assertion",
        "x-amz-signature",
        "x-amz-security-token",
        "x-goog-signature",
    ],
)
def test_the_default_list_covers_common_oauth_oidc_and_signed_url_secrets(name):
    assert DEFAULT.query(f"{name}=s3cret") == f"{name}=REDACTED"


def test_the_list_stays_configurable_and_replaces_the_defaults():
    names = resolve_settings({"sensitive_query_params": "Internal_Code"}).sensitive_query_params
    assert Redactor(names).query("internal%5Fcode=1&password=2") == "internal%5Fcode=REDACTED&password=2"


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("postgres://admin:S3CRET@db/x?password=S3CRET", "postgres://REDACTED:REDACTED@db/x?password=REDACTED"),
        ("https://tok3n@github.com/o/r.git", "https://REDACTED@github.com/o/r.git"),
        ("redis://:p@ss@cache:6379/0", "redis://REDACTED:REDACTED@cache:6379/0"),  # an unescaped @ in the password
        ("https://h/p?q=1#frag@x", "https://h/p?q=1#frag@x"),  # an @ after the authority is not userinfo
        ("https://h/p?token=t&x=1#top", "https://h/p?token=REDACTED&x=1#top"),
    ],
)
def test_urls_lose_their_user_information_and_sensitive_query_values(url, redacted):
    assert DEFAULT.url(url) == redacted


@pytest.mark.parametrize(
    "text, redacted",
    [
        (
            "could not connect to postgres://admin:S3CRET@db/x?password=S3CRET",
            "could not connect to postgres://REDACTED:REDACTED@db/x?password=REDACTED",
        ),
        ("bad payload {'password': 'S3CRET', 'user': 'bob'}", "bad payload {'password': 'REDACTED', 'user': 'bob'}"),
        ('body {"api_key": "S3CRET"}', 'body {"api_key": "REDACTED"}'),
        ("dsn host=db password='S 3CRET' dbname=x", "dsn host=db password='REDACTED' dbname=x"),
        ("GET /login?password+=S3CRET HTTP/1.1", "GET /login?password+=REDACTED HTTP/1.1"),
        ("sent Authorization: Bearer S3CRET\nthen", "sent Authorization: REDACTED\nthen"),
        ("headers {'Cookie': 'session=S3CRET'}", "headers {'Cookie': 'REDACTED'}"),
        (
            "sent Authorization: Bearer S3CRET\nbody password=S3CRET&next=1",
            "sent Authorization: REDACTED\nbody password=REDACTED&next=1",
        ),
        ("İİİ PassWord=S3CRET", "İİİ PassWord=REDACTED"),  # "İ".lower() is two characters
        ("Error: password is wrong", "Error: password is wrong"),  # prose stays
        ("KeyError: 'token'", "KeyError: 'token'"),
    ],
)
def test_free_text_loses_urls_credentials_pairs_and_header_values(text, redacted):
    assert DEFAULT.text(text) == redacted


def test_attributes_naming_a_credential_lose_their_value_and_urls_are_redacted():
    assert DEFAULT.attributes(
        {
            "http.request.header.authorization": ("Bearer S3CRET",),
            "http.request.header.cookie": ("a=S3CRET",),
            "db.password": "S3CRET",
            "url.full": "https://u:S3CRET@h/?token=S3CRET",
            "url.query": ";password=S3CRET",
            "exception.message": "{'secret': 'S3CRET'}",
            "http.route": "/users/<id>",
        }
    ) == {
        "http.request.header.authorization": REDACTED,
        "http.request.header.cookie": REDACTED,
        "db.password": REDACTED,
        "url.full": "https://REDACTED:REDACTED@h/?token=REDACTED",
        "url.query": ";password=REDACTED",
        "exception.message": "{'secret': 'REDACTED'}",
        "http.route": "/users/<id>",
    }


# -- properties ------------------------------------------------------------------------------------

_SENSITIVE = sorted(DEFAULT.sensitive)
_SAFE_VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.~", min_size=1, max_size=20)


@st.composite
def encoded_names(draw: st.DrawFn) -> str:
    """A sensitive name as a client may spell it: any case, any character percent-encoded, spaces around."""
    name = draw(st.sampled_from(_SENSITIVE))
    out = []
    for char in name:
        char = char.upper() if draw(st.booleans()) else char
        out.append(f"%{ord(char):02{'X' if draw(st.booleans()) else 'x'}}" if draw(st.booleans()) else char)
    spaces = st.sampled_from(["", "+", "%20", "++"])
    return draw(spaces) + "".join(out) + draw(spaces)


@given(
    name=encoded_names(),
    before=st.lists(st.tuples(_SAFE_VALUE, _SAFE_VALUE), max_size=3),
    after=st.lists(st.tuples(_SAFE_VALUE, _SAFE_VALUE), max_size=3),
    separator=st.sampled_from(["&", ";", "&amp;"]),
)
def test_no_encoding_or_separator_lets_a_sensitive_value_through(name, before, after, separator):
    pairs = [f"{k}={v}" for k, v in before] + [f"{name}={SECRET}"] + [f"{k}={v}" for k, v in after]
    query = separator.join(pairs)
    for redacted in (DEFAULT.query(query), DEFAULT.url("https://h/p?" + query), DEFAULT.text(f"GET /p?{query} x")):
        assert SECRET not in redacted
        assert f"{name}={REDACTED}" in redacted


@given(
    before=st.text(max_size=60),
    header=st.sampled_from(["Authorization: Bearer ", "cookie: a=", "Set-Cookie: s="]),
    name=encoded_names(),
    after=st.text(max_size=60),
)
def test_secrets_after_a_header_line_are_redacted_too(before, header, name, after):
    text = f"{before}\n{header}{SECRET}\n{name}={SECRET} {after}"
    assert SECRET not in DEFAULT.text(text)


@given(text=st.text(max_size=200))
def test_redacting_is_idempotent_and_never_raises(text):
    once = DEFAULT.text(text)
    assert DEFAULT.text(once) == once
    assert DEFAULT.query(DEFAULT.query(text)) == DEFAULT.query(text)
    assert DEFAULT.url(DEFAULT.url(text)) == DEFAULT.url(text)


@given(pairs=st.lists(st.tuples(_SAFE_VALUE, _SAFE_VALUE), max_size=5), separator=st.sampled_from(["&", ";"]))
def test_a_query_without_sensitive_names_is_returned_unchanged(pairs, separator):
    query = separator.join(f"{k}={v}" for k, v in pairs if not DEFAULT.is_sensitive(k))
    assert DEFAULT.query(query) == query


# -- every place a request's text appears ----------------------------------------------------------

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DSN = f"postgres://admin:{SECRET}@db/x?password={SECRET}"


def test_a_failed_requests_secrets_appear_in_no_span_list_detail_group_or_export(monitors):
    app = Flask("redaction")

    @app.get("/login")
    def login():
        raise ConnectionError(f"could not connect to {DSN} with {{'password': '{SECRET}'}}")

    @app.get("/marked")
    def marked():  # the app's own status description (any SERVER span's, e.g. a contrib one's)
        trace.get_current_span().set_status(Status(StatusCode.ERROR, f"upstream {DSN} refused"))
        return "degraded"

    monitor = monitors(app, system_metrics=False, analytics_token=TOKEN)
    monitor.pipeline.scheduler.stop()
    telemetry = Telemetry(monitor)
    client = closing_client(app)
    for query in (f"password+={SECRET}", f"password%20={SECRET}", f"x=1;password={SECRET}", f"x=1&amp;token={SECRET}"):
        assert client.get(f"/login?{query}").status_code == 500

    assert client.get("/marked").status_code == 200
    *spans, marked_span = telemetry.spans()
    assert len(spans) == 4 and marked_span.status.description == f"upstream {DSN} refused"
    for span in spans:
        assert SECRET not in repr(dict(span.attributes)), "url.query"
        assert SECRET not in (span.status.description or ""), "status description"
        [event] = span.events
        assert event.name == "exception" and event.attributes["exception.type"] == "ConnectionError"
        assert SECRET not in event.attributes["exception.message"]
        assert SECRET not in event.attributes["exception.stacktrace"]
        assert "postgres://REDACTED:REDACTED@db/x?password=REDACTED" in event.attributes["exception.message"]

    state = analytics_of(monitor)
    state.sample()
    listed = client.get("/otel-monitor/traces?kind=failed", headers=AUTH).get_json()["traces"]
    assert len(listed) == 5
    assert listed[0]["error"] == "upstream postgres://REDACTED:REDACTED@db/x?password=REDACTED refused"
    for entry in listed[1:]:
        assert entry["error"].startswith("ConnectionError: could not connect to postgres://REDACTED:REDACTED@db/")
    trace_id = listed[0]["trace_id"]
    places = {
        "traces list": client.get("/otel-monitor/traces", headers=AUTH).get_data(as_text=True),
        "trace detail": client.get(f"/otel-monitor/traces/{trace_id}", headers=AUTH).get_data(as_text=True),
        "error groups": client.get("/otel-monitor/errors", headers=AUTH).get_data(as_text=True),
        "JSON export": client.get("/otel-monitor/export?format=json&window=1h", headers=AUTH).get_data(as_text=True),
    }
    archive = client.get("/otel-monitor/export?format=csv&window=1h", headers=AUTH).get_data()
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        places["CSV export"] = "".join(files.read(n).decode() for n in files.namelist())
    assert '"error_type"' in places["trace detail"] and "REDACTED" in places["error groups"]
    for where, text in places.items():
        assert SECRET not in text, f"the secret leaked into the {where}"
    assert list(csv.reader(io.StringIO(places["CSV export"])))  # a real export was read


def test_exported_log_records_are_redacted_in_the_export_thread():
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(RedactingLogExporter(exporter, DEFAULT)))
    logger = logging.getLogger("test_redaction.exported")
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.warning('"GET /login?password=%s HTTP/1.1" 500 -', SECRET)
        try:
            raise ConnectionError(DSN)
        except ConnectionError:
            logger.exception("database down")
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    access, failure = (r.log_record for r in exporter.get_finished_logs())
    assert access.body == '"GET /login?password=REDACTED HTTP/1.1" 500 -'
    assert failure.body == "database down"
    assert SECRET not in repr(dict(failure.attributes or {}))
    assert "postgres://REDACTED:REDACTED@db/x?password=REDACTED" in failure.attributes["exception.message"]


def test_a_secret_straddling_the_trace_details_cut_is_redacted_before_the_cut():
    from otel_monitor.analytics.trace_store import MAX_VALUE, TraceStore

    store = TraceStore(500, 10, resolve_settings({}).sensitive_query_params)
    message = "x" * (MAX_VALUE - 20) + f" postgres://admin:{SECRET}{SECRET}@db/x"
    shown = store._attributes({"exception.message": message})["exception.message"]
    assert SECRET[:4] not in shown and shown.endswith("…")
