"""The `model_turn` activity as a GPU worker serves it: one turn on the in-process engine.

It serves the same `model_turn` contract (ModelTurnInput → ModelTurnResult) as the CPU worker, on
the GPU task queue. Routing then only changes the task queue an activity is scheduled on: the
workflow keeps one stub, one result type and one error path whichever model answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gpu.engine import Generation, GenerationEngine, SamplingSettings
from activities.gpu.metrics import GpuMetrics
from activities.gpu.structured import chat_messages, repair_messages, tools_schema, validation_problems
from contracts.model import ModelTurnInput, ModelTurnResult, ToolCall, Usage
from policies.model_route import GPU_PROVIDER
from settings import Settings


class GpuModelActivities:
    """Holds the process's engine and metrics; the activity methods share them."""

    def __init__(
        self, engine: GenerationEngine, settings: Settings, metrics: GpuMetrics | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self.metrics = metrics or GpuMetrics()

    def served_names(self) -> set[str]:
        """Model names this worker answers to (the route's model must be one of them)."""
        info = self._engine.info
        return {info.served_name, info.model}

    @activity.defn(name="model_turn")
    async def model_turn(self, inp: ModelTurnInput) -> ModelTurnResult:
        """Render the chat prompt, generate (guided by the tools' schema), validate, and return the turn."""
        self._check_route(inp)
        info = activity.info()
        waited = (info.started_time - info.current_attempt_scheduled_time).total_seconds()
        self.metrics.activity_started(waited)
        started = time.perf_counter()
        ok = False
        try:
            result = await self._turn(inp, info.attempt)
            ok = True
            return result
        finally:
            self.metrics.activity_finished(time.perf_counter() - started, ok)

    def _check_route(self, inp: ModelTurnInput) -> None:
        if inp.provider != GPU_PROVIDER or (inp.model and inp.model not in self.served_names()):
            # A misrouted turn cannot succeed here on any retry: fail fast so the route moves on.
            raise ApplicationError(
                f"this GPU worker serves {self._engine.info.served_name!r}, not {inp.provider}/{inp.model}",
                {"served": sorted(self.served_names()), "provider": inp.provider, "model": inp.model},
                type="UnknownProvider",
                non_retryable=True,
            )

    async def _turn(self, inp: ModelTurnInput, attempt: int) -> ModelTurnResult:
        schema = tools_schema(inp.tools)
        messages = chat_messages(inp)
        sampling = SamplingSettings(
            max_tokens=inp.max_tokens,
            temperature=inp.temperature,
            # A per-step seed keeps sampled turns reproducible for one step, different across retries.
            seed=_seed(inp.run_id, inp.step_id, attempt),
        )
        usage = Usage()
        problems: list[str] = []
        for round_ in range(1 + max(self._settings.gpu_repair_attempts, 0)):
            if round_:
                self.metrics.repairs += 1
            generation = await self._generate(self._engine.render_chat(messages), sampling, schema)
            usage = usage + Usage(
                input_tokens=generation.prompt_tokens, output_tokens=generation.completion_tokens
            )
            self.metrics.tokens(generation.prompt_tokens, generation.completion_tokens)
            if schema is None:
                return self._result(inp, generation, usage, tool_call=None)
            value, problems = validation_problems(generation.text, schema)
            if value is not None:
                call = ToolCall(
                    id=f"gpu-{inp.step_id}-{round_}-{value['tool']}",
                    name=value["tool"],
                    arguments=value["arguments"],
                )
                return self._result(inp, generation, usage, tool_call=call)
            self.metrics.invalid_outputs += 1
            activity.logger.warning("guided output failed validation (%s): %s", inp.step_id, problems[:3])
            messages = repair_messages(messages, generation.text, problems)
        # Retryable: another attempt samples with another seed; the retry policy bounds the attempts.
        raise ApplicationError(
            f"guided output did not match the tools' schema after {1 + self._settings.gpu_repair_attempts} tries",
            {"problems": problems, "usage": usage.model_dump()},
            type="GuidedOutputInvalid",
        )

    async def _generate(self, prompt: str, sampling: SamplingSettings, schema: dict | None) -> Generation:
        """One generation, heartbeating meanwhile so that a lost worker is noticed and a cancel arrives."""
        task = asyncio.ensure_future(self._engine.generate([prompt], sampling, schema))
        started = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._settings.gpu_heartbeat_interval_s)
                if done:
                    break
                activity.heartbeat({"generating_s": round(time.monotonic() - started, 1)})
        finally:
            if not task.done():
                task.cancel()  # the activity was cancelled: cancelling the task aborts the engine request
        try:
            (generation,) = task.result()
        except Exception as exc:
            raise ApplicationError(
                f"engine failed: {type(exc).__name__}: {exc}"[:500], type="GpuEngineError"
            ) from exc
        return generation

    def _result(
        self, inp: ModelTurnInput, generation: Generation, usage: Usage, tool_call: ToolCall | None
    ) -> ModelTurnResult:
        stop = "max_tokens" if generation.finish_reason == "length" else "end_turn"
        return ModelTurnResult(
            provider=GPU_PROVIDER,
            model=self._engine.info.served_name,
            text="" if tool_call else generation.text,
            tool_calls=[tool_call] if tool_call else [],
            stop_reason="tool_use" if tool_call else stop,
            usage=usage,
        )


def _seed(run_id: str, step_id: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{run_id}/{step_id}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
