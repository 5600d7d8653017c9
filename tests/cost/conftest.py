"""Fixtures of the cost-governance suite: a ledger on SQLite and on PostgreSQL (a fresh database
per session; PostgreSQL unreachable is a failure, never a skip), a probe blueprint and tool, and a
helper that runs one AgentRunWorkflow on a worker built from test pieces."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle

from activities.bundle import build_activities, build_model_activities
from activities.ledger import Ledger
from activities.models.base import ModelProvider, ProviderRegistry
from activities.models.offline import OfflineProvider
from activities.tools.registry import ToolContext, ToolRegistry
from blueprints.base import Blueprint
from blueprints.catalog import Catalog
from contracts.run import RunRequest, RunResult, RunStatus
from settings import Settings
from starter import start_run
from worker import build_worker

PG_HOST = os.environ.get("LEDGER_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LEDGER_PG_PORT", "5432"))
PG_USER = os.environ.get("LEDGER_PG_USER", "postgres")


# -------------------------------------------------------------------------------------- ledger
@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database with a random name, dropped at the end of the session."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=10
        )
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required by the ledger suite at {PG_HOST}:{PG_PORT}: {exc!r}", pytrace=False
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ledger]:
    """The default ledger: a SQLite file, migrated."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"
    ledger = Ledger(f"sqlite+aiosqlite:///{path}")
    await ledger.upgrade()
    yield ledger
    await ledger.close()


@pytest.fixture(scope="session")
async def postgresql_ledger(postgres_url: str) -> AsyncIterator[Ledger]:
    """The production ledger: PostgreSQL through asyncpg, migrated."""
    ledger = Ledger(postgres_url)
    await ledger.upgrade()
    yield ledger
    await ledger.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    """The ledger, once per dialect."""
    return request.getfixturevalue(f"{request.param}_ledger")


# ------------------------------------------------------------------------------- probe pieces
class ProbeInput(BaseModel):
    """A topic to probe."""

    topic: str = Field(min_length=1)
    items: list[str] = Field(default_factory=lambda: ["one"])


class ProbeOutput(BaseModel):
    """What the probe found."""

    summary: str = Field(min_length=1)


class ProbeArgs(BaseModel):
    """Arguments of the probe tool."""

    query: str = "anything"


def probe_tools() -> ToolRegistry:
    """A registry with one harmless tool that returns a sizeable observation."""
    registry = ToolRegistry()

    @registry.register("probe", description="Look something up.", args=ProbeArgs)
    async def probe(ctx: ToolContext, args: ProbeArgs) -> dict[str, Any]:
        return {"query": args.query, "observation": "x" * 400, "step": ctx.step_id}

    return registry


def probe_blueprint(**extra: Any) -> Blueprint:
    """A one-tool blueprint; `extra` carries budget/routes/context defaults."""
    max_turns = extra.pop("max_turns", 200)
    return Blueprint(
        name="cost-probe",
        version="1.0.0",
        description="Probes a topic with a tool.",
        system_prompt="Probe the topic with the probe tool, then submit the result.",
        input_model=ProbeInput,
        output_model=ProbeOutput,
        example_input={"topic": "costs"},
        allowed_tools=("probe",),
        max_turns=max_turns,
        extra=extra,
    )


@dataclass
class Harness:
    """Runs AgentRunWorkflow on a worker built from test pieces."""

    client: Client
    settings: Settings
    ledger: Ledger
    catalog: Catalog
    tools: ToolRegistry
    providers: ProviderRegistry
    status: RunStatus | None = None
    _models: Any = None

    def model_activities(self) -> Any:
        """The model activities, built once per harness (one circuit breaker, as in a worker)."""
        if self._models is None:
            self._models = build_model_activities(self.settings, self.providers, self.ledger)
        return self._models

    def activities(self) -> list[Any]:
        return build_activities(
            self.settings,
            catalog=self.catalog,
            tools=self.tools,
            providers=self.providers,
            ledger=self.ledger,
            model_activities=self.model_activities(),
        )

    async def run(
        self, request: RunRequest, *, task_queue: str | None = None
    ) -> tuple[RunResult, WorkflowHandle[Any, RunResult]]:
        """Run to the end; the run's final `status` query answer is kept in `self.status`."""
        queue = task_queue or f"tq-{uuid.uuid4().hex[:10]}"
        async with build_worker(self.client, self.settings, task_queue=queue, activities=self.activities()):
            handle = await start_run(
                self.client, request, task_queue=queue, workflow_id=f"wf-{uuid.uuid4().hex[:12]}"
            )
            result = await handle.result()
            self.status = await handle.query("status", result_type=RunStatus)
        return result, handle


def make_harness(
    client: Client,
    ledger: Ledger,
    tmp_path: Path,
    *providers: ModelProvider,
    blueprint: Blueprint | None = None,
    **settings: Any,
) -> Harness:
    """A harness with the probe tool, one blueprint and the given providers (plus the offline model)."""
    catalog = Catalog([blueprint or probe_blueprint()])
    registry = ProviderRegistry()
    registry.register(OfflineProvider(catalog))
    for provider in providers:
        registry.register(provider)
    return Harness(
        client=client,
        settings=Settings(data_dir=tmp_path, workspace_root=tmp_path / "ws", **settings),
        ledger=ledger,
        catalog=catalog,
        tools=probe_tools(),
        providers=registry,
    )
