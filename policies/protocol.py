"""The structured-output protocol between the workflow and any model.

Each step kind ends when the model calls its terminal tool; the tool's schema is the contract.
"""

from __future__ import annotations

from typing import Any

from contracts.model import ToolSpec
from contracts.plan import Plan
from contracts.schemas import json_schema

SUBMIT_PLAN = "submit_plan"
SUBMIT_RESULT = "submit_result"
SUBMIT_OUTPUT = "submit_output"
SUBMIT_VERDICT = "submit_verdict"
TERMINAL_TOOLS = frozenset({SUBMIT_PLAN, SUBMIT_RESULT, SUBMIT_OUTPUT, SUBMIT_VERDICT})


def submit_plan_spec(allowed_tools: list[str], max_tasks: int) -> ToolSpec:
    """The tool PLANNING asks the model to call with its plan."""
    schema = json_schema(Plan)
    schema["properties"]["tasks"]["maxItems"] = max_tasks
    return ToolSpec(
        name=SUBMIT_PLAN,
        description=(
            "Submit the plan: a list of tasks, each with an id, kind, instructions, the tools it may use "
            f"(only from {allowed_tools or 'none'}), and ids of tasks it depends on."
        ),
        input_schema=schema,
    )


def submit_result_spec(expected_result_schema: dict[str, Any]) -> ToolSpec:
    """The tool a worker step calls to finish its task."""
    return ToolSpec(
        name=SUBMIT_RESULT,
        description="Finish the task: status success, failure or needs_human, a result and a one-line summary.",
        input_schema={
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["success", "failure", "needs_human"]},
                "result": expected_result_schema,
                "summary": {"type": "string"},
            },
            "required": ["status", "result"],
        },
    )


def submit_output_spec(output_schema: dict[str, Any]) -> ToolSpec:
    """The tool that hands the run's final output to REVIEWING."""
    inner = dict(output_schema)
    defs = inner.pop("$defs", None)
    schema: dict[str, Any] = {"type": "object", "properties": {"output": inner}, "required": ["output"]}
    if defs:
        schema["$defs"] = defs  # `#/$defs/...` references resolve from the tool schema's root
    return ToolSpec(
        name=SUBMIT_OUTPUT,
        description="Submit the final output; it must match the output schema exactly.",
        input_schema=schema,
    )


def submit_verdict_spec() -> ToolSpec:
    """The tool the model-as-judge step calls with its grade."""
    return ToolSpec(
        name=SUBMIT_VERDICT,
        description="Grade the output against the rubric: a score from 0 to 1 and the reasons for it.",
        input_schema={
            "type": "object",
            "properties": {
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "reasons": {"type": "string"},
            },
            "required": ["score", "reasons"],
        },
    )
