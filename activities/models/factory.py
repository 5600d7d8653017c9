"""Build the provider registry a worker serves from its settings."""

from __future__ import annotations

from collections.abc import Iterable

from activities.models.anthropic_provider import AnthropicProvider
from activities.models.base import ModelProvider, ProviderRegistry
from activities.models.openai_provider import OpenAIProvider
from policies.routing import DEFAULT_MODELS
from settings import Settings


def build_provider_registry(settings: Settings, extra: Iterable[ModelProvider] = ()) -> ProviderRegistry:
    """A registry with every real provider the settings configure: Anthropic when its key is set,
    OpenAI when a key or an OpenAI-compatible base URL is set. `extra` providers (the offline
    model, scripted test models) are registered last and win on a name clash."""
    registry = ProviderRegistry()
    if settings.anthropic_api_key:
        registry.register(
            AnthropicProvider(
                api_key=settings.anthropic_api_key,
                base_url=settings.anthropic_base_url,
                timeout=settings.provider_timeout_s,
            )
        )
    if settings.openai_api_key or settings.openai_base_url:
        registry.register(
            OpenAIProvider(
                # A local compatible endpoint (vLLM, Ollama) may want no key, but the SDK requires one.
                api_key=settings.openai_api_key or "unused",
                base_url=settings.openai_base_url,
                timeout=settings.provider_timeout_s,
                # Compatible servers understand the older `max_tokens`; OpenAI itself wants the new name.
                max_tokens_param="max_tokens" if settings.openai_base_url else "max_completion_tokens",
            )
        )
    # --- extra providers (the offline model is registered here by the caller) ---
    for provider in extra:
        registry.register(provider)
    return registry


def default_model_for(provider: str) -> str:
    """The model a provider runs when settings name none."""
    try:
        return DEFAULT_MODELS[provider]
    except KeyError:
        raise ValueError(f"no default model for provider {provider!r}: set MODEL_NAME") from None
