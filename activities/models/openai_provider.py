"""OpenAI Chat Completions (and any compatible endpoint: vLLM's server, Ollama, a gateway)
behind the provider contract."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion

from activities.models.errors import MalformedResponseError
from contracts.model import Message, ModelTurnInput, ModelTurnResult, ToolCall, ToolSpec, Usage

# OpenAI's finish reasons in the contract's vocabulary (Anthropic's), so that callers branch on one set.
_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


class OpenAIProvider:
    """Answers a model turn with Chat Completions and function tools. SDK retries are off: the SDK's
    errors propagate and Temporal's retry policy decides what happens next."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 120.0,
        name: str = "openai",
        max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
    ) -> None:
        """`max_tokens_param`: OpenAI's own models want `max_completion_tokens` (reasoning models
        reject `max_tokens`); some compatible servers only understand the older `max_tokens`."""
        self.name = name
        self._max_tokens_param = max_tokens_param
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        """Send one Chat Completions request and translate the answer into the contract."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request.system, request.messages),
            "temperature": request.temperature,
            self._max_tokens_param: request.max_tokens,
        }
        if request.tools:
            params["tools"] = to_openai_tools(request.tools)

        started = time.perf_counter()
        response = await self._client.chat.completions.create(**params)
        latency_ms = (time.perf_counter() - started) * 1000
        return parse_chat_completion(response, provider=self.name, model=request.model, latency_ms=latency_ms)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs as Chat Completions function tools."""
    return [
        {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
        }
        for tool in tools
    ]


def to_openai_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    """Contract messages as Chat Completions messages: tool calls carry JSON-string arguments, and
    each tool result is its own `tool` message answering a `tool_call_id`."""
    converted: list[dict[str, Any]] = []
    if system:
        converted.append({"role": "system", "content": system})
    for message in messages:
        if message.role == "assistant":
            assistant: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                assistant["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for call in message.tool_calls
                ]
            elif assistant["content"] is None:
                assistant["content"] = ""
            converted.append(assistant)
        elif message.tool_results:
            # Chat Completions has no error flag on tool messages: say it in the content instead.
            converted.extend(
                {
                    "role": "tool",
                    "tool_call_id": result.tool_call_id,
                    "content": f"ERROR: {result.content}" if result.is_error else result.content,
                }
                for result in message.tool_results
            )
            if message.content:
                converted.append({"role": "user", "content": message.content})
        else:
            converted.append({"role": "user", "content": message.content})
    return converted


def parse_chat_completion(
    response: ChatCompletion, *, provider: str, model: str, latency_ms: float
) -> ModelTurnResult:
    """Text, tool calls, stop reason and token usage of a Chat Completions response. OpenAI's
    `prompt_tokens` already includes the cached tokens, as the contract's `input_tokens` does."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedResponseError("Chat Completions response has no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        raise MalformedResponseError("Chat Completions choice has no message")

    tool_calls = [_tool_call(call) for call in (getattr(message, "tool_calls", None) or [])]
    finish_reason = getattr(choice, "finish_reason", None) or "stop"

    usage = getattr(response, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None)
    prompt_tokens = getattr(usage, "prompt_tokens", None) or 0
    cache_read = getattr(details, "cached_tokens", None) or 0
    cache_write = getattr(details, "cache_write_tokens", None) or 0
    return ModelTurnResult(
        provider=provider,
        model=model,
        text=getattr(message, "content", None) or "",
        tool_calls=tool_calls,
        stop_reason=_STOP_REASONS.get(finish_reason, finish_reason),
        usage=Usage(
            input_tokens=prompt_tokens,
            output_tokens=getattr(usage, "completion_tokens", None) or 0,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        ),
        latency_ms=latency_ms,
        response_model=str(getattr(response, "model", None) or ""),
        response_id=str(getattr(response, "id", None) or ""),
    )


def _tool_call(call: Any) -> ToolCall:
    call_id = str(getattr(call, "id", ""))
    function = getattr(call, "function", None)
    if function is None:
        custom = getattr(call, "custom", None)
        return ToolCall(
            id=call_id,
            name=str(getattr(custom, "name", "")),
            arguments={},
            arguments_error=f"unsupported tool call type {getattr(call, 'type', None)!r}",
        )
    name = str(getattr(function, "name", ""))
    arguments, error = parse_arguments(getattr(function, "arguments", None))
    return ToolCall(id=call_id, name=name, arguments=arguments, arguments_error=error)


def parse_arguments(raw: object) -> tuple[dict[str, Any], str | None]:
    """Decode a tool call's arguments: (arguments, None), or ({}, why) when they are not a JSON
    object. Never raises: the engine answers a bad call with a tool error, not a crash."""
    if isinstance(raw, dict):
        # Some compatible servers send the object itself instead of a JSON string.
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        # An empty string is how some servers spell "no arguments".
        return {}, None
    if not isinstance(raw, str):
        return {}, f"tool arguments must be a JSON object, got {type(raw).__name__}"
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, f"tool arguments are not valid JSON: {exc.msg} at position {exc.pos}"
    if not isinstance(decoded, dict):
        return {}, f"tool arguments must be a JSON object, got {type(decoded).__name__}"
    return decoded, None
