"""The `model_turn` activity: one model call through the provider registry."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import with_heartbeats
from activities.models.base import ProviderRegistry
from activities.models.errors import to_application_error
from contracts.model import ModelTurnInput, ModelTurnResult
from observability.genai import model_call_span, observe_model_result
from observability.logs import get_logger

_log = get_logger("ai_factory.model_turn")


class ModelActivities:
    """Dispatches model turns to the registered providers. Each call is a `chat {model}` span
    with GenAI attributes; `trace_content` also puts the prompt and completion on it."""

    def __init__(self, providers: ProviderRegistry, *, trace_content: bool = False) -> None:
        self._providers = providers
        self._trace_content = trace_content

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
        with model_call_span(inp, trace_content=self._trace_content) as span:
            started = time.perf_counter()
            try:
                result = await with_heartbeats(provider.complete(inp))
            except ApplicationError:
                raise
            except Exception as exc:  # every provider error is mapped in one place
                raise to_application_error(exc, provider=inp.provider) from exc
            duration_s = time.perf_counter() - started
            if not result.latency_ms:
                result.latency_ms = round(duration_s * 1000, 3)
            cost = observe_model_result(
                span, inp, result, duration_s=duration_s, trace_content=self._trace_content
            )
        _log.info(
            "model call",
            step_id=inp.step_id,
            provider=inp.provider,
            model=result.response_model or result.model,
            stop_reason=result.stop_reason,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cache_read_tokens=result.usage.cache_read_tokens,
            cost_usd=cost,
            latency_ms=result.latency_ms,
        )
        return result
