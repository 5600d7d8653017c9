"""Hard limits every run lives under, whatever its blueprint says."""

from __future__ import annotations

#: Largest accepted run input (UTF-8 JSON bytes); bigger inputs are REJECTED at INTAKE.
MAX_INPUT_BYTES = 256 * 1024
#: Default bound on observe → decide → act turns of one worker step.
MAX_TURNS = 20
#: Attempts at a valid plan before PLANNING gives up.
MAX_PLAN_ATTEMPTS = 3
#: Review → revise cycles before REVIEWING gives up.
MAX_RETRIES = 3
#: Most tasks one plan may hold.
MAX_TASKS = 8
#: Largest tool result fed back to a model, in characters (the rest is cut and flagged).
MAX_TOOL_RESULT_CHARS = 16_000
