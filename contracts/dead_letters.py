"""Dead letters: runs (and compensations) that could not finish, kept with what it takes to re-drive them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.errors import ErrorInfo
from contracts.plan import Plan, TaskResult
from contracts.saga import CompensationRecord, SideEffectRecord


class Checkpoint(BaseModel):
    """The last durable progress of a run: enough for a re-drive to skip what already succeeded."""

    request: dict[str, Any] = Field(default_factory=dict)
    """The original RunRequest (JSON), resubmitted by a re-drive."""
    plan: Plan | None = None
    task_results: list[TaskResult] = Field(default_factory=list)
    """Completed steps with their results (large ones travel as artifact references)."""
    side_effects: list[SideEffectRecord] = Field(default_factory=list)
    compensations: list[CompensationRecord] = Field(default_factory=list)
    report_cards: list[dict[str, Any]] = Field(default_factory=list)


DeadLetterKind = Literal["run", "compensation"]


class DeadLetter(BaseModel):
    """One dead-letter record (the ledger's `dead_letters` row, with the checkpoint as JSON)."""

    id: str
    kind: DeadLetterKind = "run"
    workflow_id: str
    run_id: str
    blueprint: str = ""
    failed_state: str
    error: ErrorInfo
    last_checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    attempts: int = 1
    """How many runs have tried this work: the original is 1, each re-drive that failed again adds one."""
    cost_usd: float = 0.0
    created_at: datetime
    redriven_by: str | None = None
    """Workflow id of the run that re-drove this one."""

    def resume(self) -> ResumeFrom:
        """What a re-drive sends in its RunRequest: the plan and the completed steps to reuse."""
        return ResumeFrom(
            dead_letter_id=self.id,
            original_workflow_id=self.workflow_id,
            failed_state=self.failed_state,
            plan=self.last_checkpoint.plan,
            task_results=self.last_checkpoint.task_results,
            attempts=self.attempts,
        )


class DeadLetterInput(BaseModel):
    """Input of the `record_dead_letter` activity (ids are deterministic: writing twice is harmless)."""

    letter: DeadLetter


class ResumeFrom(BaseModel):
    """Sent in a re-drive's RunRequest: skip planning and every step that already succeeded."""

    dead_letter_id: str
    original_workflow_id: str
    failed_state: str
    plan: Plan | None = None
    task_results: list[TaskResult] = Field(default_factory=list)
    attempts: int = 1
    """Attempts before this one (the original run counts 1; each re-drive adds one)."""
