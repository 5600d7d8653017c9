"""The `call_tool` activity: run one registered tool inside the run's workspace."""

from __future__ import annotations

from temporalio import activity

from activities.heartbeat import with_heartbeats
from activities.tools.registry import ToolContext, ToolError, ToolRegistry
from activities.tools.sandbox import Workspace
from contracts.tools import ToolCallInput, ToolResult
from settings import Settings


class ToolActivities:
    """Dispatches tool calls to the registry; the workspace is created on first use."""

    def __init__(self, settings: Settings, tools: ToolRegistry) -> None:
        self._settings = settings
        self._tools = tools

    @activity.defn(name="call_tool")
    async def call_tool(self, inp: ToolCallInput) -> ToolResult:
        """Validate, run, validate the result. Failures come back as results, never raised."""
        try:
            workspace = Workspace(inp.workspace, self._settings.resolved_workspace_root()).create()
        except ToolError as exc:  # an unsafe workspace name is refused like any bad path
            return ToolResult(status="error", tool=inp.tool, error=exc.info)
        ctx = ToolContext(
            run_id=inp.run_id,
            step_id=inp.step_id,
            workspace=workspace,
            dry_run=inp.dry_run,
            idempotency_key=inp.idempotency_key or f"{inp.run_id}/{inp.step_id}",
        )
        return await with_heartbeats(self._tools.run(inp.tool, ctx, inp.arguments))
