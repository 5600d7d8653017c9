"""Set up a process's observability from settings, once: redactor, logs, tracer provider and
exporters, meter provider with its Prometheus endpoint, and Temporal's own SDK metrics.

The worker calls `init_telemetry(settings)` and connects with `temporal_runtime()`; the starter
calls `init_telemetry(settings, logs=False)` so its trace begins where the run is started.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from temporalio.contrib.opentelemetry import MetricsExporter, ReplaySafeMeterProvider
from temporalio.runtime import MetricBuffer, MetricBufferDurationFormat, Runtime, TelemetryConfig

from observability import redaction, tracing
from observability.logs import configure_logging
from settings import Settings

_lock = threading.Lock()


@dataclass
class _Metrics:
    provider: MeterProvider
    server: Any = None
    port: int | None = None


_metrics: _Metrics | None = None
_runtime: tuple[Runtime, MetricBuffer] | None = None


def init_telemetry(
    settings: Settings,
    *,
    logs: bool = True,
    metrics: bool = True,
    extra_metric_readers: list[MetricReader] | None = None,
) -> None:
    """Install the redactor, logging, tracing exporters and metrics for this process (idempotent).
    The starter passes `metrics=False`: the worker owns the metrics port."""
    redaction.install(redaction.Redactor.from_settings(settings))
    if logs:
        configure_logging(settings.log_level, json_lines=settings.log_json)
    tracing.tracer_provider(settings.service_name)
    exporter = tracing.exporter_for(settings.trace_exporter, settings.otlp_endpoint, settings.otlp_headers)
    if exporter is not None:
        tracing.add_exporter(exporter, key=f"{settings.trace_exporter}:{settings.otlp_endpoint}")
    if not metrics:
        return
    meter_provider(settings, extra_metric_readers)
    if settings.metrics_port is not None:
        serve_metrics(settings.metrics_port, settings.metrics_host)


def meter_provider(settings: Settings, extra_readers: list[MetricReader] | None = None) -> MeterProvider:
    """The process's meter provider (created on first call with a Prometheus reader, OTLP when asked)."""
    global _metrics
    with _lock:
        if _metrics is None:
            readers: list[MetricReader] = [PrometheusMetricReader(), *(extra_readers or [])]
            if settings.metrics_otlp:
                readers.append(PeriodicExportingMetricReader(_otlp_metric_exporter(settings)))
            provider = MeterProvider(
                metric_readers=readers, resource=Resource.create({"service.name": settings.service_name})
            )
            # Workflow code records run metrics: the replay-safe wrapper drops those made while
            # history replays, so a run counts once however often its workflow is replayed.
            otel_metrics.set_meter_provider(ReplaySafeMeterProvider(provider))
            _metrics = _Metrics(provider)
        return _metrics.provider


def _otlp_metric_exporter(settings: Settings) -> Any:
    if settings.trace_exporter == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        endpoint = settings.otlp_endpoint
        url = (
            endpoint.rstrip("/") + "/v1/metrics"
            if endpoint and not endpoint.endswith("/v1/metrics")
            else endpoint
        )
        return HttpExporter(endpoint=url, headers=settings.otlp_headers or None)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return GrpcExporter(endpoint=settings.otlp_endpoint, headers=settings.otlp_headers or None)


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Start the Prometheus `/metrics` endpoint once per process; returns the port it listens on."""
    from prometheus_client import start_http_server

    assert _metrics is not None, "call init_telemetry first"
    with _lock:
        if _metrics.server is None:
            server, _thread = start_http_server(port, addr=host)
            _metrics.server = server
            _metrics.port = server.server_address[1]
        assert _metrics.port is not None
        return _metrics.port


def stop_metrics_server() -> None:
    """Close the Prometheus endpoint (tests; a worker keeps it for its lifetime)."""
    with _lock:
        if _metrics is not None and _metrics.server is not None:
            _metrics.server.shutdown()
            _metrics.server.server_close()
            _metrics.server = None
            _metrics.port = None


def temporal_runtime() -> Runtime:
    """A Temporal runtime whose SDK/worker metrics land in a buffer that `sdk_metrics_exporter`
    drains into our meter provider (so they share the Prometheus endpoint and OTLP pipeline)."""
    global _runtime
    with _lock:
        if _runtime is None:
            buffer = MetricBuffer(100_000, duration_format=MetricBufferDurationFormat.SECONDS)
            runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
            _runtime = (runtime, buffer)
        return _runtime[0]


def sdk_metrics_exporter() -> MetricsExporter:
    """Drains Temporal's metric buffer into our meter provider while used as `async with`."""
    temporal_runtime()
    assert _runtime is not None and _metrics is not None, "call init_telemetry first"
    return MetricsExporter(_runtime[1], _metrics.provider)


def flush_telemetry(timeout_millis: int = 5000) -> None:
    """Push buffered spans and metrics out (before a short-lived process such as the CLI exits)."""
    tracing.tracer_provider().force_flush(timeout_millis)
    if _metrics is not None:
        _metrics.provider.force_flush(timeout_millis)
