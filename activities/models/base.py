"""The provider interface and the registry the `model_turn` activity dispatches through."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from contracts.model import ModelTurnInput, ModelTurnResult


@runtime_checkable
class ModelProvider(Protocol):
    """Something that answers one model turn. Providers raise their SDK's errors; the
    activity maps them to Temporal errors in one place (`activities.models.errors`)."""

    name: str

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        """Run one model call."""
        ...


class ProviderRegistry:
    """Providers by name. Workers build one at start; tests register scripted providers."""

    def __init__(self) -> None:
        self._providers: dict[str, ModelProvider] = {}

    def register(self, provider: ModelProvider) -> None:
        """Add or replace a provider under its `name`."""
        self._providers[provider.name] = provider

    def get(self, name: str) -> ModelProvider:
        """The provider called `name` (KeyError if none)."""
        return self._providers[name]

    def names(self) -> list[str]:
        """Registered provider names."""
        return sorted(self._providers)
