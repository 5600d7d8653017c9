"""The `model_turn` activity: one model call through the provider registry, priced and recorded.

Every attempt that consumed tokens gets its own ledger row (unique by run, step and attempt), so
a retried call is counted once per attempt that billed and never twice for the same attempt.
"""

from __future__ import annotations

import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import with_heartbeats
from activities.ledger import Ledger, ModelCallRecord
from activities.models.base import ProviderRegistry
from activities.models.billing import billed_usage
from activities.models.circuit import CircuitBreaker
from activities.models.errors import to_application_error
from contracts.cost import ModelPrice
from contracts.model import ModelTurnInput, ModelTurnResult, Usage
from observability.genai import model_call_span, observe_model_result
from observability.logs import get_logger
from policies.pricing import PRICE_TABLE_VERSION, PRICES, cost_of

_log = get_logger("ai_factory.model_turn")


class ModelActivities:
    """Dispatches model turns to the registered providers, behind a per-process circuit breaker.
    Each call is a `chat {model}` span with GenAI attributes; `trace_content` also puts the
    prompt and completion on it."""

    def __init__(
        self,
        providers: ProviderRegistry,
        ledger: Ledger | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        prices: dict[str, ModelPrice] | None = None,
        price_table_version: str = PRICE_TABLE_VERSION,
        trace_content: bool = False,
    ) -> None:
        self._providers = providers
        self._ledger = ledger
        self.breaker = breaker or CircuitBreaker()
        self._prices = prices or PRICES
        self._price_table_version = price_table_version
        self._trace_content = trace_content

    @activity.defn(name="model_turn")
    async def model_turn(self, inp: ModelTurnInput) -> ModelTurnResult:
        """Call the provider; map its errors to retryable or non-retryable ApplicationErrors; price
        the call and write it (with the run's pending transitions) to the ledger."""
        attempt = activity.info().attempt
        key = f"{inp.provider}/{inp.model}"
        try:
            provider = self._providers.get(inp.provider)
        except KeyError:
            raise ApplicationError(
                f"provider {inp.provider!r} is not configured on this worker",
                {"configured": self._providers.names()},
                type="UnknownProvider",
                non_retryable=True,
            ) from None
        self.breaker.before_call(key)
        with model_call_span(inp, trace_content=self._trace_content) as span:
            started = time.perf_counter()
            try:
                result = await with_heartbeats(provider.complete(inp))
            except Exception as exc:  # every provider error is mapped in one place
                error = to_application_error(exc, provider=inp.provider)
                self.breaker.record_failure(key, error.type)
                raise await self._failed_attempt(inp, attempt, exc, error, started) from exc
            self.breaker.record_success(key)
            duration_s = time.perf_counter() - started
            if not result.latency_ms:
                result.latency_ms = round(duration_s * 1000, 3)
            result.attempt = attempt
            result.cost_usd = cost_of(self._price(inp), result.usage)
            observe_model_result(span, inp, result, duration_s=duration_s, trace_content=self._trace_content)
        if self._ledger is not None:
            await self._ledger.record_model_call(
                self._record(
                    inp, attempt, "ok", None, result.usage, result.cost_usd, result.latency_ms, result.ttft_ms
                ),
                inp.ledger,
            )
            if attempt > 1:
                usage, usd, _ = await self._ledger.failed_attempts_spend(inp.run_id, inp.step_id, attempt)
                result.failed_attempts_usage, result.failed_attempts_cost_usd = usage, usd
        # DEBUG: each call is also a ledger row and a span; the run's "run finished" line counts them.
        _log.debug(
            "model call",
            step_id=inp.step_id,
            provider=inp.provider,
            model=result.response_model or result.model,
            stop_reason=result.stop_reason,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cache_read_tokens=result.usage.cache_read_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
        )
        return result

    async def _failed_attempt(
        self, inp: ModelTurnInput, attempt: int, exc: BaseException, error: ApplicationError, started: float
    ) -> ApplicationError:
        """Record a failed attempt (its billed tokens, if any) and return the error to raise, its
        details carrying what this attempt and all failed attempts so far consumed."""
        usage = billed_usage(exc) or Usage()
        cost = cost_of(self._price(inp), usage)
        total_usage, total_cost = usage, cost
        if self._ledger is not None:
            await self._ledger.record_model_call(
                self._record(
                    inp,
                    attempt,
                    "failed",
                    error.type,
                    usage,
                    cost,
                    (time.perf_counter() - started) * 1000,
                    None,
                ),
                inp.ledger,
            )
            total_usage, total_cost, _ = await self._ledger.failed_attempts_spend(inp.run_id, inp.step_id)
        details: dict[str, Any] = (
            dict(error.details[0]) if error.details and isinstance(error.details[0], dict) else {}
        )
        details.update(
            attempt=attempt,
            billed_usage=usage.model_dump(),
            billed_cost_usd=cost,
            failed_attempts_usage=total_usage.model_dump(),
            failed_attempts_cost_usd=total_cost,
        )
        return ApplicationError(
            error.message,
            details,
            type=error.type,
            non_retryable=error.non_retryable,
            next_retry_delay=error.next_retry_delay,
        )

    def _price(self, inp: ModelTurnInput) -> ModelPrice:
        return inp.price or self._prices.get(inp.model) or ModelPrice(input=0, output=0)

    def _record(
        self,
        inp: ModelTurnInput,
        attempt: int,
        status: str,
        error_type: str | None,
        usage: Usage,
        cost: float,
        latency_ms: float,
        ttft_ms: float | None,
    ) -> ModelCallRecord:
        return ModelCallRecord(
            run_id=inp.run_id,
            step_id=inp.step_id,
            step_kind=inp.step_kind,
            attempt=attempt,
            provider=inp.provider,
            model=inp.model,
            task_queue=inp.task_queue,
            route_index=inp.route_index,
            route_reason=inp.route_reason,
            status=status,
            error_type=error_type,
            usage=usage,
            cost_usd=cost,
            price_table_version=inp.price_table_version or self._price_table_version,
            latency_ms=round(latency_ms, 3),
            ttft_ms=ttft_ms,
        )
