"""Record the histories the replay tests replay: run them on a fresh local dev server and save JSON.

    PYTHONPATH=. python tests/histories/record.py [NAME ...]   # all, or only the named ones

Re-record only on purpose (a deliberate, versioned change to workflow code): the point of the
replay tests is that these files keep replaying against the current code. A new revision of the
run's steps gets a new scenario recorded beside the old ones, which keep guarding runs in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contracts.batch import BatchRequest, BatchSummary
from contracts.model import ModelTurnInput, ToolCall
from contracts.run import RUN_REVISION, RunRequest, RunResult
from policies.protocol import SUBMIT_OUTPUT
from tests.fakes import harness, steps
from tests.fakes.scripted import call
from workflows.search_attributes import ALL_KEYS

HERE = Path(__file__).resolve().parent
TASK_QUEUE = "record-histories"


def _script(request: ModelTurnInput) -> list[ToolCall] | None:
    """Like the steps script, but the first compose of the revise run misses a field (one revision)."""
    if (
        request.step_kind == "compose"
        and request.run_id in ("history-revise", "history-stamped")
        and request.step_id == "compose/1/turn-1"
    ):
        return [call(SUBMIT_OUTPUT, {"output": {"summary": ""}})]
    return steps.steps_script(request)


def _binary() -> str:
    found = Path(sys.executable).parent / "temporal"
    return str(found) if found.exists() else (shutil.which("temporal") or "temporal")


def _revise_request(revision: int = 0) -> RunRequest:
    return RunRequest(
        blueprint="tool-steps",
        version="1.0.1",
        provider="scripted",
        model="offline-v1",
        input={"steps": [{"tool": "bump", "label": "a"}, {"tool": "charge", "label": "b"}]},
        revision=revision,
    )


async def record(only: set[str] | None = None) -> dict[str, Any]:
    """Run the recorded scenarios (or only the named ones) and write one JSON history each."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary(),
        search_attributes=list(ALL_KEYS),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_log_level="warn",
    )
    written: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = harness.settings_for(Path(tmp))
            client = harness.codec_client(env.client, settings)
            strict = dataclasses.replace(steps.TOOL_STEPS, version="1.0.1", checks=("schema", "completeness"))
            async with harness.running_worker(
                client, settings, TASK_QUEUE, script=_script, extra_blueprints=[strict]
            ):
                runs = {
                    "agent_run_revise": await client.start_workflow(
                        "AgentRunWorkflow",
                        _revise_request(),
                        id="history-revise",
                        task_queue=TASK_QUEUE,
                        result_type=RunResult,
                    ),
                    # The same run as the engine's starters stamp it (RUN_REVISION's steps).
                    "agent_run_stamped": await client.start_workflow(
                        "AgentRunWorkflow",
                        _revise_request(RUN_REVISION),
                        id="history-stamped",
                        task_queue=TASK_QUEUE,
                        result_type=RunResult,
                    ),
                    "agent_run_saga": await client.start_workflow(
                        "AgentRunWorkflow",
                        RunRequest(
                            blueprint="tool-steps",
                            provider="scripted",
                            model="offline-v1",
                            input={
                                "steps": [
                                    {"tool": "charge", "label": "a"},
                                    {"tool": "charge", "label": "decline"},
                                ]
                            },
                        ),
                        id="history-saga",
                        task_queue=TASK_QUEUE,
                        result_type=RunResult,
                    ),
                    "factory_line": await client.start_workflow(
                        "FactoryLineWorkflow",
                        BatchRequest(
                            blueprint="tool-steps",
                            provider="scripted",
                            model="offline-v1",
                            concurrency=2,
                            items_per_run=50,
                            items=[{"steps": [{"tool": "bump", "label": f"i{i}"}]} for i in range(4)],
                        ),
                        id="history-batch",
                        task_queue=TASK_QUEUE,
                        result_type=BatchSummary,
                    ),
                }
                for name, handle in runs.items():
                    outcome = await handle.result()
                    if only and name not in only:
                        continue
                    history = await handle.fetch_history()
                    (HERE / f"{name}.json").write_text(
                        json.dumps(json.loads(history.to_json()), indent=1) + "\n"
                    )
                    written[name] = {
                        "workflow_id": handle.id,
                        "events": len(history.events),
                        "state": getattr(outcome, "state", None),
                    }
    finally:
        await env.shutdown()
    return written


if __name__ == "__main__":
    print(json.dumps(asyncio.run(record(set(sys.argv[1:]) or None)), indent=1))
