"""The `call_tool` activity: run one registered tool inside the run's workspace."""

from __future__ import annotations

import time

from temporalio import activity

from activities.heartbeat import with_heartbeats
from activities.ledger import Ledger, ToolCallRecord
from activities.tools.registry import ToolContext, ToolError, ToolRegistry
from activities.tools.sandbox import Workspace
from contracts.tools import ToolCallInput, ToolResult
from observability.genai import observe_tool_result, tool_run_span
from observability.logs import get_logger
from settings import Settings

_log = get_logger("ai_factory.call_tool")


class ToolActivities:
    """Dispatches tool calls to the registry; the workspace is created on first use."""

    def __init__(self, settings: Settings, tools: ToolRegistry, ledger: Ledger | None = None) -> None:
        self._settings = settings
        self._tools = tools
        self._ledger = ledger

    @activity.defn(name="call_tool")
    async def call_tool(self, inp: ToolCallInput) -> ToolResult:
        """Validate, run, validate the result. Failures come back as results, never raised.
        The call (and the run's pending transitions) is written to the ledger."""
        started = time.perf_counter()
        result = await self._run(inp)
        if self._ledger is not None:
            await self._ledger.record_tool_call(
                ToolCallRecord(
                    run_id=inp.run_id,
                    step_id=inp.step_id,
                    tool=inp.tool,
                    status=result.status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    idempotency_key=inp.idempotency_key,
                    replayed=result.replayed,
                ),
                inp.ledger,
            )
        return result

    async def _run(self, inp: ToolCallInput) -> ToolResult:
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
        with tool_run_span(inp.tool, inp.step_id) as span:
            started = time.perf_counter()
            result = await with_heartbeats(self._tools.run(inp.tool, ctx, inp.arguments))
            observe_tool_result(span, result, started)
        _log.info(
            "tool call",
            step_id=inp.step_id,
            tool=inp.tool,
            status=result.status,
            error_code=result.error.code if result.error else None,
            dry_run=result.dry_run,
        )
        return result
