"""Run a worker: `python worker.py` hosts the workflows and CPU activities on the default task queue.

`--gpu` (see the GPU worker) hosts small-model activities on the GPU task queue instead.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bundle import build_activities
from observability.logs import get_logger
from observability.setup import init_telemetry, sdk_metrics_exporter, temporal_runtime
from settings import Settings, get_settings
from starter import connect, ensure_search_attributes
from workflows.agent_run import AgentRunWorkflow
from workflows.sandbox import sandbox_runner

WORKFLOWS: list[type] = [AgentRunWorkflow]


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


async def serve(settings: Settings, task_queue: str | None = None) -> None:
    """Run until SIGINT/SIGTERM, then drain: in-flight activities get the grace period to finish.
    Traces, JSON logs and metrics as settings say; `/metrics` on `metrics_port` when set."""
    init_telemetry(settings)
    async with sdk_metrics_exporter():
        client = await connect(settings, runtime=temporal_runtime())
        await ensure_search_attributes(client)
        worker = build_worker(client, settings, task_queue=task_queue)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        get_logger("ai_factory.worker").info(
            "worker serving",
            task_queue=task_queue or settings.task_queue,
            temporal_address=settings.temporal_address,
            metrics_port=settings.metrics_port,
            trace_exporter=settings.trace_exporter,
            payload_encryption=bool(settings.payload_encryption_key),
        )
        async with worker:
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """`python worker.py [--task-queue Q]`."""
    parser = argparse.ArgumentParser(description="AI Factory worker")
    parser.add_argument(
        "--task-queue", default=None, help="task queue to poll (settings.task_queue by default)"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(get_settings(), args.task_queue))


if __name__ == "__main__":
    main()
