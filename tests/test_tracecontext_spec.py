"""W3C Trace Context Level 1 (and Level 2's random-trace-id flag), one case per rule of the text.

Each row quotes (or closely paraphrases) the rule it checks. Extraction goes through the
propagator the pipeline uses; a few rows also go through the whole middleware.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState

import otel_monitor
from otel_monitor.request._tracecontext import MAX_TRACESTATE, W3CTraceContextPropagator
from otel_monitor.testing import Telemetry

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
VALID = f"00-{TRACE}-{PARENT}-01"
PROPAGATOR = W3CTraceContextPropagator()


def extract(headers: dict[str, str | list[str]]) -> SpanContext:
    carrier = {k: v if isinstance(v, list) else [v] for k, v in headers.items()}
    getter = type("Getter", (), {"get": lambda self, c, k: c.get(k), "keys": lambda self, c: list(c)})()
    return trace.get_current_span(PROPAGATOR.extract(carrier, getter=getter)).get_span_context()


def accepted(traceparent: str) -> bool:
    context = extract({"traceparent": traceparent})
    return context.is_valid and format(context.trace_id, "032x") == TRACE


# -- traceparent --------------------------------------------------------------------------------

TRACEPARENT_RULES = [
    ("a version-00 header of exactly 55 characters is valid", VALID, True),
    ("the not-sampled flag is valid too", f"00-{TRACE}-{PARENT}-00", True),
    ("version ff is invalid", f"ff-{TRACE}-{PARENT}-01", False),
    ("version is 2 lowercase hex digits: '.0' is not", f".0-{TRACE}-{PARENT}-01", False),
    ("version is 2 lowercase hex digits: '0.' is not", f"0.-{TRACE}-{PARENT}-01", False),
    ("version is 2 lowercase hex digits: upper case is not", f"0A-{TRACE}-{PARENT}-01", False),
    ("version longer than 2 digits is invalid", f"000-{TRACE}-{PARENT}-01", False),
    ("version shorter than 2 digits is invalid", f"0-{TRACE}-{PARENT}-01", False),
    ("trace-id all zeroes is invalid", f"00-{'0' * 32}-{PARENT}-01", False),
    ("trace-id with a non-hex character is invalid", f"00-.{TRACE[1:]}-{PARENT}-01", False),
    ("trace-id must be lowercase hex (HEXDIGLC)", f"00-{TRACE[:-1]}A-{PARENT}-01", False),
    ("trace-id longer than 32 digits is invalid", f"00-{TRACE}3-{PARENT}-01", False),
    ("trace-id shorter than 32 digits is invalid", f"00-{TRACE[1:]}-{PARENT}-01", False),
    ("parent-id all zeroes is invalid", f"00-{TRACE}-{'0' * 16}-01", False),
    ("parent-id with a non-hex character is invalid", f"00-{TRACE}-{PARENT[:-1]}.-01", False),
    ("parent-id must be lowercase hex", f"00-{TRACE}-{PARENT[:-1]}F-01", False),
    ("parent-id longer than 16 digits is invalid", f"00-{TRACE}-{PARENT}7-01", False),
    ("parent-id shorter than 16 digits is invalid", f"00-{TRACE}-{PARENT[1:]}-01", False),
    ("trace-flags with a non-hex character are invalid", f"00-{TRACE}-{PARENT}-0.", False),
    ("trace-flags longer than 2 digits are invalid", f"00-{TRACE}-{PARENT}-001", False),
    ("trace-flags shorter than 2 digits are invalid", f"00-{TRACE}-{PARENT}-1", False),
    ("version 00 has nothing after the flags", f"{VALID}.", False),
    ("version 00 has no further fields either", f"{VALID}-what-the-future-will-be-like", False),
    ("a higher version of exactly 55 characters is parsed for the 00 fields", f"cc-{TRACE}-{PARENT}-01", True),
    (
        "a higher version's extra fields follow a dash after the flags",
        f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
        True,
    ),
    ("a higher version with no dash after the flags is invalid", f"cc-{TRACE}-{PARENT}-01.what-the-future", False),
    ("a higher version shorter than 55 characters is not parsed", f"cc-{TRACE}-{PARENT}-1", False),
    ("a higher version still needs hex ids", f"cc-{TRACE[:-1]}x-{PARENT}-01-future", False),
    ("leading space is optional whitespace", f" {VALID}", True),
    ("leading tab is optional whitespace", f"\t{VALID}", True),
    ("trailing space is optional whitespace", f"{VALID} ", True),
    ("trailing tab is optional whitespace", f"{VALID}\t", True),
    ("whitespace on both sides is optional whitespace", f"\t {VALID} \t", True),
    ("two traceparent fields combined by the server are invalid", f"{VALID}, 00-{'a' * 32}-{PARENT}-01", False),
    ("a hostile future-version header is bounded", f"cc-{TRACE}-{PARENT}-01-" + "x" * 1000, False),
]


@pytest.mark.parametrize("rule, header, valid", TRACEPARENT_RULES, ids=[r[0] for r in TRACEPARENT_RULES])
def test_traceparent_rule(rule, header, valid):
    assert accepted(header) is valid, rule


def test_several_traceparent_fields_from_a_multi_value_carrier_restart_the_trace():
    assert not extract({"traceparent": [VALID, f"00-{'a' * 32}-{PARENT}-01"]}).is_valid


def test_the_parsed_context_is_remote_with_the_callers_ids_and_sampled_flag():
    context = extract({"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert (format(context.trace_id, "032x"), format(context.span_id, "016x")) == (TRACE, PARENT)
    assert context.is_remote and context.trace_flags.sampled


@pytest.mark.parametrize(
    "flags, kept",
    [
        ("01", 0x01),  # sampled
        ("02", 0x02),  # Level 2: random-trace-id
        ("03", 0x03),
        ("09", 0x01),  # "a common mistake is forgetting to mask": 0x08 is reserved
        ("ff", 0x03),  # reserved bits: "Vendors MUST set those to zero"
    ],
)
def test_trace_flags_keep_sampled_and_random_and_drop_reserved_bits(flags, kept):
    assert extract({"traceparent": f"00-{TRACE}-{PARENT}-{flags}"}).trace_flags == kept


# -- tracestate -----------------------------------------------------------------------------------

KEY_256 = "z" * 256
TENANT_KEY = "t" * 241 + "@" + "v" * 14
ALL_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
ALL_VALUE_CHARS = (
    "".join(map(chr, range(0x20, 0x2C))) + "".join(map(chr, range(0x2D, 0x3D))) + "".join(map(chr, range(0x3E, 0x7F)))
)

# (rule, tracestate header fields, expected entries or None when the header is discarded)
TRACESTATE_RULES = [
    ("list members are key=value separated by commas", ["foo=1,bar=2"], {"foo": "1", "bar": "2"}),
    (
        "multiple tracestate fields are combined in order",
        ["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
        {"foo": "1", "bar": "2", "rojo": "1", "congo": "2", "baz": "3"},
    ),
    ("an empty header is accepted (and nothing is kept)", [""], {}),
    ("empty list members are allowed", ["foo=1", ""], {"foo": "1"}),
    ("whitespace-only list members are allowed", ["foo=1, \t ,bar=2"], {"foo": "1", "bar": "2"}),
    (
        "spaces and tabs around members are ignored",
        ["foo=1 \t , \t bar=2, \t baz=3"],
        {"foo": "1", "bar": "2", "baz": "3"},
    ),
    ("leading optional whitespace", ["\t foo=1"], {"foo": "1"}),
    ("trailing optional whitespace", ["foo=1 \t"], {"foo": "1"}),
    ("32 list members are allowed", [",".join(f"k{i:02d}={i}" for i in range(32))], 32),
    ("33 list members discard the header", [",".join(f"k{i:02d}={i}" for i in range(33))], None),
    ("only one entry per key: duplicates discard the header", ["foo=1,foo=2"], None),
    ("duplicates across header fields discard the header", ["foo=1", "foo=1"], None),
    ("only one entry per key, also for keys with '@'", ["a@b@c=1,x=2,a@b@c=2"], None),
    ("a key of 256 characters is valid", ["foo=1", f"{KEY_256}=1"], {"foo": "1", KEY_256: "1"}),
    ("a key of 257 characters is invalid", ["foo=1", f"{'z' * 257}=1"], None),
    ("a key may begin with a digit (Level 2)", ["1abc=1"], {"1abc": "1"}),
    ("a key of 256 characters beginning with a digit is valid", [f"1{'z' * 255}=1"], {f"1{'z' * 255}": "1"}),
    ("a key begins with a letter or a digit, not '_'", ["_abc=1"], None),
    ("a key begins with a letter or a digit, not '@'", ["@foo=1,bar=2"], None),
    (
        "multi-tenant key: tenant of 241 and system of 14 characters",
        ["foo=1", f"{TENANT_KEY}=1"],
        {"foo": "1", TENANT_KEY: "1"},
    ),
    # Level 2 drops Level 1's tenant@system split: '@' is a key character after the first.
    (
        "a tenant part of 242 characters is valid (Level 2)",
        ["foo=1", f"{'t' * 242}@v=1"],
        {"foo": "1", f"{'t' * 242}@v": "1"},
    ),
    (
        "a system part of 15 characters is valid (Level 2)",
        ["foo=1", f"t@{'v' * 15}=1"],
        {"foo": "1", f"t@{'v' * 15}": "1"},
    ),
    (
        "a key of 256 characters with '@' beyond Level 1's limits is valid",
        [f"{'t' * 200}@{'v' * 55}=1"],
        {f"{'t' * 200}@{'v' * 55}": "1"},
    ),
    ("a key of 257 characters with '@' is invalid", ["foo=1", f"{'t' * 200}@{'v' * 56}=1"], None),
    ("the part after '@' may begin with a digit (Level 2)", ["tenant@1system=x"], {"tenant@1system": "x"}),
    ("a key may end with '@' (Level 2)", ["foo@=1,bar=2"], {"foo@": "1", "bar": "2"}),
    ("a key may hold two '@' (Level 2)", ["foo@@bar=1,bar=2"], {"foo@@bar": "1", "bar": "2"}),
    ("a key may hold two tenants (Level 2)", ["foo@bar@baz=1,bar=2"], {"foo@bar@baz": "1", "bar": "2"}),
    ("keys are lowercase", ["FOO=1"], None),
    ("keys have no spaces", ["foo =1"], None),
    ("keys have no dots", ["foo.bar=1"], None),
    ("every allowed key character", [f"{ALL_KEY_CHARS}=1"], {ALL_KEY_CHARS: "1"}),
    (
        "every allowed key character, multi-tenant",
        [f"{ALL_KEY_CHARS}@a-z0-9_-*/=1"],
        {f"{ALL_KEY_CHARS}@a-z0-9_-*/": "1"},
    ),
    ("every allowed value character", [f"foo={ALL_VALUE_CHARS[1:]}"], {"foo": ALL_VALUE_CHARS[1:]}),
    ("a value has no equals sign", ["foo=bar=baz"], None),
    ("a value is not empty", ["foo=,bar=3"], None),
    ("a value's leading spaces are part of it", ["foo= 1"], {"foo": " 1"}),
    ("a value of 256 characters is valid", [f"foo={'v' * 256}"], {"foo": "v" * 256}),
    ("a value of 257 characters is invalid", [f"foo={'v' * 257}"], None),
    ("a value has no tabs", ["foo=a\tb"], None),
    ("a member without '=' is invalid", ["foo"], None),
]


def _entries(result):
    return result if result is None or isinstance(result, int) else dict(result)


@pytest.mark.parametrize("rule, fields, expected", TRACESTATE_RULES, ids=[r[0] for r in TRACESTATE_RULES])
def test_tracestate_rule(rule, fields, expected):
    context = extract({"traceparent": VALID, "tracestate": fields})
    assert context.is_valid, "failure to parse tracestate MUST NOT affect traceparent"
    state = context.trace_state
    if expected is None:
        assert len(state) == 0, rule
    elif isinstance(expected, int):
        assert len(state) == expected, rule
    else:
        assert dict(state) == expected, rule
        assert list(state) == list(expected), "order of the members is kept"


def test_tracestate_is_not_parsed_when_traceparent_is_invalid():
    context = extract({"traceparent": f"ff-{TRACE}-{PARENT}-01", "tracestate": "foo=1"})
    assert not context.is_valid


def test_a_long_tracestate_is_truncated_by_whole_entries_long_ones_first_then_from_the_end():
    long_entry = "big=" + "x" * 200  # over 128 characters: removed first
    small = [f"k{i:02d}=" + "v" * 20 for i in range(30)]  # 24 characters each
    context = extract({"traceparent": VALID, "tracestate": ",".join([small[0], long_entry, *small[1:]])})
    kept = context.trace_state.to_header()
    assert len(kept) <= MAX_TRACESTATE
    assert "big" not in context.trace_state
    assert list(context.trace_state) == [f"k{i:02d}" for i in range(len(context.trace_state))]
    assert len(context.trace_state) == (MAX_TRACESTATE + 1) // 25


def test_a_hostile_tracestate_is_not_parsed_at_all():
    assert len(extract({"traceparent": VALID, "tracestate": "a=1," + "," * 20_000}).trace_state) == 0


# -- outbound ----------------------------------------------------------------------------------------


def inject(span_context: SpanContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    return carrier


def test_a_higher_version_is_sent_on_as_version_00():
    context = extract({"traceparent": f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"})
    assert inject(context) == {"traceparent": f"00-{TRACE}-{PARENT}-01"}


def test_outbound_flags_carry_sampled_and_random_and_zero_the_reserved_bits():
    context = SpanContext(int(TRACE, 16), int(PARENT, 16), False, TraceFlags(0xFF))
    assert inject(context)["traceparent"] == f"00-{TRACE}-{PARENT}-03"


def test_outbound_tracestate_is_sent_in_order_and_an_empty_one_is_not_sent():
    state = TraceState([("rojo", "00f067aa0ba902b7"), ("tenant@congo", "t61rcWkgMzE")])
    context = SpanContext(int(TRACE, 16), int(PARENT, 16), False, TraceFlags(1), state)
    assert inject(context) == {
        "traceparent": f"00-{TRACE}-{PARENT}-01",
        "tracestate": "rojo=00f067aa0ba902b7,tenant@congo=t61rcWkgMzE",
    }
    assert "tracestate" not in inject(SpanContext(int(TRACE, 16), int(PARENT, 16), False, TraceFlags(1)))


def test_nothing_is_injected_without_a_valid_span():
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    assert carrier == {} and PROPAGATOR.fields == {"traceparent", "tracestate"}


# -- through the middleware -------------------------------------------------------------------------


@pytest.fixture
def served():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = otel_monitor.wrap(app, system_metrics=False, service_name="tracecontext")
    telemetry = Telemetry(wrapped.monitor)
    yield wrapped, telemetry
    wrapped.monitor.shutdown(1)


def serve(wrapped, **headers):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "x", "SERVER_PORT": "80"}
    environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    body = wrapped(environ, lambda s, h, e=None: None)
    b"".join(body)
    body.close()


def test_a_future_version_traceparent_through_the_middleware_makes_the_server_span_its_child(served):
    wrapped, telemetry = served
    serve(wrapped, traceparent=f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like")
    (span,) = telemetry.spans()
    assert format(span.context.trace_id, "032x") == TRACE
    assert format(span.parent.span_id, "016x") == PARENT


def test_a_multi_tenant_key_of_the_longest_form_reaches_the_server_span(served):
    wrapped, telemetry = served
    serve(wrapped, traceparent=VALID, tracestate=f"{TENANT_KEY}=1, tenant@system=2")
    (span,) = telemetry.spans()
    assert dict(span.context.trace_state) == {TENANT_KEY: "1", "tenant@system": "2"}


def test_level_2_keys_reach_the_server_span_and_are_sent_on_unchanged(served):
    wrapped, telemetry = served
    header = f"1abc=1,a@b@c=2,{'t' * 200}@{'v' * 20}=3,foo=4"
    serve(wrapped, traceparent=VALID, tracestate=header)
    (span,) = telemetry.spans()
    assert span.context.trace_state.to_header() == header  # none dropped by the API's Level 1 check
    carrier = inject(span.context)
    assert carrier["tracestate"] == header


def test_a_tracestate_over_512_characters_keeps_its_first_entries_instead_of_none(served):
    wrapped, telemetry = served
    serve(wrapped, traceparent=VALID, tracestate=",".join(f"k{i:02d}=" + "v" * 20 for i in range(30)))
    (span,) = telemetry.spans()
    assert list(span.context.trace_state) == [f"k{i:02d}" for i in range(20)]
