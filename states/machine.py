"""States and the legal moves between them (DESIGN.md's lifecycle table)."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is. The value is what the `FactoryState` search attribute holds."""

    INTAKE = "INTAKE"
    VALIDATING = "VALIDATING"
    PLANNING = "PLANNING"
    EXECUTING = "EXECUTING"
    REVIEWING = "REVIEWING"
    REVISING = "REVISING"
    AWAITING_HUMAN = "AWAITING_HUMAN"
    COMPLETE = "COMPLETE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


S = RunState

TERMINAL_STATES: frozenset[RunState] = frozenset({S.COMPLETE, S.REJECTED, S.FAILED})

# "may move to" from the lifecycle table. AWAITING_HUMAN is reachable from the states whose
# failure (or gate) needs a person; REVIEWING may fail outright when the blueprint says so
# instead of escalating past MAX_RETRIES.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.INTAKE: frozenset({S.VALIDATING, S.REJECTED}),
    S.VALIDATING: frozenset({S.PLANNING, S.REJECTED}),
    S.PLANNING: frozenset({S.EXECUTING, S.FAILED, S.AWAITING_HUMAN}),
    S.EXECUTING: frozenset({S.REVIEWING, S.FAILED, S.AWAITING_HUMAN}),
    S.REVIEWING: frozenset({S.COMPLETE, S.REVISING, S.FAILED, S.AWAITING_HUMAN}),
    S.REVISING: frozenset({S.EXECUTING}),
    # Back to the state that escalated (guarded by the record), or ended by decision.
    S.AWAITING_HUMAN: frozenset({S.PLANNING, S.EXECUTING, S.REVIEWING, S.COMPLETE, S.FAILED, S.REJECTED}),
    S.COMPLETE: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
}


class IllegalTransition(Exception):
    """Raised when code asks for a move the table does not allow: a bug, never user input."""

    def __init__(self, source: RunState, target: RunState, why: str = "") -> None:
        self.source = source
        self.target = target
        super().__init__(f"illegal transition {source} -> {target}" + (f": {why}" if why else ""))


def can_transition(source: RunState, target: RunState, escalated_from: RunState | None = None) -> bool:
    """True when the table allows `source -> target`.

    Leaving AWAITING_HUMAN for a non-terminal state is only allowed back to the state that
    escalated (`escalated_from`).
    """
    if target not in TRANSITIONS[source]:
        return False
    if source is S.AWAITING_HUMAN and target not in TERMINAL_STATES:
        return escalated_from is not None and target is escalated_from
    return True


def check_transition(source: RunState, target: RunState, escalated_from: RunState | None = None) -> None:
    """Raise `IllegalTransition` unless `source -> target` is legal."""
    if not can_transition(source, target, escalated_from):
        why = "terminal state" if source in TERMINAL_STATES else ""
        if source is S.AWAITING_HUMAN and target in TRANSITIONS[source]:
            why = f"escalated from {escalated_from}, not {target}"
        raise IllegalTransition(source, target, why)
