"""A real provider SDK (Anthropic's, against the local fake server) answering 200 with a body we
cannot use but with usage: the billed tokens travel with the error into the ledger."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.ledger import Ledger, schema
from activities.model_turn import ModelActivities
from activities.models.anthropic_provider import AnthropicProvider
from activities.models.base import ProviderRegistry
from activities.models.billing import billed_usage
from activities.models.errors import MalformedResponseError
from contracts.model import Message, ModelTurnInput
from tests.fakes.provider_server import FakeProviderServer, ScriptedResponse

BODY_WITHOUT_CONTENT = {
    "id": "msg_0123",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": None,
    "stop_reason": "max_tokens",
    "usage": {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 800},
}


def turn(run_id: str) -> ModelTurnInput:
    return ModelTurnInput(
        run_id=run_id,
        step_id="t1/turn-1",
        provider="anthropic",
        model="claude-haiku-4-5",
        messages=[Message(role="user", content="hello")],
        max_tokens=300,
    )


async def test_a_malformed_but_billed_anthropic_answer_carries_its_usage() -> None:
    with FakeProviderServer() as server:
        server.enqueue_anthropic(ScriptedResponse(200, BODY_WITHOUT_CONTENT))
        provider = AnthropicProvider(api_key="sk-test", base_url=server.anthropic_base_url)
        with pytest.raises(MalformedResponseError) as raised:
            await provider.complete(turn("r"))
        await provider.aclose()
    usage = billed_usage(raised.value)
    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (2000, 800, 300)


async def test_the_billed_failure_is_written_to_the_ledger_and_reported_to_the_workflow(
    sqlite_ledger: Ledger,
) -> None:
    run_id = "billed-failure-run"
    with FakeProviderServer() as server:
        server.enqueue_anthropic(ScriptedResponse(200, BODY_WITHOUT_CONTENT))
        registry = ProviderRegistry()
        provider = AnthropicProvider(api_key="sk-test", base_url=server.anthropic_base_url)
        registry.register(provider)
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(ModelActivities(registry, sqlite_ledger).model_turn, turn(run_id))
        await provider.aclose()
    assert raised.value.type == "ProviderMalformedResponse" and not raised.value.non_retryable
    details = raised.value.details[0]
    assert details["billed_usage"]["input_tokens"] == 2000
    # 1,200 uncached at $1/M + 800 cache reads at $0.10/M + 300 output at $5/M
    assert details["billed_cost_usd"] == pytest.approx((1200 * 1.0 + 800 * 0.10 + 300 * 5.0) / 1e6)
    [row] = await sqlite_ledger.rows(schema.model_calls, run_id=run_id)
    assert row["status"] == "failed" and row["error_type"] == "ProviderMalformedResponse"
    assert row["cost_usd"] == pytest.approx(details["billed_cost_usd"])
