"""Side effects a run completed, and their compensation (the saga)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.errors import ErrorInfo


class SideEffectRecord(BaseModel):
    """A side-effecting tool call that completed: what to undo if the run does not finish."""

    step_id: str
    task_id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    idempotency_key: str
    compensable: bool = False
    """True when the tool declared a compensating action."""


class CompensateInput(BaseModel):
    """Input of the `compensate_tool` activity: undo one completed side effect."""

    run_id: str
    effect: SideEffectRecord
    workspace: str = ""
    idempotency_key: str
    """The effect's key + `/compensate`: a compensation run twice acts once."""


CompensationStatus = Literal["compensated", "not_compensable", "failed"]


class CompensationRecord(BaseModel):
    """What became of one side effect during compensation."""

    step_id: str
    tool: str
    status: CompensationStatus
    output: Any = None
    error: ErrorInfo | None = None
    dead_letter_id: str | None = None
