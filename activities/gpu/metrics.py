"""The GPU worker's instruments, all in one place so that an exporter (Prometheus) can read them.

Plain counters and gauges with a `snapshot()`; the worker logs the snapshot periodically and an
exporter can publish the same names. Nothing here does I/O.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

#: Upper bounds (seconds) of the latency histograms' buckets; the last bucket is +Inf.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class Histogram:
    """A cumulative-bucket histogram (Prometheus style) with sum and count."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def quantile(self, q: float) -> float:
        """An upper-bound estimate of the q-quantile (the bucket bound that reaches it)."""
        if not self.count:
            return 0.0
        target = q * self.count
        seen = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= target:
                return bound
        return float("inf")


class GpuMetrics:
    """Queue depth, latency, tokens and outcomes of the GPU activities in this process.

    `in_flight` is the worker's queue depth: activities accepted from the task queue and waiting on
    or running in the engine. `schedule_to_start` is how long tasks waited in Temporal's queue."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        self.failed = 0
        self.invalid_outputs = 0
        self.repairs = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency = Histogram()
        self.schedule_to_start = Histogram()
        self._window_start = time.monotonic()
        self._window_tokens = 0

    def activity_started(self, schedule_to_start_s: float | None) -> None:
        """An activity was accepted (and waited `schedule_to_start_s` in the task queue)."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if schedule_to_start_s is not None:
            self.schedule_to_start.observe(max(schedule_to_start_s, 0.0))

    def activity_finished(self, latency_s: float, ok: bool) -> None:
        """An activity returned (`ok`) or raised, after `latency_s` seconds of work."""
        self.in_flight -= 1
        self.latency.observe(latency_s)
        if ok:
            self.completed += 1
        else:
            self.failed += 1

    def tokens(self, prompt: int, completion: int) -> None:
        """Count the tokens of one generation."""
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self._window_tokens += completion

    def snapshot(self, reset_window: bool = False) -> dict[str, float]:
        """Every instrument by a stable, exporter-friendly name; the throughput covers the window
        since the last reset (the log interval) as well as the whole process lifetime."""
        now = time.monotonic()
        window = max(now - self._window_start, 1e-9)
        snap = {
            "gpu_activities_in_flight": float(self.in_flight),
            "gpu_activities_in_flight_max": float(self.max_in_flight),
            "gpu_activities_completed_total": float(self.completed),
            "gpu_activities_failed_total": float(self.failed),
            "gpu_guided_output_invalid_total": float(self.invalid_outputs),
            "gpu_guided_output_repairs_total": float(self.repairs),
            "gpu_prompt_tokens_total": float(self.prompt_tokens),
            "gpu_completion_tokens_total": float(self.completion_tokens),
            "gpu_output_tokens_per_s": self._window_tokens / window,
            "gpu_output_tokens_per_s_lifetime": self.completion_tokens / max(now - self.started_at, 1e-9),
            "gpu_activity_latency_s_p50": self.latency.quantile(0.5),
            "gpu_activity_latency_s_p95": self.latency.quantile(0.95),
            "gpu_schedule_to_start_s_p50": self.schedule_to_start.quantile(0.5),
            "gpu_schedule_to_start_s_p95": self.schedule_to_start.quantile(0.95),
        }
        if reset_window:
            self._window_start, self._window_tokens = now, 0
        return snap


def export_to_opentelemetry(metrics: GpuMetrics, meter: Any = None) -> None:
    """Publish every instrument of `metrics` as an observable gauge (`factory.gpu.*`) on `meter`
    (the global provider's by default, which feeds the worker's Prometheus endpoint and OTLP).
    Call once per process."""
    from opentelemetry.metrics import CallbackOptions, Observation, get_meter

    meter = meter or get_meter("ai_factory.gpu")
    for name in metrics.snapshot():

        def observe(_: CallbackOptions, name: str = name) -> list[Observation]:
            return [Observation(metrics.snapshot()[name])]

        meter.create_observable_gauge(f"factory.{name.replace('_', '.', 1)}", callbacks=[observe])
