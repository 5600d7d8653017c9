"""SIGKILL a real worker process mid-EXECUTING on the real dev server; a new worker finishes the
run from the last completed step, and no completed side effect runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.tools.journal import Journal, journal_dir
from contracts.run import RunResult
from policies.naming import workspace_name
from starter import make_request, start_run
from tests.fakes.crash_plugin import STAMP_TOOLS
from tests.support import local_activity_names
from workflows.search_attributes import FACTORY_STATE

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["alpha", "beta", "gamma"]


def spawn_worker(target_host: str, task_queue: str, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": target_host,
        "TASK_QUEUE": task_queue,
        "DATA_DIR": str(data_dir),
        "MODEL_PROVIDER": "offline",
        "EXTENSION_MODULES": json.dumps(["tests.fakes.crash_plugin"]),
        "CRASH_PLUGIN_STEP_DELAY_S": "0.7",
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def done_records(done_dir: Path) -> list[Path]:
    """Completed keys: `<hash>.json` files (a `.…tmp` beside them is a record still being written)."""
    if not done_dir.exists():
        return []
    return [p for p in done_dir.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]


async def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_sigkilled_worker_resumes_at_the_last_completed_step(
    devserver_env: WorkflowEnvironment,
    devserver_target_host: str,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    client = devserver_env.client
    log = tmp_path / "worker.log"
    journal = Journal(journal_dir(tmp_path / "workspaces", workspace_name(workflow_id)))
    done_dir = journal.directory / "done"
    worker = spawn_worker(devserver_target_host, task_queue, tmp_path, log)
    try:
        handle = await start_run(
            client,
            make_request("slow-stamps", input_value={"sections": SECTIONS}),
            task_queue=task_queue,
            workflow_id=workflow_id,
        )

        async def some_steps_done() -> bool:
            return len(done_records(done_dir)) >= 2

        await wait_for(some_steps_done, 60, "two completed side effects")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        done_before_kill = {json.loads(p.read_text())["key"] for p in done_records(done_dir)}
        # No worker is alive to answer a query: the server's search attribute tells the state.
        description = await handle.describe()
        assert description.typed_search_attributes.get(FACTORY_STATE) == "EXECUTING"
        assert len(done_before_kill) < len(SECTIONS) * len(STAMP_TOOLS), (
            "the kill came too late to test anything"
        )

        worker = spawn_worker(devserver_target_host, task_queue, tmp_path, log)
        result: RunResult = await handle.result(rpc_timeout=None)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)

    assert result.state == "COMPLETE", (result.error, log.read_text()[-3000:])
    assert result.states_visited == ["INTAKE", "VALIDATING", "PLANNING", "EXECUTING", "REVIEWING", "COMPLETE"]
    counts = journal.executions()
    assert len(counts) == len(SECTIONS) * len(STAMP_TOOLS)  # every step ran ...
    for key in done_before_kill:
        assert counts[key] == 1, f"completed step {key} ran again after the crash"  # ... completed ones once
    # Steps in flight at the kill may be entered again (the documented at-least-once window), but
    # their effect is recorded once: one done record per key.
    assert len(done_records(done_dir)) == len(counts)
    assert all(n <= 2 for n in counts.values())

    # The workflow did not start over: each model turn was scheduled once in history.
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    plan_turns = [a for a in scheduled if a.activity_type.name == "model_turn"]
    # Validation and the review (which, passing, records the run's end) are local activities:
    # one marker each, none repeated after the crash.
    assert local_activity_names(history) == ["validate_request", "review_and_close"]
    tool_calls = [a for a in scheduled if a.activity_type.name == "call_tool"]
    assert len(tool_calls) == len(SECTIONS) * len(STAMP_TOOLS)
    assert len(plan_turns) == len(SECTIONS) * (len(STAMP_TOOLS) + 1) + 2  # task turns + plan + compose
