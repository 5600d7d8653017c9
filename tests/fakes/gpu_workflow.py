"""A test workflow that sends model turns to the GPU task queue, all at once, and returns the results."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import workflow

from contracts.model import ModelTurnInput, ModelTurnResult
from workflows import activity_stubs as act


class GpuTurnsInput(BaseModel):
    """The turns to run and the queue the GPU worker polls."""

    turns: list[ModelTurnInput]
    gpu_task_queue: str


@workflow.defn(name="GpuTurnsTestWorkflow")
class GpuTurnsWorkflow:
    """Schedules every turn concurrently on the GPU queue (the way a plan's parallel tasks would)."""

    @workflow.run
    async def run(self, inp: GpuTurnsInput) -> list[ModelTurnResult]:
        """The results, in the order of the turns."""
        return list(
            await asyncio.gather(*(act.model_turn(t, task_queue=inp.gpu_task_queue) for t in inp.turns))
        )
