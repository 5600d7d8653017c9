"""A model route as data: the first model, then the models to fall back to, in order.

The minimal routing GPU workers need: a route target may name a task queue (the GPU queue) and a
schedule-to-start timeout; when no worker takes the turn in time, the next target runs. The full
routing policy (per step kind, tiers, circuit breakers) builds richer chains of the same shape.
"""

from __future__ import annotations

from contracts.run import ModelChoice

#: The provider name of models served by GPU workers (in-process vLLM on the GPU task queue).
GPU_PROVIDER = "vllm"
#: The reason recorded when no worker took a turn within the target's schedule-to-start timeout.
NO_WORKER_IN_TIME = "schedule_to_start_timeout"


def gpu_route(
    model: str, task_queue: str, schedule_to_start_s: float, fallbacks: list[ModelChoice]
) -> ModelChoice:
    """A route whose first target is the GPU model on `task_queue`, then `fallbacks` in order."""
    if schedule_to_start_s <= 0:
        raise ValueError(f"schedule_to_start_s must be positive, got {schedule_to_start_s}")
    return ModelChoice(
        provider=GPU_PROVIDER,
        model=model,
        task_queue=task_queue,
        schedule_to_start_s=schedule_to_start_s,
        fallbacks=[target.model_copy(update={"fallbacks": []}) for target in fallbacks],
    )


def route_targets(choice: ModelChoice) -> list[ModelChoice]:
    """Every target of a route, first to last, each without its own fallbacks."""
    return [choice.model_copy(update={"fallbacks": []}), *choice.fallbacks]
