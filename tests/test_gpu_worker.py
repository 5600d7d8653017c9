"""GPU workers on Temporal with the fake engine: batching concurrency, SIGTERM drain, start-up errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.model import Message, ModelTurnInput, ModelTurnResult
from policies.protocol import submit_result_spec
from settings import Settings
from tests.fakes.gpu_engine import FakeEngine
from tests.fakes.gpu_workflow import GpuTurnsInput, GpuTurnsWorkflow
from worker import build_gpu_worker
from workflows.sandbox import sandbox_runner

ROOT = Path(__file__).resolve().parent.parent


def turns(count: int) -> list[ModelTurnInput]:
    """`count` independent small-model turns."""
    return [
        ModelTurnInput(
            run_id="run-gpu",
            step_id=f"t{i}/turn-1",
            provider="vllm",
            model="fake-small",
            messages=[Message(role="user", content=f"Classify ticket number {i}.")],
            tools=[submit_result_spec({"type": "object"})],
            max_tokens=64,
        )
        for i in range(count)
    ]


def workflow_worker(client: Client, task_queue: str) -> Worker:
    """Hosts the test workflow that sends turns to the GPU queue (the GPU worker hosts none)."""
    return Worker(
        client, task_queue=task_queue, workflows=[GpuTurnsWorkflow], workflow_runner=sandbox_runner()
    )


async def wait_until(predicate, timeout_s: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_many_turns_in_flight_reach_the_engine_together(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    gpu_queue = f"{task_queue}-gpu"
    settings = Settings(_env_file=None, gpu_heartbeat_interval_s=0.2)  # type: ignore[call-arg]
    engine = FakeEngine()
    release = engine.hold()
    count = 48
    gpu_worker, gpu = build_gpu_worker(env.client, settings, engine, task_queue=gpu_queue, concurrency=256)
    async with workflow_worker(env.client, task_queue), gpu_worker:
        handle = await env.client.start_workflow(
            GpuTurnsWorkflow.run,
            GpuTurnsInput(turns=turns(count), gpu_task_queue=gpu_queue),
            id=f"gpu-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        # Every turn is held inside the engine at once: the worker did not serialize them.
        await wait_until(lambda: engine.in_flight == count, what=f"{count} generations in flight")
        assert gpu.metrics.in_flight == count
        release.set()
        results: list[ModelTurnResult] = await handle.result()

    assert len(results) == count and all(r.tool_calls[0].name == "submit_result" for r in results)
    assert engine.max_in_flight == count
    snap = gpu.metrics.snapshot()
    assert snap["gpu_activities_completed_total"] == count
    assert snap["gpu_activities_in_flight"] == 0 and snap["gpu_activities_in_flight_max"] == count
    assert snap["gpu_completion_tokens_total"] == sum(r.usage.output_tokens for r in results) > 0


async def test_concurrency_setting_caps_turns_in_flight(env: WorkflowEnvironment, task_queue: str) -> None:
    gpu_queue = f"{task_queue}-gpu"
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = FakeEngine(latency_s=0.05)
    gpu_worker, _ = build_gpu_worker(env.client, settings, engine, task_queue=gpu_queue, concurrency=4)
    async with workflow_worker(env.client, task_queue), gpu_worker:
        results = await env.client.execute_workflow(
            GpuTurnsWorkflow.run,
            GpuTurnsInput(turns=turns(16), gpu_task_queue=gpu_queue),
            id=f"gpu-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert len(results) == 16
    assert engine.max_in_flight == 4


def gpu_worker_env(target_host: str, events: Path, latency_s: float) -> dict[str, str]:
    """Environment of a `worker.py --gpu` subprocess that uses the fake engine."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEMPORAL_ADDRESS": target_host,
        "GPU_ENGINE_FACTORY": "tests.fakes.gpu_engine:from_settings",
        "FAKE_GPU_LATENCY_S": str(latency_s),
        "FAKE_GPU_EVENTS": str(events),
        "GPU_METRICS_LOG_INTERVAL_S": "1",
        "MODEL_PROVIDER": "offline",
    }


async def test_sigterm_drains_every_accepted_turn_before_the_engine_stops(
    devserver_env: WorkflowEnvironment, devserver_target_host: str, task_queue: str, tmp_path: Path
) -> None:
    gpu_queue = f"{task_queue}-gpu"
    events = tmp_path / "events.log"
    events.touch()
    count = 12
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "worker.py", "--gpu", "--model", "fake-small", "--task-queue", gpu_queue],
        *["--concurrency", "64"],
        cwd=ROOT,
        # 6 s per turn: every turn is still mid-flight at SIGTERM even on a loaded machine.
        env=gpu_worker_env(devserver_target_host, events, latency_s=6.0),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        client = devserver_env.client
        async with workflow_worker(client, task_queue):
            handle = await client.start_workflow(
                GpuTurnsWorkflow.run,
                GpuTurnsInput(turns=turns(count), gpu_task_queue=gpu_queue),
                id=f"gpu-drain-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            await wait_until(
                lambda: events.read_text().count("start ") == count, timeout_s=60, what="all turns started"
            )
            assert "done " not in events.read_text(), "SIGTERM must arrive while turns are in flight"
            process.send_signal(signal.SIGTERM)
            # No other GPU worker exists: a lost turn would never finish and this would time out.
            results = await asyncio.wait_for(handle.result(), timeout=60)
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        output = stdout.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, output
    assert len(results) == count and all(r.tool_calls for r in results)
    lines = events.read_text().split("\n")
    assert sum(line.startswith("done ") for line in lines) == count
    assert lines[-2] == "shutdown -", "the engine shuts down only after every turn finished"
    assert "draining" in output and "drained" in output
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [1] * count, "no turn was retried: each finished on the worker that accepted it"


def test_a_missing_model_path_is_a_clear_error_with_its_own_exit_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "worker.py", "--gpu", "--model", str(tmp_path / "no-such-model")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "does not exist" in done.stderr and "no-such-model" in done.stderr


def test_without_vllm_the_gpu_worker_says_how_to_install_it(tmp_path: Path) -> None:
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    done = subprocess.run(
        [sys.executable, "worker.py", "--gpu", "--model", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4
    assert "vLLM is not installed" in done.stderr and "pip install -e '.[gpu]'" in done.stderr


def test_the_gpu_benchmark_imports_and_explains_what_it_needs_without_vllm() -> None:
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_throughput.py", "--levels", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4
    assert "vLLM is not installed" in done.stderr
