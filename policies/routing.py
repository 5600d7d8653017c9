"""Model routing: each step kind maps to an ordered chain of model targets, cheapest capable first.

The workflow walks a chain: the first target that answers wins; a failure (retries exhausted, an
open circuit, a queue with no worker in time) moves to the next target, and the reason is recorded.
Pure: the chain is resolved at VALIDATING and recorded in history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from contracts.cost import STEP_KINDS, ModelPrice, ModelTarget

CATCH_ALL = "*"
#: The model a provider gets when neither the request nor the settings name one. Anthropic's is
#: `claude-sonnet-4-6`: `claude-sonnet-4-5` reaches its end of life on 2026-11-30, and the Sonnet 5 models change
#: the request rules (sampling parameters, forced tool use, thinking blocks) that the provider
#: adapter relies on, so moving to them is its own change, tested against their API.
DEFAULT_MODELS: dict[str, str] = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-4o-mini",
    "offline": "offline-v1",
}

#: A tiered example: small local model on the GPU queue → mid tier → frontier. Blueprints opt in
#: with `extra={"routes": TIERED_ROUTES}` (or their own table).
SMALL = ModelTarget(provider="vllm", model="Qwen/Qwen2.5-1.5B-Instruct", gpu=True, schedule_to_start_s=30)
MID = ModelTarget(provider="anthropic", model="claude-haiku-4-5")
FRONTIER = ModelTarget(provider="anthropic", model="claude-sonnet-4-6")
TIERED_ROUTES: dict[str, list[ModelTarget]] = {
    "classify": [SMALL, MID, FRONTIER],
    "extract": [SMALL, MID, FRONTIER],
    "summarize": [SMALL, MID, FRONTIER],
    "judge": [MID, FRONTIER],
    "plan": [FRONTIER],
    CATCH_ALL: [MID, FRONTIER],
}


def single_route(target: ModelTarget) -> dict[str, list[ModelTarget]]:
    """Every step on one model (what a request naming a provider/model asks for)."""
    return {CATCH_ALL: [target]}


def chain_for(routes: Mapping[str, list[ModelTarget]], kind: str) -> list[ModelTarget]:
    """The ordered targets for a step kind (the catch-all when the kind has no route of its own)."""
    chain = routes.get(kind) or routes.get(CATCH_ALL) or []
    return list(chain)


def resolve_queues(
    routes: Mapping[str, list[ModelTarget]],
    *,
    gpu_task_queue: str,
    provider_queues: Mapping[str, str],
) -> dict[str, list[ModelTarget]]:
    """Fill each target's task queue: GPU targets → the GPU queue; providers with a rate-limited
    queue of their own → that queue; others keep None (the run's own queue)."""
    resolved: dict[str, list[ModelTarget]] = {}
    for kind, chain in routes.items():
        out = []
        for target in chain:
            queue = target.task_queue
            if queue is None and target.gpu:
                queue = gpu_task_queue
            if queue is None:
                queue = provider_queues.get(target.provider)
            out.append(target.model_copy(update={"task_queue": queue}))
        resolved[kind] = out
    return resolved


def route_problems(
    routes: Mapping[str, list[ModelTarget]],
    *,
    prices: Mapping[str, ModelPrice],
    providers: Iterable[str],
    gpu_providers: Iterable[str] = (),
) -> list[str]:
    """Everything wrong with a route table, found before the run starts: unknown step kinds, empty
    chains, providers nobody serves, models missing from the price table."""
    known = set(providers) | set(gpu_providers)
    problems: list[str] = []
    if not routes:
        problems.append("the route table is empty")
    elif CATCH_ALL not in routes and not set(STEP_KINDS) <= set(routes):
        missing = sorted(set(STEP_KINDS) - set(routes))
        problems.append(f"no catch-all route {CATCH_ALL!r} and no route for step kinds {missing}")
    for kind, chain in routes.items():
        if kind != CATCH_ALL and kind not in STEP_KINDS:
            problems.append(f"route {kind!r}: unknown step kind (known: {', '.join(STEP_KINDS)})")
        if not chain:
            problems.append(f"route {kind!r}: no model targets")
        for target in chain:
            if target.provider not in known and not target.gpu:
                problems.append(
                    f"route {kind!r}: provider {target.provider!r} is not configured (known: {sorted(known)})"
                )
            if target.model not in prices:
                problems.append(f"route {kind!r}: model {target.model!r} is not in the price table")
            if target.schedule_to_start_s is not None and target.schedule_to_start_s <= 0:
                problems.append(f"route {kind!r}: {target.label} schedule_to_start_s must be positive")
    return problems


def routed_models(routes: Mapping[str, list[ModelTarget]]) -> list[str]:
    """Every model a route table can call, in first-seen order."""
    seen: dict[str, None] = {}
    for chain in routes.values():
        for target in chain:
            seen.setdefault(target.model, None)
    return list(seen)


def route_reason(index: int, chain: list[ModelTarget], failures: list[str]) -> str:
    """Why the call ran on `chain[index]`: first choice, or fallback after the listed failures."""
    target = chain[index]
    if index == 0:
        return f"first choice for the step: {target.label}"
    return f"fallback #{index} to {target.label} after: " + "; ".join(failures)[:400]
