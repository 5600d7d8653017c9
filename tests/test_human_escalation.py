"""Human escalation end to end on `env` (time-skipping by default): gated tool calls, decisions by
signal, bad decisions, deadlines, prompt injection, and PLANNING/REVIEWING escalations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.escalation import EscalationPacket
from contracts.model import ModelTurnInput, ToolCall
from contracts.run import RunStatus
from policies.protocol import SUBMIT_OUTPUT
from starter import send_decision
from tests.fakes.payments import (
    SideEffects,
    gullible_reader,
    obedient_payer,
    payment_request,
    payments_worker,
    start,
    status,
    stubborn_deleter,
)
from tests.support import isolated_settings, published_states
from workflows.agent_run import AgentRunWorkflow
from workflows.sandbox import sandbox_runner
from workflows.search_attributes import FACTORY_STATE

pytestmark = pytest.mark.e2e
WAIT_S = 60


async def next_escalation(
    handle: WorkflowHandle[Any, Any], seen: set[str] | None = None
) -> EscalationPacket | None:
    """Poll `status` until an escalation not in `seen` is open (None when the run ended first)."""
    seen = seen or set()
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        current = await status(handle)
        if current.escalation is not None and current.escalation.escalation_id not in seen:
            assert current.state == "AWAITING_HUMAN"
            return current.escalation
        if current.state in ("COMPLETE", "FAILED", "REJECTED"):
            return None
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new escalation within {WAIT_S}s")


async def wait_for_audit(handle: WorkflowHandle[Any, Any], count: int) -> RunStatus:
    """Poll `status` until the audit trail has at least `count` entries."""
    for _ in range(WAIT_S * 20):
        current = await status(handle)
        if len(current.audit) >= count:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError("the audit trail did not grow")


async def signal_raw(client: Client, workflow_id: str, name: str, payload: Any) -> None:
    """Send a signal with whatever JSON payload a careless operator might type."""
    await client.get_workflow_handle(workflow_id).signal(name, payload)


def history_events(history: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, decoded input) for signals and call_tool activities, in history order."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for event in history.events:
        if event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            found.append(("signal", attrs.signal_name, _decode(attrs.input.payloads)))
        elif event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "call_tool":
                found.append(("call_tool", "", _decode(attrs.input.payloads)))
    return found


def _decode(payloads: list[Payload]) -> dict[str, Any]:
    if not payloads:
        return {}
    value = json.loads(payloads[0].data)
    return value if isinstance(value, dict) else {"value": value}


def workflow_task_failures(history: Any) -> int:
    return sum(1 for e in history.events if e.HasField("workflow_task_failed_event_attributes"))


# --------------------------------------------------------------------------------- decisions
async def test_revise_with_edited_arguments_runs_the_tool_with_the_edited_arguments_only(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(env.client, payment_request(amount=250), task_queue, workflow_id)
        packet = await next_escalation(handle)
        assert packet is not None and packet.kind == "tool_call"
        assert packet.evidence["arguments"]["amount"] == 250 and packet.evidence["rule"] == "big-payments"
        await send_decision(
            env.client,
            workflow_id,
            "revise",
            decided_by="carol",
            comment="pay the first half",
            arguments={"amount": 125, "to": "bob@example.com", "memo": "half"},
        )
        result = await handle.result()
        final = await status(handle)
    assert result.state == "COMPLETE", result.error
    assert [p["amount"] for p in effects.payments] == [125.0]
    assert final.escalations[0].status == "revised"
    assert final.escalations[0].revised_arguments == {"amount": 125, "to": "bob@example.com", "memo": "half"}
    assert result.states_visited == [
        "INTAKE",
        "VALIDATING",
        "PLANNING",
        "EXECUTING",
        "AWAITING_HUMAN",
        "EXECUTING",
        "REVIEWING",
        "COMPLETE",
    ]
    revise = [a for a in final.audit if a.action == "revise"]
    assert len(revise) == 1 and revise[0].actor == "carol" and revise[0].outcome == "applied"


async def test_a_notable_run_publishes_its_state_from_its_first_wait_on_a_person_on(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        request = payment_request(amount=250, state_visibility="notable")
        handle = await start(env.client, request, task_queue, workflow_id)
        assert await next_escalation(handle) is not None
        waiting = await handle.describe()
        await send_decision(env.client, workflow_id, "approve", decided_by="carol")
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.state == "COMPLETE", result.error
    # Nothing while it only planned and executed; the wait on carol is searchable as it happens.
    assert waiting.typed_search_attributes.get(FACTORY_STATE) == "AWAITING_HUMAN"
    published = published_states(history)
    assert published[0]["FactoryBlueprint"] == "payments"
    # After the decision the run is no longer quiet: the attribute never keeps a state it has left.
    assert [u["FactoryState"] for u in published if "FactoryState" in u] == [
        "AWAITING_HUMAN",
        "EXECUTING",
        "COMPLETE",
    ]


async def test_revise_with_instructions_only_runs_nothing_and_passes_the_instructions_to_the_model(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(env.client, payment_request(amount=500), task_queue, workflow_id)
        await next_escalation(handle)
        await send_decision(
            env.client,
            workflow_id,
            "revise",
            decided_by="carol",
            instructions="wait for the second invoice before paying",
        )
        result = await handle.result()
        task_result = (await status(handle)).task_results[0]
    assert result.state == "COMPLETE", result.error
    assert effects.payments == []
    said = json.loads(task_result.result["tool_said"])
    assert said["status"] == "denied" and said["error"]["code"] == "revised_by_human"
    assert "second invoice" in said["error"]["message"]


async def test_edited_arguments_that_fail_the_tools_schema_are_refused_and_the_run_keeps_waiting(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(env.client, payment_request(amount=250), task_queue, workflow_id)
        packet = await next_escalation(handle)
        assert packet is not None
        before = await status(handle)
        bad = {
            "escalation_id": packet.escalation_id,
            "decided_by": "carol",
            "arguments": {"amount": -5, "to": "b"},
        }
        await signal_raw(env.client, workflow_id, "revise", bad)
        after = await wait_for_audit(handle, len(before.audit) + 1)
        refused = after.audit[-1]
        assert (refused.action, refused.outcome) == ("revise", "refused")
        assert "$.amount" in refused.reason and "$.to" in refused.reason
        assert after.state == "AWAITING_HUMAN" and after.escalation is not None
        assert after.escalation.status == "open" and after.transitions == before.transitions
        await send_decision(
            env.client, workflow_id, "approve", decided_by="carol", comment="as proposed then"
        )
        result = await handle.result()
    assert result.state == "COMPLETE"
    assert [p["amount"] for p in effects.payments] == [250.0]


async def test_malformed_payloads_and_unknown_decisions_are_refused_visibly_without_changing_the_run(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(env.client, payment_request(amount=250), task_queue, workflow_id)
        packet = await next_escalation(handle)
        assert packet is not None
        before = await status(handle)
        esc = packet.escalation_id
        await signal_raw(env.client, workflow_id, "approve", {})
        await signal_raw(env.client, workflow_id, "approve", {"escalation_id": esc})  # no decider
        await signal_raw(
            env.client, workflow_id, "approve", {"escalation_id": esc, "decided_by": "x", "decision": "maybe"}
        )
        await signal_raw(env.client, workflow_id, "reject", "yes")
        await signal_raw(
            env.client, workflow_id, "approve_everything", {"escalation_id": esc, "decided_by": "x"}
        )
        await client_signal_without_payload(env.client, workflow_id, "approve")
        ok = {"escalation_id": esc, "decided_by": "x"}
        await env.client.get_workflow_handle(workflow_id).signal("approve", args=[ok, ok])
        after = await wait_for_audit(handle, len(before.audit) + 7)
        new = after.audit[len(before.audit) :]
        assert [e.outcome for e in new] == ["refused"] * 7
        assert "exactly one" in new[5].reason and "exactly one" in new[6].reason
        assert (
            "escalation_id" in new[0].reason and "decided_by" in new[1].reason and "decision" in new[2].reason
        )
        assert new[4].action == "approve_everything" and "unknown decision" in new[4].reason
        assert (
            after.state == "AWAITING_HUMAN"
            and after.escalation is not None
            and after.escalation.status == "open"
        )
        assert after.transitions == before.transitions and effects.payments == []
        await send_decision(env.client, workflow_id, "approve", decided_by="dana", comment="ok")
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.state == "COMPLETE"
    assert workflow_task_failures(history) == 0


async def client_signal_without_payload(client: Client, workflow_id: str, name: str) -> None:
    await client.get_workflow_handle(workflow_id).signal(name)


async def test_duplicate_decisions_are_idempotent(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(env.client, payment_request(amount=300), task_queue, workflow_id)
        packet = await next_escalation(handle)
        assert packet is not None
        decision = {"escalation_id": packet.escalation_id, "decided_by": "erin", "comment": "ok"}
        for _ in range(3):
            await signal_raw(env.client, workflow_id, "approve", decision)
        result = await handle.result()
        final = await status(handle)
    assert result.state == "COMPLETE"
    assert len(effects.payments) == 1
    approvals = [a for a in final.audit if a.action == "approve"]
    assert [a.outcome for a in approvals] == ["applied", "duplicate", "duplicate"]
    assert [t["target"] for t in final.transitions].count("AWAITING_HUMAN") == 1


async def test_a_decision_for_a_stale_or_unknown_escalation_is_ignored_and_recorded(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, gullible_reader, effects):
        handle = await start(env.client, payment_request(version="1.1.0"), task_queue, workflow_id)
        first = await next_escalation(handle)
        assert first is not None
        await send_decision(
            env.client,
            workflow_id,
            "reject",
            decided_by="fay",
            comment="no",
            escalation_id=first.escalation_id,
        )
        second = await next_escalation(handle, {first.escalation_id})
        assert second is not None and second.escalation_id != first.escalation_id
        before = await status(handle)
        await signal_raw(
            env.client,
            workflow_id,
            "approve",
            {"escalation_id": first.escalation_id, "decided_by": "mallory", "comment": "old id"},
        )
        await signal_raw(
            env.client,
            workflow_id,
            "approve",
            {"escalation_id": "esc-404", "decided_by": "mallory", "comment": "made up"},
        )
        after = await wait_for_audit(handle, len(before.audit) + 2)
        stale, unknown = after.audit[-2:]
        assert (stale.outcome, stale.escalation_id, stale.actor) == (
            "ignored",
            first.escalation_id,
            "mallory",
        )
        assert "stale" in stale.reason
        assert (unknown.outcome, unknown.escalation_id) == ("ignored", "esc-404")
        assert after.escalation is not None and after.escalation.escalation_id == second.escalation_id
        assert after.escalation.status == "open" and effects.payments == []
        await handle.terminate("test done")


# --------------------------------------------------------------------------------- deadlines
async def test_an_escalation_past_its_deadline_takes_the_policy_default_and_rejects(
    time_skipping_env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    env = time_skipping_env
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(env.client, payment_request(amount=250), task_queue, workflow_id)
        result = await handle.result()  # nobody answers: the test server skips the 24 h
        final = await status(handle)
    assert result.state == "REJECTED"
    assert result.error is not None and result.error.code == "approval_timed_out"
    assert effects.payments == []
    packet = final.escalations[0]
    assert (packet.status, packet.timed_out, packet.decided_by) == ("rejected", True, "policy:timeout")
    assert (
        packet.decided_at is not None and (packet.decided_at - packet.opened_at).total_seconds() >= 24 * 3600
    )
    timeout = [a for a in final.audit if a.action == "timeout"]
    assert len(timeout) == 1 and timeout[0].actor == "policy" and timeout[0].details["default"] == "reject"


async def test_a_deadline_hands_the_packet_to_the_second_level_before_rejecting(
    time_skipping_env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    env = time_skipping_env
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, obedient_payer, effects):
        handle = await start(
            env.client, payment_request(amount=250, version="2.0.0"), task_queue, workflow_id
        )
        result = await handle.result()
        final = await status(handle)
    assert result.state == "REJECTED" and effects.payments == []
    packet = final.escalations[0]
    assert (packet.level, packet.assignee, packet.timed_out) == (2, "finance-leads", True)
    assert packet.decided_at is not None
    assert (packet.decided_at - packet.opened_at).total_seconds() >= 3600 + 7200
    actions = [a.action for a in final.audit if a.escalation_id == packet.escalation_id]
    assert actions == ["escalated", "escalated_level_2", "timeout"]


# --------------------------------------------------------------------------- prompt injection
async def test_a_prompt_injection_never_gets_a_forbidden_or_unapproved_tool_call_through(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    decisions = ["reject", "reject", "approve", "reject", "reject"]
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, gullible_reader, effects):
        handle = await start(env.client, payment_request(version="1.1.0"), task_queue, workflow_id)
        seen: set[str] = set()
        for decision in decisions:
            packet = await next_escalation(handle, seen)
            assert packet is not None and packet.evidence["arguments"] == {
                "amount": 9999,
                "to": "bob@example.com",
            }
            seen.add(packet.escalation_id)
            await send_decision(
                env.client,
                workflow_id,
                decision,
                decided_by="gina",
                comment=decision,
                escalation_id=packet.escalation_id,
            )
        result = await handle.result()
        final = await status(handle)
        history = await handle.fetch_history()
    # the model followed the injection to the end of its turns
    assert result.state == "FAILED" and result.error is not None and result.error.code == "max_turns_exceeded"
    deletes = [d for d in final.policy_decisions if d.tool == "delete_everything"]
    assert len(deletes) == 5 and all(d.verdict == "deny" and d.rule == "never-delete" for d in deletes)
    assert effects.deletions == 0 and len(effects.payments) == 1
    # over the recorded history: no delete ever scheduled, every payment after its own approve
    unused_approvals = 0
    scheduled_payments = 0
    for kind, name, data in history_events(history):
        if kind == "signal" and name == "approve":
            unused_approvals += 1
        if kind == "call_tool":
            assert data["tool"] != "delete_everything"
            if data["tool"] == "send_payment":
                assert unused_approvals > 0, "a gated tool was scheduled without an approve before it"
                unused_approvals -= 1
                scheduled_payments += 1
    assert scheduled_payments == 1
    # the recorded history replays on today's code: the gate is deterministic
    await Replayer(
        workflows=[AgentRunWorkflow], data_converter=pydantic_data_converter, workflow_runner=sandbox_runner()
    ).replay_workflow(history)


async def test_a_model_that_keeps_calling_a_denied_tool_is_stopped_by_max_turns(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    effects = SideEffects()
    async with payments_worker(
        env.client, isolated_settings(tmp_path), task_queue, stubborn_deleter, effects
    ):
        handle = await start(env.client, payment_request(), task_queue, workflow_id)
        result = await handle.result()
        final = await status(handle)
        history = await handle.fetch_history()
    assert result.state == "FAILED" and result.error is not None and result.error.code == "max_turns_exceeded"
    assert "AWAITING_HUMAN" not in result.states_visited
    assert [d.verdict for d in final.policy_decisions] == ["deny"] * 6  # payments@1.0.0 allows 6 turns
    assert not [e for e in history_events(history) if e[0] == "call_tool"]
    assert effects.deletions == 0


# --------------------------------------------------------------------- planning and reviewing
def failing_planner(bad_rounds: int) -> tuple[Any, list[ModelTurnInput]]:
    """A model whose first `bad_rounds` × 3 plans are missing; then the offline model plans."""
    plans: list[ModelTurnInput] = []

    def script(request: ModelTurnInput) -> list[ToolCall] | None:
        if request.step_kind == "plan":
            plans.append(request)
            if len(plans) <= bad_rounds * 3:
                return [ToolCall(id="x", name="think", arguments={})]
            return None
        return obedient_payer(request)

    return script, plans


async def test_planning_that_fails_three_times_escalates_and_a_revise_gives_the_planner_guidance(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    script, plans = failing_planner(bad_rounds=1)
    effects = SideEffects()
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, script, effects):
        handle = await start(env.client, payment_request(amount=50), task_queue, workflow_id)
        packet = await next_escalation(handle)
        assert packet is not None and packet.kind == "planning_failed" and packet.escalated_from == "PLANNING"
        assert packet.evidence["attempts"] == 3 and packet.evidence["problems"]
        await send_decision(
            env.client, workflow_id, "revise", decided_by="hal", instructions="one task: pay the invoice"
        )
        result = await handle.result()
    assert result.state == "COMPLETE", result.error
    assert result.states_visited[:6] == [
        "INTAKE",
        "VALIDATING",
        "PLANNING",
        "AWAITING_HUMAN",
        "PLANNING",
        "EXECUTING",
    ]
    assert len(plans) == 4 and "one task: pay the invoice" in plans[3].messages[-1].content


async def test_planning_escalation_rejected_fails_the_run_and_a_fail_policy_never_escalates(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    script, _ = failing_planner(bad_rounds=10)
    async with payments_worker(env.client, isolated_settings(tmp_path), task_queue, script, SideEffects()):
        handle = await start(env.client, payment_request(), task_queue, "plan-reject-" + task_queue)
        await next_escalation(handle)
        await send_decision(env.client, handle.id, "reject", decided_by="hal", comment="give up")
        rejected = await handle.result()
        failing = await start(
            env.client, payment_request(version="3.0.0"), task_queue, "plan-fail-" + task_queue
        )
        failed = await failing.result()
    assert (
        rejected.state == "FAILED" and rejected.error is not None and rejected.error.code == "planning_failed"
    )
    assert rejected.states_visited[-2:] == ["AWAITING_HUMAN", "FAILED"]
    assert failed.state == "FAILED" and "AWAITING_HUMAN" not in failed.states_visited


def sloppy_composer(request: ModelTurnInput) -> list[ToolCall] | None:
    """Pays small invoices fine but never composes an output that passes review."""
    if request.step_kind == "compose":
        return [ToolCall(id="out", name=SUBMIT_OUTPUT, arguments={"output": {"summary": ""}})]
    return obedient_payer(request)


async def test_review_failing_past_max_retries_escalates_with_the_report_card_and_approve_accepts_it(
    env: WorkflowEnvironment, task_queue: str, workflow_id: str, tmp_path: Path
) -> None:
    async with payments_worker(
        env.client, isolated_settings(tmp_path), task_queue, sloppy_composer, SideEffects()
    ):
        handle = await start(env.client, payment_request(amount=50), task_queue, workflow_id)
        packet = await next_escalation(handle)
        assert packet is not None and packet.kind == "review_failed" and packet.escalated_from == "REVIEWING"
        assert packet.evidence["attempts"] == 4
        assert packet.evidence["report_card_findings"][0]["path"] == "$.summary"
        await send_decision(env.client, workflow_id, "approve", decided_by="ivy", comment="good enough")
        result = await handle.result()
        failing = await start(
            env.client, payment_request(amount=50, version="3.0.0"), task_queue, workflow_id + "-f"
        )
        failed = await failing.result()
    assert result.state == "COMPLETE" and result.output == {"summary": ""}
    assert result.states_visited[-2:] == ["AWAITING_HUMAN", "COMPLETE"]
    assert failed.state == "FAILED" and failed.error is not None and failed.error.code == "review_failed"
    assert "AWAITING_HUMAN" not in failed.states_visited
