"""Test plumbing shared by the engine tests: settings in a temp folder, a client whose converter
uses the artifact store, and a worker with test tools and a scripted model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.bundle import build_activities
from activities.dead_letters import LedgerDeadLetterStore
from activities.ledger import Ledger
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from blueprints.base import Blueprint
from observability.codec import data_converter
from settings import Settings
from tests.fakes import steps
from tests.fakes.scripted import ScriptedProvider, TurnScript
from worker import build_worker


def settings_for(root: Path) -> Settings:
    """Settings whose data, artifacts, workspaces and dead letters all live under `root`."""
    return Settings(data_dir=root, model_provider="offline")


def codec_client(client: Client, settings: Settings) -> Client:
    """The same connection with the engine's data converter for these settings (redaction, and
    large payloads going to the settings' artifact store)."""
    return Client(client.service_client, namespace=client.namespace, data_converter=data_converter(settings))


def dead_letters(settings: Settings) -> LedgerDeadLetterStore:
    """The dead letters the test worker writes: the SQL ledger of these settings (what `dlq` reads)."""
    return LedgerDeadLetterStore(Ledger.from_settings(settings))


@asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    *,
    script: TurnScript | None = None,
    state_dir: Path | None = None,
    extra_blueprints: list[Blueprint] | None = None,
    **activity_kwargs: Any,
) -> AsyncIterator[tuple[Worker, ScriptedProvider]]:
    """A worker with the test tools (state under `state_dir`), the offline model and a scripted one."""
    catalog = steps.catalog()
    for blueprint in extra_blueprints or []:
        catalog.add(blueprint)
    provider = ScriptedProvider(script or steps.steps_script, catalog=catalog)
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    providers.register(provider)
    activities = build_activities(
        settings,
        catalog=catalog,
        tools=steps.build_tools(state_dir or settings.data_dir / "state"),
        providers=providers,
        dead_letters=dead_letters(settings),
        **activity_kwargs,
    )
    worker = build_worker(client, settings, task_queue=task_queue, activities=activities)
    async with worker:
        yield worker, provider
