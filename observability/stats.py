"""`starter.py stats`: the engine's headline metrics over a time window, computed from what Temporal
keeps (visibility for the list of runs, each closed run's history for its facts).

Where the facts come from is a seam (`RunFactsSource`): today `VisibilitySource` reads Temporal;
the ledger (issue 4) can answer the same question from SQL without fetching histories.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from contracts.model import ModelTurnResult
from contracts.run import RunResult
from contracts.tools import ToolResult
from policies.context_windows import context_utilization
from workflows.search_attributes import FACTORY_BLUEPRINT, FACTORY_BUDGET_ALERT, FACTORY_STATE

RUN_WORKFLOW = "AgentRunWorkflow"
ESCALATION_STATE = "AWAITING_HUMAN"


@dataclass
class RunFacts:
    """What one run contributes to the figures."""

    workflow_id: str
    blueprint: str = ""
    state: str = ""
    closed: bool = False
    duration_s: float | None = None
    cost_usd: float = 0.0
    states_visited: list[str] = field(default_factory=list)
    budget_alert: bool = False
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """(tool, status) of each executed tool call."""
    context_utilization: list[float] = field(default_factory=list)
    time_to_first_token_s: list[float] = field(default_factory=list)
    unreadable: bool = False
    """Its history could not be decoded here (encrypted with a key this process lacks): only the
    visibility facts (state, duration, budget alert) count."""


class RunFactsSource(Protocol):
    """Anything that can list the runs started since a moment, with their facts."""

    async def runs(self, since: datetime, limit: int) -> list[RunFacts]:
        """Runs started at or after `since`, newest first, at most `limit`."""
        ...


def parse_window(text: str) -> timedelta:
    """`90m`, `24h`, `7d`, `3600s` → a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise ValueError(f"window {text!r}: expected a number and s, m, h or d (e.g. 24h)")
    value, unit = float(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: value})


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarize(runs: Sequence[RunFacts], window: timedelta) -> dict[str, Any]:
    """The headline figures over `runs` (pure: the same facts give the same numbers)."""
    closed = [r for r in runs if r.closed]
    completed = [r for r in closed if r.state == "COMPLETE"]
    tools: dict[str, dict[str, Any]] = {}
    for run in runs:
        for tool, status in run.tool_calls:
            entry = tools.setdefault(tool, {"calls": 0, "errors": 0})
            entry["calls"] += 1
            entry["errors"] += status != "ok"
    for entry in tools.values():
        entry["error_rate"] = entry["errors"] / entry["calls"]
    utilization = [u for r in runs for u in r.context_utilization]
    ttft = [t for r in runs for t in r.time_to_first_token_s]
    durations = [r.duration_s for r in closed if r.duration_s is not None]
    costs = [r.cost_usd for r in closed]
    return {
        "window_s": window.total_seconds(),
        "runs": len(runs),
        "closed": len(closed),
        "running": len(runs) - len(closed),
        "by_state": {s: sum(1 for r in closed if r.state == s) for s in sorted({r.state for r in closed})},
        "success_rate": _ratio(len(completed), len(closed)),
        "cost_per_run_usd": sum(costs) / len(costs) if costs else None,
        "cost_total_usd": sum(costs),
        "p95_run_latency_s": _percentile(durations, 0.95),
        "tool_error_rate": dict(sorted(tools.items())),
        "escalation_rate": _ratio(sum(1 for r in runs if ESCALATION_STATE in r.states_visited), len(runs)),
        "budget_alerts": sum(1 for r in runs if r.budget_alert),
        "context_utilization": {"mean": sum(utilization) / len(utilization), "max": max(utilization)}
        if utilization
        else None,
        "unreadable_histories": sum(1 for r in runs if r.unreadable),
        "time_to_first_token_s": {"p50": _percentile(ttft, 0.5), "p95": _percentile(ttft, 0.95)}
        if ttft
        else None,
    }


class VisibilitySource:
    """Runs from Temporal visibility; facts of closed runs from their histories (decoded with the
    client's data converter, so encrypted histories work where the key is held)."""

    def __init__(self, client: Client, extra_query: str | None = None) -> None:
        """`extra_query` narrows the list (e.g. `FactoryTenant = "acme"`)."""
        self._client = client
        self._extra_query = extra_query

    async def runs(self, since: datetime, limit: int) -> list[RunFacts]:
        """See `RunFactsSource.runs`."""
        query = f'WorkflowType = "{RUN_WORKFLOW}" AND StartTime >= "{since.astimezone(UTC).isoformat()}"'
        if self._extra_query:
            query += f" AND ({self._extra_query})"
        facts: list[RunFacts] = []
        async for execution in self._client.list_workflows(query, limit=limit):
            attrs = execution.typed_search_attributes
            run = RunFacts(
                workflow_id=execution.id,
                blueprint=attrs.get(FACTORY_BLUEPRINT) or "",
                state=attrs.get(FACTORY_STATE) or "",
                budget_alert=bool(attrs.get(FACTORY_BUDGET_ALERT)),
                closed=execution.status not in (None, WorkflowExecutionStatus.RUNNING),
            )
            if execution.close_time is not None:
                run.duration_s = (execution.close_time - execution.start_time).total_seconds()
            if run.closed:
                try:
                    await self._read_history(run, execution.run_id)
                except (KeyError, ValueError, RuntimeError, InvalidTag):
                    # An encrypted history without the key (or a payload of an unknown encoding):
                    # keep the run's visibility facts rather than fail the whole report.
                    run.unreadable = True
                    run.tool_calls, run.context_utilization, run.time_to_first_token_s = [], [], []

            facts.append(run)
        return facts

    async def _read_history(self, run: RunFacts, run_id: str | None) -> None:
        history = await self._client.get_workflow_handle(run.workflow_id, run_id=run_id).fetch_history()
        converter = self._client.data_converter
        activity_types: dict[int, str] = {}
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activity_types[event.event_id] = (
                    event.activity_task_scheduled_event_attributes.activity_type.name
                )
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attrs = event.activity_task_completed_event_attributes
                kind = activity_types.get(attrs.scheduled_event_id)
                if kind == "model_turn":
                    [model] = await converter.decode_wrapper(attrs.result, [ModelTurnResult])
                    used = context_utilization(model.model, model.usage.input_tokens)
                    if used is not None:
                        run.context_utilization.append(used)
                    if model.latency_ms:
                        run.time_to_first_token_s.append(model.latency_ms / 1000)
                elif kind == "call_tool":
                    [tool] = await converter.decode_wrapper(attrs.result, [ToolResult])
                    run.tool_calls.append((tool.tool, tool.status))
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                [result] = await converter.decode_wrapper(
                    event.workflow_execution_completed_event_attributes.result, [RunResult]
                )
                run.state = result.state
                run.cost_usd = result.cost_usd
                run.states_visited = list(result.states_visited)
            elif event.event_type in (
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
            ):
                # Ended outside the state machine: say how (its FactoryState is where it stopped).
                run.state = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_")


async def collect_stats(source: RunFactsSource, window: timedelta, *, limit: int = 1000) -> dict[str, Any]:
    """The figures for runs started within `window` of now."""
    since = datetime.now(UTC) - window
    runs = await source.runs(since, limit)
    summary = summarize(runs, window)
    summary["since"] = since.isoformat()
    summary["limit_reached"] = len(runs) >= limit
    return summary
