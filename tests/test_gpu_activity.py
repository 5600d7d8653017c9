"""The GPU `model_turn` activity on the fake engine: guided output, validation, repair, heartbeats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities.gpu.activity import GpuModelActivities
from activities.gpu.structured import tools_schema, validation_problems
from contracts.model import Message, ModelTurnInput, ToolSpec
from policies.protocol import submit_output_spec, submit_plan_spec, submit_result_spec
from settings import Settings
from tests.fakes.gpu_engine import FakeEngine


def gpu_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of an isolated GPU worker (fast heartbeats for tests)."""
    values: dict[str, Any] = {"data_dir": tmp_path, "gpu_heartbeat_interval_s": 0.05, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def turn(tools: list[ToolSpec] | None = None, **fields: Any) -> ModelTurnInput:
    """A turn routed to the fake GPU model."""
    values: dict[str, Any] = {
        "run_id": "run-1",
        "step_id": "t1/turn-1",
        "provider": "vllm",
        "model": "fake-small",
        "system": "You classify support tickets.",
        "messages": [Message(role="user", content="Ticket: my invoice is wrong.")],
        "tools": tools if tools is not None else [submit_result_spec({"type": "object"})],
        **fields,
    }
    return ModelTurnInput(**values)


LABEL_TOOL = ToolSpec(
    name="label",
    description="Label the ticket",
    input_schema={
        "type": "object",
        "properties": {"category": {"type": "string", "enum": ["billing", "bug", "other"]}},
        "required": ["category"],
    },
)


async def test_guided_output_becomes_a_validated_tool_call_with_token_counts(tmp_path: Path) -> None:
    engine = FakeEngine()
    gpu = GpuModelActivities(engine, gpu_settings(tmp_path))
    result = await ActivityEnvironment().run(
        gpu.model_turn, turn([LABEL_TOOL, submit_result_spec({"type": "object"})])
    )

    assert result.provider == "vllm" and result.model == "fake-small"
    assert result.stop_reason == "tool_use"
    assert [c.name for c in result.tool_calls] == ["label"]
    assert result.tool_calls[0].arguments == {"category": "billing"}
    # The engine was asked for output guided by the schema of both tools.
    (call,) = engine.calls
    assert call["schema"] == tools_schema([LABEL_TOOL, submit_result_spec({"type": "object"})])
    assert "Ticket: my invoice is wrong." in call["prompts"][0]
    assert call["sampling"].max_tokens == 2048
    assert result.usage.input_tokens == len(call["prompts"][0].split()) > 0
    assert result.usage.output_tokens > 0
    assert gpu.metrics.completed == 1 and gpu.metrics.completion_tokens == result.usage.output_tokens


async def test_invalid_guided_output_gets_one_repair_attempt_and_both_are_counted(tmp_path: Path) -> None:
    engine = FakeEngine(invalid_outputs=1)
    gpu = GpuModelActivities(engine, gpu_settings(tmp_path))
    result = await ActivityEnvironment().run(gpu.model_turn, turn([LABEL_TOOL]))

    assert result.tool_calls[0].name == "label"
    assert len(engine.calls) == 2
    repair_prompt = engine.calls[1]["prompts"][0]
    assert "did not match the required JSON schema" in repair_prompt and "not valid JSON" in repair_prompt
    first_prompt_tokens = len(engine.calls[0]["prompts"][0].split())
    assert result.usage.input_tokens == first_prompt_tokens + len(repair_prompt.split())
    assert gpu.metrics.invalid_outputs == 1 and gpu.metrics.repairs == 1


async def test_output_still_invalid_after_repair_is_a_retryable_error(tmp_path: Path) -> None:
    engine = FakeEngine(invalid_outputs=5)
    gpu = GpuModelActivities(engine, gpu_settings(tmp_path))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(gpu.model_turn, turn([LABEL_TOOL]))

    assert caught.value.type == "GuidedOutputInvalid"
    assert not caught.value.non_retryable
    assert "not valid JSON" in caught.value.details[0]["problems"][0]
    assert len(engine.calls) == 2
    assert gpu.metrics.failed == 1 and gpu.metrics.in_flight == 0


async def test_generation_heartbeats_while_the_engine_works(tmp_path: Path) -> None:
    engine = FakeEngine(latency_s=0.5)
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    gpu = GpuModelActivities(engine, gpu_settings(tmp_path, gpu_heartbeat_interval_s=0.1))
    await env.run(gpu.model_turn, turn([LABEL_TOOL]))

    assert len(beats) >= 3
    assert all("generating_s" in details[0] for details in beats)


async def test_a_cancelled_turn_stops_its_generation(tmp_path: Path) -> None:
    engine = FakeEngine()
    release = engine.hold()
    env = ActivityEnvironment()
    gpu = GpuModelActivities(engine, gpu_settings(tmp_path))
    running = asyncio.ensure_future(env.run(gpu.model_turn, turn([LABEL_TOOL])))
    await asyncio.wait_for(engine.entered.wait(), timeout=10)
    env.cancel()
    with pytest.raises((asyncio.CancelledError, CancelledError)):
        await running
    assert engine.in_flight == 0  # the engine request was abandoned, not left running
    assert not release.is_set()


async def test_a_turn_for_another_provider_fails_fast_without_retries(tmp_path: Path) -> None:
    gpu = GpuModelActivities(FakeEngine(), gpu_settings(tmp_path))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(gpu.model_turn, turn(provider="anthropic", model="claude-sonnet-4-5"))
    assert caught.value.type == "UnknownProvider" and caught.value.non_retryable


async def test_a_turn_without_tools_returns_free_text(tmp_path: Path) -> None:
    engine = FakeEngine()
    gpu = GpuModelActivities(engine, gpu_settings(tmp_path))
    result = await ActivityEnvironment().run(gpu.model_turn, turn(tools=[]))
    assert result.text.startswith("fake answer to") and result.tool_calls == []
    assert engine.calls[0]["schema"] is None


def test_the_workflow_protocol_tools_give_schemas_that_validate_their_own_examples() -> None:
    tools = [submit_plan_spec(["write_file"], 4), submit_output_spec({"type": "object"}), LABEL_TOOL]
    schema = tools_schema(tools)
    assert schema is not None
    jsonschema.Draft202012Validator.check_schema(schema)
    plan_call = {
        "tool": "submit_plan",
        "arguments": {
            "tasks": [{"id": "t1", "kind": "execute", "instructions": "do it"}],
            "rationale": "one",
        },
    }
    value, problems = validation_problems(json.dumps(plan_call), schema)
    assert problems == [] and value == plan_call
    _, problems = validation_problems(
        json.dumps({"tool": "label", "arguments": {"category": "weather"}}), schema
    )
    assert problems, "an argument outside the tool's enum must not pass"
    _, problems = validation_problems(json.dumps({"tool": "drop_tables", "arguments": {}}), schema)
    assert problems, "a tool that was not offered must not pass"


def test_definitions_two_tools_name_differently_are_kept_apart() -> None:
    def tool(name: str, inner: dict[str, Any]) -> ToolSpec:
        return ToolSpec(
            name=name,
            description=name,
            input_schema={
                "type": "object",
                "properties": {"item": {"$ref": "#/$defs/Item"}},
                "required": ["item"],
                "$defs": {"Item": inner},
            },
        )

    schema = tools_schema([tool("a", {"type": "integer"}), tool("b", {"type": "string"})])
    assert schema is not None
    assert schema["$defs"] == {"Item": {"type": "integer"}, "b__Item": {"type": "string"}}
    assert validation_problems('{"tool": "a", "arguments": {"item": 3}}', schema)[1] == []
    assert validation_problems('{"tool": "b", "arguments": {"item": "x"}}', schema)[1] == []
    assert validation_problems('{"tool": "b", "arguments": {"item": 3}}', schema)[1]


def test_the_gpu_activity_serves_the_pinned_model_turn_contract() -> None:
    from temporalio import activity as temporal_activity

    from workflows.activity_stubs import ActivityNames

    defn = temporal_activity._Definition.from_callable(GpuModelActivities.model_turn)
    assert defn is not None and defn.name == ActivityNames.MODEL_TURN == "model_turn"


def test_gpu_metrics_are_exported_as_opentelemetry_gauges() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from activities.gpu.metrics import GpuMetrics, export_to_opentelemetry

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = GpuMetrics()
    export_to_opentelemetry(metrics, provider.get_meter("test"))
    metrics.activity_started(0.3)
    metrics.tokens(prompt=10, completion=7)
    data = reader.get_metrics_data()
    assert data is not None
    values = {
        m.name: m.data.data_points[0].value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert values["factory.gpu.activities_in_flight"] == 1
    assert values["factory.gpu.completion_tokens_total"] == 7
    assert values["factory.gpu.schedule_to_start_s_p95"] == 0.5
