"""The ledger on SQLite and on PostgreSQL: migrations, idempotent writes, the write API others use."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from activities.ledger import (
    DeadLetterRecord,
    DecisionRecord,
    EscalationRecord,
    Ledger,
    ModelCallRecord,
    RunEndRecord,
    ToolCallRecord,
    schema,
)
from contracts.cost import TransitionEvent
from contracts.model import Usage


def rid() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"


def transition(seq: int, target: str, source: str | None = None) -> TransitionEvent:
    return TransitionEvent(seq=seq, source=source, target=target, at=datetime.now(UTC), reason=f"to {target}")


async def test_migrations_reach_head_and_rerunning_them_is_a_no_op(ledger: Ledger) -> None:
    await ledger.upgrade()
    await ledger.upgrade()
    assert await ledger.rows(schema.runs, run_id="nobody") == []


async def test_the_same_attempt_of_a_model_call_is_counted_once_however_often_it_is_written(
    ledger: Ledger,
) -> None:
    run_id = rid()
    call = ModelCallRecord(
        run_id=run_id,
        step_id="t1/turn-1",
        attempt=1,
        provider="anthropic",
        model="claude-haiku-4-5",
        usage=Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=600),
        cost_usd=0.00146,
    )
    assert await ledger.record_model_call(call) is True
    assert await ledger.record_model_call(call) is False
    assert await ledger.run_spend(run_id) == (1200, 0.00146)
    second = call.model_copy(update={"attempt": 2, "cost_usd": 0.001})
    assert await ledger.record_model_call(second) is True
    tokens, usd = await ledger.run_spend(run_id)
    assert tokens == 2400 and abs(usd - 0.00246) < 1e-12
    rows = await ledger.rows(schema.model_calls, run_id=run_id)
    assert sorted(r["attempt"] for r in rows) == [1, 2]
    assert rows[0]["cache_read_tokens"] == 600


async def test_failed_attempts_are_summed_per_call_and_before_a_given_attempt(ledger: Ledger) -> None:
    run_id = rid()
    for attempt, status in [(1, "failed"), (2, "failed"), (3, "ok")]:
        await ledger.record_model_call(
            ModelCallRecord(
                run_id=run_id,
                step_id="s",
                attempt=attempt,
                provider="p",
                model="m",
                status=status,
                usage=Usage(input_tokens=100, output_tokens=10),
                cost_usd=0.5,
            )
        )
    usage, usd, count = await ledger.failed_attempts_spend(run_id, "s")
    assert (usage.input_tokens, usage.output_tokens, usd, count) == (200, 20, 1.0, 2)
    usage, usd, count = await ledger.failed_attempts_spend(run_id, "s", before_attempt=2)
    assert (usage.input_tokens, usd, count) == (100, 0.5, 1)


async def test_transitions_riding_on_several_activities_are_stored_once_each(ledger: Ledger) -> None:
    run_id = rid()
    first = [transition(0, "INTAKE"), transition(1, "VALIDATING", "INTAKE")]
    await ledger.record_tool_call(
        ToolCallRecord(run_id=run_id, step_id="a", tool="probe", status="ok"), first
    )
    await ledger.record_transitions(run_id, [*first, transition(2, "PLANNING", "VALIDATING")])
    rows = await ledger.rows(schema.state_transitions, run_id=run_id)
    assert sorted((r["seq"], r["target"]) for r in rows) == [
        (0, "INTAKE"),
        (1, "VALIDATING"),
        (2, "PLANNING"),
    ]


async def test_a_retried_tool_call_is_recorded_once_with_its_idempotency_key(ledger: Ledger) -> None:
    run_id = rid()
    record = ToolCallRecord(
        run_id=run_id,
        step_id="t1/turn-1/call-0",
        tool="write_file",
        status="ok",
        duration_ms=3.5,
        idempotency_key=f"{run_id}/t1/turn-1/call-0",
    )
    assert await ledger.record_tool_call(record) is True
    assert await ledger.record_tool_call(record.model_copy(update={"replayed": True})) is False
    rows = await ledger.rows(schema.tool_calls, run_id=run_id)
    assert (
        len(rows) == 1
        and rows[0]["idempotency_key"] == f"{run_id}/t1/turn-1/call-0"
        and rows[0]["replayed"] is False
    )


async def test_run_end_upserts_the_run_row_with_totals_and_partial_output(ledger: Ledger) -> None:
    run_id = rid()
    end = RunEndRecord(
        run_id=run_id,
        state="FAILED",
        blueprint="cost-probe",
        blueprint_version="1.0.0",
        error_code="budget_exhausted",
        budget_max_usd=0.01,
        budget_stopped=True,
        cost_usd=0.0098,
        partial_output={"task_results": [{"task_id": "t1"}]},
    )
    await ledger.record_run_end(end, [transition(0, "INTAKE")])
    await ledger.record_run_end(end, [transition(0, "INTAKE")])
    rows = await ledger.rows(schema.runs, run_id=run_id)
    assert len(rows) == 1
    assert rows[0]["budget_stopped"] is True and rows[0]["partial_output"] == {
        "task_results": [{"task_id": "t1"}]
    }
    assert len(await ledger.rows(schema.state_transitions, run_id=run_id)) == 1


async def test_escalations_decisions_and_dead_letters_are_idempotent_by_id(ledger: Ledger) -> None:
    run_id = rid()
    esc = EscalationRecord(
        escalation_id=f"{run_id}/esc-1",
        run_id=run_id,
        state="REVIEWING",
        reason="review failed",
        policy="review",
        details={"attempts": 3},
    )
    assert await ledger.record_escalation(esc) is True
    assert await ledger.record_escalation(esc) is False
    decision = DecisionRecord(
        decision_id=f"{run_id}/esc-1/d",
        escalation_id=esc.escalation_id,
        run_id=run_id,
        decision="approve",
        actor="ops@example.com",
    )
    assert await ledger.record_decision(decision) is True
    assert await ledger.record_decision(decision) is False
    letter = DeadLetterRecord(
        id=f"dl-{run_id}",
        workflow_id=run_id,
        run_id="temporal-run-1",
        failed_state="EXECUTING",
        error={"code": "task_failed", "message": "boom"},
        last_checkpoint={"done": ["t1"]},
        attempts=3,
        cost_usd=0.02,
    )
    assert await ledger.record_dead_letter(letter) is True
    assert await ledger.record_dead_letter(letter) is False
    assert await ledger.mark_redriven(letter.id, "redrive-1") is True
    assert await ledger.mark_redriven(letter.id, "redrive-1") is True  # the same redrive, retried
    assert await ledger.mark_redriven(letter.id, "redrive-2") is False  # another run may not claim it
    assert await ledger.mark_redriven("no-such-letter", "redrive-1") is False
    [row] = await ledger.rows(schema.dead_letters, id=letter.id)
    assert (
        row["redriven_by"] == "redrive-1" and row["error"]["code"] == "task_failed" and row["attempts"] == 3
    )
    assert len(await ledger.rows(schema.decisions, escalation_id=esc.escalation_id)) == 1


async def test_cost_reports_group_spend_and_outcomes_on_both_dialects(ledger: Ledger) -> None:
    from activities.ledger.reports import outcomes, spend_by

    blueprint = f"bp-{uuid.uuid4().hex[:8]}"
    runs = [(rid(), True, False), (rid(), False, True)]
    for run_id, success, stopped in runs:
        for attempt, status in [(1, "failed"), (2, "ok")]:
            await ledger.record_model_call(
                ModelCallRecord(
                    run_id=run_id,
                    step_id="s",
                    attempt=attempt,
                    provider="anthropic",
                    model=f"m-{blueprint}",
                    status=status,
                    usage=Usage(input_tokens=10, output_tokens=1),
                    cost_usd=0.25,
                )
            )
        await ledger.record_run_end(
            RunEndRecord(
                run_id=run_id,
                blueprint=blueprint,
                state="COMPLETE" if success else "FAILED",
                success=success,
                budget_stopped=stopped,
                cost_usd=0.5,
            )
        )
    by_model = {r["key"]: r for r in await spend_by(ledger, "model", limit=1000)}
    assert by_model[f"anthropic/m-{blueprint}"] == {
        "key": f"anthropic/m-{blueprint}",
        "calls": 4,
        "failed_calls": 2,
        "input_tokens": 40,
        "output_tokens": 4,
        "cache_read_tokens": 0,
        "cost_usd": 1.0,
    }
    by_blueprint = {r["key"]: r for r in await spend_by(ledger, "blueprint", limit=1000)}
    assert by_blueprint[blueprint]["cost_usd"] == 1.0
    assert any(r["calls"] >= 4 for r in await spend_by(ledger, "day"))
    [row] = [r for r in await outcomes(ledger) if r["blueprint"] == blueprint]
    assert (row["runs"], row["successes"], row["success_rate"], row["budget_stops"]) == (2, 1, 0.5, 1)
    assert row["cost_per_success_usd"] == 1.0


async def test_an_idle_sqlite_ledger_holds_no_aiosqlite_connection(tmp_path: Path) -> None:
    """A pooled aiosqlite connection keeps a thread, and one garbage-collected during a workflow
    activation closes on the workflow's loop (which refuses it): after migrating, writing and
    reading, an idle SQLite ledger keeps none."""

    def aiosqlite_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if "_connection_worker_thread" in t.name]

    before = aiosqlite_threads()
    ledger = Ledger(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    try:
        await ledger.upgrade()
        await ledger.record_transitions(run_id := rid(), [transition(0, "INTAKE")])
        assert await ledger.rows(schema.state_transitions, run_id=run_id) != []
        for _ in range(50):  # a closed connection's thread ends once its queue drains
            if aiosqlite_threads() == before:
                break
            await asyncio.sleep(0.01)
        assert aiosqlite_threads() == before
    finally:
        await ledger.close()
