"""Anthropic's Messages API behind the provider contract."""

from __future__ import annotations

import time
from typing import Any

import anthropic
from anthropic.types import Message as AnthropicMessage

from activities.models.billing import attach_billed_usage
from activities.models.errors import MalformedResponseError
from contracts.model import Message, ModelTurnInput, ModelTurnResult, ToolCall, ToolSpec, Usage

_EPHEMERAL_CACHE: dict[str, Any] = {"type": "ephemeral"}


class AnthropicProvider:
    """Answers a model turn with Anthropic's Messages API (tools, prompt caching). SDK retries are
    off: the SDK's errors propagate and Temporal's retry policy decides what happens next."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 120.0,
        name: str = "anthropic",
    ) -> None:
        self.name = name
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        """Send one Messages API request and translate the answer into the contract."""
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": to_anthropic_messages(request.messages),
        }
        # The system prompt and the tool list are the stable prefix of every turn of a run:
        # a cache breakpoint on each makes later turns read them from the prompt cache.
        if request.system:
            params["system"] = [{"type": "text", "text": request.system, "cache_control": _EPHEMERAL_CACHE}]
        if request.tools:
            params["tools"] = to_anthropic_tools(request.tools)
        # This SDK's `messages.create` no longer takes `temperature`, so request.temperature is not sent.

        started = time.perf_counter()
        response = await self._client.messages.create(**params)
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            return parse_anthropic_message(
                response, provider=self.name, model=request.model, latency_ms=latency_ms
            )
        except MalformedResponseError as exc:
            # The provider billed this call even though its answer is unusable: say how much, so
            # the attempt is counted against the run's budget.
            billed = anthropic_usage(response)
            if billed.input_tokens or billed.output_tokens:
                attach_billed_usage(exc, billed)
            raise

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()


def to_anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs as Messages API tools; the last one carries the cache breakpoint."""
    converted: list[dict[str, Any]] = [
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
        for tool in tools
    ]
    if converted:
        converted[-1]["cache_control"] = _EPHEMERAL_CACHE
    return converted


def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Contract messages as Messages API turns: tool calls become `tool_use` blocks, and a `tool`
    message becomes a user turn of `tool_result` blocks (results first, as the API requires)."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            if not message.tool_calls:
                converted.append({"role": "assistant", "content": message.content})
                continue
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks.extend(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                for call in message.tool_calls
            )
            converted.append({"role": "assistant", "content": blocks})
        elif message.tool_results:
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": result.tool_call_id,
                    "content": result.content,
                    "is_error": result.is_error,
                }
                for result in message.tool_results
            ]
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            converted.append({"role": "user", "content": blocks})
        else:
            converted.append({"role": "user", "content": message.content})
    return converted


def parse_anthropic_message(
    response: AnthropicMessage, *, provider: str, model: str, latency_ms: float
) -> ModelTurnResult:
    """Text, tool calls, stop reason and token usage of a Messages API response."""
    content = getattr(response, "content", None)
    if not isinstance(content, list):
        raise MalformedResponseError("Messages API response has no content list")
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    for block in content:
        block_type = getattr(block, "type", None)
        if block_type == "text":
            texts.append(getattr(block, "text", "") or "")
        elif block_type == "tool_use":
            tool_calls.append(_tool_call(block))
    return ModelTurnResult(
        provider=provider,
        model=model,
        text="".join(texts),
        tool_calls=tool_calls,
        stop_reason=getattr(response, "stop_reason", None) or "end_turn",
        usage=anthropic_usage(response),
        latency_ms=latency_ms,
        response_model=str(getattr(response, "model", None) or ""),
        response_id=str(getattr(response, "id", None) or ""),
    )


def anthropic_usage(response: Any) -> Usage:
    """The contract's usage from a Messages API response (zeros where the server sent none).
    Anthropic's `input_tokens` leaves out the cached tokens; the contract's includes them."""
    usage = getattr(response, "usage", None)
    uncached = getattr(usage, "input_tokens", None) or 0
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    return Usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=getattr(usage, "output_tokens", None) or 0,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _tool_call(block: Any) -> ToolCall:
    # The SDK does not validate responses, so `input` is whatever JSON the server sent.
    arguments = getattr(block, "input", None)
    call_id = str(getattr(block, "id", ""))
    name = str(getattr(block, "name", ""))
    if isinstance(arguments, dict):
        return ToolCall(id=call_id, name=name, arguments=arguments)
    return ToolCall(
        id=call_id,
        name=name,
        arguments={},
        arguments_error=f"tool input must be a JSON object, got {type(arguments).__name__}",
    )
