"""Building dead letters inside a workflow (deterministic ids and contents); writing is an activity."""

from __future__ import annotations

import hashlib

from contracts.dead_letters import Checkpoint, DeadLetter, DeadLetterInput
from contracts.plan import Plan, TaskResult
from contracts.run import ReportCard, RunRequest
from contracts.saga import CompensationRecord, SideEffectRecord
from workflows import activity_stubs as act


def dead_letter_id(workflow_id: str, run_id: str, suffix: str = "") -> str:
    """A short, stable id: the same run (and step) always gets the same letter."""
    digest = hashlib.sha256(f"{workflow_id}|{run_id}|{suffix}".encode()).hexdigest()[:20]
    return f"dl-{digest}"


def checkpoint(
    request: RunRequest | None,
    plan: Plan | None,
    task_results: list[TaskResult],
    side_effects: list[SideEffectRecord],
    compensations: list[CompensationRecord],
    report_cards: list[ReportCard],
    undone_tasks: set[str],
) -> Checkpoint:
    """The run's last durable progress. Tasks whose side effects were compensated are left out, so a
    re-drive runs them again instead of reusing work that was undone."""
    return Checkpoint(
        request=request.model_dump(mode="json", exclude={"resume"}) if request else {},
        plan=plan,
        task_results=[r for r in task_results if r.status == "success" and r.task_id not in undone_tasks],
        side_effects=side_effects,
        compensations=compensations,
        report_cards=[c.model_dump(mode="json") for c in report_cards],
    )


async def write(letter: DeadLetter) -> str:
    """Record the letter through the `record_dead_letter` activity."""
    return await act.record_dead_letter(DeadLetterInput(letter=letter))
