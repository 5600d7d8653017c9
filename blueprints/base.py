"""The blueprint definition and its recorded snapshot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from contracts.model import ToolSpec
from contracts.policy import ToolPolicy
from contracts.review import ReviewSpec
from contracts.run import BlueprintSnapshot
from contracts.schemas import json_schema
from policies import limits


@dataclass(frozen=True)
class Blueprint:
    """One agent, one version. Published versions are immutable: change a prompt, bump the version."""

    name: str
    version: str
    description: str
    system_prompt: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    example_input: dict[str, Any]
    allowed_tools: tuple[str, ...] = ()
    checks: tuple[str, ...] = ("schema",)
    max_turns: int = limits.MAX_TURNS
    max_plan_attempts: int = limits.MAX_PLAN_ATTEMPTS
    max_revisions: int = limits.MAX_RETRIES
    max_tasks: int = limits.MAX_TASKS
    max_tokens_per_call: int = 2048
    offline_output: Callable[[Any, list[dict[str, Any]]], dict[str, Any]] | None = None
    """How the offline model builds this blueprint's output from the input and task results;
    a generic schema-filler when None."""
    tool_policy: ToolPolicy | None = None
    """Rules over tool calls, autonomy and escalation settings; None is the engine default."""
    review: ReviewSpec = field(default_factory=ReviewSpec)
    """Settings of the report-card checks named in `checks` (counts, patterns, drift, judge rubric)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for later policy defaults (budget, routing, escalation) without breaking old blueprints."""

    @property
    def ref(self) -> str:
        """`name@version`."""
        return f"{self.name}@{self.version}"

    def snapshot(self, tools: list[ToolSpec]) -> BlueprintSnapshot:
        """The exact, serializable blueprint a run records; `digest` fingerprints its content."""
        snap = BlueprintSnapshot(
            name=self.name,
            version=self.version,
            description=self.description,
            system_prompt=self.system_prompt,
            allowed_tools=list(self.allowed_tools),
            tools=tools,
            input_schema=json_schema(self.input_model),
            output_schema=json_schema(self.output_model),
            checks=list(self.checks),
            max_turns=self.max_turns,
            max_plan_attempts=self.max_plan_attempts,
            max_revisions=self.max_revisions,
            max_tasks=self.max_tasks,
            max_tokens_per_call=self.max_tokens_per_call,
            tool_policy=self.tool_policy,
            review=self.review,
        )
        # Leave an absent policy and default review settings out of the digest so blueprints
        # without them keep their fingerprint.
        skip = {"digest"} | ({"tool_policy"} if self.tool_policy is None else set())
        skip |= {"review"} if self.review == ReviewSpec() else set()
        body = json.dumps(snap.model_dump(mode="json", exclude=skip), sort_keys=True)
        snap.digest = hashlib.sha256(body.encode()).hexdigest()
        return snap
