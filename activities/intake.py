"""VALIDATING: resolve the blueprint, validate the input, choose the model. Records the snapshot."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from temporalio import activity

from activities.cost_plan import resolve_cost_plan
from activities.models.base import ProviderRegistry
from activities.tools.registry import ToolRegistry
from blueprints.base import Blueprint
from blueprints.catalog import Catalog
from contracts.errors import ErrorCode, ErrorInfo
from contracts.run import BlueprintSnapshot, ModelChoice, ValidateInput, ValidateResult
from policies.model_route import GPU_PROVIDER, gpu_route, route_targets
from policies.routing import DEFAULT_MODELS
from settings import Settings


def choose_model(settings: Settings, provider: str | None, model: str | None) -> ModelChoice:
    """The request's choice, else the settings' (`auto`: Anthropic, then OpenAI, else offline).

    `vllm` routes the run's turns to the GPU task queue first, with the settings' model as fallback."""
    if provider == GPU_PROVIDER:
        default_name = Path(settings.gpu_model).name if settings.gpu_model else ""
        served = model or settings.gpu_served_model_name or default_name
        fallback = choose_model(settings, None, None)
        return gpu_route(served, settings.gpu_task_queue, settings.gpu_schedule_to_start_s, [fallback])
    if provider is None:
        provider = settings.model_provider
        if provider == "auto":
            if settings.anthropic_api_key:
                provider = "anthropic"
            elif settings.openai_api_key or settings.openai_base_url:
                provider = "openai"
            else:
                provider = "offline"
        model = model or settings.model_name
    return ModelChoice(
        provider=provider, model=model or DEFAULT_MODELS.get(provider, ""), offline=provider == "offline"
    )


class IntakeActivities:
    """Holds what validation needs: the blueprint catalog, the tools, the providers."""

    def __init__(
        self, settings: Settings, catalog: Catalog, tools: ToolRegistry, providers: ProviderRegistry
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._tools = tools
        self._providers = providers
        # name@version -> (blueprint, its tools, snapshot): a snapshot is a pure function of the
        # blueprint object and its tool objects, and building one (two JSON schemas and a digest)
        # is the bulk of validation's cost.
        self._snapshots: dict[str, tuple[object, tuple[object, ...], BlueprintSnapshot]] = {}

    @activity.defn(name="validate_request")
    async def validate_request(self, inp: ValidateInput) -> ValidateResult:
        """Resolve `blueprint@version`, validate the parsed input against its schema, pick the model."""
        req = inp.request
        blueprint, error = self._catalog.resolve(req.blueprint, req.version)
        if error is not None or blueprint is None:
            return ValidateResult(error=error)
        missing = [t for t in blueprint.allowed_tools if self._tools.get(t) is None]
        if missing:
            return ValidateResult(
                error=ErrorInfo(
                    code="unknown_tool",
                    message=f"blueprint {blueprint.ref} names tools this worker does not have: {missing}",
                    details={"missing": missing},
                )
            )
        try:
            normalized = blueprint.input_model.model_validate(inp.parsed_input).model_dump(mode="json")
        except ValidationError as exc:
            return ValidateResult(
                error=ErrorInfo(
                    code=ErrorCode.INVALID_INPUT,
                    message=f"input does not match {blueprint.ref}'s input schema ({exc.error_count()} errors)",
                    details={
                        "errors": [
                            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
                        ],
                        "input_schema": blueprint.input_model.model_json_schema(),
                    },
                )
            )
        model = choose_model(self._settings, req.provider, req.model)
        # Targets on another task queue are served by other workers (GPU workers); check ours only.
        configured = self._providers.names()
        unknown = [
            t.provider for t in route_targets(model) if t.task_queue is None and t.provider not in configured
        ]
        if unknown:
            return ValidateResult(
                error=ErrorInfo(
                    code="unknown_provider",
                    message=f"provider {unknown[0]!r} is not configured on this worker",
                    details={"configured": self._providers.names()},
                )
            )
        cost, cost_error = resolve_cost_plan(self._settings, blueprint, req, model, self._providers.names())
        if cost_error is not None:
            return ValidateResult(error=cost_error)
        return ValidateResult(blueprint=self._snapshot(blueprint), input=normalized, model=model, cost=cost)

    def _snapshot(self, blueprint: Blueprint) -> BlueprintSnapshot:
        """The blueprint's snapshot, rebuilt only when the blueprint or one of its tools changed."""
        tools = tuple(self._tools.get(t) for t in blueprint.allowed_tools)
        cached = self._snapshots.get(blueprint.ref)
        if (
            cached is not None
            and cached[0] is blueprint
            and all(a is b for a, b in zip(cached[1], tools, strict=True))
        ):
            return cached[2]
        snapshot = blueprint.snapshot(self._tools.specs(list(blueprint.allowed_tools)))
        self._snapshots[blueprint.ref] = (blueprint, tools, snapshot)
        return snapshot
