"""Escalations and the decisions that answered them reach the ledger through the human gate's
audit outbox, riding on the run's next activity (no activity of their own)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.ledger import Ledger, schema
from starter import send_decision
from tests.fakes.payments import SideEffects, obedient_payer, payment_request, payments_worker, start, status
from tests.support import isolated_settings


async def test_an_approved_escalation_and_its_decision_are_in_the_ledger_once(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    settings = isolated_settings(tmp_path)
    async with payments_worker(env.client, settings, task_queue, obedient_payer, SideEffects()):
        handle = await start(env.client, payment_request(amount=250), task_queue, workflow_id)
        for _ in range(600):
            current = await status(handle)
            if current.escalation is not None:
                break
            await asyncio.sleep(0.05)
        assert current.escalation is not None
        await send_decision(env.client, workflow_id, "approve", decided_by="dana", comment="known vendor")
        result = await handle.result()
    assert result.state == "COMPLETE", result.error
    ledger = Ledger.from_settings(settings)
    try:
        [escalation] = await ledger.rows(schema.escalations, run_id=workflow_id)
        [decision] = await ledger.rows(schema.decisions, run_id=workflow_id)
        transitions = await ledger.rows(schema.state_transitions, run_id=workflow_id)
    finally:
        await ledger.close()
    assert escalation["escalation_id"] == f"{workflow_id}/{current.escalation.escalation_id}"
    assert escalation["state"] == "EXECUTING" and escalation["policy"] == "tool_call"
    assert decision["escalation_id"] == escalation["escalation_id"]
    assert (decision["decision"], decision["actor"], decision["comment"]) == (
        "approve",
        "dana",
        "known vendor",
    )
    assert [t["target"] for t in sorted(transitions, key=lambda t: t["seq"])] == result.states_visited
