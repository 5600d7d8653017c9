"""Secrets planted in settings, in the run input and in provider responses reach none of: logs,
spans, Temporal history (fetched from the real dev server), ledger rows. The real Anthropic SDK
talks to the local fake server, so the API key really travels in request headers.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.bundle import build_activities, build_providers
from observability import redaction
from observability.logs import configure_logging, get_logger
from observability.redaction import Redactor
from observability.setup import init_telemetry
from policies.routing import DEFAULT_MODELS
from settings import Settings
from starter import make_request, start_run
from tests.fakes.provider_server import (
    ANTHROPIC_MESSAGES_PATH,
    FakeProviderServer,
    anthropic_message,
    anthropic_text,
    anthropic_tool_use,
)
from tests.fakes.telemetry import (
    glossary_catalog,
    history_texts,
    lookup_tools,
    memory_spans,
    observed_client,
    search_attributes_ready,
    settings_for_test,
    spans_of_trace,
)
from worker import build_worker

API_KEY = "sk-ant-api03-PLANTEDkey0123456789abcdefXYZ"
INPUT_PIN = "pin-73914-planted-in-input"
INPUT_BEARER = "Bearer planted.input.token.987654"
RESPONSE_PASSWORD = "hunter2-planted-in-response"
SECRETS = [API_KEY, INPUT_PIN, INPUT_BEARER.split()[1], RESPONSE_PASSWORD]


@pytest.fixture
def restore_redactor() -> Iterator[None]:
    previous = redaction.current()
    yield
    redaction.install(previous)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of the process, as the worker would write it (JSON), at DEBUG."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("DEBUG", json_lines=True, stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _scripted_anthropic(server: FakeProviderServer) -> None:
    """Plan one task, look the term up (arguments carry a password), submit a result that echoes
    the API key, then an output with a bearer token in it."""
    plan = {
        "tasks": [
            {
                "id": "t1",
                "kind": "execute",
                "instructions": "look up alpha",
                "allowed_tools": ["lookup"],
                "expected_result_schema": {"type": "object"},
                "depends_on": [],
            }
        ],
        "rationale": f"simple; by the way your key is {API_KEY}",
    }
    server.enqueue_anthropic(
        anthropic_message(
            anthropic_text(f"Using key {API_KEY}."),
            anthropic_tool_use("tu_1", "submit_plan", plan),
            stop_reason="tool_use",
            cache_read_input_tokens=3,
        ),
        anthropic_message(
            anthropic_tool_use("tu_2", "lookup", {"term": "alpha", "password": RESPONSE_PASSWORD}),
            stop_reason="tool_use",
        ),
        anthropic_message(
            anthropic_tool_use(
                "tu_3",
                "submit_result",
                {
                    "status": "success",
                    "result": {"definition": "first letter", "api_key": API_KEY},
                    "summary": "ok",
                },
            ),
            stop_reason="tool_use",
        ),
        anthropic_message(
            anthropic_tool_use(
                "tu_4", "submit_output", {"output": {"summary": f"alpha: first. {INPUT_BEARER}"}}
            ),
            stop_reason="tool_use",
        ),
    )


def _span_texts(trace_id: int) -> list[str]:
    texts: list[str] = []
    for span in spans_of_trace(trace_id):
        texts.append(span.name)
        texts.append(json.dumps(dict(span.attributes or {}), default=str))
        texts.extend(json.dumps(dict(e.attributes or {}), default=str) for e in span.events)
        texts.append(span.status.description or "")
    return texts


async def test_planted_secrets_reach_no_log_span_or_history(
    devserver_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    workflow_id: str,
    restore_redactor: None,
    captured_logs: io.StringIO,
) -> None:
    with FakeProviderServer() as server:
        settings = settings_for_test(
            tmp_path,
            model_provider="anthropic",
            model_name=DEFAULT_MODELS["anthropic"],  # a model the SDK does not warn about
            anthropic_api_key=API_KEY,
            anthropic_base_url=server.anthropic_base_url,
            sensitive_fields=[*settings_for_test(tmp_path).sensitive_fields, "customer_pin"],
            trace_content=True,  # bodies on spans: they must be redacted too
        )
        init_telemetry(settings, logs=False, metrics=False)
        memory_spans()
        _scripted_anthropic(server)
        client = observed_client(devserver_env.client, settings)
        await search_attributes_ready(client)
        catalog = glossary_catalog()
        providers = build_providers(settings, catalog)
        activities = build_activities(settings, catalog=catalog, tools=lookup_tools(), providers=providers)
        async with build_worker(client, settings, task_queue=task_queue, activities=activities):
            # Operator code that logs a secret by mistake, through structlog and through stdlib logging.
            get_logger("test.operator").info(
                "loaded settings", anthropic_api_key=API_KEY, note=f"key={API_KEY}"
            )
            logging.getLogger("test.stdlib").warning("calling with %s", INPUT_BEARER)
            request = make_request(
                "glossary",
                input_value={
                    "terms": ["alpha"],
                    "note": f"call them with {INPUT_BEARER}",
                    "customer_pin": INPUT_PIN,
                },
            )
            handle = await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
            result = await handle.result()
        sent = server.requests_to(ANTHROPIC_MESSAGES_PATH)

    assert result.state == "COMPLETE", result.error
    # The secrets were really in play: the SDK sent the key, the provider answered with secrets.
    assert len(sent) == 4 and all(API_KEY in " ".join(r.headers.values()) for r in sent)
    assert result.output == {"summary": "alpha: first. [redacted]"}

    # History, as the server holds it.
    history = await devserver_env.client.get_workflow_handle(workflow_id).fetch_history()
    history_text = "\n".join(history_texts(history))
    assert "[redacted]" in history_text  # redaction happened, not just absence
    assert "alpha" in history_text  # the scan reads payloads in clear text
    for secret in SECRETS:
        assert secret not in history_text, f"{secret!r} is in the history"

    # Spans of this run's trace (content tracing on).
    [root] = [
        s
        for s in memory_spans().get_finished_spans()
        if s.name.startswith("StartWorkflow")
        and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    span_text = "\n".join(_span_texts(root.context.trace_id))
    assert "gen_ai.output.messages" in span_text and "[redacted]" in span_text
    for secret in SECRETS:
        assert secret not in span_text, f"{secret!r} is on a span"

    # Log lines: JSON, bound to the run, none with a secret.
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.strip()]
    run_lines = [entry for entry in lines if entry.get("workflow_id") == workflow_id]
    model_lines = [entry for entry in run_lines if entry["event"] == "model call"]
    assert len(model_lines) == 4
    for entry in model_lines:
        assert entry["run_id"] and entry["trace_id"] == format(root.context.trace_id, "032x")
        assert entry["blueprint"] == "glossary@1.0.0" and entry["state"] in ("PLANNING", "EXECUTING")
    state_lines = [entry for entry in run_lines if str(entry["event"]).startswith("state ")]
    assert [e["state"] for e in state_lines] == result.states_visited[1:]
    operator = [entry for entry in lines if entry.get("logger") in ("test.operator", "test.stdlib")]
    assert len(operator) == 2 and operator[0]["anthropic_api_key"] == "[redacted]"
    log_text = captured_logs.getvalue()
    for secret in SECRETS:
        assert secret not in log_text, f"{secret!r} is in the logs"

    # Every row of every ledger table, as the database holds it.
    ledger_text, model_call_rows = await _ledger_dump(settings, workflow_id)
    assert model_call_rows == 4  # the ledger recorded this run's calls: the scan reads real rows
    for secret in SECRETS:
        assert secret not in ledger_text, f"{secret!r} is in the ledger"


async def _ledger_dump(settings: Settings, workflow_id: str) -> tuple[str, int]:
    """All ledger rows as text, and how many model-call rows belong to `workflow_id`."""
    from sqlalchemy import select

    from activities.ledger.db import create_engine_for, ledger_url
    from activities.ledger.schema import metadata, model_calls

    engine = create_engine_for(ledger_url(settings))
    texts: list[str] = []
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in (await conn.execute(select(table))).all():
                    texts.append(json.dumps([str(v) for v in row]))
            mine = (await conn.execute(select(model_calls).where(model_calls.c.run_id == workflow_id))).all()
    finally:
        await engine.dispose()
    return "\n".join(texts), len(mine)


def test_redactor_blanks_fields_known_values_and_credential_shapes() -> None:
    redactor = Redactor.build(
        fields=["api_key", "Authorization", "customer_pin"],
        secrets=["s3cret-value-000111", "short"],
        patterns=[r"sk-ant-[A-Za-z0-9_\-]{8,}", r"(?i)bearer\s+[A-Za-z0-9._~+/\-]{8,}=*"],
    )
    value: dict[str, Any] = {
        "API-KEY": "abc",
        "authorization": "Basic Zm9v",
        "customer_pin": 1234,
        "input_schema": {"properties": {"api_key": {"type": "string"}}},  # a schema, not a secret: kept
        "note": "token sk-ant-abcdef123456 and s3cret-value-000111 and bearer abcdefghij1 and short",
        "nested": [{"customer-pin": "9"}],
        "count": 3,
        "tool_result": json.dumps({"ok": True, "api_key": "abc"}),  # JSON inside a string
    }
    assert redactor.value(value) == {
        "API-KEY": "[redacted]",
        "authorization": "[redacted]",
        "customer_pin": "[redacted]",
        "input_schema": {"properties": {"api_key": {"type": "string"}}},
        "note": "token [redacted] and [redacted] and [redacted] and short",
        "nested": [{"customer-pin": "[redacted]"}],
        "count": 3,
        "tool_result": '{"ok": true, "api_key": "[redacted]"}',
    }


def test_every_secret_setting_is_known_to_the_redactor(tmp_path: Path) -> None:
    settings = settings_for_test(
        tmp_path,
        anthropic_api_key="anthropic-key-0123456789",
        openai_api_key="openai-key-0123456789",
        temporal_api_key="temporal-key-0123456789",
        otlp_headers={"x-honeycomb-team": "otlp-token-0123456789"},
        payload_encryption_key="ZW5jcnlwdGlvbi1rZXktMDEyMzQ1Njc4OTAxMjM0NTY3OA==",
    )
    redactor = Redactor.from_settings(settings)
    for secret in [
        "anthropic-key-0123456789",
        "openai-key-0123456789",
        "temporal-key-0123456789",
        "otlp-token-0123456789",
        "ZW5jcnlwdGlvbi1rZXktMDEyMzQ1Njc4OTAxMjM0NTY3OA==",
    ]:
        assert redactor.text(f"x {secret} y") == "x [redacted] y"
