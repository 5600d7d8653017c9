"""Compensation: completed side effects are undone in reverse order, exactly once, even when the
worker is killed in the middle of compensating."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.run import RunRequest, RunResult
from tests.fakes import harness
from tests.fakes.steps import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
CHARGES = {
    "steps": [
        {"tool": "charge", "label": "first"},
        {"tool": "charge", "label": "second"},
        {"tool": "charge", "label": "decline"},
    ]
}


def ledger_ops(state_dir: Path) -> list[tuple[str, str]]:
    return [(r["op"], r["label"]) for r in read_jsonl(state_dir / "ledger.jsonl")]


async def test_failed_run_compensates_completed_side_effects_in_reverse_order(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    state = tmp_path / "state"
    async with harness.running_worker(client, settings, task_queue, state_dir=state):
        result = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="tool-steps", input=CHARGES, provider="scripted", model="offline-v1"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
    assert result.state == "FAILED"
    assert ledger_ops(state) == [
        ("charge", "first"),
        ("charge", "second"),
        ("refund", "second"),
        ("refund", "first"),
    ]
    assert [(c.step_id.split("/")[0], c.status) for c in result.compensations] == [
        ("s2", "compensated"),
        ("s1", "compensated"),
    ]
    refund_keys = [r["key"] for r in read_jsonl(state / "ledger.jsonl") if r["op"] == "refund"]
    assert refund_keys == [
        f"{workflow_id}/s2/turn-1/call-0/compensate",
        f"{workflow_id}/s1/turn-1/call-0/compensate",
    ]
    letter = await harness.dead_letters(settings).get(result.dead_letter_id or "")
    assert (
        letter is not None and [c.status for c in letter.last_checkpoint.compensations] == ["compensated"] * 2
    )
    assert letter.last_checkpoint.task_results == []  # undone work is not offered for reuse


async def test_a_compensation_that_cannot_succeed_goes_to_the_dead_letters(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    state = tmp_path / "state"
    steps = {
        "steps": [
            {"tool": "charge", "label": "first"},
            {"tool": "charge", "label": "norefund-2"},
            {"tool": "charge", "label": "decline"},
        ]
    }
    async with harness.running_worker(client, settings, task_queue, state_dir=state):
        result = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="tool-steps", input=steps, provider="scripted", model="offline-v1"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
    assert result.state == "FAILED"
    failed, done = result.compensations
    assert failed.status == "failed" and failed.error and "refuses refunds" in failed.error.message
    assert done.status == "compensated"  # the saga goes on past a failed step
    attempts = [r for r in read_jsonl(state / "refund_attempts.jsonl") if r["label"] == "norefund-2"]
    assert len(attempts) == 6  # the compensation policy's maximum
    letter = await harness.dead_letters(settings).get(failed.dead_letter_id or "")
    assert letter is not None and letter.kind == "compensation" and letter.error.code == "compensation_failed"
    assert ledger_ops(state) == [("charge", "first"), ("charge", "norefund-2"), ("refund", "first")]


def _start_worker(target: str, task_queue: str, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fakes" / "saga_worker.py"),
            "--target",
            target,
            "--task-queue",
            task_queue,
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in {timeout_s}s")
        await asyncio.sleep(0.2)


async def test_compensation_survives_the_worker_being_killed_mid_saga(
    devserver_env: WorkflowEnvironment,
    devserver_target_host: str,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(devserver_env.client, settings)
    state = tmp_path / "state"
    state.mkdir(parents=True)
    (state / "hang_on_refund").write_text("")  # the first refund records itself, then hangs
    log = tmp_path / "workers.log"
    first = _start_worker(devserver_target_host, task_queue, tmp_path, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        handle = await client.start_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="tool-steps", input=CHARGES, provider="scripted", model="offline-v1"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
        await _wait_for(state / "refund_hanging", 90)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = _start_worker(devserver_target_host, task_queue, tmp_path, log)
        result = await asyncio.wait_for(handle.result(), 120)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    assert result.state == "FAILED"
    assert ledger_ops(state) == [
        ("charge", "first"),
        ("charge", "second"),
        ("refund", "second"),
        ("refund", "first"),
    ]
    attempts = [r["label"] for r in read_jsonl(state / "refund_attempts.jsonl")]
    assert attempts == [
        "second",
        "second",
        "first",
    ]  # killed during the first refund, retried once, not repeated
    assert [c.status for c in result.compensations] == ["compensated", "compensated"]
