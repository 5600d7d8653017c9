"""The benchmark's client stream: one workflow sends its turns to the GPU queue one after another.

N of these running at once keep N turns in flight on the GPU worker (concurrency N).
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

from contracts.model import ModelTurnInput
from workflows import activity_stubs as act


class BenchStreamInput(BaseModel):
    """The turns of one stream and the queue the GPU worker polls."""

    turns: list[ModelTurnInput]
    gpu_task_queue: str


class BenchStreamResult(BaseModel):
    """Token counts the GPU worker reported for the stream's turns."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    turns: int = 0


@workflow.defn(name="GpuBenchStreamWorkflow")
class GpuBenchStreamWorkflow:
    """Runs its turns sequentially on the GPU queue and sums their usage."""

    @workflow.run
    async def run(self, inp: BenchStreamInput) -> BenchStreamResult:
        """Sum of the usage of every turn."""
        result = BenchStreamResult()
        for turn in inp.turns:
            answer = await act.model_turn(turn, task_queue=inp.gpu_task_queue)
            result.prompt_tokens += answer.usage.input_tokens
            result.output_tokens += answer.usage.output_tokens
            result.turns += 1
        return result
