"""`FactoryLineWorkflow`: one blueprint over many items, each item a child `AgentRunWorkflow`.

Backpressure is a concurrency cap on child runs in flight. Items live in the artifact store and
are read a page at a time, so a 10,000-item list never enters history. Every `items_per_run`
items the workflow drains its window and continues as new, carrying only counters and failures:
history stays far under its limits. Child ids are derived from the batch id and the item index,
so a crash of every worker loses nothing (history is durable) and a finished item is never run
twice (a duplicate id is refused).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

from contracts.batch import (
    BatchCarry,
    BatchFailure,
    BatchProgress,
    BatchRequest,
    BatchSummary,
    ChildOutcome,
    LoadItemsInput,
    StashItemsInput,
)
from contracts.run import RUN_REVISION, RunRequest
from workflows import activity_stubs as act

#: Continue as new well before Temporal's suggestion (history events of one workflow run).
MAX_HISTORY_EVENTS = 8_000
CHILD_WORKFLOW = "AgentRunWorkflow"


def item_workflow_id(batch_id: str, index: int) -> str:
    """The deterministic workflow id of item `index`'s child run."""
    return f"{batch_id}-item-{index:06d}"


# Outside the sandbox: see UNSANDBOXED_WORKFLOW_MODULES in workflows/sandbox.py.
@workflow.defn(name="FactoryLineWorkflow", sandboxed=False)
class FactoryLineWorkflow:
    """Runs each item through the blueprint under a concurrency cap; answers `progress`; returns a summary."""

    def __init__(self) -> None:
        self._request: BatchRequest | None = None
        self._carry = BatchCarry()
        self._total = 0
        self._in_flight = 0

    @workflow.query(name="progress")
    def progress(self) -> BatchProgress:
        """Done, failed, in flight, cost so far and throughput (items finished per second)."""
        carry = self._carry
        elapsed = self._elapsed_s()
        done = carry.succeeded + carry.failed
        return BatchProgress(
            batch_id=workflow.info().workflow_id,
            total=self._total,
            done=done,
            succeeded=carry.succeeded,
            failed=carry.failed,
            in_flight=self._in_flight,
            cost_usd=carry.cost_usd,
            throughput_per_s=round(done / elapsed, 3) if elapsed > 0 else 0.0,
            elapsed_s=round(elapsed, 3),
            continued_as_new=carry.continued_as_new,
        )

    @workflow.run
    async def run(self, request: BatchRequest) -> BatchSummary:
        """Process the items from `carry.next_index` on; continue as new or return the summary."""
        self._carry = request.carry.model_copy(deep=True)
        if self._carry.started_at is None:
            self._carry.started_at = workflow.now()
        if request.items_ref is None:
            # Move the inline list to the artifact store once: later runs carry only its reference.
            stashed = await act.stash_batch_items(StashItemsInput(items=request.items or []))
            request = request.model_copy(
                update={"items": None, "items_ref": stashed.ref, "total": stashed.total}
            )
        self._request = request
        self._total = request.total or 0
        start = self._carry.next_index
        end = min(self._total, start + max(request.items_per_run, 1))
        items = await self._load(start, end)
        launched = await self._run_window(start, items)
        self._carry.next_index = start + launched
        if self._carry.next_index < self._total:
            self._carry.continued_as_new += 1
            workflow.continue_as_new(request.model_copy(update={"carry": self._carry}))
        return self._summary()

    async def _load(self, start: int, end: int) -> list[Any]:
        assert self._request is not None and self._request.items_ref is not None
        items: list[Any] = []
        for offset in range(start, end, max(self._request.page_size, 1)):
            limit = min(self._request.page_size, end - offset)
            items += await act.load_batch_items(
                LoadItemsInput(ref=self._request.items_ref, offset=offset, limit=limit)
            )
        return items

    async def _run_window(self, start: int, items: list[Any]) -> int:
        """Run items under the cap; stop launching early if history grows large. Returns how many launched."""
        assert self._request is not None
        slots = asyncio.Semaphore(max(self._request.concurrency, 1))
        running: list[asyncio.Task[None]] = []
        launched = 0
        for offset, item in enumerate(items):
            await slots.acquire()
            info = workflow.info()
            if launched and (
                info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY_EVENTS
            ):
                slots.release()
                break
            running.append(asyncio.create_task(self._run_item(start + offset, item, slots)))
            launched += 1
        await asyncio.gather(*running)
        return launched

    async def _run_item(self, index: int, item: Any, slots: asyncio.Semaphore) -> None:
        assert self._request is not None
        req = self._request
        child_id = item_workflow_id(workflow.info().workflow_id, index)
        self._in_flight += 1
        try:
            result = await workflow.execute_child_workflow(
                CHILD_WORKFLOW,
                RunRequest(
                    blueprint=req.blueprint,
                    version=req.version,
                    input=item,
                    provider=req.provider,
                    model=req.model,
                    tenant=req.tenant,
                    dry_run=req.dry_run,
                    revision=RUN_REVISION,
                    state_visibility=req.state_visibility,
                ),
                id=child_id,
                task_queue=req.task_queue or workflow.info().task_queue,
                result_type=ChildOutcome,
                # A finished item is never run again, whatever happens to this workflow.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            self._count(index, child_id, result)
        except WorkflowAlreadyStartedError:
            self._fail(
                index,
                child_id,
                "UNKNOWN",
                "already_started",
                "a run with this item's id already exists (a reset batch?): not run again",
            )
        except ChildWorkflowError as exc:
            self._fail(index, child_id, "FAILED", "child_failed", str(exc.cause or exc))
        finally:
            self._in_flight -= 1
            slots.release()

    def _count(self, index: int, child_id: str, result: ChildOutcome) -> None:
        self._carry.cost_usd = round(self._carry.cost_usd + result.cost_usd, 8)
        if result.state == "COMPLETE":
            self._carry.succeeded += 1
            return
        error = result.error
        self._fail(
            index,
            child_id,
            result.state,
            error.code if error else "",
            error.message if error else "",
            result.dead_letter_id,
        )

    def _fail(
        self, index: int, child_id: str, state: str, code: str, message: str, letter: str | None = None
    ) -> None:
        self._carry.failed += 1
        self._carry.failures.append(
            BatchFailure(
                index=index,
                workflow_id=child_id,
                state=state,
                error_code=code,
                message=message[:300],
                dead_letter_id=letter,
            )
        )

    def _elapsed_s(self) -> float:
        started: datetime | None = self._carry.started_at
        return (workflow.now() - started).total_seconds() if started else 0.0

    def _summary(self) -> BatchSummary:
        assert self._request is not None
        carry = self._carry
        elapsed = self._elapsed_s()
        done = carry.succeeded + carry.failed
        return BatchSummary(
            batch_id=workflow.info().workflow_id,
            blueprint=self._request.blueprint,
            total=self._total,
            succeeded=carry.succeeded,
            failed=carry.failed,
            failures=sorted(carry.failures, key=lambda f: f.index),
            cost_usd=carry.cost_usd,
            cost_per_success_usd=round(carry.cost_usd / carry.succeeded, 8) if carry.succeeded else None,
            wall_time_s=round(elapsed, 3),
            throughput_per_s=round(done / elapsed, 3) if elapsed > 0 else 0.0,
            continued_as_new=carry.continued_as_new,
        )
