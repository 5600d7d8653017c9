"""`starter.py stats`: the headline figures over a window, from visibility and run histories."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

import starter
from activities.bundle import build_activities
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from observability.codec import generate_key
from observability.stats import RunFacts, VisibilitySource, collect_stats, parse_window, summarize
from starter import make_request, start_run
from tests.fakes.telemetry import (
    glossary_catalog,
    lookup_tools,
    observed_client,
    search_attributes_ready,
    settings_for_test,
)
from worker import build_worker


def test_summarize_computes_each_figure_from_run_facts() -> None:
    runs = [
        RunFacts(
            "a", state="COMPLETE", closed=True, duration_s=10, cost_usd=0.02, tool_calls=[("read", "ok")]
        ),
        RunFacts("b", state="COMPLETE", closed=True, duration_s=20, cost_usd=0.04, budget_alert=True),
        RunFacts(
            "c",
            state="FAILED",
            closed=True,
            duration_s=100,
            cost_usd=0.0,
            states_visited=["INTAKE", "AWAITING_HUMAN", "FAILED"],
            tool_calls=[("read", "error"), ("write", "ok")],
            context_utilization=[0.5, 0.1],
            time_to_first_token_s=[1.0, 3.0],
        ),
        RunFacts("d", state="EXECUTING", closed=False),
    ]
    stats = summarize(runs, timedelta(hours=1))
    assert stats["runs"] == 4 and stats["closed"] == 3 and stats["running"] == 1
    assert stats["success_rate"] == pytest.approx(2 / 3)
    assert stats["cost_per_run_usd"] == pytest.approx(0.02)
    assert stats["p95_run_latency_s"] == 100
    assert stats["tool_error_rate"] == {
        "read": {"calls": 2, "errors": 1, "error_rate": 0.5},
        "write": {"calls": 1, "errors": 0, "error_rate": 0.0},
    }
    assert stats["escalation_rate"] == 0.25
    assert stats["budget_alerts"] == 1
    assert stats["context_utilization"] == {"mean": pytest.approx(0.3), "max": 0.5}
    assert stats["time_to_first_token_s"] == {"p50": 1.0, "p95": 3.0}
    assert stats["by_state"] == {"COMPLETE": 2, "FAILED": 1}


def test_windows_parse_and_bad_ones_are_refused() -> None:
    assert parse_window("24h") == timedelta(hours=24)
    assert parse_window("90m") == timedelta(minutes=90)
    assert parse_window("7d") == timedelta(days=7)
    with pytest.raises(ValueError, match="expected a number"):
        parse_window("yesterday")


def test_stats_cli_refuses_a_bad_window_with_a_structured_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert starter.main(["stats", "--since", "soon", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "invalid_window"


async def test_stats_read_finished_runs_from_the_server(
    devserver_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    settings = settings_for_test(tmp_path)
    client = observed_client(devserver_env.client, settings)
    await search_attributes_ready(client)
    catalog = glossary_catalog()
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    activities = build_activities(settings, catalog=catalog, tools=lookup_tools(), providers=providers)
    tenant = f"stats-{task_queue[-12:]}"
    async with build_worker(client, settings, task_queue=task_queue, activities=activities):
        ok = make_request("glossary", input_value={"terms": ["a", "b"]}, tenant=tenant)
        bad = make_request("glossary", input_value={"terms": []}, tenant=tenant)  # REJECTED: min_length 1
        for request in (ok, bad):
            await (await start_run(client, request, task_queue=task_queue)).result()

    # Visibility is shared by every test (some runs encrypted with keys this client lacks): keep
    # this test's runs by tenant, and wait until both are listed as closed (it is eventually consistent).
    source = VisibilitySource(client, extra_query=f'FactoryTenant = "{tenant}"')
    for _ in range(50):
        stats = await collect_stats(source, timedelta(minutes=10))
        if stats["closed"] == 2:
            break
        await asyncio.sleep(0.2)
    assert stats["runs"] == stats["closed"] == 2
    assert stats["by_state"] == {"COMPLETE": 1, "REJECTED": 1}
    assert stats["success_rate"] == 0.5
    assert stats["tool_error_rate"] == {"lookup": {"calls": 2, "errors": 0, "error_rate": 0.0}}
    assert stats["p95_run_latency_s"] > 0
    assert stats["cost_per_run_usd"] == 0.0  # the offline model is free
    assert 0 < stats["context_utilization"]["max"] < 1
    assert stats["time_to_first_token_s"]["p95"] >= 0
    assert stats["escalation_rate"] == 0.0 and stats["budget_alerts"] == 0
    assert stats["unreadable_histories"] == 0


async def test_stats_count_runs_whose_history_this_process_cannot_decrypt(
    devserver_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    keyed = settings_for_test(tmp_path, payload_encryption_key=generate_key())
    client = observed_client(devserver_env.client, keyed)
    await search_attributes_ready(client)
    catalog = glossary_catalog()
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    activities = build_activities(keyed, catalog=catalog, tools=lookup_tools(), providers=providers)
    tenant = f"stats-{task_queue[-12:]}"
    async with build_worker(client, keyed, task_queue=task_queue, activities=activities):
        request = make_request("glossary", input_value={"terms": ["a"]}, tenant=tenant)
        await (await start_run(client, request, task_queue=task_queue)).result()
    keyless = observed_client(devserver_env.client, settings_for_test(tmp_path))
    source = VisibilitySource(keyless, extra_query=f'FactoryTenant = "{tenant}"')
    for _ in range(50):
        stats = await collect_stats(source, timedelta(minutes=10))
        if stats["closed"] == 1:
            break
        await asyncio.sleep(0.2)
    assert stats["closed"] == 1 and stats["unreadable_histories"] == 1
    assert stats["by_state"] == {"COMPLETE": 1}  # from the FactoryState search attribute
    assert stats["tool_error_rate"] == {}
