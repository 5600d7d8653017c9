"""The tool-call contract: tools return a status, never raise into the model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.cost import LedgerEvents
from contracts.errors import ErrorInfo

ToolStatus = Literal["ok", "error", "denied", "needs_approval"]


class ToolCallInput(BaseModel):
    """Input of the `call_tool` activity."""

    run_id: str
    step_id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    workspace: str = ""
    """Per-run workspace folder name (relative to the workspace root in settings)."""
    dry_run: bool = False
    idempotency_key: str = ""
    """run id + step id: a side-effecting tool run twice acts once."""
    ledger: LedgerEvents = Field(default_factory=LedgerEvents)
    """State transitions since the run's last activity: written with this call's ledger row."""


class ToolResult(BaseModel):
    """What a tool call produced. `dry_run` says a side effect was skipped on purpose."""

    status: ToolStatus
    tool: str
    output: Any = None
    error: ErrorInfo | None = None
    dry_run: bool = False
    replayed: bool = False
    """True when the idempotency journal answered and the side effect was not repeated."""
