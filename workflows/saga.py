"""The saga of one run: the side effects it completed, and undoing them in reverse order.

Workflow-side only: each compensation is a `compensate_tool` activity with its own retry policy
and idempotency key; one that cannot succeed becomes a dead letter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from contracts.errors import ErrorInfo
from contracts.saga import CompensateInput, CompensationRecord, SideEffectRecord
from workflows import activity_stubs as act

#: Writes a dead letter for a compensation that failed; returns the letter's id.
DeadLetterWriter = Callable[[SideEffectRecord, ErrorInfo], Awaitable[str | None]]


class Saga:
    """Completed side effects in order, and what compensation did with each."""

    def __init__(self) -> None:
        self.effects: list[SideEffectRecord] = []
        self.compensations: list[CompensationRecord] = []

    def record(self, effect: SideEffectRecord) -> None:
        """Remember a side effect that completed (only real ones: never dry runs or replays of errors)."""
        self.effects.append(effect)

    def compensated_tasks(self) -> set[str]:
        """Task ids whose side effects were undone: a re-drive must run them again."""
        done = {r.step_id for r in self.compensations if r.status == "compensated"}
        return {e.task_id for e in self.effects if e.step_id in done}

    async def compensate(self, run_id: str, workspace: str, write_dead_letter: DeadLetterWriter) -> None:
        """Undo every compensable side effect, newest first, each exactly once (idempotency key)."""
        if self.compensations:
            return  # already ran in this run
        for effect in reversed(self.effects):
            if not effect.compensable:
                self.compensations.append(
                    CompensationRecord(step_id=effect.step_id, tool=effect.tool, status="not_compensable")
                )
                continue
            try:
                result = await act.compensate_tool(
                    CompensateInput(
                        run_id=run_id,
                        effect=effect,
                        workspace=workspace,
                        idempotency_key=f"{effect.idempotency_key}/compensate",
                    )
                )
                self.compensations.append(
                    CompensationRecord(
                        step_id=effect.step_id, tool=effect.tool, status="compensated", output=result.output
                    )
                )
            except ActivityError as exc:
                error = _error_of(exc)
                letter_id = await write_dead_letter(effect, error)
                self.compensations.append(
                    CompensationRecord(
                        step_id=effect.step_id,
                        tool=effect.tool,
                        status="failed",
                        error=error,
                        dead_letter_id=letter_id,
                    )
                )
                workflow.logger.warning("compensation of %s failed: %s", effect.step_id, error.message)


def _error_of(exc: ActivityError) -> ErrorInfo:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        details: Any = cause.details[0] if cause.details else {}
        return ErrorInfo(
            code="compensation_failed",
            message=cause.message,
            details={"type": cause.type, **(details if isinstance(details, dict) else {"detail": details})},
        )
    return ErrorInfo(code="compensation_failed", message=str(cause or exc))
