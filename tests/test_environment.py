"""Both Temporal environments run a workflow with an activity, pydantic models and our search attributes."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client

with workflow.unsafe.imports_passed_through():  # the sandbox re-imports this module: share the heavy ones
    import pytest
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from settings import Settings
    from workflows.search_attributes import FACTORY_STATE


class Greeting(BaseModel):
    """Who to greet."""

    name: str


class GreetingResult(BaseModel):
    """The greeting and the state the workflow recorded in its search attribute."""

    text: str
    state: str


@activity.defn(name="test_environment.compose_greeting")
async def compose_greeting(greeting: Greeting) -> str:
    """The trivial activity."""
    return f"Hello, {greeting.name}!"


@workflow.defn(name="TestEnvironmentHello")
class HelloWorkflow:
    """The trivial workflow: upsert a search attribute, run one activity."""

    @workflow.run
    async def run(self, greeting: Greeting) -> GreetingResult:
        """Greet, recording a FactoryState along the way."""
        workflow.upsert_search_attributes([FACTORY_STATE.value_set("EXECUTING")])
        text = await workflow.execute_activity(
            compose_greeting, greeting, start_to_close_timeout=timedelta(seconds=30)
        )
        return GreetingResult(text=text, state=workflow.info().typed_search_attributes[FACTORY_STATE] or "")


async def _greet(client: Client, task_queue: str) -> GreetingResult:
    async with Worker(
        client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[compose_greeting]
    ):
        return await client.execute_workflow(
            HelloWorkflow.run, Greeting(name="factory"), id=f"hello-{uuid.uuid4()}", task_queue=task_queue
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_the_chosen_environment_runs_a_workflow_with_an_activity(
    env: WorkflowEnvironment, task_queue: str
) -> None:
    result = await _greet(env.client, task_queue)
    assert result == GreetingResult(text="Hello, factory!", state="EXECUTING")


async def test_the_real_dev_server_runs_a_workflow_and_indexes_our_search_attributes(
    devserver_env: WorkflowEnvironment, devserver_target_host: str, task_queue: str
) -> None:
    client = devserver_env.client
    result = await _greet(client, task_queue)
    assert result == GreetingResult(text="Hello, factory!", state="EXECUTING")

    assert devserver_target_host.startswith("127.0.0.1:")
    query = f"TaskQueue = '{task_queue}' AND FactoryState = 'EXECUTING'"
    for _ in range(50):  # visibility is eventually consistent
        if [execution async for execution in client.list_workflows(query)]:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"no workflow visible for {query!r}")


@pytest.mark.devserver
async def test_the_embedded_dev_server_starts_once_persists_and_stops(
    devserver_script: ModuleType, tmp_path: Path, task_queue: str
) -> None:
    settings = Settings(data_dir=tmp_path, temporal_address=f"127.0.0.1:{_free_port()}")
    ui_port = _free_port()
    address = await asyncio.to_thread(devserver_script.ensure_running, settings, ui_port=ui_port)
    try:
        found = await asyncio.to_thread(devserver_script.status, settings)
        assert (found.running, found.managed, found.missing_search_attributes) == (True, True, [])
        again = await asyncio.to_thread(devserver_script.ensure_running, settings, ui_port=ui_port)
        assert again == address
        assert (await asyncio.to_thread(devserver_script.status, settings)).pid == found.pid

        client = await Client.connect(address, data_converter=pydantic_data_converter)
        assert (await _greet(client, task_queue)).text == "Hello, factory!"
        assert (tmp_path / "temporal" / "temporal.sqlite").exists()
    finally:
        stopped = await asyncio.to_thread(devserver_script.stop, settings)
    assert stopped == found.pid
    assert not (await asyncio.to_thread(devserver_script.status, settings)).running
