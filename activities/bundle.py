"""Build every activity a CPU worker hosts, from settings (tests pass their own pieces)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from activities.artifacts import FileArtifactStore
from activities.batch_items import BatchItemActivities
from activities.compensation import CompensationActivities
from activities.cost_plan import load_price_table
from activities.dead_letters import DeadLetterActivities, DeadLetterStore, LedgerDeadLetterStore
from activities.embeddings import Embedder
from activities.intake import IntakeActivities
from activities.ledger import Ledger
from activities.ledger.activity import LedgerActivities
from activities.model_turn import ModelActivities
from activities.models.base import ModelProvider, ProviderRegistry
from activities.models.circuit import CircuitBreaker
from activities.models.offline import OfflineProvider
from activities.review import ReviewActivities
from activities.tool_call import ToolActivities
from activities.tools.registry import ToolRegistry, default_registry
from blueprints.catalog import Catalog, default_catalog
from settings import Settings


def load_tools(extension_modules: list[str] | None = None) -> ToolRegistry:
    """The shipped tools plus the extension modules' tools (registered by importing them)."""
    import activities.tools.files  # noqa: F401  (registers the file tools)

    for name in extension_modules or []:
        importlib.import_module(name)
    return default_registry


def build_providers(
    settings: Settings, catalog: Catalog, extra: list[ModelProvider] | None = None
) -> ProviderRegistry:
    """The offline model always; real providers when their keys (or endpoints) are configured."""
    from activities.models.factory import build_provider_registry

    registry = build_provider_registry(settings, extra=[OfflineProvider(catalog), *(extra or [])])
    return registry


def build_activities(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    tools: ToolRegistry | None = None,
    providers: ProviderRegistry | None = None,
    ledger: Ledger | None = None,
    model_activities: ModelActivities | None = None,
    dead_letters: DeadLetterStore | None = None,
    artifacts: FileArtifactStore | None = None,
    embedder: Embedder | None = None,
) -> list[Callable[..., Any]]:
    """The activity callables for `Worker(activities=...)`. The ledger is the settings' one when
    not given (its migrations are applied by `worker.serve`, or by the caller)."""
    catalog = catalog or default_catalog(settings.extension_modules)
    tools = tools or load_tools(settings.extension_modules)
    providers = providers or build_providers(settings, catalog)
    ledger = ledger or Ledger.from_settings(settings)
    models = model_activities or build_model_activities(settings, providers, ledger)
    intake = IntakeActivities(settings, catalog, tools, providers)
    dead_letters = dead_letters or LedgerDeadLetterStore(ledger)
    artifacts = artifacts or FileArtifactStore(settings.resolved_artifact_dir())
    batch = BatchItemActivities(artifacts)
    review = ReviewActivities(catalog, embedder, ledger)
    return [
        intake.validate_request,
        models.model_turn,
        ToolActivities(settings, tools, ledger).call_tool,
        review.review_output,
        review.review_and_close,
        LedgerActivities(ledger).record_run_end,
        CompensationActivities(settings, tools).compensate_tool,
        DeadLetterActivities(dead_letters).record_dead_letter,
        batch.load_batch_items,
        batch.stash_batch_items,
    ]


def build_model_activities(
    settings: Settings, providers: ProviderRegistry, ledger: Ledger
) -> ModelActivities:
    """The model activities (one circuit breaker per worker process, shared by every queue)."""
    version, prices = load_price_table(settings)
    breaker = CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_s)
    return ModelActivities(
        providers,
        ledger,
        breaker=breaker,
        prices=prices,
        price_table_version=version,
        trace_content=settings.trace_content,
    )


def default_dead_letter_store(settings: Settings) -> DeadLetterStore:
    """Where dead letters go: the SQL ledger's `dead_letters` table."""
    return LedgerDeadLetterStore(Ledger.from_settings(settings))
