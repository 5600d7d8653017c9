"""Recorded histories (tests/histories/, made by record.py) replay against the current workflow code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from contracts.run import RUN_REVISION, RunRequest, RunResult
from tests.support import local_activity_names
from worker import WORKFLOWS
from workflows.sandbox import sandbox_runner

HISTORIES = Path(__file__).resolve().parent / "histories"
#: file name → the workflow id it was recorded under (record.py)
RECORDED = {
    "agent_run_revise": "history-revise",
    "agent_run_stamped": "history-stamped",
    "agent_run_saga": "history-saga",
    "factory_line": "history-batch",
}


def load(name: str) -> WorkflowHistory:
    text = (HISTORIES / f"{name}.json").read_text()
    return WorkflowHistory.from_json(RECORDED[name], json.loads(text))


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_history_replays_against_the_current_code(name: str) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=sandbox_runner()
    )
    result = await replayer.replay_workflow(load(name), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name} no longer replays: {result.replay_failure}"


@workflow.defn(name="AgentRunWorkflow")
class ReorderedAgentRun:
    """A 'new version' that does something else first: replay must say it is not deterministic."""

    @workflow.run
    async def run(self, request: RunRequest) -> RunResult:
        await workflow.sleep(1)
        raise AssertionError("unreachable in replay")


async def test_replay_reports_non_determinism_of_an_incompatible_change() -> None:
    # Unsandboxed: this test module imports the worker, which the sandbox would refuse to re-import.
    replayer = Replayer(
        workflows=[ReorderedAgentRun],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(load("agent_run_revise"), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondetermin" in str(result.replay_failure).lower()


def test_recorded_histories_cover_a_revision_a_saga_and_a_batch() -> None:
    # The revise run as the engine's starters stamp it: the failed review, then the passing one
    # that recorded the run's end.
    stamped = load("agent_run_stamped")
    started = stamped.events[0].workflow_execution_started_event_attributes
    assert json.loads(started.input.payloads[0].data)["revision"] == RUN_REVISION
    assert local_activity_names(stamped) == ["validate_request", "review_and_close", "review_and_close"]
    revise = (HISTORIES / "agent_run_revise.json").read_text()
    assert '"IlJFVklTSU5HIg=="' in revise  # the FactoryState search attribute set to "REVISING"
    batch = json.loads((HISTORIES / "factory_line.json").read_text())
    kinds = [e["eventType"] for e in batch["events"]]
    assert kinds.count("EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED") == 4
    saga = (HISTORIES / "agent_run_saga.json").read_text()
    assert "compensate_tool" in saga and "record_dead_letter" in saga
