"""Run a worker: `python worker.py` hosts the workflows and CPU activities on the default task queue.

`python worker.py --gpu --model PATH` starts vLLM in-process once and hosts the small-model
`model_turn` activity on the GPU task queue instead, many at a time so that vLLM batches them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bundle import build_activities, build_model_activities, build_providers
from activities.cost_plan import load_price_table
from activities.gpu.activity import GpuModelActivities
from activities.gpu.engine import EngineUnavailable, GenerationEngine, create_engine
from activities.gpu.metrics import GpuMetrics, export_to_opentelemetry
from activities.ledger import Ledger
from observability.logs import get_logger
from observability.setup import flush_telemetry, init_telemetry, sdk_metrics_exporter, temporal_runtime
from settings import Settings, get_settings
from starter import connect, ensure_search_attributes
from workflows.agent_run import AgentRunWorkflow
from workflows.factory_line import FactoryLineWorkflow
from workflows.sandbox import sandbox_runner

WORKFLOWS: list[type] = [AgentRunWorkflow, FactoryLineWorkflow]


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
    workflows: Sequence[type] | None = None,
    max_concurrent_activities: int = 64,
) -> Worker:
    """A worker hosting our workflows (sandboxed) and activities on one task queue."""
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(workflows if workflows is not None else WORKFLOWS),
        activities=list(activities if activities is not None else build_activities(settings)),
        workflow_runner=sandbox_runner(),
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=30),
    )


def check_cost_config(settings: Settings) -> None:
    """Refuse to start on a cost configuration that would only fail mid-run: an unreadable price
    file, a non-positive provider rate limit, a circuit breaker that cannot close."""
    load_price_table(settings)  # raises PriceFileError / OSError
    bad = {p: r for p, r in settings.provider_rate_limits.items() if not r > 0}
    if bad:
        raise ValueError(f"provider_rate_limits must be positive calls per second: {bad}")
    if settings.circuit_failure_threshold < 1 or settings.circuit_cooldown_s <= 0:
        raise ValueError("circuit_failure_threshold must be >= 1 and circuit_cooldown_s > 0")


def build_provider_workers(
    client: Client, settings: Settings, model_turn: Callable[..., Any]
) -> list[Worker]:
    """One worker per rate-limited provider: its own task queue, only `model_turn`, and Temporal's
    task-queue rate limit, so a slow or rate-limited provider backs work up in its queue."""
    return [
        Worker(
            client,
            task_queue=settings.provider_task_queue(provider),
            activities=[model_turn],
            max_task_queue_activities_per_second=rate,
            graceful_shutdown_timeout=timedelta(seconds=30),
        )
        for provider, rate in sorted(settings.provider_rate_limits.items())
    ]


async def serve(settings: Settings, task_queue: str | None = None) -> None:
    """Run until SIGINT/SIGTERM, then drain: in-flight activities get the grace period to finish.
    Traces, JSON logs and metrics as settings say; `/metrics` on `metrics_port` when set. The
    ledger is migrated to head first, and the cost configuration checked."""
    check_cost_config(settings)
    init_telemetry(settings)
    ledger = Ledger.from_settings(settings)
    await ledger.upgrade()
    async with sdk_metrics_exporter():
        client = await connect(settings, runtime=temporal_runtime())
        await ensure_search_attributes(client)
        from blueprints.catalog import default_catalog

        catalog = default_catalog(settings.extension_modules)
        providers = build_providers(settings, catalog)
        models = build_model_activities(settings, providers, ledger)  # one circuit breaker for all queues
        activities = build_activities(
            settings, catalog=catalog, providers=providers, ledger=ledger, model_activities=models
        )
        worker = build_worker(client, settings, task_queue=task_queue, activities=activities)
        provider_workers = build_provider_workers(client, settings, models.model_turn)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log = get_logger("ai_factory.worker")
        log.info(
            "worker serving",
            task_queue=task_queue or settings.task_queue,
            temporal_address=settings.temporal_address,
            metrics_port=settings.metrics_port,
            trace_exporter=settings.trace_exporter,
            payload_encryption=bool(settings.payload_encryption_key),
            provider_queues=[w.task_queue for w in provider_workers],
        )
        try:
            async with AsyncExitStack() as stack:
                for running in (worker, *provider_workers):
                    await stack.enter_async_context(running)
                await stop.wait()
        finally:
            await ledger.close()


def build_gpu_worker(
    client: Client,
    settings: Settings,
    engine: GenerationEngine,
    *,
    task_queue: str | None = None,
    concurrency: int | None = None,
    metrics: GpuMetrics | None = None,
) -> tuple[Worker, GpuModelActivities]:
    """A worker hosting only the GPU `model_turn` activity on the GPU task queue (no workflows)."""
    gpu = GpuModelActivities(engine, settings, metrics)
    worker = Worker(
        client,
        task_queue=task_queue or settings.gpu_task_queue,
        activities=[gpu.model_turn],
        max_concurrent_activities=concurrency or settings.gpu_max_concurrent_activities,
        # Generations are not interruptible mid-way without losing the work: give them time to end.
        graceful_shutdown_timeout=timedelta(seconds=settings.gpu_drain_timeout_s),
    )
    return worker, gpu


async def serve_gpu(
    settings: Settings, model: str, task_queue: str | None = None, concurrency: int | None = None
) -> None:
    """Start the engine once, serve the GPU queue until SIGINT/SIGTERM, then drain: stop polling,
    let every accepted activity finish, and only then shut the engine down."""
    init_telemetry(settings)
    log = get_logger("ai_factory.worker.gpu")
    queue = task_queue or settings.gpu_task_queue
    slots = concurrency or settings.gpu_max_concurrent_activities
    engine = create_engine(settings, model, max_num_seqs=slots)
    info = engine.info
    log.info(
        "engine ready", model=info.model, served_as=info.served_name, engine=info.engine, **info.settings
    )
    try:
        async with sdk_metrics_exporter():
            client = await connect(settings, runtime=temporal_runtime())
            worker, gpu = build_gpu_worker(client, settings, engine, task_queue=queue, concurrency=slots)
            export_to_opentelemetry(gpu.metrics)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            reporter = asyncio.create_task(
                _report_metrics(gpu.metrics, settings.gpu_metrics_log_interval_s, log)
            )
            log.info(
                "GPU worker serving",
                task_queue=queue,
                temporal_address=settings.temporal_address,
                activity_slots=slots,
                metrics_port=settings.metrics_port,
            )
            try:
                async with worker:
                    await stop.wait()
                    log.info("draining: polling stopped", in_flight=gpu.metrics.in_flight)
            finally:
                reporter.cancel()
            log.info("drained", **gpu.metrics.snapshot())
    finally:
        await engine.shutdown()


async def _report_metrics(metrics: GpuMetrics, interval_s: float, log: Any) -> None:
    """Log throughput, queue depth and latency every interval (the same figures `/metrics` exports)."""
    while True:
        await asyncio.sleep(interval_s)
        log.info("GPU worker throughput", **metrics.snapshot(reset_window=True))


def main(argv: list[str] | None = None) -> None:
    """`python worker.py [--task-queue Q]` or `python worker.py --gpu --model PATH [--task-queue Q] [--concurrency N]`."""
    parser = argparse.ArgumentParser(description="AI Factory worker")
    parser.add_argument(
        "--task-queue",
        default=None,
        help="task queue to poll (settings.task_queue, or gpu_task_queue with --gpu)",
    )
    parser.add_argument(
        "--gpu", action="store_true", help="serve small-model activities with in-process vLLM"
    )
    parser.add_argument(
        "--model", default=None, help="with --gpu: local model folder or model name (settings.gpu_model)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="with --gpu: activities at once (settings.gpu_max_concurrent_activities)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if not args.gpu:
        asyncio.run(serve(settings, args.task_queue))
        return
    model = args.model or settings.gpu_model
    if not model:
        parser.error("--gpu needs --model (or GPU_MODEL)")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    try:
        asyncio.run(serve_gpu(settings, model, args.task_queue, args.concurrency))
    except EngineUnavailable as exc:
        print(f"worker.py --gpu: cannot start the engine: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    # Drained and the engine is down. Native threads (gRPC's poller, vLLM's engine core) can abort
    # the interpreter's finalization (seen: "PyGILState_Release ... finalizing", exit -6), which
    # would turn a clean drain into a crash for the supervisor: flush and leave without it.
    flush_telemetry()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
