"""The request's own span, recorded in a light structure that is also what span processors read.

The SDK's ``Tracer.start_span`` + ``Span.end`` cost about as much as the rest of the request path
together: a lock, bounded containers and a validation of every attribute at start, a copy of the
whole span into a ``ReadableSpan`` at end. The request span needs none of that: its attributes are
ones we built (strings and integers, already bounded), it lives on one thread, and at its end it is
frozen. :class:`ServerSpan` is a ``trace.Span`` *and* an SDK ``ReadableSpan``: the request path
writes into it directly, user code reaches it through ``trace.get_current_span()`` with the usual
API (``set_attribute``, ``add_event``, ``record_exception``, ``set_status``, ``update_name``,
``add_link``: validated and bounded as the SDK does), child spans parent on its context (real ids
from the provider's id generator, the provider's sampler's decision), and when it ends the span
processors receive the span itself, which no call changes any more.

Only when every span processor of the provider reads spans only when they have ended
(:class:`SpanProcessors`: the SDK's batch and simple processors and ours, which say so with
``reads_ended_spans_only``) and the sampler is the one built from the settings: a processor added
by the application, whose ``on_start`` may expect the SDK's own span, turns the light path off and
every request span is the SDK's again (:meth:`ServerSpans.available`).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from time import time_ns
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.util import types

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["ServerSpan", "ServerSpans", "SpanProcessors"]

_logger = logging.getLogger("otel_monitor")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED_RANDOM = TraceFlags(TraceFlags.RANDOM_TRACE_ID)
_UNSET = Status(StatusCode.UNSET)
#: taken by every write to a ServerSpan and by its end (one lock for all of them: writes from user
#: code are few and short; the SDK's span makes a lock per span), so nothing changes an ended span
_WRITES = threading.Lock()
_OK = StatusCode.OK
_NO_LINKS: tuple[Link, ...] = ()
#: what ``Decision.is_sampled()`` / ``is_recording()`` answer, as sets (the SDK's methods are unannotated)
_SAMPLED_DECISIONS = frozenset((Decision.RECORD_AND_SAMPLE,))
_RECORDING_DECISIONS = frozenset((Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE))
#: processors known to read a span only in ``on_end``, once it no longer changes
_READ_AT_END: tuple[type, ...] = (BatchSpanProcessor, SimpleSpanProcessor)
try:  # the queue behind the SDK's BatchSpanProcessor (SDK >= 1.34)
    from opentelemetry.sdk._shared_internal import BatchProcessor as _BatchQueue
except ImportError:  # pragma: no cover - an older SDK: its processors' on_end is called
    _BatchQueue = None  # type: ignore[assignment, misc]


_MAX_TRACE_ID = 2**128 - 1
_MAX_SPAN_ID = 2**64 - 1


def _span_context_maker() -> Callable[[int, int, TraceFlags, TraceState | None], SpanContext]:
    """``SpanContext(trace_id, span_id, False, flags, trace_state)``, without the API's Python-level
    ``__new__`` (a call, its defaults and checks: about 3,000 instructions per request) when the
    tuple it builds has the layout this module knows -- checked here against the constructor;
    any other API version gets the constructor itself."""
    empty = SpanContext(1, 1, False).trace_state  # the API's shared empty TraceState
    build = tuple.__new__

    def direct(trace_id: int, span_id: int, flags: TraceFlags, trace_state: TraceState | None) -> SpanContext:
        valid = 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID
        state = empty if trace_state is None else trace_state
        return build(SpanContext, (trace_id, span_id, False, flags, state, valid))

    def constructor(trace_id: int, span_id: int, flags: TraceFlags, trace_state: TraceState | None) -> SpanContext:
        return SpanContext(trace_id, span_id, False, flags, trace_state)

    probes = (
        (0xABC, 0xDEF, _SAMPLED, None),
        (0, 0, _NOT_SAMPLED, TraceState([("k", "v")])),
        (1, 2**64, _SAMPLED, None),
    )
    for probe in probes:
        made, expected = direct(*probe), constructor(*probe)
        if tuple(made) != tuple(expected) or made.is_valid != expected.is_valid or made != expected:
            return constructor
    return direct


_span_context = _span_context_maker()
#: the direct construction applies (the tuple layout checked): ServerSpans may build contexts in line
_DIRECT_CONTEXT = _span_context.__name__ == "direct"
_EMPTY_STATE = SpanContext(1, 1, False).trace_state
_build = tuple.__new__


class SpanProcessors(SynchronousMultiSpanProcessor):
    """The tracer provider's span processors, knowing whether they all read spans only at their end."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call, unused-ignore]  # the SDK's constructor is unannotated
        #: True while every processor added reads spans only in ``on_end`` (the light path's condition)
        self.read_at_end_only = True
        #: what ``on_end`` calls for a *sampled* span, processor by processor, in their order
        self.sampled_ends: tuple[Callable[[ReadableSpan], None], ...] = ()

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        if not (
            type(span_processor) in _READ_AT_END or getattr(span_processor, "reads_ended_spans_only", False) is True
        ):
            self.read_at_end_only = False
        self.sampled_ends = (*self.sampled_ends, _sampled_end(span_processor))


def _sampled_end(processor: SpanProcessor) -> Callable[[ReadableSpan], None]:
    """``processor.on_end`` for a span known to be sampled. The SDK's batch processor's ``on_end``
    only checks the sampled flag (two property calls) and hands the span to its queue's ``emit``:
    for that processor (the SDK's own class, its queue the SDK's), ``emit`` itself."""
    if type(processor) is BatchSpanProcessor and _BatchQueue is not None:
        queue = getattr(processor, "_batch_processor", None)
        emit = getattr(queue, "emit", None)
        if type(queue) is _BatchQueue and callable(emit):
            return emit  # type: ignore[no-any-return]  # the SDK's BatchProcessor is unannotated
    return processor.on_end


class ServerSpans:
    """Starts :class:`ServerSpan` s for one pipeline (its resource, ids, sampler, limits, processors)."""

    __slots__ = (
        "processors",
        "resource",
        "ids",
        "sampler",
        "limits",
        "scope",
        "_random_ids",
        "_light_limits",
        "_root_samples",
        "_parent_based",
        "_bits",
        "max_attributes",
        "own_values_plain",
    )

    def __init__(
        self,
        processors: SpanProcessors,
        resource: Resource,
        ids: IdGenerator,
        sampler: Sampler,
        limits: SpanLimits,
        scope: InstrumentationScope,
        sampler_name: str = "",
        own_values_plain: bool = True,
    ) -> None:
        """``own_values_plain``: every value the request path stores itself (``set_own``,
        ``end_request``, the attributes at the start) is a str or an int; False when it captures
        HTTP headers (lists of strings)."""
        self.processors = processors
        self.resource = resource
        self.ids = ids
        self.sampler = sampler
        self.limits = limits
        #: ``limits.max_span_attributes`` (SpanLimits do not change), read at every span's start and end
        self.max_attributes = limits.max_span_attributes
        self.own_values_plain = own_values_plain
        self.scope = scope
        self._random_ids = ids.is_trace_id_random()
        # Our own attributes are stored unchecked: only when no length limit could cut them.
        self._light_limits = limits.max_attribute_length is None
        # The settings' static samplers decide without a call (ratio samplers are asked):
        # ``always_on``/``always_off``, optionally ``parentbased_`` (a valid parent's sampled flag
        # decides, as ParentBased's default delegates do). None: ask the sampler.
        parent_based = sampler_name.startswith("parentbased_")
        root = sampler_name[len("parentbased_") :] if parent_based else sampler_name
        self._root_samples: bool | None = {"always_on": True, "always_off": False}.get(root)
        self._parent_based = parent_based
        #: the id generator's ``random_bits(n)`` (a uniformly random int below ``2**n``, a C call:
        #: ``telemetry._ids.PrivateIdGenerator`` has it): ids without two Python calls. None: ask
        #: ``ids`` (any other generator, or an API whose SpanContext layout this module does not know)
        bits = getattr(ids, "random_bits", None)
        self._bits: Callable[[int], int] | None = bits if callable(bits) and _DIRECT_CONTEXT else None

    def available(self) -> bool:
        """The light path applies now: no length limit, and every processor reads ended spans only."""
        return self._light_limits and self.processors.read_at_end_only

    def start(
        self,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        start_time: int,
        found: SpanContext | None,
        attributes: dict[str, types.AttributeValue] | None = None,
    ) -> trace.Span | None:
        """What ``Tracer.start_span(name, parent, kind)`` returns, for the settings' sampler; None
        when the light path does not apply now (:meth:`available`): start the SDK's span then.

        ``found``: the span context of ``trace.get_current_span(parent)`` (the caller has it; None
        for none). ``attributes``: the request path's own (str and int, bounded), for a recording
        span; the dict becomes the span's own (the caller keeps no reference to it).
        """
        if not (self._light_limits and self.processors.read_at_end_only):
            return None
        parent_context = found if found is not None and found.is_valid else None
        bits = self._bits
        if parent_context is None:
            trace_id = (bits(128) if bits is not None else 0) or self.ids.generate_trace_id()
            random = self._random_ids
        else:
            trace_id = parent_context.trace_id
            random = parent_context.trace_flags.random_trace_id
        root_samples = self._root_samples
        if root_samples is not None:
            if parent_context is None:
                sampled, trace_state = root_samples, None
            else:
                sampled = parent_context.trace_flags.sampled if self._parent_based else root_samples
                trace_state = parent_context.trace_state
            recording = sampled
        else:
            result = self.sampler.should_sample(parent, trace_id, name, kind, None, None)
            sampled = result.decision in _SAMPLED_DECISIONS
            recording = result.decision in _RECORDING_DECISIONS
            trace_state = result.trace_state
        if random:
            flags = _SAMPLED_RANDOM if sampled else _NOT_SAMPLED_RANDOM
        else:
            flags = _SAMPLED if sampled else _NOT_SAMPLED
        if bits is not None:
            # Both ids in range and non-zero (the trace id the parent's valid one or ours): valid.
            span_id = bits(64) or self.ids.generate_span_id()
            state = _EMPTY_STATE if trace_state is None else trace_state
            context = _build(SpanContext, (trace_id, span_id, False, flags, state, True))
        else:
            context = _span_context(trace_id, self.ids.generate_span_id(), flags, trace_state)
        if not recording:
            return trace.NonRecordingSpan(context)
        if attributes is None:
            attributes = {}
        maxlen = self.max_attributes
        if maxlen is not None and len(attributes) > maxlen:
            span = ServerSpan(self, name, context, parent_context, kind, start_time, {}, sampled)
            span.set_own(attributes)
            return span
        return ServerSpan(self, name, context, parent_context, kind, start_time, attributes, sampled)


class ServerSpan(trace.Span, ReadableSpan):
    """A recording span of the request path: ``trace.Span`` for writers, ``ReadableSpan`` for processors.

    The request path stores its own attributes with :meth:`set_own`; everything else goes through
    the API and is validated and bounded as the SDK's span does. After :meth:`end` nothing changes it.

    What processors read (``name``, ``context``, ``kind``, ``parent``, ``start_time``,
    ``end_time``, ``attributes``, ``status``) are plain fields, not ``ReadableSpan``'s properties:
    each property read is a Python call (about 600 instructions) and every processor reads several
    for every request. ``ReadableSpan``'s own fields (``_name``, ...) are properties reading them,
    for its methods (``to_json``). The span is made by :meth:`ServerSpans.start`.
    """

    __slots__ = ("name", "context", "kind", "parent", "start_time", "attributes", "sampled", "_spans")

    name: str
    context: SpanContext
    kind: SpanKind
    parent: SpanContext | None
    start_time: int
    #: a read-only view of the attributes, made once (``ReadableSpan.attributes`` makes one per read)
    attributes: MappingProxyType[str, types.AttributeValue]
    #: the span context's sampled flag (the API reads it through two property calls)
    sampled: bool
    # Fields that start the same in every span: class defaults, set on the span when they change.
    end_time: int | None = None
    status: Status = _UNSET
    _events: Sequence[Event] = ()
    _links: Sequence[Link] = _NO_LINKS
    _dropped_attributes = 0
    _dropped_events = 0
    _dropped_links = 0
    _instrumentation_info = None
    #: every attribute value is a str or an int (not a bool, a float or a sequence): what the OTLP
    #: encoder needs to know before it answers values from its cache (``True == 1 == 1.0``)
    plain_values = True

    def __init__(
        self,
        spans: ServerSpans,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        start_time: int,
        attributes: dict[str, types.AttributeValue],
        sampled: bool,
    ) -> None:
        """``attributes`` becomes the span's own dict (the request path made it for the span)."""
        self.name = name
        self.context = context
        self.kind = kind
        self.parent = parent
        self.start_time = start_time
        self._attributes: dict[str, types.AttributeValue] = attributes
        self.attributes = MappingProxyType(attributes)
        self.sampled = sampled
        self._spans = spans
        if not spans.own_values_plain:
            self.plain_values = False
        # ReadableSpan's own fields for its properties (``resource``, ``instrumentation_scope``);
        # its __init__ is not called (it would build an empty Resource)
        self._resource = spans.resource
        self._instrumentation_scope = spans.scope

    # ReadableSpan's private fields, for its methods (``to_json``) and any code that reads them:
    # the public fields' values (one field each, not two written per request). Read-only where the
    # SDK's are writeable (mypy's override): nothing writes them on a span that is not the SDK's.
    @property
    def _name(self) -> str:  # type: ignore[override]
        return self.name

    @property
    def _context(self) -> SpanContext:  # type: ignore[override]
        return self.context

    @property
    def _span_context(self) -> SpanContext:
        return self.context

    @property
    def _kind(self) -> SpanKind:  # type: ignore[override]
        return self.kind

    @property
    def _parent(self) -> SpanContext | None:  # type: ignore[override]
        return self.parent

    @property
    def _start_time(self) -> int:  # type: ignore[override]
        return self.start_time

    @property
    def _end_time(self) -> int | None:  # type: ignore[override]
        return self.end_time

    @property
    def _status(self) -> Status:  # type: ignore[override]
        return self.status

    # -- the request path's own writes -----------------------------------------------------------

    def set_own(self, attributes: dict[str, Any]) -> None:
        """Attributes the request path built (str and int, bounded): stored as they are."""
        with _WRITES:
            if self.end_time is not None:
                return
            maxlen = self._spans.limits.max_span_attributes
            if maxlen is None or len(self._attributes) + len(attributes) <= maxlen:
                self._attributes.update(attributes)
            else:  # the count limit reached: the SDK's rule, key by key
                for key, value in attributes.items():
                    self._store(key, value)

    def end_request(
        self,
        name: str | None,
        attributes: dict[str, types.AttributeValue],
        status: Status | None,
        end_time: int | None,
    ) -> None:
        """The request path's end in one step (one acquisition of the lock, not four): its name with
        the route, its final attributes (built by it, as :meth:`set_own`), its ERROR status (None:
        none; as :meth:`set_status`, an OK set by user code stays), then :meth:`end`."""
        with _WRITES:
            ended = self.end_time is not None
            if not ended:
                if name is not None:
                    self.name = name
                if attributes:
                    maxlen = self._spans.max_attributes
                    if maxlen is None or len(self._attributes) + len(attributes) <= maxlen:
                        self._attributes.update(attributes)
                    else:
                        for key, value in attributes.items():
                            self._store(key, value)
                if status is not None and self.status.status_code is not _OK:
                    self.status = status
                self.end_time = end_time if end_time is not None else time_ns()
        if ended:
            _logger.warning("Calling end() on an ended span.")
            return
        if self.sampled:  # as _ended, in line: this runs for every request
            for on_end in self._spans.processors.sampled_ends:
                on_end(self)
        else:
            self._spans.processors.on_end(self)

    def _ended(self) -> None:
        """Hand the ended (frozen) span to the processors."""
        if self.sampled:
            for on_end in self._spans.processors.sampled_ends:
                on_end(self)
        else:
            self._spans.processors.on_end(self)

    # -- trace.Span --------------------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: types.Attributes) -> None:
        if not attributes:
            return
        # As BoundedAttributes: keys that are not non-empty strings dropped, values cleaned.
        cleaned = _clean_attribute_value(dict(attributes), self._spans.limits.max_attribute_length)
        with _WRITES:
            if self.end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return
            self._dropped_attributes += len(attributes) - len(cleaned)
            for key, value in cleaned.items():
                self._store(key, value)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if not key or not isinstance(key, str):
            _logger.warning("invalid key `%s`. must be non-empty string. Dropping key from attributes.", key)
            with _WRITES:
                self._dropped_attributes += 1
            return
        cleaned = _clean_attribute_value(value, self._spans.limits.max_attribute_length)
        with _WRITES:
            if self.end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return
            self._store(key, cleaned)

    def _store(self, key: str, value: types.AttributeValue) -> None:
        """BoundedAttributes' rule (``_WRITES`` held): a key set again moves to the end; when full,
        the oldest goes."""
        attributes = self._attributes
        attributes.pop(key, None)
        maxlen = self._spans.limits.max_span_attributes
        if maxlen is not None and len(attributes) >= maxlen:
            self._dropped_attributes += 1
            if maxlen == 0:
                return
            del attributes[next(iter(attributes))]
        attributes[key] = value
        if type(value) is not str and type(value) is not int:
            self.plain_values = False

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        limits = self._spans.limits
        bounded = BoundedAttributes(
            limits.max_event_attributes, attributes, max_value_len=limits.max_attribute_length, immutable=True
        )
        event = Event(name=name, attributes=bounded, timestamp=timestamp)
        with _WRITES:
            if self.end_time is not None:
                _logger.warning("Calling add_event on an ended span.")
                return
            if limits.max_events is not None and len(self._events) >= limits.max_events:
                self._dropped_events += 1
                return
            self._events = (*self._events, event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if context is None or (not context.is_valid and not attributes):
            return  # what the SDK accepts: a valid context, or an invalid one that carries attributes
        limits = self._spans.limits
        bounded = BoundedAttributes(
            limits.max_link_attributes, attributes, max_value_len=limits.max_attribute_length, immutable=True
        )
        with _WRITES:
            if self.end_time is not None:
                return
            if limits.max_links is not None and len(self._links) >= limits.max_links:
                self._dropped_links += 1
                return
            self._links = (*self._links, Link(context, bounded))

    def update_name(self, name: str) -> None:
        with _WRITES:
            if self.end_time is None:
                self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET is ignored, a Status object carries its own description.
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            new = status
        elif isinstance(status, StatusCode):
            if status is StatusCode.UNSET:
                return
            new = Status(status, description)
        else:
            return
        with _WRITES:
            if self.end_time is None and self.status.status_code is not _OK:
                self.status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        event: dict[str, types.AttributeValue] = {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        with _WRITES:
            ended = self.end_time is not None
            if not ended:
                self.end_time = end_time if end_time is not None else time_ns()
        if ended:
            _logger.warning("Calling end() on an ended span.")
            return
        # Frozen from here on: the processors receive the span itself.
        self._ended()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    # -- ReadableSpan ------------------------------------------------------------------------------

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self.name}", context={self.context})'
