"""Human escalation: the packet a person reads, the decisions they send, and the audit trail.

The three signals and their JSON payloads (what `temporal workflow signal --input` takes):

    approve: {"escalation_id": "esc-1", "decided_by": "alice@example.com", "comment": "fine"}
    reject:  {"escalation_id": "esc-1", "decided_by": "alice@example.com", "comment": "too much"}
    revise:  {"escalation_id": "esc-1", "decided_by": "alice@example.com", "comment": "smaller",
              "arguments": {"amount": 50, "to": "bob@example.com"}}      # edited tool arguments
         or  {..., "instructions": "pay the invoice in two parts"}       # guidance for the model

Unknown fields, missing fields, and edited arguments that fail the tool's schema are refused
(recorded in the run's audit trail; nothing else changes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.model import Usage

DecisionKind = Literal["approve", "reject", "revise"]
EscalationKind = Literal["tool_call", "planning_failed", "review_failed", "budget_alert", "budget_cap"]
EscalationStatus = Literal["open", "approved", "rejected", "revised"]


class DecisionBase(BaseModel):
    """What every decision carries: which escalation it answers, who decided, and why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    escalation_id: str = Field(min_length=1, max_length=200)
    """The id in the packet (`starter.py show`); a decision for any other id is ignored."""
    decided_by: str = Field(min_length=1, max_length=200)
    """Who decided: a person's identity, recorded in the audit trail."""
    comment: str = Field(default="", max_length=4000)
    """Why."""


class ApproveDecision(DecisionBase):
    """Payload of the `approve` signal: go ahead as proposed."""


class RejectDecision(DecisionBase):
    """Payload of the `reject` signal: do not do it; the policy says how the run goes on."""


class ReviseDecision(DecisionBase):
    """Payload of the `revise` signal: run the tool with edited `arguments` (checked against its
    schema), or send `instructions` back to the agent instead."""

    arguments: dict[str, Any] | None = None
    instructions: str | None = Field(default=None, max_length=8000)


DECISION_MODELS: dict[str, type[DecisionBase]] = {
    "approve": ApproveDecision,
    "reject": RejectDecision,
    "revise": ReviseDecision,
}


class EscalationOption(BaseModel):
    """One way a person can answer, and what it will do."""

    decision: DecisionKind
    impact: str


class EscalationPacket(BaseModel):
    """Everything a person needs to decide quickly, and how it ended."""

    escalation_id: str
    kind: EscalationKind
    escalated_from: str
    """The state the run was in; it returns there unless the decision ends the run."""
    trying_to: str
    """What the agent was trying to do, in one sentence."""
    decision_needed: str
    options: list[EscalationOption]
    evidence: dict[str, Any] = Field(default_factory=dict)
    """Tool name and arguments, the policy rule, report-card findings, planning problems."""
    cost_usd: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    model_calls: int = 0
    tool_calls: int = 0
    opened_at: datetime
    deadline: datetime
    level: int = 1
    """1 at first; 2 once the first deadline passed and the policy escalated it further."""
    assignee: str = ""
    status: EscalationStatus = "open"
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    revised_arguments: dict[str, Any] | None = None
    instructions: str | None = None
    timed_out: bool = False
    """True when the policy's default decided, not a person."""


AuditOutcome = Literal["recorded", "applied", "ignored", "duplicate", "refused"]


class AuditEntry(BaseModel):
    """Who did what, when and why: policy verdicts, escalations, decisions and refused signals."""

    at: datetime
    actor: str
    """A person's identity, `policy`, or `engine`."""
    action: str
    """`policy_decision`, `escalated`, `approve`, `reject`, `revise`, `timeout`, `escalated_level_2`, ..."""
    outcome: AuditOutcome = "recorded"
    escalation_id: str | None = None
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
