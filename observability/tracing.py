"""The process's tracer provider: replay-safe (Temporal's contrib), exporters chosen by settings,
and every exported span redacted first.

Temporal's `OpenTelemetryPlugin` (on the client, hence on workers built from it) carries the W3C
`traceparent` and baggage from the starter through the workflow into each activity, so one run is
one trace. The provider is global and set once per process; exporters are added to it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Status
from temporalio.contrib.opentelemetry import (
    OpenTelemetryPlugin,
    ReplaySafeTracerProvider,
    create_tracer_provider,
)

from observability import redaction

TRACER_NAME = "ai_factory"

_lock = threading.Lock()
_provider: ReplaySafeTracerProvider | None = None
_exporters_added: set[str] = set()


class RedactingSpanProcessor(SpanProcessor):
    """Hands the next processor a copy of each ended span with secrets blanked in its attributes,
    events and status (the SDK's spans are read-only once ended, so the copy is the filter)."""

    def __init__(self, downstream: SpanProcessor) -> None:
        self._downstream = downstream

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self._downstream.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._downstream.on_end(redacted_span(span))

    def shutdown(self) -> None:
        self._downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._downstream.force_flush(timeout_millis)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """`span` with the process redactor applied to everything that could carry text."""
    redactor = redaction.current()

    def attrs(values: Any) -> dict[str, Any]:
        return {
            k: (redaction.REDACTED if redactor.is_sensitive(k) else redactor.value(v))
            for k, v in (values or {}).items()
        }

    status = span.status
    if status.description:
        status = Status(status.status_code, redactor.text(status.description))
    return ReadableSpan(
        name=redactor.text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attrs(span.attributes),
        events=[Event(e.name, attrs(e.attributes), e.timestamp) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def tracer_provider(service_name: str = "ai-factory") -> ReplaySafeTracerProvider:
    """The global replay-safe provider, created and installed on first call."""
    global _provider
    with _lock:
        if _provider is None:
            current = trace.get_tracer_provider()
            if isinstance(current, ReplaySafeTracerProvider):  # installed by someone else: share it
                _provider = current
            else:
                _provider = create_tracer_provider(resource=Resource.create({"service.name": service_name}))
                trace.set_tracer_provider(_provider)
        return _provider


def add_exporter(exporter: SpanExporter, *, batch: bool = True, key: str | None = None) -> None:
    """Export spans to `exporter` (redacted). With `key`, a second call with the same key is a no-op."""
    provider = tracer_provider()
    with _lock:
        if key is not None:
            if key in _exporters_added:
                return
            _exporters_added.add(key)
    inner: SpanProcessor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(RedactingSpanProcessor(inner))


def exporter_for(
    kind: str, endpoint: str | None = None, headers: dict[str, str] | None = None
) -> SpanExporter | None:
    """The span exporter a `trace_exporter` setting names (None for `none`)."""
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout stays clean for `--json` output
    if kind == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, headers=headers or None)
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        url = (
            endpoint.rstrip("/") + "/v1/traces"
            if endpoint and not endpoint.endswith("/v1/traces")
            else endpoint
        )
        return HttpExporter(endpoint=url, headers=headers or None)
    raise ValueError(f"unknown trace exporter {kind!r}: none, console, otlp-grpc or otlp-http")


def client_plugins() -> Sequence[OpenTelemetryPlugin]:
    """The plugins a client (and every worker built from it) needs for one trace per run."""
    tracer_provider()
    # add_temporal_spans: StartWorkflow/RunWorkflow/StartActivity/RunActivity spans join the trace,
    # so the tree shows where each activity ran and how long it queued.
    return [OpenTelemetryPlugin(add_temporal_spans=True)]


_tracer: trace.Tracer | None = None


def get_tracer() -> trace.Tracer:
    """Our tracer (replay-safe inside workflows), made once: the global provider is set at most once
    per process, and one asked for before it is set follows it once it is."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer
