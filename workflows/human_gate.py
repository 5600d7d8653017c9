"""The workflow side of human escalation: open a packet, wait durably for a decision, keep the audit.

Deterministic workflow code. Decisions arrive as signals (`approve`, `reject`, `revise`); the pure
rules that judge them live in `policies.escalation`. One escalation is open at a time: parallel
tasks that both need a person queue behind a lock, since the run has one state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from contracts.escalation import AuditEntry, AuditOutcome, EscalationPacket, ReviseDecision
from contracts.policy import EscalationSettings, PolicyDecision
from policies.escalation import clip_evidence, escalation_id, judge_decision, on_deadline
from states import RunState

_STATUS = {"approve": "approved", "reject": "rejected", "revise": "revised"}


class HumanGate:
    """Escalation packets, policy verdicts and the audit trail of one run."""

    def __init__(
        self,
        move: Callable[[RunState, str], None],
        on_escalate: Callable[[EscalationPacket], None] | None = None,
    ) -> None:
        """`on_escalate` hears of each packet as the run enters AWAITING_HUMAN (metrics)."""
        self._move = move
        self._on_escalate = on_escalate
        self._lock = asyncio.Lock()
        self.packets: dict[str, EscalationPacket] = {}
        self.policy_decisions: list[PolicyDecision] = []
        self.audit: list[AuditEntry] = []
        self._ledger_outbox: list[AuditEntry] = []

    # ---------------------------------------------------------------------------------- records
    @property
    def open_packet(self) -> EscalationPacket | None:
        """The escalation waiting for a person, if any."""
        return next((p for p in self.packets.values() if p.status == "open"), None)

    def record_policy(self, decision: PolicyDecision) -> None:
        """Keep every verdict; denials and gates also go to the audit trail."""
        self.policy_decisions.append(decision)
        if decision.verdict != "allow":
            self._audit(
                "policy",
                "policy_decision",
                reason=f"{decision.verdict} by {decision.rule}: {decision.reason}",
                details={
                    "tool": decision.tool,
                    "step_id": decision.step_id,
                    "verdict": decision.verdict,
                    "rule": decision.rule,
                },
            )

    def _audit(
        self,
        actor: str,
        action: str,
        *,
        outcome: AuditOutcome = "recorded",
        escalation: str | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        entry = AuditEntry(
            at=workflow.now(),
            actor=actor,
            action=action,
            outcome=outcome,
            escalation_id=escalation,
            reason=reason[:2000],
            details=details or {},
        )
        self.audit.append(entry)
        self._send_to_ledger(entry)

    def _send_to_ledger(self, entry: AuditEntry) -> None:
        """THE seam for the ledger (issue-4): every audit entry passes here exactly once.

        Signal handlers cannot run activities, so entries wait in an outbox; the ledger branch
        drains it from the workflow through its ledger activity (with the entry's position as the
        idempotency key). Until then the trail lives in the run (`status.audit`).
        """
        self._ledger_outbox.append(entry)

    # ---------------------------------------------------------------------------------- signals
    def receive(self, kind: str, payloads: Sequence[Any], tool_schemas: dict[str, dict[str, Any]]) -> None:
        """Handle one decision signal; never raises (a raising handler would fail the task forever)."""
        if len(payloads) != 1:
            self._audit(
                "unknown",
                kind,
                outcome="refused",
                reason=f"expected exactly one JSON payload, got {len(payloads)}",
            )
            return
        payload = payloads[0]
        judgement = judge_decision(kind, payload, self.packets, tool_schemas)
        details: dict[str, Any] = (
            {"payload": clip_evidence(payload)} if judgement.outcome == "refused" else {}
        )
        if judgement.outcome != "applied" or judgement.decision is None or judgement.escalation_id is None:
            self._audit(
                judgement.actor,
                kind,
                outcome=judgement.outcome,
                escalation=judgement.escalation_id,
                reason=judgement.reason,
                details=details,
            )
            return
        decision = judgement.decision
        packet = self.packets[judgement.escalation_id]
        packet.status = _STATUS[kind]  # type: ignore[assignment]
        packet.decided_by = decision.decided_by
        packet.decided_at = workflow.now()
        packet.comment = decision.comment
        if isinstance(decision, ReviseDecision):
            packet.revised_arguments = decision.arguments
            packet.instructions = decision.instructions or (
                decision.comment if decision.arguments is None else None
            )
        self._audit(
            decision.decided_by,
            kind,
            outcome="applied",
            escalation=packet.escalation_id,
            reason=decision.comment,
            details={
                k: v
                for k, v in {
                    "arguments": packet.revised_arguments,
                    "instructions": packet.instructions,
                    "level": packet.level,
                }.items()
                if v is not None
            },
        )

    def refuse_unknown(self, name: str) -> None:
        """A signal no handler knows: refused and recorded, the run unchanged."""
        self._audit(
            "unknown",
            name[:100],
            outcome="refused",
            reason=f"unknown decision {name!r}; the run takes approve, reject or revise",
        )

    # ---------------------------------------------------------------------------------- waiting
    async def escalate(
        self,
        build: Callable[[str, datetime], EscalationPacket],
        settings: EscalationSettings,
        resumes: Callable[[EscalationPacket], bool],
    ) -> EscalationPacket:
        """Open a packet, move to AWAITING_HUMAN and wait for a decision or the policy's default.

        When `resumes(packet)` says the run carries on, the run moves back to the state that
        escalated; otherwise it stays in AWAITING_HUMAN for the caller to end it (and the lock
        stays held, so no other task escalates from a run that is ending).
        """
        await self._lock.acquire()
        packet = build(escalation_id(len(self.packets) + 1), workflow.now())
        self.packets[packet.escalation_id] = packet
        back_to = RunState(packet.escalated_from)
        self._move(RunState.AWAITING_HUMAN, f"{packet.escalation_id}: {packet.kind}")
        if self._on_escalate is not None:
            self._on_escalate(packet)
        self._audit(
            "engine",
            "escalated",
            escalation=packet.escalation_id,
            reason=packet.decision_needed,
            details={"kind": packet.kind, "deadline": packet.deadline.isoformat(), "level": packet.level},
        )
        await self._wait(packet, settings)
        if resumes(packet):
            self._move(back_to, f"{packet.escalation_id} {packet.status} by {packet.decided_by}")
            self._lock.release()
        return packet

    async def _wait(self, packet: EscalationPacket, settings: EscalationSettings) -> None:
        while packet.status == "open":
            remaining = (packet.deadline - workflow.now()).total_seconds()
            if remaining > 0:
                try:
                    await workflow.wait_condition(
                        lambda: packet.status != "open", timeout=timedelta(seconds=remaining)
                    )
                    continue
                except TimeoutError:
                    pass
            if packet.status != "open":
                continue
            self._deadline_passed(packet, settings)

    def _deadline_passed(self, packet: EscalationPacket, settings: EscalationSettings) -> None:
        action = on_deadline(packet, settings)
        if action == "escalate":
            packet.level = 2
            packet.assignee = settings.second_level
            packet.deadline = workflow.now() + timedelta(seconds=settings.second_level_timeout_s)
            self._audit(
                "policy",
                "escalated_level_2",
                escalation=packet.escalation_id,
                reason=f"no decision by the deadline; handed to {settings.second_level}",
                details={"deadline": packet.deadline.isoformat()},
            )
            return
        packet.status = "rejected"
        packet.timed_out = True
        packet.decided_by = "policy:timeout"
        packet.decided_at = workflow.now()
        packet.comment = (
            f"no decision within the deadline (level {packet.level}); the policy default is reject"
        )
        self._audit(
            "policy",
            "timeout",
            outcome="applied",
            escalation=packet.escalation_id,
            reason=packet.comment,
            details={"level": packet.level, "default": "reject"},
        )
