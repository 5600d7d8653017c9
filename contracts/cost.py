"""Cost governance as data: model targets and routes, prices, budgets, and ledger events.

Resolved once at VALIDATING (where settings and the price file are readable) and recorded in
history, so the workflow decides from these values alone, deterministically.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

STEP_KINDS: tuple[str, ...] = (
    "classify",
    "extract",
    "plan",
    "generate",
    "judge",
    "summarize",
    "execute",
    "compose",
)
"""Every step declares one of these; routes are keyed by them (`*` is the catch-all)."""


class ModelTarget(BaseModel):
    """One model a step may run on: the provider, the model, and where its calls are scheduled."""

    provider: str
    model: str
    task_queue: str | None = None
    """Task queue of the model call; None = the provider's queue from settings (or the run's own)."""
    gpu: bool = False
    """A local model served by GPU workers: scheduled on `settings.gpu_task_queue`."""
    schedule_to_start_s: float | None = None
    """Give up on this target when no worker picks the call up in time (then the route falls back)."""

    @property
    def label(self) -> str:
        """`provider/model`."""
        return f"{self.provider}/{self.model}"


class ModelPrice(BaseModel):
    """USD per million tokens for one model, and its context window in tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(default=0.0, ge=0)
    cache_write: float = Field(default=0.0, ge=0)
    context_window: int = Field(default=200_000, gt=0)


class RunBudget(BaseModel):
    """The ceiling of one run. None = no limit on that measure."""

    max_tokens: int | None = None
    """Input plus output tokens over every model call of the run (retried attempts included)."""
    max_usd: float | None = None
    """Dollars over every model call of the run (retried attempts included)."""
    alert_fraction: float = 0.8
    """Share of the cap at which the run raises its budget alert."""
    on_alert: Literal["log", "escalate"] = "log"
    """What the alert does beyond log, metric and search attribute: `escalate` asks a human."""
    on_cap: Literal["decline", "escalate"] = "decline"
    """At the cap: `decline` ends the run gracefully keeping what was done; `escalate` asks a human."""


class ContextPolicy(BaseModel):
    """When to compress a step's conversation: past `threshold` of the model's window, older turns
    are summarized and the last `keep_recent` messages stay verbatim."""

    enabled: bool = True
    threshold: float = 0.5
    keep_recent: int = 4
    window_tokens: int | None = None
    """Override of the model's window (small values make compaction visible in tests and benchmarks)."""


class CostPlan(BaseModel):
    """Everything the workflow needs to route, price and bound a run, fixed at VALIDATING."""

    routes: dict[str, list[ModelTarget]]
    """Step kind (or `*`) → ordered chain of targets, first choice first."""
    prices: dict[str, ModelPrice]
    """Prices of every routed model, as of the run's start."""
    price_table_version: str
    budget: RunBudget = Field(default_factory=RunBudget)
    context: ContextPolicy = Field(default_factory=ContextPolicy)


class TransitionEvent(BaseModel):
    """A state transition waiting to be written to the ledger by the run's next activity."""

    seq: int
    source: str | None
    target: str
    at: datetime
    reason: str = ""


class AuditEvent(BaseModel):
    """An entry of the run's escalation audit trail waiting for the ledger: escalations and the
    decisions that answered them become rows; `seq` is its position in the trail (its key)."""

    seq: int
    at: datetime
    actor: str
    action: str
    outcome: str = "recorded"
    escalation_id: str | None = None
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    escalated_from: str | None = None
    """For `escalated`: the state that escalated."""


class LedgerEvents(BaseModel):
    """Ledger rows that ride on an activity the run makes anyway (no extra activity per transition)."""

    transitions: list[TransitionEvent] = Field(default_factory=list)
    audit: list[AuditEvent] = Field(default_factory=list)


class RunLedgerInput(BaseModel):
    """Input of the `record_run_end` activity: the run's outcome, totals and last transitions."""

    run_id: str
    temporal_run_id: str = ""
    blueprint: str = ""
    blueprint_version: str = ""
    tenant: str = "default"
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    success: bool = False
    error_code: str | None = None
    budget: RunBudget | None = None
    budget_alerted: bool = False
    budget_stopped: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    tool_calls: int = 0
    partial_output: Any = None
    ledger: LedgerEvents = Field(default_factory=LedgerEvents)
