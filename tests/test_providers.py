"""The real Anthropic and OpenAI SDKs, through our providers, against a local server that speaks
their APIs: request shape, response parsing, usage, and the mapping of every failure to a typed
Temporal error (with SDK retries off: one HTTP request per call)."""

from __future__ import annotations

import email.utils
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.models.anthropic_provider import AnthropicProvider
from activities.models.base import ProviderRegistry
from activities.models.errors import retry_after_seconds, to_application_error
from activities.models.factory import build_provider_registry, default_model_for
from activities.models.openai_provider import OpenAIProvider
from contracts.model import Message, ModelTurnInput, ModelTurnResult, ToolCall, ToolResultBlock, ToolSpec
from policies.pricing import PRICES
from policies.routing import DEFAULT_MODELS
from settings import Settings
from tests.fakes.provider_server import (
    ANTHROPIC_MESSAGES_PATH,
    OPENAI_CHAT_PATH,
    FakeProviderServer,
    ScriptedResponse,
    anthropic_error,
    anthropic_message,
    anthropic_text,
    anthropic_tool_use,
    openai_completion,
    openai_error,
    openai_tool_call,
    truncated_json,
)

API_KEY = "sk-test-7f3a9c1e5b2d4a6f8e0c"

WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK_TOOL = ToolSpec(
    name="get_time",
    description="Current time in a timezone.",
    input_schema={"type": "object", "properties": {"tz": {"type": "string"}}},
)


def turn(messages: list[Message] | None = None, *, tools: list[ToolSpec] | None = None) -> ModelTurnInput:
    return ModelTurnInput(
        run_id="run-1",
        step_id="step-1",
        provider="under-test",
        model="test-model",
        system="You are a careful assistant.",
        messages=messages or [Message(role="user", content="What is the weather in Oslo?")],
        tools=[WEATHER_TOOL, CLOCK_TOOL] if tools is None else tools,
        max_tokens=256,
    )


def conversation_after_a_tool_call() -> list[Message]:
    """User asks, the model calls two tools, both results come back (one of them failed)."""
    return [
        Message(role="user", content="Weather and time in Oslo?"),
        Message(
            role="assistant",
            content="Let me look that up.",
            tool_calls=[
                ToolCall(id="call_weather", name="get_weather", arguments={"city": "Oslo"}),
                ToolCall(id="call_time", name="get_time", arguments={"tz": "Europe/Oslo"}),
            ],
        ),
        Message(
            role="tool",
            tool_results=[
                ToolResultBlock(tool_call_id="call_weather", name="get_weather", content="4°C, light rain"),
                ToolResultBlock(
                    tool_call_id="call_time", name="get_time", content="tz not found", is_error=True
                ),
            ],
        ),
    ]


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


@pytest.fixture
async def anthropic_provider(server: FakeProviderServer) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(api_key=API_KEY, base_url=server.anthropic_base_url, timeout=5)
    yield provider
    await provider.aclose()


@pytest.fixture
async def openai_provider(server: FakeProviderServer) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(api_key=API_KEY, base_url=server.openai_base_url, timeout=5)
    yield provider
    await provider.aclose()


@dataclass
class Vendor:
    """One provider under test, with its path and error body shape, for tests both must pass."""

    name: str
    provider: AnthropicProvider | OpenAIProvider
    path: str

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> ScriptedResponse:
        if self.name == "anthropic":
            return anthropic_error(status, message, headers=headers)
        error_type = {429: "requests", 401: "invalid_request_error"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return openai_error(status, message, error_type=error_type, headers=headers)

    def ok(self) -> ScriptedResponse:
        if self.name == "anthropic":
            return anthropic_message(anthropic_text("ok"))
        return openai_completion("ok")


@pytest.fixture(params=["anthropic", "openai"])
async def vendor(request: pytest.FixtureRequest, server: FakeProviderServer) -> AsyncIterator[Vendor]:
    provider: AnthropicProvider | OpenAIProvider
    if request.param == "anthropic":
        provider = AnthropicProvider(api_key=API_KEY, base_url=server.anthropic_base_url, timeout=5)
        yield Vendor("anthropic", provider, ANTHROPIC_MESSAGES_PATH)
    else:
        provider = OpenAIProvider(api_key=API_KEY, base_url=server.openai_base_url, timeout=5)
        yield Vendor("openai", provider, OPENAI_CHAT_PATH)
    await provider.aclose()


async def failure_of(vendor: Vendor, request: ModelTurnInput | None = None) -> ApplicationError:
    """Call the provider, expect an SDK error, and map it as the activity does."""
    with pytest.raises(Exception) as raised:
        await vendor.provider.complete(request or turn())
    return to_application_error(raised.value, provider=vendor.name)


def assert_no_secret(error: ApplicationError) -> None:
    assert API_KEY not in str(error)
    assert API_KEY not in error.message
    assert API_KEY not in repr(error.details)


# --- Anthropic: request and response ---


async def test_anthropic_tool_use_turn_yields_tool_calls_with_id_name_and_arguments(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider
) -> None:
    server.enqueue_anthropic(
        anthropic_message(
            anthropic_text("Checking the weather."),
            anthropic_tool_use("toolu_01A", "get_weather", {"city": "Oslo"}),
            stop_reason="tool_use",
        )
    )

    result = await anthropic_provider.complete(turn())

    assert result.provider == "anthropic"
    assert result.model == "test-model"
    assert result.text == "Checking the weather."
    assert result.stop_reason == "tool_use"
    assert result.tool_calls == [ToolCall(id="toolu_01A", name="get_weather", arguments={"city": "Oslo"})]
    assert result.latency_ms > 0


async def test_anthropic_request_marks_the_system_prompt_and_the_last_tool_as_cache_breakpoints(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider
) -> None:
    server.enqueue_anthropic(anthropic_message(anthropic_text("ok")))

    await anthropic_provider.complete(turn())

    sent = server.requests_to(ANTHROPIC_MESSAGES_PATH)[0].json()
    assert sent["model"] == "test-model"
    assert sent["max_tokens"] == 256
    assert sent["system"] == [
        {"type": "text", "text": "You are a careful assistant.", "cache_control": {"type": "ephemeral"}}
    ]
    assert [tool["name"] for tool in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL.input_schema
    assert sent["tools"][0]["description"] == WEATHER_TOOL.description
    assert "cache_control" not in sent["tools"][0]
    assert sent["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert sent["messages"] == [{"role": "user", "content": "What is the weather in Oslo?"}]


async def test_anthropic_tool_results_go_back_as_a_user_turn_of_tool_result_blocks(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider
) -> None:
    server.enqueue_anthropic(anthropic_message(anthropic_text("It is 4°C and raining.")))

    result = await anthropic_provider.complete(turn(conversation_after_a_tool_call()))

    assert result.text == "It is 4°C and raining."
    messages = server.requests_to(ANTHROPIC_MESSAGES_PATH)[0].json()["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look that up."},
            {"type": "tool_use", "id": "call_weather", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_time", "name": "get_time", "input": {"tz": "Europe/Oslo"}},
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "call_weather",
                "content": "4°C, light rain",
                "is_error": False,
            },
            {"type": "tool_result", "tool_use_id": "call_time", "content": "tz not found", "is_error": True},
        ],
    }


async def test_anthropic_usage_reports_input_output_and_cache_tokens(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider
) -> None:
    server.enqueue_anthropic(
        anthropic_message(
            anthropic_text("ok"),
            input_tokens=21,
            output_tokens=13,
            cache_read_input_tokens=1800,
            cache_creation_input_tokens=250,
        )
    )

    result = await anthropic_provider.complete(turn())

    # Anthropic counts cached tokens apart from input_tokens; the contract's input_tokens includes them.
    assert result.usage.input_tokens == 21 + 1800 + 250
    assert result.usage.output_tokens == 13
    assert result.usage.cache_read_tokens == 1800
    assert result.usage.cache_write_tokens == 250


async def test_anthropic_usage_counts_null_cache_fields_as_zero(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider
) -> None:
    server.enqueue_anthropic(
        anthropic_message(
            anthropic_text("ok"), cache_read_input_tokens=None, cache_creation_input_tokens=None
        )
    )

    result = await anthropic_provider.complete(turn())

    assert (result.usage.cache_read_tokens, result.usage.cache_write_tokens) == (0, 0)


@pytest.mark.parametrize("tool_input", ['{"city": "Oslo"}', ["Oslo"], None])
async def test_anthropic_tool_input_that_is_not_an_object_sets_arguments_error(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider, tool_input: Any
) -> None:
    server.enqueue_anthropic(
        anthropic_message(anthropic_tool_use("toolu_bad", "get_weather", tool_input), stop_reason="tool_use")
    )

    result = await anthropic_provider.complete(turn())

    [call] = result.tool_calls
    assert (call.id, call.name, call.arguments) == ("toolu_bad", "get_weather", {})
    assert call.arguments_error


# --- OpenAI: request and response ---


async def test_openai_tool_call_arguments_are_decoded_from_their_json_string(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    server.enqueue_openai(
        openai_completion(tool_calls=[openai_tool_call("call_abc", "get_weather", '{"city": "Oslo"}')])
    )

    result = await openai_provider.complete(turn())

    assert result.provider == "openai"
    assert result.model == "test-model"
    assert result.stop_reason == "tool_use"
    assert result.tool_calls == [ToolCall(id="call_abc", name="get_weather", arguments={"city": "Oslo"})]


async def test_openai_request_sends_function_tools_and_the_system_prompt_first(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    server.enqueue_openai(openai_completion("ok"))

    await openai_provider.complete(turn())

    sent = server.requests_to(OPENAI_CHAT_PATH)[0].json()
    assert sent["model"] == "test-model"
    assert sent["max_completion_tokens"] == 256
    assert sent["temperature"] == 0.0
    assert sent["messages"] == [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "What is the weather in Oslo?"},
    ]
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": WEATHER_TOOL.description,
            "parameters": WEATHER_TOOL.input_schema,
        },
    }


async def test_openai_tool_results_go_back_as_tool_messages_answering_each_call_id(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    server.enqueue_openai(openai_completion("It is 4°C and raining."))

    result = await openai_provider.complete(turn(conversation_after_a_tool_call()))

    assert (result.text, result.stop_reason) == ("It is 4°C and raining.", "end_turn")
    messages = server.requests_to(OPENAI_CHAT_PATH)[0].json()["messages"]
    assistant = messages[2]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == "Let me look that up."
    assert [(call["id"], call["type"], call["function"]["name"]) for call in assistant["tool_calls"]] == [
        ("call_weather", "function", "get_weather"),
        ("call_time", "function", "get_time"),
    ]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert messages[3] == {"role": "tool", "tool_call_id": "call_weather", "content": "4°C, light rain"}
    assert messages[4]["role"] == "tool"
    assert messages[4]["tool_call_id"] == "call_time"
    assert "tz not found" in messages[4]["content"]
    assert messages[4]["content"].startswith("ERROR")


async def test_openai_usage_reports_cached_prompt_tokens_as_cache_reads(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    server.enqueue_openai(
        openai_completion("ok", prompt_tokens=2000, completion_tokens=40, cached_tokens=1536)
    )

    result = await openai_provider.complete(turn())

    # OpenAI's prompt_tokens already include the cached ones, as the contract's input_tokens do.
    assert result.usage.input_tokens == 2000
    assert result.usage.cache_read_tokens == 1536
    assert result.usage.output_tokens == 40
    assert result.usage.cache_write_tokens == 0


async def test_openai_usage_without_prompt_token_details_counts_no_cache_reads(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    response = openai_completion("ok", prompt_tokens=30, completion_tokens=7)
    del response.body["usage"]["prompt_tokens_details"]
    server.enqueue_openai(response)

    result = await openai_provider.complete(turn())

    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cache_read_tokens) == (
        30,
        7,
        0,
    )


@pytest.mark.parametrize(
    "arguments",
    ['{"city": "Oslo"', "not json at all", '["Oslo"]', '"Oslo"', "null"],
    ids=["truncated", "prose", "array", "string", "null"],
)
async def test_openai_malformed_tool_arguments_set_arguments_error_instead_of_raising(
    server: FakeProviderServer, openai_provider: OpenAIProvider, arguments: str
) -> None:
    server.enqueue_openai(
        openai_completion(
            tool_calls=[
                openai_tool_call("call_bad", "get_weather", arguments),
                openai_tool_call("call_good", "get_time", '{"tz": "UTC"}'),
            ]
        )
    )

    result = await openai_provider.complete(turn())

    bad, good = result.tool_calls
    assert (bad.id, bad.name, bad.arguments) == ("call_bad", "get_weather", {})
    assert bad.arguments_error
    assert good == ToolCall(id="call_good", name="get_time", arguments={"tz": "UTC"})


async def test_openai_empty_tool_arguments_mean_no_arguments(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    server.enqueue_openai(openai_completion(tool_calls=[openai_tool_call("call_1", "get_time", "")]))

    result = await openai_provider.complete(turn())

    assert result.tool_calls == [ToolCall(id="call_1", name="get_time", arguments={})]


async def test_openai_length_finish_reason_reads_as_max_tokens(
    server: FakeProviderServer, openai_provider: OpenAIProvider
) -> None:
    server.enqueue_openai(openai_completion("cut off", finish_reason="length"))

    result = await openai_provider.complete(turn())

    assert result.stop_reason == "max_tokens"


# --- failures, for both providers ---


@pytest.mark.parametrize(
    ("status", "expected_type", "retryable"),
    [
        (429, "ProviderRateLimited", True),
        (529, "ProviderOverloaded", True),
        (500, "ProviderServerError", True),
        (503, "ProviderServerError", True),
        (400, "ProviderBadRequest", False),
        (401, "ProviderAuthError", False),
        (403, "ProviderAuthError", False),
        (404, "ProviderNotFound", False),
        (422, "ProviderBadRequest", False),
    ],
)
async def test_http_errors_become_typed_application_errors_after_exactly_one_request(
    server: FakeProviderServer, vendor: Vendor, status: int, expected_type: str, retryable: bool
) -> None:
    server.enqueue(vendor.path, vendor.error(status, f"scripted {status}"), vendor.ok())

    error = await failure_of(vendor)

    assert error.type == expected_type
    assert error.non_retryable is not retryable
    [details] = error.details
    assert details["provider"] == vendor.name
    assert details["status"] == status
    assert f"scripted {status}" in error.message
    # SDK retries are off: Temporal owns retries, so the SDK sent one request and gave up.
    assert len(server.requests) == 1


async def test_rate_limit_retry_after_header_becomes_the_next_retry_delay(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    server.enqueue(vendor.path, vendor.error(429, "slow down", headers={"retry-after": "7"}))

    error = await failure_of(vendor)

    assert error.type == "ProviderRateLimited"
    assert not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=7)
    assert error.details[0]["retry_after_s"] == 7
    assert len(server.requests) == 1


async def test_overloaded_with_retry_after_ms_waits_that_many_milliseconds(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    server.enqueue(vendor.path, vendor.error(529, "Overloaded", headers={"retry-after-ms": "1500"}))

    error = await failure_of(vendor)

    assert error.type == "ProviderOverloaded"
    assert error.next_retry_delay == timedelta(milliseconds=1500)


async def test_server_error_without_retry_after_leaves_the_delay_to_the_retry_policy(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    server.enqueue(vendor.path, vendor.error(500, "boom"))

    error = await failure_of(vendor)

    assert error.next_retry_delay is None


async def test_the_request_id_header_is_reported_in_the_error_details(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    header = "request-id" if vendor.name == "anthropic" else "x-request-id"
    server.enqueue(vendor.path, vendor.error(500, "boom", headers={header: "req_0123456789abcdef"}))

    error = await failure_of(vendor)

    assert error.details[0]["request_id"] == "req_0123456789abcdef"


async def test_a_truncated_json_body_is_a_retryable_malformed_response(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    server.enqueue(vendor.path, truncated_json(), vendor.ok())

    error = await failure_of(vendor)

    assert error.type == "ProviderMalformedResponse"
    assert not error.non_retryable
    assert len(server.requests) == 1


async def test_a_json_body_of_the_wrong_shape_is_a_retryable_malformed_response(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    server.enqueue(vendor.path, ScriptedResponse(200, {"unexpected": True}))

    error = await failure_of(vendor)

    assert error.type == "ProviderMalformedResponse"
    assert not error.non_retryable


async def test_the_api_key_never_appears_in_the_error_even_when_the_server_echoes_it(
    server: FakeProviderServer, vendor: Vendor
) -> None:
    echo = f"Incorrect API key provided: {API_KEY}. Header was 'Bearer {API_KEY}'."
    server.enqueue(vendor.path, vendor.error(401, echo))

    with pytest.raises(Exception) as raised:
        await vendor.provider.complete(turn())
    error = to_application_error(raised.value, provider=vendor.name)

    assert error.type == "ProviderAuthError"
    assert error.non_retryable
    assert "[redacted]" in error.message
    assert_no_secret(error)
    # The activity raises `from` the SDK error, and Temporal records the cause's message as well.
    assert API_KEY not in str(raised.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("status", [429, 500, 400])
async def test_no_error_carries_the_api_key(server: FakeProviderServer, vendor: Vendor, status: int) -> None:
    server.enqueue(vendor.path, vendor.error(status, "nope", headers={"retry-after": "1"}))

    assert_no_secret(await failure_of(vendor))


async def test_a_request_that_times_out_is_a_retryable_timeout(server: FakeProviderServer) -> None:
    server.enqueue_anthropic(ScriptedResponse(200, {}, delay_s=1.5))
    server.enqueue_openai(ScriptedResponse(200, {}, delay_s=1.5))
    providers: list[tuple[str, AnthropicProvider | OpenAIProvider]] = [
        ("anthropic", AnthropicProvider(api_key=API_KEY, base_url=server.anthropic_base_url, timeout=0.3)),
        ("openai", OpenAIProvider(api_key=API_KEY, base_url=server.openai_base_url, timeout=0.3)),
    ]
    for name, provider in providers:
        with pytest.raises(Exception) as raised:
            await provider.complete(turn())
        await provider.aclose()

        error = to_application_error(raised.value, provider=name)

        assert error.type == "ProviderTimeout"
        assert not error.non_retryable
        assert_no_secret(error)
    assert len(server.requests) == 2


async def test_an_unreachable_endpoint_is_a_retryable_connection_error() -> None:
    with FakeProviderServer() as gone:
        anthropic_url, openai_url = gone.anthropic_base_url, gone.openai_base_url
    providers: list[tuple[str, AnthropicProvider | OpenAIProvider]] = [
        ("anthropic", AnthropicProvider(api_key=API_KEY, base_url=anthropic_url, timeout=2)),
        ("openai", OpenAIProvider(api_key=API_KEY, base_url=openai_url, timeout=2)),
    ]
    for name, provider in providers:
        with pytest.raises(Exception) as raised:
            await provider.complete(turn())
        await provider.aclose()

        error = to_application_error(raised.value, provider=name)

        assert error.type == "ProviderConnectionError"
        assert not error.non_retryable
        assert_no_secret(error)


# --- retry-after parsing ---


def test_retry_after_seconds_reads_seconds_milliseconds_and_http_dates() -> None:
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)

    assert retry_after_seconds({"retry-after": "7"}) == 7
    assert retry_after_seconds({"Retry-After": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    from_date = retry_after_seconds({"retry-after": in_a_minute})
    assert from_date is not None and 55 <= from_date <= 60


def test_retry_after_seconds_is_none_without_a_usable_header() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) is None
    assert retry_after_seconds({"retry-after": "nan"}) is None


def test_retry_after_in_the_past_means_no_wait() -> None:
    a_minute_ago = email.utils.formatdate(time.time() - 60, usegmt=True)

    assert retry_after_seconds({"retry-after": a_minute_ago}) == 0


# --- the registry a worker builds ---


def settings_with(**values: Any) -> Settings:
    blank: dict[str, Any] = {
        "anthropic_api_key": None,
        "anthropic_base_url": None,
        "openai_api_key": None,
        "openai_base_url": None,
    }
    return Settings(_env_file=None, **{**blank, **values})  # type: ignore[call-arg]


def test_the_registry_holds_only_the_providers_whose_settings_are_present() -> None:
    assert build_provider_registry(settings_with()).names() == []
    assert build_provider_registry(settings_with(anthropic_api_key="k")).names() == ["anthropic"]
    assert build_provider_registry(settings_with(openai_api_key="k")).names() == ["openai"]
    both = build_provider_registry(
        settings_with(anthropic_api_key="k", openai_base_url="http://localhost:8000/v1")
    )
    assert both.names() == ["anthropic", "openai"]
    assert isinstance(both.get("anthropic"), AnthropicProvider)
    assert isinstance(both.get("openai"), OpenAIProvider)


def test_the_registry_never_registers_the_offline_model_by_itself() -> None:
    registry = build_provider_registry(settings_with(anthropic_api_key="k", openai_api_key="k"))

    assert "offline" not in registry.names()


def test_extra_providers_are_registered_alongside_the_real_ones() -> None:
    class Scripted:
        name = "offline"

        async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
            return ModelTurnResult(provider=self.name, model=request.model, offline=True)

    registry: ProviderRegistry = build_provider_registry(
        settings_with(anthropic_api_key="k"), extra=[Scripted()]
    )

    assert registry.names() == ["anthropic", "offline"]


async def test_an_openai_compatible_endpoint_without_a_key_is_called_with_a_placeholder_key(
    server: FakeProviderServer,
) -> None:
    registry = build_provider_registry(settings_with(openai_base_url=server.openai_base_url))
    provider = registry.get("openai")
    assert isinstance(provider, OpenAIProvider)
    server.enqueue_openai(openai_completion("hello from a local model"))

    result = await provider.complete(turn(tools=[]))
    await provider.aclose()

    assert result.text == "hello from a local model"
    [request] = server.requests
    assert request.headers["authorization"] == "Bearer unused"
    sent = request.json()
    assert sent["max_tokens"] == 256
    assert "tools" not in sent


def test_each_provider_has_a_default_model() -> None:
    assert default_model_for("anthropic") == "claude-sonnet-4-6"
    assert default_model_for("openai") == "gpt-4o-mini"
    assert default_model_for("offline") == "offline-v1"
    with pytest.raises(ValueError):
        default_model_for("nobody")


def test_default_models_are_in_the_price_table() -> None:
    # A routed model the price table lacks is refused at VALIDATING (cost governance).
    for model in DEFAULT_MODELS.values():
        assert model in PRICES, model


@pytest.mark.parametrize(
    ("model", "deprecated"), [(DEFAULT_MODELS["anthropic"], False), ("claude-sonnet-4-5", True)]
)
async def test_the_anthropic_default_is_not_a_model_the_sdk_warns_is_reaching_end_of_life(
    server: FakeProviderServer, anthropic_provider: AnthropicProvider, model: str, deprecated: bool
) -> None:
    # The SDK warns on a request for a model past or near its end-of-life date; the default must
    # not be one (claude-sonnet-4-5, the old default, is the control).
    server.enqueue_anthropic(anthropic_message(anthropic_text("ok")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await anthropic_provider.complete(turn().model_copy(update={"model": model}))
    end_of_life = [
        w for w in caught if issubclass(w.category, DeprecationWarning) and model in str(w.message)
    ]
    assert bool(end_of_life) is deprecated, [str(w.message) for w in caught]
    assert server.requests_to(ANTHROPIC_MESSAGES_PATH)[0].json()["model"] == model
