"""The plan the orchestrator (PLANNING) hands to workers (EXECUTING)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class PlanTask(BaseModel):
    """One bounded unit of work for a worker step."""

    id: str
    kind: str = "execute"
    instructions: str
    allowed_tools: list[str] = Field(default_factory=list)
    expected_result_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    depends_on: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    """The structured plan: an ordered list of typed tasks."""

    tasks: list[PlanTask]
    rationale: str = ""


TaskStatus = Literal["success", "failure", "needs_human"]


class TaskResult(BaseModel):
    """What a worker step returns to the workflow, which owns all state."""

    task_id: str
    status: TaskStatus
    result: Any = None
    summary: str = ""
    turns: int = 0
    tool_calls: int = 0
    error: str | None = None
