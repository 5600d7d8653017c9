"""Dead letters and re-drive: a run that fails in EXECUTING is re-driven from its checkpoint."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.run import RunRequest, RunResult
from starter import redrive
from tests.fakes import harness
from tests.fakes.steps import read_jsonl

STEPS = {
    "steps": [
        {"tool": "bump", "label": "a"},
        {"tool": "bump", "label": "b"},
        {"tool": "bump", "label": "c"},
        {"tool": "bump", "label": "d", "fail": True},
    ]
}


async def test_redrive_resumes_after_three_completed_steps_without_repeating_them(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    store = harness.dead_letters(settings)
    effects = settings.data_dir / "state" / "effects.jsonl"
    async with harness.running_worker(client, settings, task_queue) as (_, provider):
        failed = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="tool-steps", input=STEPS, provider="scripted", model="offline-v1"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
        assert failed.state == "FAILED" and failed.error and failed.error.code == "task_failed", failed.error
        assert failed.states_visited[-2:] == ["EXECUTING", "FAILED"]
        letter = await store.get(failed.dead_letter_id or "")
        assert letter is not None
        assert letter.failed_state == "EXECUTING" and letter.attempts == 1 and letter.kind == "run"
        assert [r.task_id for r in letter.last_checkpoint.task_results] == ["s1", "s2", "s3"]
        assert letter.last_checkpoint.request["input"] == STEPS
        calls_before = len(provider.requests)

        handle = await redrive(client, store, letter.id, task_queue=task_queue)
        result = await handle.result()

    assert result.state == "COMPLETE", result.error
    assert handle.id == f"{workflow_id}-redrive-2"
    redrive_turns = provider.requests[calls_before:]
    # no planning and no turns for the three completed steps: only s4 (tool call + submit) and compose
    assert [r.step_kind for r in redrive_turns] == ["execute", "execute", "compose"]
    assert {r.step_id.split("/")[0] for r in redrive_turns if r.step_kind == "execute"} == {"s4"}
    counts = Counter(e["label"] for e in read_jsonl(effects))
    assert counts == {"a": 1, "b": 1, "c": 1, "d": 2}  # d ran in the failed run and again in the re-drive
    marked = await store.get(letter.id)
    assert marked is not None and marked.redriven_by == handle.id


async def test_rejected_at_validating_leaves_a_dead_letter_but_intake_errors_do_not(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    async with harness.running_worker(client, settings, task_queue):
        invalid = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="tool-steps", input={"steps": []}, provider="scripted", model="offline-v1"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
        malformed = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(blueprint="tool-steps", input_json="{nope", provider="scripted", model="offline-v1"),
            id=workflow_id + "-intake",
            task_queue=task_queue,
            result_type=RunResult,
        )
    assert invalid.state == "REJECTED" and invalid.dead_letter_id is not None
    letter = await harness.dead_letters(settings).get(invalid.dead_letter_id)
    assert letter is not None and letter.failed_state == "VALIDATING" and letter.error.code == "invalid_input"
    assert malformed.state == "REJECTED" and malformed.dead_letter_id is None  # the caller got the error
