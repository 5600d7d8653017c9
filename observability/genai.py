"""Spans and metrics for model calls and tool runs, in OpenTelemetry's GenAI semantic conventions.

A model call is a CLIENT span named `chat {model}` with `gen_ai.*` attributes (system, request and
response model, token usage including cached tokens, finish reason) plus our cost. Prompt and
completion bodies go on the span only when the operator sets `trace_content`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from contracts.model import ModelTurnInput, ModelTurnResult
from contracts.tools import ToolResult
from observability import metrics
from observability.tracing import get_tracer
from policies.context_windows import context_utilization
from policies.pricing import cost_usd

# Attribute names (GenAI semantic conventions; `factory.*` are ours).
OPERATION = "gen_ai.operation.name"
SYSTEM = "gen_ai.system"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
COST_USD = "factory.cost_usd"
CONTEXT_UTILIZATION = "factory.context_utilization"
TIME_TO_FIRST_TOKEN = "factory.time_to_first_token_s"
ERROR_TYPE = "error.type"


@contextmanager
def model_call_span(inp: ModelTurnInput, *, trace_content: bool = False) -> Iterator[Span]:
    """The span around one provider call (a child of the activity's span)."""
    attributes: dict[str, Any] = {
        OPERATION: "chat",
        SYSTEM: inp.provider,
        PROVIDER: inp.provider,
        REQUEST_MODEL: inp.model,
        REQUEST_MAX_TOKENS: inp.max_tokens,
        REQUEST_TEMPERATURE: inp.temperature,
        "factory.run_id": inp.run_id,
        "factory.step_id": inp.step_id,
        "factory.step_kind": inp.step_kind,
        "factory.blueprint": inp.blueprint,
        "factory.tools": [t.name for t in inp.tools],
    }
    if trace_content:
        attributes[SYSTEM_INSTRUCTIONS] = inp.system
        attributes[INPUT_MESSAGES] = json.dumps([m.model_dump(mode="json") for m in inp.messages])
    with get_tracer().start_as_current_span(
        f"chat {inp.model}", kind=SpanKind.CLIENT, attributes=attributes, set_status_on_exception=True
    ) as span:
        try:
            yield span
        except Exception as exc:
            span.set_attribute(ERROR_TYPE, getattr(exc, "type", None) or type(exc).__name__)
            raise


def observe_model_result(
    span: Span,
    inp: ModelTurnInput,
    result: ModelTurnResult,
    *,
    duration_s: float,
    trace_content: bool = False,
) -> float:
    """Put the outcome on the span and record the call's metrics; returns the call's cost in USD."""
    usage = result.usage
    # The activity prices the call at the run's recorded prices; the shipped table otherwise.
    cost = result.cost_usd or cost_usd(result.model, usage)
    utilization = context_utilization(result.model, usage.input_tokens)
    # Our providers do not stream: the first token arrives with the whole response.
    ttft = result.latency_ms / 1000 if result.latency_ms else duration_s
    span.set_attributes(
        {
            RESPONSE_MODEL: result.response_model or result.model,
            FINISH_REASONS: [result.stop_reason],
            INPUT_TOKENS: usage.input_tokens,
            OUTPUT_TOKENS: usage.output_tokens,
            CACHE_READ_TOKENS: usage.cache_read_tokens,
            CACHE_WRITE_TOKENS: usage.cache_write_tokens,
            COST_USD: cost,
            TIME_TO_FIRST_TOKEN: ttft,
            "factory.tool_calls": [c.name for c in result.tool_calls],
            "factory.offline": result.offline,
        }
    )
    if result.response_id:
        span.set_attribute(RESPONSE_ID, result.response_id)
    if utilization is not None:
        span.set_attribute(CONTEXT_UTILIZATION, utilization)
    if trace_content:
        span.set_attribute(
            OUTPUT_MESSAGES,
            json.dumps(
                {"text": result.text, "tool_calls": [c.model_dump(mode="json") for c in result.tool_calls]}
            ),
        )
    metrics.record_model_call(
        provider=inp.provider,
        model=result.model,
        usage=usage,
        duration_s=duration_s,
        time_to_first_token_s=ttft,
        context_utilization=utilization,
        cost_usd=cost,
    )
    return cost


@contextmanager
def tool_run_span(tool: str, step_id: str) -> Iterator[Span]:
    """The activity-side span of one tool run (its parent is the workflow's `execute_tool` span)."""
    with get_tracer().start_as_current_span(
        f"tool.run {tool}", attributes={TOOL_NAME: tool, "factory.step_id": step_id}
    ) as span:
        yield span


def observe_tool_result(span: Span, result: ToolResult, started: float) -> None:
    """Status, error code and duration of a tool run on its span."""
    span.set_attributes(
        {
            "factory.tool.status": result.status,
            "factory.tool.dry_run": result.dry_run,
            "factory.tool.replayed": result.replayed,
            "factory.tool.duration_s": time.perf_counter() - started,
        }
    )
    if result.error is not None:
        span.set_attribute("factory.tool.error_code", result.error.code)
    if result.status == "error":
        span.set_status(Status(StatusCode.ERROR, result.error.code if result.error else "error"))


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits (None outside a trace)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
