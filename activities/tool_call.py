"""The `call_tool` activity: run one registered tool inside the run's workspace."""

from __future__ import annotations

import re

from temporalio import activity

from activities.tools.registry import ToolContext, ToolRegistry
from contracts.errors import ErrorInfo
from contracts.tools import ToolCallInput, ToolResult
from settings import Settings

_SAFE_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ToolActivities:
    """Dispatches tool calls to the registry; the workspace is created on first use."""

    def __init__(self, settings: Settings, tools: ToolRegistry) -> None:
        self._settings = settings
        self._tools = tools

    @activity.defn(name="call_tool")
    async def call_tool(self, inp: ToolCallInput) -> ToolResult:
        """Validate, run, validate the result. Failures come back as results, never raised."""
        if not _SAFE_WORKSPACE.fullmatch(inp.workspace) or ".." in inp.workspace:
            return ToolResult(
                status="error",
                tool=inp.tool,
                error=ErrorInfo(code="path_denied", message=f"invalid workspace name {inp.workspace!r}"),
            )
        workspace = self._settings.resolved_workspace_root() / inp.workspace
        workspace.mkdir(parents=True, exist_ok=True)
        ctx = ToolContext(
            run_id=inp.run_id,
            step_id=inp.step_id,
            workspace=workspace,
            dry_run=inp.dry_run,
            idempotency_key=inp.idempotency_key or f"{inp.run_id}/{inp.step_id}",
        )
        return await self._tools.run(inp.tool, ctx, inp.arguments)
