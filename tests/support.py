"""Helpers shared by workflow tests: a worker with chosen providers, and running a request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from activities.bundle import build_activities, load_tools
from activities.models.base import ModelProvider, ProviderRegistry
from activities.models.offline import OfflineProvider
from blueprints.catalog import Catalog, default_catalog
from contracts.run import RunRequest, RunResult
from settings import Settings
from starter import ensure_search_attributes, start_run
from worker import build_worker


def isolated_settings(tmp_path: Path) -> Settings:
    """Settings that keep every file of a test under its tmp_path and never see real keys."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        anthropic_api_key=None,
        openai_api_key=None,
        openai_base_url=None,
        model_provider="offline",
    )


@asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    *,
    providers: list[ModelProvider] | None = None,
    catalog: Catalog | None = None,
) -> AsyncIterator[Worker]:
    """A worker on `task_queue` hosting the real activities, with the offline model plus `providers`."""
    await ensure_search_attributes(client)
    catalog = catalog or default_catalog()
    registry = ProviderRegistry()
    registry.register(OfflineProvider(catalog))
    for provider in providers or []:
        registry.register(provider)
    activities = build_activities(settings, catalog=catalog, tools=load_tools(), providers=registry)
    async with build_worker(client, settings, task_queue=task_queue, activities=activities) as worker:
        yield worker


async def run_to_end(
    client: Client, request: RunRequest, task_queue: str, workflow_id: str | None = None
) -> RunResult:
    """Start a run and wait for its result."""
    handle = await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
    return await handle.result()


def local_activity_names(history: WorkflowHistory) -> list[str]:
    """The activity type of every local activity a run recorded, in order (from its markers)."""
    names = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and marker.marker_name == "core_local_activity":
            names.append(json.loads(marker.details["data"].payloads[0].data)["activity_type"])
    return names


def published_states(history: WorkflowHistory) -> list[dict[str, Any]]:
    """The engine's search attributes each upsert event in `history` set, in order (decoded)."""
    upserts = []
    for event in history.events:
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            upserts.append(
                {name: json.loads(fields[name].data) for name in fields if name.startswith("Factory")}
            )
    return [u for u in upserts if u]
