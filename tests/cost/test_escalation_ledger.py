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


async def test_a_budget_cap_escalates_approval_doubles_it_once_and_rejection_stops_the_run(
    env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    import uuid

    from contracts.cost import ModelTarget
    from contracts.model import Usage
    from contracts.run import RunRequest
    from starter import start_run
    from tests.cost.conftest import make_harness, probe_blueprint
    from tests.cost.test_cost_runs import tool_forever
    from tests.fakes.scripted import ScriptedProvider
    from worker import build_worker

    cap = 0.01
    blueprint = probe_blueprint(budget={"max_usd": cap, "on_cap": "escalate"})
    runaway = ScriptedProvider(tool_forever, usage=Usage(input_tokens=400, output_tokens=40))
    harness = make_harness(env.client, sqlite_ledger, tmp_path, runaway, blueprint=blueprint)
    queue, workflow_id = f"tq-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:10]}"
    request = RunRequest(
        blueprint="cost-probe",
        input={"topic": "loops"},
        routes={"*": [ModelTarget(provider="scripted", model="claude-haiku-4-5")]},
    )
    async with build_worker(env.client, harness.settings, task_queue=queue, activities=harness.activities()):
        handle = await start_run(env.client, request, task_queue=queue, workflow_id=workflow_id)
        seen: list[str] = []
        for decision in ("approve", "reject"):
            for _ in range(600):
                current = await status(handle)
                if current.escalation is not None and current.escalation.escalation_id not in seen:
                    break
                await asyncio.sleep(0.05)
            packet = current.escalation
            assert packet is not None and packet.kind == "budget_cap" and current.state == "AWAITING_HUMAN"
            seen.append(packet.escalation_id)
            await send_decision(env.client, workflow_id, decision, decided_by="erin", comment=decision)
        result = await handle.result()
    assert result.state == "FAILED" and result.error is not None and result.error.code == "budget_exhausted"
    assert result.budget_stopped and "AWAITING_HUMAN" in result.states_visited
    _, spent = await sqlite_ledger.run_spend(workflow_id)
    assert cap < spent <= 2 * cap  # approval let it past the first cap, never past the doubled one
    escalations = await sqlite_ledger.rows(schema.escalations, run_id=workflow_id)
    decisions = await sqlite_ledger.rows(schema.decisions, run_id=workflow_id)
    assert sorted(e["policy"] for e in escalations) == ["budget_cap", "budget_cap"]
    assert sorted(d["decision"] for d in decisions) == ["approve", "reject"]
