"""The run state machine as data: states, the transition table, guards and the run record.

Pure Python: no Temporal, no I/O.
"""

from states.machine import (
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    RunState,
    can_transition,
    check_transition,
)
from states.record import RunRecord, Transition

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "RunRecord",
    "RunState",
    "Transition",
    "can_transition",
    "check_transition",
]
