"""Activities per model turn: what ledger recording adds to a run's Temporal history.

Runs the real AgentRunWorkflow (time-skipping Temporal, SQLite ledger) with a scripted model making
N tool calls, then counts ActivityTaskScheduled events (and local-activity markers) in the run's
history by activity type. Ledger rows (transitions, model calls, tool calls) ride on `model_turn`
and `call_tool`; the run makes exactly one ledger write of its own (`record_run_end`, a local
activity: no task-queue round trip). A design with one activity per state transition is shown for
comparison.

    PYTHONPATH=. python benchmarks/activities_per_turn.py [--turns 1 5 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.bundle import build_activities
from activities.ledger import Ledger, schema
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider
from benchmarks.context_growth import BLUEPRINT, LoopModel, _tools
from blueprints.catalog import Catalog
from contracts.cost import ModelTarget
from contracts.run import RunRequest
from settings import Settings
from starter import ensure_search_attributes, start_run
from worker import build_worker


async def count(env: WorkflowEnvironment, ledger: Ledger, data: Path, turns: int) -> dict[str, Any]:
    """Scheduled activities by type for one run of `turns` tool turns, and the ledger's transitions."""
    catalog = Catalog([BLUEPRINT])
    providers = ProviderRegistry()
    providers.register(OfflineProvider(catalog))
    providers.register(LoopModel(turns, catalog))
    settings = Settings(_env_file=None, data_dir=data, model_provider="offline")  # type: ignore[call-arg]
    activities = build_activities(
        settings, catalog=catalog, tools=_tools(), providers=providers, ledger=ledger
    )
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    request = RunRequest(
        blueprint="context-loop",
        input={"topic": "activities"},
        routes={"*": [ModelTarget(provider="loop", model="claude-haiku-4-5")]},
    )
    async with build_worker(env.client, settings, task_queue=queue, activities=activities):
        handle = await start_run(
            env.client, request, task_queue=queue, workflow_id=f"bench-{uuid.uuid4().hex[:10]}"
        )
        await handle.result()
        by_type: dict[str, int] = {}
        local: dict[str, int] = {}
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                by_type[name] = by_type.get(name, 0) + 1
            marker = event.marker_recorded_event_attributes
            if (
                event.HasField("marker_recorded_event_attributes")
                and marker.marker_name == "core_local_activity"
            ):
                name = json.loads(marker.details["data"].payloads[0].data)["activity_type"]
                local[name] = local.get(name, 0) + 1
    transitions = len(await ledger.rows(schema.state_transitions, run_id=handle.id))
    model_turns = by_type.get("model_turn", 0)
    total = sum(by_type.values())
    ledger_own = by_type.get("record_run_end", 0) + local.get("record_run_end", 0)
    return {
        "turns": turns,
        "activities": by_type,
        "local_activities": local,
        "total_activities": total,
        "model_turns": model_turns,
        "activities_per_model_turn": round(total / model_turns, 3),
        "ledger_activities": ledger_own,
        "ledger_activities_per_model_turn": round(ledger_own / model_turns, 3),
        "transitions_recorded": transitions,
        "activities_if_one_per_transition": total - by_type.get("record_run_end", 0) + transitions,
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    server = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(server) if server.exists() else None,
        data_converter=pydantic_data_converter,
    )
    rows = []
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Ledger(f"sqlite+aiosqlite:///{tmp}/ledger.sqlite3")
            for turns in args.turns:
                rows.append(await count(env, ledger, Path(tmp), turns))
            await ledger.close()
    finally:
        await env.shutdown()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"{'tool turns':>10} {'model_turn':>10} {'all acts':>9} {'acts/turn':>9} {'ledger acts':>11}"
        f" {'ledger/turn':>11} {'transitions':>11} {'1-per-transition':>16}"
    )
    for r in rows:
        print(
            f"{r['turns']:>10} {r['model_turns']:>10} {r['total_activities']:>9} {r['activities_per_model_turn']:>9}"
            f" {r['ledger_activities']:>11} {r['ledger_activities_per_model_turn']:>11}"
            f" {r['transitions_recorded']:>11} {r['activities_if_one_per_transition']:>16}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
