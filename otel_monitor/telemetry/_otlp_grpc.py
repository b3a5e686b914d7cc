"""The official OTLP/gRPC span exporter sending :class:`~otel_monitor.telemetry._otlp_encode.SpanEncoder` bytes.

Kept apart from otel_monitor.telemetry._otlp_encode so that the gRPC runtime is imported only when a gRPC
traces exporter is configured; the module docstring there explains the seam.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as _GrpcSpanExporter

from ._otlp_encode import SpanEncoder

if TYPE_CHECKING:
    from grpc import ChannelCredentials, Compression, StatusCode  # type: ignore[import-untyped]  # grpcio has no hints
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan


class _PreEncodedTraceStub:
    """TraceService's Export method on a channel, sending already serialised request bytes."""

    def __init__(self, channel: object) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        self.Export = channel.unary_unary(  # type: ignore[attr-defined]
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=bytes,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class FastGrpcOTLPSpanExporter(_GrpcSpanExporter):
    """The official OTLP/gRPC span exporter sending :class:`SpanEncoder` bytes (see the module doc)."""

    def __init__(  # the official exporter's arguments
        self,
        endpoint: str | None = None,
        insecure: bool | None = None,
        credentials: ChannelCredentials | None = None,
        headers: Sequence[tuple[str, str]] | dict[str, str] | str | None = None,
        timeout: float | None = None,
        compression: Compression | None = None,
        channel_options: tuple[tuple[str, str]] | None = None,
        retryable_error_codes: Iterable[StatusCode] | None = None,
        *,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._encoder = SpanEncoder()
        super().__init__(
            endpoint,
            insecure,
            credentials,
            headers,
            timeout,
            compression,
            channel_options,
            retryable_error_codes,
            meter_provider=meter_provider,
        )

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call, unused-ignore]  # the SDK's, unannotated
        self._client = _PreEncodedTraceStub(self._channel)  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return self._encoder.encode(data)
