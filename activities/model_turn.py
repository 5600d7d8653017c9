"""The `model_turn` activity: one model call through the provider registry."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import with_heartbeats
from activities.models.base import ProviderRegistry
from activities.models.errors import to_application_error
from contracts.model import ModelTurnInput, ModelTurnResult


class ModelActivities:
    """Dispatches model turns to the registered providers."""

    def __init__(self, providers: ProviderRegistry) -> None:
        self._providers = providers

    @activity.defn(name="model_turn")
    async def model_turn(self, inp: ModelTurnInput) -> ModelTurnResult:
        """Call the provider; map its errors to retryable or non-retryable ApplicationErrors."""
        try:
            provider = self._providers.get(inp.provider)
        except KeyError:
            raise ApplicationError(
                f"provider {inp.provider!r} is not configured on this worker",
                {"configured": self._providers.names()},
                type="UnknownProvider",
                non_retryable=True,
            ) from None
        started = time.perf_counter()
        try:
            result = await with_heartbeats(provider.complete(inp))
        except ApplicationError:
            raise
        except Exception as exc:  # every provider error is mapped in one place
            raise to_application_error(exc, provider=inp.provider) from exc
        if not result.latency_ms:
            result.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return result
