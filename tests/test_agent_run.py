"""AgentRunWorkflow end to end on the time-skipping server (or the dev server with --devserver)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.tools.journal import executions
from blueprints.catalog import default_catalog
from contracts.model import ModelTurnInput, ToolCall
from contracts.run import RUN_REVISION, RunRequest, RunResult, RunStatus
from policies.limits import MAX_INPUT_BYTES
from policies.naming import workspace_name
from starter import make_request, result_json, send_decision, start_run
from tests.fakes.scripted import ScriptedProvider, call
from tests.support import (
    isolated_settings,
    local_activity_names,
    published_states,
    run_to_end,
    running_worker,
)
from workflows.search_attributes import FACTORY_STATE

pytestmark = pytest.mark.e2e

HAPPY_PATH = ["INTAKE", "VALIDATING", "PLANNING", "EXECUTING", "REVIEWING", "COMPLETE"]


def example(name: str) -> dict:
    blueprint, _ = default_catalog().resolve(name)
    assert blueprint is not None
    return blueprint.example_input


async def test_every_example_blueprint_completes_on_the_offline_model(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    settings = isolated_settings(tmp_path)
    async with running_worker(env.client, settings, task_queue):
        for blueprint in default_catalog().all():
            result = await run_to_end(
                env.client, make_request(blueprint.name, input_value=blueprint.example_input), task_queue
            )
            assert result.state == "COMPLETE", result.error
            assert result.states_visited == HAPPY_PATH
            assert result.model is not None and result.model.offline is True
            blueprint.output_model.model_validate(result.output)
            assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
            assert result.report_cards and result.report_cards[-1].passed


async def test_the_file_workspace_blueprint_writes_its_notes_once_each(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str
) -> None:
    settings = isolated_settings(tmp_path)
    async with running_worker(env.client, settings, task_queue):
        result = await run_to_end(
            env.client,
            make_request("workspace-notes", input_value=example("workspace-notes")),
            task_queue,
            workflow_id,
        )
    assert result.state == "COMPLETE", result.error
    workspace = settings.resolved_workspace_root() / workspace_name(workflow_id)
    written = sorted(p.name for p in workspace.iterdir())
    assert written == ["overview.md", "retries.md", "signals.md"]
    assert sorted(f["path"] for f in result.output["files"]) == written
    assert "Durable execution" in (workspace / "retries.md").read_text()
    counts = executions(settings.resolved_workspace_root(), workspace_name(workflow_id))
    assert sorted(counts.values()) == [1, 1, 1]


async def test_the_status_query_shows_the_record_and_the_resolved_blueprint(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str
) -> None:
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue):
        await run_to_end(
            env.client,
            make_request("algorithm-explainer", input_value=example("algorithm-explainer")),
            task_queue,
            workflow_id,
        )
        status = await env.client.get_workflow_handle(workflow_id).query("status", result_type=RunStatus)
    assert status.state == "COMPLETE"
    assert [t["target"] for t in status.transitions] == HAPPY_PATH
    assert status.blueprint is not None and status.blueprint.ref == "algorithm-explainer@1.0.0"
    assert len(status.blueprint.digest) == 64
    assert status.plan is not None and status.task_results


async def test_bad_input_is_rejected_with_a_structured_error_and_no_failed_workflow_task(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    cases = {
        "unknown_blueprint": make_request("no-such-blueprint", input_value={"x": 1}),
        "unknown_version": make_request(
            "algorithm-explainer", input_value=example("algorithm-explainer"), version="9.9"
        ),
        "invalid_input": make_request("algorithm-explainer", input_value={"title": 7}),
        "malformed_json": make_request("algorithm-explainer", input_text='{"title": "Two Sum",'),
        "input_too_large": make_request(
            "algorithm-explainer", input_value={"title": "x" * (MAX_INPUT_BYTES + 1)}
        ),
    }
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue):
        for code, request in cases.items():
            handle = await env.client.start_workflow(
                "AgentRunWorkflow",
                request,
                id=f"{task_queue}-{code}",
                task_queue=task_queue,
                result_type=RunResult,
            )
            result = await handle.result()
            payload = result_json(result)
            assert payload["state"] == "REJECTED", code
            assert payload["error"]["code"] == code
            assert payload["error"]["message"]
            history: WorkflowHistory = await handle.fetch_history()
            failed_tasks = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
            assert failed_tasks == [], code


async def test_an_oversized_input_sent_directly_is_rejected_at_intake(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    request = RunRequest(
        blueprint="algorithm-explainer", input_json=json.dumps({"title": "y" * (MAX_INPUT_BYTES + 10)})
    )
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue):
        result = await run_to_end(env.client, request, task_queue)
    assert result.states_visited == ["INTAKE", "REJECTED"]
    assert result.error is not None and result.error.code == "input_too_large"


async def test_malformed_tool_arguments_get_a_structured_error_and_the_loop_goes_on(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    def script(req: ModelTurnInput) -> list[ToolCall] | None:
        if req.step_kind != "execute":
            return None
        turn = sum(1 for m in req.messages if m.role == "assistant")
        if turn == 0:
            return [
                ToolCall(
                    id="bad-1", name="write_file", arguments={}, arguments_error="Expecting ',' delimiter"
                )
            ]
        if turn == 1:
            return [call("write_file", {"content": "no path given"}, call_id="bad-2")]
        return None  # the offline model finishes the task

    model = ScriptedProvider(script)
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue, providers=[model]):
        request = make_request(
            "workspace-notes",
            input_value={"topic": "errors", "sections": ["one"]},
            provider="scripted",
            model="claude-haiku-4-5",  # routed models must be priced (cost governance)
        )
        result = await run_to_end(env.client, request, task_queue)
    assert result.state == "COMPLETE", result.error
    replies = [r for req in model.turns("execute") for m in req.messages for r in m.tool_results]
    by_call = {r.tool_call_id: json.loads(r.content) for r in replies}
    assert by_call["bad-1"]["status"] == "error"
    assert by_call["bad-1"]["error"]["code"] == "malformed_arguments"
    assert by_call["bad-2"]["status"] == "error"
    assert by_call["bad-2"]["error"]["code"] == "invalid_arguments"


async def test_a_model_that_never_finishes_is_stopped_by_max_turns(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    def script(req: ModelTurnInput) -> list[ToolCall] | None:
        if req.step_kind == "execute":
            return [call("list_files", {}, call_id=f"loop-{len(req.messages)}")]
        return None

    model = ScriptedProvider(script)
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue, providers=[model]):
        request = make_request(
            "workspace-notes",
            input_value={"topic": "loops", "sections": ["one"]},
            provider="scripted",
            model="claude-haiku-4-5",  # routed models must be priced
        )
        result = await run_to_end(env.client, request, task_queue)
    assert result.state == "FAILED"
    assert result.error is not None and result.error.code == "max_turns_exceeded"
    assert len(model.turns("execute")) == default_catalog().resolve("workspace-notes")[0].max_turns


async def test_an_invalid_plan_is_retried_three_times_then_escalates_and_a_rejection_fails_the_run(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    def script(req: ModelTurnInput) -> list[ToolCall] | None:
        if req.step_kind == "plan":
            bad_task = {"id": "t1", "instructions": "delete everything", "allowed_tools": ["rm_rf"]}
            return [call("submit_plan", {"tasks": [bad_task]}, call_id=f"plan-{len(req.messages)}")]
        return None

    model = ScriptedProvider(script)
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue, providers=[model]):
        request = make_request(
            "algorithm-explainer",
            input_value=example("algorithm-explainer"),
            provider="scripted",
            model="claude-haiku-4-5",  # routed models must be priced
        )
        handle = await start_run(env.client, request, task_queue=task_queue)
        for _ in range(600):  # planning fails 3 times, then the run waits for a person
            status = await handle.query("status", result_type=RunStatus)
            if status.escalation is not None:
                break
            await asyncio.sleep(0.05)
        assert status.escalation is not None and status.escalation.kind == "planning_failed"
        assert status.escalation.evidence["attempts"] == 3
        await send_decision(env.client, handle.id, "reject", decided_by="tester", comment="no usable plan")
        result = await handle.result()
    assert result.states_visited == ["INTAKE", "VALIDATING", "PLANNING", "AWAITING_HUMAN", "FAILED"]
    assert result.error is not None and result.error.code == "planning_failed"
    plan_turns = model.turns("plan")
    assert len(plan_turns) == 3
    # each retry shows the model why its plan was refused
    feedback = plan_turns[-1].messages[-1].tool_results[0].content
    assert "rm_rf" in feedback and "not allowed" in feedback


async def test_dry_run_short_circuits_every_side_effecting_tool(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str
) -> None:
    settings = isolated_settings(tmp_path)
    async with running_worker(env.client, settings, task_queue):
        request = make_request("workspace-notes", input_value=example("workspace-notes"), dry_run=True)
        result = await run_to_end(env.client, request, task_queue, workflow_id)
        status = await env.client.get_workflow_handle(workflow_id).query("status", result_type=RunStatus)
    assert status.dry_run is True
    workspace = settings.resolved_workspace_root() / workspace_name(workflow_id)
    assert not workspace.exists() or not any(p.suffix == ".md" for p in workspace.iterdir())
    observations = [
        o for r in status.task_results for o in r.result["observations"] if o["tool"] == "write_file"
    ]
    assert observations and all(o["content"]["dry_run"] is True for o in observations)
    assert result.state in {"COMPLETE", "FAILED"}


async def explain(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str, **fields: Any
) -> RunResult:
    """Run the algorithm-explainer example to its end on its own worker."""
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue):
        request = make_request("algorithm-explainer", input_value=example("algorithm-explainer"), **fields)
        return await run_to_end(env.client, request, task_queue, workflow_id)


async def test_factory_state_is_upserted_once_per_workflow_task_with_the_last_state(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str
) -> None:
    result = await explain(env, task_queue, tmp_path, workflow_id)
    assert result.states_visited == HAPPY_PATH
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    states, upserts_per_task, upserts = [], [0], 0
    for event in history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            upserts_per_task.append(0)
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        if event.HasField("upsert_workflow_search_attributes_event_attributes") and "FactoryState" in fields:
            states.append(json.loads(fields["FactoryState"].data))
            upserts_per_task[-1] += 1
            upserts += 1
    # Validation runs inside the first workflow task (a local activity), review and the ledger's
    # end inside the last: the states nobody could observe in between are not written.
    assert states == ["PLANNING", "EXECUTING", "COMPLETE"]
    assert max(upserts_per_task) == 1 and upserts == 3
    final = await env.client.get_workflow_handle(workflow_id).describe()
    assert final.typed_search_attributes  # the attributes the UI filters on are there
    assert {k.name: v for k, v in ((p.key, p.value) for p in final.typed_search_attributes)}[
        "FactoryState"
    ] == "COMPLETE"


async def test_a_notable_run_that_needs_nobody_publishes_its_attributes_once_as_it_ends(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str
) -> None:
    result = await explain(env, task_queue, tmp_path, workflow_id, state_visibility="notable")
    assert result.states_visited == HAPPY_PATH
    handle = env.client.get_workflow_handle(workflow_id)
    published = published_states(await handle.fetch_history())
    # One upsert, in the last workflow task: the end state, with the blueprint, tenant and cost.
    assert [u.get("FactoryState") for u in published] == ["COMPLETE"]
    assert (
        published[0]["FactoryBlueprint"] == "algorithm-explainer"
        and published[0]["FactoryTenant"] == "default"
    )
    assert "FactoryCostUsd" in published[0]
    final = await handle.describe()
    assert final.typed_search_attributes.get(FACTORY_STATE) == "COMPLETE"


def _patch_ids_and_change_version_upserts(history: WorkflowHistory) -> tuple[list[str], int]:
    patches, upserts = [], 0
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and marker.marker_name == "core_patch":
            patches.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        if event.HasField("upsert_workflow_search_attributes_event_attributes") and (
            "TemporalChangeVersion" in fields
        ):
            upserts += 1
    return patches, upserts


async def test_a_stamped_run_takes_the_lean_path_without_a_patch_marker_and_an_unstamped_one_by_the_patch(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, workflow_id: str
) -> None:
    request = make_request("algorithm-explainer", input_value=example("algorithm-explainer"))
    assert request.revision == 0
    async with running_worker(env.client, isolated_settings(tmp_path), task_queue):
        stamped = await run_to_end(env.client, request, task_queue, workflow_id)  # start_run stamps it
        unstamped = await env.client.execute_workflow(
            "AgentRunWorkflow",
            request,
            id=f"{workflow_id}-unstamped",
            task_queue=task_queue,
            result_type=RunResult,
        )
        # Stamped by the revision before ends were recorded with the review (a run in flight
        # across the deploy): it keeps that revision's steps.
        earlier = await env.client.execute_workflow(
            "AgentRunWorkflow",
            request.model_copy(update={"revision": 1}),
            id=f"{workflow_id}-rev1",
            task_queue=task_queue,
            result_type=RunResult,
        )
    assert stamped.state == unstamped.state == earlier.state == "COMPLETE"
    histories = {}
    for wid in (workflow_id, f"{workflow_id}-unstamped", f"{workflow_id}-rev1"):
        histories[wid] = await env.client.get_workflow_handle(wid).fetch_history()
    # All on the lean path; the stamped run also records its end with its passing review.
    assert local_activity_names(histories[workflow_id]) == ["validate_request", "review_and_close"]
    for wid in (f"{workflow_id}-unstamped", f"{workflow_id}-rev1"):
        assert local_activity_names(histories[wid]) == ["validate_request", "review_output", "record_run_end"]
    assert _patch_ids_and_change_version_upserts(histories[f"{workflow_id}-rev1"]) == ([], 0)
    started = histories[workflow_id].events[0].workflow_execution_started_event_attributes
    assert json.loads(started.input.payloads[0].data)["revision"] == RUN_REVISION
    assert _patch_ids_and_change_version_upserts(histories[workflow_id]) == ([], 0)
    assert _patch_ids_and_change_version_upserts(histories[f"{workflow_id}-unstamped"]) == (
        ["lean-run-bookkeeping"],
        1,
    )
