"""The run's state record: current state plus every transition with its time and reason."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from states.machine import TERMINAL_STATES, RunState, check_transition


class Transition(BaseModel):
    """One move of the state machine."""

    source: RunState | None
    target: RunState
    at: datetime
    reason: str = ""


class RunRecord(BaseModel):
    """Current state and history of moves. The workflow owns it; a query returns it."""

    state: RunState = RunState.INTAKE
    transitions: list[Transition] = Field(default_factory=list)
    escalated_from: RunState | None = None

    @classmethod
    def start(cls, at: datetime, reason: str = "request received") -> RunRecord:
        """A record that has just entered INTAKE."""
        return cls(transitions=[Transition(source=None, target=RunState.INTAKE, at=at, reason=reason)])

    def move(self, target: RunState, at: datetime, reason: str = "") -> Transition:
        """Apply a legal move (raises `IllegalTransition` otherwise) and record it."""
        check_transition(self.state, target, self.escalated_from)
        transition = Transition(source=self.state, target=target, at=at, reason=reason)
        if target is RunState.AWAITING_HUMAN:
            self.escalated_from = self.state
        elif self.state is RunState.AWAITING_HUMAN:
            self.escalated_from = None
        self.state = target
        self.transitions.append(transition)
        return transition

    @property
    def terminal(self) -> bool:
        """True once the run has ended."""
        return self.state in TERMINAL_STATES

    @property
    def states_visited(self) -> list[str]:
        """State names in the order they were entered."""
        return [t.target.value for t in self.transitions]
