"""Routing a run to the GPU model: served by a GPU worker when one polls, the next model when none does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from activities.tools.registry import ToolRegistry
from blueprints.catalog import default_catalog
from contracts.run import RunResult
from policies.model_route import NO_WORKER_IN_TIME
from settings import Settings
from starter import ensure_search_attributes, make_request, start_run
from tests.fakes.gpu_engine import FakeEngine
from worker import build_gpu_worker, build_worker

BLUEPRINT = "algorithm-explainer"  # no tools: the run is model turns only


def routed_settings(tmp_path: Path, task_queue: str, schedule_to_start_s: float = 30) -> Settings:
    """Offline model as the fallback; a GPU queue no other test shares."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        model_provider="offline",
        anthropic_api_key=None,
        openai_api_key=None,
        openai_base_url=None,
        gpu_task_queue=f"{task_queue}-gpu",
        gpu_served_model_name="fake-small",
        gpu_schedule_to_start_s=schedule_to_start_s,
        gpu_heartbeat_interval_s=0.2,
    )


def cpu_worker(env: WorkflowEnvironment, settings: Settings, task_queue: str):  # type: ignore[no-untyped-def]
    catalog = default_catalog()
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    activities = build_activities(settings, catalog=catalog, tools=ToolRegistry(), providers=providers)
    return build_worker(env.client, settings, task_queue=task_queue, activities=activities)


def gpu_request() -> Any:
    example = default_catalog().resolve(BLUEPRINT, None)[0].example_input  # type: ignore[union-attr]
    return make_request(BLUEPRINT, input_value=example, provider="vllm")


async def test_a_step_routed_to_the_gpu_queue_with_no_gpu_worker_falls_back_and_records_it(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    # The time-skipping test server holds time still while an activity task waits in a queue, so a
    # schedule-to-start timeout runs in real time there: keep it short.
    settings = routed_settings(tmp_path, task_queue, schedule_to_start_s=2)
    await ensure_search_attributes(env.client)
    async with cpu_worker(env, settings, task_queue):
        handle = await start_run(env.client, gpu_request(), task_queue=task_queue)
        result: RunResult = await handle.result()
        status = await handle.query("status")  # answered by the worker, so asked while it runs

    assert result.state == "COMPLETE", result.error
    assert result.model is not None and result.model.provider == "vllm"
    assert result.model.task_queue == settings.gpu_task_queue
    assert [(f.step_id, f.reason) for f in result.fallbacks] == [("plan/1", NO_WORKER_IN_TIME)]
    fallback = result.fallbacks[0]
    assert (fallback.from_provider, fallback.from_model, fallback.from_task_queue) == (
        "vllm",
        "fake-small",
        settings.gpu_task_queue,
    )
    assert (fallback.to_provider, fallback.to_model) == ("offline", "offline-v1")
    # The status query shows the same record.
    assert [f["reason"] for f in status["fallbacks"]] == [NO_WORKER_IN_TIME]

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "model_turn"
    ]
    assert scheduled[0].task_queue.name == settings.gpu_task_queue
    assert scheduled[0].schedule_to_start_timeout.ToSeconds() == 2
    # Once the GPU queue had no worker, later turns go straight to the fallback model.
    assert all(s.task_queue.name == task_queue for s in scheduled[1:]) and len(scheduled) > 2
    timed_out = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]
    assert len(timed_out) == 1


def plan_for_explainer(prompt: str, schema: Mapping[str, Any] | None) -> str | None:
    """A valid plan when the GPU model is asked to plan; the fake's default answer otherwise."""
    if schema and json.dumps(schema).count('"submit_plan"'):
        task = {
            "id": "t1",
            "kind": "generate",
            "instructions": "explain",
            "allowed_tools": [],
            "depends_on": [],
        }
        return json.dumps({"tool": "submit_plan", "arguments": {"tasks": [task], "rationale": "one task"}})
    return None


async def test_a_run_routed_to_the_gpu_model_is_served_by_the_gpu_worker(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    settings = routed_settings(tmp_path, task_queue)
    engine = FakeEngine(model="fake-small", responder=plan_for_explainer)
    await ensure_search_attributes(env.client)
    gpu_worker, gpu = build_gpu_worker(env.client, settings, engine, task_queue=settings.gpu_task_queue)
    async with cpu_worker(env, settings, task_queue), gpu_worker:
        handle = await start_run(env.client, gpu_request(), task_queue=task_queue)
        result: RunResult = await handle.result()

    assert result.fallbacks == []
    assert result.state == "COMPLETE", result.error
    # plan, one task, compose: every turn ran on the GPU worker and its tokens were counted.
    assert gpu.metrics.completed == len(engine.calls) >= 3
    assert result.usage.output_tokens == gpu.metrics.completion_tokens > 0
