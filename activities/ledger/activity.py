"""The `record_run_end` activity: the ledger write of a run's end, for runs whose end does not
ride on their review (`review_and_close`); every other ledger row rides on an activity the run
makes anyway."""

from __future__ import annotations

from temporalio import activity

from activities.ledger.db import Ledger
from activities.ledger.records import RunEndRecord, utcnow
from contracts.cost import RunLedgerInput


class LedgerActivities:
    """Holds the ledger the run-end activity writes to."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @activity.defn(name="record_run_end")
    async def record_run_end(self, inp: RunLedgerInput) -> None:
        """Upsert the run's row (outcome, totals, partial output) and its last transitions."""
        await self._ledger.record_run_end(run_end_record(inp), inp.ledger)


def run_end_record(inp: RunLedgerInput) -> RunEndRecord:
    """The ledger row of a run's end, from what the workflow sends."""
    budget = inp.budget
    return RunEndRecord(
        run_id=inp.run_id,
        temporal_run_id=inp.temporal_run_id or None,
        blueprint=inp.blueprint,
        blueprint_version=inp.blueprint_version,
        tenant=inp.tenant,
        state=inp.state,
        started_at=inp.started_at,
        ended_at=inp.ended_at or utcnow(),
        success=inp.success,
        error_code=inp.error_code,
        budget_max_tokens=budget.max_tokens if budget else None,
        budget_max_usd=budget.max_usd if budget else None,
        budget_alerted=inp.budget_alerted,
        budget_stopped=inp.budget_stopped,
        input_tokens=inp.input_tokens,
        output_tokens=inp.output_tokens,
        cost_usd=inp.cost_usd,
        model_calls=inp.model_calls,
        tool_calls=inp.tool_calls,
        partial_output=inp.partial_output,
    )
