"""Resolve a run's cost plan at VALIDATING: its routes (request → blueprint → settings), the
prices of every routed model (the operator's price file over the shipped table), its budget and
its context policy. Anything wrong is a structured error before the run spends a cent."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from blueprints.base import Blueprint
from contracts.cost import ContextPolicy, CostPlan, ModelPrice, ModelTarget, RunBudget
from contracts.errors import ErrorInfo
from contracts.run import ModelChoice, RunRequest
from policies.budget import budget_problems, merge_budget
from policies.model_route import route_targets
from policies.pricing import parse_price_file, price_table
from policies.routing import CATCH_ALL, resolve_queues, route_problems, routed_models
from settings import Settings

INVALID_COST_POLICY = "invalid_cost_policy"


@lru_cache(maxsize=8)
def _read_price_file(path: Path, mtime: float) -> tuple[str | None, dict[str, ModelPrice]]:
    return parse_price_file(path.read_text(encoding="utf-8"), toml=path.suffix.lower() == ".toml")


def load_price_table(settings: Settings) -> tuple[str, dict[str, ModelPrice]]:
    """The effective (version, prices). Raises `PriceFileError`/`OSError` on a bad operator file
    (workers call this at start, so a bad file stops the worker rather than a run)."""
    if settings.price_file is None:
        return price_table()
    path = Path(settings.price_file)
    version, overrides = _read_price_file(path, path.stat().st_mtime)
    return price_table(overrides, version)


def resolve_cost_plan(
    settings: Settings,
    blueprint: Blueprint,
    request: RunRequest,
    model: ModelChoice,
    providers: list[str],
) -> tuple[CostPlan | None, ErrorInfo | None]:
    """The run's CostPlan, or an `invalid_cost_policy` error listing every problem found."""
    problems: list[str] = []
    try:
        routes = _routes(settings, blueprint, request, model)
        budget = merge_budget(
            _model(RunBudget, blueprint.extra.get("budget")), request.max_tokens, request.max_usd
        )
        context = request.context or _model(ContextPolicy, blueprint.extra.get("context")) or ContextPolicy()
    except (ValidationError, TypeError, ValueError) as exc:
        return None, ErrorInfo(
            code=INVALID_COST_POLICY, message=f"cost policy is malformed: {exc}", details={}
        )
    version, table = load_price_table(settings)
    table = with_gpu_model(settings, table)
    routes = resolve_queues(
        routes, gpu_task_queue=settings.gpu_task_queue, provider_queues=settings.provider_queues()
    )
    problems += route_problems(routes, prices=table, providers=providers)
    problems += budget_problems(budget)
    if not 0 < context.threshold <= 1:
        problems.append(f"context threshold must be in (0, 1], got {context.threshold}")
    if problems:
        return None, ErrorInfo(
            code=INVALID_COST_POLICY,
            message="the run's routing, prices or budget are invalid: " + "; ".join(problems)[:400],
            details={"problems": problems, "price_table_version": version},
        )
    prices = {name: table[name] for name in routed_models(routes)}
    return CostPlan(
        routes=routes, prices=prices, price_table_version=version, budget=budget, context=context
    ), None


def _routes(
    settings: Settings, blueprint: Blueprint, request: RunRequest, model: ModelChoice
) -> dict[str, list[ModelTarget]]:
    if request.routes is not None:
        return request.routes
    pinned = request.provider is not None or request.model is not None
    declared = blueprint.extra.get("routes")
    if declared and not pinned:
        return {kind: [ModelTarget.model_validate(t) for t in chain] for kind, chain in declared.items()}
    # The chosen model with its own fallbacks (a `vllm` request: the GPU model, then the settings' model).
    return {
        CATCH_ALL: [
            ModelTarget(
                provider=t.provider,
                model=t.model,
                task_queue=t.task_queue,
                gpu=t.task_queue is not None and t.task_queue == settings.gpu_task_queue,
                schedule_to_start_s=t.schedule_to_start_s,
            )
            for t in route_targets(model)
        ]
    }


def with_gpu_model(settings: Settings, table: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
    """The table plus the model GPU workers serve (by its served name), at the settings' GPU rate,
    unless the table prices it already."""
    names = {settings.gpu_served_model_name, Path(settings.gpu_model).name if settings.gpu_model else None}
    extra = {
        name: ModelPrice(
            input=settings.gpu_price_input_per_million,
            output=settings.gpu_price_output_per_million,
            context_window=settings.gpu_max_model_len or 32_768,
        )
        for name in names
        if name and name not in table
    }
    return {**table, **extra} if extra else table


def _model(cls: Any, value: Any) -> Any:
    if value is None or isinstance(value, cls):
        return value
    return cls.model_validate(value)
