"""The run state machine: only legal paths occur and terminal states absorb."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from states import TERMINAL_STATES, TRANSITIONS, IllegalTransition, RunRecord, RunState, can_transition

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# DESIGN.md's table, written out again on purpose: the code must match the document.
EXPECTED = {
    "INTAKE": {"VALIDATING", "REJECTED"},
    "VALIDATING": {"PLANNING", "REJECTED"},
    "PLANNING": {"EXECUTING", "FAILED", "AWAITING_HUMAN"},
    "EXECUTING": {"REVIEWING", "FAILED", "AWAITING_HUMAN"},
    "REVIEWING": {"COMPLETE", "REVISING", "FAILED", "AWAITING_HUMAN"},
    "REVISING": {"EXECUTING"},
    "AWAITING_HUMAN": {"PLANNING", "EXECUTING", "REVIEWING", "COMPLETE", "FAILED", "REJECTED"},
    "COMPLETE": set(),
    "REJECTED": set(),
    "FAILED": set(),
}


def test_transition_table_matches_the_design_document() -> None:
    assert {s.value: {t.value for t in targets} for s, targets in TRANSITIONS.items()} == EXPECTED


def test_the_happy_path_is_legal_and_recorded_in_order() -> None:
    record = RunRecord.start(T0)
    path = [RunState.VALIDATING, RunState.PLANNING, RunState.EXECUTING, RunState.REVIEWING, RunState.COMPLETE]
    for i, state in enumerate(path):
        record.move(state, T0 + timedelta(seconds=i + 1), f"step {i}")
    assert record.states_visited == ["INTAKE", "VALIDATING", "PLANNING", "EXECUTING", "REVIEWING", "COMPLETE"]
    assert record.terminal
    assert [t.reason for t in record.transitions[1:]] == [f"step {i}" for i in range(5)]


def test_an_illegal_transition_raises_and_leaves_the_record_unchanged() -> None:
    record = RunRecord.start(T0)
    with pytest.raises(IllegalTransition):
        record.move(RunState.EXECUTING, T0)
    assert record.state is RunState.INTAKE
    assert len(record.transitions) == 1


def test_awaiting_human_returns_only_to_the_state_that_escalated() -> None:
    record = RunRecord.start(T0)
    for state in (RunState.VALIDATING, RunState.PLANNING, RunState.EXECUTING, RunState.AWAITING_HUMAN):
        record.move(state, T0)
    with pytest.raises(IllegalTransition):
        record.move(RunState.PLANNING, T0)
    record.move(RunState.EXECUTING, T0)
    assert record.state is RunState.EXECUTING
    assert record.escalated_from is None


@given(st.sampled_from(sorted(TERMINAL_STATES)), st.sampled_from(list(RunState)))
def test_terminal_states_absorb(terminal: RunState, target: RunState) -> None:
    assert not can_transition(terminal, target)


class RunMachine(RuleBasedStateMachine):
    """Hypothesis drives random moves, legal and illegal; the record must only ever take legal ones."""

    def __init__(self) -> None:
        super().__init__()
        self.record = RunRecord.start(T0)
        self.step = 0

    @precondition(lambda self: not self.record.terminal)
    @rule(data=st.data())
    def take_a_legal_move(self, data: st.DataObject) -> None:
        options = sorted(
            t
            for t in TRANSITIONS[self.record.state]
            if can_transition(self.record.state, t, self.record.escalated_from)
        )
        self.try_move(data.draw(st.sampled_from(options)))

    @rule(state=st.sampled_from(list(RunState)))
    def try_any_move(self, state: RunState) -> None:
        self.try_move(state)

    def try_move(self, target: RunState) -> None:
        source = self.record.state
        before = len(self.record.transitions)
        self.step += 1
        legal = can_transition(source, target, self.record.escalated_from)
        if legal:
            self.record.move(target, T0 + timedelta(seconds=self.step))
            assert self.record.state is target
            assert len(self.record.transitions) == before + 1
        else:
            with pytest.raises(IllegalTransition):
                self.record.move(target, T0)
            assert self.record.state is source
            assert len(self.record.transitions) == before

    @precondition(lambda self: self.record.terminal)
    @rule()
    def terminal_absorbs(self) -> None:
        for target in RunState:
            with pytest.raises(IllegalTransition):
                self.record.move(target, T0)

    @invariant()
    def every_recorded_move_is_in_the_table(self) -> None:
        moves = self.record.transitions
        assert moves[0].source is None and moves[0].target is RunState.INTAKE
        for move in moves[1:]:
            assert move.source is not None
            assert move.target in TRANSITIONS[move.source]
            assert move.source not in TERMINAL_STATES

    @invariant()
    def leaving_awaiting_human_goes_back_or_ends(self) -> None:
        moves = self.record.transitions
        for prev, move in zip(moves, moves[1:], strict=False):
            if move.source is RunState.AWAITING_HUMAN and move.target not in TERMINAL_STATES:
                assert move.target is prev.source  # back to the state that escalated


TestRunMachine = RunMachine.TestCase
TestRunMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
