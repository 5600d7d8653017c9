"""The rows callers hand to the ledger's write API (one pydantic model per kind of record)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from contracts.model import Usage


def utcnow() -> datetime:
    """Timezone-aware now (the ledger stores UTC)."""
    return datetime.now(UTC)


class RunStartRecord(BaseModel):
    """A run the ledger should know about (written once, at VALIDATING)."""

    run_id: str
    temporal_run_id: str | None = None
    blueprint: str = ""
    blueprint_version: str = ""
    tenant: str = "default"
    started_at: datetime = Field(default_factory=utcnow)
    budget_max_tokens: int | None = None
    budget_max_usd: float | None = None


class RunEndRecord(BaseModel):
    """How a run ended: its terminal state, totals, and what a stopped run kept."""

    run_id: str
    temporal_run_id: str | None = None
    blueprint: str = ""
    blueprint_version: str = ""
    tenant: str = "default"
    started_at: datetime | None = None
    budget_max_tokens: int | None = None
    budget_max_usd: float | None = None
    state: str
    ended_at: datetime = Field(default_factory=utcnow)
    success: bool = False
    error_code: str | None = None
    budget_alerted: bool = False
    budget_stopped: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    tool_calls: int = 0
    partial_output: Any = None


class ModelCallRecord(BaseModel):
    """One attempt of one model call: its tokens, cost, latency, the route that chose it."""

    run_id: str
    step_id: str
    step_kind: str = "execute"
    attempt: int = 1
    provider: str
    model: str
    task_queue: str | None = None
    route_index: int = 0
    route_reason: str = ""
    status: str = "ok"
    error_type: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    price_table_version: str = ""
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ToolCallRecord(BaseModel):
    """One tool call: name, outcome, how long it took, its idempotency key."""

    run_id: str
    step_id: str
    tool: str
    status: str
    duration_ms: float = 0.0
    idempotency_key: str = ""
    replayed: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class EscalationRecord(BaseModel):
    """A run asked a human (the escalation's id is its idempotency key)."""

    escalation_id: str
    run_id: str
    state: str
    reason: str = ""
    policy: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class DecisionRecord(BaseModel):
    """A human's (or the timeout default's) answer to an escalation."""

    decision_id: str
    escalation_id: str
    run_id: str
    decision: str
    actor: str = ""
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class DeadLetterRecord(BaseModel):
    """A run that could not go on: where it failed, why, its last checkpoint, what it cost."""

    id: str
    workflow_id: str
    run_id: str
    failed_state: str
    error: dict[str, Any]
    last_checkpoint: dict[str, Any] | None = None
    attempts: int = 0
    cost_usd: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
    redriven_by: str | None = None
