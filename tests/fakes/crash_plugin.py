"""An extension module for crash tests: a blueprint whose steps are slow side effects.

Loaded by a real worker subprocess through `EXTENSION_MODULES`, exactly as an operator would load
their own blueprints and tools.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, Field

from activities.tools.journal import Journal, request_fingerprint
from activities.tools.registry import ToolContext, default_registry
from activities.tools.sandbox import Workspace
from blueprints.base import Blueprint

STEP_DELAY_S = float(os.environ.get("CRASH_PLUGIN_STEP_DELAY_S", "1.0"))
STAMP_TOOLS = ("stamp_a", "stamp_b", "stamp_c")


class StampArgs(BaseModel):
    """Arguments of a stamp tool."""

    path: str = Field(max_length=200, description="File to stamp, relative to the workspace")


def _make_stamp(tool_name: str):  # type: ignore[no-untyped-def]
    async def stamp(ctx: ToolContext, args: StampArgs) -> dict[str, object]:
        await asyncio.sleep(STEP_DELAY_S)  # a slow step, so a crash lands between steps
        workspace = Workspace.from_context(ctx)
        journal = Journal(workspace.journal_dir)

        def effect() -> dict[str, object]:
            outcome = workspace.write_text(
                f"{tool_name}-{args.path}", f"{ctx.idempotency_key}\n", overwrite=True
            )
            return {"path": outcome.path, "bytes": outcome.size_bytes}

        done = await journal.arun_once(
            ctx.idempotency_key, request_fingerprint(tool_name, args.model_dump()), effect
        )
        return {**done.result, "replayed": done.replayed}

    return stamp


for _name in STAMP_TOOLS:
    if default_registry.get(_name) is None:
        default_registry.register(
            _name, description=f"Slowly stamp a file ({_name})", args=StampArgs, side_effect=True
        )(_make_stamp(_name))


class StampInput(BaseModel):
    """Sections to stamp."""

    sections: list[str] = Field(min_length=1, max_length=6)


class StampOutput(BaseModel):
    """Anything: the crash test checks side effects, not prose."""

    sections: list[str] = Field(min_length=1)


BLUEPRINTS = [
    Blueprint(
        name="slow-stamps",
        version="1.0.0",
        description="Test blueprint: each task stamps three files, slowly.",
        system_prompt="Stamp files.",
        input_model=StampInput,
        output_model=StampOutput,
        example_input={"sections": ["alpha", "beta"]},
        allowed_tools=STAMP_TOOLS,
    )
]
