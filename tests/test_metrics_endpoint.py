"""A Prometheus scrape of a running worker shows our run, tool and model metrics and Temporal's
own SDK metrics, with values, after a run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from observability.codec import data_converter
from observability.setup import init_telemetry, sdk_metrics_exporter, serve_metrics, temporal_runtime
from observability.tracing import client_plugins
from starter import make_request, start_run
from tests.fakes.telemetry import glossary_catalog, lookup_tools, search_attributes_ready, settings_for_test
from worker import build_worker


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of metric `name` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
            out.append((labels, float(match.group(2))))
    return out


async def test_a_prometheus_scrape_after_a_run_shows_the_metrics_with_values(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workflow_id: str
) -> None:
    settings = settings_for_test(tmp_path, metrics_port=0)  # 0: any free port
    init_telemetry(settings, logs=False)
    port = serve_metrics(0)
    async with sdk_metrics_exporter():
        # The worker's own client, on the runtime whose SDK metrics feed our endpoint.
        client = await Client.connect(
            env.client.service_client.config.target_host,
            namespace=env.client.namespace,
            data_converter=data_converter(settings),
            plugins=client_plugins(),
            runtime=temporal_runtime(),
        )
        await search_attributes_ready(client)
        catalog = glossary_catalog()
        providers = ProviderRegistry()
        providers.register(OfflineProvider(catalog))
        activities = build_activities(settings, catalog=catalog, tools=lookup_tools(), providers=providers)
        async with build_worker(client, settings, task_queue=task_queue, activities=activities):
            async with httpx.AsyncClient() as http:
                await asyncio.sleep(1.2)  # let earlier SDK metric updates drain first
                before = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                request = make_request("glossary", input_value={"terms": ["one", "two", "three"]})
                handle = await start_run(client, request, task_queue=task_queue, workflow_id=workflow_id)
                result = await handle.result()
                # Our metrics are recorded synchronously; Temporal's SDK metrics reach the endpoint
                # when its buffer is drained (every second): scrape until the last activity shows.
                for _ in range(40):
                    await asyncio.sleep(0.5)
                    after = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                    if (
                        _total(after, "temporal_activity_execution_latency_seconds_count", {})
                        - _total(before, "temporal_activity_execution_latency_seconds_count", {})
                        >= 13
                    ):  # validate + 8 model turns + 3 tools + review
                        break
    assert result.state == "COMPLETE"

    def grew(name: str, **labels: str) -> float:
        """How much the samples of `name` matching `labels` grew during the run (the process is shared)."""
        return _total(after, name, labels) - _total(before, name, labels)

    # 3 terms: 1 plan call + 3 tasks x 2 turns + 1 compose call = 8 model calls; 3 tool calls; 1 run.
    assert grew("factory_runs_total", blueprint="glossary@1.0.0", state="COMPLETE") == 1
    assert grew("factory_run_duration_seconds_count", state="COMPLETE") == 1
    assert grew("factory_run_duration_seconds_sum", state="COMPLETE") > 0
    assert grew("factory_run_cost_usd_count", blueprint="glossary@1.0.0") == 1
    assert grew("factory_tool_calls_total", tool="lookup", status="ok", decision="allowed") == 3
    assert grew("factory_model_context_utilization_count", model="offline-v1") == 8
    assert grew("factory_model_context_utilization_sum", model="offline-v1") > 0
    assert grew("factory_model_time_to_first_token_seconds_count", provider="offline") == 8
    assert grew("gen_ai_client_token_usage_sum", gen_ai_token_type="input") > 0
    assert grew("gen_ai_client_token_usage_sum", gen_ai_token_type="output") > 0
    # Temporal's own SDK/worker metrics, through the same endpoint.
    assert grew("temporal_workflow_completed_total", workflow_type="AgentRunWorkflow") == 1
    assert grew("temporal_activity_execution_latency_seconds_count", activity_type="model_turn") == 8
    assert grew("temporal_activity_execution_latency_seconds_count", activity_type="call_tool") == 3


def _total(text: str, name: str, labels: dict[str, str]) -> float:
    return sum(v for lbl, v in _samples(text, name) if all(lbl.get(k) == want for k, want in labels.items()))
