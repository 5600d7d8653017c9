"""Total input tokens of an N-turn tool loop, with and without context control.

Runs the real AgentRunWorkflow (time-skipping Temporal, the real activities, a SQLite ledger) with a
scripted model that calls a tool N times before submitting; every tool result is ~300 tokens.
Input tokens are what the model reported (the offline estimator: 4 characters a token), read back
from the ledger. With control, older turns are summarized once the prompt passes `threshold` of
the window (the summarize calls are counted too).

    PYTHONPATH=. python benchmarks/context_growth.py [--turns 5 10 20 40] [--window 8000] [--json]

Target: with control, 40 turns cost at most 5x 10 turns (the plain loop grows quadratically).
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

from pydantic import BaseModel, Field
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.bundle import build_activities
from activities.ledger import Ledger, schema
from activities.models.base import ProviderRegistry
from activities.models.offline import OfflineProvider, approx_tokens
from activities.tools.registry import ToolContext, ToolRegistry
from blueprints.base import Blueprint
from blueprints.catalog import Catalog
from contracts.cost import ContextPolicy, ModelTarget
from contracts.model import ModelTurnInput, ModelTurnResult, ToolCall, Usage
from contracts.run import RunRequest
from settings import Settings
from starter import ensure_search_attributes, start_run
from worker import build_worker

TOOL_RESULT_CHARS = 1_200  # ~300 tokens a turn


class LoopInput(BaseModel):
    """What to look into."""

    topic: str = Field(min_length=1)


class LoopOutput(BaseModel):
    """What was found."""

    summary: str = Field(min_length=1)


class LookupArgs(BaseModel):
    """Arguments of the lookup tool."""

    query: str


def _tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.register("lookup", description="Look something up.", args=LookupArgs)
    async def lookup(ctx: ToolContext, args: LookupArgs) -> dict[str, Any]:
        return {"query": args.query, "found": ("lorem ipsum " * 200)[:TOOL_RESULT_CHARS]}

    return registry


BLUEPRINT = Blueprint(
    name="context-loop",
    version="1.0.0",
    description="A tool loop of a chosen length.",
    system_prompt="Look the topic up as many times as needed, then submit the result.",
    input_model=LoopInput,
    output_model=LoopOutput,
    example_input={"topic": "growth"},
    allowed_tools=("lookup",),
    max_turns=200,
)


class LoopModel:
    """Calls `lookup` `turns` times per task, then submits; reports usage like the offline model."""

    name = "loop"

    def __init__(self, turns: int, catalog: Catalog) -> None:
        self.turns = turns
        self._calls: dict[str, int] = {}
        self._offline = OfflineProvider(catalog)

    async def complete(self, request: ModelTurnInput) -> ModelTurnResult:
        if request.step_kind != "execute":
            result = await self._offline.complete(request)
            return result.model_copy(update={"provider": self.name, "offline": False})
        task = request.step_id.split("/")[0]
        count = self._calls[task] = self._calls.get(task, 0) + 1
        if count <= self.turns:
            call = ToolCall(id=f"c{count}", name="lookup", arguments={"query": f"{task} part {count}"})
        else:
            call = ToolCall(
                id="done", name="submit_result", arguments={"status": "success", "result": {"n": count}}
            )
        prompt = request.system + json.dumps([m.model_dump(mode="json") for m in request.messages])
        prompt += json.dumps([t.model_dump(mode="json") for t in request.tools])
        return ModelTurnResult(
            provider=self.name,
            model=request.model,
            tool_calls=[call],
            stop_reason="tool_use",
            usage=Usage(
                input_tokens=approx_tokens(prompt), output_tokens=approx_tokens(json.dumps(call.arguments))
            ),
        )


async def measure(
    env: WorkflowEnvironment, ledger: Ledger, data: Path, turns: int, policy: ContextPolicy
) -> dict[str, int]:
    """Run one loop of `turns` turns; input tokens of the loop (execute + summarize) and of the run."""
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
        input={"topic": "growth"},
        routes={"*": [ModelTarget(provider="loop", model="claude-haiku-4-5")]},
        context=policy,
    )
    async with build_worker(env.client, settings, task_queue=queue, activities=activities):
        handle = await start_run(
            env.client, request, task_queue=queue, workflow_id=f"bench-{uuid.uuid4().hex[:10]}"
        )
        result = await handle.result()
    if result.state != "COMPLETE":
        raise RuntimeError(f"{turns}-turn run ended {result.state}: {result.error}")
    rows = await ledger.rows(schema.model_calls, run_id=handle.id)
    loop = sum(r["input_tokens"] for r in rows if r["step_kind"] in ("execute", "summarize"))
    return {
        "loop_input_tokens": loop,
        "run_input_tokens": sum(r["input_tokens"] for r in rows),
        "summaries": sum(1 for r in rows if r["step_kind"] == "summarize"),
        "model_calls": len(rows),
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument(
        "--window", type=int, default=8_000, help="context window the policy measures against"
    )
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--keep-recent", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    server = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(server) if server.exists() else None,
        data_converter=pydantic_data_converter,
    )
    results: dict[str, dict[int, dict[str, int]]] = {"plain": {}, "controlled": {}}
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Ledger(f"sqlite+aiosqlite:///{tmp}/ledger.sqlite3")
            await ledger.upgrade()
            policies = {
                "plain": ContextPolicy(enabled=False),
                "controlled": ContextPolicy(
                    threshold=args.threshold, window_tokens=args.window, keep_recent=args.keep_recent
                ),
            }
            for mode, policy in policies.items():
                for turns in args.turns:
                    results[mode][turns] = await measure(env, ledger, Path(tmp), turns, policy)
            await ledger.close()
    finally:
        await env.shutdown()
    report: dict[str, Any] = {"window": args.window, "threshold": args.threshold, "results": results}
    if 10 in args.turns and 40 in args.turns:
        for mode in results:
            report[f"{mode}_40_over_10"] = round(
                results[mode][40]["loop_input_tokens"] / results[mode][10]["loop_input_tokens"], 2
            )
        report["target_met"] = report["controlled_40_over_10"] <= 5.0
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"window {args.window} tokens, compaction past {args.threshold:.0%}; input tokens of the tool loop (whole run)"
        )
        print(f"{'turns':>6} {'plain':>18} {'controlled':>18} {'summaries':>10}")
        for turns in args.turns:
            plain, ctl = results["plain"][turns], results["controlled"][turns]
            print(
                f"{turns:>6} {plain['loop_input_tokens']:>8} ({plain['run_input_tokens']:>7})"
                f" {ctl['loop_input_tokens']:>8} ({ctl['run_input_tokens']:>7}) {ctl['summaries']:>10}"
            )
        for mode in results:
            key = f"{mode}_40_over_10"
            if key in report:
                print(f"{mode}: 40 turns / 10 turns = {report[key]}x")
        if "target_met" in report:
            print("target (controlled 40 <= 5x 10):", "met" if report["target_met"] else "NOT met")
    return 0 if report.get("target_met", True) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
