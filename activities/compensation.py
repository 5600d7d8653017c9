"""The `compensate_tool` activity: undo one completed side effect (one step of a saga)."""

from __future__ import annotations

import asyncio
import contextlib
import re

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.tools.registry import ToolContext, ToolRegistry
from contracts.saga import CompensateInput
from contracts.tools import ToolResult
from settings import Settings

# The same rule `call_tool` applies: one safe path component.
SAFE_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: How often a running compensation tells Temporal it is alive (a dead worker is noticed quickly).
HEARTBEAT_EVERY_S = 1.0


class CompensationActivities:
    """Runs tools' compensating actions in the run's workspace."""

    def __init__(self, settings: Settings, tools: ToolRegistry) -> None:
        self._settings = settings
        self._tools = tools

    @activity.defn(name="compensate_tool")
    async def compensate_tool(self, inp: CompensateInput) -> ToolResult:
        """Undo one side effect; raise so Temporal retries (the workflow dead-letters it after the last try)."""
        if not SAFE_WORKSPACE.fullmatch(inp.workspace) or ".." in inp.workspace:
            raise ApplicationError(
                f"invalid workspace name {inp.workspace!r}", type="InvalidActivityInput", non_retryable=True
            )
        workspace = self._settings.resolved_workspace_root() / inp.workspace
        workspace.mkdir(parents=True, exist_ok=True)
        ctx = ToolContext(
            run_id=inp.run_id,
            step_id=f"{inp.effect.step_id}/compensate",
            workspace=workspace,
            dry_run=False,
            idempotency_key=inp.idempotency_key,
        )
        beat = asyncio.create_task(_heartbeat())
        try:
            result = await self._tools.compensate(
                inp.effect.tool, ctx, inp.effect.arguments, inp.effect.output
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if result.status != "ok":
            error = result.error
            raise ApplicationError(
                error.message if error else "compensation failed",
                error.model_dump(mode="json") if error else {},
                type="CompensationFailed",
                non_retryable=bool(error and error.code in {"not_compensable", "invalid_arguments"}),
            )
        return result


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_S)
