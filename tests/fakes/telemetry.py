"""Test helpers for observability: an in-memory span exporter, a client with our tracing and data
converter on an existing test server, a blueprint that calls a tool, and a history scanner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory

from activities.tools.registry import ToolContext, ToolRegistry
from blueprints.base import Blueprint
from blueprints.catalog import Catalog, default_catalog
from observability import tracing
from observability.codec import data_converter
from settings import Settings

_lock = threading.Lock()
_exporter: InMemorySpanExporter | None = None


def memory_spans() -> InMemorySpanExporter:
    """One in-memory exporter for the test process (the tracer provider is global), behind the
    redacting processor like every real exporter."""
    global _exporter
    with _lock:
        if _exporter is None:
            _exporter = InMemorySpanExporter()
            tracing.add_exporter(_exporter, batch=False, key="tests-in-memory")
        return _exporter


def spans_of_trace(trace_id: int) -> list[ReadableSpan]:
    """Every finished span of one trace."""
    tracing.tracer_provider().force_flush()
    return [s for s in memory_spans().get_finished_spans() if s.context.trace_id == trace_id]


def settings_for_test(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings that keep a test's files under tmp_path and see no real keys or .env."""
    fields: dict[str, Any] = {
        "data_dir": tmp_path,
        "anthropic_api_key": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "model_provider": "offline",
        **overrides,
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


async def search_attributes_ready(client: Client) -> None:
    """Register our search attributes (the test server, which cannot list them, says they exist)."""
    from temporalio.service import RPCError, RPCStatusCode

    from starter import ensure_search_attributes

    try:
        await ensure_search_attributes(client)
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise


def observed_client(client: Client, settings: Settings) -> Client:
    """`client`'s connection with our tracing plugin and data converter (redaction, encryption)."""
    config = client.config()
    config["data_converter"] = data_converter(settings)
    config["plugins"] = tracing.client_plugins()
    config["interceptors"] = []
    return Client(**config)


class LookupArgs(BaseModel):
    """Arguments of the test tool."""

    term: str = Field(min_length=1, description="What to look up")


async def _lookup(ctx: ToolContext, args: LookupArgs) -> dict[str, Any]:
    return {"term": args.term, "definition": f"definition of {args.term}"}


def lookup_tools() -> ToolRegistry:
    """A registry with one harmless tool, `lookup`."""
    registry = ToolRegistry()
    registry.register("lookup", description="Look a term up.", args=LookupArgs)(_lookup)
    return registry


class GlossaryInput(BaseModel):
    """Terms to define."""

    terms: list[str] = Field(min_length=1, max_length=4)
    note: str = ""


class GlossaryOutput(BaseModel):
    """The glossary."""

    summary: str = Field(min_length=1)


GLOSSARY = Blueprint(
    name="glossary",
    version="1.0.0",
    description="Looks each term up with a tool and summarises.",
    system_prompt="Look each term up with the lookup tool, then summarise.",
    input_model=GlossaryInput,
    output_model=GlossaryOutput,
    example_input={"terms": ["durable execution"]},
    allowed_tools=("lookup",),
)


def glossary_catalog() -> Catalog:
    """The shipped blueprints plus `glossary@1.0.0`."""
    catalog = default_catalog()
    catalog.add(GLOSSARY)
    return catalog


def history_texts(history: WorkflowHistory) -> Iterator[str]:
    """Every string and every payload's bytes (as text) in a history, so a scan misses nothing."""
    for event in history.events:
        yield from _texts(event)


def _texts(message: ProtoMessage) -> Iterator[str]:
    if isinstance(message, Payload):
        yield message.data.decode("utf-8", errors="replace")
        for key, value in message.metadata.items():
            yield key
            yield value.decode("utf-8", errors="replace")
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None:
            if descriptor.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    yield str(key)
                    if isinstance(item, ProtoMessage):
                        yield from _texts(item)
                    else:
                        yield str(item)
            elif descriptor.is_repeated:
                for item in value:
                    yield from _texts(item)
            else:
                yield from _texts(value)
        elif isinstance(value, str):
            yield value
        elif isinstance(value, bytes):
            yield value.decode("utf-8", errors="replace")
        elif descriptor.is_repeated:
            yield from (str(v) for v in value)
