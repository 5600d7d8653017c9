"""What each kind of per-run history costs the dev server: the throughput benchmark's gap, itemized.

    PYTHONPATH=. python benchmarks/event_costs.py [--items 500] [--rounds 4]

A batch of bare child workflows (three no-op activities each, like the throughput benchmark's bare
side) runs plainly and with each thing a run of ours adds on top of its model turns:
- `upserts`: three search attribute upserts (our runs publish `FactoryState` at PLANNING, EXECUTING
  and the end);
- `markers`: three local activities (our validation, review and ledger run end), each a marker event;
- `bytes`: activity inputs and results, and the item's result, padded so that a run's history holds
  about as many bytes as one of ours (about 26 KB against 2 KB).

Variants take turns on one fresh dev server, each round starting one variant later: the server
slows as its in-memory database fills, and over four rounds each variant runs once in each
position. Prints, per variant, items/s, the CPU per item spent in this process (worker and
client) and in the dev server, and the difference from plain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from benchmarks.common import cpu_seconds, start_dev_server
from workflows.search_attributes import FACTORY_STATE

ACTIVITIES = 3
#: Padding per payload for the `bytes` variant: 3 inputs, 3 results and the item's result carry it.
PAD = 3_500
VARIANTS: dict[str, dict[str, int]] = {
    "plain": {},
    "upserts": {"upserts": 3},
    "markers": {"markers": 3},
    "bytes": {"pad": PAD},
}


class Item(BaseModel):
    """One bare item and what it adds to the plain three activities."""

    upserts: int = 0
    markers: int = 0
    pad: int = 0


class Batch(BaseModel):
    """Children under a cap, each running `item`."""

    total: int
    concurrency: int
    item: Item


@activity.defn(name="cost_noop")
async def noop(payload: str) -> str:
    """Returns its input: the floor an activity costs, with payloads of a chosen size."""
    return payload


@workflow.defn(name="CostItem", sandboxed=False)
class CostItem:
    """Local activities first (as our validation runs), then the activities, upserting before the
    first ones and at the end (as our runs publish their state)."""

    @workflow.run
    async def run(self, item: Item) -> str:
        payload = "x" * item.pad
        for _ in range(item.markers):
            await workflow.execute_local_activity(
                "cost_noop", "", result_type=str, start_to_close_timeout=timedelta(seconds=10)
            )
        for i in range(ACTIVITIES):
            if i < item.upserts - 1:
                workflow.upsert_search_attributes([FACTORY_STATE.value_set(f"PHASE-{i}")])
            await workflow.execute_activity(
                "cost_noop",
                payload,
                result_type=str,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        if item.upserts:
            workflow.upsert_search_attributes([FACTORY_STATE.value_set("DONE")])
        return payload


@workflow.defn(name="CostBatch", sandboxed=False)
class CostBatch:
    """Starts `total` items, at most `concurrency` at once."""

    @workflow.run
    async def run(self, batch: Batch) -> int:
        slots = asyncio.Semaphore(batch.concurrency)

        async def one(index: int) -> None:
            try:
                await workflow.execute_child_workflow(
                    "CostItem", batch.item, id=f"{workflow.info().workflow_id}-{index}", result_type=str
                )
            finally:
                slots.release()

        running = []
        for index in range(batch.total):
            await slots.acquire()
            running.append(asyncio.create_task(one(index)))
        await asyncio.gather(*running)
        return batch.total


async def bench(items: int, rounds: int, concurrency: int) -> dict[str, Any]:
    """Run every variant `rounds` times in turn on one dev server; sum each variant's figures."""
    env = await start_dev_server()
    totals = {name: [0.0, 0.0, 0.0] for name in VARIANTS}  # seconds, worker CPU, server CPU
    try:
        client = env.client
        async with Worker(client, task_queue="costs", workflows=[CostItem, CostBatch], activities=[noop]):
            warm = Batch(total=20, concurrency=concurrency, item=Item(upserts=3, markers=3, pad=PAD))
            await client.execute_workflow("CostBatch", warm, id="costs-warm", task_queue="costs")
            names = list(VARIANTS)
            for round_ in range(rounds):
                # Each round starts one variant later, so that no variant always meets the emptiest server.
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    extra = VARIANTS[name]
                    batch = Batch(total=items, concurrency=concurrency, item=Item(**extra))
                    cpu, started = cpu_seconds(), time.perf_counter()
                    await client.execute_workflow(
                        "CostBatch", batch, id=f"costs-{name}-{round_}", task_queue="costs"
                    )
                    seconds = time.perf_counter() - started
                    after = cpu_seconds()
                    total = totals[name]
                    total[0] += seconds
                    total[1] += after[0] - cpu[0]
                    total[2] += after[1] - cpu[1]
    finally:
        await env.shutdown()
    done = items * rounds
    figures: dict[str, Any] = {"items_per_variant": done, "variants": {}}
    for name, (seconds, worker_cpu, server_cpu) in totals.items():
        figures["variants"][name] = {
            "items_per_s": round(done / seconds, 2),
            "worker_ms_per_item": round(worker_cpu / done * 1000, 1),
            "server_ms_per_item": round(server_cpu / done * 1000, 1),
        }
    plain = figures["variants"]["plain"]
    for variant in figures["variants"].values():
        variant["extra_ms_per_item"] = {
            side: round(variant[f"{side}_ms_per_item"] - plain[f"{side}_ms_per_item"], 1)
            for side in ("worker", "server")
        }
    return figures


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500, help="items per variant per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.items, args.rounds, args.concurrency)), indent=1))


if __name__ == "__main__":
    main()
