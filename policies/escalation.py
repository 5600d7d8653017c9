"""Escalation rules as pure functions: what a packet says, and whether a decision signal counts.

The workflow owns the packets and the waiting; these functions only decide, so the same input
gives the same answer on every replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from contracts.escalation import (
    DECISION_MODELS,
    AuditOutcome,
    DecisionBase,
    EscalationKind,
    EscalationOption,
    EscalationPacket,
    ReviseDecision,
)
from contracts.model import Usage
from contracts.policy import EscalationSettings, PolicyDecision
from policies.json_schema import validate

MAX_EVIDENCE_CHARS = 8_000


@dataclass(frozen=True)
class RunCost:
    """The cost so far, as the packet shows it."""

    cost_usd: float
    usage: Usage
    model_calls: int
    tool_calls: int


def escalation_id(sequence: int) -> str:
    """Ids are per run and never reused: `esc-1`, `esc-2`, ..."""
    return f"esc-{sequence}"


def clip_evidence(value: Any) -> Any:
    """The value itself, or a truncated preview when its JSON is over MAX_EVIDENCE_CHARS."""
    # Evidence is for a person: keep it readable and keep the workflow's history small.
    text = json.dumps(value, default=str)
    if len(text) <= MAX_EVIDENCE_CHARS:
        return value
    return {"truncated": True, "preview": text[:MAX_EVIDENCE_CHARS]}


def _packet(
    esc_id: str,
    kind: EscalationKind,
    escalated_from: str,
    trying_to: str,
    decision_needed: str,
    options: list[EscalationOption],
    evidence: dict[str, Any],
    cost: RunCost,
    now: datetime,
    settings: EscalationSettings,
) -> EscalationPacket:
    return EscalationPacket(
        escalation_id=esc_id,
        kind=kind,
        escalated_from=escalated_from,
        trying_to=trying_to,
        decision_needed=decision_needed,
        options=options,
        evidence=evidence,
        cost_usd=cost.cost_usd,
        usage=cost.usage,
        model_calls=cost.model_calls,
        tool_calls=cost.tool_calls,
        opened_at=now,
        deadline=now + timedelta(seconds=settings.timeout_s),
        assignee="first-level",
    )


def tool_call_packet(
    esc_id: str,
    decision: PolicyDecision,
    arguments: dict[str, Any],
    task_id: str,
    task_instructions: str,
    side_effect: bool,
    cost: RunCost,
    now: datetime,
    settings: EscalationSettings,
) -> EscalationPacket:
    """The packet for a tool call the policy gated."""
    reject_impact = (
        "the tool does not run and the run ends REJECTED"
        if settings.on_reject == "end_run"
        else "the tool does not run; the agent is told it was refused and carries on with its task"
    )
    effect = "it has side effects" if side_effect else "it only reads"
    return _packet(
        esc_id,
        "tool_call",
        "EXECUTING",
        f"task {task_id} wants to call {decision.tool} ({task_instructions[:300]})",
        f"may the agent call {decision.tool} with these arguments? ({decision.reason})",
        [
            EscalationOption(
                decision="approve", impact=f"{decision.tool} runs once with the arguments shown; {effect}"
            ),
            EscalationOption(decision="reject", impact=reject_impact),
            EscalationOption(
                decision="revise",
                impact=f"with `arguments`: {decision.tool} runs with your edited arguments (checked against its "
                "schema); with `instructions` only: the tool does not run and the agent gets your instructions",
            ),
        ],
        {
            "tool": decision.tool,
            "arguments": clip_evidence(arguments),
            "step_id": decision.step_id,
            "rule": decision.rule,
            "matched_rules": decision.matched_rules,
            "reason": decision.reason,
        },
        cost,
        now,
        settings,
    )


def planning_packet(
    esc_id: str,
    attempts: int,
    problems: list[str],
    cost: RunCost,
    now: datetime,
    settings: EscalationSettings,
) -> EscalationPacket:
    """The packet for a run whose planning attempts ran out."""
    return _packet(
        esc_id,
        "planning_failed",
        "PLANNING",
        f"make a valid plan; {attempts} attempts failed",
        "should the agent try planning again, with or without guidance, or should the run fail?",
        [
            EscalationOption(decision="approve", impact=f"planning runs again ({attempts} more attempts)"),
            EscalationOption(decision="reject", impact="the run ends FAILED (planning_failed)"),
            EscalationOption(
                decision="revise", impact="planning runs again with your instructions added to the prompt"
            ),
        ],
        {"problems": problems[:50], "attempts": attempts},
        cost,
        now,
        settings,
    )


def review_packet(
    esc_id: str,
    attempts: int,
    findings: list[dict[str, Any]],
    output: Any,
    cost: RunCost,
    now: datetime,
    settings: EscalationSettings,
) -> EscalationPacket:
    """The packet for an output that still fails review after MAX_RETRIES revisions."""
    return _packet(
        esc_id,
        "review_failed",
        "REVIEWING",
        f"deliver an output that passes review; {attempts} attempts failed",
        "accept the output as it is, send it back with instructions, or fail the run?",
        [
            EscalationOption(
                decision="approve", impact="the output is accepted as it is and the run ends COMPLETE"
            ),
            EscalationOption(decision="reject", impact="the run ends FAILED (review_failed)"),
            EscalationOption(
                decision="revise", impact="one more revision with your instructions, then review again"
            ),
        ],
        {"report_card_findings": findings[:50], "output": clip_evidence(output), "attempts": attempts},
        cost,
        now,
        settings,
    )


@dataclass(frozen=True)
class Judgement:
    """What to do with one incoming decision signal."""

    outcome: AuditOutcome
    """`applied`, `duplicate`, `ignored` (stale or unknown id) or `refused` (bad payload)."""
    reason: str
    decision: DecisionBase | None = None
    escalation_id: str | None = None
    actor: str = "unknown"


def _same(packet: EscalationPacket, kind: str, decision: DecisionBase) -> bool:
    status = {"approve": "approved", "reject": "rejected", "revise": "revised"}[kind]
    if (
        packet.status != status
        or packet.decided_by != decision.decided_by
        or packet.comment != decision.comment
    ):
        return False
    if isinstance(decision, ReviseDecision):
        return packet.revised_arguments == decision.arguments and packet.instructions == decision.instructions
    return True


def judge_decision(
    kind: str,
    raw: Any,
    packets: dict[str, EscalationPacket],
    tool_schemas: dict[str, dict[str, Any]],
) -> Judgement:
    """Validate a decision payload and match it to an open escalation. Never raises."""
    model = DECISION_MODELS.get(kind)
    actor = str(raw.get("decided_by", "unknown"))[:200] if isinstance(raw, dict) else "unknown"
    esc_hint = raw.get("escalation_id") if isinstance(raw, dict) else None
    esc_hint = esc_hint if isinstance(esc_hint, str) else None
    if model is None:
        return Judgement(
            "refused", f"unknown decision {kind!r}; use approve, reject or revise", None, esc_hint, actor
        )
    try:
        decision = model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}" for e in exc.errors())
        return Judgement("refused", f"malformed {kind} payload: {problems}", None, esc_hint, actor)
    packet = packets.get(decision.escalation_id)
    if packet is None:
        return Judgement(
            "ignored",
            f"unknown escalation id {decision.escalation_id!r}",
            decision,
            decision.escalation_id,
            decision.decided_by,
        )
    if packet.status != "open":
        if _same(packet, kind, decision):
            return Judgement(
                "duplicate",
                f"{decision.escalation_id} was already {packet.status} by this decision",
                decision,
                decision.escalation_id,
                decision.decided_by,
            )
        return Judgement(
            "ignored",
            f"stale: {decision.escalation_id} is already {packet.status}",
            decision,
            decision.escalation_id,
            decision.decided_by,
        )
    if isinstance(decision, ReviseDecision):
        refusal = _revise_problem(decision, packet, tool_schemas)
        if refusal:
            return Judgement("refused", refusal, decision, decision.escalation_id, decision.decided_by)
    return Judgement(
        "applied", f"{kind} by {decision.decided_by}", decision, decision.escalation_id, decision.decided_by
    )


def _revise_problem(
    decision: ReviseDecision, packet: EscalationPacket, tool_schemas: dict[str, dict[str, Any]]
) -> str | None:
    if decision.arguments is not None:
        if packet.kind != "tool_call":
            return f"edited arguments only apply to a tool call; {packet.escalation_id} is {packet.kind}"
        tool = str(packet.evidence.get("tool", ""))
        schema = tool_schemas.get(tool)
        if schema is None:
            return f"no schema known for tool {tool!r}"
        problems = validate(decision.arguments, schema)
        if problems:
            return f"edited arguments fail {tool}'s schema: " + "; ".join(problems[:10])
        return None
    if not (decision.instructions or decision.comment):
        return "revise needs edited `arguments`, `instructions`, or at least a comment to pass on"
    return None


TimeoutAction = Literal["reject", "escalate"]


def on_deadline(packet: EscalationPacket, settings: EscalationSettings) -> TimeoutAction:
    """What the policy does when a deadline passes: a second level once if configured, else reject."""
    if packet.level == 1 and settings.on_timeout == "escalate":
        return "escalate"
    return "reject"
