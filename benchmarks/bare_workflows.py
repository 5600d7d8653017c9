"""The bare Temporal baseline of the throughput benchmark: child workflows doing no-op activities.

Kept in its own module so the workflow sandbox can import it (it imports nothing of ours). Each
workflow comes twice: on the SDK's defaults (sandboxed, the baseline the benchmark's target is
stated against) and unsandboxed like ours (`--bare-unsandboxed`), to show how much of the gap the
sandbox accounts for. The "visible" items (`--bare-visibility`) also upsert the engine's search
attributes as often as one of our runs does, to show how much of the gap is that visibility.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey


class BareBatch(BaseModel):
    """The bare batch's input: how many children, how many no-op activities each, cap and window."""

    total: int
    activities_per_item: int
    concurrency: int
    items_per_run: int
    next_index: int = 0
    continued_as_new: int = 0
    item_workflow: str = "BenchBareItem"
    upserts_per_item: int = 0
    """Search attribute upserts per item (only the "visible" item workflows make them)."""


class VisibleItem(BaseModel):
    """Input of a visible bare item: its no-op activities and its search attribute upserts."""

    activities: int
    upserts: int


# The engine's keys (workflows/search_attributes.py), named here so that this module imports nothing of ours.
_STATE = SearchAttributeKey.for_keyword("FactoryState")
_BLUEPRINT = SearchAttributeKey.for_keyword("FactoryBlueprint")
_TENANT = SearchAttributeKey.for_keyword("FactoryTenant")


@activity.defn(name="bench_noop")
async def noop(index: int) -> int:
    """Does nothing: the floor an activity costs."""
    return index


async def _noops(count: int) -> int:
    for i in range(count):
        await workflow.execute_activity(
            "bench_noop",
            i,
            result_type=int,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
    return count


async def _visible_noops(item: VisibleItem) -> int:
    """Like `_noops`, with an upsert before each of the first `upserts - 1` activities and one at
    the end: the pattern of one of our runs (a state per phase, the final state as it returns)."""
    for i in range(item.activities):
        if i < item.upserts - 1:
            first = [_BLUEPRINT.value_set("bench"), _TENANT.value_set("default")] if i == 0 else []
            workflow.upsert_search_attributes([*first, _STATE.value_set(f"PHASE-{i}")])
        await workflow.execute_activity(
            "bench_noop",
            i,
            result_type=int,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
    if item.upserts:
        workflow.upsert_search_attributes([_STATE.value_set("DONE")])
    return item.activities


async def _batch(batch: BareBatch) -> int:
    slots = asyncio.Semaphore(batch.concurrency)
    end = min(batch.total, batch.next_index + batch.items_per_run)

    item: int | VisibleItem = batch.activities_per_item
    if batch.upserts_per_item:
        item = VisibleItem(activities=batch.activities_per_item, upserts=batch.upserts_per_item)

    async def one(index: int) -> None:
        try:
            await workflow.execute_child_workflow(
                batch.item_workflow,
                item,
                id=f"{workflow.info().workflow_id}-{index}",
                result_type=int,
            )
        finally:
            slots.release()

    running = []
    for index in range(batch.next_index, end):
        await slots.acquire()
        running.append(asyncio.create_task(one(index)))
    await asyncio.gather(*running)
    if end < batch.total:
        workflow.continue_as_new(
            batch.model_copy(update={"next_index": end, "continued_as_new": batch.continued_as_new + 1})
        )
    return batch.continued_as_new


@workflow.defn(name="BenchBareItem")
class BareItem:
    """One bare item: k sequential no-op activities."""

    @workflow.run
    async def run(self, count: int) -> int:
        return await _noops(count)


@workflow.defn(name="BenchBareBatch")
class BareBatchWorkflow:
    """Children under a cap, window by window, continuing as new between windows (like ours)."""

    @workflow.run
    async def run(self, batch: BareBatch) -> int:
        return await _batch(batch)


@workflow.defn(name="BenchBareItemUnsandboxed", sandboxed=False)
class BareItemUnsandboxed:
    """`BareItem` outside the sandbox."""

    @workflow.run
    async def run(self, count: int) -> int:
        return await _noops(count)


@workflow.defn(name="BenchBareBatchUnsandboxed", sandboxed=False)
class BareBatchUnsandboxedWorkflow:
    """`BareBatchWorkflow` outside the sandbox."""

    @workflow.run
    async def run(self, batch: BareBatch) -> int:
        return await _batch(batch)


@workflow.defn(name="BenchBareItemVisible")
class BareItemVisible:
    """`BareItem` that also upserts search attributes as often as one of our runs."""

    @workflow.run
    async def run(self, item: VisibleItem) -> int:
        return await _visible_noops(item)


@workflow.defn(name="BenchBareItemVisibleUnsandboxed", sandboxed=False)
class BareItemVisibleUnsandboxed:
    """`BareItemVisible` outside the sandbox."""

    @workflow.run
    async def run(self, item: VisibleItem) -> int:
        return await _visible_noops(item)


BARE_WORKFLOWS = [
    BareItem,
    BareBatchWorkflow,
    BareItemUnsandboxed,
    BareBatchUnsandboxedWorkflow,
    BareItemVisible,
    BareItemVisibleUnsandboxed,
]
