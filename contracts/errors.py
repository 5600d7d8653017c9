"""Errors as values: what a caller, a dead letter or a status query sees."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorInfo(BaseModel):
    """A structured error: a stable code, a human message, and whether a retry could help."""

    code: str
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorCode:
    """The codes the engine itself emits (blueprints and tools may add their own)."""

    UNKNOWN_BLUEPRINT = "unknown_blueprint"
    UNKNOWN_VERSION = "unknown_version"
    INVALID_INPUT = "invalid_input"
    MALFORMED_JSON = "malformed_json"
    INPUT_TOO_LARGE = "input_too_large"
    INVALID_PLAN = "invalid_plan"
    PLANNING_FAILED = "planning_failed"
    TASK_FAILED = "task_failed"
    MAX_TURNS = "max_turns_exceeded"
    REVIEW_FAILED = "review_failed"
    PROVIDER_ERROR = "provider_error"
    ACTIVITY_FAILED = "activity_failed"
    INTERNAL = "internal_error"
