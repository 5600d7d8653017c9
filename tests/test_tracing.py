"""One run is one trace: client → workflow → states → activities → model and tool calls."""

from __future__ import annotations

import contextvars
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from contracts.model import ToolCall
from observability import redaction, tracing
from observability.logs import configure_logging
from observability.setup import init_telemetry
from starter import make_request, start_run
from tests.fakes.telemetry import (
    glossary_catalog,
    lookup_tools,
    memory_spans,
    observed_client,
    search_attributes_ready,
    settings_for_test,
    spans_of_trace,
)
from worker import build_worker
from workflows.telemetry import RunTelemetry


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def _parent_name(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str | None:
    if span.parent is None:
        return None
    parent = by_id.get(span.parent.span_id)
    return parent.name if parent else f"<missing {span.parent.span_id:x}>"


async def test_a_whole_run_is_one_trace_with_state_model_and_tool_spans(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    settings, client, activities = await _glossary_setup(env, tmp_path, metrics=False)
    async with build_worker(client, settings, task_queue=task_queue, activities=activities):
        request = make_request("glossary", input_value={"terms": ["replay", "history"]})
        handle = await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
        result = await handle.result()
    assert result.state == "COMPLETE", result.error

    roots = [
        s
        for s in memory_spans().get_finished_spans()
        if s.name == "StartWorkflow:AgentRunWorkflow"
        and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    assert len(roots) == 1
    root = roots[0]
    spans = spans_of_trace(root.context.trace_id)
    by_id = {s.context.span_id: s for s in spans}
    names = _by_name(spans)

    # Everything this run produced is in this one trace, and every span's parent is in it too.
    assert all(s.parent is None or s.parent.span_id in by_id for s in spans)
    assert [s.name for s in spans if s.parent is None] == ["StartWorkflow:AgentRunWorkflow"]

    run = names["RunWorkflow:AgentRunWorkflow"]
    assert len(run) == 1 and _parent_name(run[0], by_id) == "StartWorkflow:AgentRunWorkflow"

    # One span per state, in order, each a child of the workflow's span; none twice (no replay copies).
    state_spans = sorted((s for s in spans if s.name.startswith("state ")), key=lambda s: s.start_time or 0)
    assert [s.name.removeprefix("state ") for s in state_spans] == result.states_visited
    assert {_parent_name(s, by_id) for s in state_spans} == {"RunWorkflow:AgentRunWorkflow"}
    assert state_spans[-1].attributes["factory.blueprint"] == "glossary@1.0.0"

    # Model calls: activity spans under the state that made them, a GenAI span under each.
    chats = names["chat offline-v1"]
    assert len(chats) == len([s for s in spans if s.name == "RunActivity:model_turn"]) >= 4
    for chat in chats:
        assert _parent_name(chat, by_id) == "RunActivity:model_turn"
        run_activity = by_id[chat.parent.span_id]
        start_activity = by_id[run_activity.parent.span_id]
        assert start_activity.name == "StartActivity:model_turn"
        assert _parent_name(start_activity, by_id) in {"state PLANNING", "state EXECUTING"}
        attrs = chat.attributes or {}
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.system"] == "offline"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "offline-v1"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 0
        assert list(attrs["gen_ai.response.finish_reasons"]) == ["tool_use"]
        assert attrs["factory.cost_usd"] == 0.0
        assert 0 < attrs["factory.context_utilization"] < 1
        assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs  # content off
    plan_chats = [c for c in chats if c.attributes["factory.step_kind"] == "plan"]
    assert len(plan_chats) == 1

    # Tool calls: the workflow's execute_tool span (policy decision, status) → activity → tool run.
    tools = names["execute_tool lookup"]
    assert len(tools) == 2  # one per term
    for tool in tools:
        assert _parent_name(tool, by_id) == "state EXECUTING"
        assert tool.attributes["factory.tool.decision"] == "allowed"
        assert tool.attributes["factory.tool.status"] == "ok"
        assert tool.attributes["gen_ai.tool.name"] == "lookup"
    tool_runs = names["tool.run lookup"]
    assert len(tool_runs) == 2
    for run_span in tool_runs:
        activity_span = by_id[run_span.parent.span_id]
        assert activity_span.name == "RunActivity:call_tool"
        assert _parent_name(by_id[activity_span.parent.span_id], by_id) == "execute_tool lookup"
        assert run_span.attributes["factory.tool.status"] == "ok"


def test_redacting_span_processor_blanks_secrets_in_attributes_events_and_status() -> None:
    from opentelemetry.sdk.trace import Event
    from opentelemetry.trace import Status, StatusCode

    from observability.tracing import redacted_span

    previous = redaction.current()
    redaction.install(redaction.Redactor.build(["authorization"], ["s3cr3t-value-123456"]))
    try:
        span = ReadableSpan(
            name="call",
            attributes={"authorization": "Bearer abc", "note": "key s3cr3t-value-123456 here", "n": 3},
            events=[Event("exception", {"exception.message": "failed with s3cr3t-value-123456"})],
            status=Status(StatusCode.ERROR, "boom s3cr3t-value-123456"),
        )
        clean = redacted_span(span)
    finally:
        redaction.install(previous)
    assert clean.attributes == {"authorization": "[redacted]", "note": "key [redacted] here", "n": 3}
    assert clean.events[0].attributes["exception.message"] == "failed with [redacted]"
    assert clean.status.description == "boom [redacted]"


@contextmanager
def _captured_logs(level: str) -> Iterator[io.StringIO]:
    """Log lines (JSON) written meanwhile at `level`, in a string; the root logger restored after."""
    stream = io.StringIO()
    root = logging.getLogger()
    previous = root.level
    handler = configure_logging(level, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def _glossary_setup(
    env: WorkflowEnvironment, tmp_path: Path, *, metrics: bool = True
) -> tuple[Any, Client, list[Any]]:
    """Settings, an observed client and the activities of glossary runs on the offline model;
    spans kept in memory, and with `metrics`, metrics too (no port: the Prometheus registry)."""
    settings = settings_for_test(tmp_path)
    init_telemetry(settings, logs=False, metrics=metrics)
    memory_spans()
    client = observed_client(env.client, settings)
    await search_attributes_ready(client)
    catalog = glossary_catalog()
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    activities = build_activities(settings, catalog=catalog, tools=lookup_tools(), providers=providers)
    return settings, client, activities


async def test_replaying_a_run_writes_no_log_line_span_or_metric(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    from prometheus_client import REGISTRY, generate_latest
    from temporalio.worker import Replayer

    from observability.codec import data_converter
    from observability.tracing import client_plugins
    from worker import WORKFLOWS
    from workflows.sandbox import sandbox_runner

    settings, client, activities = await _glossary_setup(env, tmp_path)
    # DEBUG: every move is logged, so replay has the most lines it could wrongly repeat.
    with _captured_logs("DEBUG") as stream:
        async with build_worker(client, settings, task_queue=task_queue, activities=activities):
            request = make_request("glossary", input_value={"terms": ["replay"]})
            result = await (
                await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
            ).result()
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        live_lines = [line for line in stream.getvalue().splitlines() if workflow_id in line]
        spans_before = len(memory_spans().get_finished_spans())
        runs_before = _runs_total(generate_latest(REGISTRY).decode())

        replay = await Replayer(
            workflows=WORKFLOWS,
            data_converter=data_converter(settings),
            workflow_runner=sandbox_runner(),
            plugins=client_plugins(),  # the same tracing a worker replaying after eviction has
        ).replay_workflow(history)

        replay_lines = [line for line in stream.getvalue().splitlines() if workflow_id in line][
            len(live_lines) :
        ]
    assert result.state == "COMPLETE" and replay.replay_failure is None
    assert sum('"event": "state ' in line for line in live_lines) == len(result.states_visited) - 1
    assert replay_lines == []
    tracing_provider_flush()
    assert len(memory_spans().get_finished_spans()) == spans_before
    assert _runs_total(generate_latest(REGISTRY).decode()) == runs_before >= 1


async def test_at_info_a_healthy_run_logs_one_line_with_its_path_and_a_rejected_one_its_rejection(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    import json

    settings, client, activities = await _glossary_setup(env, tmp_path)
    rejected_id = f"{workflow_id}-rejected"
    with _captured_logs("INFO") as stream:
        async with build_worker(client, settings, task_queue=task_queue, activities=activities):
            good = make_request("glossary", input_value={"terms": ["replay", "shard"]})
            result = await (
                await start_run(client, good, task_queue=task_queue, workflow_id=workflow_id)
            ).result()
            bad = make_request("glossary", input_value={"terms": "not a list"})
            rejected = await (
                await start_run(client, bad, task_queue=task_queue, workflow_id=rejected_id)
            ).result()
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    assert result.state == "COMPLETE" and result.model_calls >= 2
    healthy = [entry for entry in lines if entry.get("workflow_id") == workflow_id]
    events = [entry["event"] for entry in healthy]
    assert not any(str(event).startswith("state ") or event == "model call" for event in events), events
    [finished] = [entry for entry in healthy if entry["event"] == "run finished"]
    assert finished["level"] == "info" and finished["final_state"] == "COMPLETE"
    assert finished["states"] == result.states_visited
    assert (finished["model_calls"], finished["tool_calls"]) == (result.model_calls, result.tool_calls)

    assert rejected.state == "REJECTED"
    moves = [entry for entry in lines if entry.get("workflow_id") == rejected_id]
    assert [entry["event"].split(" (")[0] for entry in moves if entry["event"].startswith("state ")] == [
        "state REJECTED"
    ]
    [finished] = [entry for entry in moves if entry["event"] == "run finished"]
    assert finished["states"] == rejected.states_visited and finished["final_state"] == "REJECTED"
    # The ledger migrated meanwhile (a fresh database): its steps are not INFO lines.
    assert not [entry for entry in lines if str(entry.get("logger", "")).startswith("alembic")]


def tracing_provider_flush() -> None:
    from observability.tracing import tracer_provider

    tracer_provider().force_flush()


def _runs_total(scrape: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in scrape.splitlines()
        if line.startswith("factory_runs_total{") and 'blueprint="glossary@1.0.0"' in line
    )


async def test_an_escalated_tool_call_is_counted_and_its_span_carries_the_policy_decision(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    import asyncio

    from prometheus_client import REGISTRY, generate_latest

    from starter import send_decision
    from tests.fakes.payments import (
        SideEffects,
        obedient_payer,
        payment_request,
        payments_worker,
        start,
        status,
    )

    settings = settings_for_test(tmp_path)
    init_telemetry(settings, logs=False)
    memory_spans()
    client = observed_client(env.client, settings)
    await search_attributes_ready(client)

    def escalations() -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in generate_latest(REGISTRY).decode().splitlines()
            if line.startswith("factory_escalations_total{")
            and 'blueprint="payments@1.0.0"' in line
            and 'reason="tool_call"' in line
        )

    before = escalations()
    async with payments_worker(client, settings, task_queue, obedient_payer, SideEffects()):
        handle = await start(client, payment_request(amount=250), task_queue, workflow_id)
        for _ in range(400):
            if (await status(handle)).escalation is not None:
                break
            await asyncio.sleep(0.05)
        await send_decision(client, workflow_id, "approve", decided_by="erin", comment="fine")
        result = await handle.result()
    assert result.state == "COMPLETE", result.error
    assert escalations() - before == 1

    [root] = [
        s
        for s in memory_spans().get_finished_spans()
        if s.name == "StartWorkflow:AgentRunWorkflow"
        and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    names = _by_name(spans_of_trace(root.context.trace_id))
    [awaiting] = names["state AWAITING_HUMAN"]
    assert awaiting.attributes["factory.escalation.kind"] == "tool_call"
    [payment] = names["execute_tool send_payment"]
    assert payment.attributes["factory.tool.decision"] == "approval_required"
    assert payment.attributes["factory.tool.policy_rule"] == "big-payments"
    assert payment.attributes["factory.tool.status"] == "ok"


def _tool_spans(call_id: str) -> list[ReadableSpan]:
    tracing.tracer_provider().force_flush()
    return [
        s
        for s in memory_spans().get_finished_spans()
        if (s.attributes or {}).get("gen_ai.tool.call.id") == call_id
    ]


def _detach_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "detach" in r.getMessage().lower()]


def test_a_tool_span_closed_by_an_eviction_logs_no_error_and_is_left_unended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory_spans()
    telemetry = RunTelemetry()
    # An eviction closes the workflow's coroutine outside the context the span was attached in.
    evicted = telemetry.tool_span(ToolCall(id="call-evicted", name="lookup", arguments={}), ["lookup"])
    contextvars.copy_context().run(evicted.__enter__)
    with caplog.at_level(logging.ERROR):
        evicted.gen.close()
    assert _detach_errors(caplog) == []
    assert _tool_spans("call-evicted") == []  # the run replays elsewhere and opens it again

    # The control: OpenTelemetry's own context manager, closed the same way, logs the error.
    plain = trace.get_tracer("tests").start_as_current_span("plain")
    contextvars.copy_context().run(plain.__enter__)
    with caplog.at_level(logging.ERROR):
        plain.gen.close()  # type: ignore[attr-defined]
    assert _detach_errors(caplog), "the eviction was not reproduced"


def test_a_tool_span_ends_with_its_decision_and_records_a_failure() -> None:
    memory_spans()
    telemetry = RunTelemetry()
    with telemetry.tool_span(ToolCall(id="call-ok", name="lookup", arguments={}), ["lookup"]) as seen:
        seen.decided("denied", "deny-lookup")
    with pytest.raises(RuntimeError):
        with telemetry.tool_span(ToolCall(id="call-boom", name="lookup", arguments={}), ["lookup"]):
            raise RuntimeError("boom")

    [ok] = _tool_spans("call-ok")
    assert ok.name == "execute_tool lookup"
    attributes = ok.attributes or {}
    assert attributes["factory.tool.decision"] == "denied"
    assert attributes["factory.tool.policy_rule"] == "deny-lookup"
    [boom] = _tool_spans("call-boom")
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.status.description == "RuntimeError: boom"
    assert [event.name for event in boom.events] == ["exception"]
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached
