"""A test blueprint whose plan is spelled out in its input, tools that count their side effects in
files, and a scripted model that follows the input. Used in-process and by subprocess workers.

Input: {"steps": [{"tool": "bump" | "charge", "label": "a", "fail": false}, ...]}. The scripted
model plans one task per step (each depending on the one before), calls the step's tool once, then
submits success; a step with `fail: true` submits failure instead, except in a re-drive (its
workflow id contains "-redrive-"), where it succeeds.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from activities.tools.registry import ToolContext, ToolError, ToolRegistry
from blueprints.base import Blueprint
from blueprints.catalog import Catalog, default_catalog
from contracts.model import ModelTurnInput, ToolCall
from policies.protocol import SUBMIT_PLAN, SUBMIT_RESULT
from tests.fakes.scripted import call


class Step(BaseModel):
    """One step of the spelled-out plan."""

    tool: str
    label: str
    fail: bool = False


class StepsInput(BaseModel):
    """The whole plan."""

    steps: list[Step] = Field(min_length=1)


class StepsOutput(BaseModel):
    """What the run reports."""

    summary: str = Field(min_length=1)


TOOL_STEPS = Blueprint(
    name="tool-steps",
    version="1.0.0",
    description="Test blueprint: runs the steps its input spells out.",
    system_prompt="Follow the steps.",
    input_model=StepsInput,
    output_model=StepsOutput,
    example_input={"steps": [{"tool": "bump", "label": "a"}]},
    allowed_tools=("bump", "charge"),
    checks=("schema",),
)


def catalog() -> Catalog:
    """The shipped blueprints plus TOOL_STEPS."""
    cat = default_catalog()
    cat.add(TOOL_STEPS)
    return cat


class BumpArgs(BaseModel):
    """Which step bumps the counter."""

    label: str


class ChargeArgs(BaseModel):
    """What to charge; label 'decline' is refused by the card network."""

    label: str
    amount: int = 10


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSONL file (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_tools(state_dir: Path) -> ToolRegistry:
    """`bump` counts every execution in effects.jsonl; `charge` writes to ledger.jsonl and is
    compensated by an idempotent refund. A file `hang_on_refund` makes the first refund write its
    record and then hang (so a test can kill the worker mid-compensation)."""
    tools = ToolRegistry()
    effects = state_dir / "effects.jsonl"
    ledger = state_dir / "ledger.jsonl"

    @tools.register("bump", description="Count one side effect.", args=BumpArgs, side_effect=True)
    async def bump(ctx: ToolContext, args: BumpArgs) -> dict[str, Any]:
        _append(effects, {"label": args.label, "key": ctx.idempotency_key})
        return {"bumped": args.label}

    @tools.register("charge", description="Charge a card.", args=ChargeArgs, side_effect=True)
    async def charge(ctx: ToolContext, args: ChargeArgs) -> dict[str, Any]:
        if args.label == "decline":
            raise ToolError("card_declined", "the card network declined the charge")
        _append(ledger, {"op": "charge", "label": args.label, "key": ctx.idempotency_key})
        return {"charge_id": f"ch-{args.label}", "amount": args.amount}

    @tools.compensation_for("charge")
    async def refund(ctx: ToolContext, args: ChargeArgs, output: Any) -> dict[str, Any]:
        _append(state_dir / "refund_attempts.jsonl", {"label": args.label, "key": ctx.idempotency_key})
        if args.label.startswith("norefund"):
            raise ToolError("refund_refused", "the payment provider refuses refunds for this charge")
        done = [r for r in read_jsonl(ledger) if r["op"] == "refund" and r["key"] == ctx.idempotency_key]
        if not done:
            _append(
                ledger,
                {
                    "op": "refund",
                    "label": args.label,
                    "key": ctx.idempotency_key,
                    "charge_id": (output or {}).get("charge_id"),
                },
            )
        hang = state_dir / "hang_on_refund"
        if hang.exists():
            hang.unlink()
            (state_dir / "refund_hanging").write_text(args.label)
            await asyncio.sleep(3600)  # the test kills the worker here
        return {"refunded": args.label, "replayed": bool(done)}

    return tools


def steps_script(request: ModelTurnInput) -> list[ToolCall] | None:
    """The scripted model for TOOL_STEPS; other blueprints get the offline model (None)."""
    if not request.blueprint.startswith("tool-steps@"):
        return None
    if request.step_kind == "plan":
        steps = request.context["input"]["steps"]
        tasks = [
            {
                "id": f"s{i + 1}",
                "kind": "execute",
                "instructions": json.dumps(step),
                "allowed_tools": [step["tool"]],
                "depends_on": [f"s{i}"] if i else [],
            }
            for i, step in enumerate(steps)
        ]
        return [call(SUBMIT_PLAN, {"tasks": tasks})]
    if request.step_kind == "execute":
        task = request.context["task"]
        step = json.loads(task["instructions"])
        results = [r for m in request.messages for r in m.tool_results]
        if not results:
            args = {"label": step["label"]}
            return [call(step["tool"], args, call_id=f"{task['id']}-tool")]
        failed = results[-1].is_error or (step.get("fail") and "-redrive-" not in request.run_id)
        status = "failure" if failed else "success"
        return [
            call(
                SUBMIT_RESULT,
                {
                    "status": status,
                    "result": {"label": step["label"]},
                    "summary": f"{step['label']} {status}",
                },
            )
        ]
    return None
