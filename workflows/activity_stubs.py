"""Typed stubs for every activity the workflows call, with the retry policy of its kind.

Workflow code never imports `activities/` (that is where the I/O lives); it calls these.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from contracts.batch import LoadItemsInput, StashItemsInput, StashItemsResult
from contracts.cost import RunLedgerInput
from contracts.dead_letters import DeadLetterInput
from contracts.model import ModelTurnInput, ModelTurnResult
from contracts.run import (
    ReportCard,
    ReviewAndCloseInput,
    ReviewAndCloseResult,
    ReviewInput,
    ValidateInput,
    ValidateResult,
)
from contracts.saga import CompensateInput
from contracts.tools import ToolCallInput, ToolResult
from policies.retries import policy_for


class ActivityNames:
    """Stable names: part of the public contract, pinned by a test."""

    VALIDATE_REQUEST = "validate_request"
    MODEL_TURN = "model_turn"
    CALL_TOOL = "call_tool"
    REVIEW_OUTPUT = "review_output"
    REVIEW_AND_CLOSE = "review_and_close"
    RECORD_RUN_END = "record_run_end"
    COMPENSATE_TOOL = "compensate_tool"
    RECORD_DEAD_LETTER = "record_dead_letter"
    LOAD_BATCH_ITEMS = "load_batch_items"
    STASH_BATCH_ITEMS = "stash_batch_items"


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


#: Runs recorded before validation and review became local activities replay the old way.
LOCAL_CHECKS_PATCH = "checks-as-local-activities"


def _local_options(kind: str) -> dict[str, Any]:
    options = _options(kind)
    options.pop("heartbeat_timeout")
    return options


async def validate_request(inp: ValidateInput, *, local: bool = False) -> ValidateResult:
    """VALIDATING's activity. Local: short CPU work on the workflow's own worker, no task-queue
    round trip. `local` says so outright (runs whose own patch implies it: one marker, not two)."""
    if not (local or workflow.patched(LOCAL_CHECKS_PATCH)):
        return await workflow.execute_activity(
            ActivityNames.VALIDATE_REQUEST, inp, result_type=ValidateResult, **_options("check")
        )
    return await workflow.execute_local_activity(
        ActivityNames.VALIDATE_REQUEST, inp, result_type=ValidateResult, **_local_options("check")
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


async def review_output(inp: ReviewInput, *, local: bool = False) -> ReportCard:
    """REVIEWING's report card. Local, like validation: the checks are short CPU work (the judge,
    a model call, is a normal activity)."""
    if not (local or workflow.patched(LOCAL_CHECKS_PATCH)):
        return await workflow.execute_activity(
            ActivityNames.REVIEW_OUTPUT, inp, result_type=ReportCard, **_options("check")
        )
    return await workflow.execute_local_activity(
        ActivityNames.REVIEW_OUTPUT, inp, result_type=ReportCard, **_local_options("check")
    )


async def review_and_close(inp: ReviewAndCloseInput) -> ReviewAndCloseResult:
    """REVIEWING's report card and, when it passes, the run's end in the ledger: one local
    activity where a run that passes review used to make two (`review_output`, `record_run_end`)."""
    return await workflow.execute_local_activity(
        ActivityNames.REVIEW_AND_CLOSE, inp, result_type=ReviewAndCloseResult, **_local_options("check")
    )


async def compensate_tool(inp: CompensateInput) -> ToolResult:
    """Undo one completed side effect (a saga step), with the compensation retry policy."""
    return await workflow.execute_activity(
        ActivityNames.COMPENSATE_TOOL, inp, result_type=ToolResult, **_options("compensation")
    )


async def record_dead_letter(inp: DeadLetterInput) -> str:
    """Write a dead letter; returns its id."""
    return await workflow.execute_activity(
        ActivityNames.RECORD_DEAD_LETTER, inp, result_type=str, **_options("store")
    )


async def load_batch_items(inp: LoadItemsInput) -> list[Any]:
    """One page of a factory line's stored items."""
    return await workflow.execute_activity(
        ActivityNames.LOAD_BATCH_ITEMS, inp, result_type=list[Any], **_options("store")
    )


async def stash_batch_items(inp: StashItemsInput) -> StashItemsResult:
    """Move an inline item list into the artifact store (so continue-as-new carries only a reference)."""
    return await workflow.execute_activity(
        ActivityNames.STASH_BATCH_ITEMS, inp, result_type=StashItemsResult, **_options("store")
    )


async def record_run_end(inp: RunLedgerInput, *, local: bool = True) -> None:
    """The run's one ledger write of its own, at the end (other rows ride on its activities).
    Local: the outcome is known, so no workflow task of its own is worth a server round trip
    (runs recorded before that replay with `local=False`)."""
    if local:
        await workflow.execute_local_activity(ActivityNames.RECORD_RUN_END, inp, **_local_options("check"))
        return
    await workflow.execute_activity(ActivityNames.RECORD_RUN_END, inp, **_options("check"))
