"""Typed stubs for every activity the workflows call, with the retry policy of its kind.

Workflow code never imports `activities/` (that is where the I/O lives); it calls these.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from contracts.cost import RunLedgerInput
from contracts.model import ModelTurnInput, ModelTurnResult
from contracts.run import ReportCard, ReviewInput, ValidateInput, ValidateResult
from contracts.tools import ToolCallInput, ToolResult
from policies.retries import policy_for


class ActivityNames:
    """Stable names: part of the public contract, pinned by a test."""

    VALIDATE_REQUEST = "validate_request"
    MODEL_TURN = "model_turn"
    CALL_TOOL = "call_tool"
    REVIEW_OUTPUT = "review_output"
    RECORD_RUN_END = "record_run_end"


def _options(kind: str, max_attempts: int | None = None) -> dict[str, Any]:
    p = policy_for(kind)
    return {
        "start_to_close_timeout": timedelta(seconds=p.start_to_close_s),
        "heartbeat_timeout": timedelta(seconds=p.heartbeat_s) if p.heartbeat_s else None,
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=p.initial_interval_s),
            backoff_coefficient=p.backoff,
            maximum_interval=timedelta(seconds=p.max_interval_s),
            maximum_attempts=min(p.max_attempts, max_attempts) if max_attempts else p.max_attempts,
            non_retryable_error_types=list(p.non_retryable_types),
        ),
    }


async def validate_request(inp: ValidateInput) -> ValidateResult:
    """VALIDATING's activity."""
    return await workflow.execute_activity(
        ActivityNames.VALIDATE_REQUEST, inp, result_type=ValidateResult, **_options("check")
    )


async def model_turn(
    inp: ModelTurnInput,
    task_queue: str | None = None,
    schedule_to_start_s: float | None = None,
    *,
    max_attempts: int | None = None,
    gpu: bool | None = None,
) -> ModelTurnResult:
    """One model call (on `task_queue` when the route names one, e.g. the GPU queue); with
    `schedule_to_start_s`, it fails with a schedule-to-start timeout when no worker takes it in time.
    GPU turns (`gpu`, or any turn given a queue when `gpu` is unsaid) use the GPU retry policy;
    `max_attempts` lowers the retry bound so every attempt fits the run's budget."""
    options = _options(
        "gpu_model" if (gpu if gpu is not None else bool(task_queue)) else "model", max_attempts
    )
    if schedule_to_start_s:
        options["schedule_to_start_timeout"] = timedelta(seconds=schedule_to_start_s)
    return await workflow.execute_activity(
        ActivityNames.MODEL_TURN, inp, result_type=ModelTurnResult, task_queue=task_queue, **options
    )


async def call_tool(inp: ToolCallInput) -> ToolResult:
    """One tool call."""
    return await workflow.execute_activity(
        ActivityNames.CALL_TOOL, inp, result_type=ToolResult, **_options("tool")
    )


async def review_output(inp: ReviewInput) -> ReportCard:
    """REVIEWING's report card."""
    return await workflow.execute_activity(
        ActivityNames.REVIEW_OUTPUT, inp, result_type=ReportCard, **_options("check")
    )


async def record_run_end(inp: RunLedgerInput) -> None:
    """The run's one ledger write of its own, at the end (other rows ride on its activities)."""
    await workflow.execute_activity(ActivityNames.RECORD_RUN_END, inp, **_options("check"))
